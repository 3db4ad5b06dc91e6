"""Windowed reads of the bands a query needs, on one grid per date, mosaicking the date's tiles.

The query grid (:func:`stats.grid.query_grid`) is the first tile's own grid, scaled to the query resolution:
a tile whose 10 m bands have pixels of size ``p`` (10 m for Sentinel-2 products, 9.995 m for some resampled
stacks) is read on a grid of ``p * resolution / 10``, anchored at the tile's origin, so that a query at the
native resolution returns the stored pixels unchanged. Only the window covering the polygon is read from each band:

* a band coarser than the grid (20/60 m bands on the 10 m grid) is upsampled by nearest neighbour, so each
  grid pixel takes the value of the band pixel containing its centre (Sentinel Hub's default NEAREST);
* a band finer than the grid (10 m bands on the 60 m grid) is downsampled by area averaging over its
  valid (non-zero) pixels, in float64 (so averaged DN keep their fractions).

Tiles of the same date on the same grid are read with plain windows; a tile on another grid or CRS is
warped onto the query grid by nearest neighbour (``rasterio.vrt.WarpedVRT``). The first tile with valid data
wins at each pixel. Stored DN 0 is no data; a band read onto a grid is NaN where it has no data, and a
pixel is valid when no band read there is NaN.

Those are the ``NEAREST`` rules. A request may choose other up- and downsampling methods
(:class:`stats.sampling.Sampling`, Sentinel Hub's ``BILINEAR``/``BICUBIC``; up or down decided by the pixel
sizes on the ground): a band read with one of them is warped onto the grid with that rasterio method
(:func:`warp_band`: ``rasterio.warp.reproject`` into float32, NaN for no data, so that a cubic undershoot
clipped to 0 stays data). :func:`read_band` is that one rule, for every route.

Sentinel Hub's own APIs read onto the grid of the request instead of the tile's
(:func:`stats.grid.request_grid`): :func:`read_grid` mosaics a date's tiles onto any grid with the request's
sampling (FIS, Statistical), and the Process API lays :func:`read_bands` of each acquisition on a
:class:`Mosaic` of its grid. The grids themselves, and the polygon masks on them, are :mod:`stats.grid`'s.

Mask convention: ``inside`` is True where the pixel centre lies inside the polygon (``all_touched=False``,
:func:`stats.grid.polygon_mask`), ``valid`` is True where the pixel is inside and has data in every band.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import cached_property, partial

import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import reproject as warp_reproject
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

from .archive.catalog import Acquisition
from .archive.layouts import SCL_ASSET
from .archive.storage import gdal_path, open_failure
from .bands import QUANTIFICATION_VALUE
from .coverage import coverage_fractions
from .datasets import DatasetPool, dataset_key, gdal_env, is_remote, map_threads, pool_for, window_cache
from .errors import SceneReadError
from .geometry import cached_crs, crs_name, ground_pixel_size, reproject
from .grid import EPS, Grid, Pad, grid_centre_lonlat, pixel_size_10m, polygon_mask, query_grid
from .request import DEFAULT_MAX_PIXELS, Limits
from .sampling import NEAREST, Sampling

log = logging.getLogger(__name__)
# reproject() onto a NumPy array wraps it in a dataset before giving it the grid's transform, and rasterio
# warns about that moment; the transform is always given here
warnings.filterwarnings("ignore", category=rasterio.errors.NotGeoreferencedWarning, module=r"rasterio\.warp")

#: Bytes a query holds per band and window pixel: the float32 window read (NaN for no data, kept in the window
#: cache), the float32 mosaic, and the float64 values the statistics stack and partition for percentiles.
#: Measured at 34 (time series) to 42 (FIS) bytes by ``bench/memory.py``.
BAND_PIXEL_BYTES = 48


@dataclass
class PixelBlock:
    """The bands of one date over one polygon, on one grid.

    ``dn`` maps band name to a float32 array of shape ``grid.shape`` holding harmonised DN (the baseline
    04.00 offset removed, clipped at 0; ``offset`` holds the removed offset per pixel, so that
    ``dn + offset`` gives the stored DN back); ``inside``, ``data`` (data in every band,
    inside the polygon or not) and ``valid`` (``inside & data``) are boolean masks of the same shape.
    ``scenes`` lists the ids of the tiles that contributed. ``coverage``, read in exact mode, holds the
    fraction of each pixel's area inside the polygon (``inside`` is then ``coverage > 0``).
    """

    grid: Grid
    dn: dict[str, np.ndarray]
    inside: np.ndarray
    data: np.ndarray
    offset: np.ndarray
    scenes: list[str] = field(default_factory=list)
    coverage: np.ndarray | None = None

    @cached_property
    def valid(self) -> np.ndarray:
        """Pixels inside the polygon with data in every band."""
        return self.inside & self.data

    @property
    def valid_count(self) -> int:
        """Pixels inside the polygon with data in every band."""
        return int(self.valid.sum())

    @property
    def nodata_count(self) -> int:
        """Pixels inside the polygon without data in at least one band."""
        return int(self.inside.sum()) - self.valid_count

    def reflectance(self, band: str) -> np.ndarray:
        """TOA reflectance of the valid pixels, float64, 1-D, in row-major pixel order."""
        return self.dn[band][self.valid].astype(np.float64) / QUANTIFICATION_VALUE


def native_pixel(acq: Acquisition, bands: Sequence[str]) -> tuple[float, float]:
    """Pixel (width, height), in CRS units, of the 10 m class of ``acq`` (see :func:`pixel_size_10m`), from
    the finest of ``bands``."""
    shapes = map_threads(partial(band_shape, acq), bands, io=remote(acq))
    return pixel_size_10m(min(shapes, key=lambda s: abs(s.transform.a)).transform)


def _axis_ratio(grid_step: float, band_step: float) -> float | None:
    """``grid_step / band_step`` when one is a whole multiple of the other, else None."""
    ratio = grid_step / band_step
    whole = ratio if ratio >= 1 else 1.0 / ratio
    return ratio if abs(whole - round(whole)) < EPS else None


def aligned(band: Affine, grid: Grid, same_crs: bool) -> bool:
    """True when the band can be read with a plain (possibly fractional) window onto the grid: same CRS,
    north-up, pixel sizes whole multiples of each other, and pixel edges on a common lattice."""
    if not same_crs or band.b != 0 or band.d != 0 or band.e >= 0 or band.a <= 0:
        return False
    gx, gy = grid.pixel_size
    if _axis_ratio(gx, band.a) is None or _axis_ratio(gy, -band.e) is None:
        return False
    dx = (grid.transform.c - band.c) / min(gx, band.a)
    dy = (band.f - grid.transform.f) / min(gy, -band.e)
    return abs(dx - round(dx)) < 1e-4 and abs(dy - round(dy)) < 1e-4


def _read_aligned(src: rasterio.io.DatasetReader, grid: Grid) -> np.ndarray:
    """Read ``src`` band 1 onto ``grid`` with a window; no data (DN 0, or outside the dataset) is NaN."""
    t = src.transform
    gx, gy = grid.pixel_size
    rows, cols = grid.shape
    out = np.full(grid.shape, np.nan, dtype=np.float32)
    # the dataset's extent in grid pixel units, rounded inward (a grid pixel must lie fully in the tile)
    left = (t.c - grid.transform.c) / gx
    right = (t.c + src.width * t.a - grid.transform.c) / gx
    top = (grid.transform.f - t.f) / gy
    bottom = (grid.transform.f - (t.f + src.height * t.e)) / gy
    c0, c1 = max(0, math.ceil(left - EPS)), min(cols, math.floor(right + EPS))
    r0, r1 = max(0, math.ceil(top - EPS)), min(rows, math.floor(bottom + EPS))
    if c0 >= c1 or r0 >= r1:
        return out
    sx, sy = gx / t.a, gy / -t.e
    window = Window(col_off=(c0 - left) * sx, row_off=(r0 - top) * sy, width=(c1 - c0) * sx, height=(r1 - r0) * sy)
    if max(sx, sy) <= 1 + EPS:
        # upsampling or same size: each grid pixel takes the band pixel containing its centre
        read = src.read(1, window=window, out_shape=(r1 - r0, c1 - c0), resampling=Resampling.nearest,
                        out_dtype="float32")
        out[r0:r1, c0:c1] = np.where(read > 0, read, np.float32(np.nan))
        return out
    # downsampling by whole factors: the window lies on band pixel edges; average the valid pixels
    kx, ky = round(sx), round(sy)
    window = Window(round(window.col_off), round(window.row_off), (c1 - c0) * kx, (r1 - r0) * ky)
    native = src.read(1, window=window).astype(np.float64)
    blocks = native.reshape(r1 - r0, ky, c1 - c0, kx)
    counts = (blocks > 0).sum(axis=(1, 3))
    sums = blocks.sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        out[r0:r1, c0:c1] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return out


def _read_warped(src: rasterio.io.DatasetReader, grid: Grid) -> np.ndarray:
    """Warp ``src`` band 1 onto ``grid`` by nearest neighbour; no data (DN 0, or outside the dataset) is NaN."""
    with WarpedVRT(
        src, crs=grid.crs, transform=grid.transform, width=grid.shape[1], height=grid.shape[0],
        resampling=Resampling.nearest, nodata=0,
    ) as vrt:
        read = vrt.read(1, out_dtype="float32")
    return np.where(read > 0, read, np.float32(np.nan))


def warp_band(src: rasterio.io.DatasetReader, grid: Grid, method: Resampling) -> np.ndarray:
    """Warp ``src`` band 1 onto ``grid`` with the rasterio kernel ``method`` into float32 stored DN.

    DN 0 is no data in the source and is left out of the kernels; a grid pixel without data (or outside the
    dataset) is NaN. A cubic kernel's undershoot below 0 next to dark pixels is clipped to 0 and stays data.
    """
    out = np.full(grid.shape, np.nan, dtype=np.float32)
    warp_reproject(source=rasterio.band(src, 1), destination=out, src_nodata=0, dst_nodata=np.nan,
                   dst_transform=grid.transform, dst_crs=grid.crs.to_wkt(), resampling=method)
    return np.maximum(out, 0, where=np.isfinite(out), out=out)


def band_method(src: rasterio.io.DatasetReader, grid: Grid, sampling: Sampling) -> Resampling:
    """The rasterio method that brings ``src`` onto ``grid`` by ``sampling``: both pixel sizes measured on the
    ground, in metres, at the grid's centre (:func:`stats.geometry.ground_pixel_size`)."""
    lon, lat = grid_centre_lonlat(grid)
    band_m = ground_pixel_size(cached_crs(src.crs.to_wkt()), (src.transform.a, src.transform.e), lon, lat)
    return sampling.method(band_m, ground_pixel_size(grid.crs, grid.pixel_size, lon, lat))


