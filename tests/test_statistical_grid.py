"""Statistical API details: the request's grid (width/height, resx/resy, under 10 m), sampleCount/noDataCount
counted on it, upsampling/downsampling, and time ranges wider than the archive; also through sentinelhub-py's
SentinelHubStatistical against a live server."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import CRS_UTM, X0, Y0, at_10m, band_array, utm_box
from rasterio.enums import Resampling
from rasterio.warp import reproject
from shapely.geometry import Polygon

from service import create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from common import polyfis_server  # noqa: E402

UTM_URL = "http://www.opengis.net/def/crs/EPSG/0/32633"
FIRST = "T1_20230105"

NDVI_SCRIPT = """//VERSION=3
function setup() {
  return {input: [{bands: ["B04", "B08", "dataMask"]}],
          output: [{id: "ndvi", bands: 1}, {id: "dataMask", bands: 1}]};
}
function evaluatePixel(s) {
  return {ndvi: [(s.B08 - s.B04) / (s.B08 + s.B04)], dataMask: [s.dataMask]};
}
"""

DN_SCRIPT = """//VERSION=3
function setup() {
  return {input: [{bands: ["B04", "B05", "B08", "dataMask"], units: "DN"}],
          output: [{id: "dn", bands: ["B04", "B05", "B08"]}, {id: "dataMask", bands: 1}]};
}
function evaluatePixel(s) {
  return {dn: [s.B04, s.B05, s.B08], dataMask: [s.dataMask]};
}
"""


def body(script: str, bounds: dict, time_range=("2023-01-01T00:00:00Z", "2024-01-01T00:00:00Z"), of: str = "P1D",
         processing: dict | None = None, **grid) -> dict:
    source: dict = {"type": "sentinel-2-l1c"}
    if processing:
        source["processing"] = processing
    return {"input": {"bounds": {**bounds, "properties": {"crs": UTM_URL}}, "data": [source]},
            "aggregation": {"timeRange": {"from": time_range[0], "to": time_range[1]},
                            "aggregationInterval": {"of": of}, "evalscript": script, **grid}}


def shrunk_box() -> dict:
    """The box 1 m inside pixels 6..9 x 1..4 of the tile, as geometry."""
    return {"geometry": {"type": "Polygon", "coordinates": [utm_box(6, 1, 10, 5)]}}


def warped(root: Path, band: str, transform: Affine, shape: tuple[int, int], method: Resampling) -> np.ndarray:
    out = np.zeros(shape, dtype=np.float32)
    with rasterio.open(root / "items" / FIRST / f"{band}.tif") as src:
        reproject(rasterio.band(src, 1), out, src_nodata=0, dst_nodata=0, dst_transform=transform,
                  dst_crs=CRS_UTM, resampling=method)
    return out.astype(np.float64).ravel()


def assert_stats(stats: dict, values: np.ndarray) -> None:
    assert stats["mean"] == pytest.approx(values.mean(), rel=1e-6)
    assert stats["min"] == pytest.approx(values.min(), rel=1e-6)
    assert stats["max"] == pytest.approx(values.max(), rel=1e-6)
    assert stats["stDev"] == pytest.approx(values.std(), rel=1e-4, abs=1e-6)


@pytest.fixture(name="client")
def fixture_client(simple_archive: Path):
    return create_app({"archive": str(simple_archive), "max_days": 30}).test_client()


def test_sample_and_nodata_counts_follow_the_requested_width_and_height(client) -> None:
    """An 80 m box at width=height=4 has 16 samples of 20 m; a triangle inside it holds the 10 centres with
    col <= row (worked out by hand), so 6 are no data; on the date whose left 60 m have no data only the 3
    centres of cols 2-3 are left (13 no data)."""
    minx, miny, maxx, maxy = X0 + 20, Y0 - 100, X0 + 100, Y0 - 20
    triangle = [[minx, miny], [minx + 81, miny], [minx, miny + 81], [minx, miny]]
    bounds = {"bbox": [minx, miny, maxx, maxy], "geometry": {"type": "Polygon", "coordinates": [triangle]}}
    data = client.post("/api/v1/statistics", json=body(NDVI_SCRIPT, bounds, width=4, height=4)).json["data"]
    counts = [(d["interval"]["from"][:10], d["outputs"]["ndvi"]["bands"]["B0"]["stats"]) for d in data]
    assert [(day, s["sampleCount"], s["noDataCount"]) for day, s in counts] == [
        ("2023-01-05", 16, 6), ("2023-07-04", 16, 6), ("2023-08-10", 16, 13)]
    wide = client.post("/api/v1/statistics", json=body(NDVI_SCRIPT, bounds, width=8)).json["data"][0]
    assert wide["outputs"]["ndvi"]["bands"]["B0"]["stats"]["sampleCount"] == 64  # height kept to the aspect


def test_resx_under_10m_is_upsampled_by_nearest(simple_archive: Path, client) -> None:
    """resx=resy=5 over the 38 m box: 8 x 8 pixels of 4.75 m, each the tile pixel under its centre
    (worked out by hand from the pixel centres), sampleCount 64."""
    answer = client.post("/api/v1/statistics", json=body(DN_SCRIPT, shrunk_box(), resx=5, resy=5)).json
    stats = answer["data"][0]["outputs"]["dn"]["bands"]
    centres = X0 + 61 + 4.75 * (np.arange(8) + 0.5)
    cols = np.floor((centres - X0) / 10).astype(int)
    rows = np.floor((Y0 - (Y0 - 11 - 4.75 * (np.arange(8) + 0.5))) / 10).astype(int)
    red = at_10m("B04", band_array("B04"))[np.ix_(rows, cols)].astype(np.float64).ravel()
    assert stats["B04"]["stats"]["sampleCount"] == 64 and stats["B04"]["stats"]["noDataCount"] == 0
    assert_stats(stats["B04"]["stats"], red)


@pytest.mark.parametrize(("up", "down", "method_up", "method_down"), [
    ("BILINEAR", "BICUBIC", Resampling.bilinear, Resampling.cubic),
    ("BICUBIC", "BILINEAR", Resampling.cubic, Resampling.bilinear)])
def test_processing_upsampling_and_downsampling_equal_rasterio(simple_archive: Path, client, up, down, method_up,
                                                               method_down) -> None:
    """processing.upsampling brings B05 (20 m) onto a 5 m grid, downsampling B04/B08 (10 m) onto a 30 m grid,
    each equal to rasterio's reproject with that method onto the same grid."""
    processing = {"upsampling": up, "downsampling": down}
    fine = client.post("/api/v1/statistics", json=body(DN_SCRIPT, shrunk_box(), processing=processing, resx=5))
    grid = Affine(38 / 8, 0, X0 + 61, 0, -38 / 8, Y0 - 11)
    assert_stats(fine.json["data"][0]["outputs"]["dn"]["bands"]["B05"]["stats"],
                 warped(simple_archive, "B05", grid, (8, 8), method_up))
    whole = {"bbox": [X0, Y0 - 120, X0 + 120, Y0]}
    coarse = client.post("/api/v1/statistics", json=body(DN_SCRIPT, whole, processing=processing, resx=30))
    bands = coarse.json["data"][0]["outputs"]["dn"]["bands"]
    for band in ("B04", "B08"):
        assert_stats(bands[band]["stats"], warped(simple_archive, band, Affine(30, 0, X0, 0, -30, Y0), (4, 4),
                                                  method_down))


