"""query_timeseries: geometry -> catalog -> raster -> cloud -> zonal -> TimeSeriesResult.

For each acquisition date that intersects the polygon, the date's tiles are read and mosaicked
(:func:`stats.raster.read_date`). Two cloud answers can be computed:

* the **averaged pixel**: the 10 model bands averaged over the polygon's valid pixels and classified by
  s2cloudless (``cloudy = probability >= threshold``);
* the **per-pixel mask** (:mod:`stats.cloudmask`): cloud cells of the cloud resolution around the polygon
  are scored and masked; each valid pixel takes the cell containing its centre, giving the cloud fraction
  and, on request, statistics over the clear pixels only.

The model runs once per query: first every date is read and reduced to what the model needs, then all
averaged pixels and all uncached cloud cells go to s2cloudless in one call, then each date is finished.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from .archive.catalog import Acquisition, Archive
from .bands import MODEL_BANDS, QUANTIFICATION_VALUE, S2_BANDS
from .cloud import CloudModel, default_model
from .cloudmask import (
    CellRequest,
    ProbabilityCache,
    cell_of_pixels,
    cell_request,
    cloud_grids,
    resolve_probabilities,
)
from .coverage import weighted_summary
from .errors import InvalidRequestError, SceneReadError
from .geometry import DEFAULT_MAX_VERTICES, parse_geometry, reproject
from .indices import IndexSpec, resolve_index
from .models import DateResult, PixelCloud, TimeSeriesRequest, TimeSeriesResult, Water, WaterOptions, names
from .raster import DEFAULT_MAX_PIXELS, PixelBlock, read_date
from .water import water_extent
from .zonal import histogram, summarize

log = logging.getLogger(__name__)

#: Cloud fraction range in which the averaged pixel of a polygon is not trusted (both modes).
MIXED_RANGE = (0.1, 0.9)

_CACHE = ProbabilityCache()


def default_cache() -> ProbabilityCache:
    """The process-wide cache of cloud-cell probabilities."""
    return _CACHE


@dataclass(frozen=True)
class Limits:
    """Per-request limits (the service sets them from ``POLYFIS_*`` settings).

    ``time_budget_s`` bounds the work of one request: dates (or intervals) not started before it runs out
    get an error entry saying so, and the answer is PARTIAL instead of late.
    """

    max_vertices: int = DEFAULT_MAX_VERTICES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_acquisitions: int = 1000
    max_days: int = 3 * 366
    time_budget_s: float = 60.0

    def check_range(self, start: dt.datetime, end: dt.datetime, name: str = "time") -> None:
        """Reject a time range longer than ``max_days``."""
        days = (end - start).total_seconds() / 86400
        if days > self.max_days:
            raise InvalidRequestError(
                f"{name}: the range covers {days:.0f} days, more than the limit of {self.max_days}; "
                "split it into shorter requests")

    def check_acquisitions(self, count: int) -> None:
        """Reject a request that would read more than ``max_acquisitions`` tiles."""
        if count > self.max_acquisitions:
            raise InvalidRequestError(
                f"time: the polygon and range match {count} acquisitions, more than the limit of "
                f"{self.max_acquisitions}; shorten the time range or set max_cloud_cover")

    def deadline(self) -> float:
        """The monotonic time at which this request's budget runs out."""
        return time.monotonic() + self.time_budget_s


#: Message of dates or intervals skipped because the request ran out of time.
BUDGET_MESSAGE = "not computed: the request's time budget of {:g} s ran out (POLYFIS_TIME_BUDGET_S)"


