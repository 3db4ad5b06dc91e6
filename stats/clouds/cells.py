"""Per-pixel cloud probability (CLP) and cloud mask (CLM) at a cloud resolution, as Sentinel Hub's layers.

The 10 m bands are area-averaged into cloud cells of ``resolution`` metres on the ground (``k`` x ``k`` pixels
of the tile's 10 m class, ``k`` the whole number of pixels closest to ``resolution`` metres, see
:func:`cell_pixels`: 16 for 10 m pixels at 160 m, 2 for the 73 m pixels of a geographic archive; anchored at
the tile origin; each cell averages its valid pixels;
20/60 m bands enter through their nearest-neighbour 10 m representation, which preserves their area). The
s2cloudless model then scores every cell, and the mask follows s2cloudless's own post-processing
(``S2PixelCloudDetector.get_mask_from_prob``): the probabilities are averaged over a disk of radius
``average_over`` cells (OpenCV ``filter2D``, reflected border), thresholded with ``> threshold``, and the
mask is dilated with a disk of radius ``dilation_size`` cells. Cells without data count as probability 0
in the averaging and are reported as no data.

Defaults (:class:`stats.clouds.options.MaskParameters`) are Sentinel Hub's / eo-learn's (160 m, threshold 0.4,
``average_over`` 4, ``dilation_size`` 2); s2cloudless's own are threshold 0.4, ``average_over`` 1,
``dilation_size`` 1 at the input resolution. CLP is exposed as ``round(255 * p)`` (0..255) and CLM as 0/1
with 255 for no data (CLP is then 0).

The recipe, used alike by the time series and the Statistical API (through
:func:`stats.clouds.layers.cloud_cells`, which takes the cells from the stored CLP/CLM layers instead when a
date has them): :func:`read_cloud_block` reads the 10 m block the cells of a date come from,
:func:`cell_request` turns it into cells and cache keys,
:func:`resolve_probabilities` scores the cells the cache lacks (with any averaged pixels, in one model
call), and :func:`pixel_clouds` gives each pixel of a query grid the probability and mask of its cell.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from affine import Affine
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from ..archive.catalog import Acquisition
from ..bands import MODEL_BANDS, QUANTIFICATION_VALUE
from ..geometry import cached_crs, crs_name, ground_pixel_size
from ..grid import Grid, pixel_centres
from ..raster import PixelBlock, native_pixel, read_date
from ..request import Limits
from .disk import DiskCells
from .masks import mask_from_probability
from .model import CloudModel
from .options import MaskParameters

#: No-data value of the CLM layer (CLP has none: its 255 is a probability of 1; CLM says where there is data,
#: as in Sentinel Hub's layers).
NO_DATA = 255


def cell_means(dn: Mapping[str, np.ndarray], valid: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Area-average the model bands into k x k cells over the valid pixels.

    :param dn: model band name -> harmonised DN, float32 ``(rows, cols)`` on a 10 m grid whose origin is a
        cell corner; a partial last row/column of cells is allowed.
    :param valid: bool ``(rows, cols)``, pixels with data in every band.
    :returns: ``(reflectance, cell_valid)``: float32 ``(crows, ccols, 10)`` in :data:`MODEL_BANDS` order
        (mean DN / 10000, so a 1 x 1 cell gives exactly ``float32(dn) / float32(10000)``) and bool
        ``(crows, ccols)``, cells with at least one valid pixel.
    """
    rows, cols = valid.shape
    crows, ccols = -(-rows // k), -(-cols // k)
    pad = ((0, crows * k - rows), (0, ccols * k - cols))
    weights = np.pad(valid, pad).reshape(crows, k, ccols, k)
    counts = weights.sum(axis=(1, 3))
    out = np.zeros((crows, ccols, len(MODEL_BANDS)), dtype=np.float32)
    for i, band in enumerate(MODEL_BANDS):
        values = np.pad(np.where(valid, dn[band], 0).astype(np.float64), pad).reshape(crows, k, ccols, k)
        mean_dn = values.sum(axis=(1, 3)) / np.maximum(counts, 1)
        out[..., i] = mean_dn.astype(np.float32) / np.float32(QUANTIFICATION_VALUE)
    return out, counts > 0


def cell_keys(grid: Grid, k: int, cell_valid: np.ndarray, context: tuple[Hashable, ...]) -> list[Hashable]:
    """Cache keys of the valid cells: the cell's corner in the tile CRS plus the context."""
    t = grid.transform
    rows, cols = np.nonzero(cell_valid)
    xs = np.round(t.c + cols * k * t.a, 3)
    ys = np.round(t.f + rows * k * t.e, 3)
    crs = crs_name(grid.crs)
    return [(crs, *context, x, y) for x, y in zip(xs.tolist(), ys.tolist())]


def cell_of_points(x: np.ndarray, y: np.ndarray, cloud_grid: Grid, k: int, cells_shape: tuple[int, int]) -> np.ndarray:
    """Flat index of the cloud cell (``k`` x ``k`` pixels of ``cloud_grid``) containing each point (x, y)."""
    c = cloud_grid.transform
    cell_col = np.clip(np.floor((x - c.c) / (c.a * k)).astype(np.int64), 0, cells_shape[1] - 1)
    cell_row = np.clip(np.floor((y - c.f) / (c.e * k)).astype(np.int64), 0, cells_shape[0] - 1)
    return np.asarray(cell_row * cells_shape[1] + cell_col)


def to_clp(probability: np.ndarray, cell_valid: np.ndarray) -> np.ndarray:
    """CLP layer: uint8 ``round(255 * p)``; 0 where there is no data (the CLM layer flags it)."""
    return np.where(cell_valid, np.round(np.asarray(probability, np.float64) * 255), 0).astype(np.uint8)


def to_clm(mask: np.ndarray, cell_valid: np.ndarray) -> np.ndarray:
    """CLM layer: uint8 0 clear / 1 cloud; 255 where there is no data."""
    return np.where(cell_valid, mask, NO_DATA).astype(np.uint8)


class ProbabilityCache:
    """Cell probabilities already computed, keyed by (tile CRS, scenes, resolution, cell corner); LRU-bounded
    in memory, and also kept in ``disk`` (shared between processes) when given.

    Cells are anchored at the tile origin, so a cell's probability does not depend on the query polygon
    and a second query over the same scenes costs no model time.
    """

    def __init__(self, max_cells: int = 2_000_000, disk: DiskCells | None = None) -> None:
        self.max_cells = max_cells
        self.disk = disk
        self._data: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def lookup(self, keys: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
        """Cached values (float32, NaN where missing) and the missing positions (bool)."""
        values = np.full(len(keys), np.nan, dtype=np.float32)
        with self._lock:
            for i, key in enumerate(keys):
                value = self._data.get(key)
                if value is not None:
                    values[i] = value
                    self._data.move_to_end(key)
        missing = np.isnan(values)
        if self.disk is not None and missing.any():
            before = missing.copy()
            self.disk.lookup(keys, missing, values)
            found = before & ~missing
            self._remember([k for k, f in zip(keys, found) if f], values[found])
        self.hits += int((~missing).sum())
        self.misses += int(missing.sum())
        return values, missing

    def store(self, keys: Sequence[Hashable], values: np.ndarray) -> None:
        """Remember ``values`` for ``keys``, dropping the least recently used beyond ``max_cells``."""
        self._remember(keys, values)
        if self.disk is not None:
            self.disk.store(keys, values)

    def _remember(self, keys: Sequence[Hashable], values: np.ndarray) -> None:
        with self._lock:
            for key, value in zip(keys, values.tolist()):
                self._data[key] = value
            while len(self._data) > self.max_cells:
                self._data.popitem(last=False)


@lru_cache(maxsize=4096)
def _ground_pixel(crs: str, pixel: tuple[float, float], lon: float, lat: float) -> float:
    return ground_pixel_size(cached_crs(crs), pixel, lon, lat)


def cell_pixels(tile: Acquisition, params: MaskParameters) -> int:
    """Cloud cell size, in pixels of the tile's 10 m class, of ``params.resolution`` metres on the ground.

    :raises InvalidRequestError: when the resolution is finer than half a pixel of the tile.
    """
    centre = tile.footprint.centroid
    return params.cell_pixels(_ground_pixel(tile.crs, native_pixel(tile, MODEL_BANDS), round(centre.x, 4),
                                            round(centre.y, 4)))


def read_cloud_block(tiles: Sequence[Acquisition], geometry: BaseGeometry, geometry_crs: CRS, bands: Sequence[str],
                     params: MaskParameters, *, max_pixels: int, exact: bool = False,
                     limits: Limits | None = None, reach: tuple[int, int, int, int] = (0, 0, 0, 0)) -> PixelBlock:
    """The 10 m block of ``bands`` the cloud cells of one date are computed from: the polygon's bounds
    padded by the mask's margin (:attr:`MaskParameters.margin_cells`) and snapped to whole cells of
    :func:`cell_pixels`, so that a cell holds the same pixels whatever the polygon (see
    :func:`stats.raster.read_date`). ``reach`` adds 10 m pixels (left, top, right, bottom) beyond that margin,
    e.g. towards the sun for cloud shadows (:func:`stats.clouds.shadows.sun_reach`)."""
    k = cell_pixels(tiles[0], params)
    margin = params.margin_cells * k
    pad = (margin + reach[0], margin + reach[1], margin + reach[2], margin + reach[3])
    return read_date(tiles, geometry, geometry_crs, bands, resolution=10, max_pixels=max_pixels,
                     pad=pad, snap=k, exact=exact, limits=limits)


@dataclass
class CellRequest:
    """The cloud cells of one date: their cache keys and model inputs (cells still to score), or their
    probabilities (and stored mask) read from the CLP/CLM layers.

    ``grid`` is the grid the cells are cut from, with a cell corner at its origin: a cell is ``k`` x ``k`` of
    its pixels (the 10 m block read for the model, or the cell grid itself with ``k`` = 1). ``mask``, when
    set, is the stored CLM of the cells (uint8 0/1), used as it is. ``source`` is ``model``, ``layers`` or
    ``scl`` (an L2A date's scene classification, :mod:`stats.clouds.scl`).
    """

    keys: Sequence[Hashable]
    pixels: np.ndarray  # float32 (n, 10)
    values: np.ndarray  # float32 (n,), NaN until resolved
    valid: np.ndarray  # bool (crows, ccols): the cells the keys stand for, in row-major order
    grid: Grid
    k: int = 1
    mask: np.ndarray | None = None
    source: str = "model"
    classes: np.ndarray | None = None  # uint8 (crows, ccols): the SCL classes of cells from an L2A scene

    @property
    def cell_grid(self) -> Grid:
        """The grid of the cells themselves."""
        t = self.grid.transform
        return Grid(self.grid.crs, t @ Affine.scale(self.k), self.valid.shape)


def cell_request(tiles: Sequence[Acquisition], block: PixelBlock, params: MaskParameters) -> CellRequest:
    """The cloud cells of a block from :func:`read_cloud_block` over ``tiles``: keys, model inputs, validity."""
    k = cell_pixels(tiles[0], params)
    means, cell_valid = cell_means({b: block.dn[b] for b in MODEL_BANDS}, block.data, k)
    keys = cell_keys(block.grid, k, cell_valid, (tuple(block.scenes), params.resolution))
    return CellRequest(keys=keys, pixels=means[cell_valid], values=np.empty(0, np.float32), valid=cell_valid,
                       grid=block.grid, k=k)


def cloud_grids(cells: CellRequest, params: MaskParameters) -> tuple[np.ndarray, np.ndarray]:
    """Probability (float32) and mask (uint8) grids of resolved cells; no-data cells are 0 in both."""
    probability = np.zeros(cells.valid.shape, dtype=np.float32)
    probability[cells.valid] = cells.values
    if cells.mask is not None:
        return probability, np.where(cells.valid, cells.mask, 0).astype(np.uint8)
    return probability, mask_from_probability(probability, cells.valid, params)


def layers_of(cells: CellRequest, params: MaskParameters) -> tuple[Grid, np.ndarray, np.ndarray]:
    """The cell grid with the CLP and CLM layers (uint8, 255 for no data) of resolved cells."""
    probability, mask = cloud_grids(cells, params)
    return cells.cell_grid, to_clp(probability, cells.valid), to_clm(mask, cells.valid)


def resolve_probabilities(requests: Sequence[CellRequest], model: CloudModel, cache: ProbabilityCache,
                          extra: np.ndarray | None = None) -> np.ndarray:
    """Fill every request's ``values`` from the cache and score the rest, with the ``extra`` pixels
    (``(n, 10)``, e.g. averaged pixels), in one model call. Returns the probabilities of ``extra``."""
    extra = np.zeros((0, len(MODEL_BANDS))) if extra is None else np.asarray(extra, dtype=np.float64)
    todo: list[tuple[CellRequest, np.ndarray]] = []
    for request in requests:
        if request.source != "model":
            continue  # read from the stored layers
        request.values, missing = cache.lookup(request.keys)
        if missing.any():
            todo.append((request, missing))
    batch = np.concatenate([extra] + [request.pixels[missing].astype(np.float64) for request, missing in todo])
    probs = model.probability(batch) if len(batch) else np.zeros(0, dtype=np.float32)
    start = len(extra)
    for request, missing in todo:
        n = int(missing.sum())
        request.values[missing] = probs[start:start + n]
        cache.store([k for k, m in zip(request.keys, missing) if m], probs[start:start + n])
        start += n
    return probs[: len(extra)]


@dataclass(frozen=True)
class PixelClouds:
    """The cloud layers at some pixels of a query grid: each pixel's cell ``probability`` (float64, 0..1)
    and mask (``cloudy``, bool)."""

    probability: np.ndarray
    cloudy: np.ndarray

    def layers(self) -> dict[str, np.ndarray]:
        """The pixels' ``CLP`` (``round(255 * p)``) and ``CLM`` (0/1) values, float64, as evalscripts and
        index expressions see them."""
        return {"CLP": np.round(self.probability * 255), "CLM": self.cloudy.astype(np.float64)}


def pixel_clouds(cells: CellRequest, params: MaskParameters, grid: Grid, where: np.ndarray) -> PixelClouds:
    """The cloud layers of resolved ``cells`` at the pixels of ``grid`` where ``where`` is True (row-major
    order), each pixel taking the cell containing its centre."""
    return point_clouds(cells, params, *pixel_centres(grid, where))


def point_clouds(cells: CellRequest, params: MaskParameters, x: np.ndarray, y: np.ndarray) -> PixelClouds:
    """The cloud layers of resolved ``cells`` at points (x, y) of the cells' CRS (pixel centres), each point
    taking the cell containing it."""
    probability, mask = cloud_grids(cells, params)
    index = cell_of_points(x, y, cells.grid, cells.k, probability.shape)
    return PixelClouds(probability.ravel()[index].astype(np.float64), mask.ravel()[index].astype(bool))