def test_time_range_wider_than_the_archive(simple_archive: Path, client) -> None:
    """2000-01-01..2050-01-01 by P1D answers the three dates although max_days is 30; P10D keeps the
    boundaries counted from 2000-01-01; two acquisitions allowed is a 400 counting the three matched."""
    wide = ("2000-01-01T00:00:00Z", "2050-01-01T00:00:00Z")
    daily = client.post("/api/v1/statistics", json=body(NDVI_SCRIPT, shrunk_box(), wide, resx=10))
    assert daily.status_code == 200, daily.json
    assert [d["interval"]["from"] for d in daily.json["data"]] == [
        "2023-01-05T00:00:00Z", "2023-07-04T00:00:00Z", "2023-08-10T00:00:00Z"]
    tens = client.post("/api/v1/statistics", json=body(NDVI_SCRIPT, shrunk_box(), wide, of="P10D", resx=10)).json
    start = dt.date(2000, 1, 1) + dt.timedelta(days=10 * ((dt.date(2023, 1, 5) - dt.date(2000, 1, 1)).days // 10))
    assert tens["data"][0]["interval"] == {"from": f"{start}T00:00:00Z",
                                           "to": f"{start + dt.timedelta(days=10)}T00:00:00Z"}
    strict = create_app({"archive": str(simple_archive), "max_acquisitions": 2}).test_client()
    refused = strict.post("/api/v1/statistics", json=body(NDVI_SCRIPT, shrunk_box(), wide, resx=10))
    assert refused.status_code == 400
    assert "match 3 acquisitions, more than the limit of 2" in refused.json["error"]["message"]


def test_sentinelhub_py_statistical_with_size_resampling_and_a_long_range(simple_archive: Path,
                                                                          monkeypatch) -> None:
    """SentinelHubStatistical with size=(8, 8) over a box, BILINEAR upsampling and 2000-2050 by P1D against
    `polyfis serve`: the three dates, 64 samples each, B05 equal to rasterio's bilinear reproject."""
    from sentinelhub import (
        CRS,
        BBox,
        DataCollection,
        ResamplingType,
        SentinelHubStatistical,
        SHConfig,
    )

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    env = {"POLYFIS_ARCHIVE": str(simple_archive), "POLYFIS_JOBS_DIR": str(simple_archive.parent / "jobs"),
           "POLYFIS_AUTH_CLIENTS": "client-id:client-secret", "POLYFIS_MAX_DAYS": "30"}
    with polyfis_server(workers=1, env=env, timeout_s=120) as server:
        config = SHConfig(sh_base_url=server.base, sh_token_url=f"{server.base}/oauth/token",
                          sh_client_id="client-id", sh_client_secret="client-secret")
        collection = DataCollection.SENTINEL2_L1C.define_from("POLYFIS_GRID_L1C", service_url=server.base)
        request = SentinelHubStatistical(
            aggregation=SentinelHubStatistical.aggregation(
                evalscript=DN_SCRIPT, time_interval=("2000-01-01", "2050-01-01"), aggregation_interval="P1D",
                size=(8, 8)),
            input_data=[SentinelHubStatistical.input_data(collection, upsampling=ResamplingType.BILINEAR,
                                                          downsampling=ResamplingType.BICUBIC)],
            bbox=BBox(Polygon(utm_box(6, 1, 10, 5)).bounds, crs=CRS.UTM_33N),
            config=config,
        )
        (answer,) = request.get_data()
    assert answer["status"] == "OK"
    assert [d["interval"]["from"][:10] for d in answer["data"]] == ["2023-01-05", "2023-07-04", "2023-08-10"]
    first = answer["data"][0]["outputs"]["dn"]["bands"]["B05"]["stats"]
    assert first["sampleCount"] == 64 and first["noDataCount"] == 0
    assert_stats(first, warped(simple_archive, "B05", Affine(38 / 8, 0, X0 + 61, 0, -38 / 8, Y0 - 11), (8, 8),
                               Resampling.bilinear))


def test_an_empty_archive_answers_no_interval_for_any_range(make_archive) -> None:
    """An archive without acquisitions answers a 2000-2050 daily request with no interval (not a 400 for the
    range)."""
    client = create_app({"archive": str(make_archive([])), "max_days": 30}).test_client()
    wide = ("2000-01-01T00:00:00Z", "2050-01-01T00:00:00Z")
    response = client.post("/api/v1/statistics", json=body(NDVI_SCRIPT, shrunk_box(), wide, resx=10))
    assert response.status_code == 200, response.json
    assert response.json == {"status": "OK", "data": []}
