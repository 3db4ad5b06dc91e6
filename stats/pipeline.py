"""query_timeseries: geometry -> catalog -> raster -> cloud -> zonal -> TimeSeriesResult.

For each acquisition date that intersects the polygon, the date's tiles are read and mosaicked
(:func:`stats.raster.read_date`), the 10 model bands are averaged over the polygon's valid pixels into one
"averaged pixel", and all dates' averaged pixels are classified by s2cloudless in a single model call.
Band statistics are taken over the valid pixels; index statistics over the valid pixels where the index
is finite.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass, replace

import numpy as np
from pyproj import CRS

from .archive.catalog import Acquisition, Archive
from .bands import MODEL_BANDS, S2_BANDS
from .cloud import CloudModel, default_model
from .errors import SceneReadError
from .geometry import DEFAULT_MAX_VERTICES, parse_geometry, reproject
from .models import DateResult, TimeSeriesRequest, TimeSeriesResult, names
from .raster import DEFAULT_MAX_PIXELS, PixelBlock, read_date
from .zonal import summarize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Per-request limits (the service sets them from ``POLYFIS_*`` settings)."""

    max_vertices: int = DEFAULT_MAX_VERTICES
    max_pixels: int = DEFAULT_MAX_PIXELS


def group_by_date(acquisitions: list[Acquisition]) -> list[list[Acquisition]]:
    """Group acquisitions by UTC date, oldest date first; within a date, in acquisition order."""
    groups: dict[dt.date, list[Acquisition]] = defaultdict(list)
    for acq in acquisitions:
        groups[acq.date].append(acq)
    return [sorted(groups[day], key=lambda a: (a.datetime, a.id)) for day in sorted(groups)]


def query_timeseries(
    request: TimeSeriesRequest,
    archive: Archive,
    *,
    model: CloudModel | None = None,
    limits: Limits | None = None,
) -> TimeSeriesResult:
    """Answer a time-series request from ``archive``.

    :raises InvalidRequestError: (and subclasses) for a bad geometry, CRS or a window over the limits.
    A date whose imagery cannot be read gets a :class:`DateResult` with ``error`` set instead of raising.
    """
    model = model or default_model()
    limits = limits or Limits()
    geom, geom_crs = parse_geometry(request.geometry, request.crs, max_vertices=limits.max_vertices)
    wgs84 = reproject(geom, geom_crs, CRS.from_epsg(4326))
    found = archive.search(wgs84, request.start, request.end, max_cloud_cover=request.max_cloud_cover)

    index_bands = {b for spec in request.indices for b in spec.bands}
    wanted = set(request.bands) | index_bands | set(MODEL_BANDS)
    read_bands = [b for b in S2_BANDS if b in wanted]

    # Statistics per date as soon as it is read (only one date's pixels in memory at a time); the
    # averaged pixels of all dates then go to the model in one call.
    pending: list[DateResult] = []
    averaged: list[list[float]] = []
    dropped_empty = 0
    for tiles in group_by_date(found):
        first = tiles[0]
        try:
            block = read_date(tiles, geom, geom_crs, read_bands, resolution=request.resolution,
                              harmonize=request.harmonize, max_pixels=limits.max_pixels)
        except SceneReadError as exc:
            log.warning("date %s: %s", first.date, exc)
            pending.append(DateResult(date=first.date, datetime=first.datetime,
                                      scenes=tuple(t.id for t in tiles), error=str(exc)))
            continue
        if block.valid_count == 0 and not request.include_empty:
            dropped_empty += 1
            continue
        reflectance = {b: block.reflectance(b) for b in block.dn}
        if block.valid_count:
            averaged.append([float(reflectance[b].mean()) for b in MODEL_BANDS])
        pending.append(_date_stats(request, first, block, reflectance))

    probabilities = iter(model.averaged_probability(np.array(averaged, dtype=np.float64).reshape(-1, len(MODEL_BANDS))).tolist())
    series: list[DateResult] = []
    dropped_cloudy = 0
    for entry in pending:
        if entry.error is not None or entry.valid_pixels == 0:
            series.append(entry)
            continue
        probability = next(probabilities)
        if request.cloud.max_probability is not None and probability > request.cloud.max_probability:
            dropped_cloudy += 1
            continue
        series.append(replace(entry, cloud_probability=probability,
                              cloudy=bool(probability >= request.cloud.threshold)))
    return TimeSeriesResult(
        series=tuple(series),
        bands=request.bands,
        indices=names(request.indices),
        statistics=request.statistics,
        acquisitions=len(found),
        dropped_cloudy=dropped_cloudy,
        dropped_empty=dropped_empty,
    )


def _date_stats(request: TimeSeriesRequest, first: Acquisition, block: PixelBlock,
                reflectance: dict[str, np.ndarray]) -> DateResult:
    band_stats = {b: summarize(reflectance[b], request.statistics) for b in request.bands}
    index_stats = {}
    for spec in request.indices:
        values = spec.evaluate({b: reflectance[b] for b in spec.bands})
        index_stats[spec.name] = summarize(values[np.isfinite(values)], request.statistics)
    return DateResult(
        date=first.date,
        datetime=first.datetime,
        scenes=tuple(block.scenes),
        valid_pixels=block.valid_count,
        nodata_pixels=block.nodata_count,
        bands=band_stats,
        indices=index_stats,
    )
