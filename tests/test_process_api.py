"""Sentinel Hub Process API: sentinelhub-py's SentinelHubRequest against a live server, checked against the archive.

Every array the client receives is compared with values worked out here from the archive's band files:
rasterio's own reads and warps of the COG onto the same grid, a nearest-neighbour lookup of the pixel centres
done by hand, and the s2cloudless package on the tile's 160 m cells for CLP and CLM.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling

from service import create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from common import polyfis_server  # noqa: E402
from sh_reference import grid_transform, independent_clouds, item_dir, nearest_by_hand, warped  # noqa: E402

CUMULUS = "2023-07-24"  # a demo date with small clouds, baseline 04.00 (+1000 DN)
CLEAR = "2023-01-15"  # a clear demo date, baseline 02.09
#: A box inside the demo tile, in (lon, lat).
BOX_WGS84 = (15.02, 46.028, 15.036, 46.04)
CLIENT = ("client-id", "client-secret")

DN_SCRIPT = """//VERSION=3
function setup() {
  return {input: [{bands: ["B04", "B08", "B11", "dataMask"], units: "DN"}],
          output: {id: "default", bands: 4, sampleType: "UINT16"}};
}
function evaluatePixel(s) { return [s.B04, s.B08, s.B11, s.dataMask]; }
"""

TRUE_COLOR = """//VERSION=3
function setup() {
  return {input: ["B02", "B03", "B04"], output: {bands: 3, sampleType: "AUTO"}};
}
function evaluatePixel(s) { return [2.5 * s.B04, 2.5 * s.B03, 2.5 * s.B02]; }
"""

MULTI = """//VERSION=3
function setup() {
  return {input: [{bands: ["B02", "B8A", "dataMask", "CLP", "CLM"], units: "DN"}],
          output: [{id: "bands", bands: 2, sampleType: "UINT16"}, {id: "ndvi", bands: 1, sampleType: "FLOAT32"},
                   {id: "clouds", bands: 3, sampleType: "UINT8"}]};
}
function evaluatePixel(s) {
  return {bands: [s.B02, s.B8A], ndvi: [(s.B8A - s.B02) / (s.B8A + s.B02)], clouds: [s.dataMask, s.CLP, s.CLM]};
}
"""


@pytest.fixture(scope="module", name="server")
def fixture_server(demo_root: Path):
    """A live ``polyfis serve`` over the demo archive, with OAuth on."""
    env = {"POLYFIS_ARCHIVE": str(demo_root), "POLYFIS_AUTH_CLIENTS": ":".join(CLIENT)}
    with polyfis_server(workers=1, env=env, timeout_s=120) as server:
        yield server


@pytest.fixture(name="sh")
def fixture_sh(server, monkeypatch):
    """sentinelhub-py's config and collection for the live server (base URL, credentials and define_from only)."""
    from sentinelhub import DataCollection, SHConfig

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # plain http on 127.0.0.1
    config = SHConfig(sh_base_url=server.base, sh_token_url=f"{server.base}/oauth/token", sh_client_id=CLIENT[0],
                      sh_client_secret=CLIENT[1])
    return config, DataCollection.SENTINEL2_L1C.define_from("POLYFIS_PROCESS", service_url=server.base)


def bbox_request(sh, evalscript: str, responses: list, size: tuple[int, int], date: str = CUMULUS,
                 bbox: tuple[float, float, float, float] = BOX_WGS84, crs=None, **input_args):
    from sentinelhub import CRS, BBox, SentinelHubRequest

    config, collection = sh
    return SentinelHubRequest(
        evalscript=evalscript,
        input_data=[SentinelHubRequest.input_data(collection, time_interval=(date, date), **input_args)],
        responses=responses, bbox=BBox(bbox, crs=crs or CRS.WGS84), size=size, config=config)


