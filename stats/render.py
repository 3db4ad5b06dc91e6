"""Quicklook images of one acquisition date over a lon/lat box: true colour (or any one or three bands), or a
stored cloud layer (``CLP``, ``CLM``), as an RGBA PNG on the Web Mercator grid web maps draw (EPSG:3857).

The image is ``width`` x ``height`` pixels spanning the box's Web Mercator bounds. Each pixel takes the value
of the source pixel under its centre (nearest neighbour), read by rio-tiler from the acquisition's COG assets
(from an overview when the COG has one as fine as the image's pixels). When several tiles of the date cover the
box, the first in acquisition order wins where it has data, as in the statistics' mosaic.

Colours:

* bands: reflectance ``max(DN - offset, 0) / 10000`` (the baseline offset removed unless ``harmonize`` is
  false), scaled to bytes by ``round(255 * reflectance / max_reflectance)`` clipped to 0..255; three bands are
  red, green and blue, one band is grey. Opaque where every band has data (DN 0 is no data), transparent
  elsewhere.
* ``CLP`` (cloud probability, stored as ``round(255 p)``): grey, the stored byte in red, green and blue, opaque
  where the layers have data (CLP has no no-data value; CLM's 255 marks the cells without data).
* ``CLM`` (cloud mask, 0 clear, 1 cloud, 255 no data): an overlay, :data:`CLOUD_RGBA` on cloud, transparent
  on clear and no data.

Cloud layers are stored by ``polyfis clouds``; an acquisition without them is a
:class:`~stats.errors.NotFoundError` that says so.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.io import MemoryFile
from rasterio.warp import transform_bounds
from shapely.geometry import box

from .archive.catalog import CLM_ASSET, CLP_ASSET, Acquisition, Archive, group_by_date
from .bands import S2_BANDS
from .clouds.cells import NO_DATA
from .errors import InvalidRequestError, NotFoundError, SceneReadError
from .request import Limits

#: Stored cloud layers a quicklook can show.
CLOUD_LAYERS = (CLP_ASSET, CLM_ASSET)
#: The image grid's CRS: Web Mercator, in which web maps place an image by its corners.
WEB_MERCATOR = CRS.from_epsg(3857)
#: Latitude limit of Web Mercator.
MAX_LATITUDE = 85.0511
#: Largest width or height, pixels.
MAX_SIDE = 4096
#: The longer side when neither width nor height is given, pixels.
DEFAULT_SIDE = 512
#: Reflectance drawn as full brightness by default.
DEFAULT_MAX_REFLECTANCE = 0.3
DEFAULT_BANDS = ("B04", "B03", "B02")
#: Colour of a cloud pixel of the CLM overlay (red, green, blue, alpha).
CLOUD_RGBA = (255, 0, 255, 140)
#: Query parameters of a render request.
PARAMETERS = ("bbox", "bands", "width", "height", "max_reflectance", "harmonize")


@dataclass(frozen=True)
class RenderRequest:
    """What to draw: the date, the lon/lat box, the bands (or one cloud layer) and the image size."""

    day: dt.date
    bbox: tuple[float, float, float, float]
    bands: tuple[str, ...] = DEFAULT_BANDS
    width: int = DEFAULT_SIDE
    height: int = DEFAULT_SIDE
    max_reflectance: float = DEFAULT_MAX_REFLECTANCE
    harmonize: bool = True

    @property
    def layer(self) -> str | None:
        """The cloud layer drawn (``CLP`` or ``CLM``), or None for bands."""
        return self.bands[0] if self.bands[0] in CLOUD_LAYERS else None

    @property
    def mercator_bounds(self) -> tuple[float, float, float, float]:
        """The box's bounds in Web Mercator metres."""
        return mercator_bounds(self.bbox)

    @classmethod
    def parse(cls, day: str, args: Mapping[str, str], limits: Limits | None = None) -> RenderRequest:
        """Parse a date (``YYYY-MM-DD``) and query parameters (:data:`PARAMETERS`); 400 naming what is wrong.

        >>> r = RenderRequest.parse("2023-06-14", {"bbox": "15.02,46.03,15.03,46.04", "width": "200"})
        >>> r.bands, r.width, r.height
        (('B04', 'B03', 'B02'), 200, 288)
        """
        limits = limits or Limits()
        unknown = sorted(set(args) - set(PARAMETERS))
        if unknown:
            raise InvalidRequestError(f"{unknown[0]!r:.40}: unknown parameter; expected some of {list(PARAMETERS)}")
        bbox = parse_bbox(args.get("bbox"))
        bands = parse_bands(args.get("bands"))
        width, height = parse_size(args.get("width"), args.get("height"), mercator_bounds(bbox))
        if width * height > limits.max_pixels:
            raise InvalidRequestError(
                f"width, height: {width} x {height} = {width * height:,} pixels, more than the limit of "
                f"{limits.max_pixels:,} (POLYFIS_MAX_PIXELS); ask for a smaller image")
        return cls(day=parse_day(day), bbox=bbox, bands=bands, width=width, height=height,
                   max_reflectance=parse_max_reflectance(args.get("max_reflectance")),
                   harmonize=parse_flag(args.get("harmonize"), "harmonize", default=True))


