"""Sentinel Hub Process API on the polyfis engine: request, output grid, SIMPLE mosaic, evalscript, images.

``POST /api/v1/process`` answers one image per requested response (see ``openapi.yaml`` and the README's
Process API table). The output grid is the request's bounding box (``input.bounds.bbox``, else the bounds of
``input.bounds.geometry``) in its CRS, cut into ``output.width`` x ``output.height`` pixels (or pixels of
``output.resx`` x ``output.resy`` CRS units). The acquisitions of ``dataFilter.timeRange`` are taken in
``mosaickingOrder`` and each is brought onto that grid (:func:`stats.raster.read_band`). With ``SIMPLE``
mosaicking a pixel takes the first acquisition with data there, and reading stops once every pixel has one;
with ``ORBIT`` each UTC day's acquisitions are mosaicked into one sample, with ``TILE`` each acquisition is a
sample, and ``evaluatePixel`` gets the array of them. The evalscript runs on every pixel of the grid: pixels
without data have ``dataMask`` 0 and band values 0, and with a ``geometry`` the pixels whose centre lies
outside it are 0 in every output. ``userdata`` is ``outputMetadata.userData`` as ``updateOutputMetadata``
leaves it. ``CLP`` and ``CLM``
are each pixel's 160 m cloud cell of the acquisition it came from (stored layers or the s2cloudless model,
:func:`stats.clouds.layers.cloud_cells`), the sun angles that acquisition's mean angles.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from ..archive.catalog import Acquisition, Archive
from ..bands import MODEL_BANDS, S2_BANDS
from ..clouds.cells import ProbabilityCache, point_clouds, resolve_probabilities
from ..clouds.layers import cloud_cells
from ..clouds.model import CloudModel, default_model
from ..clouds.options import MaskParameters
from ..errors import InvalidRequestError, SceneReadError
from ..fields import integer, is_finite_number, obj
from ..geometry import WGS84, parse_crs, reproject
from ..grid import Grid, pixel_centres, polygon_mask, request_grid
from ..pipeline import default_cache
from ..raster import BAND_PIXEL_BYTES, Mosaic, read_bands
from ..request import Area, Limits, TimeRange
from ..sampling import Sampling
from .data_source import COLLECTIONS, data_source
from .encode import EXTENSIONS, TAR, TAR_TYPES, Encoded, check_format, encode_image, encode_json, tar_of, typed
from .evalscript import SUN_INPUTS, Evalscript, SceneTile, compile_evalscript
from .statistical import EVALSCRIPT_VALUE_BYTES

log = logging.getLogger(__name__)

#: Most pixels along one side of the output (Sentinel Hub's own limit).
MAX_SIDE = 2500
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
#: The response identifier of ``outputMetadata.userData`` (``updateOutputMetadata``).
USERDATA = "userdata"


@dataclass(frozen=True)
class Response:
    """One requested response: the evalscript output ``identifier`` (or ``userdata``) and its format."""

    identifier: str
    mime: str
    quality: int = 90


@dataclass(frozen=True)
class ProcessRequest:
    """A parsed Process API request."""

    grid: Grid
    clip: BaseGeometry | None  # the geometry, in the grid's CRS, outside which every output is 0
    time: TimeRange | None
    max_cloud_cover: float | None
    mosaicking_order: str
    sampling: Sampling
    harmonize: bool
    evalscript: Evalscript
    responses: tuple[Response, ...]

    @property
    def footprint(self) -> BaseGeometry:
        """What the output covers, in EPSG:4326 (lon, lat), for the catalog search."""
        area = self.clip if self.clip is not None else box(*grid_bounds(self.grid))
        return reproject(area, self.grid.crs, WGS84)


@dataclass
class ProcessResult:
    """The answer: its bytes, media type, and what the caller should know (``warnings``)."""

    data: bytes
    mime: str
    warnings: list[str] = field(default_factory=list)


def grid_bounds(grid: Grid) -> tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) of a north-up grid."""
    t, (rows, cols) = grid.transform, grid.shape
    return t.c, t.f + rows * t.e, t.c + cols * t.a, t.f


