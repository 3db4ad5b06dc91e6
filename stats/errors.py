"""Exceptions raised by the polyfis engine.

Every exception derives from :class:`StatsError`. Classes that describe bad input also derive from
:class:`ValueError`, so callers that do not know polyfis can still catch them. The HTTP layer maps each
class to a status code in one table (``service/errors.py``).
"""

from __future__ import annotations


class StatsError(Exception):
    """Root of every polyfis engine error."""


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


class ArchiveError(StatsError):
    """Raised when an archive (STAC catalog) cannot be opened or is malformed."""


class IngestError(ArchiveError):
    """Raised when an image cannot be turned into an archive acquisition."""


class SceneReadError(StatsError):
    """Raised when the imagery of one acquisition cannot be read (missing or corrupt asset)."""


class CloudModelError(StatsError):
    """Raised when the s2cloudless model cannot be loaded or gets input of the wrong shape."""
