"""Sentinel Hub Statistical API: request parsing, evalscripts, response shape, and a real client."""

from __future__ import annotations

import copy
import datetime as dt
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import CRS_UTM, at_10m, band_array, utm_box

from service import create_app

NDVI_SCRIPT = """//VERSION=3
function setup() {
  return {input: [{bands: ["B04", "B08", "dataMask"]}],
          output: [{id: "data", bands: 1}, {id: "dataMask", bands: 1}]};
}
function evaluatePixel(samples) {
  let index = (samples.B08 - samples.B04) / (samples.B08 + samples.B04);
  return {data: [index], dataMask: [samples.dataMask]};
}
"""

RAW_SCRIPT = """//VERSION=3
function setup() {
  return {input: [{bands: ["B02", "B04", "dataMask"], units: "DN"}],
          output: [{id: "bands", bands: ["blue", "red"], sampleType: "UINT16"}, {id: "dataMask", bands: 1}]};
}
function evaluatePixel(samples) {
  return {bands: [samples.B02, samples.B04], dataMask: [samples.dataMask]};
}
"""

CLOUD_MASKED_SCRIPT = """//VERSION=3
function setup() {
  return {input: [{bands: ["B04", "B08", "CLP", "dataMask"]}],
          output: [{id: "ndvi", bands: 1}, {id: "dataMask", bands: 1}]};
}
function evaluatePixel(samples) {
  const clear = samples.CLP / 255 < 0.4;
  return {ndvi: [(samples.B08 - samples.B04) / (samples.B08 + samples.B04)],
          dataMask: [samples.dataMask && clear ? 1 : 0]};
}
"""


def body(script: str = NDVI_SCRIPT, **aggregation) -> dict:
    return {
        "input": {"bounds": {"geometry": {"type": "Polygon", "coordinates": [utm_box(6, 1, 10, 5)]},
                             "properties": {"crs": "http://www.opengis.net/def/crs/EPSG/0/32633"}},
                  "data": [{"type": "sentinel-2-l1c", "dataFilter": {"mosaickingOrder": "mostRecent"}}]},
        "aggregation": {"timeRange": {"from": "2023-01-01T00:00:00Z", "to": "2023-12-31T23:59:59Z"},
                        "aggregationInterval": {"of": "P1D"}, "resx": 10, "resy": 10, "evalscript": script,
                        **aggregation},
        "calculations": {"default": {"statistics": {"default": {"percentiles": {"k": [50]}}}}},
    }


@pytest.fixture(name="client")
def fixture_client(simple_archive: Path):
    return create_app({"archive": str(simple_archive)}).test_client()


def pixels(band: str) -> np.ndarray:
    return at_10m(band, band_array(band))[1:5, 6:10].ravel().astype(np.float64)


def test_ndvi_evalscript_statistics_per_day(client) -> None:
    """The NDVI example gives per-day stats equal to numpy's, over the 16 pixels, one interval per date."""
    response = client.post("/api/v1/statistics", json=body())
    assert response.status_code == 200, response.json
    data = response.json
    assert data["status"] == "OK"
    assert [d["interval"]["from"] for d in data["data"]] == ["2023-01-05T00:00:00Z", "2023-07-04T00:00:00Z",
                                                             "2023-08-10T00:00:00Z"]
    assert data["data"][0]["interval"]["to"] == "2023-01-06T00:00:00Z"
    stats = data["data"][0]["outputs"]["data"]["bands"]["B0"]["stats"]
    red, nir = pixels("B04") / 10000, pixels("B08") / 10000
    ndvi = ((nir - red) / (nir + red)).astype(np.float32).astype(np.float64)
    assert stats["sampleCount"] == 16 and stats["noDataCount"] == 0
    assert stats["mean"] == pytest.approx(ndvi.mean(), abs=1e-9)
    assert stats["stDev"] == pytest.approx(ndvi.std(), abs=1e-9)
    assert stats["percentiles"] == {"50.0": pytest.approx(np.percentile(ndvi, 50, method="higher"))}


