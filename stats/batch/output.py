"""Batch output: rows as Arrow tables with one schema, written as CSV, Parquet or GeoPackage.

The columns are ``id`` and the time-series CSV columns (:meth:`stats.results.TimeSeriesResult.columns`),
typed as the JSON answer is: ``date`` as a date (ISO text in CSV), messages and statuses as strings,
``cloudy`` as a boolean, pixel counts as integers, the rest as floats. Tables carry an extra ``_polygon``
column (the polygon's input position) until :func:`finish_table` sorts by it and drops it.

With ``water.extent`` on, tables end with a :data:`EXTENT_COLUMN` column: each row's water polygon as WKB
in EPSG:4326 (null on refused dates). It is not written with the statistics: :func:`write_table` puts it
in a ``water_extent`` layer of the GeoPackage, or beside a CSV or Parquet file in
``<name>.water_extent.parquet`` (GeoParquet) or ``<name>.water_extent.csv`` (WKT), one row per polygon id
and date (:func:`extent_frame`).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from ..errors import InvalidRequestError
from ..results import DateResult, TimeSeriesResult, write_csv
from .analytics import analytics_tables
from .plan import ID_COLUMN, BatchPlan, BatchTask

if TYPE_CHECKING:
    import geopandas

#: Output formats by file suffix.
FORMATS = {".csv": "csv", ".parquet": "parquet", ".gpkg": "gpkg"}
#: The column holding each row's polygon position while tables are assembled.
ORDER_COLUMN = "_polygon"
#: The column of each row's water extent (WKB, EPSG:4326), with ``water.extent`` on.
EXTENT_COLUMN = "water_extent"
#: The statistics columns kept beside the extent in its layer or file.
EXTENT_FIELDS = (ID_COLUMN, "date", "water_status", "water_area_m2", "water_level")
#: The name of the extent layer (GeoPackage) and the suffix of the extent file (CSV, Parquet).
EXTENT_LAYER = "water_extent"


def extent_on(plan: BatchPlan) -> bool:
    """Whether the batch's rows carry the water extent."""
    return plan.options.water is not None and plan.options.water.extent


def _extent_wkb(entry: DateResult) -> bytes | None:
    if entry.water is None or entry.water.extent is None:
        return None
    return shapely.to_wkb(shape(entry.water.extent))


def task_table(plan: BatchPlan, entries: Iterable[tuple[int, DateResult]]) -> pa.Table:
    """Rows of (polygon index, date result) as an Arrow table with the batch's columns."""
    template = TimeSeriesResult.empty(plan.options)
    order: list[int] = []
    rows: list[list[Any]] = []
    for i, entry in entries:
        result = replace(template, series=(entry,))
        order.append(i)
        rows.append([plan.polygons[i].id] + result.to_rows()[0] + ([_extent_wkb(entry)] if extent_on(plan) else []))
    return _to_arrow(plan, order, rows)


def error_table(plan: BatchPlan) -> pa.Table:
    """One row per invalid polygon: its id and the error, everything else empty."""
    return _message_table(plan, sorted(plan.invalid.items()))


def _message_table(plan: BatchPlan, messages: list[tuple[int, str]]) -> pa.Table:
    """One row per (polygon index, message): the polygon's id and the message as its error, nothing else."""
    width = len(plan.columns())
    extent = [None] if extent_on(plan) else []
    rows = [[plan.polygons[i].id] + [None] * (width - 2) + [message] + extent for i, message in messages]
    return _to_arrow(plan, [i for i, _ in messages], rows)


def _schema(plan: BatchPlan) -> pa.Schema:
    ids = [p.id for p in plan.polygons]
    id_type = pa.int64() if ids and all(isinstance(v, int) and not isinstance(v, bool) for v in ids) else pa.string()
    fields = [pa.field(ORDER_COLUMN, pa.int64()), pa.field(ID_COLUMN, id_type)]
    for name in plan.columns()[1:]:
        if name == "date":
            kind = pa.date32()
        elif name in ("error", "cloud_warning", "cloud_source", "cloud_note", "shadow_warning", "water_status",
                      "water_threshold_method"):
            kind = pa.string()
        elif name in ("cloudy", "cloud_trusted"):
            kind = pa.bool_()
        elif name in ("valid_pixels", "nodata_pixels", "clear_pixels", "cloudy_pixels", "shadow_pixels") or (
                name.endswith("_count") and not plan.options.exact):  # exact mode: count is an area
            kind = pa.int64()
        else:
            kind = pa.float64()
        fields.append(pa.field(name, kind))
    if extent_on(plan):
        fields.append(pa.field(EXTENT_COLUMN, pa.binary()))
    return pa.schema(fields)