def _href(acq: Acquisition, band: str) -> str:
    href = acq.assets.get(band)
    if href is None:
        what = "the scene classification" if band == SCL_ASSET else f"band {band}"
        raise SceneReadError(f"scene {acq.id}: {what} is missing from the archive item (no asset "
                             f"{acq.asset_key(band)!r}, {acq.layout} layout, {acq.level})")
    return gdal_path(href)


def remote(acq: Acquisition) -> bool:
    """Whether ``acq``'s bands are read over the network (then on the I/O threads, see :mod:`stats.datasets`)."""
    return any(is_remote(href) for href in acq.assets.values())


@contextmanager
def open_band(acq: Acquisition, band: str, pool: DatasetPool | None = None) -> Iterator[rasterio.io.DatasetReader]:
    """The open dataset of one band of ``acq``, kept open in ``pool`` (default
    :func:`stats.datasets.default_pool`; a remote band in :func:`stats.datasets.remote_pool`, and opened and
    read with the remote GDAL configuration).

    :raises SceneReadError: when the asset is missing, cannot be opened or is not in the catalog's CRS.
    """
    href = _href(acq, band)
    expected = cached_crs(acq.crs)

    def check(src: rasterio.io.DatasetReader) -> None:
        if src.crs is None or cached_crs(src.crs.to_wkt()) != expected:
            found = src.crs.to_string() if src.crs is not None else "no CRS"
            raise SceneReadError(
                f"scene {acq.id}: band {band} is in {found}, but the catalog says {crs_name(expected)}")

    with ExitStack() as stack:
        stack.enter_context(gdal_env(href))
        try:
            src = stack.enter_context(pool_for(href, pool).open(href, check))
        except rasterio.errors.RasterioIOError as exc:
            log.warning("scene %s band %s: %s", acq.id, band, exc)
            raise SceneReadError(f"scene {acq.id}: band {band} (asset {acq.asset_key(band)!r}) cannot be opened: "
                                 f"{open_failure(href, str(exc))}") from exc
        yield src


