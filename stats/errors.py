"""Every exception polyfis raises, and the one table of the HTTP status each stands for.

Every exception derives from :class:`StatsError`. Classes that describe bad input also derive from
:class:`ValueError`, so callers that do not know polyfis can still catch them. :data:`STATUS_CODES` maps
each class to its HTTP status; :func:`status_for` reads it (the service's error handlers use it, and
nothing else decides a status). The HTTP layer raises the classes of this module too (bad JSON, a missing
token, an unknown job).
"""

from __future__ import annotations


class StatsError(Exception):
    """Root of every polyfis engine error."""


class ConfigError(StatsError, ValueError):
    """Raised at start-up when a ``POLYFIS_*`` setting has a value of the wrong type or range."""


class InvalidRequestError(StatsError, ValueError):
    """Raised when a request parameter has the wrong type, value or range."""


class InvalidGeometryError(InvalidRequestError):
    """Raised when a geometry cannot be parsed, repaired or used as a polygon."""


class InvalidCRSError(InvalidRequestError):
    """Raised when a coordinate reference system is unknown or cannot be used."""


class InvalidTimeRangeError(InvalidRequestError):
    """Raised when a time range is malformed, reversed or missing."""


class UnknownBandError(InvalidRequestError):
    """Raised when a band name is not one of the 13 Sentinel-2 L1C bands."""


class UnknownIndexError(InvalidRequestError):
    """Raised when an index name is unknown or its expression cannot be parsed."""


class UnknownStatisticError(InvalidRequestError):
    """Raised when a statistic name is not one polyfis computes."""


class EvalscriptError(InvalidRequestError):
    """Raised when an evalscript cannot be parsed or run, or breaks its memory limit."""


class EvalscriptTimeout(EvalscriptError):
    """Raised when an evalscript runs longer than its time limit."""


class ArchiveError(StatsError):
    """Raised when an archive (STAC catalog) cannot be opened or is malformed."""


class ArchiveUnreachableError(ArchiveError):
    """Raised when an archive's server (a STAC API) cannot be reached or does not answer as one."""


class MissingAcquisitionError(ArchiveError):
    """Raised when an archive holds no acquisition with an id asked for."""


class IngestError(ArchiveError):
    """Raised when an image cannot be turned into an archive acquisition."""


class LayerConfigError(StatsError):
    """Raised when the FIS layer configuration file is missing or malformed."""


class MalformedRequestError(InvalidRequestError):
    """Raised when a request cannot be read at all: an empty or malformed body, or an unknown format."""


class UnsupportedMediaTypeError(InvalidRequestError):
    """Raised when a request body comes in a media type the route does not read."""


class UnauthorizedError(StatsError):
    """Raised when a request lacks valid credentials (a bearer token, or a client id and secret)."""


class NotFoundError(StatsError):
    """Raised when a request names something that does not exist (a batch job, a result, a route's feature)."""


class ConflictError(StatsError):
    """Raised when a request asks for something not ready yet (the results of a running batch job)."""


class ServiceUnavailableError(StatsError):
    """Raised when the server cannot take a request for now (its jobs folder is not writable)."""


class JobInterruptedError(ServiceUnavailableError):
    """Raised inside a batch job's run when its process is stopping; the job is left as it is, to be resumed
    by the next server (never shown to a client)."""


class SceneReadError(StatsError):
    """Raised when the imagery of one acquisition cannot be read (missing or corrupt asset)."""


class StorageError(StatsError):
    """Raised when a Batch Statistical location (S3 or the local folder) cannot be read or written; its message
    names the location as the client gave it."""


class CloudModelError(StatsError):
    """Raised when the s2cloudless model cannot be loaded or gets input of the wrong shape."""


#: Exception class -> HTTP status. The first class of an exception's MRO found here wins.
STATUS_CODES: dict[type[Exception], int] = {
    UnsupportedMediaTypeError: 415,
    InvalidRequestError: 400,
    UnauthorizedError: 401,
    NotFoundError: 404,
    ConflictError: 409,
    ServiceUnavailableError: 503,
    ArchiveUnreachableError: 502,
    ArchiveError: 503,
    LayerConfigError: 503,
    SceneReadError: 502,
    StorageError: 502,
    CloudModelError: 500,
    ConfigError: 500,
    StatsError: 500,
}

#: Classes whose message is safe to show a client even though their status is 5xx (they name the
#: operator's configuration or the server's state, not its internals).
OPERATOR_ERRORS: tuple[type[Exception], ...] = (ArchiveError, LayerConfigError, ServiceUnavailableError)


def error_code(exc: BaseException) -> str:
    """The ``code`` of an error's JSON body: the class's name without its ``Error`` suffix, the same
    vocabulary as the HTTP statuses' own (``NotFound``, ``MethodNotAllowed``, ``RequestEntityTooLarge``).

    >>> error_code(NotFoundError("batch job 'x' not found")), error_code(UnknownBandError("bands: ..."))
    ('NotFound', 'UnknownBand')
    """
    return type(exc).__name__.removesuffix("Error")


def status_for(exc: BaseException) -> int:
    """HTTP status of ``exc`` from :data:`STATUS_CODES` (500 for anything not listed).

    >>> status_for(UnknownBandError("bands: ...")), status_for(SceneReadError("scene ...")), status_for(KeyError())
    (400, 502, 500)
    """
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return 500