def parse_day(text: str) -> dt.date:
    """An ISO calendar date ``YYYY-MM-DD``."""
    try:
        if len(text) != 10:
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidRequestError(f"date: got {text!r:.40}; expected an ISO date YYYY-MM-DD") from None


def parse_bbox(text: str | None) -> tuple[float, float, float, float]:
    """``min_lon,min_lat,max_lon,max_lat`` in EPSG:4326, inside Web Mercator's latitudes."""
    if not text:
        raise InvalidRequestError("bbox: missing; expected min_lon,min_lat,max_lon,max_lat (EPSG:4326)")
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InvalidRequestError(f"bbox: got {text!r:.80}; expected four numbers min_lon,min_lat,max_lon,max_lat")
    x0, y0, x1, y1 = values
    if not (-180 <= x0 < x1 <= 180):
        raise InvalidRequestError(f"bbox: longitudes {x0}, {x1}; expected -180 <= min_lon < max_lon <= 180")
    if not (-MAX_LATITUDE <= y0 < y1 <= MAX_LATITUDE):
        raise InvalidRequestError(
            f"bbox: latitudes {y0}, {y1}; expected -{MAX_LATITUDE} <= min_lat < max_lat <= {MAX_LATITUDE} "
            "(Web Mercator; is the box in lat, lon order?)")
    return x0, y0, x1, y1


def parse_bands(text: str | None) -> tuple[str, ...]:
    """One or three band names (case-insensitive), or one cloud layer; default true colour."""
    if text is None:
        return DEFAULT_BANDS
    names = tuple(p.strip().upper() for p in text.split(","))
    known = (*S2_BANDS, *CLOUD_LAYERS)
    for name in names:
        if name not in known:
            raise InvalidRequestError(f"bands: unknown band {name!r:.20}; expected bands of {list(known)}")
    if any(n in CLOUD_LAYERS for n in names) and len(names) != 1:
        raise InvalidRequestError(f"bands: got {list(names)}; a cloud layer (CLP or CLM) is drawn alone")
    if len(names) not in (1, 3):
        raise InvalidRequestError(f"bands: got {len(names)} bands; expected 1 (grey) or 3 (red, green, blue)")
    return names


def parse_size(width: str | None, height: str | None,
               bounds: tuple[float, float, float, float]) -> tuple[int, int]:
    """Width and height in pixels (1 to :data:`MAX_SIDE`); a missing one keeps the box's aspect ratio, and
    with neither the longer side is :data:`DEFAULT_SIDE`."""
    aspect = (bounds[2] - bounds[0]) / (bounds[3] - bounds[1])
    w = _side(width, "width")
    h = _side(height, "height")
    if w is not None and h is not None:
        return w, h
    if w is not None:
        return w, _clamp(w / aspect)
    if h is not None:
        return _clamp(h * aspect), h
    if aspect >= 1:
        return DEFAULT_SIDE, _clamp(DEFAULT_SIDE / aspect)
    return _clamp(DEFAULT_SIDE * aspect), DEFAULT_SIDE