@dataclass(frozen=True)
class BandShape:
    """A band file's transform and size."""

    transform: Affine
    width: int
    height: int


_SHAPES: dict[tuple[tuple[str, int, int], str], BandShape] = {}
_SHAPES_MAX = 8192


def _shape_key(acq: Acquisition, band: str) -> tuple[tuple[str, int, int], str]:
    return dataset_key(_href(acq, band)), acq.crs


def band_shape(acq: Acquisition, band: str, pool: DatasetPool | None = None) -> BandShape:
    """The band's transform and size, remembered per file version (and catalog CRS, which the first open
    checked), so that a query answered from the window cache opens no file at all."""
    key = _shape_key(acq, band)
    shape = _SHAPES.get(key)
    if shape is None:
        with open_band(acq, band, pool) as src:
            shape = BandShape(src.transform, src.width, src.height)
        if len(_SHAPES) >= _SHAPES_MAX:
            _SHAPES.clear()
        _SHAPES[key] = shape
    return shape


def _window_key(acq: Acquisition, band: str, grid: Grid, sampling: Sampling) -> tuple[object, ...]:
    """What identifies a window read: the file version, the grid and the sampling."""
    key: tuple[object, ...] = (dataset_key(_href(acq, band)), tuple(grid.transform)[:6], grid.shape, grid.crs_wkt)
    if not sampling.nearest:
        key += (sampling.upsampling, sampling.downsampling)
    return key


