"""GET /api/v1/render/<date>: one date drawn as a PNG over a lon/lat box, checked against an independent
rasterio read of the same bands on the same Web Mercator grid, and its 4xx answers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import S2_BANDS, band_array, band_transform
from rasterio.warp import Resampling, transform_bounds
from rendering import (
    LAYERED_DATES,
    assert_close,
    expected_clm_rgba,
    expected_clp_rgba,
    expected_rgba,
    item_of,
    layered_demo,
    png_pixels,
    session_demo,
)

from service import create_app
from stats.archive.catalog import ArchiveWriter

FIELD_BOX = (15.0260, 46.0355, 15.0320, 46.0390)


@pytest.fixture(scope="module", name="demo")
def fixture_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return session_demo(tmp_path_factory)


@pytest.fixture(name="client")
def fixture_client(demo: Path):
    return create_app({"archive": str(demo)}).test_client()


@pytest.mark.parametrize("day", ["2023-06-14", "2023-07-24"])
def test_true_colour_matches_an_independent_rasterio_read(client, demo: Path, day: str) -> None:
    """The PNG of B04, B03, B02 over a field equals the reflectance (offset removed after the 04.00 baseline of
    2023-06-15) read with rasterio on the same grid and scaled by 255 / 0.3, within rounding."""
    bbox = ",".join(map(str, FIELD_BOX))
    response = client.get(f"/api/v1/render/{day}", query_string={"bbox": bbox, "width": 160, "height": 120})
    assert response.status_code == 200 and response.mimetype == "image/png"
    item = item_of(demo, day)
    assert response.headers["X-Polyfis-Acquisitions"] == item.id
    got = png_pixels(response.data)
    want = expected_rgba(item, FIELD_BOX, 160, 120, ["B04", "B03", "B02"])
    assert_close(got, want)
    assert got[3].min() == 255 and got[:3].std() > 0  # opaque, and not a flat colour


def test_one_band_is_grey_and_harmonize_false_keeps_the_offset(client, demo: Path) -> None:
    """bands=B08 draws grey; harmonize=false draws the stored DN, 1000 higher after the 04.00 baseline."""
    bbox = ",".join(map(str, FIELD_BOX))
    query = {"bbox": bbox, "bands": "b08", "width": 80, "max_reflectance": "0.6", "harmonize": "false"}
    response = client.get("/api/v1/render/2023-07-24", query_string=query)
    assert response.status_code == 200
    got = png_pixels(response.data)
    want = expected_rgba(item_of(demo, "2023-07-24"), FIELD_BOX, got.shape[2], got.shape[1], ["B08"],
                         max_reflectance=0.6, harmonize=False)
    assert_close(got, want)
    assert np.array_equal(got[0], got[1]) and np.array_equal(got[1], got[2])
    harmonized = png_pixels(client.get("/api/v1/render/2023-07-24", query_string={**query, "harmonize": "true"}).data)
    assert (harmonized[0].astype(int) < got[0]).mean() > 0.9  # the offset made it brighter


def test_outside_the_tile_is_transparent(client, demo: Path) -> None:
    """A box half outside the demo tile: the part without data is transparent, the rest opaque."""
    arch_west = 15.000516656644722
    bbox = (arch_west - 0.01, 46.02, arch_west + 0.01, 46.03)
    response = client.get("/api/v1/render/2023-06-14", query_string={"bbox": ",".join(map(str, bbox)), "width": 100})
    got = png_pixels(response.data)
    assert_close(got, expected_rgba(item_of(demo, "2023-06-14"), bbox, 100, got.shape[1], ["B04", "B03", "B02"]))
    assert 0.3 < (got[3] == 0).mean() < 0.7


def test_two_tiles_of_a_date_are_mosaicked_first_wins(tmp_path: Path) -> None:
    """Where two tiles of a date overlap, the first in acquisition order is drawn; each elsewhere."""
    root = tmp_path / "archive"
    when = dt.datetime(2023, 1, 5, 10, tzinfo=dt.UTC)
    with ArchiveWriter(root) as writer:
        writer.add("A", when, "EPSG:32633", {b: (band_array(b, 1000), band_transform(b)) for b in S2_BANDS})
        shifted = {b: (band_array(b, 3000), band_transform(b, x0=500060.0)) for b in S2_BANDS}
        writer.add("B", when + dt.timedelta(seconds=5), "EPSG:32633", shifted)
    client = create_app({"archive": str(root)}).test_client()
    box = transform_bounds("EPSG:32633", "EPSG:4326", 500000, 5000000, 500180, 5000120)
    response = client.get("/api/v1/render/2023-01-05", query_string={"bbox": ",".join(map(str, box)),
                                                                     "bands": "B04", "width": 90, "max_reflectance": "2"})
    assert response.status_code == 200 and response.headers["X-Polyfis-Acquisitions"] == "A,B"
    got = png_pixels(response.data)[0].astype(int)
    # tile A (DN about 1000..1144, bytes about 13..15) covers the west 120 m, tile B (about 3000+, bytes 38+) the rest
    west, east = got[:, 5:55], got[:, 65:85]
    assert west.max() <= 15 and east.min() >= 38


def test_bad_input_is_a_400_naming_what_was_received(client) -> None:
    cases = {
        "/api/v1/render/2023-13-01?bbox=15,46,15.1,46.1": "date: got '2023-13-01'; expected an ISO date YYYY-MM-DD",
        "/api/v1/render/2023-06-14": "bbox: missing; expected min_lon,min_lat,max_lon,max_lat",
        "/api/v1/render/2023-06-14?bbox=15,46,15.1": "bbox: got '15,46,15.1'; expected four numbers",
        "/api/v1/render/2023-06-14?bbox=46,15,46.1,95": "bbox: latitudes 15.0, 95.0",
        "/api/v1/render/2023-06-14?bbox=15.1,46,15,46.1": "bbox: longitudes 15.1, 15.0; expected -180 <= min_lon < max_lon <= 180",
        "/api/v1/render/2023-06-14?bbox=15,46,15.1,46.1&bands=B04,B99,B02": "bands: unknown band 'B99'",
        "/api/v1/render/2023-06-14?bbox=15,46,15.1,46.1&bands=B04,B03": "bands: got 2 bands; expected 1 (grey) or 3",
        "/api/v1/render/2023-06-14?bbox=15,46,15.1,46.1&bands=CLM,B04,B03": "a cloud layer (CLP or CLM) is drawn alone",
        "/api/v1/render/2023-06-14?bbox=15,46,15.1,46.1&width=0": "width: got '0'; expected an integer from 1 to 4096",
        "/api/v1/render/2023-06-14?bbox=15,46,15.1,46.1&height=x": "height: got 'x'; expected an integer from 1 to 4096",
        "/api/v1/render/2023-06-14?bbox=15,46,15.1,46.1&max_reflectance=0": "max_reflectance: got '0'",
        "/api/v1/render/2023-06-14?bbox=15,46,15.1,46.1&harmonize=maybe": "harmonize: got 'maybe'; expected true or false",
        "/api/v1/render/2023-06-14?bbox=15,46,15.1,46.1&colour=red": "'colour': unknown parameter",
    }
    for url, message in cases.items():
        response = client.get(url)
        assert response.status_code == 400, url
        error = response.json["error"]
        assert error["code"] in ("InvalidRequest",) and message in error["message"], (url, error["message"])


def test_a_date_without_acquisition_is_a_404_naming_the_nearest_dates(client) -> None:
    bbox = ",".join(map(str, FIELD_BOX))
    error = client.get(f"/api/v1/render/2023-06-15?bbox={bbox}").json["error"]
    assert error["status"] == 404
    assert error["message"] == ("date: no acquisition on 2023-06-15 covers the bbox; the nearest dates with one are "
                                "2023-06-04, 2023-06-14, 2023-06-24")
    far = client.get("/api/v1/render/2023-06-14?bbox=2,40,2.1,40.1").json["error"]
    assert far["status"] == 404 and "no acquisition of the archive covers" in far["message"]


@pytest.fixture(scope="module", name="layered")
def fixture_layered(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo archive whose July and August items, and only those, have their CLP/CLM layers."""
    return layered_demo(demo, tmp_path_factory.mktemp("layered") / "archive")


