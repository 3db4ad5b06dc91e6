"""One batch task: the polygons of one date's tiles, computed together.

The vectorised path (:func:`run_task` when the options allow it) reads each internal tile once for all the
task's polygons (:mod:`.gather`), mosaics the date's tiles per pixel (:class:`stats.raster.Mosaic`),
summarises every polygon in one pass (:func:`stats.zonal.grouped_summary`) and sends all the averaged pixels
to s2cloudless in one call. Per-pixel clouds take the vectorised path too when the date's tiles have stored
CLP/CLM layers: the cells covering all the task's polygons are read once (:func:`stats.clouds.layers.stored_cells`,
as the time series reads them) and every pixel takes its cell. Options that need more (per-pixel clouds
without stored layers, cloud shadows, water, histograms, exact mode, resolutions other than 10 m, tiles of one date in
different CRSs) are answered polygon by polygon with the time-series engine itself
(:func:`stats.pipeline.query_timeseries`), so they are slower but the same.
"""

from __future__ import annotations

import ctypes
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial

import numpy as np
import pyarrow as pa
import rasterio
from affine import Affine
from shapely.geometry import box

from ..archive.catalog import Acquisition, Archive
from ..bands import MODEL_BANDS, QUANTIFICATION_VALUE
from ..clouds.cells import point_clouds
from ..clouds.layers import stored_cells
from ..clouds.model import CloudModel, default_model
from ..clouds.scl import uses_scl
from ..datasets import map_threads
from ..errors import SceneReadError
from ..geometry import cached_crs
from ..grid import Grid, pixel_size_10m
from ..indices import IndexSpec
from ..pipeline import date_error, query_timeseries
from ..raster import Mosaic, band_shape, remote
from ..request import QueryOptions, TimeRange, TimeSeriesRequest
from ..results import DateResult, PixelCloud
from ..zonal import grouped_summary
from .gather import UNPOOLED, TaskPixels, gather, task_pixels
from .output import task_table
from .plan import BatchPlan, BatchTask

log = logging.getLogger(__name__)

#: GDAL block cache (MiB) while a task reads: each tile is read once, so a large cache only costs memory.
BATCH_GDAL_CACHE_MB = 64


@lru_cache(maxsize=4)
def _archive(href: str) -> Archive:
    return Archive.open(href)


def vectorised(options: QueryOptions, tiles: Sequence[Acquisition]) -> bool:
    """Whether the vectorised path answers these options (else the time-series engine, polygon by polygon, as
    for an L2A date, whose clouds come from its scene classification)."""
    if uses_scl(tiles):
        return False
    stored = (options.cloud.source != "model" and all(t.cloud_layers is not None for t in tiles)
              and not any(spec.cloud_layers for spec in options.indices) and not options.cloud.shadows)
    return (options.resolution == 10 and not options.exact and (not options.pixel_clouds or stored)
            and options.water is None and options.histogram is None and len({cached_crs(t.crs) for t in tiles}) == 1)


def run_task(plan: BatchPlan, task: BatchTask, *, model: CloudModel | None = None,
             archive: Archive | None = None) -> pa.Table:
    """Compute one task: a table of rows (``_polygon`` index, ``id``, then the time-series columns)."""
    archive = archive or _archive(plan.archive_href)
    tiles = archive.get(task.tiles)
    model = model or default_model()
    try:
        results = None
        if vectorised(plan.options, tiles):
            with rasterio.Env(GDAL_CACHEMAX=BATCH_GDAL_CACHE_MB):
                results = _task_vectorised(plan, task, tiles, model)
        if results is None:
            results = _task_per_polygon(plan, task, tiles, model, archive)
    except SceneReadError as exc:
        log.warning("date %s: %s", task.date, exc)
        failed = date_error(tiles, str(exc))
        results = dict.fromkeys(task.polygons, failed)
    finally:
        _trim_memory()
    return task_table(plan, [(i, entry) for i in task.polygons if (entry := results.get(i)) is not None])


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
    dates = TimeRange(min(t.datetime for t in tiles), max(t.datetime for t in tiles))
    out: dict[int, DateResult | None] = {}
    for i in task.polygons:
        request = TimeSeriesRequest(plan.area(i), dates, plan.options)
        result = query_timeseries(request, archive, model=model, limits=plan.limits)
        out[i] = result.series[0] if result.series else None
    return out


