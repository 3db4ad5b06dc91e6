"""The store of batch jobs: one folder per job, run by exactly one process, resumed after a restart.

A job folder ``<root>/<id>/`` (``id``: 32 lower-case hex digits) holds

* ``job.json``: ``id``, ``status`` (:data:`STATUSES`), ``progress`` ``{"done", "total"}`` in tasks
  (``total`` None until planned), ``created`` / ``updated`` (ISO-8601 UTC), ``polygons``, ``rows``,
  ``error`` (a message without paths or tracebacks), ``request`` ``{"crs", "time": {"from", "to"},
  "options"}`` and the ``archive`` it was submitted against;
* ``polygons.geojson``: the polygons as a FeatureCollection, each feature's ``properties`` holding its
  ``id`` and ``crs``;
* ``result.parquet`` and ``result.csv`` once the job is DONE (and ``result.parquet.parts/`` while it runs:
  the finished tasks, which a resumed run skips, see :func:`stats.batch.runner.run_batch`);
* ``lock`` while a process runs the job;
* ``job.json.quarantined`` when ``job.json`` was found malformed: its bytes, set aside, while ``job.json``
  became a FAILED record saying why (:mod:`.records`); such a job is shown to every server and never run.

Jobs are tied to the archive they were submitted against (``archive``, the archive's resolved href):
:meth:`JobStore.records` and :meth:`JobStore.pending` given an archive keep only its jobs, and
:meth:`JobStore.run` leaves a job of another archive untouched, so that servers of different archives
sharing one jobs folder neither run nor fail each other's jobs.

Every file is written to a temporary name and moved into place (``os.replace``), and a new job's folder
appears complete (it is built under a hidden name and renamed), so readers in other processes never see
half a file. A process claims a job by creating ``lock`` with ``O_CREAT | O_EXCL`` and writing its pid,
host and a token into it; only the claimant writes ``job.json`` after creation. A lock whose pid no longer
runs on this host is stale: a process of the same host takes it over (under an ``flock`` on
``lock.takeover``, so that two processes never both take over the same stale lock). Locks of other hosts
are never taken over.

The per-process background thread that claims pending jobs is :class:`stats.batch.jobs.runner.JobRunner`.
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...archive.catalog import Archive
from ...errors import ConflictError, InvalidRequestError, JobInterruptedError, StatsError
from ...request import Limits
from ...results import TABLES
from ..inputs import BatchPolygon
from ..output import EXTENT_LAYER, companion_path, extent_to_csv, write_table
from ..runner import run_batch
from .records import PENDING, QUARANTINE_FILE, STATUSES, iso, now_iso, quarantined_record, record_problem
from .request import BatchJobRequest, batch_polygons

log = logging.getLogger(__name__)

__all__ = ["PENDING", "RESULT_FILES", "STATUSES", "JobStore", "is_job_id"]

#: Result file of each download format.
RESULT_FILES = {"csv": "result.csv", "parquet": "result.parquet"}
#: A lock file that cannot be read is taken for stale once older than this (its writer died mid-write).
UNREADABLE_LOCK_S = 60.0

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def is_job_id(value: str) -> bool:
    """Whether ``value`` has the shape of a job id (so it can be used as a folder name)."""
    return bool(_JOB_ID.match(value))


def _write_atomic(path: Path, text: str | None, *, source: Path | None = None) -> None:
    """Write ``text`` (or a copy of the file ``source``) to ``path`` under a temporary name, then move it there."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    if source is not None:
        shutil.copyfile(source, tmp)
    else:
        tmp.write_text(text or "", encoding="utf-8")
    os.replace(tmp, path)


