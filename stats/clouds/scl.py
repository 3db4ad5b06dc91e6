"""Clouds, cloud shadows, snow and water of L2A acquisitions, from their scene classification (SCL).

s2cloudless scores ten L1C bands, among them B10 (cirrus), which L2A products do not carry: an L2A date
therefore gets no cloud probability at all (never one computed from other bands). Its cloud cells are the
pixels of the ``SCL`` asset (20 m, nearest neighbour onto other grids: each statistics pixel takes the class
of the SCL pixel containing its centre), with the classes of the Sentinel-2 L2A product:

====  ==================================  ======================
SCL   class                               polyfis
====  ==================================  ======================
0     no data                             no class (not cloudy)
1     saturated or defective
2     dark area / topographic shadow
3     cloud shadow                        ``cloud_shadow``
4     vegetation
5     bare soil
6     water                               ``water``
7     unclassified
8     cloud, medium probability           ``cloud``
9     cloud, high probability             ``cloud``
10    thin cirrus                         ``cloud``
11    snow or ice                         ``snow``
====  ==================================  ======================

The cloud mask is the ``cloud`` classes as they are (no threshold, buffer or dilation: the classification
is already a mask), ``cloud.shadows`` masks the ``cloud_shadow`` class, and every date reports the share of
its valid pixels in each class group (:func:`class_fractions`). The tiles of a date are mosaicked as bands
are: the first tile with a class (non-zero SCL) at a pixel wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from shapely.geometry.base import BaseGeometry

from ..archive.catalog import Acquisition
from ..archive.layouts import SCL_ASSET
from ..bands import MODEL_BANDS
from ..geometry import cached_crs, reproject
from ..grid import Grid, pixel_centres, query_grid
from ..raster import band_shape, open_band
from .cells import CellRequest, cell_of_points

#: SCL class groups polyfis reports, name -> SCL values.
CLASS_GROUPS: Final[dict[str, tuple[int, ...]]] = {
    "cloud": (8, 9, 10),
    "cloud_shadow": (3,),
    "snow": (11,),
    "water": (6,),
}

#: What an L2A date says about its cloud answer (``cloud.note``).
NOTE: Final = ("L2A: s2cloudless needs band B10, which L2A products do not have, so no cloud probability is "
               "given; the cloud mask and fractions come from the scene classification (SCL)")

#: The cell source of cells read from the scene classification.
SOURCE: Final = "scl"

#: SCL pixels read around the polygon's bounds, so that every pixel of a 60 m statistics grid finds its class.
PAD_PIXELS: Final = 3


def uses_scl(tiles: Sequence[Acquisition]) -> bool:
    """Whether a date's clouds come from the scene classification: some tile is an L2A product."""
    return any(tile.level == "L2A" for tile in tiles)


def statistics_bands(read_bands: Sequence[str]) -> list[str]:
    """The bands an L2A date reads: ``read_bands`` without those only the s2cloudless model needed (the model
    bands that the request does not report or use otherwise are in ``read_bands`` for the model alone)."""
    return [band for band in read_bands if band != "B10"]


def read_classes(tile: Acquisition, grid: Grid) -> np.ndarray:
    """The tile's SCL on ``grid`` by nearest neighbour (uint8, 0 outside the tile)."""
    with open_band(tile, SCL_ASSET) as src, WarpedVRT(
        src, crs=grid.crs, transform=grid.transform, width=grid.shape[1], height=grid.shape[0],
        resampling=Resampling.nearest, src_nodata=0, nodata=0,
    ) as vrt:
        return np.asarray(vrt.read(1), dtype=np.uint8)


def scl_cells(tiles: Sequence[Acquisition], geometry: BaseGeometry, geometry_crs: CRS, *, max_pixels: int,
              reach: tuple[int, int, int, int] = (0, 0, 0, 0)) -> CellRequest:
    """The cloud cells of an L2A date: the SCL pixels around ``geometry`` (on the first tile's SCL grid,
    padded by :data:`PAD_PIXELS` and by ``reach`` 10 m pixels), each a cell whose mask is the ``cloud``
    classes; ``classes`` keeps the SCL values for :func:`class_fractions`.

    :raises SceneReadError: when a tile has no SCL asset or it cannot be read.
    """
    first = tiles[0]
    shape = band_shape(first, SCL_ASSET)
    crs = cached_crs(first.crs)
    geom = reproject(geometry, geometry_crs, crs)
    anchor = shape.transform
    step = abs(anchor.a)
    pad = tuple(PAD_PIXELS + -(-int(r * 10) // max(int(step), 1)) for r in reach)
    grid = query_grid(anchor, crs, (step, abs(anchor.e)), geom, max_pixels=max_pixels,
                      pad=pad, extent=(shape.height, shape.width))  # type: ignore[arg-type]
    classes = np.zeros(grid.shape, dtype=np.uint8)
    for tile in tiles:
        tile_classes = read_classes(tile, grid)
        take = (classes == 0) & (tile_classes > 0)
        classes[take] = tile_classes[take]
    valid = classes > 0
    cloud = np.isin(classes, CLASS_GROUPS["cloud"])
    return CellRequest(keys=(), pixels=np.zeros((0, len(MODEL_BANDS)), np.float32),
                       values=cloud[valid].astype(np.float32), valid=valid, grid=grid, k=1,
                       mask=cloud.astype(np.uint8), source=SOURCE, classes=classes)


def classes_at(cells: CellRequest, grid: Grid, where: np.ndarray) -> np.ndarray:
    """The SCL class of each pixel of ``grid`` where ``where`` is True (row-major order): the class of the SCL
    pixel containing the pixel's centre (0 without a class)."""
    assert cells.classes is not None
    index = cell_of_points(*pixel_centres(grid, where), cells.grid, 1, cells.classes.shape)
    return np.asarray(cells.classes.ravel()[index])


def in_group(classes: np.ndarray, group: str) -> np.ndarray:
    """Which of ``classes`` belong to the group ``group`` of :data:`CLASS_GROUPS`."""
    return np.isin(classes, CLASS_GROUPS[group])


def class_fractions(classes: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float | None]:
    """The share of pixels (weighted by ``weights``, the coverage in exact mode) in each group of
    :data:`CLASS_GROUPS`; None without pixels.

    >>> class_fractions(np.array([8, 9, 3, 4, 6, 11, 4, 4]))
    {'cloud': 0.25, 'cloud_shadow': 0.125, 'snow': 0.125, 'water': 0.125}
    """
    if classes.size == 0:
        return dict.fromkeys(CLASS_GROUPS)
    return {group: float(np.average(in_group(classes, group), weights=weights)) for group in CLASS_GROUPS}