def test_sentinelhub_request_tiff_equals_the_band_cogs_on_the_requested_grid(sh, demo_root: Path) -> None:
    """A UINT16 TIFF over a lon/lat box equals each band COG read onto that grid: GDAL's nearest warp of the
    file, and a lookup of the pixel centres by hand; B11 (20 m) is upsampled the same way; the baseline 04.00
    offset is removed; dataMask is 1 over the tile."""
    from sentinelhub import MimeType, SentinelHubRequest

    size = (97, 83)
    request = bbox_request(sh, DN_SCRIPT, [SentinelHubRequest.output_response("default", MimeType.TIFF)], size)
    (image,) = request.get_data()
    assert image.shape == (83, 97, 4) and image.dtype == np.uint16
    transform = grid_transform(BOX_WGS84, *size)
    folder = item_dir(demo_root, CUMULUS)
    for i, band in enumerate(("B04", "B08", "B11")):
        reference = warped(folder / f"{band}.tif", "EPSG:4326", transform, (83, 97), Resampling.nearest)
        assert np.array_equal(image[..., i], np.maximum(reference - 1000, 0).astype(np.uint16)), band
        by_hand, clear = nearest_by_hand(folder / f"{band}.tif", "EPSG:4326", transform, (83, 97))
        assert clear.mean() > 0.4
        assert np.array_equal(image[..., i][clear], by_hand[clear].astype(np.int64) - 1000), band
    assert (image[..., 3] == 1).all()


@pytest.mark.parametrize("kind", ["BILINEAR", "BICUBIC"])
def test_upsampling_and_downsampling_follow_rasterio(sh, demo_root: Path, kind: str) -> None:
    """BILINEAR/BICUBIC upsampling (a 5 m UTM grid) and downsampling (a 30 m grid) give rasterio's bilinear and
    cubic warps of the COGs onto those grids (the cubic kernel's undershoot below 0 by the lake is 0)."""
    from sentinelhub import CRS, MimeType, ResamplingType, SentinelHubRequest

    bbox = (501003.0, 5095517.0, 502503.0, 5096717.0)  # inside the demo tile, off its 10 m grid
    resampling = {"BILINEAR": Resampling.bilinear, "BICUBIC": Resampling.cubic}[kind]
    for size in ((300, 240), (50, 40)):
        args = {"upsampling": ResamplingType(kind)} if size[0] == 300 else {"downsampling": ResamplingType(kind)}
        request = bbox_request(sh, DN_SCRIPT.replace('"UINT16"', '"FLOAT32"'),
                               [SentinelHubRequest.output_response("default", MimeType.TIFF)], size, date=CLEAR,
                               bbox=bbox, crs=CRS.UTM_33N, **args)
        (image,) = request.get_data()
        assert (image[..., 3] == 1).all()
        transform = grid_transform(bbox, *size)
        for i, band in enumerate(("B04", "B08", "B11")):
            reference = warped(item_dir(demo_root, CLEAR) / f"{band}.tif", "EPSG:32633", transform,
                               (size[1], size[0]), resampling)
            np.testing.assert_allclose(image[..., i], np.maximum(reference, 0), rtol=0, atol=1e-3,
                                       err_msg=f"{band} {size}")


def test_sentinelhub_request_png_true_colour(sh, demo_root: Path) -> None:
    """A true-colour PNG (sampleType AUTO): each channel is round(255 x 2.5 x reflectance), clipped to 0..255."""
    from sentinelhub import MimeType, SentinelHubRequest

    size = (64, 48)
    request = bbox_request(sh, TRUE_COLOR, [SentinelHubRequest.output_response("default", MimeType.PNG)], size,
                           date=CLEAR)
    (image,) = request.get_data()
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    transform = grid_transform(BOX_WGS84, *size)
    for i, band in enumerate(("B04", "B03", "B02")):
        dn = warped(item_dir(demo_root, CLEAR) / f"{band}.tif", "EPSG:4326", transform, (48, 64),
                    Resampling.nearest).astype(np.float64)
        expected = np.clip(np.round(np.float32(2.5 * (dn / 10000)).astype(np.float64) * 255), 0, 255)
        assert np.array_equal(image[..., i], expected.astype(np.uint8)), band


