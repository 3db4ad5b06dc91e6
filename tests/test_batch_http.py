"""Batch jobs over HTTP: submit, poll, download CSV/Parquet equal to single time-series answers; validation;
jobs that survive a restart; one process per job through lock files, stale locks taken over."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from openapi_schema_validator import OAS30Validator

from service import create_app
from stats import Archive
from stats.archive.synthetic import demo_polygons
from stats.batch.jobs import BatchJobRequest, JobStore
from stats.errors import ConfigError
from stats.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SPEC = yaml.safe_load((ROOT / "service" / "openapi.yaml").read_text())
JOB_SCHEMA = OAS30Validator({"$ref": "#/components/schemas/BatchJob", "components": SPEC["components"]})

TIME = {"from": "2023-03-01", "to": "2023-04-30"}
OPTIONS = {"bands": ["B02", "B04", "B08"], "indices": ["NDVI"],
           "statistics": ["count", "mean", "min", "max", "std", "p10", "p50", "p90"]}
NAMES = ("field_wheat", "lake", "forest")


def polygons(names: tuple[str, ...] = NAMES) -> dict[str, Any]:
    """Demo polygons as a FeatureCollection with ``properties.id`` = their name."""
    by_name = {f["properties"]["name"]: f for f in demo_polygons()["features"]}
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": name}, "geometry": by_name[name]["geometry"]} for name in names]}


def job_body(**extra: Any) -> dict[str, Any]:
    return {"polygons": polygons(), "time": TIME, "options": OPTIONS, **extra}


def make_app(demo_root: Path, jobs: Path, **settings: Any) -> Any:
    app = create_app({"archive": str(demo_root), "jobs_dir": str(jobs), **settings})
    app.testing = True
    return app


def wait_until_finished(client: Any, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll the status until DONE or FAILED (fails the test after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/api/v1/batch/{job_id}")
        assert response.status_code == 200, response.json
        if response.json["status"] in ("DONE", "FAILED"):
            return dict(response.json)
        time.sleep(0.05)
    pytest.fail(f"batch job {job_id} did not finish within {timeout} s")


def stored_job(jobs: Path, demo_root: Path, names: tuple[str, ...] = NAMES, archive_href: str | None = None,
               ) -> tuple[JobStore, str]:
    """A CREATED job written straight to the jobs folder (as a server that stopped would leave it)."""
    store = JobStore(jobs)
    request = BatchJobRequest.from_dict({"polygons": polygons(names), "time": TIME, "options": OPTIONS})
    record = store.create(request, archive_href if archive_href is not None else (Archive.open(demo_root).href or ""))
    return store, record["id"]


def dead_pid() -> int:
    """The pid of a process of this host that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def numeric(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


@pytest.fixture(scope="module", name="finished")
def fixture_finished(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A job of the three demo polygons submitted over HTTP and polled until it finished."""
    app = make_app(demo_root, tmp_path_factory.mktemp("jobs"))
    client = app.test_client()
    submitted = client.post("/api/v1/batch", json=job_body())
    status = wait_until_finished(client, submitted.json["id"])
    return {"client": client, "submitted": submitted, "status": status}


def test_submission_is_accepted_with_a_location_and_the_created_status(finished: dict[str, Any]) -> None:
    response = finished["submitted"]
    assert response.status_code == 202, response.json
    job = response.json
    JOB_SCHEMA.validate(job)
    assert job["status"] == "CREATED" and job["progress"] == {"done": 0, "total": None}
    assert job["polygons"] == 3 and job["rows"] is None and job["error"] is None
    assert job["links"] == {"self": f"/api/v1/batch/{job['id']}"}
    assert response.headers["Location"].endswith(f"/api/v1/batch/{job['id']}")


def test_finished_job_reports_done_with_rows_progress_and_result_links(finished: dict[str, Any]) -> None:
    status = finished["status"]
    JOB_SCHEMA.validate(status)
    assert status["status"] == "DONE", status["error"]
    assert status["progress"]["done"] == status["progress"]["total"] > 0
    assert status["rows"] > 0 and status["error"] is None
    base = f"/api/v1/batch/{status['id']}"
    assert status["links"] == {"self": base, "csv": f"{base}/results?format=csv",
                               "parquet": f"{base}/results?format=parquet"}
    assert status["created"].endswith("Z") and status["updated"] >= status["created"]


def test_csv_and_parquet_results_equal_single_timeseries_answers(finished: dict[str, Any]) -> None:
    client, status = finished["client"], finished["status"]
    csv_response = client.get(status["links"]["csv"])
    assert csv_response.status_code == 200 and csv_response.mimetype == "text/csv"
    assert csv_response.headers["Content-Disposition"].startswith("attachment")
    batch_rows = list(csv.DictReader(io.StringIO(csv_response.get_data(as_text=True))))
    assert len(batch_rows) == status["rows"]
    parquet_response = client.get(status["links"]["parquet"])
    assert parquet_response.status_code == 200 and parquet_response.mimetype == "application/vnd.apache.parquet"
    parquet_rows = pq.read_table(io.BytesIO(parquet_response.data)).to_pylist()
    # Parquet holds dates, the CSV their ISO text
    assert [(r["id"], r["date"].isoformat()) for r in parquet_rows] == [(r["id"], r["date"]) for r in batch_rows]
    for feature in polygons()["features"]:
        name = feature["properties"]["id"]
        single = client.post("/api/v1/timeseries?format=csv",
                             json={"geometry": feature["geometry"], "time": TIME, **OPTIONS})
        assert single.status_code == 200, single.json
        expected = list(csv.DictReader(io.StringIO(single.get_data(as_text=True))))
        mine = [r for r in batch_rows if r["id"] == name]
        from_parquet = [r for r in parquet_rows if r["id"] == name]
        assert expected and [r["date"] for r in mine] == [r["date"] for r in expected], name
        for ours, pq_row, ref in zip(mine, from_parquet, expected):
            for key, value in ref.items():
                want = numeric(value)
                if isinstance(want, float):
                    assert float(ours[key]) == pytest.approx(want, rel=1e-9, abs=1e-9), (name, ref["date"], key)
                    assert float(pq_row[key]) == pytest.approx(want, rel=1e-9, abs=1e-9), (name, ref["date"], key)
                else:
                    assert ours[key] == value, (name, ref["date"], key)


def test_unknown_and_malformed_ids_are_json_404s(finished: dict[str, Any]) -> None:
    client = finished["client"]
    for job_id in ("0" * 32, "not-a-job", "..%2F..%2Fetc"):
        for path in (f"/api/v1/batch/{job_id}", f"/api/v1/batch/{job_id}/results?format=csv"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.json["error"]["code"] == "NotFound"
    assert "expected an id returned by POST /api/v1/batch" in client.get("/api/v1/batch/nope").json["error"]["message"]


def test_another_result_format_is_a_400(finished: dict[str, Any]) -> None:
    response = finished["client"].get(f"/api/v1/batch/{finished['status']['id']}/results?format=xlsx")
    assert response.status_code == 400
    assert "'xlsx'" in response.json["error"]["message"] and "'csv' or 'parquet'" in response.json["error"]["message"]


def test_results_before_the_job_is_done_are_a_409(demo_root: Path, tmp_path: Path) -> None:
    """A job held by another live process of this host stays CREATED here: its results are a 409."""
    jobs = tmp_path / "jobs"
    other, job_id = stored_job(jobs, demo_root, names=("lake",))
    assert other.claim(job_id)  # as if another worker of this host were running it
    client = make_app(demo_root, jobs).test_client()
    client.application.extensions["polyfis.jobs"].wake()
    response = client.get(f"/api/v1/batch/{job_id}/results?format=csv")
    assert response.status_code == 409
    assert response.json["error"]["code"] == "Conflict"
    message = response.json["error"]["message"]
    assert "CREATED" in message and "once the status is DONE" in message
    assert client.get(f"/api/v1/batch/{job_id}").json["status"] == "CREATED"


def collection(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def feature(geometry: dict[str, Any], properties: Any = None) -> dict[str, Any]:
    return {"type": "Feature", "properties": properties, "geometry": geometry}


FIELD = polygons()["features"][0]["geometry"]
LAKE = polygons()["features"][1]["geometry"]

BAD_BODIES = [
    ([1, 2], "request body: expected a JSON object"),
    ({"time": TIME}, "polygons: missing; expected a GeoJSON FeatureCollection"),
    ({**job_body(), "geometry": "POINT (0 0)"}, r"unknown fields \['geometry'\]"),
    (job_body(polygons=FIELD), "polygons: got a 'Polygon' object; expected a GeoJSON FeatureCollection"),
    (job_body(polygons=collection()), "polygons.features: the list is empty"),
    (job_body(polygons=collection(feature({"type": "Point", "coordinates": [15, 46]}))),
     r"polygons.features\[0\].geometry: got type 'Point'; expected a GeoJSON Polygon or MultiPolygon"),
    (job_body(polygons=collection(feature(FIELD, {"id": "a"}), feature(LAKE, {"id": "a"}))),
     r"polygons.features\[1\]: id 'a' is also the id of features\[0\]; expected unique ids"),
    (job_body(polygons=collection(feature(FIELD, {"id": 1.5}))),
     r"polygons.features\[0\].properties.id: got 1.5; expected a string or a 64-bit integer"),
    (job_body(polygons=collection(feature({"type": "Polygon", "coordinates": [[[15, 46], [15.01, 46]]]}))),
     r"polygons.features\[0\] \(id 0\): geometry"),
    (job_body(time={"from": "2023-05-01", "to": "2023-04-01"}), "time: 'from' .* is after 'to'"),
    ({"polygons": polygons(), "options": OPTIONS}, "time: missing"),
    (job_body(options=["B04"]), "options: expected an object of time-series fields"),
    (job_body(options={"bands": ["B99"]}), "bands: unknown band 'B99'"),
    (job_body(options={"geometry": "POINT (0 0)"}), "options: 'geometry' is set per batch"),
    (job_body(options={"colour": "red"}), r"options: unknown fields \['colour'\]"),
    (job_body(crs="EPSG:999999"), "crs: unknown EPSG code 999999"),
    (job_body(crs=4326), "crs: expected a string such as 'EPSG:4326', got 4326"),
]


@pytest.mark.parametrize(("body", "match"), BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_bad_bodies_are_400s_naming_what_was_received(demo_root: Path, tmp_path: Path, body: Any, match: str) -> None:
    client = make_app(demo_root, tmp_path / "jobs").test_client()
    response = client.post("/api/v1/batch", json=body)
    assert response.status_code == 400, response.json
    assert response.json["error"]["status"] == 400
    assert re.search(match, response.json["error"]["message"]), response.json["error"]["message"]
    assert not (tmp_path / "jobs").exists() or not any((tmp_path / "jobs").iterdir())


def test_polygon_count_and_body_size_limits(demo_root: Path, tmp_path: Path) -> None:
    """POLYFIS_BATCH_MAX_POLYGONS caps the features (400); the batch body limit, not the query one, applies (413)."""
    client = make_app(demo_root, tmp_path / "jobs", batch_max_polygons=2, max_body_bytes=1000,
                      batch_max_body_bytes=60_000).test_client()
    response = client.post("/api/v1/batch", json=job_body())  # larger than max_body_bytes: still read
    assert response.status_code == 400
    assert response.json["error"]["message"] == ("polygons: 3 features is more than the limit of 2 per batch; "
                                                 "split the batch")
    big = job_body(options={**OPTIONS, "indices": [{"name": f"X{i}", "expression": "B04 + B08"} for i in range(2000)]})
    assert client.post("/api/v1/batch", json=big).status_code == 413
    assert client.post("/api/v1/batch", data="{}", content_type="text/csv").status_code == 415


def test_a_job_on_disk_is_resumed_by_a_new_app(demo_root: Path, tmp_path: Path) -> None:
    """Jobs left CREATED by a stopped server are picked up by the next app on the same folder."""
    jobs = tmp_path / "jobs"
    _, job_id = stored_job(jobs, demo_root, names=("lake", "forest"))
    client = make_app(demo_root, jobs).test_client()
    status = wait_until_finished(client, job_id)
    assert status["status"] == "DONE", status["error"]
    rows = list(csv.DictReader(io.StringIO(client.get(status["links"]["csv"]).get_data(as_text=True))))
    assert {r["id"] for r in rows} == {"lake", "forest"} and len(rows) == status["rows"]
    assert not (jobs / job_id / "lock").exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over(demo_root: Path, tmp_path: Path) -> None:
    """A job PROCESSING under the lock of a process that died is finished by the next app."""
    jobs = tmp_path / "jobs"
    store, job_id = stored_job(jobs, demo_root, names=("field_wheat",))
    store.update(job_id, status="PROCESSING", progress={"done": 1, "total": 3})
    (jobs / job_id / "lock").write_text(json.dumps({"pid": dead_pid(), "host": store.host, "token": "gone"}))
    client = make_app(demo_root, jobs).test_client()
    status = wait_until_finished(client, job_id)
    assert status["status"] == "DONE", status["error"]
    assert status["rows"] > 0


def test_a_job_is_claimed_by_exactly_one_process(demo_root: Path, tmp_path: Path) -> None:
    """O_EXCL lock files: one claimant; live locks (this host, or any other host) are never taken over."""
    jobs = tmp_path / "jobs"
    first, job_id = stored_job(jobs, demo_root, names=("lake",))
    second = JobStore(jobs)
    assert first.claim(job_id) and not second.claim(job_id)
    owner = second.lock_owner(job_id)
    assert owner is not None and owner["pid"] == os.getpid() and owner["host"] == first.host
    second.release(job_id)  # not its lock: kept
    assert not second.claim(job_id)
    first.release(job_id)
    assert second.claim(job_id)
    second.release(job_id)
    lock = jobs / job_id / "lock"
    lock.write_text(json.dumps({"pid": dead_pid(), "host": "another-host.example", "token": "x"}))
    assert not first.claim(job_id)  # another host's pid cannot be checked from here
    lock.write_text(json.dumps({"pid": dead_pid(), "host": first.host, "token": "x"}))
    assert first.claim(job_id) and not second.claim(job_id)


def test_a_job_that_raises_fails_without_internals_in_its_message(demo_root: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"cannot write {tmp_path}/secret.parquet")

    monkeypatch.setattr("stats.batch.jobs.store.run_batch", broken)
    client = make_app(demo_root, tmp_path / "jobs").test_client()
    job_id = client.post("/api/v1/batch", json=job_body(polygons=polygons(("lake",)))).json["id"]
    status = wait_until_finished(client, job_id)
    assert status["status"] == "FAILED"
    assert status["error"] == "internal error running the batch; the server log has the details"


def test_batch_routes_need_a_token_when_auth_is_on(demo_root: Path, tmp_path: Path) -> None:
    client = make_app(demo_root, tmp_path / "jobs", auth_clients="app:secret").test_client()
    assert client.post("/api/v1/batch", json=job_body()).status_code == 401
    assert client.get(f"/api/v1/batch/{'0' * 32}").status_code == 401
    assert client.get(f"/api/v1/batch/{'0' * 32}/results").status_code == 401
    token = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "app",
                                              "client_secret": "secret"}).json["access_token"]
    response = client.get(f"/api/v1/batch/{'0' * 32}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 404


def test_batch_settings_are_validated_and_default_to_the_user_cache(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    monkeypatch.delenv("POLYFIS_JOBS_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert Settings.from_env().jobs_path == tmp_path / "polyfis" / "jobs"
    settings = Settings.from_env({"POLYFIS_BATCH_WORKERS": "4", "POLYFIS_DASK_SCHEDULER": "tcp://sched:8786",
                                  "POLYFIS_BATCH_MAX_POLYGONS": "10", "POLYFIS_JOBS_DIR": str(tmp_path / "j")})
    assert (settings.batch_workers, settings.dask_scheduler, settings.batch_max_polygons) == (4, "tcp://sched:8786", 10)
    assert settings.jobs_path == tmp_path / "j"
    with pytest.raises(ConfigError, match="POLYFIS_BATCH_WORKERS: expected 0"):
        Settings.from_env({"POLYFIS_BATCH_WORKERS": "-1"})
    with pytest.raises(ConfigError, match="POLYFIS_BATCH_MAX_POLYGONS: expected a positive integer"):
        Settings.from_env({"POLYFIS_BATCH_MAX_POLYGONS": "0"})


def test_an_unwritable_jobs_folder_is_a_503_without_its_path(demo_root: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    client = make_app(demo_root, blocker / "jobs").test_client()
    response = client.post("/api/v1/batch", json=job_body())
    assert response.status_code == 503
    assert "not writable" in response.json["error"]["message"] and str(tmp_path) not in response.data.decode()


def test_jobs_are_listed_oldest_first_and_by_status(demo_root: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """GET /api/v1/batch lists every job as its status route gives it; ?status= keeps one status."""
    _, first = stored_job(tmp_path / "jobs", demo_root)
    _, second = stored_job(tmp_path / "jobs", demo_root, names=NAMES[:1])
    app = make_app(demo_root, tmp_path / "jobs")
    monkeypatch.setattr(app.extensions["polyfis.jobs"], "resume", lambda: False)  # keep them CREATED
    client = app.test_client()
    listed = client.get("/api/v1/batch").json["jobs"]
    assert [j["id"] for j in listed] == [first, second]
    assert listed[0] == client.get(f"/api/v1/batch/{first}").json
    assert [j["id"] for j in client.get("/api/v1/batch?status=created").json["jobs"]] == [first, second]
    assert client.get("/api/v1/batch?status=DONE").json == {"jobs": []}
    bad = client.get("/api/v1/batch?status=READY")
    assert bad.status_code == 400 and "expected one of ['CREATED'" in bad.json["error"]["message"]


@pytest.mark.parametrize("crs", [{"type": "name", "properties": ["EPSG:32633"]}, {"type": "name"}, ["x"], "EPSG:1"])
def test_a_malformed_collection_crs_is_a_400(demo_root: Path, tmp_path: Path, crs: Any) -> None:
    client = make_app(demo_root, tmp_path / "jobs").test_client()
    square = [[500100, 5100000 - 100], [500200, 5099900], [500200, 5099800], [500100, 5099800], [500100, 5099900]]
    collection = {"type": "FeatureCollection", "crs": crs, "features": [
        {"type": "Feature", "properties": {"id": 1}, "geometry": {"type": "Polygon", "coordinates": [square]}}]}
    response = client.post("/api/v1/batch", json={"polygons": collection, "time": {"from": "2023-01-01",
                                                                                   "to": "2023-01-31"}})
    assert response.status_code == 400 and "crs" in response.get_json()["error"]["message"]