def test_raw_bands_in_dn_with_named_outputs_and_histogram(client) -> None:
    """units DN and named output bands; a histogram with nBins over explicit edges and overflow counts."""
    request = body(RAW_SCRIPT)
    request["calculations"] = {"bands": {"histograms": {"red": {"nBins": 2, "lowEdge": 500, "highEdge": 560}}}}
    data = client.post("/api/v1/statistics", json=request).json
    bands = data["data"][0]["outputs"]["bands"]["bands"]
    assert set(bands) == {"blue", "red"}
    assert bands["red"]["stats"]["min"] == pixels("B04").min() and bands["red"]["stats"]["max"] == pixels("B04").max()
    hist = bands["red"]["histogram"]
    assert [b["lowEdge"] for b in hist["bins"]] == [500.0, 530.0]
    inside = pixels("B04")
    assert sum(b["count"] for b in hist["bins"]) + hist["overflowCount"] + hist["underflowCount"] == 16
    assert hist["overflowCount"] == int((inside > 560).sum())


def test_empty_interval_reports_nan_strings(client, simple_archive: Path) -> None:
    """A date whose polygon has no data gives min/max/mean/stDev 'NaN' and sampleCount == noDataCount."""
    request = body()
    request["input"]["bounds"]["geometry"]["coordinates"] = [utm_box(0, 0, 3, 3)]
    request["aggregation"]["timeRange"] = {"from": "2023-08-10T00:00:00Z", "to": "2023-08-11T00:00:00Z"}
    (entry,) = client.post("/api/v1/statistics", json=request).json["data"]
    stats = entry["outputs"]["data"]["bands"]["B0"]["stats"]
    assert stats["mean"] == "NaN" and stats["stDev"] == "NaN" and stats["sampleCount"] == stats["noDataCount"] == 9
    assert "percentiles" not in stats


def _validator(name: str):  # type: ignore[no-untyped-def]
    import yaml
    from openapi_schema_validator import OAS30Validator

    spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "service" / "openapi.yaml").read_text())
    return OAS30Validator({"$ref": f"#/components/schemas/{name}", "components": spec["components"]})


def test_broken_interval_is_partial(client, simple_archive: Path) -> None:
    """A missing COG fails its interval with EXECUTION_ERROR; the others answer; status PARTIAL; the body
    and the request match openapi.yaml."""
    _validator("StatisticalRequest").validate(body())
    (simple_archive / "items" / "T1_20230704" / "B08.tif").unlink()
    data = client.post("/api/v1/statistics", json=body()).json
    _validator("StatisticalResponse").validate(data)
    assert data["status"] == "PARTIAL"
    assert [("error" in d) for d in data["data"]] == [False, True, False]
    assert data["data"][1]["error"]["type"] == "EXECUTION_ERROR"


def test_monthly_interval_and_last_interval_behaviour(client) -> None:
    """P1M intervals from January: 11 whole months with SKIP; the data months are Jan, Jul, Aug."""
    request = body()
    request["aggregation"]["aggregationInterval"] = {"of": "P1M", "lastIntervalBehavior": "SKIP"}
    request["aggregation"]["timeRange"] = {"from": "2023-01-01T00:00:00Z", "to": "2023-12-15T00:00:00Z"}
    data = client.post("/api/v1/statistics", json=request).json
    assert [d["interval"]["from"][:7] for d in data["data"]] == ["2023-01", "2023-07", "2023-08"]
    assert data["data"][1]["interval"]["to"] == "2023-08-01T00:00:00Z"


def test_cloud_masked_ndvi_with_clp(make_archive) -> None:
    """The cloud-masked NDVI example: on a cloudy date every pixel has CLP >= 0.4 and leaves the statistics;
    on the clear date none does."""
    from conftest import S2_BANDS, band_transform

    cloud = {b: (np.full_like(band_array(b), 150 if b == "B10" else 6000), band_transform(b)) for b in S2_BANDS}
    root = make_archive([{"id": "clear", "when": dt.datetime(2023, 3, 1, 10, tzinfo=dt.UTC)},
                         {"id": "cloud", "when": dt.datetime(2023, 3, 11, 10, tzinfo=dt.UTC), "bands": cloud}])
    client = create_app({"archive": str(root)}).test_client()
    data = client.post("/api/v1/statistics", json=body(CLOUD_MASKED_SCRIPT)).json["data"]
    clear, cloudy = (d["outputs"]["ndvi"]["bands"]["B0"]["stats"] for d in data)
    assert clear["noDataCount"] == 0 and clear["mean"] > 0.5
    assert cloudy["noDataCount"] == cloudy["sampleCount"] == 16 and cloudy["mean"] == "NaN"


