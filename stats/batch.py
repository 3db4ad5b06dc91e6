"""Statistics for many polygons at once, grouped by acquisition so each tile is read once for all of them.

A batch is planned as tasks: one per acquisition date and set of tiles, holding every polygon those tiles
cover (split into tasks of at most :data:`MAX_TASK_POLYGONS` polygons, in spatial order). A task
reads each internal tile (block) of each band COG that holds a pixel of one of its polygons exactly once,
takes the pixels of all its polygons from it by index, and computes every polygon's statistics together (:func:`stats.zonal.grouped_summary`); the averaged pixels of all its polygons go to
s2cloudless in one call. The answers equal those of :func:`stats.pipeline.query_timeseries` for each
polygon: same pixels (pixel centres, 20/60 m bands by nearest), same harmonisation, same statistics.

Options that need more than band values (per-pixel clouds, water, histograms, resolutions other than
10 m, tiles of one date in different CRSs) are answered polygon by polygon with the time-series engine
itself, so they are slower but the same.

:func:`compute_batch` runs the tasks in this process; :func:`run_batch` runs them on Dask distributed
(a LocalCluster, or an existing scheduler), writes each finished task to a part file so that a rerun
resumes, and assembles the output (CSV, Parquet or GeoPackage).
"""

from __future__ import annotations

import csv
import ctypes
import datetime as dt
import hashlib
import json
import logging
import math
import os
import shutil
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import rasterio
import shapely
from affine import Affine
from pyproj import CRS
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from .archive.catalog import Acquisition, Archive
from .bands import MODEL_BANDS, QUANTIFICATION_VALUE, S2_BANDS
from .cloud import CloudModel, default_model
from .datasets import DatasetPool
from .errors import InvalidRequestError, SceneReadError, StatsError
from .geometry import DEFAULT_MAX_VERTICES, parse_geometry, reproject
from .indices import IndexSpec
from .models import DateResult, TimeSeriesRequest, TimeSeriesResult, csv_cell, names
from .raster import Grid, _aligned, _band_shape, _crs, _pixel_size_10m, open_band, polygon_mask, query_grid
from .zonal import grouped_summary

log = logging.getLogger(__name__)

#: Most polygons in one task (one date).
MAX_TASK_POLYGONS = 5000
#: GDAL block cache (MiB) while a task reads: each tile is read once, so a large cache only costs memory.
BATCH_GDAL_CACHE_MB = 64
#: Output formats by file suffix.
FORMATS = {".csv": "csv", ".parquet": "parquet", ".gpkg": "gpkg"}
#: Columns before the time-series CSV columns.
ID_COLUMN = "id"
_ORDER_COLUMN = "_polygon"

_WGS84 = CRS.from_epsg(4326)


@dataclass(frozen=True)
class BatchPolygon:
    """One input polygon: its ``id`` (kept as given), a shapely geometry and the geometry's CRS."""

    id: Any
    geometry: BaseGeometry | None
    crs: str = "EPSG:4326"
    error: str | None = None  # why the input row has no usable geometry


@dataclass(frozen=True)
class BatchTask:
    """The polygons (indices into the batch) to compute on one date's tiles."""

    key: str
    date: dt.date
    tiles: tuple[str, ...]
    polygons: tuple[int, ...]


@dataclass
class BatchPlan:
    """What a batch will compute: validated polygons (in the grid-independent CRS they came in),
    the request options, and the tasks."""

    polygons: list[BatchPolygon]
    request: TimeSeriesRequest
    tasks: list[BatchTask]
    invalid: dict[int, str] = field(default_factory=dict)  # polygon index -> error
    archive_href: str = ""
    key: str = ""  # identifies the polygons (digest of ids, geometries and CRSs)

    def columns(self) -> list[str]:
        """Output columns: ``id``, then the time-series CSV columns."""
        return [ID_COLUMN] + _template(self.request).columns()


@dataclass(frozen=True)
class BatchSummary:
    """What :func:`run_batch` did."""

    out: Path
    polygons: int
    tasks: int
    skipped_tasks: int
    rows: int
    failed_polygons: int
    error_rows: int
    seconds: float


# --------------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------------