def test_sentinelhub_request_tar_of_several_outputs(sh, demo_root: Path) -> None:
    """Three outputs come back in one tar: on the tile's own 10 m grid the bands are the stored pixels, NDVI
    is FLOAT32 of them, and CLP/CLM are s2cloudless's on the 160 m cell holding each pixel's centre."""
    from sentinelhub import CRS, MimeType, SentinelHubRequest

    x0, y0 = 500040.0 + 10 * 120, 5100000.0 - 10 * 200  # pixel (200, 120) of the tile
    bbox = (x0, y0 - 10 * 150, x0 + 10 * 180, y0)
    responses = [SentinelHubRequest.output_response(name, MimeType.TIFF) for name in ("bands", "ndvi")]
    responses.append(SentinelHubRequest.output_response("clouds", MimeType.PNG))
    request = bbox_request(sh, MULTI, responses, (180, 150), bbox=bbox, crs=CRS.UTM_33N)
    assert request.download_list[0].headers["accept"] == "application/x-tar"
    (answer,) = request.get_data()
    assert sorted(answer) == ["bands.tif", "clouds.png", "ndvi.tif"]
    folder = item_dir(demo_root, CUMULUS)
    window = rasterio.windows.Window(120, 200, 180, 150)
    with rasterio.open(folder / "B02.tif") as b02, rasterio.open(folder / "B8A.tif") as b8a:
        blue = b02.read(1, window=window).astype(np.int64) - 1000
        nir = np.repeat(np.repeat(b8a.read(1, window=rasterio.windows.Window(60, 100, 90, 75)), 2, 0), 2, 1)
        nir = nir.astype(np.int64) - 1000
    assert np.array_equal(answer["bands.tif"][..., 0], blue) and np.array_equal(answer["bands.tif"][..., 1], nir)
    assert answer["ndvi.tif"].dtype == np.float32
    np.testing.assert_array_equal(answer["ndvi.tif"], ((nir - blue) / (nir + blue)).astype(np.float32))
    clouds = answer["clouds.png"]
    clp, clm = independent_clouds(folder)
    rows, cols = np.indices((150, 180))
    cells = ((rows + 200) // 16, (cols + 120) // 16)
    assert (clouds[..., 0] == 1).all()
    assert np.array_equal(clouds[..., 1], clp[cells]) and np.array_equal(clouds[..., 2], clm[cells])
    assert 0 < clouds[..., 2].mean() < 1  # the box holds clouds and clear ground


def live(server, body: dict, accept: str | None = None):
    import requests

    token = requests.post(f"{server.base}/oauth/token", data={"grant_type": "client_credentials"}, auth=CLIENT,
                          timeout=30).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", **({"Accept": accept} if accept else {})}
    return requests.post(f"{server.base}/api/v1/process", json=body, headers=headers, timeout=120)


def body(evalscript: str = DN_SCRIPT, *, bounds: dict | None = None, responses: list | None = None,
         data_filter: dict | None = None, processing: dict | None = None, **output) -> dict:
    source = {"type": "sentinel-2-l1c",
              "dataFilter": data_filter or {"timeRange": {"from": f"{CLEAR}T00:00:00Z", "to": f"{CLEAR}T23:59:59Z"}}}
    if processing is not None:
        source["processing"] = processing
    return {"input": {"bounds": bounds or {"bbox": list(BOX_WGS84)}, "data": [source]}, "evalscript": evalscript,
            "output": {"width": 40, "height": 30, **output,
                       "responses": responses or [{"identifier": "default", "format": {"type": "image/tiff"}}]}}


@pytest.fixture(name="client")
def fixture_client(demo_root: Path):
    return create_app({"archive": str(demo_root)}).test_client()


def tiff(data: bytes) -> tuple[np.ndarray, rasterio.Affine, str]:
    with rasterio.MemoryFile(data) as memfile, memfile.open() as src:
        return np.moveaxis(src.read(), 0, -1), src.transform, src.crs.to_string()


def test_the_tiff_is_georeferenced_on_the_requested_grid(client) -> None:
    """The TIFF carries the request's CRS and the box's transform; resx/resy give the size."""
    request = body()
    _drop_size(request)
    request["output"].update(resx=0.0004, resy=0.0003)
    response = client.post("/api/v1/process", json=request)
    assert response.status_code == 200, response.json
    assert response.mimetype == "image/tiff"
    image, transform, crs = tiff(response.data)
    assert image.shape == (40, 40, 4) and crs == "EPSG:4326"
    assert transform.almost_equals(grid_transform(BOX_WGS84, 40, 40))


def test_a_geometry_clips_the_image(client, demo_root: Path) -> None:
    """With a polygon, the image covers its bounds and the pixels whose centre is outside it are 0."""
    x0, y0, x1, y1 = BOX_WGS84
    triangle = {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x0, y1], [x0, y0]]]}
    response = client.post("/api/v1/process", json=body(bounds={"geometry": triangle}))
    assert response.status_code == 200, response.json
    image, transform, _ = tiff(response.data)
    rows, cols = np.indices((30, 40))
    x, y = transform @ (cols + 0.5, rows + 0.5)
    inside = (x - x0) / (x1 - x0) + (y - y0) / (y1 - y0) < 1
    reference = warped(item_dir(demo_root, CLEAR) / "B04.tif", "EPSG:4326", transform, (30, 40), Resampling.nearest)
    assert np.array_equal(image[..., 0], np.where(inside, reference, 0))
    assert np.array_equal(image[..., 3], inside.astype(np.uint16))