def read_band(acq: Acquisition, band: str, grid: Grid, sampling: Sampling = NEAREST) -> np.ndarray:
    """The band of ``acq`` on ``grid`` (float32 stored DN, NaN for no data) by ``sampling``'s rule (see the
    module docstring); a window read before comes from the cache. This is the one rule that brings a band onto
    a grid, for every route.

    :raises SceneReadError: when the band is missing, cannot be opened or cannot be read.
    """
    key = _window_key(acq, band, grid, sampling)
    cached = window_cache().get(key)
    return cached if cached is not None else _read_window(acq, band, grid, sampling, key)


def _read_window(acq: Acquisition, band: str, grid: Grid, sampling: Sampling, key: tuple[object, ...]) -> np.ndarray:
    """:func:`read_band` of a window not in the cache: read from the band file, then kept in the cache under
    ``key`` (its :func:`_window_key`)."""
    with open_band(acq, band) as src:
        try:
            method = Resampling.nearest if sampling.nearest else band_method(src, grid, sampling)
            if method != Resampling.nearest:
                array = warp_band(src, grid, method)
            elif aligned(src.transform, grid, cached_crs(acq.crs) == grid.crs):
                array = _read_aligned(src, grid)
            else:
                array = _read_warped(src, grid)
        except rasterio.errors.RasterioError as exc:
            log.warning("scene %s band %s: %s", acq.id, band, exc)
            raise SceneReadError(f"scene {acq.id}: band {band} cannot be read (corrupt data)") from exc
    window_cache().put(key, array)
    return array


