"""The cloud and shadow masks of one date on its 10 m cloud block, as a query computes them.

:func:`block_masks` turns a date's resolved cloud cells into the 10 m cloud mask (each pixel takes its cell's
CLM value) and the shadow mask of :mod:`stats.clouds.shadows`; the time series uses it for every date, and
:func:`date_masks` reads, scores and masks one date on its own (for evaluations and maps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..archive.catalog import Acquisition
from ..raster import Grid
from ..request import Area, Limits, MaskParameters
from .cells import CellRequest, ProbabilityCache, cell_request, cloud_grids, read_cloud_block, resolve_probabilities
from .model import CloudModel
from .shadows import ShadowInput, ShadowParameters, cells_on_pixels, shadow_reach


def block_masks(cells: CellRequest, shadow_input: ShadowInput, params: MaskParameters,
                shadow_params: ShadowParameters) -> tuple[np.ndarray, np.ndarray]:
    """The 10 m cloud mask and shadow mask (bool, the block's shape) of resolved ``cells``."""
    cloud = cells_on_pixels(cloud_grids(cells, params)[1], params.cell_pixels, shadow_input.valid.shape)
    return cloud, shadow_input.detect(cloud, shadow_params)


@dataclass(frozen=True)
class DateMasks:
    """One date's masks on the 10 m ``grid`` of its cloud block: ``valid`` (data in every band), ``cloud``
    and ``shadow`` (None, with ``warning``, when the tile has no sun angles), and the detector's ``input``
    (to run it under another cloud mask)."""

    grid: Grid
    valid: np.ndarray
    cloud: np.ndarray
    shadow: np.ndarray | None
    input: ShadowInput | None = None
    warning: str | None = None


def date_masks(tiles: Sequence[Acquisition], area: Area, bands: Sequence[str], params: MaskParameters,
               shadow_params: ShadowParameters, model: CloudModel, cache: ProbabilityCache | None = None,
               limits: Limits | None = None) -> DateMasks:
    """Read the cloud block of one date around ``area`` (reaching towards the sun as a query does), score its
    cells and return its masks; ``bands`` must hold the model bands."""
    limits = limits or Limits()
    reach, warning = shadow_reach(tiles[0], shadow_params)
    block = read_cloud_block(tiles, area.geometry, area.crs, bands, params, max_pixels=limits.max_pixels,
                             limits=limits, reach=reach)
    cells = cell_request(block, params)
    resolve_probabilities([cells], model, cache or ProbabilityCache())
    if warning is not None:
        cloud = cells_on_pixels(cloud_grids(cells, params)[1], params.cell_pixels, block.data.shape)
        return DateMasks(block.grid, block.data, cloud, None, warning=warning)
    shadow_input = ShadowInput.of(block, tiles[0])
    cloud, shadow = block_masks(cells, shadow_input, params, shadow_params)
    return DateMasks(block.grid, block.data, cloud, shadow, shadow_input)
