"""Batch reads: the pixels of all polygons of a task, and each internal COG tile read once for all of them.

:func:`task_pixels` rasterises each polygon of a task on the tile's 10 m lattice (pixel-centre rule, as
:func:`stats.grid.polygon_mask`), once per tile grid and polygon set (the tasks of other dates on the
same grid reuse it). :func:`gather` then reads every internal tile (block) of a band COG that holds one of
those pixels exactly once and takes the pixels from it by index. For a band on another grid it returns
None, and the task is answered polygon by polygon instead.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from pyproj import CRS
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

from ..archive.catalog import Acquisition
from ..datasets import DatasetPool
from ..errors import SceneReadError
from ..grid import Grid, polygon_mask, query_grid
from ..raster import aligned, open_band

if TYPE_CHECKING:
    from .plan import BatchPlan

log = logging.getLogger(__name__)

#: Batch reads do not keep datasets open: every tile is read once, so GDAL's block cache would only grow.
UNPOOLED = DatasetPool(size=0)


@dataclass
class TaskPixels:
    """The pixels of all polygons of a task: centre coordinates, the polygon (position) of each, and
    per polygon the count of pixels inside."""

    xs: np.ndarray
    ys: np.ndarray
    labels: np.ndarray
    inside: np.ndarray
    lookups: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, int, int, int]]]] = \
        field(default_factory=dict)


_PIXELS: OrderedDict[tuple[Any, ...], TaskPixels] = OrderedDict()
_PIXELS_LOCK = threading.Lock()
#: Pixel sets kept per process: the tasks of other dates on the same tile grid reuse them.
PIXEL_CACHE_SIZE = 8


def task_pixels(plan: BatchPlan, members: tuple[int, ...], anchor: Any, crs: CRS,
                pixel: tuple[float, float]) -> TaskPixels:
    """The pixels of the task's polygons on this tile grid, computed once per grid and polygon set."""
    key = (plan.key, members, tuple(anchor)[:6], crs.to_wkt(), pixel)
    with _PIXELS_LOCK:
        cached = _PIXELS.get(key)
        if cached is not None:
            _PIXELS.move_to_end(key)
            return cached
    geoms = [plan.area(i).to(crs) for i in members]
    pixels = _polygon_pixels(geoms, anchor, crs, pixel)
    with _PIXELS_LOCK:
        _PIXELS[key] = pixels
        while len(_PIXELS) > PIXEL_CACHE_SIZE:
            _PIXELS.popitem(last=False)
    return pixels


def _polygon_pixels(geoms: Sequence[BaseGeometry], anchor: Any, crs: CRS, pixel: tuple[float, float]) -> TaskPixels:
    """The pixel centres of every polygon (pixel-centre rule, as :func:`stats.grid.polygon_mask`), on the
    tile's 10 m lattice, each polygon rasterised over its own bounding box only."""
    xs_parts, ys_parts, label_parts = [], [], []
    inside = np.zeros(len(geoms), dtype=np.int64)
    for pos, geom in enumerate(geoms):
        own = query_grid(anchor, crs, pixel, geom, max_pixels=2**62)
        rows, cols = np.nonzero(polygon_mask(geom, own))
        t = own.transform
        xs_parts.append(t.c + (cols + 0.5) * t.a)
        ys_parts.append(t.f + (rows + 0.5) * t.e)
        label_parts.append(np.full(rows.size, pos, dtype=np.intp))
        inside[pos] = rows.size
    if not geoms:
        return TaskPixels(np.zeros(0), np.zeros(0), np.zeros(0, np.intp), inside)
    return TaskPixels(np.concatenate(xs_parts), np.concatenate(ys_parts), np.concatenate(label_parts), inside)


def gather(acq: Acquisition, band: str, pixels: TaskPixels, grid: Grid) -> np.ndarray | None:
    """The band's values (float32 stored DN, NaN for no data: DN 0 or outside the tile) at the polygons'
    pixels, each from the band pixel containing the pixel's centre (nearest neighbour, as
    :func:`stats.raster.read_band`). Each internal tile of the COG that holds a pixel is read (and decoded)
    exactly once."""

    out = np.zeros(pixels.labels.size, dtype=np.float32)
    with open_band(acq, band, UNPOOLED) as src:
        t = src.transform
        if not aligned(t, grid, True) or t.a < grid.transform.a - 1e-9:
            return None  # another grid: not readable by index
        bh, bw = src.block_shapes[0]
        key = (tuple(t)[:6], src.width, src.height, bh, bw)
        lookup = pixels.lookups.get(key)
        if lookup is None:
            lookup = pixels.lookups[key] = _block_lookup(pixels, t, src.width, src.height, bh, bw)
        order, brow, bcol, blocks = lookup
        try:
            for start, stop, r0, c0 in blocks:
                window = Window(c0, r0, min(bw, src.width - c0), min(bh, src.height - r0))
                block = src.read(1, window=window)
                idx = order[start:stop]
                out[idx] = block[brow[idx] - r0, bcol[idx] - c0]
        except rasterio.errors.RasterioError as exc:
            log.warning("scene %s band %s: %s", acq.id, band, exc)
            raise SceneReadError(f"scene {acq.id}: band {band} cannot be read (corrupt data)") from exc
    out[out == 0] = np.nan
    return out


def _block_lookup(pixels: TaskPixels, t: Any, width: int, height: int, bh: int,
                  bw: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, int, int, int]]]:
    """For a band grid: the band pixel (row, col) of every polygon pixel, the pixels sorted by internal
    tile, and per tile the (start, stop) of its run in that order and its top-left band pixel."""
    brow = np.floor((pixels.ys - t.f) / t.e).astype(np.intp)
    bcol = np.floor((pixels.xs - t.c) / t.a).astype(np.intp)
    on = np.flatnonzero((brow >= 0) & (brow < height) & (bcol >= 0) & (bcol < width))
    tiles_across = -(-width // bw)
    block = (brow[on] // bh) * tiles_across + bcol[on] // bw
    by_block = np.argsort(block, kind="stable")
    order = on[by_block]
    ids, starts, counts = np.unique(block[by_block], return_index=True, return_counts=True)
    blocks = [(int(s), int(s + c), int(b // tiles_across) * bh, int(b % tiles_across) * bw)
              for b, s, c in zip(ids.tolist(), starts.tolist(), counts.tolist())]
    return order, brow, bcol, blocks