def read_date(
    tiles: Sequence[Acquisition],
    geometry: BaseGeometry,
    geometry_crs: CRS,
    bands: Sequence[str],
    *,
    resolution: int = 10,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    pad: Pad = 0,
    snap: int = 1,
    exact: bool = False,
    limits: Limits | None = None,
    grid_tile: Acquisition | None = None,
    sampling: Sampling = NEAREST,
) -> PixelBlock:
    """Read ``bands`` of the tiles of one date over ``geometry`` and mosaic them (first valid tile wins).

    :param tiles: acquisitions of one date, in priority order.
    :param geometry: the query polygon in ``geometry_crs``.
    :param resolution: grid resolution in metres: 10, 20 or 60 (the native route), or any whole number of
        metres (FIS's RESOLUTION; under 10 m the bands are upsampled).
    :param pad: grid pixels read around the polygon's bounds (within the first tile): one number for every
        side, or (left, top, right, bottom).
    :param snap: align the grid's origin to multiples of ``snap`` pixels from the first tile's origin.
    :param exact: compute the coverage fraction of every pixel (``inside`` = touched by the polygon).
    :param limits: the request's memory budget, checked (:data:`BAND_PIXEL_BYTES` per band and pixel) once
        the window is known and before any band is read.
    :param grid_tile: the tile whose grid the block is on (by default the first tile), so that reads of
        other tiles of the same query land on one grid.
    :param sampling: the up- and downsampling methods (:mod:`stats.sampling`).
    :raises SceneReadError: when a tile's asset is missing or unreadable.
    """
    if not tiles:
        raise ValueError("read_date needs at least one tile")
    primary = grid_tile or tiles[0]
    grid_crs = cached_crs(primary.crs)
    geom = reproject(geometry, geometry_crs, grid_crs)
    grid: Grid | None = None
    inside: np.ndarray | None = None
    coverage: np.ndarray | None = None
    mosaic: Mosaic | None = None
    for acq in tiles:
        if grid is None:
            grid = _date_grid(_band_shapes(primary, bands), grid_crs, geom, resolution, max_pixels, pad, snap)
            if limits is not None:
                limits.check_memory(grid.shape[0] * grid.shape[1] * len(bands), BAND_PIXEL_BYTES,
                                    f"reading {len(bands)} bands over {grid.shape[1]} x {grid.shape[0]} pixels")
            if exact:
                coverage = coverage_fractions(geom, grid.transform, grid.shape)
                inside = coverage > 0
            else:
                inside = polygon_mask(geom, grid)
            mosaic = Mosaic(grid.shape, bands)
        assert mosaic is not None
        _lay(mosaic, acq, grid, bands, sampling)
    assert grid is not None and inside is not None and mosaic is not None
    return PixelBlock(grid=grid, dn=mosaic.dn, inside=inside, data=mosaic.filled, offset=mosaic.offset,
                      scenes=mosaic.scenes or [tiles[0].id], coverage=coverage)


def _date_grid(shapes: Sequence[BandShape], grid_crs: CRS, geom: BaseGeometry, resolution: int, max_pixels: int,
               pad: Pad, snap: int) -> Grid:
    """The grid :func:`read_date` reads a date on: ``resolution`` metres, anchored on the finest of the first
    tile's bands (``shapes``), over ``geom`` (in ``grid_crs``)."""
    finest = min(shapes, key=lambda s: abs(s.transform.a))
    anchor = finest.transform
    px, py = pixel_size_10m(anchor)
    pixel = (px * resolution / 10.0, py * resolution / 10.0)
    extent = (round(finest.height * abs(anchor.e) / pixel[1]), round(finest.width * anchor.a / pixel[0]))
    return query_grid(anchor, grid_crs, pixel, geom, max_pixels=max_pixels, pad=pad, snap=snap, extent=extent)


def date_is_cached(tiles: Sequence[Acquisition], geometry: BaseGeometry, geometry_crs: CRS, bands: Sequence[str], *,
                   resolution: int = 10, max_pixels: int = DEFAULT_MAX_PIXELS, sampling: Sampling = NEAREST) -> bool:
    """Whether :func:`read_date` of these arguments (no padding or snapping) would open no file: every band's
    shape is known and every window is in the window cache. No file is opened to tell."""
    primary = tiles[0]
    shapes = [_SHAPES.get(_shape_key(primary, band)) for band in bands]
    known = [shape for shape in shapes if shape is not None]
    if not known or len(known) < len(shapes):
        return False
    grid_crs = cached_crs(primary.crs)
    try:
        grid = _date_grid(known, grid_crs, reproject(geometry, geometry_crs, grid_crs), resolution, max_pixels, 0, 1)
    except (ValueError, SceneReadError):  # no window there (read_date says why)
        return False
    cache = window_cache()
    return all(cache.get(_window_key(acq, band, grid, sampling)) is not None for acq in tiles for band in bands)


def read_bands(acq: Acquisition, bands: Sequence[str], grid: Grid,
               sampling: Sampling = NEAREST) -> dict[str, np.ndarray]:
    """:func:`read_band` of each of ``bands``: the windows read before from the cache, the others on the
    reader threads."""
    cache = window_cache()
    keys = {band: _window_key(acq, band, grid, sampling) for band in bands}
    arrays = {band: cache.get(key) for band, key in keys.items()}
    missing = [band for band, array in arrays.items() if array is None]
    if missing:  # read once, without asking the cache again
        arrays.update(zip(missing, map_threads(lambda band: _read_window(acq, band, grid, sampling, keys[band]),
                                               missing, io=remote(acq))))
    return arrays


