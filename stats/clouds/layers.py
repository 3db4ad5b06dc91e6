"""The cloud cells of a date: from the stored CLP/CLM layers when the date has them, else from the model
(an L2A date: from its scene classification, :mod:`stats.clouds.scl`).

``polyfis clouds`` (:mod:`stats.clouds.store`) stores, for every acquisition, the ``CLP`` and ``CLM`` layers on
cells of 160 m anchored at the tile origin, exactly as the on-the-fly recipe of :mod:`stats.clouds.cells`
computes them. :func:`cloud_cells` is the one entry point of every consumer (time series, water, batch,
Statistical API, FIS): with ``source`` ``auto`` it reads the layers of a date whose tiles all have them and
falls back to the model otherwise; ``layers`` insists on the layers; ``model`` always scores on the fly.

Read from the layers, a cell's probability is ``CLP / 255`` and its mask is the stored ``CLM`` when the request
asks for the layers' own cell size and post-processing; any other threshold, radius or morphology is applied
to ``CLP / 255`` (a custom mask, as Sentinel Hub users build them from CLP). Another cell size takes, for each
of its cells, the stored cell containing the cell's centre (nearest neighbour, as Sentinel Hub's automatic
resampling of CLP).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

from ..archive.catalog import Acquisition, CloudLayerAssets
from ..bands import MODEL_BANDS
from ..datasets import dataset_key, gdal_env, pool_for, window_cache
from ..errors import SceneReadError
from ..geometry import cached_crs, ground_pixel_size, reproject
from ..grid import Grid, query_grid
from ..raster import PixelBlock
from ..request import DEFAULT_MAX_PIXELS, Limits
from .cells import NO_DATA, CellRequest, cell_request, read_cloud_block
from .options import MaskParameters
from .scl import scl_cells, uses_scl

#: The mask parameters of the stored ``CLM``: Sentinel Hub's (160 m, threshold 0.4, radii 4 and 2 cells).
LAYER_PARAMETERS = MaskParameters()


@dataclass
class DateCells:
    """The cloud cells of one date, and the 10 m ``block`` read to score them (None when they come from the
    stored layers: the caller reads its bands itself)."""

    cells: CellRequest
    block: PixelBlock | None = None


def cloud_cells(tiles: Sequence[Acquisition], geometry: BaseGeometry, geometry_crs: CRS, bands: Sequence[str],
                params: MaskParameters, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                exact: bool = False, limits: Limits | None = None,
                reach: tuple[int, int, int, int] = (0, 0, 0, 0)) -> DateCells:
    """The cloud cells of one date around ``geometry``, from where ``params.source`` says (see the module
    docstring); ``reach`` widens the window by 10 m pixels (left, top, right, bottom), as for cloud shadows.
    An L2A date (which has no B10 for the model) takes its cells from its scene classification instead
    (:func:`stats.clouds.scl.scl_cells`), whatever ``params.source`` says.

    :param bands: the bands to read, with the model bands, when the cells are scored on the fly (the block is
        returned, so that a 10 m query reads once).
    :raises SceneReadError: with ``source="layers"``, when a tile has no stored layers.
    """
    if uses_scl(tiles):
        return DateCells(scl_cells(tiles, geometry, geometry_crs, max_pixels=max_pixels, reach=reach))
    source = params.source
    if source != "model" and all(t.cloud_layers is not None for t in tiles):
        return DateCells(stored_cells(tiles, geometry, geometry_crs, params, max_pixels=max_pixels, reach=reach))
    if source == "layers":
        missing = next(t.id for t in tiles if t.cloud_layers is None)
        raise SceneReadError(f"scene {missing}: no stored CLP/CLM layers, and cloud.source is 'layers'; run "
                             "`polyfis clouds` on the archive, or use cloud.source 'auto'")
    read = [*bands, *(b for b in MODEL_BANDS if b not in bands)]
    block = read_cloud_block(tiles, geometry, geometry_crs, read, params, max_pixels=max_pixels, exact=exact,
                             limits=limits, reach=reach)
    return DateCells(cell_request(tiles, block, params), block)


def stored_cells(tiles: Sequence[Acquisition], geometry: BaseGeometry, geometry_crs: CRS, params: MaskParameters,
                 *, max_pixels: int = DEFAULT_MAX_PIXELS,
                 reach: tuple[int, int, int, int] = (0, 0, 0, 0)) -> CellRequest:
    """The cells of ``params.resolution`` around ``geometry`` (padded by the mask's margin, and by ``reach``
    10 m pixels (left, top, right, bottom) rounded up to whole cells) read from the stored layers of
    ``tiles`` (the first tile with data wins at each cell, as in a band mosaic)."""
    layers = [t.cloud_layers for t in tiles]
    first = layers[0]
    assert first is not None and all(layer is not None for layer in layers)
    crs = cached_crs(tiles[0].crs)
    geom = reproject(geometry, geometry_crs, crs)
    if first.transform is not None and first.shape is not None:  # from the item, without opening the file
        transform, (rows, cols) = Affine(*first.transform), first.shape
    else:
        transform, (rows, cols) = _layer_shape(tiles[0], first.clm)
    native = (transform.a / first.cell_pixels, -transform.e / first.cell_pixels)
    same_cells = params.resolution == first.resolution
    if same_cells:
        k = first.cell_pixels
    else:
        centre = tiles[0].footprint.centroid
        k = params.cell_pixels(ground_pixel_size(crs, native, centre.x, centre.y))
    cell = (native[0] * k, native[1] * k)
    extent = (math.ceil(rows * first.cell_pixels / k), math.ceil(cols * first.cell_pixels / k))
    grid = query_grid(Affine(cell[0], 0.0, transform.c, 0.0, -cell[1], transform.f), crs, cell, geom,
                      max_pixels=max_pixels, extent=extent,
                      pad=tuple(params.margin_cells + -(-r // k) for r in reach))  # type: ignore[arg-type]
    stored_mask = same_cells and _same_post_processing(first, params)
    clp = np.zeros(grid.shape, dtype=np.uint8)
    clm = np.full(grid.shape, NO_DATA, dtype=np.uint8)
    for tile, layer in zip(tiles, layers):
        assert layer is not None
        same_crs = cached_crs(tile.crs) == crs
        tile_clm = _layer_on(tile, layer.clm, grid, same_crs)
        take = (clm == NO_DATA) & (tile_clm != NO_DATA)
        if not take.any():
            continue
        clm[take] = tile_clm[take]
        clp[take] = _layer_on(tile, layer.clp, grid, same_crs)[take]
    valid = clm != NO_DATA
    return CellRequest(keys=(), pixels=np.zeros((0, len(MODEL_BANDS)), np.float32),
                       values=(clp[valid].astype(np.float32) / np.float32(255)), valid=valid, grid=grid, k=1,
                       mask=np.where(valid, clm, 0).astype(np.uint8) if stored_mask else None, source="layers")


def _same_post_processing(layer: CloudLayerAssets, params: MaskParameters) -> bool:
    """Whether ``params`` ask for the stored CLM itself."""
    return (not params.morphology.applied and params.threshold == layer.threshold
            and params.average_over == layer.average_over and params.dilation_size == layer.dilation_size)


@contextmanager
def _open(tile: Acquisition, href: str) -> Iterator[rasterio.io.DatasetReader]:
    """The open layer, kept in the dataset pool; checked to be uint8 in the catalog's CRS."""
    expected = cached_crs(tile.crs)
    name = href.rsplit("/", 1)[-1]

    def check(src: rasterio.io.DatasetReader) -> None:
        if src.crs is None or cached_crs(src.crs.to_wkt()) != expected or src.dtypes[0] != "uint8":
            raise SceneReadError(f"scene {tile.id}: the cloud layer {name} is not a uint8 raster in the "
                                 "catalog's CRS")

    with ExitStack() as stack:
        stack.enter_context(gdal_env(href))
        try:
            src = stack.enter_context(pool_for(href).open(href, check))
        except rasterio.errors.RasterioIOError as exc:
            raise SceneReadError(f"scene {tile.id}: the cloud layer {name} cannot be opened; run `polyfis clouds` "
                                 "again") from exc
        yield src