def read_polygons(path: str | os.PathLike[str], *, id_field: str | None = None, wkt_field: str | None = None,
                  crs: str | None = None) -> list[BatchPolygon]:
    """Read polygons from GeoJSON, GeoPackage (or any vector format GDAL reads) or CSV with a WKT column.

    The id is the ``id_field`` attribute (default ``id`` when present), else the feature's position
    (0-based). A CSV's WKT column is ``wkt_field`` (default: ``wkt``, ``WKT``, ``geometry`` or ``geom``)
    and its CRS ``crs`` (default EPSG:4326); a vector file's CRS comes from the file (``crs`` overrides).
    A row whose geometry cannot be read is kept with ``error`` set, so the output says why.

    :raises InvalidRequestError: when the file cannot be read or has no such column.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidRequestError(f"polygons: {str(path)!r} is not a file; expected GeoJSON, GeoPackage or CSV")
    if path.suffix.lower() in (".csv", ".txt"):
        return _read_csv(path, id_field=id_field, wkt_field=wkt_field, crs=crs or "EPSG:4326")
    return _read_vector(path, id_field=id_field, crs=crs)


def _read_csv(path: Path, *, id_field: str | None, wkt_field: str | None, crs: str) -> list[BatchPolygon]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        wkt_col = wkt_field or next((c for c in ("wkt", "WKT", "geometry", "geom") if c in header), None)
        if wkt_col is None or wkt_col not in header:
            raise InvalidRequestError(
                f"polygons: CSV columns {header} have no WKT column {wkt_field or ''!r}; expected one named "
                "wkt, geometry or geom, or --wkt-column NAME")
        id_col = _id_column(header, id_field)
        out = []
        for i, row in enumerate(reader):
            pid: Any = row[id_col] if id_col else i
            text = (row.get(wkt_col) or "").strip()
            try:
                geom = shapely.from_wkt(text)
            except shapely.errors.GEOSException as exc:
                out.append(BatchPolygon(pid, None, crs, f"geometry: not valid WKT ({exc})"))
                continue
            out.append(BatchPolygon(pid, geom, crs))
    return out


def _id_column(header: Sequence[str], id_field: str | None) -> str | None:
    if id_field is not None and id_field not in header:
        raise InvalidRequestError(f"polygons: no id column {id_field!r}; the columns are {list(header)}")
    return id_field or ("id" if "id" in header else None)


def _read_vector(path: Path, *, id_field: str | None, crs: str | None) -> list[BatchPolygon]:
    import pyogrio.raw
    from pyogrio.errors import DataSourceError

    try:
        meta, _, geometries, columns = pyogrio.raw.read(path)
    except (DataSourceError, OSError, ValueError) as exc:
        raise InvalidRequestError(f"polygons: cannot read {path.name!r} as a vector file ({exc})") from exc
    fields = [str(f) for f in meta["fields"]]
    id_col = _id_column(fields, id_field)
    ids = list(columns[fields.index(id_col)]) if id_col else list(range(len(geometries)))
    file_crs = crs or meta.get("crs") or "EPSG:4326"
    out = []
    for pid, wkb in zip(ids, geometries):
        pid = pid.item() if isinstance(pid, np.generic) else pid
        if wkb is None:
            out.append(BatchPolygon(pid, None, file_crs, "geometry: missing"))
            continue
        out.append(BatchPolygon(pid, shapely.from_wkb(wkb), file_crs))
    return out


# --------------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------------

def batch_request(options: Mapping[str, Any] | None, start: str | dt.datetime, end: str | dt.datetime,
                  ) -> TimeSeriesRequest:
    """The time-series request every polygon is answered with (``options``: its fields but geometry)."""
    body = dict(options or {})
    for key in ("geometry", "time", "crs"):
        if key in body:
            raise InvalidRequestError(f"options: {key!r} is set per batch, not in the options")
    iso = [t.isoformat() if isinstance(t, dt.datetime) else t for t in (start, end)]
    body.update(geometry="POINT (0 0)", time={"from": iso[0], "to": iso[1]})
    return TimeSeriesRequest.from_dict(body)


def plan_batch(archive: Archive, polygons: Sequence[BatchPolygon], request: TimeSeriesRequest, *,
               max_vertices: int = DEFAULT_MAX_VERTICES) -> BatchPlan:
    """Validate the polygons and group them into tasks by date and tiles."""
    invalid: dict[int, str] = {}
    wgs84: list[BaseGeometry | None] = []
    valid_polygons = []
    for i, poly in enumerate(polygons):
        if poly.geometry is None:
            invalid[i] = poly.error or "geometry: missing"
            wgs84.append(None)
            valid_polygons.append(poly)
            continue
        try:
            geom, crs = parse_geometry(mapping(poly.geometry), poly.crs, max_vertices=max_vertices)
            valid_polygons.append(replace(poly, geometry=geom, crs=crs.to_string()))
            wgs84.append(reproject(geom, crs, _WGS84))
        except StatsError as exc:
            invalid[i] = str(exc)
            wgs84.append(None)
            valid_polygons.append(poly)
    candidates = [a for a in archive.acquisitions if request.start <= a.datetime <= request.end and not (
        request.max_cloud_cover is not None and a.cloud_cover is not None
        and a.cloud_cover > request.max_cloud_cover)]
    ok = [i for i, g in enumerate(wgs84) if g is not None]
    shapes = np.array([wgs84[i] for i in ok], dtype=object)
    by_date: dict[dt.date, list[Acquisition]] = defaultdict(list)
    for acq in candidates:
        by_date[acq.date].append(acq)
    tasks: list[BatchTask] = []
    for day in sorted(by_date):
        tiles = sorted(by_date[day], key=lambda a: (a.datetime, a.id))
        hits = np.array([shapely.intersects(t.footprint, shapes) for t in tiles]).reshape(len(tiles), len(ok))
        groups: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for col, i in enumerate(ok):
            ids = tuple(t.id for t, hit in zip(tiles, hits[:, col]) if hit)
            if ids:
                groups[ids].append(i)
        for ids, members in groups.items():
            members = _spatial_order(members, wgs84)
            for start in range(0, len(members), MAX_TASK_POLYGONS):
                part = tuple(members[start:start + MAX_TASK_POLYGONS])
                digest = hashlib.sha1(json.dumps([list(ids), list(part)]).encode()).hexdigest()[:12]
                tasks.append(BatchTask(f"{day.isoformat()}_{digest}", day, ids, part))
    return BatchPlan(valid_polygons, request, tasks, invalid, archive.href or "", _polygons_key(valid_polygons))


def _polygons_key(polygons: Sequence[BatchPolygon]) -> str:
    h = hashlib.sha256()
    for p in polygons:
        h.update(repr(p.id).encode())
        h.update(shapely.to_wkb(p.geometry) if p.geometry is not None else b"-")
        h.update(p.crs.encode())
    return h.hexdigest()


def _spatial_order(members: list[int], wgs84: Sequence[BaseGeometry | None]) -> list[int]:
    """Polygons sorted by the centre of their bounds, in rows of about 0.1 degree (so that a task split in
    parts keeps neighbours together)."""
    def key(i: int) -> tuple[int, float]:
        geom = wgs84[i]
        assert geom is not None
        minx, miny, maxx, maxy = geom.bounds
        return (-math.floor((miny + maxy) * 5), (minx + maxx) / 2)
    return sorted(members, key=key)


# --------------------------------------------------------------------------------------------------
# One task
# --------------------------------------------------------------------------------------------------

@lru_cache(maxsize=4)
def _archive(href: str) -> Archive:
    return Archive.open(href)


def _template(request: TimeSeriesRequest) -> TimeSeriesResult:
    pixel = request.cloud.pixel or request.water is not None or any(s.cloud_layers for s in request.indices)
    return TimeSeriesResult(series=(), bands=request.bands, indices=names(request.indices),
                            statistics=request.statistics, acquisitions=0, pixel_cloud=pixel,
                            water=request.water is not None)


def _fast(request: TimeSeriesRequest, tiles: Sequence[Acquisition]) -> bool:
    """Whether the vectorised path answers this request (else the time-series engine, polygon by polygon)."""
    template = _template(request)
    return (request.resolution == 10 and not request.exact and not template.pixel_cloud and not template.water
            and request.histogram is None and len({_crs(t.crs) for t in tiles}) == 1)


def run_task(plan: BatchPlan, task: BatchTask, *, model: CloudModel | None = None,
             archive: Archive | None = None) -> pa.Table:
    """Compute one task: a table of rows (``_polygon`` index, ``id``, then the time-series columns)."""
    archive = archive or _archive(plan.archive_href)
    by_id = {a.id: a for a in archive.acquisitions}
    tiles = [by_id[t] for t in task.tiles]
    model = model or default_model()
    try:
        try:
            if not _fast(plan.request, tiles):
                raise _NotAligned
            with rasterio.Env(GDAL_CACHEMAX=BATCH_GDAL_CACHE_MB):
                results = _task_vectorised(plan, task, tiles, model)
        except _NotAligned:
            results = _task_per_polygon(plan, task, tiles, model, archive)
    except SceneReadError as exc:
        log.warning("date %s: %s", task.date, exc)
        failed = DateResult(date=tiles[0].date, datetime=tiles[0].datetime, scenes=task.tiles, error=str(exc))
        results = {i: failed for i in task.polygons}
    finally:
        _trim_memory()
    return _table(plan, [(i, entry) for i in task.polygons if (entry := results.get(i)) is not None])


def _trim_memory() -> None:
    """Hand freed heap memory back to the system (glibc keeps the pages of a task's large temporary
    arrays otherwise, and a long batch's resident size creeps up); a no-op where there is no glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.malloc_trim(0)


def _task_per_polygon(plan: BatchPlan, task: BatchTask, tiles: list[Acquisition], model: CloudModel,
                      archive: Archive) -> dict[int, DateResult | None]:
    """The time-series engine itself on each polygon, over this date's tiles only."""
    from .pipeline import query_timeseries

    first, last = min(t.datetime for t in tiles), max(t.datetime for t in tiles)
    out: dict[int, DateResult | None] = {}
    for i in task.polygons:
        poly = plan.polygons[i]
        assert poly.geometry is not None
        request = replace(plan.request, geometry=mapping(poly.geometry), crs=poly.crs, start=first, end=last)
        result = query_timeseries(request, archive, model=model)
        out[i] = result.series[0] if result.series else None
    return out


#: Batch reads do not keep datasets open: every tile is read once, so GDAL's block cache would only grow.
_UNPOOLED = DatasetPool(size=0)


class _NotAligned(Exception):
    """A band that the vectorised path cannot read by index (another grid): use the per-polygon path."""


@dataclass
class _Pixels:
    """The pixels of all polygons of a task: centre coordinates, the polygon (position) of each, and
    per polygon the count of pixels inside."""

    xs: np.ndarray
    ys: np.ndarray
    labels: np.ndarray
    inside: np.ndarray
    lookups: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, int, int, int]]]] = \
        field(default_factory=dict)