def parse_process_request(body: Any, limits: Limits | None = None, deadline: float | None = None,
                          collections: Sequence[str] = COLLECTIONS) -> ProcessRequest:
    """Parse and check a Process API body; every error names the field, what it got and what it expects.

    :param collections: the ``input.data[0].type`` values that name the archive (:func:`collection_types`).
    """
    limits = limits or Limits()
    if not isinstance(body, dict):
        raise InvalidRequestError(f"request body: expected a JSON object, got {type(body).__name__}")
    input_ = obj(body.get("input"), "input")
    bounds = obj(input_.get("bounds"), "input.bounds")
    crs = parse_crs(obj(bounds.get("properties"), "input.bounds.properties").get("crs", CRS84))
    clip = None
    if bounds.get("geometry") is not None:
        clip = Area.parse(bounds["geometry"], crs, max_vertices=limits.max_vertices).geometry
    extent: tuple[float, float, float, float]
    if bounds.get("bbox") is not None:
        bbox = bounds["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(is_finite_number(v) for v in bbox) \
                or bbox[0] >= bbox[2] or bbox[1] >= bbox[3]:
            raise InvalidRequestError(f"input.bounds.bbox: got {bbox!r:.80}; expected [minx, miny, maxx, maxy] with "
                                      "minx < maxx and miny < maxy")
        extent = tuple(float(v) for v in bbox)  # type: ignore[assignment]
        Area.parse(box(*extent), crs)  # the box must be a usable area of the CRS
    elif clip is not None:
        extent = clip.bounds
    else:
        raise InvalidRequestError("input.bounds: expected 'bbox' ([minx, miny, maxx, maxy]) and/or 'geometry' "
                                  "(GeoJSON Polygon or MultiPolygon)")
    output = obj(body.get("output"), "output")
    width, height = _size(output, extent, limits)
    grid = request_grid(extent, crs, width=width, height=height, max_pixels=limits.max_pixels)

    source = data_source(input_, collections, limits=limits)

    if "evalscript" not in body:
        raise InvalidRequestError("evalscript: missing; expected the text of a version-3 evalscript")
    script = compile_evalscript(body["evalscript"], deadline)
    responses = _responses(output.get("responses"), script)
    return ProcessRequest(grid=grid, clip=clip, time=source.time_range, max_cloud_cover=source.max_cloud_cover,
                          mosaicking_order=source.mosaicking_order, sampling=source.sampling,
                          harmonize=source.harmonize, evalscript=script, responses=responses)


def collection_types(archive: Archive) -> tuple[str, ...]:
    """The ``input.data[0].type`` values naming ``archive``: ``sentinel-2-l1c`` (``S2L1C``), the archive's id and
    ``byoc-<archive id>`` (sentinelhub-py's ``DataCollection.define_byoc(<archive id>)``), as the Catalog API
    names it."""
    return (*COLLECTIONS, archive.id, f"byoc-{archive.id}")


def _size(output: Mapping[str, Any], extent: tuple[float, float, float, float], limits: Limits) -> tuple[int, int]:
    """(width, height) from ``width``/``height`` (one of them keeps the box's aspect) or ``resx``/``resy``."""
    span_x, span_y = extent[2] - extent[0], extent[3] - extent[1]
    sizes = ("width" in output, "height" in output)
    resolutions = ("resx" in output, "resy" in output)
    if any(sizes) and any(resolutions):
        raise InvalidRequestError("output: got both width/height and resx/resy; expected one pair")
    if any(sizes):
        width = integer(output["width"], "output.width", 1, MAX_SIDE, got_first=True) if sizes[0] else None
        height = integer(output["height"], "output.height", 1, MAX_SIDE, got_first=True) if sizes[1] else None
        width = width if width is not None else max(1, round(height * span_x / span_y))  # type: ignore[operator]
        height = height if height is not None else max(1, round(width * span_y / span_x))
    elif any(resolutions):
        values = {}
        for key, span in (("resx", span_x), ("resy", span_y)):
            res = output.get(key, output.get("resy" if key == "resx" else "resx"))
            if not is_finite_number(res) or res <= 0:
                raise InvalidRequestError(f"output.{key}: got {res!r:.40}; expected a positive number in the CRS's "
                                          "units")
            values[key] = span / res
        if max(values.values()) > MAX_SIDE:
            raise InvalidRequestError(f"output: resx/resy make {values['resx']:.0f} x {values['resy']:.0f} pixels, "
                                      f"more than {MAX_SIDE} on a side; expected a coarser resolution or a smaller box")
        width, height = max(1, round(values["resx"])), max(1, round(values["resy"]))
    else:
        raise InvalidRequestError("output: expected width and height (pixels) or resx and resy (CRS units)")
    for key, value in (("width", width), ("height", height)):
        if value > MAX_SIDE:
            raise InvalidRequestError(f"output.{key}: the box's aspect makes it {value} pixels; expected at most "
                                      f"{MAX_SIDE}")
    if width * height > limits.max_pixels:
        raise InvalidRequestError(f"output: {width} x {height} = {width * height} pixels, more than the limit of "
                                  f"{limits.max_pixels} (POLYFIS_MAX_PIXELS); expected a smaller image")
    return width, height


def _responses(value: Any, script: Evalscript) -> tuple[Response, ...]:
    """The requested responses (default one PNG of the ``default`` output), checked against the evalscript."""
    if value is None:
        value = [{"identifier": "default", "format": {"type": "image/png"}}]
    if not isinstance(value, list) or not value:
        raise InvalidRequestError(f"output.responses: got {value!r:.80}; expected a list of "
                                  "{'identifier': ..., 'format': {'type': 'image/tiff'}}")
    outputs = {o.id: o for o in script.outputs}
    parsed: list[Response] = []
    for i, item in enumerate(value):
        name = f"output.responses[{i}]"
        item = obj(item, name)
        identifier = item.get("identifier", "default")
        fmt = obj(item.get("format"), f"{name}.format")
        mime = fmt.get("type", "image/png")
        if not isinstance(identifier, str) or not isinstance(mime, str):
            raise InvalidRequestError(f"{name}: expected a string identifier and format.type, got {item!r:.80}")
        if identifier == USERDATA:
            if mime != "application/json":
                raise InvalidRequestError(f"{name}.format.type: got {mime!r:.40}; 'userdata' is application/json")
        elif identifier not in outputs:
            raise InvalidRequestError(f"{name}.identifier: got {identifier!r:.40}; the evalscript's setup() declares "
                                      f"the outputs {sorted(outputs)}")
        elif mime not in EXTENSIONS or mime == "application/json":
            raise InvalidRequestError(f"{name}.format.type: got {mime!r:.40}; expected image/tiff, image/png or "
                                      "image/jpeg")
        else:
            output = outputs[identifier]
            check_format(mime, len(output.bands), output.sample_type, identifier)
        quality = integer(fmt.get("quality", 90), f"{name}.format.quality", 1, 100, got_first=True)
        if any(r.identifier == identifier for r in parsed):
            raise InvalidRequestError(f"{name}.identifier: {identifier!r} is requested twice; expected each once")
        parsed.append(Response(identifier, mime, quality))
    return tuple(parsed)


def _ordered(found: list[Acquisition], order: str) -> list[Acquisition]:
    if order == "leastRecent":
        return sorted(found, key=lambda a: (a.datetime, a.id))
    if order == "leastCC":
        return sorted(found, key=lambda a: (a.cloud_cover if a.cloud_cover is not None else 100.0, a.datetime, a.id))
    return sorted(found, key=lambda a: (a.datetime, a.id), reverse=True)


def run_process(body: Any, archive: Archive, *, accept: str | None = None, model: CloudModel | None = None,
                cache: ProbabilityCache | None = None, limits: Limits | None = None) -> ProcessResult:
    """Answer a Process API request with the image (one response) or the tar (several, or ``accept`` a tar).

    The evalscript's mosaicking decides the samples (:meth:`Evalscript.plan`): one SIMPLE mosaic of every
    acquisition, one mosaic per UTC day (ORBIT) or one per acquisition (TILE), after ``preProcessScenes``.

    :raises SceneReadError: when, in SIMPLE mosaicking, every acquisition that could fill the image fails to read
        (in ORBIT and TILE such a sample has no data, and a warning says so).
    :raises InvalidRequestError: when the request's time budget runs out before the image is complete.
    """
    limits = limits or Limits()
    deadline = limits.deadline()
    request = parse_process_request(body, limits, deadline, collection_types(archive))
    script = request.evalscript
    grid = request.grid
    warnings: list[str] = []
    found = _ordered(archive.search(request.footprint, *_span(request, archive),
                                    max_cloud_cover=request.max_cloud_cover), request.mosaicking_order)
    limits.check_acquisitions(len(found))
    plan = script.plan([SceneTile.from_acquisition(a) for a in found], *_span(request, archive))
    by_id = {o.id: o for o in plan.outputs}
    for response in request.responses:
        if response.identifier != USERDATA:  # updateOutput may have changed the band counts
            output = by_id[response.identifier]
            check_format(response.mime, len(output.bands), output.sample_type, response.identifier)
    bands = [b for b in S2_BANDS if b in script.inputs] or ["B02"]  # B02 tells where there is data
    pixels = grid.shape[0] * grid.shape[1]
    samples = len(plan.groups)
    limits.check_memory(pixels * len(bands) * max(samples, 1), BAND_PIXEL_BYTES,
                        f"reading {len(bands)} bands over {grid.shape[1]} x {grid.shape[0]} pixels for {samples} "
                        "samples")
    values_per_pixel = len(script.inputs) * samples + sum(len(o.bands) for o in plan.outputs)
    limits.check_memory(pixels * values_per_pixel, EVALSCRIPT_VALUE_BYTES,
                        f"running the evalscript on {pixels} pixels x {values_per_pixel} inputs and outputs")
    script.check_capacity(pixels, values_per_pixel)
    inside = polygon_mask(request.clip, grid) if request.clip is not None else np.ones(grid.shape, dtype=bool)
    model = model or default_model()
    cache = default_cache() if cache is None else cache
    columns = []
    for group in plan.groups:
        tiles = [found[i] for i in group]
        try:
            mosaic = _mosaic(tiles, bands, request, deadline, limits, warnings)
        except SceneReadError as exc:
            if plan.mosaicking == "SIMPLE":
                raise
            warnings.append(f"a sample without data (its tiles cannot be read): {exc}")
            mosaic = Mosaic(grid.shape, bands)
        columns.append(_columns(mosaic, request, inside, model, cache, limits))
    result = script.run(plan, columns, pixels=pixels)
    files = []
    for response in request.responses:
        if response.identifier == USERDATA:
            files.append(Encoded(USERDATA, response.mime, encode_json({} if result.user_data is None
                                                                      else result.user_data)))
            continue
        output = by_id[response.identifier]
        values = result.outputs[output.id].reshape(grid.shape[0], grid.shape[1], len(output.bands))
        image = typed(np.where(inside[..., np.newaxis], values, 0.0), output.sample_type)
        files.append(Encoded(response.identifier, response.mime,
                             encode_image(image, response.mime, grid, response.quality)))
    if not found:
        warnings.append("no acquisition of the archive lies in the bounds and time range; every pixel has dataMask 0")
    if len(files) == 1 and not (accept and accept.split(";")[0].strip() in TAR_TYPES):
        return ProcessResult(files[0].data, files[0].mime, warnings)
    return ProcessResult(tar_of(files), TAR, warnings)


def _span(request: ProcessRequest, archive: Archive) -> tuple[dt.datetime, dt.datetime]:
    """The request's time range, or the archive's own when it gives none."""
    if request.time is not None:
        return request.time.start, request.time.end
    times = [a.datetime for a in archive.acquisitions]
    if not times:
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC), dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return min(times), max(times)


