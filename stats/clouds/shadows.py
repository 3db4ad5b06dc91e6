"""Cloud shadows: the cloud mask cast away from the sun over a range of cloud heights, where the ground is dark.

A cloud at height ``h`` shades the ground ``h / tan(elevation)`` metres from the point below it, away from
the sun (towards azimuth + 180 degrees). The cloud's height is not known, so the mask is cast for every
height from ``min_height_m`` to ``max_height_m``, in steps of at most half a pixel of displacement, and the
union of the casts is where a shadow can be (:func:`cast_shadows`). A pixel of that zone is shadow when its
near-infrared reflectance is dark: below ``dark_ratio`` times the median B08 of the window's lit land pixels
(valid, not cloud, not water, outside the zone). Shade removes the direct beam, so a shadowed pixel keeps
only the diffuse light plus the path radiance, a fraction of its lit B08 whatever its cover; a fixed
threshold would instead flag every dark cover. Water is dark in B08 whether shaded or not and is never
shadow: it is where NDWI = (B03 - B08) / (B03 + B08) is above ``water_ndwi`` (0.3, not 0: in the shade of
a cloud a field's NDWI rises towards 0 and beyond, as the path radiance, strongest in green, stays while the
surface signal falls; open water stays well above 0.3). Clouds are never shadow either.

:func:`detect_shadows` is the detector on arrays; :func:`shadow_margin_m` and :func:`sun_reach` say how far
towards the sun a caller must read around a polygon so that every cloud that can shade it is in the window;
:class:`ShadowInput` holds what a date's cloud block gives the detector in a query, and :func:`parse_shadows`
reads the request's ``cloud.shadows`` and ``cloud.shadow_heights_m``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..archive.catalog import MEAN_SOLAR_PROPERTIES, SUN_PROPERTIES
from ..bands import QUANTIFICATION_VALUE
from ..errors import InvalidRequestError
from ..fields import flag, number

if TYPE_CHECKING:
    from ..archive.catalog import Acquisition
    from ..grid import Grid
    from ..raster import PixelBlock

#: A pixel's ground size in metres: one number, or (east, north) where they differ (a geographic CRS).
PixelSize = float | tuple[float, float]

#: Default range of cloud-base heights, metres: low cumulus to mid-level cloud.
DEFAULT_HEIGHTS_M = (200.0, 4000.0)
#: Default dark-B08 rule: a shadow pixel's B08 is below this fraction of the lit land's median B08.
DEFAULT_DARK_RATIO = 0.5
#: Default water rule: NDWI above this is water, never shadow.
DEFAULT_WATER_NDWI = 0.3
#: Fewest lit land pixels whose median is the reference; with fewer, every clear land pixel of the window is.
MIN_REFERENCE_PIXELS = 100
#: Bands the detector reads besides the model's: B03 for the water test, B08 (also a model band).
SHADOW_BANDS = ("B03", "B08")
#: Highest cloud height ``cloud.shadow_heights_m`` takes, metres (the tropopause at its highest).
MAX_SHADOW_HEIGHT_M = 15000.0
#: Lowest sun elevation (degrees) shadows are cast for: below it shadows are longer than any window.
MIN_SUN_ELEVATION = 5.0


@dataclass(frozen=True)
class ShadowParameters:
    """How shadows are found: the cloud heights cast (metres), the dark-B08 ratio and the water NDWI."""

    min_height_m: float = DEFAULT_HEIGHTS_M[0]
    max_height_m: float = DEFAULT_HEIGHTS_M[1]
    dark_ratio: float = DEFAULT_DARK_RATIO
    water_ndwi: float = DEFAULT_WATER_NDWI

    def __post_init__(self) -> None:
        if not 0 <= self.min_height_m <= self.max_height_m:
            raise ValueError(f"expected 0 <= min_height_m <= max_height_m, got {self.min_height_m}, "
                             f"{self.max_height_m}")


def parse_shadows(cloud: dict[str, Any]) -> dict[str, Any]:
    """The shadow fields of the ``cloud`` object: ``shadows`` (a flag) and ``shadow_heights_m`` (``[min, max]``
    metres, only with ``shadows``)."""
    shadows = flag(cloud.get("shadows"), "cloud.shadows", False)
    heights = cloud.get("shadow_heights_m")
    if heights is None:
        return {"shadows": shadows}
    if not shadows:
        raise InvalidRequestError("cloud.shadow_heights_m: sets the heights shadows are cast from; expected "
                                  "cloud.shadows true with it")
    if not isinstance(heights, list) or len(heights) != 2:
        raise InvalidRequestError(f"cloud.shadow_heights_m: expected [min, max] cloud heights in metres such as "
                                  f"[200, 4000], got {heights!r:.80}")
    low, high = (number(h, "cloud.shadow_heights_m", 0, MAX_SHADOW_HEIGHT_M, "m") for h in heights)
    if low > high:
        raise InvalidRequestError(f"cloud.shadow_heights_m: got {heights!r:.80}, whose min is above its max; "
                                  "expected [min, max] with min <= max")
    return {"shadows": shadows, "shadow_heights_m": (low, high)}


def shadow_length_m(height_m: float, elevation: float) -> float:
    """Horizontal distance (metres) from a point at ``height_m`` to its shadow, the sun ``elevation`` degrees up.

    >>> round(shadow_length_m(1000.0, 45.0), 6)
    1000.0
    """
    if elevation < MIN_SUN_ELEVATION:
        raise ValueError(f"sun elevation {elevation} degrees is below {MIN_SUN_ELEVATION}; no shadow is cast")
    return height_m / math.tan(math.radians(elevation))


def shadow_margin_m(params: ShadowParameters, elevation: float) -> float:
    """How far (metres) towards the sun around a polygon every cloud that can shade it lies: the shadow
    length of the highest cloud cast."""
    return shadow_length_m(params.max_height_m, elevation)


def _away_from_sun(azimuth: float, pixel_size: PixelSize) -> tuple[float, float]:
    """(row, column) pixels of a grid (rows southwards, columns eastwards) per metre away from the sun."""
    east_m, north_m = (pixel_size, pixel_size) if isinstance(pixel_size, (int, float)) else pixel_size
    away = math.radians(azimuth + 180.0)
    return -math.cos(away) / north_m, math.sin(away) / east_m


def shadow_offsets(params: ShadowParameters, azimuth: float, elevation: float, pixel_size: PixelSize) -> np.ndarray:
    """The whole-pixel (row, column) displacements from a cloud to its shadow, one per distinct pixel,
    for the heights of ``params`` (int64 ``(n, 2)``, sampled every half pixel of displacement).

    ``azimuth`` is clockwise from north, ``elevation`` above the horizon (degrees); rows run south;
    ``pixel_size`` is the pixel's ground size in metres.
    """
    near = shadow_length_m(params.min_height_m, elevation)
    far = shadow_length_m(params.max_height_m, elevation)
    drow, dcol = _away_from_sun(azimuth, pixel_size)
    span = (far - near) * max(abs(drow), abs(dcol))  # pixels along the longer axis
    distances = np.linspace(near, far, max(2, math.ceil(2 * span) + 1))
    steps = np.column_stack([np.rint(drow * distances), np.rint(dcol * distances)]).astype(np.int64)
    return np.unique(steps, axis=0)


def cast_shadows(cloud: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Union of ``cloud`` (bool 2-D) moved by every (row, column) offset; what moves off the grid is lost."""
    rows, cols = cloud.shape
    out = np.zeros_like(cloud, dtype=bool)
    for dr, dc in np.asarray(offsets).tolist():
        if abs(dr) >= rows or abs(dc) >= cols:
            continue
        out[max(dr, 0):rows + min(dr, 0), max(dc, 0):cols + min(dc, 0)] |= \
            cloud[max(-dr, 0):rows + min(-dr, 0), max(-dc, 0):cols + min(-dc, 0)]
    return out


