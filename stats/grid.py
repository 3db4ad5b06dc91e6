"""Pixel grids: a north-up :class:`Grid`, the grids queries are read on, and what lies on a grid.

polyfis's own routes read on a tile's grid scaled to the query resolution (:func:`query_grid`, anchored at
the tile's origin, pixels of :func:`pixel_size_10m` times ``resolution / 10``); Sentinel Hub's APIs read on
the grid of the request instead: :func:`request_grid` is the bounding box in the request's CRS cut into
``width`` x ``height`` pixels (or pixels of ``resx`` x ``resy``). The bands are brought onto either by
:mod:`stats.raster`.

Mask convention: :func:`polygon_mask` is True where the pixel centre lies inside the polygon
(``all_touched=False``); :func:`pixel_centres` gives those centres' coordinates.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.features import geometry_mask
from shapely.geometry.base import BaseGeometry

from .errors import InvalidRequestError
from .geometry import WGS84
from .request import DEFAULT_MAX_PIXELS

#: Tolerance of the grid arithmetic: a pixel coordinate, or a ratio of pixel sizes, this close to a whole number
#: counts as whole.
EPS = 1e-6


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: ``transform`` (affine, CRS units), ``shape`` (rows, cols), ``crs``."""

    crs: CRS
    transform: Affine
    shape: tuple[int, int]

    @property
    def pixel_size(self) -> tuple[float, float]:
        """Pixel (width, height) in CRS units."""
        return float(self.transform.a), float(-self.transform.e)

    @property
    def pixel_area(self) -> float:
        """Pixel area in CRS units squared."""
        return float(abs(self.transform.a * self.transform.e))

    @cached_property
    def crs_wkt(self) -> str:
        """The CRS as WKT, worked out once per grid (it keys the windows read onto it)."""
        return str(self.crs.to_wkt())


def pixel_size_10m(finest: Affine) -> tuple[float, float]:
    """Pixel (width, height) of the tile's 10 m class, from its finest band scaled by its nominal class."""
    nominal = min((10, 20, 60), key=lambda r: abs(r - abs(finest.a)))
    return abs(finest.a) * 10.0 / nominal, abs(finest.e) * 10.0 / nominal


Pad = int | tuple[int, int, int, int]


