"""Batch Statistical API (/api/v1/statistics/batch): sentinelhub-py's SentinelHubBatchStatistical drives jobs on a live
`polyfis serve`, with the GeoPackage and the outputs on a real S3-compatible server (moto's, on 127.0.0.1) or in the
server's local folder; every feature's statistics are checked against numpy over the known band values."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
from conftest import CRS_UTM, S2_BANDS, at_10m, band_array, band_transform, utm_box
from shapely.geometry import MultiPolygon, Polygon

from service import create_app
from stats.archive.catalog import Archive, ArchiveWriter
from stats.batch.jobs import JobRunner
from stats.sentinelhub.batch_statistical import BatchStatisticalRequest
from stats.sentinelhub.batch_statistical_jobs import StatisticalJobStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from common import polyfis_server  # noqa: E402

NDVI_SCRIPT = """//VERSION=3
function setup() {
  return {input: [{bands: ["B04", "B08", "dataMask"]}],
          output: [{id: "ndvi", bands: 1}, {id: "dataMask", bands: 1}]};
}
function evaluatePixel(samples) {
  return {ndvi: [(samples.B08 - samples.B04) / (samples.B08 + samples.B04)], dataMask: [samples.dataMask]};
}
"""
CLIENT = ("client-id", "client-secret")
AWS = {"AWS_ACCESS_KEY_ID": "polyfis-test", "AWS_SECRET_ACCESS_KEY": "polyfis-test-secret",
       "AWS_DEFAULT_REGION": "us-east-1"}
BUCKET = "fields"
DATES = ("2023-01-05", "2023-07-04", "2023-08-10")
#: Pixel boxes (col0, row0, col1, row1) of tile T1; the last feature is a MultiPolygon of two boxes.
BOXES = [(0, 0, 3, 3), (4, 1, 8, 5), (6, 6, 12, 12), (2, 8, 5, 11)]
MULTI = ((0, 5, 2, 7), (9, 0, 12, 2))


def grid_boxes(n: int) -> list[tuple[int, int, int, int]]:
    """``n`` small boxes over the tile (repeating), for jobs with many features."""
    cells = [(c, r, c + 2, r + 2) for r in range(0, 10, 2) for c in range(0, 10, 2)]
    return [cells[i % len(cells)] for i in range(n)]


# ---- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture(name="archive_root", scope="module")
def fixture_archive_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three dates of tile T1 (as conftest's simple_archive): baseline 02.09, 04.00 (+1000 DN), left half no data."""
    root = tmp_path_factory.mktemp("batchstat") / "archive"
    shifted = {b: ((band_array(b).astype(np.int32) + 1000).astype(np.uint16), band_transform(b)) for b in S2_BANDS}
    half = {}
    for b in S2_BANDS:
        arr = band_array(b)
        arr[:, : arr.shape[1] // 2] = 0
        half[b] = (arr, band_transform(b))
    with ArchiveWriter(root) as writer:
        for tile, when, baseline, bands in [
                ("T1_20230105", dt.datetime(2023, 1, 5, 10, 0, 31, tzinfo=dt.UTC), "02.09", {}),
                ("T1_20230704", dt.datetime(2023, 7, 4, 10, 0, 31, tzinfo=dt.UTC), "04.00", shifted),
                ("T1_20230810", dt.datetime(2023, 8, 10, 10, 0, 31, tzinfo=dt.UTC), "02.09", half)]:
            layers = {b: (band_array(b), band_transform(b)) for b in S2_BANDS}
            layers.update(bands)
            writer.add(tile, when, CRS_UTM, layers, processing_baseline=baseline, cloud_cover=0.0)
    return root


@pytest.fixture(name="s3", scope="module")
def fixture_s3() -> Iterator[str]:
    """moto's S3 server on a free port of 127.0.0.1, with a bucket; this process's AWS_* point at it."""
    moto_server = pytest.importorskip("moto.server")
    import boto3

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**AWS, "AWS_ENDPOINT_URL": endpoint}.items():
            patch.setenv(name, value)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield endpoint
    server.stop()