def _to_arrow(plan: BatchPlan, order: list[int], rows: list[list[Any]]) -> pa.Table:
    schema = _schema(plan)
    columns: list[list[Any]] = [order] + [list(col) for col in zip(*rows)] if rows else [[] for _ in schema]
    if schema.field(ID_COLUMN).type == pa.string() and rows:
        columns[1] = [None if v is None else str(v) for v in columns[1]]
    if rows:  # the rows hold ISO dates, as the CSV writes them; the table holds dates
        at = schema.get_field_index("date")
        columns[at] = [None if v is None else dt.date.fromisoformat(v) for v in columns[at]]
    return pa.Table.from_arrays([pa.array(col, type=f.type) for col, f in zip(columns, schema)], schema=schema)


def finish_table(plan: BatchPlan, tables: list[pa.Table]) -> tuple[pa.Table, dict[str, pa.Table]]:
    """The batch's rows from its tables: every polygon without a row gets one saying why (see
    :func:`no_result_message`), then the rows are ordered by polygon (input order) and date; and the
    analytics tables of those rows (:func:`stats.batch.analytics.analytics_tables`), by name."""
    table = pa.concat_tables(tables)
    answered = set(table.column(ORDER_COLUMN).to_pylist())
    missing = [i for i, area in enumerate(plan.areas) if area is not None and i not in answered]
    if missing:
        covered = {i for task in plan.tasks for i in task.polygons}
        table = pa.concat_tables([table, _message_table(plan, [(i, no_result_message(plan, i in covered))
                                                               for i in missing])])
    table = table.sort_by([(ORDER_COLUMN, "ascending"), ("date", "ascending")])
    return table.drop_columns([ORDER_COLUMN]), analytics_tables(plan, table, ORDER_COLUMN)


def no_result_message(plan: BatchPlan, covered: bool) -> str:
    """Why a usable polygon has no dated row: no acquisition covers it, or none of its dates has a pixel."""
    days = f"between {plan.time.start.date()} and {plan.time.end.date()}"
    if not covered:
        return f"no result: no acquisition {days} covers the polygon (it may lie outside the archive)"
    return (f"no result: no date {days} has a valid pixel in the polygon (or every date was dropped as "
            "cloudy); include_empty: true lists the empty dates")


def write_table(table: pa.Table, out: str | os.PathLike[str], plan: BatchPlan | None = None,
                extra: Mapping[str, pa.Table] | None = None) -> list[Path]:
    """Write ``table`` to ``out``: CSV (``true``/``false``, empty cells for nulls), Parquet or GeoPackage
    (layer ``statistics``, each row with the polygon of ``plan``, in EPSG:4326). ``extra`` tables (the
    analytics) go beside it: to ``<stem>.<name><suffix>`` for CSV and Parquet (:func:`companion_path`), to
    layers of their name in the GeoPackage. A :data:`EXTENT_COLUMN` goes to its own layer or file (see the
    module docstring). Each file appears only once complete; the paths written are returned."""
    out = Path(out)
    kind = output_format(out)
    extra = extra or {}
    written = [out]
    if kind != "gpkg":
        for name, part in extra.items():
            written += write_table(part, companion_path(out, name))
    extents = None
    if EXTENT_COLUMN in table.column_names:
        extents = extent_frame(table)
        table = table.drop_columns([EXTENT_COLUMN])
        if kind != "gpkg":
            _write_extent_file(extents, out, kind)
            written.append(extent_path(out))
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
    if kind == "csv":
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            write_csv(fh, table.column_names, _table_rows(table))
    elif kind == "parquet":
        pq.write_table(table, tmp)
    else:
        tmp.unlink(missing_ok=True)
        _write_gpkg(table, tmp, plan, "statistics")
        for name, part in extra.items():
            _write_gpkg(part, tmp, plan, name)
        if extents is not None:
            extents.to_file(tmp, driver="GPKG", layer=EXTENT_LAYER)
    os.replace(tmp, out)
    return written