def query_grid(anchor: Affine, crs: CRS, pixel: tuple[float, float], geom: BaseGeometry, *,
               max_pixels: int, pad: Pad = 0, snap: int = 1, extent: tuple[int, int] | None = None) -> Grid:
    """Grid of pixel size ``pixel`` (width, height) anchored at ``anchor``'s origin, covering ``geom``.

    ``pad`` adds pixels around the polygon's bounds (one number for every side, or (left, top, right,
    bottom)), but not beyond ``extent`` (the tile's (rows, cols) in grid pixels) where the polygon itself
    does not go; ``snap`` moves the grid's first row and column to a multiple of ``snap`` pixels from the
    anchor, so that cells of ``snap`` x ``snap`` pixels line up.
    """
    minx, miny, maxx, maxy = geom.bounds
    x0, y0 = anchor.c, anchor.f
    px, py = pixel
    col0 = math.floor((minx - x0) / px + EPS)
    col1 = math.ceil((maxx - x0) / px - EPS)
    row0 = math.floor((y0 - maxy) / py + EPS)
    row1 = math.ceil((y0 - miny) / py - EPS)
    left, top, right, bottom = (pad, pad, pad, pad) if isinstance(pad, int) else pad
    if left or top or right or bottom:
        rows_max, cols_max = extent if extent is not None else (row1 + bottom, col1 + right)
        col0, row0 = min(col0, max(col0 - left, 0)), min(row0, max(row0 - top, 0))
        col1, row1 = max(col1, min(col1 + right, cols_max)), max(row1, min(row1 + bottom, rows_max))
    col0, row0 = (col0 // snap) * snap, (row0 // snap) * snap
    if snap > 1:
        # whole cells only, so that a cell always holds the same pixels whatever the polygon (but at the
        # tile's edge, where the tile itself ends the cell)
        rows_max, cols_max = extent if extent is not None else (None, None)
        col1_whole, row1_whole = -(-col1 // snap) * snap, -(-row1 // snap) * snap
        col1 = min(col1_whole, cols_max) if cols_max is not None and col1 <= cols_max else col1_whole
        row1 = min(row1_whole, rows_max) if rows_max is not None and row1 <= rows_max else row1_whole
    width, height = max(col1 - col0, 1), max(row1 - row0, 1)
    if width * height > max_pixels:
        raise InvalidRequestError(
            f"geometry: the polygon's bounding box is {width} x {height} = {width * height} pixels at this "
            f"resolution, more than the limit of {max_pixels}; use a coarser resolution or a smaller polygon"
        )
    transform = Affine(px, 0.0, x0 + col0 * px, 0.0, -py, y0 - row0 * py)
    return Grid(crs, transform, (height, width))


_MASKS: OrderedDict[tuple[bytes, tuple[float, ...], tuple[int, int]], np.ndarray] = OrderedDict()
_MASKS_MAX_BYTES = 32 * 2**20  # masks are one byte per pixel: 32 MiB holds a year of small fields many times over
_MASKS_LOCK = threading.Lock()


def polygon_mask(geom: BaseGeometry, grid: Grid) -> np.ndarray:
    """True where the pixel centre lies inside ``geom`` (given in ``grid.crs``).

    A polygon smaller than a pixel that contains no pixel centre falls back to the pixels it touches, so
    that a tiny parcel still gets a value (as Sentinel Hub's services do). The masks of the last
    polygons and grids are remembered (keyed by the polygon's exact coordinates and the grid's transform and
    shape), so that the dates and queries of one field on one tile grid rasterize it once; each call gets
    its own copy.
    """
    key = (geom.wkb, tuple(grid.transform)[:6], grid.shape)
    with _MASKS_LOCK:
        known = _MASKS.get(key)
        if known is not None:
            _MASKS.move_to_end(key)
            return known.copy()
    inside = geometry_mask([geom], out_shape=grid.shape, transform=grid.transform, invert=True, all_touched=False)
    if not inside.any():
        inside = geometry_mask([geom], out_shape=grid.shape, transform=grid.transform, invert=True, all_touched=True)
    if inside.nbytes <= _MASKS_MAX_BYTES // 16:
        with _MASKS_LOCK:
            _MASKS[key] = inside.copy()
            while sum(mask.nbytes for mask in _MASKS.values()) > _MASKS_MAX_BYTES:
                _MASKS.popitem(last=False)
    return inside


def grid_centre_lonlat(grid: Grid) -> tuple[float, float]:
    """The grid's centre in (lon, lat)."""
    rows, cols = grid.shape
    x, y = grid.transform @ (cols / 2.0, rows / 2.0)
    if grid.crs.is_geographic:
        return float(x), float(y)
    lon, lat = Transformer.from_crs(grid.crs, WGS84, always_xy=True).transform(x, y)
    return float(lon), float(lat)


def pixel_centres(grid: Grid, where: np.ndarray, crs: CRS | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The centres (x, y) of the grid pixels where ``where`` is True (row-major order), in ``crs`` (default the
    grid's own)."""
    rows, cols = np.nonzero(where)
    t = grid.transform
    x, y = t.c + (cols + 0.5) * t.a, t.f + (rows + 0.5) * t.e
    if crs is None or crs == grid.crs:
        return x, y
    tx, ty = Transformer.from_crs(grid.crs, crs, always_xy=True).transform(x, y)
    return np.asarray(tx, dtype=np.float64), np.asarray(ty, dtype=np.float64)


def request_grid(bounds: tuple[float, float, float, float], crs: CRS, *, width: int | None = None,
                 height: int | None = None, resx: float | None = None, resy: float | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> Grid:
    """The grid of a Sentinel Hub request: the box ``bounds`` (minx, miny, maxx, maxy in ``crs``) cut into
    ``width`` x ``height`` pixels, or into pixels of about ``resx`` x ``resy`` CRS units (the counts
    rounded, at least 1; the pixels are stretched to fill the box exactly, as Sentinel Hub does).

    Only ``width`` (or ``height``) keeps the box's aspect; only ``resx`` (or ``resy``) makes square pixels.

    :raises InvalidRequestError: when neither size nor resolution is given, or the grid has more than
        ``max_pixels`` pixels.
    """
    minx, miny, maxx, maxy = bounds
    dx, dy = maxx - minx, maxy - miny

    def count(value: float) -> int:  # a pixel count, at least 1, kept finite for the limit's message
        return max(1, round(min(value, max_pixels + 1.0)))

    if width is not None and height is not None:
        cols, rows = width, height
    elif width is not None:
        cols, rows = width, count(width * dy / dx)
    elif height is not None:
        cols, rows = count(height * dx / dy), height
    elif resx is not None or resy is not None:
        rx = resx if resx is not None else resy
        ry = resy if resy is not None else resx
        assert rx is not None and ry is not None
        cols, rows = count(dx / rx), count(dy / ry)
    else:
        raise InvalidRequestError("the request gives neither width/height nor resx/resy")
    if cols * rows > max_pixels:
        raise InvalidRequestError(
            f"the output grid is {cols} x {rows} = {cols * rows} pixels, more than the limit of {max_pixels}; "
            "use a coarser resolution or a smaller area")
    return Grid(crs, Affine(dx / cols, 0.0, minx, 0.0, -dy / rows, maxy), (rows, cols))