def server_env(archive_root: Path, s3: str, files: Path, jobs: Path) -> dict[str, str]:
    """The environment of a `polyfis serve` with OAuth, S3 at moto's and a local folder."""
    return {"POLYFIS_ARCHIVE": str(archive_root), "POLYFIS_JOBS_DIR": str(jobs),
            "POLYFIS_BATCH_STATISTICAL_ROOT": str(files), "POLYFIS_AUTH_CLIENTS": ":".join(CLIENT),
            "POLYFIS_AUTH_KEY": "batch-statistical-test-key", **AWS, "AWS_ENDPOINT_URL": s3}


@pytest.fixture(name="files", scope="module")
def fixture_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's local folder of GeoPackages and outputs."""
    return tmp_path_factory.mktemp("files")


@pytest.fixture(name="base", scope="module")
def fixture_base(archive_root: Path, s3: str, files: Path) -> Iterator[str]:
    """`polyfis serve --workers 2` for the whole module."""
    env = server_env(archive_root, s3, files, archive_root.parent / "jobs")
    with polyfis_server(workers=2, env=env, timeout_s=120) as server:
        yield server.base


@pytest.fixture(name="config")
def fixture_config(base: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """sentinelhub-py's configuration pointed at the live server (and at moto for its S3 reads)."""
    from sentinelhub import SHConfig

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the client refuses http token URLs otherwise
    return SHConfig(sh_base_url=base, sh_token_url=f"{base}/oauth/token", sh_client_id=CLIENT[0],
                    sh_client_secret=CLIENT[1], aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"])


def write_gpkg(path: Path, boxes: list[tuple[int, int, int, int]], *, multi: bool = True,
               identifiers: bool = True) -> dict[int, Any]:
    """A GeoPackage of the boxes (and the MultiPolygon) in EPSG:32633; its feature ids -> geometries, read back."""
    geometries = [Polygon(utm_box(*b)) for b in boxes]
    if multi:
        geometries.append(MultiPolygon([Polygon(utm_box(*b)) for b in MULTI]))
    columns = {"identifier": [f"field-{i}" for i in range(len(geometries))]} if identifiers else {"name": range(
        len(geometries))}
    path.parent.mkdir(parents=True, exist_ok=True)
    gpd.GeoDataFrame(columns, geometry=geometries, crs=CRS_UTM).to_file(path, driver="GPKG")
    frame = pyogrio.read_dataframe(path, fid_as_index=True)
    return dict(zip((int(i) for i in frame.index), frame.geometry))


def upload(path: Path, key: str) -> str:
    import boto3

    boto3.client("s3").upload_file(str(path), BUCKET, key)
    return f"s3://{BUCKET}/{key}"


def spec(url: str) -> dict[str, Any]:
    from sentinelhub import SentinelHubBatchStatistical

    return SentinelHubBatchStatistical.s3_specification(url, AWS["AWS_ACCESS_KEY_ID"], AWS["AWS_SECRET_ACCESS_KEY"])


def create(config: Any, features: dict[str, Any], output: dict[str, Any]) -> Any:
    """A batch statistical request created with sentinelhub-py, as its example notebook creates one."""
    from sentinelhub import DataCollection, SentinelHubBatchStatistical, SentinelHubStatistical

    name = "POLYFIS_BATCH_L1C_" + config.sh_base_url.rsplit(":", 1)[-1]  # one collection per server
    collection = DataCollection.SENTINEL2_L1C.define_from(name, service_url=config.sh_base_url)
    aggregation = SentinelHubStatistical.aggregation(evalscript=NDVI_SCRIPT, time_interval=("2023-01-01", "2023-12-31"),
                                                     aggregation_interval="P1D", resolution=(10, 10))
    calculations = {"ndvi": {"statistics": {"default": {"percentiles": {"k": [50]}}},
                             "histograms": {"default": {"nBins": 4, "lowEdge": 0.0, "highEdge": 1.0}}}}
    return SentinelHubBatchStatistical(config=config).create(
        input_features=features, input_data=[SentinelHubStatistical.input_data(collection)], aggregation=aggregation,
        calculations=calculations, output=output)


def wait_for(config: Any, request: Any, statuses: tuple[str, ...], timeout_s: float = 180) -> dict[str, Any]:
    from sentinelhub import SentinelHubBatchStatistical

    client = SentinelHubBatchStatistical(config=config)
    t0 = time.monotonic()
    while True:
        status = client.get_status(request)
        if status["status"] in statuses:
            return status
        assert time.monotonic() - t0 < timeout_s, status
        time.sleep(0.2)


def expected_ndvi(geometry: Any, date: str) -> tuple[np.ndarray, int]:
    """NDVI of the polygon's pixels with data on ``date`` (numpy over the known DN), and its bbox's pixel count."""
    minx, miny, maxx, maxy = geometry.bounds
    col0, col1 = int((minx - 500000) // 10), int((maxx - 500000) // 10) + 1
    row0, row1 = int((5000120 - maxy) // 10), int((5000120 - miny) // 10) + 1
    b04 = at_10m("B04", band_array("B04")).astype(np.float64) / 10000
    b08 = at_10m("B08", band_array("B08")).astype(np.float64) / 10000
    rows, cols = np.mgrid[0:12, 0:12]
    centres = [(500000 + 10 * c + 5, 5000120 - 10 * r - 5) for r, c in zip(rows.ravel(), cols.ravel())]
    from shapely import contains_xy

    inside = contains_xy(geometry, np.array([x for x, _ in centres]), np.array([y for _, y in centres])).reshape(12, 12)
    if date == "2023-08-10":
        inside &= cols >= 6  # the left half has no data that day
    ndvi = ((b08 - b04) / (b08 + b04))[inside]
    return ndvi, (col1 - col0) * (row1 - row0)


def check_feature(document: dict[str, Any], geometry: Any) -> None:
    """One feature's output against numpy: mean, min, max, stDev, median and counts of every date."""
    assert document["response"]["status"] == "OK"
    answered = {d["interval"]["from"][:10]: d["outputs"]["ndvi"]["bands"]["B0"] for d in document["response"]["data"]}
    assert sorted(answered) == list(DATES)
    for date, band in answered.items():
        values, box_pixels = expected_ndvi(geometry, date)
        stats = band["stats"]
        assert stats["sampleCount"] == box_pixels
        assert stats["noDataCount"] == box_pixels - values.size
        if values.size == 0:
            assert stats["mean"] == "NaN"
            continue
        assert stats["mean"] == pytest.approx(values.mean(), abs=1e-6)  # FLOAT32 outputs
        assert stats["min"] == pytest.approx(values.min(), abs=1e-6)
        assert stats["max"] == pytest.approx(values.max(), abs=1e-6)
        assert stats["stDev"] == pytest.approx(values.std(), abs=1e-6)
        if "percentiles" in stats:  # asked for by create()'s calculations
            assert stats["percentiles"]["50.0"] == pytest.approx(np.percentile(values, 50, method="higher"), abs=1e-6)
            counts = [b["count"] for b in band["histogram"]["bins"]]
            assert counts == np.histogram(values, bins=np.linspace(0, 1, 5))[0].tolist()


def statistical_answer(base: str, geometry: Any) -> dict[str, Any]:
    """polyfis's own Statistical API answer for one polygon (over HTTP, with a token)."""
    import requests
    from shapely.geometry import mapping

    token = requests.post(f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=CLIENT,
                          timeout=30).json()["access_token"]
    body = {"input": {"bounds": {"geometry": mapping(geometry),
                                 "properties": {"crs": "http://www.opengis.net/def/crs/EPSG/0/32633"}},
                      "data": [{"type": "sentinel-2-l1c"}]},
            "aggregation": {"timeRange": {"from": "2023-01-01T00:00:00Z", "to": "2023-12-31T00:00:00Z"},
                            "aggregationInterval": {"of": "P1D"}, "resx": 10, "resy": 10, "evalscript": NDVI_SCRIPT},
            "calculations": {"ndvi": {"statistics": {"default": {"percentiles": {"k": [50]}}},
                                      "histograms": {"default": {"nBins": 4, "lowEdge": 0.0, "highEdge": 1.0}}}}}
    answer = requests.post(f"{base}/api/v1/statistics", json=body, headers={"Authorization": f"Bearer {token}"},
                           timeout=60)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


# ---- end to end with sentinelhub-py --------------------------------------------------------------------------


def test_sentinelhub_py_runs_a_job_from_s3_to_s3(config: Any, base: str, tmp_path: Path) -> None:
    """create, analyse, start and monitor a job with sentinelhub-py; AwsBatchStatisticalResults reads one JSON per
    feature from the bucket, each equal to numpy's statistics and to polyfis's Statistical API for that polygon."""
    from sentinelhub import BatchRequestStatus, SentinelHubBatchStatistical, monitor_batch_statistical_job
    from sentinelhub.aws.batch import AwsBatchStatisticalResults
    from sentinelhub.data_utils import get_failed_statistical_requests, statistical_to_dataframe

    geometries = write_gpkg(tmp_path / "fields.gpkg", BOXES)
    url = upload(tmp_path / "fields.gpkg", "input/fields.gpkg")
    client = SentinelHubBatchStatistical(config=config)
    request = create(config, spec(url), spec(f"s3://{BUCKET}/output/"))
    assert request.status is BatchRequestStatus.CREATED and request.completion_percentage == 0
    assert "secretAccessKey" not in request.request["output"]["s3"]  # never shown back

    client.start_analysis(request)
    analysed = wait_for(config, request, ("ANALYSIS_DONE", "FAILED"))
    assert analysed["status"] == "ANALYSIS_DONE", analysed.get("error")
    client.start_job(request)
    wait_for(config, request, ("DONE", "FAILED"))
    final = monitor_batch_statistical_job(request, config=config)
    assert final["status"] == "DONE" and final["completionPercentage"] == 100
    info = client.get_request(request)
    assert info.status is BatchRequestStatus.DONE and info.error is None

    results = AwsBatchStatisticalResults(info, config=config).get_data()  # lists <output>/<id>/ and reads each
    by_id = {r["id"]: r for r in results}
    assert sorted(by_id) == sorted(geometries)
    for fid, geometry in geometries.items():
        assert by_id[fid]["identifier"] == f"field-{fid - 1}"
        check_feature(by_id[fid], geometry)
        assert by_id[fid]["response"] == statistical_answer(base, geometry)
    frame = statistical_to_dataframe(results)
    assert sorted(set(frame["identifier"])) == sorted(f"field-{fid - 1}" for fid in geometries)
    assert get_failed_statistical_requests(results) == []


def test_a_job_reads_and_writes_the_local_folder(config: Any, files: Path) -> None:
    """A GeoPackage in the server's local folder, outputs to a local folder: <out>/<request id>/<id>.json, and a
    GeoPackage without an identifier column gives null identifiers."""
    from sentinelhub import SentinelHubBatchStatistical

    geometries = write_gpkg(files / "in" / "plain.gpkg", BOXES[:2], multi=False, identifiers=False)
    request = create(config, {"local": {"path": "in/plain.gpkg"}}, {"local": {"path": "results"}})
    SentinelHubBatchStatistical(config=config).start_job(request)  # analysis first, then processing
    assert wait_for(config, request, ("DONE", "FAILED"))["status"] == "DONE"
    folder = files / "results" / request.request_id
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{fid}.json" for fid in geometries)
    for fid, geometry in geometries.items():
        document = json.loads((folder / f"{fid}.json").read_text())
        assert document["id"] == fid and document["identifier"] is None
        check_feature(document, geometry)


def test_an_output_template_names_the_files(config: Any, files: Path) -> None:
    """<IDENTIFIER> and <REQUEST_ID> in the output path are filled in per feature."""
    from sentinelhub import SentinelHubBatchStatistical

    geometries = write_gpkg(files / "in" / "named.gpkg", BOXES[:2], multi=False)
    request = create(config, {"local": {"path": "in/named.gpkg"}},
                     {"local": {"path": "named/<REQUEST_ID>-<IDENTIFIER>.json"}})
    SentinelHubBatchStatistical(config=config).start_job(request)
    assert wait_for(config, request, ("DONE", "FAILED"))["status"] == "DONE"
    for fid, geometry in geometries.items():
        document = json.loads((files / "named" / f"{request.request_id}-field-{fid - 1}.json").read_text())
        check_feature(document, geometry)


def test_stop_then_start_resumes_to_done(config: Any, tmp_path: Path) -> None:
    """stop (and cancel, its older name) gives STOPPED by USER_ACTION; start resumes and writes every feature."""
    import boto3
    from sentinelhub import BatchRequestStatus, BatchUserAction, SentinelHubBatchStatistical

    client = SentinelHubBatchStatistical(config=config)
    geometries = write_gpkg(tmp_path / "many.gpkg", grid_boxes(30), multi=False)
    url = upload(tmp_path / "many.gpkg", "input/many.gpkg")
    request = create(config, spec(url), spec(f"s3://{BUCKET}/stopped"))
    client.start_job(request)
    client.stop_job(request)
    status = wait_for(config, request, ("STOPPED", "DONE", "FAILED"))
    assert status["status"] == "STOPPED" and status["stoppedStatusReason"] == "USER_ACTION"
    info = client.get_request(request)
    assert info.status is BatchRequestStatus.STOPPED and info.user_action is BatchUserAction.STOP
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"stopped/{request.request_id}/")
    assert len(listed.get("Contents", [])) < len(geometries)
    client.start_job(request)
    assert wait_for(config, request, ("DONE", "FAILED"))["status"] == "DONE"
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"stopped/{request.request_id}/")
    assert sorted(o["Key"] for o in listed["Contents"]) == sorted(
        f"stopped/{request.request_id}/{fid}.json" for fid in geometries)

    idle = create(config, spec(url), spec(f"s3://{BUCKET}/never"))
    with pytest.warns(DeprecationWarning):
        client.cancel_job(idle)  # the older /cancel route
    assert client.get_status(idle)["status"] == "STOPPED"


def test_a_missing_geopackage_fails_with_the_reason(config: Any, files: Path) -> None:
    """A GeoPackage that is not there (S3 or local) or is not a GeoPackage: FAILED, the error says why, and the
    client's monitor raises it."""
    from sentinelhub import SentinelHubBatchStatistical, monitor_batch_statistical_analysis

    client = SentinelHubBatchStatistical(config=config)
    request = create(config, spec(f"s3://{BUCKET}/input/nowhere.gpkg"), spec(f"s3://{BUCKET}/output"))
    client.start_job(request)
    with pytest.raises(RuntimeError, match="FAILED.*nowhere.gpkg: no such object"):
        monitor_batch_statistical_analysis(request, config=config, sleep_time=5)
    (files / "junk.gpkg").write_bytes(b"not a geopackage at all")
    for path, reason in [("absent.gpkg", "absent.gpkg: not found"), ("junk.gpkg", "not a GeoPackage")]:
        request = create(config, {"local": {"path": path}}, {"local": {"path": "out"}})
        client.start_analysis(request)
        status = wait_for(config, request, ("FAILED", "ANALYSIS_DONE"))
        assert status["status"] == "FAILED" and reason in status["error"], status
        assert str(files) not in status["error"]


def test_the_listing_pages_through_requests(config: Any, base: str) -> None:
    """GET lists the requests with count/viewtoken paging, and keeps no secret key."""
    import requests

    token = requests.post(f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=CLIENT,
                          timeout=30).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    first = requests.get(f"{base}/api/v1/statistics/batch?count=1", headers=headers, timeout=30).json()
    assert len(first["data"]) == 1 and first["links"]["nextToken"] == "1"
    everything = requests.get(f"{base}/api/v1/statistics/batch", headers=headers, timeout=30).json()["data"]
    assert everything[0]["id"] == first["data"][0]["id"]
    assert all("secretAccessKey" not in json.dumps(r) for r in everything)
    assert requests.get(f"{base}/api/v1/statistics/batch", timeout=30).status_code == 401


def test_a_server_restart_resumes_the_job(archive_root: Path, s3: str, tmp_path: Path, monkeypatch) -> None:
    """A server stopped while PROCESSING leaves the job PROCESSING; the next server resumes it, skipping the features
    already written (their files are not written again), to DONE."""
    from sentinelhub import SentinelHubBatchStatistical, SHConfig

    files, jobs = tmp_path / "files", tmp_path / "jobs"
    geometries = write_gpkg(files / "many.gpkg", grid_boxes(60), multi=False)
    env = server_env(archive_root, s3, files, jobs)
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    with polyfis_server(workers=1, env=env, timeout_s=120) as server:
        config = SHConfig(sh_base_url=server.base, sh_token_url=f"{server.base}/oauth/token",
                          sh_client_id=CLIENT[0], sh_client_secret=CLIENT[1])
        request = create(config, {"local": {"path": "many.gpkg"}}, {"local": {"path": "out"}})
        SentinelHubBatchStatistical(config=config).start_job(request)
        t0 = time.monotonic()
        while SentinelHubBatchStatistical(config=config).get_status(request)["completionPercentage"] < 5:
            assert time.monotonic() - t0 < 120
            time.sleep(0.1)
    record = json.loads((jobs / "statistical" / request.request_id / "job.json").read_text())
    assert record["status"] == "PROCESSING" and record["progress"]["done"] < len(geometries), record["progress"]
    out = files / "out" / request.request_id
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert before
    with polyfis_server(workers=1, env=env, timeout_s=120) as server:
        config = SHConfig(sh_base_url=server.base, sh_token_url=f"{server.base}/oauth/token",
                          sh_client_id=CLIENT[0], sh_client_secret=CLIENT[1])
        assert wait_for(config, request, ("DONE", "FAILED"))["status"] == "DONE"
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert sorted(after) == sorted(f"{fid}.json" for fid in geometries)
    done = (jobs / "statistical" / request.request_id / "done").read_text().split()
    rewritten = [name for name, mtime in before.items() if after[name] != mtime]
    assert len(rewritten) <= 1  # at most the feature whose output was written as the server stopped
    assert len(done) <= len(geometries) + 1


# ---- in-process: bad requests, statuses, resume ---------------------------------------------------------------


@pytest.fixture(name="app_client")
def fixture_app_client(archive_root: Path, tmp_path: Path) -> Any:
    root = tmp_path / "files"
    write_gpkg(root / "fields.gpkg", BOXES)
    app = create_app({"archive": str(archive_root), "jobs_dir": str(tmp_path / "jobs"),
                      "batch_statistical_root": str(root), "batch_statistical_buckets": "fields, lent"})
    return app.test_client()


def test_the_server_lends_its_credentials_to_the_listed_buckets_only(app_client: Any) -> None:
    """A location without keys is accepted for a bucket of POLYFIS_BATCH_STATISTICAL_BUCKETS, and its GET shows no
    keys; one with keys is accepted for any bucket, its secret never shown back."""
    lent = app_client.post("/api/v1/statistics/batch", json=body(output={"s3": {"url": "s3://lent/out"}}))
    assert lent.status_code == 201, lent.json
    keyed = app_client.post("/api/v1/statistics/batch", json=body(
        output={"s3": {"url": "s3://any/out", "accessKey": "AK", "secretAccessKey": "very-secret"}}))
    assert keyed.status_code == 201, keyed.json
    shown = app_client.get(f"/api/v1/statistics/batch/{keyed.json['id']}").json
    assert shown["request"]["output"] == {"s3": {"url": "s3://any/out", "accessKey": "AK"}}
    assert "very-secret" not in json.dumps(app_client.get("/api/v1/statistics/batch").json)


def body(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "input": {"features": {"local": {"path": "fields.gpkg"}}, "data": [{"type": "sentinel-2-l1c"}]},
        "aggregation": {"timeRange": {"from": "2023-01-01T00:00:00Z", "to": "2023-12-31T00:00:00Z"},
                        "aggregationInterval": {"of": "P1D"}, "resx": 10, "resy": 10, "evalscript": NDVI_SCRIPT},
        "output": {"local": {"path": "out"}}}
    for path, value in changes.items():
        target = out
        *parents, last = path.split("__")
        for key in parents:
            target = target[key]
        if value is None:
            target.pop(last)
        else:
            target[last] = value
    return out


@pytest.mark.parametrize(("changes", "message"), [
    ({"input": None}, "input: missing"),
    ({"colour": "blue"}, "unknown fields ['colour']"),
    ({"input__features": {"local": {"path": "../outside.gpkg"}}}, "input.features.local.path: got '../outside.gpkg'"),
    ({"input__features": {"local": {"path": "/etc/passwd"}}}, "input.features.local.path: got '/etc/passwd'"),
    ({"output": {"local": {"path": "a/../../b"}}}, "output.local.path"),
    ({"input__features": {"ftp": {"url": "ftp://x"}}}, "input.features: got ['ftp']"),
    ({"input__features": {"s3": {"url": "http://bucket/x.gpkg"}}}, "input.features.s3.url: got 'http://bucket/x.gpkg'"),
    ({"input__features": {"s3": {"url": "s3:///x.gpkg"}}}, "names no bucket"),
    ({"input__features": {"s3": {"url": "s3://b/x.gpkg", "iamRoleARN": "arn:aws:iam::1:role/r"}}}, "iamRoleARN"),
    ({"input__features": {"s3": {"url": "s3://b/x.gpkg", "accessKey": "k"}}}, "go together"),
    ({"input__features": {"s3": {"url": "s3://other/x.gpkg"}}}, "lends its own credentials to no bucket 'other'"),
    ({"output": {"s3": {"url": "s3://fields/<REQUEST_ID>.json"}}}, "must hold <ID> or <IDENTIFIER>"),
    ({"output": {"s3": {"url": "s3://fields/<NAME>.json"}}}, "unknown placeholders ['<NAME>']"),
    ({"aggregation__evalscript": "function nope("}, "evalscript"),
    ({"aggregation__evalscript": None}, "aggregation.evalscript: missing"),
    ({"aggregation__evalscriptReference": {"s3": {"url": "s3://b/e.js"}}}, "evalscriptReference"),
    ({"input__data": [{"type": "sentinel-2-l2a"}]}, "input.data[0].type"),
    ({"aggregation__timeRange": None}, "aggregation.timeRange: missing"),
])
def test_bad_requests_are_400_naming_the_field(app_client: Any, changes: dict[str, Any], message: str) -> None:
    response = app_client.post("/api/v1/statistics/batch", json=body(**changes))
    assert response.status_code == 400, response.json
    assert message in response.json["error"]["message"]


def test_local_paths_need_a_configured_folder(archive_root: Path, tmp_path: Path) -> None:
    client = create_app({"archive": str(archive_root), "jobs_dir": str(tmp_path / "jobs")}).test_client()
    response = client.post("/api/v1/statistics/batch", json=body())
    assert response.status_code == 400
    assert "POLYFIS_BATCH_STATISTICAL_ROOT is not set" in response.json["error"]["message"]


def test_a_symlink_out_of_the_folder_is_refused(app_client: Any, tmp_path: Path) -> None:
    (tmp_path / "files" / "escape").symlink_to(tmp_path)
    response = app_client.post("/api/v1/statistics/batch",
                               json=body(input__features={"local": {"path": "escape/jobs/x.gpkg"}}))
    assert response.status_code == 400 and "leads out of" in response.json["error"]["message"]


def test_unknown_ids_actions_and_wrong_statuses(app_client: Any) -> None:
    assert app_client.get("/api/v1/statistics/batch/" + "0" * 32).status_code == 404
    assert app_client.get("/api/v1/statistics/batch/not-an-id/status").status_code == 404
    created = app_client.post("/api/v1/statistics/batch", json=body()).json
    assert created["status"] == "CREATED" and created["userAction"] == "NONE"
    job = f"/api/v1/statistics/batch/{created['id']}"
    assert app_client.post(f"{job}/explode").status_code in (404, 405)
    assert app_client.post(f"{job}/stop").status_code == 204  # idle: stopped at once
    stopped = app_client.get(job).json
    assert stopped["status"] == "STOPPED" and stopped["userAction"] == "STOP"
    response = app_client.post(f"{job}/analyse")
    assert response.status_code == 409 and "its status is STOPPED" in response.json["error"]["message"]
    assert app_client.post(f"{job}/stop").status_code == 409


@pytest.mark.parametrize("raises", [False, True], ids=["between features", "interrupted work raising"])
def test_a_request_cut_short_by_its_process_stopping_stays_processing_and_resumes(
        archive_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raises: bool) -> None:
    """A process stopping mid-request (JobRunner.stop) leaves it PROCESSING with the features written so far, even
    when the work it cut short raises; a later runner writes the others, to DONE."""
    from stats.sentinelhub import batch_statistical_jobs as jobs_module

    root = tmp_path / "files"
    geometries = write_gpkg(root / "fields.gpkg", BOXES)
    archive = Archive.open(archive_root)
    store = StatisticalJobStore(tmp_path / "jobs", files_root=root)
    job = store.submit(BatchStatisticalRequest.from_dict(body(), root=root), archive.href or "")["id"]
    store.request_action(job, "start")
    real = jobs_module.feature_output
    calls: list[int] = []

    def stopping_after_one(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            store.stopping.set()
            if raises:
                raise RuntimeError("cannot schedule new futures after interpreter shutdown")
        return real(*args, **kwargs)

    monkeypatch.setattr(jobs_module, "feature_output", stopping_after_one)
    assert JobRunner(store, lambda: archive).run_pending() == 1
    record = store.get(job)
    assert record["status"] == "PROCESSING" and record.get("error") is None
    written = sorted(p.name for p in (root / "out" / job).iterdir())
    assert len(written) == (1 if raises else 2)
    monkeypatch.setattr(jobs_module, "feature_output", real)
    fresh = StatisticalJobStore(tmp_path / "jobs", files_root=root)
    assert JobRunner(fresh, lambda: archive).run_pending() == 1
    assert fresh.get(job)["status"] == "DONE"
    for fid, geometry in geometries.items():
        check_feature(json.loads((root / "out" / job / f"{fid}.json").read_text()), geometry)


def test_resume_skips_the_features_already_written(archive_root: Path, tmp_path: Path) -> None:
    """A job left PROCESSING by a dead process, with some features listed as written, is taken over by a runner,
    which writes only the others."""
    root = tmp_path / "files"
    geometries = write_gpkg(root / "fields.gpkg", BOXES)
    archive = Archive.open(archive_root)
    store = StatisticalJobStore(tmp_path / "jobs", files_root=root)
    record = store.submit(BatchStatisticalRequest.from_dict(body(), root=root), archive.href or "")
    job = record["id"]
    store.request_action(job, "analyse")
    assert store.run(job, archive)["status"] == "ANALYSIS_DONE"
    first, *rest = sorted(geometries)
    marker = root / "out" / job / f"{first}.json"
    marker.parent.mkdir(parents=True)
    marker.write_text('{"written": "before"}')
    (store.folder(job) / "done").write_text(f"{first}\n{rest[0]}")  # the second line is torn: not trusted
    store.update(job, status="PROCESSING")
    (store.folder(job) / "lock").write_text(json.dumps({"pid": 2**22 + 12345, "host": store.host, "token": "x"}))
    runner = JobRunner(store, lambda: archive)
    assert runner.run_pending() == 1
    assert store.get(job)["status"] == "DONE"
    assert json.loads(marker.read_text()) == {"written": "before"}
    for fid in rest:
        check_feature(json.loads((root / "out" / job / f"{fid}.json").read_text()), geometries[fid])
    assert os.path.exists(store.folder(job) / "features.json")
