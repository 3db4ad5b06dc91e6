"""Reading archive bands onto a requested output grid (any CRS, any pixel size), as Sentinel Hub's Process API does.

The Process API answers on the caller's grid: a bounding box in any CRS cut into ``width`` x ``height``
pixels. Each band of an acquisition is warped from its COG onto that grid with GDAL's warper
(``rasterio.warp.reproject``), which reads only the source blocks the grid needs. The resampling follows
Sentinel Hub's two settings: ``upsampling`` where the output pixel is finer than the band's own pixel (the
20/60 m bands on a 10 m grid, or any band on a 5 m grid), ``downsampling`` where it is coarser; each is
``NEAREST``, ``BILINEAR`` or ``BICUBIC`` (GDAL's nearest, bilinear and cubic kernels). DN 0 is no data in
the source, the kernels leave no-data pixels out, and a pixel the band does not cover is NaN in the result;
a cubic kernel's undershoot below 0 next to dark pixels is clipped to 0 (data, not no data).

:func:`read_acquisition` reads the bands of one acquisition; :class:`GridMosaic` lays acquisitions over each
other, the first with data winning at each pixel (Sentinel Hub's ``SIMPLE`` mosaicking), and remembers which
acquisition each pixel came from.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.enums import Resampling
from rasterio.warp import reproject

from ..archive.catalog import Acquisition
from ..datasets import map_threads
from ..errors import InvalidRequestError, SceneReadError
from ..geometry import cached_crs, ground_pixel_size
from ..raster import Grid, open_band

log = logging.getLogger(__name__)

#: Sentinel Hub's resampling names and GDAL's kernels for them.
RESAMPLINGS: Mapping[str, Resampling] = {
    "NEAREST": Resampling.nearest, "BILINEAR": Resampling.bilinear, "BICUBIC": Resampling.cubic,
}


@dataclass(frozen=True)
class Sampling:
    """How a band is resampled onto a finer (``upsampling``) or coarser (``downsampling``) grid."""

    upsampling: str = "NEAREST"
    downsampling: str = "NEAREST"

    @classmethod
    def parse(cls, processing: Mapping[str, object], name: str) -> Sampling:
        """``upsampling``/``downsampling`` of a request's ``processing`` object (default NEAREST)."""
        values = {}
        for key in ("upsampling", "downsampling"):
            value = processing.get(key, "NEAREST")
            if not isinstance(value, str) or value.upper() not in RESAMPLINGS:
                raise InvalidRequestError(f"{name}.{key}: got {value!r:.40}; expected one of {list(RESAMPLINGS)}")
            values[key] = value.upper()
        return cls(**values)

    def kernel(self, output_m: float, band_m: float) -> Resampling:
        """The kernel for a band of ``band_m`` metre pixels on a grid of ``output_m`` metre pixels."""
        return RESAMPLINGS[self.upsampling if output_m < band_m * (1 - 1e-6) else self.downsampling]


def grid_from_bounds(crs: CRS, bounds: tuple[float, float, float, float], width: int, height: int) -> Grid:
    """The north-up grid of ``width`` x ``height`` pixels exactly covering ``bounds`` (minx, miny, maxx, maxy)."""
    minx, miny, maxx, maxy = bounds
    transform = Affine((maxx - minx) / width, 0.0, minx, 0.0, -(maxy - miny) / height, maxy)
    return Grid(crs, transform, (height, width))


def grid_ground_size(grid: Grid) -> float:
    """The mean ground size, in metres, of the grid's pixels at its centre."""
    lon, lat = grid_centre_lonlat(grid)
    return ground_pixel_size(grid.crs, grid.pixel_size, lon, lat)


def grid_centre_lonlat(grid: Grid) -> tuple[float, float]:
    """The grid's centre in (lon, lat)."""
    rows, cols = grid.shape
    x, y = grid.transform @ (cols / 2.0, rows / 2.0)
    if grid.crs.is_geographic:
        return float(x), float(y)
    lon, lat = Transformer.from_crs(grid.crs, CRS.from_epsg(4326), always_xy=True).transform(x, y)
    return float(lon), float(lat)


