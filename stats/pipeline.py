"""query_timeseries: catalog -> raster -> cloud -> zonal -> TimeSeriesResult, for a parsed request.

For each acquisition date that intersects the polygon, the date's tiles are read and mosaicked
(:func:`stats.raster.read_date`). Two cloud answers can be computed:

* the **averaged pixel**: the 10 model bands averaged over the polygon's valid pixels and classified by
  s2cloudless (:meth:`stats.clouds.options.CloudOptions.cloudy`);
* the **per-pixel mask** (:mod:`stats.clouds.cells`): cloud cells of the cloud resolution around the polygon
  are scored and masked; each valid pixel takes the cell containing its centre, giving the cloud fraction
  and, on request, statistics over the clear pixels only.

The model runs once per query: first every date is read and reduced to what the model needs, then all
averaged pixels and all uncached cloud cells go to s2cloudless in one call, then each date is finished.

With ``cloud.shadows``, the cloud block also reaches towards the sun as far as the highest cloud's shadow,
and each date gets the share of its pixels in the shadows of the mask's clouds (:mod:`stats.clouds.shadows`),
which ``cloud.mask`` leaves out too.

An L2A date has no B10, which s2cloudless needs: it gets no cloud probability, and its cloud mask, cloud
shadows and snow and water shares come from its scene classification (:mod:`stats.clouds.scl`), computed
whatever the cloud mode, with ``cloud.source`` ``scl`` and a note saying so.

With ``water``, each date also gets its water region (:mod:`stats.water.region`: the polygon's own pixels,
or the outline grown by its buffer, read on its own with its own cloud cells, scored in the same model
call), measured by :func:`stats.water.extent.measure`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from .analytics.compute import analyse
from .analytics.series import Observations
from .archive.catalog import Acquisition, Archive, group_by_date
from .bands import MODEL_BANDS, QUANTIFICATION_VALUE
from .clouds.cells import CellRequest, ProbabilityCache, pixel_clouds, resolve_probabilities
from .clouds.disk import DiskCells
from .clouds.layers import cloud_cells
from .clouds.model import CloudModel, default_model
from .clouds.scl import NOTE as SCL_NOTE
from .clouds.scl import class_fractions, classes_at, in_group, statistics_bands, uses_scl
from .clouds.shadow_masks import block_masks, date_reach, index_of_pixels, shadow_block
from .clouds.shadows import ShadowInput, shadow_fraction
from .datasets import io_threads
from .diagnosis import why_empty
from .errors import SceneReadError
from .grid import Grid
from .raster import date_is_cached, read_date, remote
from .request import Limits, QueryOptions, TimeRange, TimeSeriesRequest
from .results import DateResult, PixelCloud, PixelShadow, TimeSeriesResult
from .settings import current
from .water.extent import measure
from .water.region import WaterRegion, water_region
from .zonal import histogram, summarize_many, weighted_summary

log = logging.getLogger(__name__)

_CACHE: ProbabilityCache | None = None
_CACHE_DIR: str | None = None
_CACHE_LOCK = threading.Lock()


def default_cache() -> ProbabilityCache:
    """The process-wide cache of cloud-cell probabilities: in memory, and in ``POLYFIS_CLOUD_CACHE_DIR``
    (shared by every process using that folder) when it is set."""
    global _CACHE, _CACHE_DIR
    folder = current().cloud_cache_dir
    with _CACHE_LOCK:
        if _CACHE is None or folder != _CACHE_DIR:
            _CACHE = ProbabilityCache(disk=DiskCells(folder) if folder else None)
            _CACHE_DIR = folder
        return _CACHE


@dataclass
class _DateWork:
    """One date between reading and the model call: valid-pixel values and what the model must score."""

    first: Acquisition
    scenes: tuple[str, ...]
    values: dict[str, np.ndarray]  # band -> float32 harmonised DN of the valid pixels
    nodata: int
    pixel_area: float
    inside: int
    averaged: np.ndarray | None = None  # (10,) mean harmonised reflectance, when the averaged pixel is wanted
    cells: CellRequest | None = None
    grid: Grid | None = None  # the statistics grid, and where on it the valid pixels are (per-pixel clouds)
    valid_mask: np.ndarray | None = None
    probability: float | None = field(default=None)
    weights: np.ndarray | None = None  # exact mode: coverage fraction of each valid pixel
    inside_area: float = 0.0  # the polygon's area in pixels (pixels inside, or their coverage in exact mode)
    region: WaterRegion | None = None  # water: the region's pixels (the polygon's own, or read on their own)
    shadow_input: ShadowInput | None = None  # cloud.shadows: the cloud block's B03, B08 and the sun angles
    shadow_warning: str | None = None  # cloud.shadows: why the date has no shadow mask

    @property
    def valid(self) -> int:
        return int(next(iter(self.values.values())).size)


def query_timeseries(
    request: TimeSeriesRequest,
    archive: Archive,
    *,
    model: CloudModel | None = None,
    limits: Limits | None = None,
    cache: ProbabilityCache | None = None,
    within_archive: bool = False,
) -> TimeSeriesResult:
    """Answer a parsed time-series request from ``archive``; ``limits`` bound the acquisitions read, the
    window of each date and the time spent.

    ``within_archive`` (Sentinel Hub's routes) clips the time range to the archive's first and last
    acquisitions and lets the number of acquisitions matched bound the work, instead of rejecting a range
    longer than ``limits.max_days``.

    :raises InvalidRequestError: (and subclasses) for a range, a number of acquisitions or a window over
        the limits.
    A date whose imagery cannot be read gets a :class:`DateResult` with ``error`` set instead of raising.
    """
    model = model or default_model()
    limits = limits or Limits()
    cache = default_cache() if cache is None else cache
    options = request.options
    extent = archive.temporal_extent
    if not within_archive:
        limits.check_range(request.time)
        span: TimeRange | None = request.time
    else:
        span = request.time.clip(*extent) if extent is not None else None
    found = [] if span is None else archive.search(request.area.wgs84, span.start, span.end,
                                                   max_cloud_cover=options.max_cloud_cover)
    limits.check_acquisitions(len(found))
    deadline = limits.deadline()
    if any(remote(acq) for acq in found):
        model.load_in_background()  # while the reads wait for the network

    works: list[_DateWork | DateResult] = []
    dropped_empty = 0
    for work in _collect_dates(request, group_by_date(found), limits, deadline):
        if isinstance(work, _DateWork) and work.valid == 0 and not options.include_empty:
            dropped_empty += 1
            continue
        works.append(work)

    _classify(works, model, cache)

    series: list[DateResult] = []
    dropped_cloudy = 0
    for item in works:
        if isinstance(item, DateResult):
            series.append(item)
            continue
        entry = _finish(options, item)
        if options.cloud.drops(entry.cloud_probability, entry.pixel_cloud.fraction if entry.pixel_cloud else None):
            dropped_cloudy += 1
            continue
        series.append(entry)
    warnings = request.area.warnings
    if not found:
        warnings += why_empty(archive, request.area, request.time)
    elif dropped_empty and not series and not dropped_cloudy:
        warnings.append(f"none of the {dropped_empty} dates found has a valid pixel in the polygon (the imagery "
                        "has no data there); include_empty: true lists them")
    analytics = (analyse(Observations.from_series(series, options), options, request.time)
                 if options.analytics.requested else None)
    return replace(TimeSeriesResult.empty(options), series=tuple(series), acquisitions=len(found),
                   dropped_cloudy=dropped_cloudy, dropped_empty=dropped_empty, warnings=tuple(warnings),
                   analytics=analytics)


def date_error(tiles: list[Acquisition], message: str) -> DateResult:
    """The entry of a date that could not be computed: its tiles and why."""
    return DateResult(date=tiles[0].date, datetime=tiles[0].datetime, scenes=tuple(t.id for t in tiles),
                      error=message)


def dates_in_flight(groups: Sequence[Sequence[Acquisition]], bands: Sequence[str]) -> int:
    """Dates read at once: one for a local archive (its reads keep the cores busy already), enough to keep
    ``POLYFIS_IO_THREADS`` band reads in flight for a remote one (there the reads wait for the network)."""
    if not any(remote(acq) for tiles in groups for acq in tiles):
        return 1
    return min(len(groups), -(-io_threads() // max(1, len(bands))) + 1)


def _collect_dates(request: TimeSeriesRequest, groups: list[list[Acquisition]], limits: Limits,
                   deadline: float) -> list[_DateWork | DateResult]:
    """:func:`_collect` of every date, in date order, :func:`dates_in_flight` at once; a date that cannot be
    read, or not started before ``deadline``, gets its error entry."""

    def one(tiles: list[Acquisition]) -> _DateWork | DateResult:
        if time.monotonic() > deadline:
            return date_error(tiles, limits.budget_message)
        try:
            return _collect(request, tiles, limits)
        except SceneReadError as exc:
            log.warning("date %s: %s", tiles[0].date, exc)
            return date_error(tiles, str(exc))

    options = request.options
    in_flight = dates_in_flight(groups, options.read_bands)
    if in_flight > 1 and date_is_cached(groups[0], request.area.geometry, request.area.crs, options.read_bands,
                                        resolution=options.resolution, max_pixels=limits.max_pixels,
                                        sampling=options.sampling):
        in_flight = 1  # a repeated query: one date after the other is faster than threads taking turns
    if in_flight <= 1:
        return [one(tiles) for tiles in groups]
    executor = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="polyfis-date")
    try:
        return list(executor.map(one, groups))
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _collect(request: TimeSeriesRequest, tiles: list[Acquisition], limits: Limits) -> _DateWork:
    """Read one date and reduce it to valid-pixel values, the averaged pixel and the cloud cells."""
    options = request.options
    geom, geom_crs = request.area.geometry, request.area.crs
    read_bands = options.read_bands
    params = options.cloud.mask_parameters
    date_cells = None
    cloud_block = None
    reach, shadow_warning = (0, 0, 0, 0), None
    scl = uses_scl(tiles)  # L2A: no model (no B10); clouds, shadows, snow and water from the SCL classes
    if scl:
        read_bands = statistics_bands(read_bands)
    elif options.cloud.shadows:
        reach, shadow_warning = date_reach(tiles, options.cloud.shadow_parameters)
    if options.pixel_clouds or scl:
        date_cells = cloud_cells(tiles, geom, geom_crs, read_bands, params,
                                 max_pixels=limits.max_pixels, exact=options.exact, limits=limits, reach=reach)
        cloud_block = date_cells.block
    if cloud_block is not None and options.resolution == 10 and options.sampling.nearest:
        block = cloud_block
    else:
        block = read_date(tiles, geom, geom_crs, read_bands, resolution=options.resolution,
                          max_pixels=limits.max_pixels, exact=options.exact, limits=limits,
                          sampling=options.sampling)
    valid = block.valid
    values = {b: block.dn[b][valid] for b in read_bands}
    weights = block.coverage[valid] if block.coverage is not None else None
    averaged = None
    if values[read_bands[0]].size and options.cloud.averaged and not scl:
        # the model always sees harmonised reflectance, whatever the statistics report
        model_values = np.stack([values[b] for b in MODEL_BANDS]).astype(np.float64)
        averaged = np.average(model_values, axis=1, weights=weights) / QUANTIFICATION_VALUE
    if not options.harmonize:
        offset = block.offset[valid]
        values = {b: v + offset for b, v in values.items()}
    inside_area = float(block.coverage.sum()) if block.coverage is not None else float(block.inside.sum())
    work = _DateWork(first=tiles[0], scenes=tuple(block.scenes), values=values, averaged=averaged,
                     nodata=block.nodata_count, pixel_area=block.grid.pixel_area, inside=int(block.inside.sum()),
                     weights=weights, inside_area=inside_area, shadow_warning=shadow_warning)
    if date_cells is not None and work.valid:
        work.cells = date_cells.cells
        work.grid, work.valid_mask = block.grid, valid
        if options.cloud.shadows and shadow_warning is None and not scl:
            work.shadow_input = shadow_block(tiles, geom, geom_crs, cloud_block, params, reach,
                                             max_pixels=limits.max_pixels, limits=limits)
    if options.water is not None:
        work.region = water_region(options.water, tiles, geom, geom_crs, block, work.cells,
                                   resolution=options.resolution, params=params, limits=limits,
                                   exact=options.exact)
    return work


def _classify(works: list[_DateWork | DateResult], model: CloudModel, cache: ProbabilityCache) -> None:
    """Score all averaged pixels and all uncached cloud cells of the query in one model call."""
    dates = [w for w in works if isinstance(w, _DateWork)]
    averaged = [w for w in dates if w.averaged is not None]
    requests = [w.cells for w in dates if w.cells is not None]
    requests += [w.region.cells for w in dates if w.region is not None and w.region.cells is not None
                 and w.region.cells is not w.cells]  # a water region read on its own
    extra = np.array([w.averaged for w in averaged], dtype=np.float64).reshape(-1, len(MODEL_BANDS))

    probs = resolve_probabilities(requests, model, cache, extra=extra)
    for work, p in zip(averaged, np.asarray(probs).tolist()):
        work.probability = p


def _finish(options: QueryOptions, work: _DateWork) -> DateResult:
    """Statistics, pixel cloud and water of one date, once its probabilities are known."""
    cloud = options.cloud
    clear = np.ones(work.valid, dtype=bool)
    layers: dict[str, np.ndarray] = {}
    pixel_cloud = None
    classes = None
    if work.cells is not None and work.grid is not None and work.valid_mask is not None:
        clouds = pixel_clouds(work.cells, cloud.mask_parameters, work.grid, work.valid_mask)
        clear = ~clouds.cloudy
        layers = clouds.layers()
        scl = work.cells.classes is not None
        if scl:
            classes = classes_at(work.cells, work.grid, work.valid_mask)
        pixel_cloud = PixelCloud(
            fraction=float(np.average(clouds.cloudy, weights=work.weights)),
            probability_mean=None if scl else float(np.average(clouds.probability, weights=work.weights)),
            clear_pixels=int(clear.sum()),
            cloudy_pixels=int(clouds.cloudy.sum()),
            source=work.cells.source,
            note=SCL_NOTE if scl else None,
            classes=class_fractions(classes, work.weights) if classes is not None else None,
        )
    elif work.valid == 0 and work.cells is None and (cloud.pixel or options.water is not None):
        pixel_cloud = PixelCloud(None, None, 0, 0)
    shadow = None
    if cloud.shadows:
        shadow, in_shadow = _shadows(options, work) if classes is None else _scl_shadows(classes, work)
        clear = clear & ~in_shadow
    selected = clear if cloud.mask else np.ones(work.valid, dtype=bool)
    # reflectance of the bands the answer uses only (the model's other bands are read for the model)
    used = set(options.bands).union(*(spec.bands for spec in options.indices))
    reflectance = {b: v[selected].astype(np.float64) / QUANTIFICATION_VALUE
                   for b, v in work.values.items() if b in used}
    reflectance.update({name: layer[selected] for name, layer in layers.items()})
    if not layers:
        reflectance.update({name: np.zeros(0) for name in ("CLP", "CLM")})
    weights = work.weights[selected] if work.weights is not None else None

    histograms = {}
    hist = options.histogram
    if hist is not None:
        histograms.update({b: histogram(reflectance[b], hist.bins, hist.kind) for b in options.bands})
    index_values = []
    for spec in options.indices:
        values = spec.evaluate({b: reflectance[b] for b in spec.bands + spec.cloud_layers})
        finite = np.isfinite(values)
        index_values.append((values, finite))
        if hist is not None:
            histograms[spec.name] = histogram(values[finite], hist.bins, hist.kind)
    # the statistics of every band and index of the date, computed together
    names = list(options.bands) + [spec.name for spec in options.indices]
    arrays = [reflectance[b] for b in options.bands] + [v if f.all() else v[f] for v, f in index_values]
    if weights is None:
        summaries = summarize_many(arrays, options.statistics)
    else:
        kept = [weights] * len(options.bands) + [weights if f.all() else weights[f] for _, f in index_values]
        summaries = [weighted_summary(a, w, options.statistics) for a, w in zip(arrays, kept)]
    band_stats = dict(zip(names[:len(options.bands)], summaries[:len(options.bands)]))
    index_stats = dict(zip(names[len(options.bands):], summaries[len(options.bands):]))
    water = measure(options.water, work.region, cloud.mask_parameters) if options.water and work.region else None
    probability = work.probability
    cloudy = cloud.cloudy(probability)
    return DateResult(
        date=work.first.date,
        datetime=work.first.datetime,
        scenes=work.scenes,
        cloud_probability=probability,
        cloudy=cloudy,
        valid_pixels=work.valid,
        nodata_pixels=work.nodata,
        bands=band_stats,
        indices=index_stats,
        pixel_cloud=pixel_cloud,
        warning=cloud.warning(cloudy, pixel_cloud.fraction if pixel_cloud is not None else None),
        water=water,
        histograms=histograms,
        shadow=shadow,
    )


def _scl_shadows(classes: np.ndarray, work: _DateWork) -> tuple[PixelShadow, np.ndarray]:
    """The shadow result of an L2A date: its pixels of the SCL cloud-shadow class."""
    in_shadow = in_group(classes, "cloud_shadow")
    return PixelShadow(shadow_fraction(in_shadow, work.weights), int(in_shadow.sum())), in_shadow


def _shadows(options: QueryOptions, work: _DateWork) -> tuple[PixelShadow, np.ndarray]:
    """The shadow result of one date and which of its valid pixels are in shadow (none without a mask)."""
    none = np.zeros(work.valid, dtype=bool)
    if work.shadow_input is None or work.cells is None or work.grid is None or work.valid_mask is None:
        return PixelShadow(None, None if work.shadow_warning else 0, work.shadow_warning), none
    _, mask = block_masks(work.cells, work.shadow_input, options.cloud.mask_parameters,
                          options.cloud.shadow_parameters)
    index = index_of_pixels(work.grid, work.valid_mask, work.shadow_input.grid, 1, mask.shape)
    in_shadow = mask.ravel()[index]
    return PixelShadow(shadow_fraction(in_shadow, work.weights), int(in_shadow.sum())), in_shadow