def _mosaic(found: list[Acquisition], bands: list[str], request: ProcessRequest, deadline: float, limits: Limits,
            warnings: list[str]) -> Mosaic:
    """The SIMPLE mosaic of ``found`` on the request's grid; an acquisition that cannot be read is left out
    (and named in ``warnings``) while the others fill the image."""
    grid = request.grid
    mosaic = Mosaic(grid.shape, bands)
    failed: list[str] = []
    for acq in found:
        if mosaic.complete:
            break
        if time.monotonic() > deadline:
            raise InvalidRequestError(f"process: the image is not complete: {limits.budget_message}; expected a "
                                      "smaller image or a shorter time range")
        try:
            arrays = read_bands(acq, bands, grid, request.sampling)
        except SceneReadError as exc:
            log.warning("process: %s", exc)
            failed.append(str(exc))
            continue
        mosaic.add(acq, arrays)
    if failed and not mosaic.acquisitions:
        raise SceneReadError(failed[0])
    warnings.extend(f"left out of the mosaic: {message}" for message in failed)
    return mosaic


def _columns(mosaic: Mosaic, request: ProcessRequest, inside: np.ndarray, model: CloudModel,
             cache: ProbabilityCache, limits: Limits) -> dict[str, np.ndarray]:
    """The evalscript's input columns, one value per grid pixel in row-major order."""
    script = request.evalscript
    data = mosaic.filled & inside
    columns = script.band_columns(mosaic.dn, mosaic.offset, data, request.harmonize)
    wanted: list[str] = [name for name in ("CLP", "CLM") if name in script.inputs]
    if wanted:
        columns.update(_cloud_columns(mosaic, request.grid, data, model, cache, limits, wanted))
    for name in (n for n in SUN_INPUTS if n in script.inputs):
        columns[name] = _sun_column(mosaic, data, name)
    return columns