def test_simple_mosaicking_takes_the_first_acquisition_in_order(client, demo_root: Path) -> None:
    """Over a month, mostRecent shows the last acquisition, leastRecent the first, leastCC the least cloudy."""
    month = {"from": "2023-07-01T00:00:00Z", "to": "2023-07-31T23:59:59Z"}
    transform = grid_transform(BOX_WGS84, 40, 30)
    for order, date, offset in (("mostRecent", "2023-07-24", 1000), ("leastRecent", "2023-07-04", 1000)):
        response = client.post("/api/v1/process", json=body(data_filter={"timeRange": month, "mosaickingOrder": order}))
        image, _, _ = tiff(response.data)
        reference = warped(item_dir(demo_root, date) / "B08.tif", "EPSG:4326", transform, (30, 40), Resampling.nearest)
        assert np.array_equal(image[..., 1], reference - offset), order


def test_no_acquisition_gives_an_empty_image_and_says_why(client) -> None:
    """A range without acquisitions gives zeros (dataMask 0) and a warning header."""
    empty = {"timeRange": {"from": "2023-01-06T00:00:00Z", "to": "2023-01-07T00:00:00Z"}}
    response = client.post("/api/v1/process", json=body(data_filter=empty))
    assert response.status_code == 200
    assert not tiff(response.data)[0].any()
    assert "no acquisition" in response.headers["X-Polyfis-Warning"]


def test_a_broken_scene_is_left_out_and_named(make_archive) -> None:
    """A tile whose band cannot be read is left out of the mosaic (the next tile fills in, a warning names it);
    when no tile can be read the answer is a 502."""
    from conftest import CRS_UTM, X0, Y0

    root = make_archive([{"id": "old", "when": dt.datetime(2023, 1, 5, 10, tzinfo=dt.UTC)},
                         {"id": "new", "when": dt.datetime(2023, 1, 9, 10, tzinfo=dt.UTC)}])
    (root / "items" / "new" / "B04.tif").write_bytes(b"not a tiff")
    client = create_app({"archive": str(root)}).test_client()
    request = body(bounds={"bbox": [X0, Y0 - 120, X0 + 120, Y0],
                           "properties": {"crs": f"http://www.opengis.net/def/crs/EPSG/0/{CRS_UTM[5:]}"}},
                   data_filter={"timeRange": {"from": "2023-01-01T00:00:00Z", "to": "2023-01-31T00:00:00Z"}},
                   width=12, height=12)
    response = client.post("/api/v1/process", json=request)
    assert response.status_code == 200
    from conftest import band_array

    assert np.array_equal(tiff(response.data)[0][..., 0], band_array("B04"))
    assert "scene new: band B04" in response.headers["X-Polyfis-Warning"]
    (root / "items" / "old" / "B04.tif").write_bytes(b"not a tiff")
    response = client.post("/api/v1/process", json=request)
    assert response.status_code == 502 and response.json["error"]["code"] == "SceneRead"


def _set(path: str, value):
    """A change to a request body: ``value`` at the dotted ``path`` (list items by index)."""
    def change(request: dict) -> None:
        *parents, last = path.split(".")
        node = request
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value
    return change


def _drop_size(request: dict) -> None:
    del request["output"]["width"], request["output"]["height"]


BAD = [
    (_set("input.bounds.bbox", [1, 2, 0, 3]), "input.bounds.bbox: got [1, 2, 0, 3]"),
    (_set("output.width", 3000), "output.width"),
    (_set("evalscript", None), "evalscript"),
    (_set("output.responses", [{"identifier": "other", "format": {"type": "image/tiff"}}]), "the outputs ['default']"),
    (_set("output.responses", [{"identifier": "default", "format": {"type": "image/gif"}}]), "image/gif"),
    (_set("output.responses", [{"identifier": "default", "format": {"type": "image/jpeg"}}]),
     "image/jpeg holds [1, 3] bands; the evalscript output has 4"),
    (_set("input.data.0.type", "sentinel-2-l2a"), "'sentinel-2-l2a'"),
    (_set("input.data.0.processing", {"upsampling": "LANCZOS"}), "expected one of ['NEAREST', 'BILINEAR', 'BICUBIC']"),
    (_set("input.data.0.dataFilter.mosaickingOrder", "random"), "'random'"),
    (_set("output.responses", [{"identifier": "default", "format": {"type": "image/png"}}]), "UINT8 or UINT16"),
    (_drop_size, "output: expected width and height"),
    (_set("input.data.0.dataFilter.timeRange", {"from": "2023-02-01", "to": "2023-01-01"}), "timeRange"),
]


