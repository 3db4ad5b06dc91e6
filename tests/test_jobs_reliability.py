"""Batch jobs that cannot be lost: malformed job files are quarantined as FAILED jobs with a reason, servers of
different archives sharing a jobs folder leave each other's jobs alone, and a job's CRS is parsed once."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pyproj
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import mapping, shape
from test_batch_http import JOB_SCHEMA, NAMES, TIME, job_body, make_app, polygons, stored_job, wait_until_finished

from service import resume_jobs
from stats import Archive
from stats.batch.inputs import BatchPolygon
from stats.batch.jobs import BatchJobRequest, JobRunner, JobStore
from stats.batch.plan import batch_options, batch_time, plan_batch

GOOD_RECORD_FIELDS = {"status": "CREATED", "progress": {"done": 0, "total": None}, "created": "2023-01-01T00:00:00Z",
                      "updated": "2023-01-01T00:00:00Z", "polygons": 1, "rows": None, "error": None,
                      "request": {"crs": "EPSG:4326", "time": {"from": "2023-03-01", "to": "2023-03-31"},
                                  "options": {}}, "archive": "/somewhere/collection.json"}
BAD = "f" * 32

#: job.json contents that are no job record, and the words of the reason each one gets.
MALFORMED = [
    (b"[]", "it holds an array, not a JSON object"),
    (b'"DONE"', "it holds a string, not a JSON object"),
    (b"42", "it holds a number, not a JSON object"),
    (b"null", "it holds null, not a JSON object"),
    (b"{}", "it lacks the fields ['archive', 'created', 'error', 'id', 'polygons', 'progress', 'request', 'rows', "
            "'status', 'updated']"),
    (b'{"id": "x"}', "it lacks the fields"),
    (b"not json", "it is not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "it is not valid JSON"),
    (b"\xff\xfe{", "it is not UTF-8 text"),
    (json.dumps({**GOOD_RECORD_FIELDS, "id": "0" * 32}).encode(), "its 'id' is not the id of the job's folder"),
    (json.dumps({**GOOD_RECORD_FIELDS, "id": BAD, "status": "READY"}).encode(), "its 'status' is not one of"),
    (json.dumps({**GOOD_RECORD_FIELDS, "id": BAD, "status": ["DONE"]}).encode(), "its 'status' is not one of"),
    (json.dumps({**GOOD_RECORD_FIELDS, "id": BAD, "created": 42, "progress": {"done": "1"}}).encode(),
     "its fields ['created', 'progress'] are not of their types"),
    (json.dumps({**GOOD_RECORD_FIELDS, "id": BAD, "request": {"crs": "EPSG:4326", "time": []}}).encode(),
     "its fields ['request'] are not of their types"),
    (json.dumps({**GOOD_RECORD_FIELDS, "id": BAD, "polygons": True}).encode(),
     "its fields ['polygons'] are not of their types"),
]


@pytest.mark.parametrize(("content", "reason"), MALFORMED, ids=range(len(MALFORMED)))
def test_a_malformed_job_file_is_quarantined_as_a_failed_job_with_its_reason(
        demo_root: Path, tmp_path: Path, content: bytes, reason: str) -> None:
    jobs = tmp_path / "jobs"
    _, good = stored_job(jobs, demo_root)
    (jobs / BAD).mkdir()
    (jobs / BAD / "job.json").write_bytes(content)
    app = make_app(demo_root, jobs)
    assert resume_jobs(app)  # the server starts and resumes the good job
    client = app.test_client()
    status = client.get(f"/api/v1/batch/{BAD}")
    assert status.status_code == 200, status.json
    job = status.json
    JOB_SCHEMA.validate(job)
    assert job["id"] == BAD and job["status"] == "FAILED"
    assert job["error"].startswith("the job's record (job.json) was malformed: ")
    assert reason in job["error"] and job["error"].endswith("the job was set aside and will not run; submit it again")
    assert str(tmp_path) not in job["error"] and "/" not in job["error"]
    assert job["polygons"] is None and job["rows"] is None and job["links"] == {"self": f"/api/v1/batch/{BAD}"}
    results = client.get(f"/api/v1/batch/{BAD}/results?format=csv")
    assert results.status_code == 409 and "FAILED" in results.json["error"]["message"]
    listed = {j["id"]: j for j in client.get("/api/v1/batch").json["jobs"]}
    assert set(listed) == {good, BAD} and listed[BAD] == job
    assert [j["id"] for j in client.get("/api/v1/batch?status=FAILED").json["jobs"]] == [BAD]
    assert wait_until_finished(client, good)["status"] == "DONE"
    # the bad bytes are kept for the operator, job.json is now the FAILED record, and it stays FAILED
    assert (jobs / BAD / "job.json.quarantined").read_bytes() == content
    on_disk = json.loads((jobs / BAD / "job.json").read_text())
    assert on_disk["status"] == "FAILED" and on_disk["quarantined"] is True and on_disk["error"] == job["error"]
    assert client.get(f"/api/v1/batch/{BAD}").json == job
    assert sorted(p.name for p in (jobs / BAD).iterdir()) == ["job.json", "job.json.quarantined", "lock.takeover"]
    assert not JobRunner(JobStore(jobs), lambda: Archive.open(demo_root)).run_pending()  # never run


def test_the_reason_repeats_nothing_the_bad_file_holds(demo_root: Path, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    (jobs / BAD).mkdir(parents=True)
    hostile = {**GOOD_RECORD_FIELDS, "id": BAD, "status": "<script>alert(1)</script>", "error": "/etc/passwd",
               "archive": str(demo_root)}
    (jobs / BAD / "job.json").write_text(json.dumps(hostile))
    job = make_app(demo_root, jobs).test_client().get(f"/api/v1/batch/{BAD}").json
    assert job["status"] == "FAILED" and job["polygons"] is None
    for secret in ("<script>", "passwd", str(demo_root), "2023-01-01"):
        assert secret not in json.dumps(job)


def test_a_job_folder_without_its_record_is_quarantined_and_a_missing_folder_is_a_404(demo_root: Path,
                                                                                       tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    (jobs / BAD).mkdir(parents=True)
    client = make_app(demo_root, jobs).test_client()
    job = client.get(f"/api/v1/batch/{BAD}").json
    assert job["status"] == "FAILED" and "the file is missing" in job["error"]
    assert not (jobs / BAD / "job.json.quarantined").exists()
    assert client.get(f"/api/v1/batch/{'e' * 32}").status_code == 404


def test_a_second_quarantine_keeps_the_first_bad_file(demo_root: Path, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    (jobs / BAD).mkdir(parents=True)
    store = JobStore(jobs)
    (jobs / BAD / "job.json").write_text("[]")
    assert store.get(BAD)["status"] == "FAILED"  # type: ignore[index]
    (jobs / BAD / "job.json").write_text("42")
    assert "a number" in store.get(BAD)["error"]  # type: ignore[index]
    assert (jobs / BAD / "job.json.quarantined").read_text() == "[]"
    assert (jobs / BAD / "job.json.quarantined.1").read_text() == "42"


def test_a_job_quarantined_while_it_runs_stops_and_stays_failed(demo_root: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The run notices at its next progress report and stops; nothing writes over the FAILED record."""
    jobs = tmp_path / "jobs"
    store, job_id = stored_job(jobs, demo_root)
    from stats.batch.jobs import store as store_module

    real = store_module.run_batch

    def corrupting(*args: Any, **kwargs: Any) -> Any:
        (jobs / job_id / "job.json").write_text('"DONE"')  # as a disk fault or a careless hand would
        return real(*args, **kwargs)

    monkeypatch.setattr(store_module, "run_batch", corrupting)
    assert store.claim(job_id)
    record = store.run(job_id, Archive.open(demo_root), min_interval=0.0)
    store.release(job_id)
    assert record["status"] == "FAILED" and "it holds a string" in record["error"]
    assert json.loads((jobs / job_id / "job.json").read_text())["quarantined"] is True