def _task_vectorised(plan: BatchPlan, task: BatchTask, tiles: list[Acquisition],
                     model: CloudModel) -> dict[int, DateResult | None]:
    request = plan.request
    specs = list(request.indices)
    wanted = set(request.bands) | {b for s in specs for b in s.bands} | set(MODEL_BANDS)
    bands = [b for b in S2_BANDS if b in wanted]
    primary = tiles[0]
    grid_crs = _crs(primary.crs)
    shapes = [_band_shape(primary, b, _UNPOOLED) for b in bands]
    finest = min(shapes, key=lambda s: abs(s.transform.a))
    anchor = finest.transform
    pixel = _pixel_size_10m(anchor)
    n = len(task.polygons)
    pixels = _task_pixels(plan, task.polygons, anchor, grid_crs, pixel)
    labels = pixels.labels
    inside = pixels.inside
    total = labels.size
    dn = {b: np.zeros(total, dtype=np.float32) for b in bands}
    offsets = np.zeros(total, dtype=np.float32)
    filled = np.zeros(total, dtype=bool)
    scenes: list[set[str]] = [set() for _ in range(n)]
    from .datasets import map_threads

    grid = Grid(grid_crs, Affine(pixel[0], 0.0, anchor.c, 0.0, -pixel[1], anchor.f), (1, 1))
    for acq in tiles:
        if _crs(acq.crs) != grid_crs:  # not reached: _fast() sends such dates to the per-polygon path
            raise _NotAligned
        arrays = map_threads(lambda band: _gather(acq, band, pixels, grid), bands)
        has = np.logical_and.reduce([a > 0 for a in arrays]) & ~filled
        if not has.any():
            continue
        for band, arr in zip(bands, arrays):
            values = arr[has]
            if acq.dn_offset:
                values = np.maximum(values - acq.dn_offset, 0)
            dn[band][has] = values
        if acq.dn_offset:
            offsets[has] = acq.dn_offset
        filled |= has
        for pos in np.unique(labels[has]).tolist():
            scenes[pos].add(acq.id)

    valid_labels = labels[filled]
    valid_count = np.bincount(valid_labels, minlength=n)
    valid_offsets = offsets[filled]

    def harmonised(band: str) -> np.ndarray:
        return dn[band][filled].astype(np.float64) / QUANTIFICATION_VALUE

    def reported(band: str) -> np.ndarray:  # one band at a time, so that 13 float64 copies never coexist
        if request.harmonize:
            return harmonised(band)
        return (dn[band][filled] + valid_offsets).astype(np.float64) / QUANTIFICATION_VALUE

    probability = np.full(n, np.nan)
    if request.cloud.averaged and valid_count.any():
        sums = np.stack([np.bincount(valid_labels, weights=harmonised(b), minlength=n) for b in MODEL_BANDS],
                        axis=1)
        scored = valid_count > 0
        probability[scored] = np.asarray(model.probability(sums[scored] / valid_count[scored, None]),
                                         dtype=np.float64)

    band_stats = {b: grouped_summary(reported(b), valid_labels, n, request.statistics,
                                     keys=_dn_keys(dn[b][filled], valid_offsets, request.harmonize))
                  for b in request.bands}
    index_stats = {spec.name: _index_stats(spec, {b: reported(b) for b in spec.bands}, valid_labels, n,
                                           request.statistics) for spec in specs}
    first = tiles[0]
    out: dict[int, DateResult | None] = {}
    threshold = request.cloud.threshold
    for pos, i in enumerate(task.polygons):
        count = int(valid_count[pos])
        if count == 0 and not request.include_empty:
            out[i] = None
            continue
        p = None if math.isnan(probability[pos]) else float(probability[pos])
        entry = DateResult(
            date=first.date, datetime=first.datetime,
            scenes=tuple(t.id for t in tiles if t.id in scenes[pos]) or (first.id,),
            cloud_probability=p, cloudy=None if p is None else p >= threshold,
            valid_pixels=count, nodata_pixels=int(inside[pos]) - count,
            bands={b: _row_stats(band_stats[b], pos, request.statistics) for b in request.bands},
            indices={s: _row_stats(index_stats[s], pos, request.statistics) for s in index_stats},
        )
        max_p = request.cloud.max_probability
        out[i] = None if (max_p is not None and p is not None and p > max_p) else entry
    return out


