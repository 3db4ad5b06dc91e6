"""Sentinel Hub Statistical API on the polyfis engine: request, aggregation intervals, evalscript, response.

The request and response follow Sentinel Hub's ``POST /api/v1/statistics`` (see ``openapi.yaml`` and the
README's compatibility table). Each aggregation interval ``[from, to)`` mosaics its acquisitions
(``mosaickingOrder``, first valid tile wins per pixel) on the request's grid: the bounding box (``bbox``, else
the geometry's) in the request's CRS cut into ``width`` x ``height`` pixels or pixels of ``resx`` x ``resy``
CRS units (:func:`stats.grid.request_grid`), the bands brought onto it with ``processing.upsampling`` /
``downsampling`` (:mod:`stats.sampling`). With the evalscript's ``mosaicking`` ORBIT or TILE, each day's or
each tile's mosaic is one sample, in that order, each on that same grid. The evalscript runs on every pixel
of the grid (pixels outside the polygon or without data have ``dataMask`` 0 and band values 0), and each
output band's statistics are taken over the pixels whose output ``dataMask`` is not 0. ``sampleCount`` is the
number of pixels of the grid and ``noDataCount`` the pixels left out. An interval whose imagery cannot be read
gets an ``error`` entry; the others are answered. Only the intervals that can hold one of the archive's
acquisitions are computed (a ``timeRange`` from 2000 to 2050 is fine), and the acquisitions they match are
what the limits count.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from shapely.geometry import box

from ..analytics.intervals import intervals
from ..archive.catalog import Acquisition, Archive
from ..bands import MODEL_BANDS, S2_BANDS
from ..clouds.cells import ProbabilityCache, point_clouds, resolve_probabilities
from ..clouds.layers import cloud_cells
from ..clouds.model import CloudModel, default_model
from ..clouds.options import MaskParameters
from ..clouds.scl import statistics_bands, uses_scl
from ..errors import EvalscriptError, EvalscriptTimeout, InvalidRequestError, SceneReadError
from ..fields import integer, is_finite_number, obj
from ..geometry import parse_crs
from ..grid import Grid, pixel_centres, request_grid
from ..pipeline import default_cache
from ..raster import PixelBlock, read_grid
from ..request import Area, Limits, TimeRange
from ..sampling import Sampling
from ..zonal import MAX_BINS
from .data_source import data_source, time_range
from .evalscript import SUN_INPUTS, Evalscript, SceneTile, compile_evalscript

log = logging.getLogger(__name__)

#: Bytes an evalscript call holds per input or output value of a pixel: the float64 column, its copy in the
#: engine's input or output buffer and the one read back, and the engine's sample objects (measured at 0.4 of
#: this estimate by ``bench/memory.py``, so the budget holds with room).
EVALSCRIPT_VALUE_BYTES = 80



@dataclass(frozen=True)
class StatisticalRequest:
    """A parsed Statistical API request."""

    area: Area
    intervals: tuple[tuple[dt.datetime, dt.datetime], ...]
    data_filter_range: TimeRange | None
    max_cloud_cover: float | None
    mosaicking_order: str
    harmonize: bool
    grid: Grid
    evalscript: Evalscript
    calculations: Mapping[str, Any]
    sampling: Sampling = Sampling()


def parse_request(body: Any, limits: Limits | None = None, deadline: float | None = None, *,
                  within: tuple[dt.datetime, dt.datetime] | None = None) -> StatisticalRequest:
    """Parse and check a Statistical API body; every error names the field. ``limits`` bound the vertices
    and the pixels. ``within`` (the archive's first and last acquisition times) keeps the intervals that can
    hold an acquisition; without it, ``limits`` bound the days too."""
    limits = limits or Limits()
    if not isinstance(body, dict):
        raise InvalidRequestError(f"request body: expected a JSON object, got {type(body).__name__}")
    input_ = obj(body.get("input"), "input")
    bounds = obj(input_.get("bounds"), "input.bounds")
    crs_text = obj(bounds.get("properties"), "input.bounds.properties").get(
        "crs", "http://www.opengis.net/def/crs/OGC/1.3/CRS84")
    crs = parse_crs(crs_text)
    if bounds.get("geometry") is not None:
        area = Area.parse(bounds["geometry"], crs, max_vertices=limits.max_vertices)
    elif bounds.get("bbox") is not None:
        area = Area.parse(box(*_bbox(bounds["bbox"])), crs, max_vertices=limits.max_vertices)
    else:
        raise InvalidRequestError("input.bounds: expected 'geometry' (GeoJSON polygon) and/or 'bbox'")
    grid_bounds = _bbox(bounds["bbox"]) if bounds.get("bbox") is not None else area.geometry.bounds
    source = data_source(input_, strict=True)

    aggregation = obj(body.get("aggregation"), "aggregation")
    if "timeRange" not in aggregation:
        raise InvalidRequestError(
            "aggregation.timeRange: missing; expected {'from': ISO date-time, 'to': ISO date-time}")
    span = time_range(aggregation["timeRange"], "aggregation.timeRange", strict=True)
    interval = obj(aggregation.get("aggregationInterval"), "aggregation.aggregationInterval")
    spans = tuple(intervals(span.start, span.end, interval.get("of", ""),
                            interval.get("lastIntervalBehavior", "SKIP"), within=within))
    if spans and within is None:
        limits.check_range(TimeRange(spans[0][0], spans[-1][1]), "aggregation.timeRange")
    grid = request_grid(grid_bounds, area.crs, max_pixels=limits.max_pixels, **_grid_size(aggregation))
    if "evalscript" not in aggregation:
        raise InvalidRequestError("aggregation.evalscript: missing; expected a version-3 evalscript")
    script = compile_evalscript(aggregation["evalscript"], deadline)
    if "dataMask" not in {o.id for o in script.outputs}:
        raise EvalscriptError("evalscript: setup() declares no 'dataMask' output; the Statistical API needs one "
                              "(0 leaves a pixel out of the statistics)")
    sun = [name for name in script.inputs if name in SUN_INPUTS]
    if sun:
        raise EvalscriptError(f"evalscript: input {sun[0]} is not read by polyfis's Statistical API (the Process "
                              "API has the sun angles); expected the bands, dataMask, CLP or CLM")
    calculations = obj(body.get("calculations"), "calculations")
    return StatisticalRequest(area=area, intervals=spans, data_filter_range=source.time_range,
                              max_cloud_cover=source.max_cloud_cover, mosaicking_order=source.mosaicking_order,
                              harmonize=source.harmonize, grid=grid, evalscript=script, calculations=calculations,
                              sampling=source.sampling)


def _bbox(value: Any) -> tuple[float, float, float, float]:
    """``input.bounds.bbox``: four numbers, min before max."""
    if not isinstance(value, list) or len(value) != 4 or not all(is_finite_number(v) for v in value) \
            or value[0] >= value[2] or value[1] >= value[3]:
        raise InvalidRequestError(f"input.bounds.bbox: got {value!r:.80}; expected [minx, miny, maxx, maxy]")
    return float(value[0]), float(value[1]), float(value[2]), float(value[3])


def _grid_size(aggregation: Mapping[str, Any]) -> dict[str, Any]:
    """``width``/``height`` (pixels, 1..2500) or ``resx``/``resy`` (CRS units), checked, for
    :func:`stats.grid.request_grid`."""
    if "width" in aggregation or "height" in aggregation:
        return {key: integer(aggregation[key], f"aggregation.{key}", 1, 2500, got_first=True)
                for key in ("width", "height") if key in aggregation}
    if "resx" in aggregation or "resy" in aggregation:
        out = {}
        for key in ("resx", "resy"):
            if key in aggregation:
                res = aggregation[key]
                if not is_finite_number(res) or res <= 0:
                    raise InvalidRequestError(
                        f"aggregation.{key}: got {res!r:.40}; expected a positive number in CRS units")
                out[key] = float(res)
        return out
    raise InvalidRequestError("aggregation: expected resx/resy (CRS units) or width/height (pixels)")


def _tiles(found: list[Acquisition], order: str) -> list[Acquisition]:
    if order == "leastRecent":
        return sorted(found, key=lambda a: (a.datetime, a.id))
    if order == "leastCC":
        return sorted(found, key=lambda a: (a.cloud_cover if a.cloud_cover is not None else 100.0, a.datetime))
    return sorted(found, key=lambda a: (a.datetime, a.id), reverse=True)


def run_statistics(body: Any, archive: Archive, *, model: CloudModel | None = None,
                   cache: ProbabilityCache | None = None, limits: Limits | None = None) -> dict[str, Any]:
    """Answer a Statistical API request: ``{"status", "data": [{"interval", "outputs"} | {"interval", "error"}]}``."""
    limits = limits or Limits()
    deadline = limits.deadline()  # compiling the evalscript counts against the budget too
    # an empty archive has no dates: a range that ends before it starts keeps no interval
    extent = archive.temporal_extent or (dt.datetime.max.replace(tzinfo=dt.UTC), dt.datetime.min.replace(tzinfo=dt.UTC))
    request = parse_request(body, limits, deadline, within=extent)
    model = model or default_model()
    cache = default_cache() if cache is None else cache
    matched = _matched(request, archive)  # in time order
    limits.check_acquisitions(len(matched))
    times = [a.datetime for a in matched]
    data: list[dict[str, Any]] = []
    for start, end in request.intervals:
        lo, hi = start, end
        if request.data_filter_range is not None:
            lo, hi = max(lo, request.data_filter_range.start), min(hi, request.data_filter_range.end)
        found = matched[bisect.bisect_left(times, lo):bisect.bisect_left(times, hi)]
        if not found:
            continue
        interval = {"from": _iso(start), "to": _iso(end)}
        if time.monotonic() > deadline:
            data.append({"interval": interval, "error": {"type": "TIMEOUT", "message": limits.budget_message}})
            continue
        try:
            outputs = _interval_outputs(request, _tiles(found, request.mosaicking_order), (lo, hi), model, cache,
                                        limits)
        except SceneReadError as exc:
            log.warning("interval %s: %s", interval, exc)
            data.append({"interval": interval, "error": {"type": "EXECUTION_ERROR", "message": str(exc)}})
            continue
        except EvalscriptError as exc:
            kind = "TIMEOUT" if isinstance(exc, EvalscriptTimeout) else "EXECUTION_ERROR"
            data.append({"interval": interval, "error": {"type": kind, "message": str(exc)}})
            continue
        if outputs is not None:
            data.append({"interval": interval, "outputs": outputs})
    errors = sum(1 for d in data if "error" in d)
    status = "OK" if errors == 0 else ("FAILED" if errors == len(data) else "PARTIAL")
    return {"status": status, "data": data}


def _matched(request: StatisticalRequest, archive: Archive) -> list[Acquisition]:
    """The acquisitions the request's intervals (and ``dataFilter``) match, once for all intervals."""
    if not request.intervals:
        return []
    spans = request.intervals
    starts = [start for start, _ in spans]
    window = request.data_filter_range

    def matches(when: dt.datetime) -> bool:
        i = bisect.bisect_right(starts, when) - 1  # the intervals are in order and do not overlap
        return i >= 0 and when < spans[i][1] and (window is None or window.start <= when < window.end)

    found = archive.search(request.area.wgs84, spans[0][0], spans[-1][1], max_cloud_cover=request.max_cloud_cover)
    return [a for a in found if matches(a.datetime)]


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _interval_outputs(request: StatisticalRequest, tiles: list[Acquisition],
                      span: tuple[dt.datetime, dt.datetime], model: CloudModel, cache: ProbabilityCache,
                      limits: Limits) -> dict[str, Any] | None:
    """The statistics of one interval's tiles (in mosaicking order); None when the script's
    ``preProcessScenes`` kept no scene of them. SIMPLE mosaics every tile into one sample per pixel; ORBIT
    (one sample per UTC day) and TILE (one per tile) read each sample on the request's grid."""
    script = request.evalscript
    plan = script.plan([SceneTile.from_acquisition(a) for a in tiles], *span)
    if not plan.groups:
        return None
    wants_cloud: list[str] = [name for name in ("CLP", "CLM") if name in script.inputs]
    bands = [b for b in S2_BANDS if b in script.inputs or (wants_cloud and b in MODEL_BANDS)] or ["B02"]
    if uses_scl(tiles):  # L2A: no B10, so no s2cloudless probability; CLM comes from the scene classification
        if "CLP" in wants_cloud:
            raise SceneReadError(f"{tiles[0].date.isoformat()}: the evalscript asks for CLP, the s2cloudless "
                                 "probability, which needs band B10; this date is an L2A product without B10 (its "
                                 "CLM comes from the scene classification, SCL)")
        bands = statistics_bands(bands)
    pixels = request.grid.shape[0] * request.grid.shape[1]
    values_per_pixel = len(script.inputs) * len(plan.groups) + sum(len(o.bands) for o in plan.outputs)
    limits.check_memory(pixels * values_per_pixel, EVALSCRIPT_VALUE_BYTES,
                        f"running the evalscript on {pixels} pixels x {values_per_pixel} inputs and outputs")
    script.check_capacity(pixels, values_per_pixel)  # before any band is read
    samples = []
    for group in plan.groups if plan.mosaicking != "SIMPLE" else (tuple(range(len(tiles))),):
        members = [tiles[i] for i in group]
        block = read_grid(members, request.grid, request.area.geometry, request.area.crs, bands,
                          sampling=request.sampling, limits=limits)
        samples.append(_columns(request, members, block, model, cache, limits, wants_cloud))
    outputs = script.run(plan, samples).outputs
    data_mask = outputs["dataMask"][:, 0]
    mask = np.isfinite(data_mask) & (data_mask != 0)
    total = int(mask.size)
    result: dict[str, Any] = {}
    for output in plan.outputs:
        if output.id == "dataMask":
            continue
        calc = obj(request.calculations.get(output.id, request.calculations.get("default")), "calculations")
        band_results = {}
        for i, band in enumerate(output.bands):
            values = outputs[output.id][:, i]
            values = values[mask & np.isfinite(values)]
            band_results[band] = _band_result(values, total, calc, band)
        result[output.id] = {"bands": band_results}
    return result


def _columns(request: StatisticalRequest, tiles: list[Acquisition], block: PixelBlock, model: CloudModel,
             cache: ProbabilityCache, limits: Limits, wants_cloud: list[str]) -> dict[str, np.ndarray]:
    """The evalscript's inputs on every pixel of ``block`` (read from ``tiles``): band values in the
    script's units (0 where there is no data), ``dataMask``, and CLP/CLM when asked for."""
    columns = request.evalscript.band_columns(block.dn, block.offset, block.valid, request.harmonize)
    if wants_cloud:
        columns.update(_cloud_columns(tiles, request, block, model, cache, limits, wants_cloud))
    return columns


def _cloud_columns(tiles: list[Acquisition], request: StatisticalRequest, block: PixelBlock, model: CloudModel,
                   cache: ProbabilityCache, limits: Limits, names: list[str]) -> dict[str, np.ndarray]:
    """Per-pixel CLP (0..255) and CLM (0/1) at Sentinel Hub's 160 m defaults, for every pixel of the box."""
    params = MaskParameters()
    cells = cloud_cells(tiles, request.area.geometry, request.area.crs, MODEL_BANDS, params,
                        max_pixels=limits.max_pixels, limits=limits).cells
    resolve_probabilities([cells], model, cache)
    grid = block.grid
    # the request's grid is in its own CRS, the cells on the tile's grid
    x, y = pixel_centres(grid, np.ones(grid.shape, dtype=bool), cells.grid.crs)
    layers = point_clouds(cells, params, x, y).layers()
    data = block.valid.ravel()
    return {name: np.where(data, layers[name], 0.0) for name in names}


def _band_result(values: np.ndarray, total: int, calc: Mapping[str, Any], band: str) -> dict[str, Any]:
    stats: dict[str, Any] = {"sampleCount": total, "noDataCount": total - int(values.size)}
    if values.size == 0:
        stats.update({"min": "NaN", "max": "NaN", "mean": "NaN", "stDev": "NaN"})
        return {"stats": stats}
    stats.update({"min": float(values.min()), "max": float(values.max()), "mean": float(values.mean()),
                  "stDev": float(values.std())})
    stat_cfg = obj(obj(calc.get("statistics"), "calculations.statistics").get(
        band, obj(calc.get("statistics"), "calculations.statistics").get("default")), "calculations.statistics")
    percentiles = obj(stat_cfg.get("percentiles"), "percentiles")
    if percentiles:
        ks = percentiles.get("k", [])
        method = percentiles.get("interpolation", "higher")
        if not isinstance(ks, list) or not all(is_finite_number(k) and 0 <= k <= 100 for k in ks):
            raise InvalidRequestError(f"calculations.statistics.percentiles.k: got {ks!r:.80}; expected numbers 0..100")
        if method not in ("higher", "lower", "nearest", "linear", "midpoint"):
            raise InvalidRequestError(f"calculations.statistics.percentiles.interpolation: got {method!r}")
        stats["percentiles"] = {str(float(k)): float(np.percentile(values, k, method=method)) for k in ks}
    out: dict[str, Any] = {"stats": stats}
    hist_cfg = obj(calc.get("histograms"), "calculations.histograms")
    spec = hist_cfg.get(band, hist_cfg.get("default"))
    if spec is not None:
        out["histogram"] = _histogram(values, obj(spec, "calculations.histograms"))
    return out


def _histogram(values: np.ndarray, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Sentinel Hub histogram: ``bins`` [low, high) (last closed), plus under- and overflow counts."""
    if "bins" in spec:
        edges = spec["bins"]
        if not isinstance(edges, list) or len(edges) < 2 or not all(is_finite_number(e) for e in edges) \
                or any(b <= a for a, b in zip(edges, edges[1:])):
            raise InvalidRequestError(f"calculations.histograms.bins: got {edges!r:.80}; expected increasing numbers")
        edges = np.asarray(edges, dtype=np.float64)
    else:
        low = spec.get("lowEdge", float(values.min()))
        high = spec.get("highEdge", float(values.max()))
        if not (is_finite_number(low) and is_finite_number(high)) or high < low:
            raise InvalidRequestError(f"calculations.histograms: lowEdge {low!r} / highEdge {high!r} are not a range")
        if "binWidth" in spec:
            width = spec["binWidth"]
            if not is_finite_number(width) or width <= 0:
                raise InvalidRequestError(
                    f"calculations.histograms.binWidth: got {width!r}; expected a positive number")
            with np.errstate(over="ignore"):
                bins_needed = (float(high) - float(low)) / float(width)
            if not math.isfinite(bins_needed) or bins_needed > MAX_BINS:
                raise InvalidRequestError(
                    f"calculations.histograms.binWidth: {width!r} makes more than {MAX_BINS} bins between "
                    f"{low!r} and {high!r}; expected a wider bin")
            count = max(1, math.ceil(bins_needed))
            edges = low + width * np.arange(count + 1)
        else:
            n = integer(spec.get("nBins", 10), "calculations.histograms.nBins", 1, MAX_BINS, got_first=True)
            with np.errstate(over="ignore", invalid="ignore"):
                edges = np.linspace(low, high, n + 1) if high > low else np.array([low, low + 1.0])
    if not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
        raise InvalidRequestError("calculations.histograms: the bin edges are not finite and increasing; "
                                  "expected lowEdge/highEdge within the float range")
    inside = values[(values >= edges[0]) & (values <= edges[-1])]
    counts, _ = np.histogram(inside, bins=edges)
    return {
        "bins": [{"lowEdge": float(a), "highEdge": float(b), "count": int(c)}
                 for a, b, c in zip(edges[:-1], edges[1:], counts)],
        "overflowCount": int((values > edges[-1]).sum()),
        "underflowCount": int((values < edges[0]).sum()),
    }