def _table_rows(table: pa.Table) -> Iterator[tuple[Any, ...]]:
    """The rows of ``table`` as Python values, converted 10,000 at a time."""
    for batch in table.to_batches(max_chunksize=10_000):
        yield from zip(*[c.to_pylist() for c in batch.columns])


def companion_path(out: Path, name: str) -> Path:
    """Where a CSV or Parquet batch output's ``name`` table goes: ``<stem>.<name><suffix>`` beside it."""
    return out.with_name(f"{out.stem}.{name}{out.suffix}")


def output_format(out: str | os.PathLike[str]) -> str:
    """``csv``, ``parquet`` or ``gpkg`` from the file suffix.

    >>> output_format("stats.parquet")
    'parquet'
    """
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise InvalidRequestError(f"out: unknown format {suffix or Path(out).name!r}; expected a file ending in "
                                  f"{', '.join(FORMATS)}")
    return FORMATS[suffix]


def _write_gpkg(table: pa.Table, path: Path, plan: BatchPlan | None, layer: str) -> None:
    """A GeoPackage ``layer`` with the table's types (integers, booleans and reals, nulls kept) and each
    row's polygon in EPSG:4326 (none for a polygon that could not be used)."""
    import geopandas as gpd
    import pandas as pd

    frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}.get)
    geometries = row_polygons(table, plan) if plan is not None else [None] * table.num_rows
    gpd.GeoDataFrame(frame, geometry=geometries, crs="EPSG:4326").to_file(path, driver="GPKG", layer=layer)


def extent_path(out: str | os.PathLike[str]) -> Path:
    """The extent file beside a CSV or Parquet output ``out`` (a GeoPackage holds it as a layer).

    >>> extent_path("runs/stats.parquet").as_posix()
    'runs/stats.water_extent.parquet'
    """
    out = Path(out)
    return out if output_format(out) == "gpkg" else companion_path(out, EXTENT_LAYER)


def extent_frame(table: pa.Table) -> geopandas.GeoDataFrame:
    """The water extents of a batch table: one row per polygon id and date with an extent (the
    :data:`EXTENT_FIELDS` and the polygon as ``geometry``, EPSG:4326)."""
    import geopandas as gpd

    kept = table.filter(pc.is_valid(table.column(EXTENT_COLUMN)))
    frame = kept.select(list(EXTENT_FIELDS)).to_pandas()
    geometry = shapely.from_wkb(kept.column(EXTENT_COLUMN).to_pylist())
    return gpd.GeoDataFrame(frame, geometry=list(geometry), crs="EPSG:4326")


def extent_to_csv(parquet: Path, out: Path) -> None:
    """Rewrite an extent GeoParquet file as the extent CSV (polygons as WKT) at ``out``."""
    import geopandas as gpd

    _write_extent_file(gpd.read_parquet(parquet), out, "csv", path=out)


def _write_extent_file(frame: geopandas.GeoDataFrame, out: Path, kind: str, path: Path | None = None) -> None:
    """The extent file beside a CSV or Parquet ``out``: GeoParquet, or CSV with the polygon as WKT."""
    path = path or extent_path(out)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    if kind == "parquet":
        frame.to_parquet(tmp)
    else:
        wkt = frame.geometry.to_wkt(rounding_precision=-1).tolist()  # full precision, as the GeoParquet holds it
        names = [str(c) for c in frame.columns if c != "geometry"]
        columns = [frame[c].tolist() for c in names] + [wkt]
        with tmp.open("w", newline="", encoding="utf-8") as fh:  # ids made safe as in the statistics CSV
            write_csv(fh, [*names, "geometry"], zip(*columns))
    os.replace(tmp, path)


def row_polygons(table: pa.Table, plan: BatchPlan) -> list[BaseGeometry | None]:
    """Each row's polygon in EPSG:4326 (None for a polygon that could not be used)."""
    by_id = {poly.id: area.wgs84 for poly, area in zip(plan.polygons, plan.areas) if area is not None}
    return [by_id.get(i) for i in table.column(ID_COLUMN).to_pylist()]


def failed_task_table(plan: BatchPlan, task: BatchTask, exc: BaseException) -> pa.Table:
    message = f"internal error computing this date ({type(exc).__name__}); rerun the batch to retry"
    entry = DateResult(date=task.date, datetime=dt.datetime.combine(task.date, dt.time(), dt.UTC),
                       scenes=task.tiles, error=message)
    return task_table(plan, [(i, entry) for i in task.polygons])