def _dn_keys(dn: np.ndarray, offsets: np.ndarray, harmonize: bool) -> np.ndarray:
    """Band values as uint16 DN (they are whole DN in [0, 65535] on the 10 m grid), to sort by radix."""
    return (dn if harmonize else dn + offsets).astype(np.uint16)


def _index_stats(spec: IndexSpec, reflectance: Mapping[str, np.ndarray], labels: np.ndarray, n: int,
                 statistics: Sequence[str]) -> dict[str, np.ndarray]:
    values = spec.evaluate({b: reflectance[b] for b in spec.bands})
    finite = np.isfinite(values)
    return grouped_summary(values[finite], labels[finite], n, statistics)


def _row_stats(table: Mapping[str, np.ndarray], pos: int, statistics: Sequence[str]) -> dict[str, float | int | None]:
    row: dict[str, float | int | None] = {}
    for s in statistics:
        value = float(table[s][pos])
        if s == "count":
            row[s] = int(value)
        else:
            row[s] = None if math.isnan(value) else value
    return row


_PIXELS: OrderedDict[tuple[Any, ...], _Pixels] = OrderedDict()
_PIXELS_LOCK = threading.Lock()
#: Pixel sets kept per process: the tasks of other dates on the same tile grid reuse them.
PIXEL_CACHE_SIZE = 8