_SHAPES: dict[tuple[str, int, int], tuple[Affine, tuple[int, int]]] = {}
_SHAPES_MAX = 8192


def _layer_shape(tile: Acquisition, href: str) -> tuple[Affine, tuple[int, int]]:
    """The layer's transform and (rows, cols), remembered per file version."""
    key = dataset_key(href)
    shape = _SHAPES.get(key)
    if shape is None:
        with _open(tile, href) as src:
            shape = (src.transform, (src.height, src.width))
        if len(_SHAPES) >= _SHAPES_MAX:
            _SHAPES.clear()
        _SHAPES[key] = shape
    return shape


def _layer_on(tile: Acquisition, href: str, grid: Grid, same_crs: bool) -> np.ndarray:
    """The stored layer at each cell of ``grid``: the stored cell containing the cell's centre (uint8, 255
    outside the layer)."""
    # 255 outside is CLM's no data; what CLP holds there is never used
    key = ("cloud-layer", dataset_key(href), tuple(grid.transform)[:6], grid.shape)
    cache = window_cache()
    cached = cache.get(key)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    try:
        with _open(tile, href) as src:
            out = _nearest(src, grid) if same_crs else _warped(src, grid)
    except rasterio.errors.RasterioError as exc:
        raise SceneReadError(f"scene {tile.id}: the cloud layer {href.rsplit('/', 1)[-1]} cannot be read") from exc
    cache.put(key, out)
    return out


def _nearest(src: rasterio.io.DatasetReader, grid: Grid) -> np.ndarray:
    """Same CRS: index the stored cells containing the grid's cell centres."""
    t, g = src.transform, grid.transform
    rows, cols = grid.shape
    xs = g.c + (np.arange(cols) + 0.5) * g.a
    ys = g.f + (np.arange(rows) + 0.5) * g.e
    src_cols = np.floor((xs - t.c) / t.a).astype(np.int64)
    src_rows = np.floor((ys - t.f) / t.e).astype(np.int64)
    out = np.full(grid.shape, NO_DATA, dtype=np.uint8)
    keep_c = (src_cols >= 0) & (src_cols < src.width)
    keep_r = (src_rows >= 0) & (src_rows < src.height)
    if not keep_c.any() or not keep_r.any():
        return out
    c0, c1 = int(src_cols[keep_c].min()), int(src_cols[keep_c].max()) + 1
    r0, r1 = int(src_rows[keep_r].min()), int(src_rows[keep_r].max()) + 1
    window = src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
    out[np.ix_(keep_r, keep_c)] = window[np.ix_(src_rows[keep_r] - r0, src_cols[keep_c] - c0)]
    return out


def _warped(src: rasterio.io.DatasetReader, grid: Grid) -> np.ndarray:
    """Another CRS: warp by nearest neighbour."""
    with WarpedVRT(src, crs=grid.crs, transform=grid.transform, width=grid.shape[1], height=grid.shape[0],
                   resampling=Resampling.nearest, src_nodata=NO_DATA, nodata=NO_DATA) as vrt:
        return np.asarray(vrt.read(1), dtype=np.uint8)