def _lay(mosaic: Mosaic, acq: Acquisition, grid: Grid, bands: Sequence[str], sampling: Sampling) -> None:
    """Read ``bands`` of one tile onto ``grid`` and lay them on ``mosaic``."""
    mosaic.add(acq, read_bands(acq, bands, grid, sampling))


def _band_shapes(acq: Acquisition, bands: Sequence[str]) -> list[BandShape]:
    """:func:`band_shape` of each band, the ones not known yet read on the reader threads."""
    known = {band: _SHAPES.get(_shape_key(acq, band)) for band in bands}
    missing = [band for band, shape in known.items() if shape is None]
    if missing:
        known.update(zip(missing, map_threads(partial(band_shape, acq), missing, io=remote(acq))))
    return [shape for shape in known.values() if shape is not None]


def read_grid(tiles: Sequence[Acquisition], grid: Grid, geometry: BaseGeometry, geometry_crs: CRS,
              bands: Sequence[str], *, sampling: Sampling = NEAREST, limits: Limits | None = None) -> PixelBlock:
    """Read ``bands`` of the tiles of one date onto ``grid`` (any CRS and pixel size, e.g. a
    :func:`request_grid`) with ``sampling``, and mosaic them (first valid tile wins at each pixel).

    ``inside`` is :func:`polygon_mask` of ``geometry`` (given in ``geometry_crs``) on the grid. This is the
    one rule for bringing archive bands onto a request's grid.

    :raises SceneReadError: when a tile's asset is missing or unreadable.
    :raises InvalidRequestError: when the bands over the grid would pass the request's memory budget.
    """
    if not tiles:
        raise ValueError("read_grid needs at least one tile")
    rows, cols = grid.shape
    if limits is not None:
        limits.check_memory(rows * cols * len(bands), BAND_PIXEL_BYTES,
                            f"reading {len(bands)} bands over {cols} x {rows} pixels")
    inside = polygon_mask(reproject(geometry, geometry_crs, grid.crs), grid)
    mosaic = Mosaic(grid.shape, bands)
    for acq in tiles:
        _lay(mosaic, acq, grid, bands, sampling)
    return PixelBlock(grid=grid, dn=mosaic.dn, inside=inside, data=mosaic.filled, offset=mosaic.offset,
                      scenes=mosaic.scenes or [tiles[0].id])


class Mosaic:
    """The tiles of one date laid over each other, the first tile with data winning at each pixel.

    ``dn`` holds each band's harmonised DN (float32; the tile's baseline offset removed, clipped at 0; 0
    where no tile has data), ``offset`` the offset removed per pixel, ``filled`` the pixels some tile had
    data for (a pixel has data when no band is NaN there), ``acquisitions`` the tiles that filled any and
    ``source`` the index in it of the tile each pixel came from (-1 for none). Arrays may have any shape (a
    grid, or the flat pixel list of many polygons), the same for every band.
    """

    def __init__(self, shape: tuple[int, ...], bands: Sequence[str]) -> None:
        self.dn = {band: np.zeros(shape, dtype=np.float32) for band in bands}
        self.offset = np.zeros(shape, dtype=np.uint16)
        self.filled = np.zeros(shape, dtype=bool)
        self.source = np.full(shape, -1, dtype=np.int32)
        self.acquisitions: list[Acquisition] = []

    @property
    def scenes(self) -> list[str]:
        """The ids of the tiles that filled any pixel."""
        return [acq.id for acq in self.acquisitions]

    @property
    def complete(self) -> bool:
        """Whether every pixel has data."""
        return bool(self.filled.all())

    def add(self, acq: Acquisition, arrays: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """Lay one tile's bands (stored DN, NaN for no data: :func:`read_band`) where no earlier tile has
        data; returns the pixels this tile filled, or None when it filled none."""
        has = np.logical_and.reduce([~np.isnan(a) for a in arrays.values()]) & ~self.filled
        if not has.any():
            return None
        if acq.dn_offset:
            self.offset[has] = acq.dn_offset
        for band, arr in arrays.items():
            values = arr[has]
            if acq.dn_offset:
                values = np.maximum(values - acq.dn_offset, 0)
            self.dn[band][has] = values
        self.filled |= has
        self.source[has] = len(self.acquisitions)
        self.acquisitions.append(acq)
        return has