def water_mask(green: np.ndarray, nir: np.ndarray, threshold: float = DEFAULT_WATER_NDWI) -> np.ndarray:
    """Open water: NDWI = (B03 - B08) / (B03 + B08) above ``threshold`` (reflectances; no data is not water)."""
    total = green + nir
    with np.errstate(invalid="ignore", divide="ignore"):
        ndwi = np.where(total > 0, (green - nir) / np.where(total > 0, total, 1), -1.0)
    return np.asarray(ndwi > threshold)


def detect_shadows(cloud: np.ndarray, nir: np.ndarray, water: np.ndarray, valid: np.ndarray, *, pixel_size: PixelSize,
                   azimuth: float, elevation: float, params: ShadowParameters | None = None) -> np.ndarray:
    """The shadow mask (bool) of a window.

    :param cloud: bool, the cloud mask on the window's grid (rows southwards).
    :param nir: B08 reflectance, same shape.
    :param water: bool, open water (e.g. :func:`water_mask`), never shadow.
    :param valid: bool, pixels with data; others are never shadow.
    :param pixel_size: the grid's pixel size on the ground, metres (or (east, north)).
    :param azimuth: sun azimuth, degrees clockwise from north; ``elevation`` above the horizon.
    :returns: pixels in the cast of the cloud mask (:func:`cast_shadows`) that are valid, not cloud, not
        water and whose B08 is below ``dark_ratio`` times the median B08 of the lit land pixels (valid, not
        cloud, not water, out of the cast; all the clear land of the window when fewer than
        :data:`MIN_REFERENCE_PIXELS` are lit). No clear land at all: no shadow.
    """
    params = params or ShadowParameters()
    cloud = np.asarray(cloud, dtype=bool)
    zone = cast_shadows(cloud, shadow_offsets(params, azimuth, elevation, pixel_size))
    land = valid & ~cloud & ~water
    lit = land & ~zone
    reference_pixels = nir[lit] if np.count_nonzero(lit) >= MIN_REFERENCE_PIXELS else nir[land]
    if reference_pixels.size == 0:
        return np.zeros(cloud.shape, dtype=bool)
    dark = nir < params.dark_ratio * float(np.median(reference_pixels))
    return np.asarray(zone & land & dark)


