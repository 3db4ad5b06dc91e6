"""polyfis: per-date Sentinel-2 L1C statistics and s2cloudless cloud probability for a polygon.

The public face of the project. The engine is :mod:`stats` (no HTTP in it), the HTTP service
:mod:`service`, and the command line :mod:`polyfis.cli`. The names most programs need are here::

    import polyfis
    archive = polyfis.Archive.open("path/to/archive")
    request = polyfis.TimeSeriesRequest.from_dict(
        {"geometry": wkt, "time": {"from": "2023-01-01", "to": "2023-12-31"}, "indices": ["NDVI"]})
    result = polyfis.query_timeseries(request, archive)
    result.to_csv()
"""

from stats import (
    Archive,
    Area,
    CloudOptions,
    DateResult,
    Limits,
    QueryOptions,
    StatsError,
    TimeRange,
    TimeSeriesRequest,
    TimeSeriesResult,
    query_timeseries,
)
from stats.batch import BatchPolygon, compute_batch, read_polygons, run_batch

__all__ = [
    "Archive",
    "Area",
    "BatchPolygon",
    "CloudOptions",
    "DateResult",
    "Limits",
    "QueryOptions",
    "StatsError",
    "TimeRange",
    "TimeSeriesRequest",
    "TimeSeriesResult",
    "compute_batch",
    "query_timeseries",
    "read_polygons",
    "run_batch",
]