@pytest.mark.parametrize(("change", "message"), BAD)
def test_bad_input_is_a_400_naming_what_was_received(client, change, message: str) -> None:
    """Each malformed field gets a 400 whose message names the field and what was expected."""
    request = body(DN_SCRIPT.replace('"UINT16"', '"FLOAT32"') if "UINT8 or" in message else DN_SCRIPT)
    change(request)
    response = client.post("/api/v1/process", json=request)
    assert response.status_code == 400, response.data[:300]
    assert message in response.json["error"]["message"], response.json


def test_the_route_needs_a_token_when_auth_is_on(server) -> None:
    """With clients configured, a request without a token is a 401; with one, an image."""
    import requests

    response = requests.post(f"{server.base}/api/v1/process", json=body(), timeout=60)
    assert response.status_code == 401
    assert live(server, body()).headers["Content-Type"] == "image/tiff"


def test_a_single_response_comes_as_a_tar_when_asked(server) -> None:
    """Accept: application/x-tar wraps even one response in a tar, as default.tif."""
    response = live(server, body(), accept="application/x-tar")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/tar"
    with tarfile.open(fileobj=io.BytesIO(response.content)) as tar:
        assert tar.getnames() == ["default.tif"]
    assert os.environ.get("OAUTHLIB_INSECURE_TRANSPORT") is None  # nothing leaks out of the fixtures


def test_a_multipart_request_and_a_jpeg(client, demo_root: Path) -> None:
    """The multipart form (request + evalscript parts) works as JSON does; a JPEG of one UINT8 band decodes to
    the grey values within JPEG's loss."""
    script = """//VERSION=3
function setup() { return {input: ["B08"], output: {bands: 1, sampleType: "UINT8"}}; }
function evaluatePixel(s) { return [s.B08 * 255]; }"""
    request = body(script, responses=[{"identifier": "default", "format": {"type": "image/jpeg", "quality": 95}}])
    del request["evalscript"]
    response = client.post("/api/v1/process", data={"request": json.dumps(request), "evalscript": script},
                           content_type="multipart/form-data")
    assert response.status_code == 200, response.json
    assert response.mimetype == "image/jpeg" and response.data[:2] == b"\xff\xd8"
    with rasterio.MemoryFile(response.data) as memfile, memfile.open() as src:
        image = src.read(1).astype(np.float64)
    dn = warped(item_dir(demo_root, CLEAR) / "B08.tif", "EPSG:4326", grid_transform(BOX_WGS84, 40, 30), (30, 40),
                Resampling.nearest).astype(np.float64)
    expected = np.clip(np.round(dn / 10000 * 255), 0, 255)
    assert np.abs(image - expected).mean() < 2