def _cloud_columns(mosaic: Mosaic, grid: Grid, data: np.ndarray, model: CloudModel, cache: ProbabilityCache,
                   limits: Limits, names: list[str]) -> dict[str, np.ndarray]:
    """Per-pixel ``CLP`` (0..255) and ``CLM`` (0/1): each pixel takes the 160 m cloud cell containing its centre,
    of the acquisition it came from (Sentinel Hub's defaults: threshold 0.4, radii 4 and 2 cells)."""
    params = MaskParameters()
    area = box(*grid_bounds(grid))
    out = {name: np.zeros(grid.shape, dtype=np.float64) for name in names}
    for index, acq in enumerate(mosaic.acquisitions):
        where = data & (mosaic.source == index)
        if not where.any():
            continue
        cells = cloud_cells([acq], area, grid.crs, MODEL_BANDS, params, max_pixels=limits.max_pixels,
                            limits=limits).cells
        resolve_probabilities([cells], model, cache)
        x, y = pixel_centres(grid, where, cells.grid.crs)
        layers = point_clouds(cells, params, x, y).layers()
        for name in names:
            out[name][where] = layers[name]
    return {name: values.ravel() for name, values in out.items()}


def _sun_column(mosaic: Mosaic, data: np.ndarray, name: str) -> np.ndarray:
    """The mean sun zenith or azimuth angle (degrees) of each pixel's acquisition; 0 where there is no data.

    :raises InvalidRequestError: when an acquisition of the image has no sun angles in the archive.
    """
    out = np.zeros(data.shape, dtype=np.float64)
    for index, acq in enumerate(mosaic.acquisitions):
        if acq.sun_azimuth is None or acq.sun_elevation is None:
            raise InvalidRequestError(f"evalscript input {name}: scene {acq.id} has no sun angles in the archive "
                                      "(view:sun_azimuth, view:sun_elevation); expected an archive that has them")
        value = 90.0 - acq.sun_elevation if name == "sunZenithAngles" else acq.sun_azimuth
        out[data & (mosaic.source == index)] = value
    return out.ravel()
