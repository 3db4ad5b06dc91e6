"""Batch jobs kept on disk: one folder per job, run by exactly one process, resumed after a restart.

A job folder ``<root>/<id>/`` (``id``: 32 lower-case hex digits) holds

* ``job.json``: ``id``, ``status`` (:data:`STATUSES`), ``progress`` ``{"done", "total"}`` in tasks
  (``total`` None until planned), ``created`` / ``updated`` (ISO-8601 UTC), ``polygons``, ``rows``,
  ``error`` (a message without paths or tracebacks), ``request`` ``{"crs", "time": {"from", "to"},
  "options"}`` and the ``archive`` it was submitted against;
* ``polygons.geojson``: the polygons as a FeatureCollection, each feature's ``properties`` holding its
  ``id`` and ``crs``;
* ``result.parquet`` and ``result.csv`` once the job is DONE (and ``result.parquet.parts/`` while it runs:
  the finished tasks, which a resumed run skips, see :func:`stats.batch.runner.run_batch`);
* ``lock`` while a process runs the job.

Every file is written to a temporary name and moved into place (``os.replace``), and a new job's folder
appears complete (it is built under a hidden name and renamed), so readers in other processes never see
half a file. A process claims a job by creating ``lock`` with ``O_CREAT | O_EXCL`` and writing its pid,
host and a token into it; only the claimant writes ``job.json`` after creation. A lock whose pid no longer
runs on this host is stale: a process of the same host takes it over (under an ``flock`` on
``lock.takeover``, so that two processes never both take over the same stale lock). Locks of other hosts
are never taken over.

:class:`JobRunner` is the per-process background thread that claims pending jobs (CREATED, or PROCESSING
with a stale lock) and runs them one at a time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..archive.catalog import Archive
from ..errors import InvalidRequestError, StatsError
from ..geometry import DEFAULT_MAX_VERTICES
from ..request import Area, Limits, TimeRange
from .inputs import BatchPolygon
from .output import write_table
from .runner import batch_options, run_batch

log = logging.getLogger(__name__)

#: Job statuses, in the order a job goes through them (FAILED instead of DONE when it raised).
STATUSES = ("CREATED", "PROCESSING", "DONE", "FAILED")
#: Statuses of a job that still has to run.
PENDING = ("CREATED", "PROCESSING")
#: Result file of each download format.
RESULT_FILES = {"csv": "result.csv", "parquet": "result.parquet"}
#: Most polygons of one batch job, unless the caller sets another limit.
DEFAULT_MAX_POLYGONS = 100_000
#: Fields of a batch job request body.
REQUEST_FIELDS = frozenset({"polygons", "crs", "time", "options"})
#: A lock file that cannot be read is taken for stale once older than this (its writer died mid-write).
UNREADABLE_LOCK_S = 60.0

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
_INT64 = (-(2**63), 2**63 - 1)


def is_job_id(value: str) -> bool:
    """Whether ``value`` has the shape of a job id (so it can be used as a folder name)."""
    return bool(_JOB_ID.match(value))


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------------
# Request
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchJobRequest:
    """A validated batch job: polygons (GeoJSON features with ``properties.id`` and ``properties.crs``),
    the time range as given (``start``, ``end``) and the time-series ``options`` of every polygon."""

    features: tuple[dict[str, Any], ...]
    start: str
    end: str
    crs: str = "EPSG:4326"
    options: Mapping[str, Any] | None = None

    @classmethod
    def from_dict(cls, body: Any, *, max_polygons: int = DEFAULT_MAX_POLYGONS,
                  max_vertices: int = DEFAULT_MAX_VERTICES, limits: Limits | None = None) -> BatchJobRequest:
        """Parse and validate a request body ``{"polygons": FeatureCollection, "crs", "time", "options"}``.

        Each feature's id is ``properties.id``, else the feature's ``id`` member, else its position
        (0-based); ids must be strings or integers and unique. Geometries must be Polygon or MultiPolygon
        in ``crs`` (x/lon first; default the FeatureCollection's ``crs`` member, else EPSG:4326).
        ``options`` are time-series request fields but ``geometry``, ``time`` and ``crs``.

        :raises InvalidRequestError: naming the field, what was received and what was expected.
        """
        if not isinstance(body, dict):
            raise InvalidRequestError("request body: expected a JSON object with 'polygons', 'time' and "
                                      f"'options', got {type(body).__name__}")
        unknown = sorted(set(body) - REQUEST_FIELDS)
        if unknown:
            raise InvalidRequestError(
                f"request body: unknown fields {unknown}; expected fields among {sorted(REQUEST_FIELDS)}")
        collection = body.get("polygons")
        features = _features(collection, max_polygons)
        crs = body.get("crs", _collection_crs(collection))
        if not isinstance(crs, str):
            raise InvalidRequestError(f"crs: expected a string such as 'EPSG:4326', got {crs!r:.80}")
        if "time" not in body:
            raise InvalidRequestError("time: missing; expected {'from': '2023-01-01', 'to': '2023-12-31'}")
        time_range, start, end = _time_strings(body["time"])
        options = body.get("options")
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise InvalidRequestError(f"options: expected an object of time-series fields (bands, indices, statistics, "
                                      f"cloud, ...), got {type(options).__name__}")
        batch_options(options)
        (limits or Limits()).check_range(time_range)
        parsed = tuple(_feature(i, feature, crs, max_vertices) for i, feature in enumerate(features))
        seen: dict[str, int] = {}
        for i, feature in enumerate(parsed):
            key = str(feature["properties"]["id"])
            if key in seen:
                raise InvalidRequestError(
                    f"polygons.features[{i}]: id {feature['properties']['id']!r} is also the id of "
                    f"features[{seen[key]}]; expected unique ids")
            seen[key] = i
        return cls(parsed, start, end, crs, dict(options))

    def to_json(self) -> dict[str, Any]:
        """The request as stored in ``job.json`` (without the polygons)."""
        return {"crs": self.crs, "time": {"from": self.start, "to": self.end}, "options": dict(self.options or {})}

    def collection(self) -> dict[str, Any]:
        """The polygons as a GeoJSON FeatureCollection."""
        return {"type": "FeatureCollection", "features": list(self.features)}


def _features(collection: Any, max_polygons: int) -> list[Any]:
    expected = "expected a GeoJSON FeatureCollection of Polygon/MultiPolygon features"
    if collection is None:
        raise InvalidRequestError(f"polygons: missing; {expected}")
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        got = f"a {collection.get('type')!r} object" if isinstance(collection, dict) else type(collection).__name__
        raise InvalidRequestError(f"polygons: got {got:.80}; {expected}")
    features = collection.get("features")
    if not isinstance(features, list):
        raise InvalidRequestError(f"polygons.features: got {type(features).__name__}; expected a list of Features")
    if not features:
        raise InvalidRequestError("polygons.features: the list is empty; expected at least one Polygon feature")
    if len(features) > max_polygons:
        raise InvalidRequestError(f"polygons: {len(features)} features is more than the limit of {max_polygons} "
                                  "per batch; split the batch")
    return features


def _collection_crs(collection: Any) -> str:
    """The FeatureCollection's (GeoJSON 2008) ``crs`` member name, else EPSG:4326."""
    member = collection.get("crs") if isinstance(collection, dict) else None
    if member is None:
        return "EPSG:4326"
    name = member.get("properties", {}).get("name") if isinstance(member, dict) else None
    if not isinstance(name, str) or not isinstance(member.get("properties"), dict):
        raise InvalidRequestError(f"polygons.crs: got {member!r:.80}; expected "
                                  "{'type': 'name', 'properties': {'name': 'EPSG:32633'}} or the body's 'crs'")
    return name


def _time_strings(value: Any) -> tuple[TimeRange, str, str]:
    """The parsed range and its two ends as given, from ``{"from", "to"}`` or ``"from/to"``."""
    time_range = TimeRange.parse(value)
    if isinstance(value, str):
        start, _, end = value.partition("/")
        return time_range, start, end
    return time_range, value["from"], value["to"]


def _feature(i: int, feature: Any, crs: str, max_vertices: int) -> dict[str, Any]:
    """One validated feature: ``{"type": "Feature", "properties": {"id", "crs"}, "geometry"}``."""
    where = f"polygons.features[{i}]"
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        got = f"a {feature.get('type')!r} object" if isinstance(feature, dict) else type(feature).__name__
        raise InvalidRequestError(f"{where}: got {got:.80}; expected a GeoJSON Feature")
    properties = feature.get("properties")
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise InvalidRequestError(f"{where}.properties: got {type(properties).__name__}; expected an object or null")
    pid: Any = properties.get("id")
    field = "properties.id"
    if pid is None:
        pid, field = feature.get("id"), "id"
    if pid is None:
        pid = i
    if isinstance(pid, bool) or not isinstance(pid, (str, int)) or (
            isinstance(pid, int) and not _INT64[0] <= pid <= _INT64[1]):
        raise InvalidRequestError(f"{where}.{field}: got {pid!r:.80}; expected a string or a 64-bit integer")
    geometry = feature.get("geometry")
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    if kind not in ("Polygon", "MultiPolygon"):
        got = f"type {kind!r}" if isinstance(geometry, dict) else repr(geometry)
        raise InvalidRequestError(f"{where}.geometry: got {got:.80}; expected a GeoJSON Polygon or MultiPolygon")
    try:
        area = Area.parse(geometry, crs, max_vertices=max_vertices)
    except InvalidRequestError as exc:
        raise InvalidRequestError(f"{where} (id {pid!r:.40}): {exc}") from exc
    return {"type": "Feature", "properties": {"id": pid, "crs": area.crs_name}, "geometry": geometry}


def batch_polygons(collection: Mapping[str, Any]) -> list[BatchPolygon]:
    """The :class:`BatchPolygon` list of a stored ``polygons.geojson``."""
    from shapely.geometry import shape

    return [BatchPolygon(f["properties"]["id"], shape(f["geometry"]), f["properties"]["crs"])
            for f in collection["features"]]


# --------------------------------------------------------------------------------------------------
# Store
# --------------------------------------------------------------------------------------------------

def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


class JobStore:
    """Batch jobs in folders under ``root`` (created on the first job)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.host = socket.gethostname()
        self._token = uuid.uuid4().hex  # tells this store's locks from those of other stores of this process

    # ---- records ------------------------------------------------------------------------------

    def folder(self, job_id: str) -> Path:
        """The job's folder (whether or not it exists).

        :raises InvalidRequestError: when ``job_id`` is not a job id.
        """
        if not is_job_id(job_id):
            raise InvalidRequestError(f"job id: got {job_id!r:.80}; expected 32 hexadecimal digits")
        return self.root / job_id

    def create(self, request: BatchJobRequest, archive_href: str) -> dict[str, Any]:
        """Write a new CREATED job and return its record."""
        job_id = uuid.uuid4().hex
        now = _now()
        record = {"id": job_id, "status": "CREATED", "progress": {"done": 0, "total": None}, "created": now,
                  "updated": now, "polygons": len(request.features), "rows": None, "error": None,
                  "request": request.to_json(), "archive": archive_href}
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".{job_id}.partial"
        staging.mkdir()
        try:
            (staging / "polygons.geojson").write_text(json.dumps(request.collection()), encoding="utf-8")
            (staging / "job.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
            os.replace(staging, self.root / job_id)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return record

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job's record, or None when there is no such job (or ``job_id`` is malformed)."""
        if not is_job_id(job_id):
            return None
        try:
            record: dict[str, Any] = json.loads((self.root / job_id / "job.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record

    def update(self, job_id: str, **changes: Any) -> dict[str, Any]:
        """Change fields of the record (and ``updated``); only the process holding the job calls this."""
        record = self.get(job_id)
        if record is None:
            raise InvalidRequestError(f"job {job_id}: no such job")
        record.update(changes, updated=_now())
        _write_atomic(self.folder(job_id) / "job.json", json.dumps(record, indent=1))
        return record

    def result_path(self, job_id: str, fmt: str) -> Path:
        """Where the job's result in ``fmt`` (``csv`` or ``parquet``) is."""
        return self.folder(job_id) / RESULT_FILES[fmt]

    def pending(self) -> list[str]:
        """Ids of the jobs still to run (CREATED or PROCESSING), oldest first."""
        try:
            names = [e.name for e in os.scandir(self.root) if e.is_dir() and is_job_id(e.name)]
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.error("cannot list the batch jobs folder: %s", exc)
            return []
        records = [r for r in map(self.get, names) if r is not None and r.get("status") in PENDING]
        return [r["id"] for r in sorted(records, key=lambda r: (r.get("created", ""), r["id"]))]

    # ---- locks --------------------------------------------------------------------------------

    def claim(self, job_id: str) -> bool:
        """Try to become the one process running the job: True when this store now holds its lock."""
        lock = self.folder(job_id) / "lock"
        if self._create_lock(lock):
            return True
        with self._takeover_mutex(job_id):
            owner = self._read_lock(lock)
            if owner is None and not lock.exists():
                return self._create_lock(lock)  # released meanwhile
            if not self._stale(owner, lock):
                return False
            log.warning("job %s: taking over the lock of %s, which no longer runs", job_id,
                        f"pid {owner['pid']} on {owner['host']}" if owner else "an unreadable lock")
            lock.unlink(missing_ok=True)
            return self._create_lock(lock)

    def release(self, job_id: str) -> None:
        """Give the job up (only when this store holds it)."""
        lock = self.folder(job_id) / "lock"
        owner = self._read_lock(lock)
        if owner is not None and owner.get("token") == self._token:
            lock.unlink(missing_ok=True)

    def lock_owner(self, job_id: str) -> dict[str, Any] | None:
        """``{"pid", "host", "token", "since"}`` of the process holding the job, or None."""
        return self._read_lock(self.folder(job_id) / "lock")

    def _create_lock(self, lock: Path) -> bool:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except (FileExistsError, FileNotFoundError):
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"pid": os.getpid(), "host": self.host, "token": self._token, "since": _now()}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        return True

    @staticmethod
    def _read_lock(lock: Path) -> dict[str, Any] | None:
        try:
            owner = json.loads(lock.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return owner if isinstance(owner, dict) else None

    def _stale(self, owner: dict[str, Any] | None, lock: Path) -> bool:
        if owner is None:  # empty or garbled: its writer died between creating and writing it, or is writing now
            try:
                return time.time() - lock.stat().st_mtime > UNREADABLE_LOCK_S
            except FileNotFoundError:
                return False
        pid = owner.get("pid")
        return owner.get("host") == self.host and isinstance(pid, int) and not _pid_alive(pid)

    @contextlib.contextmanager
    def _takeover_mutex(self, job_id: str) -> Iterator[None]:
        """An exclusive ``flock`` of this host's processes on the job's ``lock.takeover`` file."""
        fd = os.open(self.folder(job_id) / "lock.takeover", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    # ---- running ------------------------------------------------------------------------------

    def run(self, job_id: str, archive: Archive, *, workers: int = 0, scheduler: str | None = None,
            min_interval: float = 0.5) -> dict[str, Any]:
        """Run a job this store has claimed: PROCESSING, then DONE with ``rows`` or FAILED with ``error``.

        Progress (tasks done / total) goes to ``job.json`` at most every ``min_interval`` seconds. The
        batch runs with :func:`stats.batch.run_batch` (``workers``/``scheduler`` as there; 0 workers and no
        scheduler: in this process) to ``result.parquet``, then ``result.csv`` is written from it.
        """
        record = self.update(job_id, status="PROCESSING", error=None)
        folder = self.folder(job_id)
        if record.get("archive") != archive.href:
            return self.update(job_id, status="FAILED", error=(
                "the server serves another archive than when this job was submitted; submit the job again"))
        request = record["request"]
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if done < total and now - last[0] < min_interval:
                return
            last[0] = now
            self.update(job_id, progress={"done": done, "total": total})

        try:
            polygons = batch_polygons(json.loads((folder / "polygons.geojson").read_text(encoding="utf-8")))
            parquet = self.result_path(job_id, "parquet")
            summary = run_batch(archive, polygons, request["time"]["from"], request["time"]["to"], parquet,
                                options=request["options"], scheduler=scheduler, workers=workers, progress=progress)
            import pyarrow.parquet as pq

            write_table(pq.read_table(parquet), self.result_path(job_id, "csv"))
        except Exception as exc:  # the job fails, the runner goes on
            log.error("batch job %s failed: %s", job_id, exc, exc_info=exc)
            return self.update(job_id, status="FAILED", error=_failure_message(exc, folder, archive))
        return self.update(job_id, status="DONE", rows=summary.rows,
                           progress={"done": summary.tasks, "total": summary.tasks})


def _failure_message(exc: Exception, folder: Path, archive: Archive) -> str:
    """What a client may read about a failure: the engine's message for bad input (paths removed), else
    only the kind of error."""
    if isinstance(exc, InvalidRequestError):
        message = str(exc)
        for secret in (str(folder), str(folder.parent), archive.href or ""):
            if secret:
                message = message.replace(secret, "…")
        return message
    kind = "reading the archive" if isinstance(exc, StatsError) else "running the batch"
    return f"internal error {kind} ({type(exc).__name__}); the server log has the details"


# --------------------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------------------

class JobRunner:
    """A daemon thread of this process that claims pending jobs of ``store`` and runs them one at a time.

    The thread starts on :meth:`wake` (after a job is created) or :meth:`resume` (at start-up, when the
    folder holds pending jobs: CREATED, or PROCESSING left by a process that died). Idle, it looks for
    claimable jobs again every ``poll_s`` seconds (jobs of crashed processes of this host).
    """

    def __init__(self, store: JobStore, archive: Callable[[], Archive], *, workers: int = 0,
                 scheduler: str | None = None, poll_s: float = 10.0) -> None:
        self.store = store
        self.archive = archive
        self.workers = workers
        self.scheduler = scheduler
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._resumed = False

    def wake(self) -> None:
        """Start the thread if needed and have it look for jobs now."""
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="polyfis-batch-runner", daemon=True)
                self._thread.start()
        self._wake.set()

    def resume(self) -> bool:
        """Once per runner: start the thread when jobs are pending. True when it did."""
        if self._resumed:
            return False
        self._resumed = True
        if self.store.pending():
            log.info("resuming pending batch jobs in %s", self.store.root)
            self.wake()
            return True
        return False

    def run_pending(self) -> int:
        """Claim and run every pending job that no live process holds; the number run."""
        count = 0
        for job_id in self.store.pending():
            if not self.store.claim(job_id):
                continue
            try:
                record = self.store.get(job_id)
                if record is None or record.get("status") not in PENDING:
                    continue  # finished by another process between the scan and the claim
                self.store.run(job_id, self.archive(), workers=self.workers, scheduler=self.scheduler)
                count += 1
            finally:
                self.store.release(job_id)
        return count

    def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                ran = self.run_pending()
            except Exception:  # a broken folder or archive must not end the thread
                log.exception("batch runner: cannot run the pending jobs")
                ran = 0
            if not ran:
                self._wake.wait(self.poll_s)