@pytest.mark.parametrize("stopping", [True, False], ids=["process stopping", "process running"])
def test_a_job_cut_short_by_its_process_stopping_stays_processing_and_resumes(
        demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stopping: bool) -> None:
    """As a worker exits, a job's interrupted work raises (here: the thread pools refusing work at interpreter
    shutdown). That job stays PROCESSING and a later runner finishes it; the same error while the process runs
    fails the job."""
    jobs = tmp_path / "jobs"
    store, job_id = stored_job(jobs, demo_root)
    from stats.batch.jobs import store as store_module

    real = store_module.run_batch

    def exiting(*args: Any, **kwargs: Any) -> Any:
        if stopping:
            store.stopping.set()
        raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    monkeypatch.setattr(store_module, "run_batch", exiting)
    runner = JobRunner(store, lambda: Archive.open(demo_root))
    assert runner.run_pending() == 1
    record = store.get(job_id)
    assert record is not None
    if not stopping:
        assert record["status"] == "FAILED" and record["error"]
        return
    assert record["status"] == "PROCESSING" and record["error"] is None
    assert runner.run_pending() == 0  # a stopping runner claims nothing more
    monkeypatch.setattr(store_module, "run_batch", real)
    assert JobRunner(JobStore(jobs), lambda: Archive.open(demo_root)).run_pending() == 1
    assert store.get(job_id)["status"] == "DONE"