def _task_pixels(plan: BatchPlan, members: tuple[int, ...], anchor: Any, crs: CRS,
                 pixel: tuple[float, float]) -> _Pixels:
    """The pixels of the task's polygons on this tile grid, computed once per grid and polygon set."""
    key = (plan.key, members, tuple(anchor)[:6], crs.to_wkt(), pixel)
    with _PIXELS_LOCK:
        cached = _PIXELS.get(key)
        if cached is not None:
            _PIXELS.move_to_end(key)
            return cached
    geoms = []
    for i in members:
        geometry = plan.polygons[i].geometry
        assert geometry is not None
        geoms.append(reproject(geometry, _crs(plan.polygons[i].crs), crs))
    pixels = _polygon_pixels(geoms, anchor, crs, pixel)
    with _PIXELS_LOCK:
        _PIXELS[key] = pixels
        while len(_PIXELS) > PIXEL_CACHE_SIZE:
            _PIXELS.popitem(last=False)
    return pixels


def _polygon_pixels(geoms: Sequence[BaseGeometry], anchor: Any, crs: CRS, pixel: tuple[float, float]) -> _Pixels:
    """The pixel centres of every polygon (pixel-centre rule, as :func:`stats.raster.polygon_mask`), on the
    tile's 10 m lattice, each polygon rasterised over its own bounding box only."""
    xs_parts, ys_parts, label_parts = [], [], []
    inside = np.zeros(len(geoms), dtype=np.int64)
    for pos, geom in enumerate(geoms):
        own = query_grid(anchor, crs, pixel, geom, max_pixels=2**62)
        rows, cols = np.nonzero(polygon_mask(geom, own))
        t = own.transform
        xs_parts.append(t.c + (cols + 0.5) * t.a)
        ys_parts.append(t.f + (rows + 0.5) * t.e)
        label_parts.append(np.full(rows.size, pos, dtype=np.intp))
        inside[pos] = rows.size
    if not geoms:
        return _Pixels(np.zeros(0), np.zeros(0), np.zeros(0, np.intp), inside)
    return _Pixels(np.concatenate(xs_parts), np.concatenate(ys_parts), np.concatenate(label_parts), inside)


