"""polyfis engine: polygon time series of Sentinel-2 L1C statistics with s2cloudless cloud probability.

The engine has no HTTP in it. Its entry point is :func:`query_timeseries`::

    from stats import Archive, TimeSeriesRequest, query_timeseries
    archive = Archive.open("path/to/archive")
    request = TimeSeriesRequest.from_dict({"geometry": wkt, "time": {"from": "2023-01-01", "to": "2023-12-31"}})
    result = query_timeseries(request, archive)
    result.to_dict()
"""

from .archive.catalog import Acquisition, Archive
from .errors import (
    ArchiveError,
    CloudModelError,
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
from .models import CloudOptions, DateResult, TimeSeriesRequest, TimeSeriesResult
from .pipeline import Limits, query_timeseries

__all__ = [
    "Acquisition",
    "Archive",
    "ArchiveError",
    "CloudModelError",
    "CloudOptions",
    "DateResult",
    "IngestError",
    "InvalidCRSError",
    "InvalidGeometryError",
    "InvalidRequestError",
    "InvalidTimeRangeError",
    "Limits",
    "SceneReadError",
    "StatsError",
    "TimeSeriesRequest",
    "TimeSeriesResult",
    "UnknownBandError",
    "UnknownIndexError",
    "UnknownStatisticError",
    "query_timeseries",
]
