"""The notebook face of polyfis: one call for a polygon's time series, one for many polygons, DataFrames out.

:func:`timeseries` answers one polygon and returns a :class:`TimeSeries`; :func:`batch` answers many and
returns a :class:`BatchResult`. Both take the time-series request fields (``bands``, ``indices``,
``statistics``, ``cloud``, ``water``, ``exact``, ...) as keyword arguments, parse them with the engine's
parsers and keep to the limits of the ``POLYFIS_*`` settings. Their results convert to pandas
(:meth:`TimeSeries.to_pandas`, wide or tidy long form) and geopandas (``to_geopandas``); a batch also writes
GeoParquet. pandas and geopandas are imported when a conversion is asked for.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from stats import Archive, TimeSeriesRequest, TimeSeriesResult, query_timeseries
from stats.batch import BatchPlan, BatchPolygon, batch_options, batch_time, plan_batch, read_polygons, run_plan
from stats.batch.output import EXTENT_COLUMN, extent_frame, row_polygons
from stats.errors import InvalidRequestError
from stats.request import Area
from stats.settings import current

if TYPE_CHECKING:
    import geopandas
    import pandas

When = str | dt.date | dt.datetime


def timeseries(geometry: Any, start: When, end: When, *, archive: Archive | str | os.PathLike[str] | None = None,
               crs: str = "EPSG:4326", **options: Any) -> TimeSeries:
    """The time series of one polygon from ``start`` to ``end`` (inclusive).

    :param geometry: a shapely polygon, GeoJSON (a dict or text) or WKT, in ``crs`` ((x, y) / (lon, lat)).
    :param archive: an :class:`~stats.archive.catalog.Archive`, a folder, ``collection.json`` or URL; default
        the ``POLYFIS_ARCHIVE`` setting, else the embedded demo archive.
    :param options: the request fields of ``POST /api/v1/timeseries`` but ``geometry``, ``crs`` and ``time``.
    :raises InvalidRequestError: (and subclasses) naming the bad field.
    """
    limits = current().limits
    shape = mapping(geometry) if isinstance(geometry, BaseGeometry) else geometry
    request = TimeSeriesRequest.from_dict({"geometry": shape, "crs": crs, "time": _time(start, end), **options},
                                          limits=limits)
    result = query_timeseries(request, open_archive(archive), limits=limits)
    return TimeSeries(result, request.area)


def batch(polygons: Any, start: When, end: When, *, archive: Archive | str | os.PathLike[str] | None = None,
          id_field: str | None = None, crs: str | None = None, **options: Any) -> BatchResult:
    """The time series of many polygons, computed together (each COG tile read once for all of them).

    :param polygons: a GeoDataFrame (ids from ``id_field``, else its index), a vector file or CSV path, a
        GeoJSON FeatureCollection (ids from ``properties[id_field or "id"]``, else the position), or a list of
        :class:`~stats.batch.BatchPolygon`.
    :param crs: the polygons' CRS when their source does not say (default EPSG:4326).
    :param options: as for :func:`timeseries`.
    """
    time = _time(start, end)
    arch = open_archive(archive)
    plan = plan_batch(arch, _polygons(polygons, id_field, crs), batch_time(time["from"], time["to"]),
                      batch_options(options), limits=current().limits)
    table, analytics = run_plan(plan, arch)
    return BatchResult(table, plan, analytics)


@lru_cache(maxsize=8)
def _open(href: str) -> Archive:
    return Archive.open(href)


def open_archive(archive: Archive | str | os.PathLike[str] | None = None) -> Archive:
    """An archive given as such, as a folder, file or URL (opened once per process), or by default the
    ``POLYFIS_ARCHIVE`` setting, else the embedded demo archive (built on first use)."""
    if isinstance(archive, Archive):
        return archive
    if archive is None:
        settings = current()
        if settings.archive:
            return _open(settings.archive)
        from stats.archive.synthetic import demo_archive_of

        return _open(str(demo_archive_of(settings)))
    return _open(os.fspath(archive))


def _time(start: When, end: When) -> dict[str, str]:
    def text(value: When, name: str) -> str:
        if isinstance(value, (dt.date, dt.datetime)):
            return value.isoformat()
        if isinstance(value, str):
            return value
        raise InvalidRequestError(f"{name}: expected an ISO date string, a date or a datetime, got {value!r:.80}")
    return {"from": text(start, "start"), "to": text(end, "end")}


def _polygons(polygons: Any, id_field: str | None, crs: str | None) -> list[BatchPolygon]:
    if isinstance(polygons, (str, os.PathLike)):
        return read_polygons(polygons, id_field=id_field, crs=crs)
    if isinstance(polygons, Mapping):
        if polygons.get("type") != "FeatureCollection" or not isinstance(polygons.get("features"), list):
            raise InvalidRequestError("polygons: expected a GeoJSON FeatureCollection, a GeoDataFrame, a path or "
                                      f"a list of BatchPolygon, got a {polygons.get('type')!r:.40} object")
        out = []
        for i, feature in enumerate(polygons["features"]):
            properties = feature.get("properties") or {}
            pid = properties.get(id_field or "id", i)
            out.append(BatchPolygon(pid, _shape(feature.get("geometry")), crs or "EPSG:4326"))
        return out
    if hasattr(polygons, "geometry") and hasattr(polygons, "iterrows"):  # a GeoDataFrame
        frame_crs = polygons.crs.to_string() if polygons.crs is not None else None
        ids = polygons[id_field] if id_field is not None else polygons.index
        return [BatchPolygon(pid.item() if hasattr(pid, "item") else pid, geom, crs or frame_crs or "EPSG:4326")
                for pid, geom in zip(ids, polygons.geometry)]
    if isinstance(polygons, Sequence) and all(isinstance(p, BatchPolygon) for p in polygons):
        return list(polygons)
    raise InvalidRequestError("polygons: expected a GeoDataFrame, a path, a GeoJSON FeatureCollection or a list "
                              f"of BatchPolygon, got {type(polygons).__name__}")


def _shape(geometry: Any) -> BaseGeometry | None:
    from shapely.geometry import shape

    return shape(geometry) if isinstance(geometry, Mapping) else None


#: The columns of the tidy long form, after the per-date columns.
LONG_COLUMNS = ("kind", "name", "statistic", "value")


@dataclass(frozen=True)
class TimeSeries:
    """A polygon's time series: the engine's :class:`~stats.results.TimeSeriesResult` and the polygon."""

    result: TimeSeriesResult
    area: Area

    def to_dict(self) -> dict[str, Any]:
        """The JSON answer of ``POST /api/v1/timeseries``."""
        return self.result.to_dict()

    def to_csv(self, table: str = "dates") -> str:
        """The CSV answer of ``POST /api/v1/timeseries`` (``table``: as its ``?table=``)."""
        return self.result.to_csv(table)

    def to_pandas(self, form: str = "wide") -> pandas.DataFrame:
        """The series as a DataFrame.

        ``wide``: one row per date with the CSV columns (``date`` as a datetime64 column). ``intervals``,
        ``curves`` or ``season``: that analytics table, as its CSV (dates as datetime64). ``long``: one row
        per date, band or index and statistic, with the per-date columns (``date``, ``cloud_probability``,
        ``cloudy``, ``valid_pixels``, ``nodata_pixels``) and then ``kind`` (``band`` or ``index``), ``name``,
        ``statistic`` and ``value``. Dates whose imagery could not be read keep their ``error``.
        """
        import pandas as pd

        if form in ("wide", "intervals", "curves", "season"):
            header, rows = self.result.table("dates" if form == "wide" else form)
            frame = pd.DataFrame(rows, columns=header)
            for column in ("date", "start", "peak", "end"):
                if column in frame:
                    frame[column] = pd.to_datetime(frame[column])
            return frame
        if form != "long":
            raise InvalidRequestError(
                f"form: expected 'wide', 'long', 'intervals', 'curves' or 'season', got {form!r:.40}")
        rows = []
        for entry in self.result.series:
            head = [entry.date, entry.cloud_probability, entry.cloudy, entry.valid_pixels, entry.nodata_pixels,
                    entry.error]
            for kind, table in (("band", entry.bands), ("index", entry.indices)):
                for name, stats in table.items():
                    rows += [head + [kind, name, statistic, value] for statistic, value in stats.items()]
        columns = ["date", "cloud_probability", "cloudy", "valid_pixels", "nodata_pixels", "error", *LONG_COLUMNS]
        frame = pd.DataFrame(rows, columns=columns)
        frame["date"] = pd.to_datetime(frame["date"])
        frame["value"] = frame["value"].astype("float64")
        return frame

    def to_geopandas(self, form: str = "wide") -> geopandas.GeoDataFrame:
        """:meth:`to_pandas` with the polygon (in EPSG:4326) on every row."""
        import geopandas as gpd

        frame = self.to_pandas(form)
        return gpd.GeoDataFrame(frame, geometry=[self.area.wgs84] * len(frame), crs="EPSG:4326")

    def plot(self, index: str | None = None) -> Any:
        """A quick look: the cloud probability per date (cloudy dates marked) and, below, the mean of
        ``index`` (default the first index asked for) over the clear dates, with its filled curve when the
        series was asked to ``fill`` it. Needs matplotlib."""
        import matplotlib.pyplot as plt

        frame = self.to_pandas()
        names = self.result.indices
        name = index or (names[0] if names else None)
        fig, axes = plt.subplots(2 if name else 1, 1, sharex=True, squeeze=False, figsize=(9, 5))
        ax = axes[0][0]
        ax.plot(frame["date"], frame["cloud_probability"], marker="o", color="0.4")
        cloudy = frame["cloudy"].fillna(False).astype(bool)
        ax.scatter(frame["date"][cloudy], frame["cloud_probability"][cloudy], color="tab:red", zorder=3,
                   label="cloudy")
        ax.set_ylabel("cloud probability")
        ax.set_ylim(0, 1)
        ax.legend(loc="upper right")
        if name:
            column = f"{name}_mean"
            if column not in frame:
                raise InvalidRequestError(f"index: {name!r:.40} has no mean in this series; expected one of "
                                          f"{list(names)} with the 'mean' statistic")
            clear = frame[~cloudy]
            curves = self.result.analytics.curves if self.result.analytics else None
            filled = curves is not None and name in curves.values and curves.statistic == "mean"
            axes[1][0].plot(clear["date"], clear[column], marker="o", linestyle="none" if filled else "-",
                            color="tab:green", label="clear dates")
            if curves is not None and filled:
                curve = self.to_pandas("curves")
                axes[1][0].plot(curve["date"], curve[name], color="tab:blue", label=f"filled ({curves.method})")
                axes[1][0].legend(loc="upper right")
            axes[1][0].set_ylabel(f"{name} mean (clear dates)")
        fig.autofmt_xdate()
        return fig


@dataclass(frozen=True)
class BatchResult:
    """The rows of a batch (``id``, then the time-series columns; one per polygon and date), its plan (the
    polygons, parsed) and its analytics tables (``intervals``, ``curves``, ``season``: those asked for)."""

    table: pa.Table
    plan: BatchPlan
    analytics: Mapping[str, pa.Table] = field(default_factory=dict)

    def to_pandas(self, table: str = "dates") -> pandas.DataFrame:
        """The rows (``dates``) or an analytics table as a DataFrame (dates as datetime64); the water
        extents are in :meth:`water_extents`."""
        import pandas as pd

        if table == "dates":
            source = self.table
            if EXTENT_COLUMN in source.column_names:
                source = source.drop_columns([EXTENT_COLUMN])
        elif table in self.analytics:
            source = self.analytics[table]
        else:
            raise InvalidRequestError(f"table: got {table!r:.40}; this batch has the tables "
                                      f"{['dates', *self.analytics]}")
        frame = source.to_pandas()
        for column in ("date", "start", "peak", "end"):
            if column in frame:
                frame[column] = pd.to_datetime(frame[column])
        return frame

    def water_extents(self) -> geopandas.GeoDataFrame:
        """With ``water.extent`` on: one row per polygon id and measured date (``id``, ``date``,
        ``water_status``, ``water_area_m2``, ``water_level``) with the water polygon in EPSG:4326."""
        if EXTENT_COLUMN not in self.table.column_names:
            raise InvalidRequestError("water_extents: this batch has no water extent; expected the option "
                                      "water with buffer_m (or extent: true)")
        return extent_frame(self.table)

    def to_geopandas(self) -> geopandas.GeoDataFrame:
        """The rows with each polygon (in EPSG:4326); a polygon that could not be used has no geometry."""
        import geopandas as gpd

        return gpd.GeoDataFrame(self.to_pandas(), geometry=row_polygons(self.table, self.plan), crs="EPSG:4326")

    def to_geoparquet(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_geopandas` as GeoParquet."""
        self.to_geopandas().to_parquet(path)