def _gather(acq: Acquisition, band: str, pixels: _Pixels, grid: Grid) -> np.ndarray:
    """The band's values (float32 DN, 0 outside the tile) at the polygons' pixels, each from the band pixel
    containing the pixel's centre (nearest neighbour, as :func:`stats.raster.read_date`). Each internal
    tile of the COG that holds a pixel is read (and decoded) exactly once."""

    from rasterio.windows import Window

    out = np.zeros(pixels.labels.size, dtype=np.float32)
    with open_band(acq, band, _UNPOOLED) as src:
        t = src.transform
        if not _aligned(t, grid, True) or t.a < grid.transform.a - 1e-9:
            raise _NotAligned
        bh, bw = src.block_shapes[0]
        key = (tuple(t)[:6], src.width, src.height, bh, bw)
        lookup = pixels.lookups.get(key)
        if lookup is None:
            lookup = pixels.lookups[key] = _block_lookup(pixels, t, src.width, src.height, bh, bw)
        order, brow, bcol, blocks = lookup
        try:
            for start, stop, r0, c0 in blocks:
                window = Window(c0, r0, min(bw, src.width - c0), min(bh, src.height - r0))
                block = src.read(1, window=window)
                idx = order[start:stop]
                out[idx] = block[brow[idx] - r0, bcol[idx] - c0]
        except rasterio.errors.RasterioError as exc:
            log.warning("scene %s band %s: %s", acq.id, band, exc)
            raise SceneReadError(f"scene {acq.id}: band {band} cannot be read (corrupt data)") from exc
    return out