def _clamp(side: float) -> int:
    return max(1, min(MAX_SIDE, round(side)))


def _side(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_SIDE:
        raise InvalidRequestError(f"{name}: got {text!r:.20}; expected an integer from 1 to {MAX_SIDE}")
    return value


def parse_max_reflectance(text: str | None) -> float:
    """The reflectance drawn as full brightness, above 0 and at most 2."""
    if text is None:
        return DEFAULT_MAX_REFLECTANCE
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 2:
        raise InvalidRequestError(f"max_reflectance: got {text!r:.20}; expected a number above 0 and at most 2")
    return value


def parse_flag(text: str | None, name: str, *, default: bool) -> bool:
    """``true``/``false`` (also 1/0)."""
    if text is None:
        return default
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidRequestError(f"{name}: got {text!r:.20}; expected true or false")
    return value in ("true", "1")


def mercator_bounds(bbox: Sequence[float]) -> tuple[float, float, float, float]:
    """Lon/lat bounds in Web Mercator metres."""
    x0, y0, x1, y1 = transform_bounds("EPSG:4326", WEB_MERCATOR, *bbox)
    return float(x0), float(y0), float(x1), float(y1)


@dataclass(frozen=True)
class Rendered:
    """A drawn image: the PNG, its RGBA pixels (band-first) and the acquisitions drawn, in mosaic order."""

    png: bytes
    rgba: np.ndarray
    acquisitions: tuple[str, ...]


def date_acquisitions(archive: Archive, day: dt.date, bbox: Sequence[float]) -> list[Acquisition]:
    """The date's acquisitions whose footprint meets the box, in mosaic order; a 404 naming the nearest dates
    when there is none."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    found = archive.search(box(*bbox), start, start + dt.timedelta(days=1) - dt.timedelta(microseconds=1))
    if found:
        return group_by_date(found)[0]
    dates = sorted({a.date for a in archive.search(box(*bbox), dt.datetime.min.replace(tzinfo=dt.UTC),
                                                   dt.datetime.max.replace(tzinfo=dt.UTC))})
    if not dates:
        raise NotFoundError(f"bbox: no acquisition of the archive covers {list(bbox)}")
    nearest = sorted(dates, key=lambda d: abs((d - day).days))[:3]
    raise NotFoundError(f"date: no acquisition on {day.isoformat()} covers the bbox; the nearest dates with one are "
                        f"{', '.join(d.isoformat() for d in sorted(nearest))}")


def asset_hrefs(acq: Acquisition, bands: Sequence[str]) -> list[str]:
    """The hrefs to read for ``bands`` of ``acq``: the bands' COGs, or a cloud layer's (CLP is read with CLM,
    whose 255 flags the cells without data); a cloud layer the item lacks is a 404 that says how to store it."""
    if bands[0] in CLOUD_LAYERS:
        layers = acq.cloud_layers
        if layers is None:
            raise NotFoundError(
                f"bands: the cloud layer {bands[0]} is absent from acquisition {acq.id}: the archive's cloud layers "
                "(CLP and CLM) have not been stored; run `polyfis clouds` on the archive to store them")
        return [layers.clm] if bands[0] == "CLM" else [layers.clp, layers.clm]
    hrefs = []
    for band in bands:
        href = acq.assets.get(band)
        if href is None:
            raise NotFoundError(f"bands: acquisition {acq.id} has no asset {band}")
        hrefs.append(href)
    return hrefs


def source_pixels(dataset: rasterio.DatasetReader, bounds: Sequence[float], width: int) -> float:
    """About how many source pixels drawing ``bounds`` (Web Mercator) ``width`` pixels wide reads from
    ``dataset``: the box's part of the dataset, at the coarsest overview still as fine as the image."""
    x0, y0, x1, y1 = transform_bounds(WEB_MERCATOR, dataset.crs, *bounds)
    left, bottom, right, top = dataset.bounds
    inside_w, inside_h = min(x1, right) - max(x0, left), min(y1, top) - max(y0, bottom)
    if inside_w <= 0 or inside_h <= 0:
        return 0.0
    res = abs(dataset.transform.a)
    image_res = (x1 - x0) / width
    factor = max([1, *(f for f in dataset.overviews(1) if res * f <= image_res)])
    return (inside_w / (res * factor)) * (inside_h / (res * factor))


def render(request: RenderRequest, archive: Archive, limits: Limits | None = None) -> Rendered:
    """Draw ``request`` from ``archive``.

    :raises NotFoundError: no acquisition on the date covers the box, or a cloud layer is not stored.
    :raises InvalidRequestError: the reads would pass ``limits`` (source pixels, memory).
    :raises SceneReadError: an asset cannot be read.
    """
    from rio_tiler.io import Reader

    limits = limits or Limits()
    acquisitions = date_acquisitions(archive, request.day, request.bbox)
    hrefs = [asset_hrefs(acq, request.bands) for acq in acquisitions]
    pixels = request.width * request.height
    limits.check_memory(pixels * len(request.bands) * (len(acquisitions) + 1), 8, "the image")
    bounds = request.mercator_bounds
    values = np.zeros((len(request.bands), request.height, request.width), np.float32)
    filled = np.zeros((request.height, request.width), bool)
    used: list[str] = []
    reads: list[tuple[Acquisition, list[np.ma.MaskedArray]]] = []
    total = 0.0
    try:
        for acq, acq_hrefs in zip(acquisitions, hrefs):
            arrays = []
            for href in acq_hrefs:
                with Reader(href) as src:
                    total += source_pixels(src.dataset, bounds, request.width)
                    if total > limits.max_pixels:
                        raise InvalidRequestError(
                            f"bbox: drawing it reads about {total:,.0f} source pixels, more than the limit of "
                            f"{limits.max_pixels:,} (POLYFIS_MAX_PIXELS); ask for a smaller bbox, or a smaller "
                            "width and height where the COGs have overviews")
                    image = src.part(bounds, dst_crs=WEB_MERCATOR, bounds_crs=WEB_MERCATOR, width=request.width,
                                     height=request.height, resampling_method="nearest", max_size=None)
                arrays.append(image.array[0])
            reads.append((acq, arrays))
    except RasterioIOError as exc:
        raise SceneReadError(f"imagery of {request.day.isoformat()} cannot be read: {exc}") from exc
    for acq, arrays in reads:
        valid = np.logical_and.reduce([~np.ma.getmaskarray(a) for a in arrays])
        if request.layer is not None:
            valid &= np.ma.getdata(arrays[-1]) != NO_DATA  # CLM flags the cells without data
        take = valid & ~filled
        if not take.any():
            continue
        used.append(acq.id)
        offset = acq.dn_offset if request.harmonize and request.layer is None else 0
        for i, array in enumerate(arrays[:len(request.bands)]):
            data = np.ma.getdata(array).astype(np.float32)
            values[i][take] = data[take] if request.layer else np.maximum(data[take] - offset, 0) / 10000
        filled |= take
    rgba = colour(request, values, filled)
    return Rendered(png=encode_png(rgba), rgba=rgba, acquisitions=tuple(used))


def colour(request: RenderRequest, values: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """RGBA bytes (4, height, width) of the mosaicked values (reflectance, or the cloud layer's bytes)."""
    rgba = np.zeros((4, *filled.shape), np.uint8)
    if request.layer == "CLM":
        cloud = filled & (values[0] == 1)
        for i, channel in enumerate(CLOUD_RGBA):
            rgba[i][cloud] = channel
        return rgba
    if request.layer == "CLP":
        scaled = np.clip(values, 0, 255).astype(np.uint8)
    else:
        scaled = np.clip(np.rint(values * (255 / request.max_reflectance)), 0, 255).astype(np.uint8)
    channels = scaled if len(scaled) == 3 else np.repeat(scaled, 3, axis=0)
    rgba[:3] = np.where(filled, channels, 0)
    rgba[3] = np.where(filled, 255, 0)
    return rgba


def encode_png(rgba: np.ndarray) -> bytes:
    """A PNG of RGBA bytes (4, height, width)."""
    _, height, width = rgba.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile() as memory:
            with memory.open(driver="PNG", width=width, height=height, count=4, dtype="uint8") as png:
                png.write(rgba)
            return bytes(memory.read())
