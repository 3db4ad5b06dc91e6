"""polyfis: per-date Sentinel-2 L1C statistics and s2cloudless cloud probability for a polygon.

The public face of the project. The engine is :mod:`stats` (no HTTP in it), the HTTP service
:mod:`service`, and the command line :mod:`polyfis.cli`. In a notebook::

    import polyfis
    series = polyfis.timeseries(polygon, "2023-01-01", "2023-12-31", indices=["NDVI"])
    frame = series.to_pandas()          # one row per date; to_pandas("long") for the tidy form

and for many polygons ``polyfis.batch(geodataframe, "2023-01-01", "2023-12-31").to_geopandas()``
(:mod:`polyfis.api`). The engine's own names are here too, for programs that build requests themselves.
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

from .api import BatchResult, TimeSeries, batch, open_archive, timeseries

__all__ = [
    "Archive",
    "Area",
    "BatchPolygon",
    "BatchResult",
    "CloudOptions",
    "DateResult",
    "Limits",
    "QueryOptions",
    "StatsError",
    "TimeRange",
    "TimeSeries",
    "TimeSeriesRequest",
    "TimeSeriesResult",
    "batch",
    "compute_batch",
    "open_archive",
    "query_timeseries",
    "read_polygons",
    "run_batch",
    "timeseries",
]