def _block_lookup(pixels: _Pixels, t: Any, width: int, height: int, bh: int,
                  bw: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, int, int, int]]]:
    """For a band grid: the band pixel (row, col) of every polygon pixel, the pixels sorted by internal
    tile, and per tile the (start, stop) of its run in that order and its top-left band pixel."""
    brow = np.floor((pixels.ys - t.f) / t.e).astype(np.intp)
    bcol = np.floor((pixels.xs - t.c) / t.a).astype(np.intp)
    on = np.flatnonzero((brow >= 0) & (brow < height) & (bcol >= 0) & (bcol < width))
    tiles_across = -(-width // bw)
    block = (brow[on] // bh) * tiles_across + bcol[on] // bw
    by_block = np.argsort(block, kind="stable")
    order = on[by_block]
    ids, starts, counts = np.unique(block[by_block], return_index=True, return_counts=True)
    blocks = [(int(s), int(s + c), int(b // tiles_across) * bh, int(b % tiles_across) * bw)
              for b, s, c in zip(ids.tolist(), starts.tolist(), counts.tolist())]
    return order, brow, bcol, blocks


# --------------------------------------------------------------------------------------------------
# Tables and output
# --------------------------------------------------------------------------------------------------

def _table(plan: BatchPlan, entries: Iterable[tuple[int, DateResult]]) -> pa.Table:
    """Rows of (polygon index, date result) as an Arrow table with the batch's columns."""
    template = _template(plan.request)
    order: list[int] = []
    rows: list[list[Any]] = []
    for i, entry in entries:
        result = replace(template, series=(entry,))
        order.append(i)
        rows.append([plan.polygons[i].id] + result.to_rows()[0])
    return _to_arrow(plan, order, rows)


def _error_table(plan: BatchPlan) -> pa.Table:
    """One row per invalid polygon: its id and the error, everything else empty."""
    width = len(plan.columns())
    rows = [[plan.polygons[i].id] + [None] * (width - 2) + [message] for i, message in sorted(plan.invalid.items())]
    return _to_arrow(plan, sorted(plan.invalid), rows)


def _schema(plan: BatchPlan) -> pa.Schema:
    ids = [p.id for p in plan.polygons]
    id_type = pa.int64() if ids and all(isinstance(v, int) and not isinstance(v, bool) for v in ids) else pa.string()
    fields = [pa.field(_ORDER_COLUMN, pa.int64()), pa.field(ID_COLUMN, id_type)]
    for name in plan.columns()[1:]:
        if name in ("date", "error", "warning", "water_flag"):
            kind = pa.string()
        elif name in ("cloudy",):
            kind = pa.bool_()
        elif name in ("valid_pixels", "nodata_pixels", "clear_pixels", "cloudy_pixels") or (
                name.endswith("_count") and not plan.request.exact):  # exact mode: count is an area
            kind = pa.int64()
        else:
            kind = pa.float64()
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


def _to_arrow(plan: BatchPlan, order: list[int], rows: list[list[Any]]) -> pa.Table:
    schema = _schema(plan)
    columns: list[list[Any]] = [order] + [list(col) for col in zip(*rows)] if rows else [[] for _ in schema]
    if schema.field(ID_COLUMN).type == pa.string() and rows:
        columns[1] = [None if v is None else str(v) for v in columns[1]]
    return pa.Table.from_arrays([pa.array(col, type=f.type) for col, f in zip(columns, schema)], schema=schema)


def compute_batch(archive: Archive | str | os.PathLike[str], polygons: str | os.PathLike[str] | Sequence[BatchPolygon],
                  start: str | dt.datetime, end: str | dt.datetime, *, options: Mapping[str, Any] | None = None,
                  model: CloudModel | None = None) -> pa.Table:
    """Run a batch in this process and return its rows (``id``, then the time-series columns), ordered
    by polygon (input order) and date."""
    arch = archive if isinstance(archive, Archive) else Archive.open(archive)
    polys = read_polygons(polygons) if isinstance(polygons, (str, os.PathLike)) else list(polygons)
    plan = plan_batch(arch, polys, batch_request(options, start, end))
    tables = [_error_table(plan)] + [run_task(plan, task, model=model, archive=arch) for task in plan.tasks]
    return _finish_table(pa.concat_tables(tables))


def _finish_table(table: pa.Table) -> pa.Table:
    table = table.sort_by([(_ORDER_COLUMN, "ascending"), ("date", "ascending")])
    return table.drop_columns([_ORDER_COLUMN])


def write_table(table: pa.Table, out: str | os.PathLike[str], polygons: Sequence[BatchPolygon] | None = None) -> None:
    """Write ``table`` to ``out``: CSV (``true``/``false``, empty cells for nulls), Parquet or GeoPackage
    (each row with its polygon, in EPSG:4326). The file appears only once complete."""
    out = Path(out)
    kind = output_format(out)
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
    if kind == "csv":
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(table.column_names)
            for batch in table.to_batches(max_chunksize=10_000):
                columns = [c.to_pylist() for c in batch.columns]
                writer.writerows([csv_cell(v) for v in row] for row in zip(*columns))
    elif kind == "parquet":
        pq.write_table(table, tmp)
    else:
        _write_gpkg(table, tmp, polygons or [])
    os.replace(tmp, out)


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


def _write_gpkg(table: pa.Table, path: Path, polygons: Sequence[BatchPolygon]) -> None:
    import pyogrio.raw

    by_id: dict[Any, BaseGeometry | None] = {}
    for poly in polygons:
        if poly.geometry is not None and poly.error is None:
            by_id[poly.id] = reproject(poly.geometry, _crs(poly.crs), _WGS84)
    ids = table.column(ID_COLUMN).to_pylist()
    geometries = np.array([shapely.to_wkb(by_id[i]) if by_id.get(i) is not None else None for i in ids], dtype=object)
    fields = table.column_names
    data = [np.array(table.column(f).to_pylist(), dtype=object) for f in fields]
    pyogrio.raw.write(path, geometries, data, fields, driver="GPKG", geometry_type="Unknown", crs="EPSG:4326",
                      layer="statistics")


# --------------------------------------------------------------------------------------------------
# Dask
# --------------------------------------------------------------------------------------------------

def _task_payload(plan: BatchPlan, task: BatchTask) -> BatchPlan:
    """A plan holding only this task's polygons (what a worker needs), so tasks ship small."""
    keep = set(task.polygons)
    polygons = [p if i in keep else BatchPolygon(p.id, None, p.crs) for i, p in enumerate(plan.polygons)]
    return BatchPlan(polygons, plan.request, [task], {}, plan.archive_href, plan.key)


def _run_remote(plan: BatchPlan, task: BatchTask) -> pa.Table:
    return run_task(plan, task)


def _digest(plan: BatchPlan, start: Any, end: Any, options: Mapping[str, Any] | None) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"archive": plan.archive_href, "start": str(start), "end": str(end),
                         "options": options or {}}, sort_keys=True, default=str).encode())
    h.update(plan.key.encode())
    return h.hexdigest()


def run_batch(
    archive: Archive | str | os.PathLike[str],
    polygons: str | os.PathLike[str] | Sequence[BatchPolygon],
    start: str | dt.datetime,
    end: str | dt.datetime,
    out: str | os.PathLike[str],
    *,
    options: Mapping[str, Any] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool | Callable[[int, int], None] = True,
    id_field: str | None = None,
    wkt_field: str | None = None,
    crs: str | None = None,
) -> BatchSummary:
    """Run a batch on Dask distributed and write ``out`` (.csv, .parquet or .gpkg).

    Finished tasks are kept as Parquet parts in ``<out>.parts/``; a rerun of the same batch (same archive,
    polygons, range and options) skips them, and a changed batch starts afresh. ``scheduler`` is the
    address of a running Dask scheduler (its workers must reach the archive); without it a LocalCluster of
    ``workers`` processes (default: the CPU count) runs here, and ``workers=0`` runs the tasks in this
    process without Dask. ``progress`` shows a progress bar (True) or is called with (done, total) tasks.
    """
    began = time.monotonic()
    out = Path(out)
    output_format(out)
    arch = archive if isinstance(archive, Archive) else Archive.open(archive)
    if not arch.href:
        raise InvalidRequestError("archive: a batch needs an archive opened from a folder or URL")
    polys = (read_polygons(polygons, id_field=id_field, wkt_field=wkt_field, crs=crs)
             if isinstance(polygons, (str, os.PathLike)) else list(polygons))
    plan = plan_batch(arch, polys, batch_request(options, start, end))
    for i, message in sorted(plan.invalid.items()):
        log.warning("polygon %r: %s", plan.polygons[i].id, message)
    parts = out.with_name(out.name + ".parts")
    digest = _digest(plan, start, end, options)
    manifest = parts / "manifest.json"
    if parts.is_dir() and (not manifest.is_file() or json.loads(manifest.read_text()).get("digest") != digest):
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"digest": digest, "tasks": len(plan.tasks)}))
    todo = [t for t in plan.tasks if not (parts / f"{t.key}.parquet").is_file()]
    skipped = len(plan.tasks) - len(todo)
    report = _progress(progress, len(plan.tasks), skipped)
    failed: dict[str, pa.Table] = {}
    if todo and workers == 0 and not scheduler:
        for task in todo:
            _write_part(parts, task, run_task(plan, task, archive=arch))
            report(1)
    elif todo:
        _run_on_dask(plan, todo, parts, scheduler, workers, report, failed)
    report(None)
    tables = [_error_table(plan)] + [failed[t.key] if t.key in failed else pq.read_table(parts / f"{t.key}.parquet")
                                     for t in plan.tasks]
    table = _finish_table(pa.concat_tables(tables))
    write_table(table, out, plan.polygons)
    if not failed:
        shutil.rmtree(parts)
    errors = table.column("error").drop_null()
    return BatchSummary(out=out, polygons=len(plan.polygons), tasks=len(plan.tasks), skipped_tasks=skipped,
                        rows=table.num_rows, failed_polygons=len(plan.invalid), error_rows=len(errors),
                        seconds=time.monotonic() - began)