@pytest.mark.parametrize(
    ("change", "match"),
    [(lambda b: b["input"]["data"][0].update(type="sentinel-1-grd"), r"input.data\[0\].type: got 'sentinel-1-grd'"),
     (lambda b: b["aggregation"].pop("timeRange"), r"aggregation.timeRange: missing"),
     (lambda b: b["aggregation"]["aggregationInterval"].update(of="PT1H"), r"aggregationInterval.of: got 'PT1H'"),
     (lambda b: b["aggregation"].update(evalscript="function setup(){"), r"evalscript: error while evaluating"),
     (lambda b: b["aggregation"].update(evalscript="function setup(){return {input:['B04'],output:{bands:1}}}\nfunction evaluatePixel(s){return [s.B04]}"), r"no 'dataMask' output"),
     (lambda b: b["aggregation"].update(resx=0), r"aggregation.resx: got 0; expected a positive number"),
     (lambda b: b["input"]["data"][0]["dataFilter"].update(mosaickingOrder="random"), r"mosaickingOrder: got 'random'"),
     (lambda b: b["input"]["data"][0].update(processing={"upsampling": "LANCZOS"}), r"upsampling: got 'LANCZOS'")],
)
def test_bad_statistical_requests_are_400(client, change, match) -> None:
    """Each bad field gets a 400 naming it."""
    import re

    request = copy.deepcopy(body())
    change(request)
    response = client.post("/api/v1/statistics", json=request)
    assert response.status_code == 400, response.json
    assert re.search(match, response.json["error"]["message"]), response.json


def test_endless_evalscript_is_stopped(client, monkeypatch) -> None:
    """A script that never returns is stopped at the time limit: each interval reports TIMEOUT."""
    import stats.sentinelhub.evalscript as evalscript

    monkeypatch.setattr(evalscript, "DEFAULT_TIMEOUT_MS", 300)
    script = NDVI_SCRIPT.replace("let index", "while (true) {}\n  let index")
    data = client.post("/api/v1/statistics", json=body(script)).json
    assert data["status"] == "FAILED"
    assert {d["error"]["type"] for d in data["data"]} == {"TIMEOUT"}
    assert "took more than 300 ms" in data["data"][0]["error"]["message"]


def test_script_failing_on_one_interval_leaves_the_others(client) -> None:
    """A runtime error (here a throw on the 04.00 date's values, or a ragged output) is that interval's
    EXECUTION_ERROR, not a failed request."""
    throwing = NDVI_SCRIPT.replace("let index", "if (samples.B04 > 0.06) throw new Error('bright');\n  let index")
    request = body(throwing)
    request["input"]["data"][0]["processing"] = {"harmonizeValues": False}
    data = client.post("/api/v1/statistics", json=request).json
    assert data["status"] == "PARTIAL"
    assert [("error" in d) for d in data["data"]] == [False, True, False]
    ragged = NDVI_SCRIPT.replace("return {data: [index]", "return {data: samples.dataMask ? [index, index] : [index]")
    (first, *_) = client.post("/api/v1/statistics", json=body(ragged)).json["data"]
    assert first["error"]["type"] == "EXECUTION_ERROR" and "setup() declares 1" in first["error"]["message"]


@pytest.mark.parametrize(
    ("calculations", "match"),
    [({"default": {"histograms": {"default": {"binWidth": 1e-9}}}}, r"makes more than 1000 bins"),
     ({"default": {"histograms": {"default": {"nBins": 5, "lowEdge": -1e308, "highEdge": 1e308}}}}, r"not finite"),
     ({"default": {"histograms": {"default": {"binWidth": 1, "lowEdge": -1e308, "highEdge": 1e308}}}}, r"more than 1000")],
)
def test_histograms_cannot_ask_for_unbounded_bins(client, calculations, match) -> None:
    """Bin widths or edges that would need millions of bins or infinite edges are 400s."""
    import re

    request = body()
    request["calculations"] = calculations
    response = client.post("/api/v1/statistics", json=request)
    assert response.status_code == 400 and re.search(match, response.json["error"]["message"]), response.json


def test_evalscript_output_sizes_are_capped(client) -> None:
    """An output of 10^8 bands is refused at setup(), before anything is allocated."""
    script = NDVI_SCRIPT.replace('{id: "data", bands: 1}', '{id: "data", bands: 100000000}')
    response = client.post("/api/v1/statistics", json=body(script))
    assert response.status_code == 400 and "1 to 100" in response.json["error"]["message"]