def test_clouds_come_from_the_stored_layers_when_the_archive_has_them(tmp_path: Path, demo_root: Path,
                                                                     monkeypatch) -> None:
    """With CLP/CLM stored for the date (`polyfis clouds`), the Process API reads them without the model: the
    same values as s2cloudless on the tile's cells."""
    import shutil

    from stats.clouds.model import CloudModel
    from stats.clouds.store import store_cloud_layers

    root = tmp_path / "layered"
    shutil.copytree(demo_root, root)
    assert store_cloud_layers(root, start=CUMULUS, end=CUMULUS).done == 1
    script = """//VERSION=3
function setup() { return {input: [{bands: ["CLP", "CLM", "dataMask"], units: "DN"}],
                           output: {bands: 3, sampleType: "UINT8"}}; }
function evaluatePixel(s) { return [s.CLP, s.CLM, s.dataMask]; }"""
    bbox = [501640.0, 5096600.0, 502840.0, 5097600.0]  # tile pixels rows 240..340, columns 160..280
    request = body(script, bounds={"bbox": bbox, "properties": {"crs": "http://www.opengis.net/def/crs/EPSG/0/32633"}},
                   data_filter={"timeRange": {"from": f"{CUMULUS}T00:00:00Z", "to": f"{CUMULUS}T23:59:59Z"}},
                   width=120, height=100)
    client = create_app({"archive": str(root)}).test_client()

    def no_model(self, pixels):
        raise AssertionError("the model was called")

    monkeypatch.setattr(CloudModel, "probability", no_model)
    response = client.post("/api/v1/process", json=request)
    assert response.status_code == 200, response.json
    image = tiff(response.data)[0]
    clp, clm = independent_clouds(item_dir(root, CUMULUS))
    rows, cols = np.indices((100, 120))
    cells = ((rows + 240) // 16, (cols + 160) // 16)
    assert np.array_equal(image[..., 0], clp[cells]) and np.array_equal(image[..., 1], clm[cells])
    assert (image[..., 2] == 1).all() and 0 < image[..., 1].mean() < 1


def test_the_limits_apply(demo_root: Path) -> None:
    """The memory budget and the time budget give 400s naming them, before or instead of the work."""
    small = create_app({"archive": str(demo_root), "max_request_mb": 1}).test_client()
    response = small.post("/api/v1/process", json=body(width=500, height=400))
    assert response.status_code == 400 and "POLYFIS_MAX_REQUEST_MB" in response.json["error"]["message"]
    hurried = create_app({"archive": str(demo_root), "time_budget_s": 1e-6}).test_client()
    response = hurried.post("/api/v1/process", json=body())
    assert response.status_code == 400 and "time budget" in response.json["error"]["message"]


MAX_NDVI = """//VERSION=3
function setup() {
  return {input: [{bands: ["B04", "B08", "dataMask"]}], output: {bands: 2, sampleType: "FLOAT32"},
          mosaicking: "ORBIT"};
}
function updateOutputMetadata(scenes, inputMetadata, outputMetadata) {
  outputMetadata.userData = {dates: scenes.orbits.map(o => o.dateFrom.slice(0, 10))};
}
function evaluatePixel(samples) {
  let best = -1, count = 0;
  for (const s of samples) {
    if (s.dataMask === 0) continue;
    best = Math.max(best, (s.B08 - s.B04) / (s.B08 + s.B04));
    count += 1;
  }
  return [best, count];
}
"""


def test_orbit_mosaicking_gives_every_date_to_the_script(client, demo_root: Path) -> None:
    """A multi-temporal script (ORBIT) gets one sample per date: its maximum NDVI over June equals numpy's over
    the COGs warped onto the grid, and userdata.json lists the dates updateOutputMetadata saw."""
    june = {"timeRange": {"from": "2023-06-01T00:00:00Z", "to": "2023-06-30T23:59:59Z"}}
    request = body(MAX_NDVI, data_filter=june, responses=[{"identifier": "default", "format": {"type": "image/tiff"}},
                                                          {"identifier": "userdata",
                                                           "format": {"type": "application/json"}}])
    response = client.post("/api/v1/process", json=request)
    assert response.status_code == 200, response.json
    with tarfile.open(fileobj=io.BytesIO(response.data)) as tar:
        assert sorted(tar.getnames()) == ["default.tif", "userdata.json"]
        image = tiff(tar.extractfile("default.tif").read())[0]
        userdata = json.loads(tar.extractfile("userdata.json").read())
    dates = ["2023-06-04", "2023-06-14", "2023-06-24"]
    assert sorted(userdata["dates"]) == dates
    transform = grid_transform(BOX_WGS84, 40, 30)
    ndvi = []
    for date in dates:
        offset = 1000 if date >= "2023-06-24" else 0
        red, nir = (warped(item_dir(demo_root, date) / f"{b}.tif", "EPSG:4326", transform, (30, 40),
                           Resampling.nearest).astype(np.float64) - offset for b in ("B04", "B08"))
        ndvi.append((nir - red) / (nir + red))
    np.testing.assert_allclose(image[..., 0], np.max(ndvi, axis=0).astype(np.float32), rtol=1e-6)
    assert (image[..., 1] == 3).all()


def test_tile_mosaicking_with_pre_process_scenes(client, demo_root: Path) -> None:
    """TILE gives one sample per acquisition after preProcessScenes: keeping July's tiles but the first, the
    script sees two samples, and its mean B08 is the mean of those two dates' COGs."""
    script = """//VERSION=3
function setup() {
  return {input: [{bands: ["B08", "dataMask"], units: "DN"}], output: {bands: 2, sampleType: "FLOAT32"},
          mosaicking: "TILE"};
}
function preProcessScenes(collections) {
  collections.scenes.tiles = collections.scenes.tiles.filter(t => !t.date.startsWith("2023-07-04"));
  return collections;
}
function evaluatePixel(samples, scenes) {
  let sum = 0;
  for (const s of samples) sum += s.B08;
  return [sum / samples.length, scenes.tiles.length];
}"""
    july = {"timeRange": {"from": "2023-07-01T00:00:00Z", "to": "2023-07-31T23:59:59Z"}}
    response = client.post("/api/v1/process", json=body(script, data_filter=july))
    assert response.status_code == 200, response.json
    image = tiff(response.data)[0]
    transform = grid_transform(BOX_WGS84, 40, 30)
    nir = [warped(item_dir(demo_root, date) / "B08.tif", "EPSG:4326", transform, (30, 40),
                  Resampling.nearest).astype(np.float64) - 1000 for date in ("2023-07-14", "2023-07-24")]
    np.testing.assert_allclose(image[..., 0], np.mean(nir, axis=0).astype(np.float32), rtol=1e-6)
    assert (image[..., 1] == 2).all()


def test_a_byoc_collection_of_the_archive_id_names_the_archive(sh, demo_root: Path) -> None:
    """`DataCollection.define_byoc(<archive id>)` sends type byoc-<archive id>, which names the archive as the
    Catalog API's collection does: the same image as define_from's sentinel-2-l1c."""
    from sentinelhub import CRS, BBox, DataCollection, MimeType, SentinelHubRequest

    config, collection = sh
    archive_id = json.loads((demo_root / "collection.json").read_text())["id"]
    byoc = DataCollection.define_byoc(archive_id, service_url=config.sh_base_url)
    images = []
    for source in (collection, byoc):
        request = SentinelHubRequest(
            evalscript=DN_SCRIPT, input_data=[SentinelHubRequest.input_data(source, time_interval=(CLEAR, CLEAR))],
            responses=[SentinelHubRequest.output_response("default", MimeType.TIFF)],
            bbox=BBox(BOX_WGS84, crs=CRS.WGS84), size=(30, 20), config=config)
        assert request.download_list[0].post_values["input"]["data"][0]["type"] in ("sentinel-2-l1c",
                                                                                     f"byoc-{archive_id}")
        images.append(request.get_data()[0])
    assert (images[0][..., 3] == 1).all() and np.array_equal(images[0], images[1])


def test_nearest_onto_a_coarser_grid_on_the_tile_averages_as_the_other_apis(client, demo_root: Path) -> None:
    """NEAREST onto a 60 m UTM grid lying on the tile's 10 m pixel edges follows the one reading rule of FIS and
    the Statistical API: each output pixel is the mean of the valid 6 x 6 band pixels under it (numpy on the
    COG), not the one pixel under its centre."""
    x0, y0 = 500040.0 + 10 * 120, 5100000.0 - 10 * 200  # pixel (200, 120) of the tile
    bbox = [x0, y0 - 60 * 20, x0 + 60 * 25, y0]
    script = DN_SCRIPT.replace('"UINT16"', '"FLOAT32"')
    request = body(script, bounds={"bbox": bbox, "properties": {"crs": "http://www.opengis.net/def/crs/EPSG/0/32633"}},
                   width=25, height=20)
    response = client.post("/api/v1/process", json=request)
    assert response.status_code == 200, response.json
    image = tiff(response.data)[0]
    with rasterio.open(item_dir(demo_root, CLEAR) / "B08.tif") as src:
        assert (src.transform.c, src.transform.f) == (500040.0, 5100000.0)
        stored = src.read(1, window=rasterio.windows.Window(120, 200, 150, 120)).astype(np.float64)
    blocks = stored.reshape(20, 6, 25, 6)
    counts = (blocks > 0).sum(axis=(1, 3))
    assert (counts > 0).all()
    expected = blocks.sum(axis=(1, 3)) / counts
    np.testing.assert_allclose(image[..., 1], expected.astype(np.float32), rtol=1e-6)
    centre = stored[3::6, 3::6]
    assert not np.allclose(image[..., 1], centre)  # not the pixel under each centre