def group_by_date(acquisitions: list[Acquisition]) -> list[list[Acquisition]]:
    """Group acquisitions by UTC date, oldest date first; within a date, in acquisition order."""
    groups: dict[dt.date, list[Acquisition]] = defaultdict(list)
    for acq in acquisitions:
        groups[acq.date].append(acq)
    return [sorted(groups[day], key=lambda a: (a.datetime, a.id)) for day in sorted(groups)]


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
    cell_of_pixel: np.ndarray | None = None  # flat cell index of each valid pixel
    probability: float | None = field(default=None)
    weights: np.ndarray | None = None  # exact mode: coverage fraction of each valid pixel
    inside_area: float = 0.0  # the polygon's area in pixels (pixels inside, or their coverage in exact mode)

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
) -> TimeSeriesResult:
    """Answer a time-series request from ``archive``.

    :raises InvalidRequestError: (and subclasses) for a bad geometry, CRS or a window over the limits.
    A date whose imagery cannot be read gets a :class:`DateResult` with ``error`` set instead of raising.
    """
    model = model or default_model()
    limits = limits or Limits()
    cache = default_cache() if cache is None else cache
    geom, geom_crs = parse_geometry(request.geometry, request.crs, max_vertices=limits.max_vertices)
    wgs84 = reproject(geom, geom_crs, CRS.from_epsg(4326))
    limits.check_range(request.start, request.end)
    found = archive.search(wgs84, request.start, request.end, max_cloud_cover=request.max_cloud_cover)
    limits.check_acquisitions(len(found))
    deadline = limits.deadline()

    water_index = resolve_index(request.water.index) if request.water else None
    specs = list(request.indices) + ([water_index] if water_index else [])
    wanted = set(request.bands) | {b for spec in specs for b in spec.bands} | set(MODEL_BANDS)
    read_bands = [b for b in S2_BANDS if b in wanted]
    pixel_mode = request.cloud.pixel or request.water is not None or any(spec.cloud_layers for spec in specs)

    works: list[_DateWork | DateResult] = []
    dropped_empty = 0
    for tiles in group_by_date(found):
        if time.monotonic() > deadline:
            works.append(DateResult(date=tiles[0].date, datetime=tiles[0].datetime, scenes=tuple(t.id for t in tiles),
                                    error=BUDGET_MESSAGE.format(limits.time_budget_s)))
            continue
        try:
            work = _collect(request, tiles, geom, geom_crs, read_bands, pixel_mode, limits)
        except SceneReadError as exc:
            log.warning("date %s: %s", tiles[0].date, exc)
            works.append(DateResult(date=tiles[0].date, datetime=tiles[0].datetime,
                                    scenes=tuple(t.id for t in tiles), error=str(exc)))
            continue
        if work.valid == 0 and not request.include_empty:
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
        entry = _finish(request, item, specs, water_index)
        if _too_cloudy(request, entry):
            dropped_cloudy += 1
            continue
        series.append(entry)
    return TimeSeriesResult(
        series=tuple(series),
        bands=request.bands,
        indices=names(request.indices),
        statistics=request.statistics,
        acquisitions=len(found),
        dropped_cloudy=dropped_cloudy,
        dropped_empty=dropped_empty,
        pixel_cloud=pixel_mode,
        water=request.water is not None,
    )


def _collect(request: TimeSeriesRequest, tiles: list[Acquisition], geom: BaseGeometry, geom_crs: CRS,
             read_bands: list[str], pixel_mode: bool, limits: Limits) -> _DateWork:
    """Read one date and reduce it to valid-pixel values, the averaged pixel and the cloud cells."""
    params = request.cloud.mask_parameters
    k = params.cell_pixels
    cloud_block: PixelBlock | None = None
    if pixel_mode:
        cloud_block = read_date(tiles, geom, geom_crs, read_bands, resolution=10,
                                max_pixels=limits.max_pixels, pad=params.margin_cells * k, snap=k,
                                exact=request.exact)
    if cloud_block is not None and request.resolution == 10:
        block = cloud_block
    else:
        block = read_date(tiles, geom, geom_crs, read_bands, resolution=request.resolution,
                          max_pixels=limits.max_pixels, exact=request.exact)
    valid = block.valid
    values = {b: block.dn[b][valid] for b in read_bands}
    weights = block.coverage[valid] if block.coverage is not None else None
    averaged = None
    if values[read_bands[0]].size and request.cloud.averaged:
        # the model always sees harmonised reflectance, whatever the statistics report
        averaged = np.array([np.average(values[b].astype(np.float64), weights=weights) / QUANTIFICATION_VALUE
                             for b in MODEL_BANDS])
    if not request.harmonize:
        offset = block.offset[valid]
        values = {b: v + offset for b, v in values.items()}
    inside_area = float(block.coverage.sum()) if block.coverage is not None else float(block.inside.sum())
    work = _DateWork(first=tiles[0], scenes=tuple(block.scenes), values=values, averaged=averaged,
                     nodata=block.nodata_count, pixel_area=block.grid.pixel_area, inside=int(block.inside.sum()),
                     weights=weights, inside_area=inside_area)
    if cloud_block is not None and work.valid:
        work.cells = cell_request(cloud_block, params)
        work.cell_of_pixel = cell_of_pixels(block.grid, valid, cloud_block.grid, k, work.cells.valid.shape)
    return work


def _classify(works: list[_DateWork | DateResult], model: CloudModel, cache: ProbabilityCache) -> None:
    """Score all averaged pixels and all uncached cloud cells of the query in one model call."""
    dates = [w for w in works if isinstance(w, _DateWork)]
    averaged = [w for w in dates if w.averaged is not None]
    requests = [w.cells for w in dates if w.cells is not None]
    extra = np.array([w.averaged for w in averaged], dtype=np.float64).reshape(-1, len(MODEL_BANDS))

    probs = resolve_probabilities(requests, model, cache, extra=extra)
    for work, p in zip(averaged, np.asarray(probs).tolist()):
        work.probability = p