def test_oauth_tokens_guard_the_data_routes(simple_archive: Path) -> None:
    """With clients configured, data routes need a bearer token from /oauth/token; forged and expired fail."""
    app = create_app({"archive": str(simple_archive), "auth_clients": "me:pw", "fis_instances_text": "inst"})
    client = app.test_client()
    assert client.post("/api/v1/statistics", json=body()).status_code == 401
    bad = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "me", "client_secret": "x"})
    assert bad.status_code == 401
    good = client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("me", "pw")).json
    assert good["token_type"] == "Bearer" and good["expires_in"] == 3600
    headers = {"Authorization": f"Bearer {good['access_token']}"}
    assert client.post("/api/v1/statistics", json=body(), headers=headers).status_code == 200
    forged = {"Authorization": f"Bearer {good['access_token'][:-2]}xx"}
    assert client.post("/api/v1/timeseries", json={}, headers=forged).status_code == 401
    assert client.get("/ogc/fis/inst", query_string={"LAYER": "NDVI"}).status_code == 400  # past auth
    assert client.get("/ogc/fis/other", query_string={"LAYER": "NDVI"}).status_code == 401
    expired_app = create_app({"archive": str(simple_archive), "auth_clients": "me:pw", "token_ttl": 1,
                              "auth_key": app.extensions["polyfis.settings"].auth_key})
    import time

    time.sleep(2.1)
    response = expired_app.test_client().post("/api/v1/timeseries", json={}, headers=headers)
    assert response.status_code == 401 and "expired" in response.json["error"]["message"]


def test_sentinelhub_py_client_against_a_live_server(simple_archive: Path, monkeypatch) -> None:
    """sentinelhub-py's SentinelHubStatistical, pointed at polyfis with OAuth, parses the answer, and its
    numbers equal /api/v1/timeseries for the same polygon and dates."""
    from sentinelhub import CRS, DataCollection, Geometry, SentinelHubStatistical, SHConfig
    from shapely.geometry import Polygon
    from werkzeug.serving import make_server

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the client refuses http token URLs otherwise
    app = create_app({"archive": str(simple_archive), "auth_clients": "client-id:client-secret"})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        config = SHConfig(sh_base_url=base, sh_token_url=f"{base}/oauth/token", sh_client_id="client-id",
                          sh_client_secret="client-secret")
        collection = DataCollection.SENTINEL2_L1C.define_from("POLYFIS_TEST_L1C", service_url=base)
        request = SentinelHubStatistical(
            aggregation=SentinelHubStatistical.aggregation(
                evalscript=NDVI_SCRIPT, time_interval=("2023-01-01", "2023-12-31"), aggregation_interval="P1D",
                resolution=(10, 10)),
            input_data=[SentinelHubStatistical.input_data(collection)],
            geometry=Geometry(Polygon(utm_box(6, 1, 10, 5)), crs=CRS.UTM_33N),
            config=config,
        )
        (answer,) = request.get_data()
        token = app.test_client().post("/oauth/token", data={"grant_type": "client_credentials"},
                                       auth=("client-id", "client-secret")).json["access_token"]
        native = app.test_client().post(
            "/api/v1/timeseries", headers={"Authorization": f"Bearer {token}"},
            json={"geometry": {"type": "Polygon", "coordinates": [utm_box(6, 1, 10, 5)]}, "crs": CRS_UTM,
                  "time": {"from": "2023-01-01", "to": "2023-12-31"}, "bands": ["B04"], "indices": ["NDVI"]}).json
    finally:
        server.shutdown()
        server.server_close()
    assert answer["status"] == "OK"
    ours = [(d["interval"]["from"][:10], d["outputs"]["data"]["bands"]["B0"]["stats"]["mean"]) for d in answer["data"]]
    theirs = [(e["date"], e["indices"]["NDVI"]["mean"]) for e in native["series"]]
    assert [d for d, _ in ours] == [d for d, _ in theirs]
    for (_, a), (_, b) in zip(ours, theirs):
        assert a == pytest.approx(b, abs=1e-6)  # the evalscript output is FLOAT32
    assert os.environ["OAUTHLIB_INSECURE_TRANSPORT"] == "1"


def test_all_intervals_failing_is_failed(client, simple_archive: Path) -> None:
    """When every interval fails the status is FAILED, and each interval still has its error."""
    for item in ("T1_20230105", "T1_20230704", "T1_20230810"):
        (simple_archive / "items" / item / "B04.tif").unlink()
    data = client.post("/api/v1/statistics", json=body()).json
    assert data["status"] == "FAILED"
    assert [d["error"]["type"] for d in data["data"]] == ["EXECUTION_ERROR"] * 3
