"""Water of one date over its region: the validity rules, the water pixels, their share, area and polygon.

:func:`measure` applies, in order: ``NODATA`` when less than ``min_valid`` of the region (by area) has
data; ``CLOUDY`` when more than ``max_cloud_fraction`` of the valid pixels is under the per-pixel cloud
mask; otherwise the date is measured over its clear valid pixels with the threshold of
:mod:`stats.water.threshold`. In monitoring mode the water is the connected water pixels (4-connected, as
``rasterio.features.shapes`` traces them) that reach the nominal outline, so that ponds and wet fields in
the buffer that do not touch the water body are left out (as BlueDot keeps the water polygons that
intersect the nominal one). :func:`extent_geometry` traces the water pixels into a (Multi)Polygon.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, mapping, shape
from shapely.geometry.base import BaseGeometry

from ..clouds.options import MaskParameters
from ..geometry import WGS84, reproject
from ..grid import Grid
from .options import WaterOptions
from .region import WaterRegion
from .result import Water
from .threshold import water_threshold

#: Decimal places of the extent's lon/lat (1e-7 degree is about 1 cm).
EXTENT_DECIMALS = 7


def connected_to(water: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The 4-connected components of ``water`` that hold a ``seeds`` pixel.

    >>> w = np.array([[1, 1, 0, 1], [0, 0, 0, 1]], dtype=bool)
    >>> connected_to(w, np.array([[1, 0, 0, 0], [0, 0, 0, 0]], dtype=bool)).astype(int).tolist()
    [[1, 1, 0, 0], [0, 0, 0, 0]]
    """
    from scipy import ndimage

    labels, count = ndimage.label(water)
    if count == 0:
        return water.copy()
    keep = np.zeros(count + 1, dtype=bool)
    keep[np.unique(labels[seeds & water])] = True
    keep[0] = False
    return np.asarray(keep[labels])


def extent_geometry(water: np.ndarray, grid: Grid) -> BaseGeometry:
    """The water pixels as a (Multi)Polygon in EPSG:4326 (lon, lat): their squares traced by
    ``rasterio.features.shapes`` on ``grid``, reprojected, exteriors counter-clockwise (RFC 7946).

    >>> from affine import Affine
    >>> from pyproj import CRS
    >>> grid = Grid(CRS.from_epsg(32633), Affine(10, 0, 500000, 0, -10, 5100000), (2, 3))
    >>> geom = extent_geometry(np.array([[1, 1, 0], [0, 1, 0]], dtype=bool), grid)
    >>> geom.geom_type, round(reproject(geom, WGS84, grid.crs).area)
    ('Polygon', 300)
    """
    from rasterio.features import shapes

    parts = [shape(geom) for geom, value in shapes(water.astype(np.uint8), mask=water, transform=grid.transform,
                                                   connectivity=4) if value == 1]
    if not parts:
        return MultiPolygon()
    merged: BaseGeometry = parts[0] if len(parts) == 1 else MultiPolygon(parts)
    lonlat = reproject(merged, grid.crs, WGS84)
    return shapely.orient_polygons(lonlat, exterior_cw=False)  # type: ignore[no-any-return]


def geojson(geom: BaseGeometry) -> dict[str, Any]:
    """GeoJSON of ``geom`` with coordinates rounded to :data:`EXTENT_DECIMALS` places, as lists."""
    rounded = shapely.transform(geom, lambda xy: np.round(xy, EXTENT_DECIMALS))
    out: dict[str, Any] = _lists(mapping(rounded))
    return out


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value


def measure(options: WaterOptions, region: WaterRegion, params: MaskParameters) -> Water:
    """The water of one date over ``region`` (its cloud cells resolved), with the rules of the module."""
    weights = region.coverage if region.coverage is not None else np.ones(region.grid.shape)
    valid = region.valid
    inside_area = float(weights[region.inside].sum())
    valid_area = float(weights[valid].sum())
    valid_fraction = valid_area / inside_area if inside_area else 0.0
    cloudy = region.cloudy(params)
    cloud_fraction = float(weights[valid & cloudy].sum()) / valid_area if valid_area else None
    answer = partial(Water, nominal_area_m2=region.nominal_area_m2, valid_fraction=valid_fraction,
                     cloud_fraction=cloud_fraction)
    usable = valid & ~cloudy & np.isfinite(region.index)
    if valid_fraction < options.min_valid or cloud_fraction is None:
        return answer("NODATA")
    if cloud_fraction > options.max_cloud_fraction:
        return answer("CLOUDY")
    if not usable.any():  # clear valid pixels whose index is not finite (every band 0 after harmonising)
        return answer("NODATA")
    threshold = water_threshold(region.index, usable, options.method, options.threshold)
    with np.errstate(invalid="ignore"):
        water = usable & (region.index > threshold.value)
    if region.outline is not None:
        water = connected_to(water, region.outline)
    fraction = float(weights[water].sum()) / float(weights[usable].sum())
    area = fraction * inside_area * region.grid.pixel_area
    extent = geojson(extent_geometry(water, region.grid)) if options.extent else None
    return answer("OK", fraction=fraction, area_m2=area,
                  level=area / region.nominal_area_m2 if region.nominal_area_m2 > 0 else None,
                  threshold=threshold.value, threshold_method=threshold.method, extent=extent)