def sun_reach(params: ShadowParameters, azimuth: float, elevation: float,
              pixel_size: PixelSize) -> tuple[int, int, int, int]:
    """Pixels (left, top, right, bottom) to read beyond a polygon's bounds towards the sun, so that every
    cloud that can shade the polygon is in the window (:func:`shadow_margin_m`, plus one pixel)."""
    margin = shadow_margin_m(params, elevation)
    drow, dcol = _away_from_sun(azimuth, pixel_size)
    row, col = -drow * margin, -dcol * margin  # from a shadow to its highest cloud, in pixels
    return (math.ceil(max(-col, 0.0)) + 1, math.ceil(max(-row, 0.0)) + 1, math.ceil(max(col, 0.0)) + 1,
            math.ceil(max(row, 0.0)) + 1)


def missing_sun_angles(azimuth: float | None, elevation: float | None) -> str | None:
    """The warning of a date whose item lacks usable sun angles (naming the properties), else None."""
    missing = []
    if azimuth is None:
        missing.append(f"{SUN_PROPERTIES[0]} (or {MEAN_SOLAR_PROPERTIES[0]})")
    if elevation is None:
        missing.append(f"{SUN_PROPERTIES[1]} (or {MEAN_SOLAR_PROPERTIES[1]})")
    if missing:
        return (f"cloud.shadows: the item has no {' and no '.join(missing)}; shadows are not computed for this "
                "date (shadow_fraction null)")
    if elevation is not None and elevation < MIN_SUN_ELEVATION:
        return (f"cloud.shadows: the sun is {elevation:g} degrees high, below {MIN_SUN_ELEVATION:g}; shadows are not "
                "computed for this date (shadow_fraction null)")
    return None


@dataclass(frozen=True)
class ShadowInput:
    """What the detector needs from one date's 10 m block: its ``grid``, B08 and B03 reflectance, the valid
    pixels, the pixel's ground size (metres, east and north) and the sun angles of the date's first tile."""

    grid: Grid
    nir: np.ndarray
    green: np.ndarray
    valid: np.ndarray
    pixel_size: tuple[float, float]
    azimuth: float
    elevation: float

    @classmethod
    def of(cls, block: PixelBlock, acquisition: Acquisition, pixel_size: tuple[float, float]) -> ShadowInput:
        """From a block holding B03 and B08, the tile whose sun angles it uses (which must have them) and the
        ground size of the block's pixels."""
        if acquisition.sun_azimuth is None or acquisition.sun_elevation is None:
            raise ValueError(f"acquisition {acquisition.id} has no sun angles")
        scale = np.float32(QUANTIFICATION_VALUE)
        return cls(grid=block.grid, nir=block.dn["B08"] / scale, green=block.dn["B03"] / scale, valid=block.data,
                   pixel_size=pixel_size, azimuth=acquisition.sun_azimuth, elevation=acquisition.sun_elevation)

    def detect(self, cloud: np.ndarray, params: ShadowParameters) -> np.ndarray:
        """The shadow mask of the block under ``cloud`` (bool, the block's shape)."""
        return detect_shadows(cloud, self.nir, water_mask(self.green, self.nir, params.water_ndwi), self.valid,
                              pixel_size=self.pixel_size, azimuth=self.azimuth, elevation=self.elevation,
                              params=params)


def shadow_fraction(shadow: np.ndarray, weights: Sequence[float] | np.ndarray | None = None) -> float | None:
    """Share (weighted in exact mode) of the pixels in shadow; None without pixels."""
    if shadow.size == 0:
        return None
    return float(np.average(shadow, weights=weights))


def shadow_reach(acquisition: Acquisition, params: ShadowParameters,
                 pixel_size: PixelSize) -> tuple[tuple[int, int, int, int], str | None]:
    """The :func:`sun_reach` of a date's first tile and None, or no reach and the warning of a tile whose
    sun angles are missing (:func:`missing_sun_angles`)."""
    warning = missing_sun_angles(acquisition.sun_azimuth, acquisition.sun_elevation)
    if warning is not None or acquisition.sun_azimuth is None or acquisition.sun_elevation is None:
        return (0, 0, 0, 0), warning
    return sun_reach(params, acquisition.sun_azimuth, acquisition.sun_elevation, pixel_size), None
