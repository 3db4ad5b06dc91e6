"""Reading bands onto a request's grid: the grid of a box, up/downsampling methods, resolutions under 10 m."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import BASE_DN, CRS_UTM, X0, Y0, at_10m, band_array, utm_box
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject
from shapely.geometry import Polygon, box

from stats.archive.catalog import Archive
from stats.errors import InvalidRequestError
from stats.grid import Grid, request_grid
from stats.raster import read_date, read_grid
from stats.sampling import FIS_DOWNSAMPLING, Sampling

UTM = CRS.from_user_input(CRS_UTM)


def first_tile(root: Path):
    return Archive.open(root).acquisitions[0]


def warped(path: Path, grid: Grid, method: Resampling) -> np.ndarray:
    """The band file warped onto ``grid`` by rasterio directly (0 is no data)."""
    out = np.zeros(grid.shape, dtype=np.float32)
    with rasterio.open(path) as src:
        reproject(rasterio.band(src, 1), out, src_nodata=0, dst_nodata=0, dst_transform=grid.transform,
                  dst_crs=CRS_UTM, resampling=method)
    return out


def test_request_grid_cuts_the_box_into_the_requested_pixels() -> None:
    """resx 10 over a 544 x 600 m box gives 54 x 60 pixels (Sentinel Hub's documented 3240 samples), stretched
    to fill the box; width alone keeps the aspect."""
    grid = request_grid((414315, 4958219, 414859, 4958819), UTM, resx=10, resy=10)
    assert grid.shape == (60, 54) and grid.shape[0] * grid.shape[1] == 3240
    assert grid.transform == Affine(544 / 54, 0, 414315, 0, -10, 4958819)
    assert request_grid((0, 0, 100, 50), UTM, width=20).shape == (10, 20)
    assert request_grid((0, 0, 100, 50), UTM, height=5).shape == (5, 10)
    assert request_grid((0, 0, 100, 50), UTM, resx=5).shape == (10, 20)
    with pytest.raises(InvalidRequestError, match=r"2500 x 2500 = 6250000 pixels, more than the limit of 100"):
        request_grid((0, 0, 100, 50), UTM, width=2500, height=2500, max_pixels=100)


@pytest.mark.parametrize(("band", "method", "name"), [
    ("B05", Resampling.bilinear, "BILINEAR"), ("B05", Resampling.cubic, "BICUBIC"),
    ("B01", Resampling.bilinear, "BILINEAR"), ("B04", Resampling.cubic, "BICUBIC")])
def test_bilinear_and_bicubic_upsampling_equal_rasterio_on_the_same_grid(simple_archive: Path, band, method,
                                                                          name) -> None:
    """A 20/60 m band (and a 10 m band on a shifted 8 m grid) upsampled with BILINEAR/BICUBIC equals
    rasterio's reproject of the band file with that method onto the same grid."""
    tile = first_tile(simple_archive)
    grid = request_grid((X0 + 13, Y0 - 97, X0 + 93, Y0 - 17), UTM, resx=8)
    block = read_grid([tile], grid, box(X0 + 13, Y0 - 97, X0 + 93, Y0 - 17), UTM, [band],
                      sampling=Sampling(name, "NEAREST"))
    expected = warped(simple_archive / "items" / tile.id / f"{band}.tif", grid, method)
    assert np.allclose(block.dn[band], expected, rtol=0, atol=1e-3)
    assert block.inside.all() and block.valid.all()
    nearest = read_grid([tile], grid, box(X0 + 13, Y0 - 97, X0 + 93, Y0 - 17), UTM, [band]).dn[band]
    assert not np.allclose(nearest, expected)  # the method changed the values


def test_bilinear_downsampling_of_10m_bands_equals_rasterio(simple_archive: Path) -> None:
    """A 10 m band downsampled onto a 30 m grid with BILINEAR equals rasterio's reproject."""
    tile = first_tile(simple_archive)
    grid = request_grid((X0, Y0 - 120, X0 + 120, Y0), UTM, width=4, height=4)
    block = read_grid([tile], grid, box(X0, Y0 - 120, X0 + 120, Y0), UTM, ["B08"],
                      sampling=Sampling("NEAREST", "BILINEAR"))
    expected = warped(simple_archive / "items" / tile.id / "B08.tif", grid, Resampling.bilinear)
    assert np.allclose(block.dn["B08"], expected, atol=1e-3)


def test_nearest_on_a_request_grid_takes_the_pixel_under_each_centre(simple_archive: Path) -> None:
    """NEAREST onto a 9.5 m grid over the shrunk box of pixels 6..9 x 1..4 takes exactly those pixels."""
    ring = utm_box(6, 1, 10, 5)
    poly = Polygon(ring)
    grid = request_grid(poly.bounds, UTM, resx=10)
    assert grid.shape == (4, 4)
    block = read_grid([first_tile(simple_archive)], grid, poly, UTM, ["B04", "B05"])
    assert np.array_equal(block.dn["B04"], at_10m("B04", band_array("B04"))[1:5, 6:10])
    assert np.array_equal(block.dn["B05"], at_10m("B05", band_array("B05"))[1:5, 6:10])


def test_five_metre_resolution_upsamples_each_pixel_into_four(simple_archive: Path) -> None:
    """At 5 m (read_date, the tile's grid) every 10 m pixel becomes 2 x 2 pixels of the same value, and a
    20 m pixel 4 x 4."""
    poly = Polygon(utm_box(6, 1, 10, 5))
    block = read_date([first_tile(simple_archive)], poly, UTM, ["B04", "B05"], resolution=5)
    assert block.grid.pixel_size == (5.0, 5.0) and block.grid.shape == (8, 8)
    by_hand = np.repeat(np.repeat(at_10m("B04", band_array("B04"))[1:5, 6:10], 2, axis=0), 2, axis=1)
    assert np.array_equal(block.dn["B04"], by_hand)
    b05 = np.repeat(np.repeat(band_array("B05"), 4, axis=0), 4, axis=1)[2:10, 12:20]
    assert np.array_equal(block.dn["B05"], b05)
    assert block.inside.sum() == 64 and block.dn["B04"].min() == BASE_DN["B04"] + 12 * 1 + 6 + 1


def test_bilinear_on_the_tile_grid_at_five_metres_equals_rasterio(simple_archive: Path) -> None:
    """read_date with BILINEAR at 5 m equals rasterio's bilinear reproject onto that grid."""
    tile = first_tile(simple_archive)
    poly = Polygon(utm_box(6, 1, 10, 5))
    block = read_date([tile], poly, UTM, ["B05"], resolution=5, sampling=Sampling("BILINEAR", "NEAREST"))
    expected = warped(simple_archive / "items" / tile.id / "B05.tif", block.grid, Resampling.bilinear)
    assert np.allclose(block.dn["B05"], expected, atol=1e-3)


def test_sampling_names_are_checked() -> None:
    """Methods are case-insensitive; an unknown one names the field and the accepted values; BOX only where
    it is accepted."""
    assert Sampling.parse("bilinear", None, ("up", "down")) == Sampling("BILINEAR", "NEAREST")
    assert Sampling.parse(None, "box", ("UP", "DOWN"), down_accepted=FIS_DOWNSAMPLING).downsampling == "BOX"
    with pytest.raises(InvalidRequestError, match=r"down: got 'BOX'; expected one of \['NEAREST', 'BILINEAR'"):
        Sampling.parse(None, "BOX", ("up", "down"))
    with pytest.raises(InvalidRequestError, match=r"up: got 'LANCZOS'"):
        Sampling.parse("LANCZOS", None, ("up", "down"))


def test_a_bicubic_undershoot_below_zero_stays_data_on_a_request_grid(demo_root: Path) -> None:
    """BICUBIC upsampling onto a 5 m grid by the demo lake: where rasterio's cubic warp (NaN for no data)
    undershoots below 0 the pixel is data with DN 0, as it is in the Process API; every other pixel equals
    the warp."""
    from sh_reference import item_dir

    date = "2023-01-15"
    (tile,) = [a for a in Archive.open(demo_root).acquisitions if a.datetime.date().isoformat() == date]
    bbox = (501003.0, 5095517.0, 502503.0, 5096717.0)
    grid = request_grid(bbox, UTM, width=300, height=240)
    block = read_grid([tile], grid, box(*bbox), UTM, ["B08"], sampling=Sampling("BICUBIC", "NEAREST"))
    reference = np.full(grid.shape, np.nan, dtype=np.float32)
    with rasterio.open(item_dir(demo_root, date) / "B08.tif") as src:
        reproject(rasterio.band(src, 1), reference, src_nodata=0, dst_nodata=np.nan, dst_transform=grid.transform,
                  dst_crs=CRS_UTM, resampling=Resampling.cubic)
    under = np.isfinite(reference) & (reference <= 0)
    assert under.any()  # the lake's edge makes the cubic kernel undershoot
    assert np.array_equal(block.data, np.isfinite(reference))
    assert (block.dn["B08"][under] == 0).all() and block.valid[under].all()
    np.testing.assert_allclose(block.dn["B08"][block.data], np.maximum(reference, 0)[block.data], rtol=0, atol=1e-3)