def _finish(request: TimeSeriesRequest, work: _DateWork, specs: list[IndexSpec], water_index: IndexSpec | None) -> DateResult:
    """Statistics, pixel cloud and water of one date, once its probabilities are known."""
    cloud = request.cloud
    clear = np.ones(work.valid, dtype=bool)
    layers: dict[str, np.ndarray] = {}
    pixel_cloud = None
    if work.cells is not None and work.cell_of_pixel is not None:
        prob_grid, mask = cloud_grids(work.cells, cloud.mask_parameters)
        cloudy_px = mask.ravel()[work.cell_of_pixel].astype(bool)
        probability_px = prob_grid.ravel()[work.cell_of_pixel].astype(np.float64)
        clear = ~cloudy_px
        layers = {"CLP": np.round(probability_px * 255), "CLM": cloudy_px.astype(np.float64)}
        pixel_cloud = PixelCloud(
            fraction=float(np.average(cloudy_px, weights=work.weights)),
            probability_mean=float(np.average(probability_px, weights=work.weights)),
            clear_pixels=int(clear.sum()),
            cloudy_pixels=int(cloudy_px.sum()),
        )
    elif work.valid == 0 and work.cells is None and (cloud.pixel or request.water is not None):
        pixel_cloud = PixelCloud(None, None, 0, 0)
    selected = clear if cloud.mask else np.ones(work.valid, dtype=bool)
    reflectance = {b: v[selected].astype(np.float64) / QUANTIFICATION_VALUE for b, v in work.values.items()}
    reflectance.update({name: layer[selected] for name, layer in layers.items()})
    if not layers:
        reflectance.update({name: np.zeros(0) for name in ("CLP", "CLM")})
    weights = work.weights[selected] if work.weights is not None else None

    def stats_of(values: np.ndarray, keep: np.ndarray | None = None) -> dict[str, float | int | None]:
        if weights is None:
            return summarize(values if keep is None else values[keep], request.statistics)
        w = weights if keep is None else weights[keep]
        return weighted_summary(values if keep is None else values[keep], w, request.statistics)

    band_stats = {b: stats_of(reflectance[b]) for b in request.bands}
    index_stats = {}
    histograms = {}
    hist = request.histogram
    if hist is not None:
        histograms.update({b: histogram(reflectance[b], hist.bins, hist.kind) for b in request.bands})
    for spec in request.indices:
        values = spec.evaluate({b: reflectance[b] for b in spec.bands + spec.cloud_layers})
        finite = np.isfinite(values)
        index_stats[spec.name] = stats_of(values, finite)
        if hist is not None:
            histograms[spec.name] = histogram(values[finite], hist.bins, hist.kind)
    water = None
    if request.water is not None and water_index is not None:
        water = _water(request.water, water_index, work, clear)
    probability = work.probability
    cloudy = None if probability is None else bool(probability >= cloud.threshold)
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
        warning=_warning(cloud.mode, cloudy, pixel_cloud),
        water=water,
        histograms=histograms,
    )


def _warning(mode: str, cloudy: bool | None, pixel_cloud: PixelCloud | None) -> str | None:
    """Why the averaged pixel cannot be trusted, in ``both`` mode: ``disagree`` or ``mixed``; else None."""
    if mode != "both" or cloudy is None or pixel_cloud is None or pixel_cloud.fraction is None:
        return None
    if cloudy != (pixel_cloud.fraction >= 0.5):
        return "disagree"
    if MIXED_RANGE[0] <= pixel_cloud.fraction <= MIXED_RANGE[1]:
        return "mixed"
    return None


def _water(options: WaterOptions, index: IndexSpec, work: _DateWork, clear: np.ndarray) -> Water:
    """Water extent over the clear valid pixels, scaled to the polygon's area (flagged when too cloudy)."""
    weights = work.weights if work.weights is not None else np.ones(work.valid)
    clear_share = weights[clear].sum() / work.inside_area if work.inside_area else 0.0
    if clear_share < 1 - options.max_cloud_fraction:
        return Water(None, None, None, flag="cloudy" if work.valid else "nodata")
    values = index.evaluate({b: work.values[b][clear].astype(np.float64) / QUANTIFICATION_VALUE for b in index.bands})
    finite = np.isfinite(values)
    fraction, threshold = water_extent(values[finite], options.method, options.threshold,
                                       weights=weights[clear][finite] if work.weights is not None else None)
    area = None if fraction is None else fraction * work.inside_area * work.pixel_area
    return Water(fraction, area, threshold)


def _too_cloudy(request: TimeSeriesRequest, entry: DateResult) -> bool:
    """Whether ``max_probability`` or ``max_fraction`` drops this date."""
    cloud = request.cloud
    if cloud.max_probability is not None and entry.cloud_probability is not None \
            and entry.cloud_probability > cloud.max_probability:
        return True
    pc = entry.pixel_cloud
    return bool(cloud.max_fraction is not None and pc is not None and pc.fraction is not None
                and pc.fraction > cloud.max_fraction)
