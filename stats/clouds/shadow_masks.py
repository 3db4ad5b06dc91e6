"""The cloud and shadow masks of one date on a 10 m block, as a query computes them.

:func:`shadow_block` gives the shadow detector its 10 m block (the cloud block the cells were scored from,
or, when the cells come from the stored CLP/CLM layers, B03 and B08 read over the same window);
:func:`block_masks` lays the date's cloud cells on that block (each pixel takes the CLM value of the cell
containing its centre) and finds the shadows (:mod:`stats.clouds.shadows`). The time series uses both for
every date; :func:`date_masks` reads, scores and masks one date on its own (for evaluations and maps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pyproj import CRS, Geod
from shapely.geometry.base import BaseGeometry

from ..archive.catalog import Acquisition
from ..bands import MODEL_BANDS
from ..geometry import cached_crs
from ..grid import Grid, pixel_centres
from ..raster import PixelBlock, native_pixel
from ..request import Area, Limits
from .cells import CellRequest, ProbabilityCache, cell_of_points, cloud_grids, read_cloud_block, resolve_probabilities
from .layers import cloud_cells
from .model import CloudModel
from .options import MaskParameters
from .shadows import SHADOW_BANDS, ShadowInput, ShadowParameters, shadow_reach


def tile_pixel_m(tile: Acquisition) -> tuple[float, float]:
    """Ground size (metres east, north) of a pixel of the tile's 10 m class, at the tile's centre."""
    crs = cached_crs(tile.crs)
    px, py = (abs(v) for v in native_pixel(tile, MODEL_BANDS))
    if not crs.is_geographic:
        factor = float(crs.axis_info[0].unit_conversion_factor or 1.0) if crs.axis_info else 1.0
        return px * factor, py * factor
    centre = tile.footprint.centroid
    geod = Geod(ellps="WGS84")
    return (float(geod.inv(centre.x, centre.y, centre.x + px, centre.y)[2]),
            float(geod.inv(centre.x, centre.y, centre.x, centre.y + py)[2]))


def date_reach(tiles: Sequence[Acquisition], shadow_params: ShadowParameters) -> tuple[tuple[int, int, int, int],
                                                                                      str | None]:
    """How far (10 m pixels: left, top, right, bottom) a date's cloud window reaches towards the sun, or
    the warning of a date whose first tile has no sun angles (see :func:`stats.clouds.shadows.shadow_reach`)."""
    return shadow_reach(tiles[0], shadow_params, tile_pixel_m(tiles[0]))


def shadow_block(tiles: Sequence[Acquisition], geometry: BaseGeometry, geometry_crs: CRS, block: PixelBlock | None,
                 params: MaskParameters, reach: tuple[int, int, int, int], *, max_pixels: int,
                 limits: Limits | None = None) -> ShadowInput:
    """The detector's input of one date: from the cloud ``block`` (holding B03 and B08), or, without one
    (cells from the stored layers), from B03 and B08 read over the cloud window reaching ``reach``."""
    if block is None:
        block = read_cloud_block(tiles, geometry, geometry_crs, list(SHADOW_BANDS), params, max_pixels=max_pixels,
                                 limits=limits, reach=reach)
    return ShadowInput.of(block, tiles[0], tile_pixel_m(tiles[0]))


def index_of_pixels(grid: Grid, where: np.ndarray, target: Grid, k: int, shape: tuple[int, int]) -> np.ndarray:
    """Flat index, in a grid of ``shape`` cells of ``k`` x ``k`` pixels of ``target``, of the cell holding
    the centre of each pixel of ``grid`` where ``where`` is True (row-major order)."""
    return cell_of_points(*pixel_centres(grid, where), target, k, shape)


def block_masks(cells: CellRequest, shadow_input: ShadowInput, params: MaskParameters,
                shadow_params: ShadowParameters) -> tuple[np.ndarray, np.ndarray]:
    """The cloud mask and shadow mask (bool, on ``shadow_input.grid``) of resolved ``cells``."""
    shape = shadow_input.valid.shape
    cell_mask = cloud_grids(cells, params)[1]
    index = index_of_pixels(shadow_input.grid, np.ones(shape, dtype=bool), cells.grid, cells.k, cell_mask.shape)
    cloud = cell_mask.ravel()[index].reshape(shape).astype(bool)
    return cloud, shadow_input.detect(cloud, shadow_params)


@dataclass(frozen=True)
class DateMasks:
    """One date's masks on the 10 m ``grid`` of its block: ``valid`` (data in every band), ``cloud`` and
    ``shadow`` (None, with ``warning``, when the tile has no sun angles), and the detector's ``input`` (to
    run it under another cloud mask)."""

    grid: Grid
    valid: np.ndarray | None
    cloud: np.ndarray | None
    shadow: np.ndarray | None
    input: ShadowInput | None = None
    warning: str | None = None


def date_masks(tiles: Sequence[Acquisition], area: Area, bands: Sequence[str], params: MaskParameters,
               shadow_params: ShadowParameters, model: CloudModel, cache: ProbabilityCache | None = None,
               limits: Limits | None = None) -> DateMasks:
    """Read the cloud window of one date around ``area`` (reaching towards the sun as a query does), score
    or read its cells and return its masks on the 10 m block."""
    limits = limits or Limits()
    reach, warning = date_reach(tiles, shadow_params)
    read = [*bands, *(b for b in SHADOW_BANDS if b not in bands)]
    date = cloud_cells(tiles, area.geometry, area.crs, read, params, max_pixels=limits.max_pixels, limits=limits,
                       reach=reach)
    resolve_probabilities([date.cells], model, cache or ProbabilityCache())
    if warning is not None:
        return DateMasks(date.cells.grid, None, None, None, warning=warning)
    shadow_input = shadow_block(tiles, area.geometry, area.crs, date.block, params, reach,
                                max_pixels=limits.max_pixels, limits=limits)
    cloud, shadow = block_masks(date.cells, shadow_input, params, shadow_params)
    return DateMasks(shadow_input.grid, shadow_input.valid, cloud, shadow, shadow_input)
