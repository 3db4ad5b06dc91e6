"""polyfis engine: polygon time series of Sentinel-2 L1C statistics with s2cloudless cloud probability.

The engine has no HTTP in it. Its entry point is :func:`query_timeseries`::

    from stats import Archive, TimeSeriesRequest, query_timeseries
    archive = Archive.open("path/to/archive")
    request = TimeSeriesRequest.from_dict({"geometry": wkt, "time": {"from": "2023-01-01", "to": "2023-12-31"}})
    result = query_timeseries(request, archive)
    result.to_dict()

A request is an :class:`Area` and a :class:`TimeRange` (what is asked about) and :class:`QueryOptions`
(how); each is parsed once, at the boundary (:mod:`stats.request`).
"""

from .archive.catalog import Acquisition, Archive
from .clouds.options import CloudOptions
from .errors import (
    ArchiveError,
    CloudModelError,
    ConfigError,
    IngestError,
    InvalidCRSError,
    InvalidGeometryError,
    InvalidRequestError,
    InvalidTimeRangeError,
    SceneReadError,
    StatsError,
    UnknownBandError,
    UnknownIndexError,
    UnknownStatisticError,
)
from .pipeline import query_timeseries
from .request import Area, Limits, QueryOptions, TimeRange, TimeSeriesRequest
from .results import DateResult, TimeSeriesResult

__all__ = [
    "Acquisition",
    "Archive",
    "Area",
    "ArchiveError",
    "CloudModelError",
    "CloudOptions",
    "ConfigError",
    "DateResult",
    "IngestError",
    "InvalidCRSError",
    "InvalidGeometryError",
    "InvalidRequestError",
    "InvalidTimeRangeError",
    "Limits",
    "QueryOptions",
    "SceneReadError",
    "StatsError",
    "TimeRange",
    "TimeSeriesRequest",
    "TimeSeriesResult",
    "UnknownBandError",
    "UnknownIndexError",
    "UnknownStatisticError",
    "query_timeseries",
]