def test_stopping_a_runner_ends_its_thread_and_leaves_the_running_job_pending(demo_root: Path, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """stop() as the running job reports progress: the thread ends within its timeout, the job is PROCESSING
    with the tasks done so far kept, and a new runner finishes it with the rows of an uninterrupted run."""
    jobs = tmp_path / "jobs"
    store, job_id = stored_job(jobs, demo_root)
    runner = JobRunner(store, lambda: Archive.open(demo_root))
    from stats.batch.jobs import store as store_module

    real = store_module.run_batch

    def stopped_at_first_progress(*args: Any, **kwargs: Any) -> Any:
        report = kwargs["progress"]

        def progress(done: int, total: int) -> None:
            if done >= 1 and not store.stopping.is_set():
                store.stopping.set()  # as JobRunner.stop does, from the worker's main thread
            report(done, total)

        return real(*args, **{**kwargs, "progress": progress})

    monkeypatch.setattr(store_module, "run_batch", stopped_at_first_progress)
    runner.wake()
    deadline = time.monotonic() + 60
    while not store.stopping.is_set() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert runner.stop(timeout=30)
    record = store.get(job_id)
    assert record is not None and record["status"] == "PROCESSING" and record["error"] is None
    assert list((jobs / job_id / "result.parquet.parts").iterdir())  # the tasks done so far, kept for the resume
    assert not store.result_path(job_id, "parquet").exists()
    monkeypatch.setattr(store_module, "run_batch", real)
    assert JobRunner(JobStore(jobs), lambda: Archive.open(demo_root)).run_pending() == 1
    resumed = store.get(job_id)
    other, other_id = stored_job(tmp_path / "other", demo_root)
    assert other.claim(other_id)
    whole = other.run(other_id, Archive.open(demo_root))
    assert resumed["status"] == whole["status"] == "DONE" and resumed["rows"] == whole["rows"]


def test_a_bad_polygons_file_fails_its_job_with_a_clean_message(demo_root: Path, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    _, job_id = stored_job(jobs, demo_root)
    (jobs / job_id / "polygons.geojson").write_text('{"features": 3}')
    status = wait_until_finished(make_app(demo_root, jobs).test_client(), job_id)
    assert status["status"] == "FAILED"
    assert status["error"] == ("the job's polygons (polygons.geojson) are missing or malformed on this server; "
                               "submit the job again")


# ---- jobs tied to their archive ------------------------------------------------------------------------


@pytest.fixture(scope="module", name="other_root")
def fixture_other_root(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second archive: a copy of the demo archive in another folder (another href)."""
    root = tmp_path_factory.mktemp("other") / "archive"
    shutil.copytree(demo_root, root)
    return root


def test_servers_on_different_archives_sharing_a_folder_leave_each_others_jobs_alone(
        demo_root: Path, other_root: Path, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    first = make_app(demo_root, jobs).test_client()
    second = make_app(other_root, jobs).test_client()
    mine = first.post("/api/v1/batch", json=job_body(polygons=polygons(("lake",)))).json["id"]
    theirs = second.post("/api/v1/batch", json=job_body(polygons=polygons(("forest",)))).json["id"]
    assert wait_until_finished(first, mine)["status"] == "DONE"
    assert wait_until_finished(second, theirs)["status"] == "DONE"
    # each lists and serves only its own archive's jobs; the other's is a 404 naming why
    assert [j["id"] for j in first.get("/api/v1/batch").json["jobs"]] == [mine]
    assert [j["id"] for j in second.get("/api/v1/batch").json["jobs"]] == [theirs]
    for client, job_id in ((first, theirs), (second, mine)):
        for path in (f"/api/v1/batch/{job_id}", f"/api/v1/batch/{job_id}/results?format=csv"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert "submitted to a server of another archive" in response.json["error"]["message"]
    assert json.loads((jobs / mine / "job.json").read_text())["status"] == "DONE"
    assert json.loads((jobs / theirs / "job.json").read_text())["status"] == "DONE"


def test_a_pending_job_of_another_archive_is_never_claimed_run_or_failed(demo_root: Path, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    _, foreign = stored_job(jobs, demo_root, names=("lake",), archive_href="/elsewhere/collection.json")
    _, own = stored_job(jobs, demo_root, names=("lake",))
    before = (jobs / foreign / "job.json").read_bytes()
    app = make_app(demo_root, jobs)
    client = app.test_client()
    assert wait_until_finished(client, own)["status"] == "DONE"
    runner: JobRunner = app.extensions["polyfis.jobs"]
    assert runner.run_pending() == 0
    assert (jobs / foreign / "job.json").read_bytes() == before  # still CREATED, untouched
    assert not (jobs / foreign / "lock").exists()
    store = JobStore(jobs)
    assert store.claim(foreign)  # a run() called by mistake leaves it as it is too
    assert store.run(foreign, Archive.open(demo_root))["status"] == "CREATED"
    store.release(foreign)
    assert (jobs / foreign / "job.json").read_bytes() == before
    assert store.pending("/elsewhere/collection.json") == [foreign]
    assert store.pending(Archive.open(demo_root).href) == []


# ---- the CRS of a job is parsed once ---------------------------------------------------------------------

PROJ = "+proj=tmerc +lat_0=0 +lon_0=15.5 +k=0.9996 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m +no_defs"


def projected_collection(n: int) -> dict[str, Any]:
    """``n`` copies of the demo field (ids 0..n-1), in the transverse Mercator of :data:`PROJ`."""
    to_proj = Transformer.from_crs("EPSG:4326", PROJ, always_xy=True)
    field = shape(polygons(("field_wheat",))["features"][0]["geometry"])
    moved = shapely.transform(field, lambda xy: __import__("numpy").column_stack(to_proj.transform(xy[:, 0],
                                                                                               xy[:, 1])))
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": i}, "geometry": mapping(moved)} for i in range(n)]}


class Calls:
    """Counts the calls of pyproj's CRS parser and EPSG identification (each costs up to 0.2 s)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.parsed = self.named = 0
        real_init, real_to_epsg = pyproj.CRS.__init__, pyproj.CRS.to_epsg

        def init(crs: Any, *args: Any, **kwargs: Any) -> None:
            self.parsed += 1
            real_init(crs, *args, **kwargs)

        def to_epsg(crs: Any, *args: Any, **kwargs: Any) -> Any:
            self.named += 1
            return real_to_epsg(crs, *args, **kwargs)

        monkeypatch.setattr(pyproj.CRS, "__init__", init)
        monkeypatch.setattr(pyproj.CRS, "to_epsg", to_epsg)


def test_a_jobs_crs_is_parsed_and_named_once_at_submission(monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"polygons": projected_collection(20), "crs": PROJ, "time": TIME}
    calls = Calls(monkeypatch)
    started = time.perf_counter()
    request = BatchJobRequest.from_dict(body)
    elapsed = time.perf_counter() - started
    assert calls.parsed <= 1 and calls.named <= 1, (calls.parsed, calls.named)
    assert len({f["properties"]["crs"] for f in request.features}) == 1
    assert request.features[0]["properties"]["crs"].startswith("PROJCRS[")
    assert elapsed < 2.0  # was 0.2 s per polygon (4 s for these 20)


def test_a_jobs_crs_is_parsed_once_when_planned(demo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    request = BatchJobRequest.from_dict({"polygons": projected_collection(20), "crs": PROJ, "time": TIME})
    wkt = request.features[0]["properties"]["crs"]
    polys = [BatchPolygon(f["properties"]["id"], shape(f["geometry"]), wkt) for f in request.features]
    archive = Archive.open(demo_root)
    calls = Calls(monkeypatch)
    plan = plan_batch(archive, polys, batch_time(TIME["from"], TIME["to"]), batch_options({}))
    assert calls.parsed <= 1 and calls.named <= 1, (calls.parsed, calls.named)
    assert not plan.invalid and plan.tasks
    assert len({id(a.crs) for a in plan.areas if a is not None}) == 1


def test_a_job_in_a_proj_crs_gives_the_rows_of_the_same_job_in_lon_lat(demo_root: Path, tmp_path: Path) -> None:
    client = make_app(demo_root, tmp_path / "jobs").test_client()
    projected = projected_collection(2)
    lonlat = {"type": "FeatureCollection", "features": [
        {**f, "geometry": polygons(("field_wheat",))["features"][0]["geometry"]} for f in projected["features"]]}
    ids = [client.post("/api/v1/batch", json={"polygons": body, "time": TIME, "options": {"bands": ["B04"]}, **extra})
           .json["id"] for body, extra in ((projected, {"crs": PROJ}), (lonlat, {}))]
    statuses = [wait_until_finished(client, i) for i in ids]
    assert [s["status"] for s in statuses] == ["DONE", "DONE"]
    first, second = (client.get(s["links"]["csv"]).get_data(as_text=True).splitlines() for s in statuses)
    assert len(first) == len(second) > 2 and first[0] == second[0]
    for a, b in zip(first[1:], second[1:]):
        cells_a, cells_b = a.split(","), b.split(",")
        assert cells_a[:6] == cells_b[:6]  # id, date, cloud and pixel counts: the same pixels
        assert float(cells_a[6]) == pytest.approx(float(cells_b[6]), rel=1e-6)


def test_stored_jobs_of_the_default_names_still_run(demo_root: Path, tmp_path: Path) -> None:
    """A job stored before (three demo polygons) runs to DONE with a row per polygon and date."""
    jobs = tmp_path / "jobs"
    _, job_id = stored_job(jobs, demo_root, names=NAMES)
    status = wait_until_finished(make_app(demo_root, jobs).test_client(), job_id)
    assert status["status"] == "DONE" and status["polygons"] == 3