#: A box well inside the demo tile, over fields and the lake.
TILE_BOX = (15.005, 46.012, 15.06, 46.05)


def test_the_cloud_mask_overlay_is_the_stored_clm(layered: Path) -> None:
    """bands=CLM draws the stored CLM read with rasterio: cloud cells magenta at alpha 140, the rest
    transparent; on a cloudy and partly clear date both show."""
    client = create_app({"archive": str(layered)}).test_client()
    seen = set()
    for day in LAYERED_DATES:
        response = client.get(f"/api/v1/render/{day}", query_string={"bbox": ",".join(map(str, TILE_BOX)),
                                                                     "bands": "CLM", "width": 300})
        assert response.status_code == 200, response.json
        got = png_pixels(response.data)
        want = expected_clm_rgba(item_of(layered, day), TILE_BOX, got.shape[2], got.shape[1])
        assert np.array_equal(got, want), day
        seen.update(np.unique(got[3]).tolist())
    assert seen == {0, 140}


def test_the_cloud_probability_is_the_stored_clp_as_grey(layered: Path) -> None:
    client = create_app({"archive": str(layered)}).test_client()
    response = client.get("/api/v1/render/2023-07-14", query_string={"bbox": ",".join(map(str, TILE_BOX)),
                                                                     "bands": "clp", "width": 200})
    got = png_pixels(response.data)
    assert np.array_equal(got, expected_clp_rgba(item_of(layered, "2023-07-14"), TILE_BOX, got.shape[2], got.shape[1]))