def _task_vectorised(plan: BatchPlan, task: BatchTask, tiles: list[Acquisition],
                     model: CloudModel) -> dict[int, DateResult | None] | None:
    """Every polygon of the task at once (a polygon maps to None when its date is dropped); None when
    a band is not on the tile's grid, so that the task must be answered polygon by polygon."""
    options = plan.options
    bands = options.read_bands
    primary = tiles[0]
    grid_crs = cached_crs(primary.crs)
    shapes = map_threads(partial(band_shape, primary, pool=UNPOOLED), bands, io=remote(primary))
    finest = min(shapes, key=lambda s: abs(s.transform.a))
    anchor = finest.transform
    pixel = pixel_size_10m(anchor)
    n = len(task.polygons)
    pixels = task_pixels(plan, task.polygons, anchor, grid_crs, pixel)
    labels = pixels.labels
    inside = pixels.inside
    mosaic = Mosaic((labels.size,), bands)
    scenes: list[set[str]] = [set() for _ in range(n)]

    grid = Grid(grid_crs, Affine(pixel[0], 0.0, anchor.c, 0.0, -pixel[1], anchor.f), (1, 1))
    for acq in tiles:
        if cached_crs(acq.crs) != grid_crs:  # not reached: vectorised() sends such dates to the per-polygon path
            return None
        gathered = map_threads(partial(gather, acq, pixels=pixels, grid=grid), bands, io=remote(acq))
        arrays = [a for a in gathered if a is not None]
        if len(arrays) < len(bands):
            return None  # a band on another grid
        has = mosaic.add(acq, dict(zip(bands, arrays)))
        if has is None:
            continue
        for pos in np.unique(labels[has]).tolist():
            scenes[pos].add(acq.id)

    dn, filled = mosaic.dn, mosaic.filled
    valid_labels = labels[filled]
    valid_count = np.bincount(valid_labels, minlength=n)
    probability = np.full(n, np.nan)
    if options.cloud.averaged and valid_count.any():
        sums = np.stack([np.bincount(valid_labels, weights=dn[b][filled].astype(np.float64) / QUANTIFICATION_VALUE,
                                     minlength=n) for b in MODEL_BANDS], axis=1)
        scored = valid_count > 0
        probability[scored] = np.asarray(model.probability(sums[scored] / valid_count[scored, None]),
                                         dtype=np.float64)
    clouds = _pixel_clouds(options, tiles, pixels, filled, n) if options.pixel_clouds else None
    selected = filled.copy()
    if clouds is not None and options.cloud.mask:
        selected[filled] = ~clouds.cloudy_at
    selected_labels = labels[selected]
    offsets = mosaic.offset[selected]

    def reported(band: str) -> np.ndarray:  # one band at a time, so that 13 float64 copies never coexist
        values = dn[band][selected] if options.harmonize else dn[band][selected] + offsets
        return values.astype(np.float64) / QUANTIFICATION_VALUE

    band_stats = {b: grouped_summary(reported(b), selected_labels, n, options.statistics,
                                     keys=_dn_keys(dn[b][selected], offsets, options.harmonize))
                  for b in options.bands}
    index_stats = {spec.name: _index_stats(spec, {b: reported(b) for b in spec.bands}, selected_labels, n,
                                           options.statistics) for spec in options.indices}
    first = tiles[0]
    out: dict[int, DateResult | None] = {}
    cloud = options.cloud
    for pos, i in enumerate(task.polygons):
        count = int(valid_count[pos])
        if count == 0 and not options.include_empty:
            out[i] = None
            continue
        p = None if math.isnan(probability[pos]) else float(probability[pos])
        pixel_cloud = clouds.of(pos) if clouds is not None else None
        fraction = pixel_cloud.fraction if pixel_cloud is not None else None
        cloudy = cloud.cloudy(p)
        entry = DateResult(
            date=first.date, datetime=first.datetime,
            scenes=tuple(t.id for t in tiles if t.id in scenes[pos]) or (first.id,),
            cloud_probability=p, cloudy=cloudy,
            valid_pixels=count, nodata_pixels=int(inside[pos]) - count,
            bands={b: _row_stats(band_stats[b], pos, options.statistics) for b in options.bands},
            indices={s: _row_stats(index_stats[s], pos, options.statistics) for s in index_stats},
            pixel_cloud=pixel_cloud, warning=cloud.warning(cloudy, fraction),
        )
        out[i] = None if cloud.drops(p, fraction) else entry
    return out


@dataclass
class _TaskClouds:
    """The per-pixel clouds of a task: at each valid pixel (``cloudy_at``, ``probability_at``), and per polygon."""

    cloudy_at: np.ndarray
    probability_at: np.ndarray
    labels: np.ndarray
    n: int

    def __post_init__(self) -> None:
        self.count = np.bincount(self.labels, minlength=self.n)
        self.cloudy = np.bincount(self.labels, weights=self.cloudy_at, minlength=self.n)
        self.probability = np.bincount(self.labels, weights=self.probability_at, minlength=self.n)

    def of(self, pos: int) -> PixelCloud:
        """The :class:`PixelCloud` of the polygon at ``pos`` (as the time series gives it)."""
        count = int(self.count[pos])
        if count == 0:
            return PixelCloud(None, None, 0, 0)
        cloudy = int(self.cloudy[pos])
        return PixelCloud(fraction=cloudy / count, probability_mean=float(self.probability[pos] / count),
                          clear_pixels=count - cloudy, cloudy_pixels=cloudy, source="layers")


def _pixel_clouds(options: QueryOptions, tiles: Sequence[Acquisition], pixels: TaskPixels, filled: np.ndarray,
                  n: int) -> _TaskClouds:
    """The stored cloud cells covering every polygon of the task, read once, at each valid pixel."""
    xs, ys = pixels.xs[filled], pixels.ys[filled]
    params = options.cloud.mask_parameters
    if xs.size == 0:
        return _TaskClouds(np.zeros(0, bool), np.zeros(0), pixels.labels[filled], n)
    extent = box(float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
    cells = stored_cells(tiles, extent, cached_crs(tiles[0].crs), params, max_pixels=2**62)
    at = point_clouds(cells, params, xs, ys)
    return _TaskClouds(at.cloudy, at.probability, pixels.labels[filled], n)


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
