"""The pixels of one date over the water region: the water index image, its masks and its cloud cells.

When the region is the posted polygon (plain mode, no buffer) the date's own blocks are used; otherwise the
region is read on its own (:func:`read_region`), at the query's resolution, with the same per-pixel cloud
recipe (:mod:`stats.clouds.cells`) over the region, so that the band statistics stay those of the polygon.
The index is computed on harmonised reflectance (DN / 10000, baseline offset removed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from ..archive.catalog import Acquisition
from ..bands import MODEL_BANDS, QUANTIFICATION_VALUE, S2_BANDS
from ..clouds.cells import CellRequest, pixel_clouds
from ..clouds.layers import cloud_cells
from ..clouds.options import MaskParameters
from ..errors import InvalidRequestError
from ..geometry import cached_crs, reproject
from ..grid import Grid, polygon_mask
from ..raster import PixelBlock, read_date
from ..request import Limits
from .options import WaterOptions
from .outline import RegionShape, analysed_region


@dataclass
class WaterRegion:
    """One date's region on its grid: ``index`` (float64, NaN where not finite), ``inside`` (pixel in the
    region), ``data`` (pixel with data in every band), ``coverage`` (exact mode), the ``outline`` pixels
    (monitoring only: water not connected to them is left out), the outline's area and the cloud cells."""

    grid: Grid
    index: np.ndarray
    inside: np.ndarray
    data: np.ndarray
    nominal_area_m2: float
    coverage: np.ndarray | None = None
    outline: np.ndarray | None = None
    cells: CellRequest | None = None

    @property
    def valid(self) -> np.ndarray:
        """Pixels in the region with data."""
        return self.inside & self.data

    def cloudy(self, params: MaskParameters) -> np.ndarray:
        """The per-pixel cloud mask (bool, grid shape) once the cells are resolved; all False without cells."""
        out = np.zeros(self.grid.shape, dtype=bool)
        valid = self.valid
        if self.cells is not None and valid.any():
            out[valid] = pixel_clouds(self.cells, params, self.grid, valid).cloudy
        return out


def index_image(options: WaterOptions, block: PixelBlock) -> np.ndarray:
    """The water index of every pixel of ``block`` (NaN where not finite or without data)."""
    spec = options.spec
    image = spec.evaluate({b: block.dn[b].astype(np.float64) / QUANTIFICATION_VALUE for b in spec.bands})
    image[~block.data] = np.nan
    return image


def region_of_block(options: WaterOptions, block: PixelBlock, shape: RegionShape,
                    cells: CellRequest | None) -> WaterRegion:
    """The region when it is the block's own polygon (``block.inside``)."""
    return WaterRegion(grid=block.grid, index=index_image(options, block), inside=block.inside, data=block.data,
                       nominal_area_m2=shape.nominal_area_m2, coverage=block.coverage, cells=cells)


def read_region(options: WaterOptions, tiles: Sequence[Acquisition], shape: RegionShape, *, resolution: int,
                params: MaskParameters, limits: Limits, exact: bool) -> WaterRegion:
    """Read the region of ``shape`` on one date: the index bands at ``resolution`` and the model bands of
    its cloud cells (one read when ``resolution`` is 10 m)."""
    index_bands = set(options.spec.bands)
    bands = [b for b in S2_BANDS if b in index_bands or b in MODEL_BANDS]
    try:
        date_cells = cloud_cells(tiles, shape.region, shape.crs, bands, params,
                                 max_pixels=limits.max_pixels, exact=exact, limits=limits)
        cloud_block = date_cells.block
        block = cloud_block if resolution == 10 and cloud_block is not None else read_date(
            tiles, shape.region, shape.crs, [b for b in S2_BANDS if b in index_bands], resolution=resolution,
            max_pixels=limits.max_pixels, exact=exact, limits=limits)
    except InvalidRequestError as exc:
        raise InvalidRequestError(
            f"water: the region analysed (the outline grown by {options.buffer_m:g} m) is too large to read: "
            + str(exc).removeprefix("geometry: ")) from exc
    outline = polygon_mask(_to_grid(shape, block.grid), block.grid) if options.monitoring else None
    cells = date_cells.cells if block.valid.any() else None
    return WaterRegion(grid=block.grid, index=index_image(options, block), inside=block.inside, data=block.data,
                       nominal_area_m2=shape.nominal_area_m2, coverage=block.coverage, outline=outline, cells=cells)


def _to_grid(shape: RegionShape, grid: Grid) -> BaseGeometry:
    return reproject(shape.outline, shape.crs, grid.crs)


def water_region(options: WaterOptions, tiles: Sequence[Acquisition], polygon: BaseGeometry, polygon_crs: CRS,
                 block: PixelBlock, cells: CellRequest | None, *, resolution: int, params: MaskParameters,
                 limits: Limits, exact: bool) -> WaterRegion:
    """The date's water region: the posted polygon's ``block`` (and cloud ``cells``) when the region is the
    polygon, else the region read on its own."""
    shape = analysed_region(options, polygon, polygon_crs, cached_crs(tiles[0].crs))
    if not options.own_region:
        region = region_of_block(options, block, shape, cells)
        if options.monitoring:
            region.outline = region.inside
        return region
    return read_region(options, tiles, shape, resolution=resolution, params=params, limits=limits,
                       exact=exact)