def test_absent_cloud_layers_are_a_404_that_says_to_run_polyfis_clouds(tmp_path: Path) -> None:
    """An archive whose items have no CLP/CLM assets: drawing CLM is a 404 saying the layers are absent."""
    root = tmp_path / "archive"
    with ArchiveWriter(root) as writer:
        writer.add("T1", dt.datetime(2023, 1, 5, 10, tzinfo=dt.UTC), "EPSG:32633",
                   {b: (band_array(b), band_transform(b)) for b in S2_BANDS})
    client = create_app({"archive": str(root)}).test_client()
    box = transform_bounds("EPSG:32633", "EPSG:4326", 500000, 5000000, 500120, 5000120)
    for layer in ("CLM", "CLP"):
        response = client.get("/api/v1/render/2023-01-05", query_string={"bbox": ",".join(map(str, box)),
                                                                         "bands": layer})
        assert response.status_code == 404
        message = response.json["error"]["message"]
        assert f"the cloud layer {layer} is absent from acquisition T1" in message and "run `polyfis clouds`" in message


def test_a_date_of_a_layered_archive_without_layers_says_so(layered: Path) -> None:
    """In an archive whose layers were stored for July and August only, a June date's CLM is a 404."""
    client = create_app({"archive": str(layered)}).test_client()
    error = client.get(f"/api/v1/render/2023-06-14?bbox={','.join(map(str, TILE_BOX))}&bands=CLM").json["error"]
    assert error["status"] == 404 and "run `polyfis clouds`" in error["message"]


def test_the_image_and_source_reads_are_held_to_the_pixel_limit(demo: Path) -> None:
    """width x height over POLYFIS_MAX_PIXELS, or a box whose source window is, is a 400 naming the limit."""
    client = create_app({"archive": str(demo), "max_pixels": 10000}).test_client()
    bbox = ",".join(map(str, FIELD_BOX))
    big = client.get(f"/api/v1/render/2023-06-14?bbox={bbox}&width=200&height=100").json["error"]
    assert big["status"] == 400 and "200 x 100 = 20,000 pixels, more than the limit of 10,000 (POLYFIS_MAX_PIXELS)" \
        in big["message"]
    # the whole demo tile (504 x 504 source pixels, no overview as fine as 10 m) drawn 50 x 50
    whole = client.get("/api/v1/render/2023-06-14?bbox=14.99,46.0,15.08,46.06&width=50&height=50").json["error"]
    assert whole["status"] == 400 and "source pixels, more than the limit of 10,000" in whole["message"]
    assert client.get(f"/api/v1/render/2023-06-14?bbox={bbox}&width=100&height=100").status_code == 200


def test_overviews_bound_the_source_read(tmp_path: Path) -> None:
    """A COG with overviews drawn coarsely reads the overview: the pixel count falls with its factor."""
    from stats.render import source_pixels

    path = tmp_path / "band.tif"
    profile = {"driver": "GTiff", "width": 512, "height": 512, "count": 1, "dtype": "uint16", "crs": "EPSG:32633",
               "transform": Affine(10, 0, 500000, 0, -10, 5005120), "tiled": True, "blockxsize": 256,
               "blockysize": 256}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.ones((1, 512, 512), np.uint16))
        dst.build_overviews([2, 4], Resampling.nearest)
    bounds = transform_bounds("EPSG:32633", "EPSG:3857", 500000, 5000000, 505120, 5005120)
    with rasterio.open(path) as src:
        fine = source_pixels(src, bounds, 512)
        coarse = source_pixels(src, bounds, 128)
    assert fine == pytest.approx(512 * 512, rel=0.05)
    assert coarse == pytest.approx(fine / 16)


def test_render_needs_a_token_when_auth_is_on(demo: Path) -> None:
    client = create_app({"archive": str(demo), "auth_clients": "page:secret"}).test_client()
    url = f"/api/v1/render/2023-06-14?bbox={','.join(map(str, FIELD_BOX))}&width=40"
    assert client.get(url).status_code == 401
    token = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "page",
                                              "client_secret": "secret"}).json["access_token"]
    assert client.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