def pixel_centres(grid: Grid, where: np.ndarray, crs: CRS) -> tuple[np.ndarray, np.ndarray]:
    """The centres of the grid pixels where ``where`` is True (row-major order), in ``crs``."""
    rows, cols = np.nonzero(where)
    t = grid.transform
    x, y = t.c + (cols + 0.5) * t.a, t.f + (rows + 0.5) * t.e
    if crs == grid.crs:
        return x, y
    tx, ty = Transformer.from_crs(grid.crs, crs, always_xy=True).transform(x, y)
    return np.asarray(tx, dtype=np.float64), np.asarray(ty, dtype=np.float64)


def band_on_grid(acq: Acquisition, band: str, grid: Grid, sampling: Sampling, output_m: float) -> np.ndarray:
    """One band of ``acq`` (stored DN, float32 at least 0, NaN where there is no data) warped onto ``grid``.

    :param output_m: the grid's pixel size on the ground (:func:`grid_ground_size`), which chooses up- or
        downsampling against the band's own pixel size.
    :raises SceneReadError: when the band cannot be opened or read.
    """
    out = np.full(grid.shape, np.nan, dtype=np.float32)
    with open_band(acq, band) as src:
        centre = acq.footprint.centroid
        band_m = ground_pixel_size(cached_crs(acq.crs), (src.transform.a, -src.transform.e), centre.x, centre.y)
        try:
            reproject(source=rasterio.band(src, 1), destination=out, src_transform=src.transform, src_crs=src.crs,
                      src_nodata=0, dst_transform=grid.transform, dst_crs=grid.crs, dst_nodata=np.nan,
                      resampling=sampling.kernel(output_m, band_m))
        except rasterio.errors.RasterioError as exc:
            log.warning("scene %s band %s: %s", acq.id, band, exc)
            raise SceneReadError(f"scene {acq.id}: band {band} cannot be read (corrupt data)") from exc
    return np.maximum(out, 0, where=np.isfinite(out), out=out)


def read_acquisition(acq: Acquisition, bands: Sequence[str], grid: Grid, sampling: Sampling,
                     output_m: float | None = None) -> dict[str, np.ndarray]:
    """The ``bands`` of ``acq`` on ``grid`` (stored DN, NaN for no data: see :func:`band_on_grid`), read on
    parallel threads."""
    size = grid_ground_size(grid) if output_m is None else output_m
    return dict(zip(bands, map_threads(partial(band_on_grid, acq, grid=grid, sampling=sampling, output_m=size),
                                       bands)))


class GridMosaic:
    """Acquisitions laid over each other on one output grid, the first with data in every band winning at each
    pixel (Sentinel Hub's ``SIMPLE`` mosaicking).

    ``dn`` holds each band's harmonised DN (float32; the acquisition's baseline offset removed, clipped at 0),
    ``offset`` the offset removed per pixel, ``filled`` the pixels with data, and ``source`` the index in
    :attr:`acquisitions` of the acquisition each pixel came from (-1 for none).
    """

    def __init__(self, grid: Grid, bands: Sequence[str]) -> None:
        self.grid = grid
        self.dn = {band: np.zeros(grid.shape, dtype=np.float32) for band in bands}
        self.offset = np.zeros(grid.shape, dtype=np.uint16)
        self.filled = np.zeros(grid.shape, dtype=bool)
        self.source = np.full(grid.shape, -1, dtype=np.int32)
        self.acquisitions: list[Acquisition] = []

    def add(self, acq: Acquisition, arrays: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """Lay one acquisition's bands (from :func:`read_acquisition`) where no earlier one has data; returns
        the pixels it filled, or None when it filled none."""
        has = np.logical_and.reduce([np.isfinite(a) for a in arrays.values()]) & ~self.filled
        if not has.any():
            return None
        for band, array in arrays.items():
            self.dn[band][has] = np.maximum(array[has] - acq.dn_offset, 0)
        self.offset[has] = acq.dn_offset
        self.filled |= has
        self.source[has] = len(self.acquisitions)
        self.acquisitions.append(acq)
        return has

    @property
    def complete(self) -> bool:
        """Whether every pixel of the grid has data."""
        return bool(self.filled.all())