def _progress(progress: bool | Callable[[int, int], None], total: int, done: int) -> Callable[[int | None], None]:
    """A callback taking the number of newly finished tasks (None at the end)."""
    if callable(progress):
        state = {"done": done}
        progress(done, total)

        def call(step: int | None) -> None:
            if step:
                state["done"] += step
                progress(state["done"], total)
        return call
    from tqdm import tqdm

    bar = tqdm(total=total, initial=done, unit="task", desc="batch", disable=not progress)

    def update(step: int | None) -> None:
        if step is None:
            bar.close()
        else:
            bar.update(step)
    return update


def _run_on_dask(plan: BatchPlan, todo: list[BatchTask], parts: Path, scheduler: str | None,
                 workers: int | None, report: Callable[[int | None], None], failed: dict[str, pa.Table]) -> None:
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        n = workers or os.cpu_count() or 1
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               env={"GDAL_CACHEMAX": os.environ.get("GDAL_CACHEMAX", str(BATCH_GDAL_CACHE_MB))})
        client = Client(cluster)
    try:
        futures = {client.submit(_run_remote, _task_payload(plan, task), task, pure=False, key=f"polyfis-{task.key}"):
                   task for task in todo}
        for future in as_completed(futures):
            task = futures[future]
            try:
                table = future.result()
            except Exception as exc:  # a worker died or the task failed: its rows say so, the batch goes on
                log.error("task %s (%s, %d polygons) failed: %s", task.key, task.date, len(task.polygons), exc)
                failed[task.key] = _failed_task_table(plan, task, exc)  # not kept: a rerun retries it
                report(1)
                continue
            _write_part(parts, task, table)
            report(1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _write_part(parts: Path, task: BatchTask, table: pa.Table) -> None:
    tmp = parts / f"{task.key}.parquet.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, parts / f"{task.key}.parquet")


def _failed_task_table(plan: BatchPlan, task: BatchTask, exc: BaseException) -> pa.Table:
    message = f"internal error computing this date ({type(exc).__name__}); rerun the batch to retry"
    entry = DateResult(date=task.date, datetime=dt.datetime.combine(task.date, dt.time(), dt.timezone.utc),
                       scenes=task.tiles, error=message)
    return _table(plan, [(i, entry) for i in task.polygons])