def _free_name(path: Path) -> Path:
    """``path``, or ``path.1``, ``path.2``... : the first that does not exist (earlier quarantined files are kept)."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


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
        #: set when this process stops (:meth:`JobRunner.stop`): a running job stops where it is and stays
        #: PROCESSING, for the next process to resume; whatever its interrupted work raises does not fail it
        self.stopping = threading.Event()

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
        now = now_iso()
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
        """The job's record, or None when there is no such job (or ``job_id`` is malformed).

        A job folder whose ``job.json`` is missing, unreadable or not a job record is quarantined (see
        :mod:`.records`): the answer is then its FAILED record saying why, and every other job goes on.
        """
        if not is_job_id(job_id):
            return None
        record, problem = self._read(job_id)
        if problem is None:
            return record
        if not (self.root / job_id).is_dir():
            return None
        return self._quarantine(job_id, problem)

    def _read(self, job_id: str) -> tuple[dict[str, Any], None] | tuple[None, str]:
        """The record of ``job.json``, or what is wrong with it."""
        try:
            data = (self.root / job_id / "job.json").read_bytes()
        except FileNotFoundError:
            return None, "the file is missing"
        except OSError:
            return None, "the file cannot be read"
        try:
            record = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            return None, "it is not UTF-8 text"
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            return None, "it is not valid JSON"
        problem = self.record_problem(record, job_id)
        return (record, None) if problem is None else (None, problem)

    def record_problem(self, record: Any, job_id: str) -> str | None:
        """What makes ``record`` (parsed ``job.json``) no record of job ``job_id`` of this store, or None
        (:func:`.records.record_problem`; a store of other jobs checks its own records)."""
        return record_problem(record, job_id)

    def is_pending(self, record: dict[str, Any]) -> bool:
        """Whether the job of ``record`` still has to run (CREATED or PROCESSING)."""
        return record["status"] in PENDING

    def _quarantine(self, job_id: str, problem: str) -> dict[str, Any]:
        """Set a malformed ``job.json`` aside (its bytes kept in :data:`QUARANTINE_FILE`) and replace it with
        a FAILED record saying why; under this host's ``flock`` of the job, so that it happens once."""
        folder = self.root / job_id
        try:
            with self._takeover_mutex(job_id):
                record, problem_now = self._read(job_id)
                if problem_now is None and record is not None:
                    return record  # quarantined (or rewritten) by another process meanwhile
                replacement = quarantined_record(job_id, problem_now or problem, self._created(folder))
                path = folder / "job.json"
                if path.is_file():
                    _write_atomic(_free_name(folder / QUARANTINE_FILE), None, source=path)
                _write_atomic(path, json.dumps(replacement, indent=1))
        except OSError as exc:  # a read-only folder: the job is FAILED in this answer only
            log.error("batch job %s: job.json is malformed (%s) and cannot be set aside: %s", job_id, problem, exc)
            return quarantined_record(job_id, problem, self._created(folder))
        log.error("batch job %s: job.json is malformed (%s); set aside as %s and the job marked FAILED", job_id,
                  problem, QUARANTINE_FILE)
        return replacement

    @staticmethod
    def _created(folder: Path) -> str:
        """When a job whose record is lost was created: its polygons file's time, else its folder's."""
        for path in (folder / "polygons.geojson", folder):
            with contextlib.suppress(OSError):
                return iso(dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC))
        return now_iso()

    def update(self, job_id: str, **changes: Any) -> dict[str, Any]:
        """Change fields of the record (and ``updated``); only the process holding the job calls this.
        A quarantined job's record is not changed (it is returned as it is)."""
        record = self.get(job_id)
        if record is None:
            raise InvalidRequestError(f"job {job_id}: no such job")
        if record.get("quarantined"):
            return record
        record.update(changes, updated=now_iso())
        _write_atomic(self.folder(job_id) / "job.json", json.dumps(record, indent=1))
        return record

    def result_path(self, job_id: str, fmt: str, table: str = "dates") -> Path:
        """Where the job's result in ``fmt`` (``csv`` or ``parquet``) is: its rows (``dates``), or one of
        its analytics tables (``intervals``, ``curves``, ``season``) or its ``water_extent`` beside them."""
        rows = self.folder(job_id) / RESULT_FILES[fmt]
        return rows if table == "dates" else companion_path(rows, table)

    def records(self, archive: str | None = None) -> list[dict[str, Any]]:
        """Every job's record, oldest first (an unreadable folder gives none); with ``archive``, only the
        jobs submitted against that archive (and the quarantined ones, whose archive is unknown)."""
        try:
            names = [e.name for e in os.scandir(self.root) if e.is_dir() and is_job_id(e.name)]
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.error("cannot list the batch jobs folder: %s", exc)
            return []
        records = [r for r in map(self.get, names) if r is not None and (
            archive is None or r.get("archive") == archive or r.get("quarantined"))]
        return sorted(records, key=lambda r: (r["created"], r["id"]))

    def pending(self, archive: str | None = None) -> list[str]:
        """Ids of the jobs still to run (CREATED or PROCESSING), oldest first; with ``archive``, only
        those submitted against that archive."""
        return [r["id"] for r in self.records(archive) if self.is_pending(r)]

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
            json.dump({"pid": os.getpid(), "host": self.host, "token": self._token, "since": now_iso()}, fh)
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

    def _polygons(self, job_id: str) -> list[BatchPolygon]:
        """The job's polygons, from its ``polygons.geojson``.

        :raises InvalidRequestError: when the file is missing or not the polygons the store wrote.
        """
        try:
            return batch_polygons(json.loads((self.folder(job_id) / "polygons.geojson").read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.error("batch job %s: polygons.geojson cannot be read: %r", job_id, exc)
            raise InvalidRequestError("the job's polygons (polygons.geojson) are missing or malformed on this "
                                      "server; submit the job again") from exc

    def run(self, job_id: str, archive: Archive, *, workers: int = 0, scheduler: str | None = None,
            limits: Limits | None = None, min_interval: float = 0.5) -> dict[str, Any]:
        """Run a job this store has claimed: PROCESSING, then DONE with ``rows`` or FAILED with ``error``.

        Progress (tasks done / total) goes to ``job.json`` at most every ``min_interval`` seconds. The
        batch runs with :func:`stats.batch.run_batch` (``workers``/``scheduler`` as there; 0 workers and no
        scheduler: in this process) to ``result.parquet`` (and its analytics tables beside it), then the CSV
        files are written from them.

        A job of another archive than ``archive`` (or quarantined, or finished) is left as it is: jobs are
        tied to the archive they were submitted against, and servers of other archives sharing the jobs
        folder leave them to a server of theirs.
        """
        record = self.get(job_id)
        if record is None:
            raise InvalidRequestError(f"job {job_id}: no such job")
        if record["status"] not in PENDING or record.get("archive") != (archive.href or ""):
            log.warning("batch job %s: not run here (%s)", job_id, record["status"] if record["status"] not in
                        PENDING else "it was submitted against another archive")
            return record
        record = self.update(job_id, status="PROCESSING", error=None)
        folder = self.folder(job_id)
        request = record["request"]
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if done < total and now - last[0] < min_interval:
                return
            last[0] = now
            if self.stopping.is_set():
                raise JobInterruptedError(f"batch job {job_id}: its process is stopping")
            if self.update(job_id, progress={"done": done, "total": total})["status"] != "PROCESSING":
                raise ConflictError(f"batch job {job_id}: set aside while it ran")  # quarantined: stop the work

        try:
            polygons = self._polygons(job_id)
            parquet = self.result_path(job_id, "parquet")
            summary = run_batch(archive, polygons, request["time"]["from"], request["time"]["to"], parquet,
                                options=request["options"], scheduler=scheduler, workers=workers, progress=progress,
                                limits=limits)
            import pyarrow.parquet as pq

            for table in TABLES:
                if self.result_path(job_id, "parquet", table).is_file():
                    write_table(pq.read_table(self.result_path(job_id, "parquet", table)),
                                self.result_path(job_id, "csv", table))
            if self.result_path(job_id, "parquet", EXTENT_LAYER).is_file():
                extent_to_csv(self.result_path(job_id, "parquet", EXTENT_LAYER),
                              self.result_path(job_id, "csv", EXTENT_LAYER))
        except Exception as exc:
            if self.stopping.is_set():
                return self._left_to_resume(job_id, exc, record)
            return self._failed(job_id, exc, folder, archive)
        return self.update(job_id, status="DONE", rows=summary.rows,
                           progress={"done": summary.tasks, "total": summary.tasks})

    def _left_to_resume(self, job_id: str, exc: Exception, record: dict[str, Any]) -> dict[str, Any]:
        """The job's record as it is, after ``exc`` cut its run short because this process is stopping: it is
        not failed, the next server to claim it resumes it."""
        log.info("batch job %s: stopped with the process (%s); the next server resumes it", job_id, type(exc).__name__)
        return self.get(job_id) or record

    def _failed(self, job_id: str, exc: Exception, folder: Path, archive: Archive) -> dict[str, Any]:
        """The job's record after ``exc`` stopped its run: as it is when the record was set aside meanwhile,
        else FAILED with a message a client may read."""
        if isinstance(exc, ConflictError):
            current = self.get(job_id)
            if current is not None and current.get("quarantined"):
                log.error("batch job %s: its record was set aside while it ran; the run stopped", job_id)
                return current
        log.error("batch job %s failed: %s", job_id, exc, exc_info=exc)  # the job fails, the runner goes on
        return self.update(job_id, status="FAILED", error=_failure_message(exc, folder, archive))


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
    return f"internal error {kind}; the server log has the details"
