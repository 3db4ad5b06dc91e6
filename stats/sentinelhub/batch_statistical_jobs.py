"""Batch Statistical jobs: Sentinel Hub's statuses and user actions on the batch jobs store and runner.

A job goes ``CREATED`` → (``analyse`` or ``start``) ``ANALYSING`` → ``ANALYSIS_DONE`` → (``start``)
``PROCESSING`` → ``DONE``, or ``FAILED`` with an ``error``; ``stop`` (also ``cancel``, its older name) makes it
``STOPPED`` (``stoppedStatusReason`` ``USER_ACTION``), and ``start`` on a stopped job resumes it. Analysis reads
the GeoPackage (kept in the job's folder as ``features.json``) and checks the request over its first polygon;
processing writes each feature's output (:mod:`.batch_statistical`) and lists the features written in ``done``, so
that a resumed job (after ``stop`` and ``start``, or a restart of the server) skips them.

Jobs live in ``<POLYFIS_JOBS_DIR>/statistical/``, one folder per job, in :class:`StatisticalJobStore`, a
:class:`stats.batch.jobs.JobStore` (its atomic writes, its locks of one process per job, its quarantine of a
malformed ``job.json``), and run on a :class:`stats.batch.jobs.JobRunner` thread of each server process. Only the
process holding a job's lock writes its ``job.json``: a user action is written to the job's ``action.json`` and
taken in by whoever holds, or can take, the lock: the route itself when the job is idle, else the runner between
two features.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

from ..archive.catalog import Archive
from ..batch.jobs import JobStore, is_job_id
from ..batch.jobs.records import now_iso
from ..errors import ConflictError, InvalidRequestError, NotFoundError, StatsError, StorageError
from ..request import Limits
from .batch_statistical import (
    BatchStatisticalRequest,
    Feature,
    check_with_feature,
    feature_output,
    output_location,
    read_features,
)
from .storage import download, write

log = logging.getLogger(__name__)

#: Sentinel Hub's statuses of a batch statistical request.
STATUSES = ("CREATED", "ANALYSING", "ANALYSIS_DONE", "PROCESSING", "DONE", "FAILED", "STOPPED")
#: Statuses in which a job runs on a runner thread.
RUNNING = ("ANALYSING", "PROCESSING")
#: User actions, by route name (``cancel`` is the older name of ``stop``).
ACTIONS = {"analyse": "ANALYSE", "start": "START", "stop": "STOP", "cancel": "STOP"}
#: Statuses each user action applies to (others: 409).
ALLOWED = {"ANALYSE": ("CREATED",), "START": ("CREATED", "ANALYSING", "ANALYSIS_DONE", "STOPPED", "PROCESSING"),
           "STOP": ("CREATED", "ANALYSING", "ANALYSIS_DONE", "PROCESSING")}
#: Fields of a job record.
RECORD_FIELDS = frozenset({"id", "kind", "status", "created", "updated", "archive", "request", "userAction",
                           "userActionUpdated", "progress", "error", "stoppedStatusReason", "analysed"})
KIND = "batch-statistical"
ACTION_FILE = "action.json"
FEATURES_FILE = "features.json"
DONE_FILE = "done"


class StatisticalJobStore(JobStore):
    """Batch Statistical jobs in folders under ``root``; ``files_root`` is the server's local folder for inputs and
    outputs (None: S3 only), ``server_buckets`` the buckets the server's own S3 credentials serve, and
    ``max_features`` the most features of one GeoPackage."""

    def __init__(self, root: str | os.PathLike[str], *, files_root: Path | None = None,
                 server_buckets: frozenset[str] = frozenset(), max_features: int = 100_000) -> None:
        super().__init__(root)
        self.files_root = files_root
        self.server_buckets = server_buckets
        self.max_features = max_features

    # ---- records ------------------------------------------------------------------------------

    def record_problem(self, record: Any, job_id: str) -> str | None:
        """What makes ``record`` no Batch Statistical job record of ``job_id``, or None (quarantined records, written
        by the store, are records too)."""
        if isinstance(record, dict) and record.get("quarantined") is True:
            return super().record_problem(record, job_id)
        if not isinstance(record, dict):
            return "it is not a JSON object"
        missing = sorted(RECORD_FIELDS - set(record))
        if missing:
            return f"it lacks the fields {missing}"
        if record["id"] != job_id or record["kind"] != KIND:
            return "its 'id' or 'kind' is not that of the job's folder"
        if record["status"] not in STATUSES or not isinstance(record["request"], dict):
            return "its 'status' or 'request' is malformed"
        progress = record["progress"]
        if not isinstance(progress, dict) or not isinstance(progress.get("done"), int):
            return "its 'progress' is malformed"
        return None

    def is_pending(self, record: dict[str, Any]) -> bool:
        """Whether a runner has something to do: the job is ANALYSING or PROCESSING, or a user action waits."""
        if record.get("quarantined"):
            return False
        return record["status"] in RUNNING or (self.folder(record["id"]) / ACTION_FILE).is_file()

    def submit(self, request: BatchStatisticalRequest, archive_href: str) -> dict[str, Any]:
        """Write a new CREATED job and return its record."""
        job_id = uuid.uuid4().hex
        now = now_iso()
        record = {"id": job_id, "kind": KIND, "status": "CREATED", "created": now, "updated": now,
                  "archive": archive_href, "request": dict(request.body), "userAction": "NONE",
                  "userActionUpdated": None, "progress": {"done": 0, "total": None}, "error": None,
                  "stoppedStatusReason": None, "analysed": False}
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".{job_id}.partial"
        staging.mkdir()
        (staging / "job.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        os.replace(staging, self.root / job_id)
        return record

    def user_action(self, record: dict[str, Any]) -> str:
        """The job's last user action: one waiting to be taken in, else the record's."""
        waiting = self._read_action(self.folder(record["id"]) / ACTION_FILE)
        return waiting or record.get("userAction") or "NONE"

    @staticmethod
    def _read_action(path: Path) -> str | None:
        try:
            action = json.loads(path.read_text(encoding="utf-8")).get("action")
        except (OSError, ValueError, AttributeError):
            return None
        return action if action in ALLOWED else None

    def request_action(self, job_id: str, name: str) -> dict[str, Any]:
        """Ask for a user action (``analyse``, ``start``, ``stop``, ``cancel``) on a job: taken in now when no
        process runs the job, else by its runner before the next feature. The record as it then is.

        :raises NotFoundError: when there is no such job.
        :raises ConflictError: when the job's status does not allow the action.
        """
        action = ACTIONS[name]
        record = self.get(job_id)
        if record is None:
            raise NotFoundError(f"batch statistical request {job_id!r:.80} not found")
        status = record["status"]
        if record.get("quarantined") or status not in ALLOWED[action] or (
                action == "ANALYSE" and self.user_action(record) == "START"):
            raise ConflictError(f"batch statistical request {job_id}: cannot {name} it, its status is {status}"
                                f"{' (it is starting)' if status in ALLOWED[action] else ''}; {name} applies to "
                                f"{', '.join(ALLOWED[action])}")
        path = self.folder(job_id) / ACTION_FILE
        tmp = path.with_name(f".{ACTION_FILE}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps({"action": action, "at": now_iso()}), encoding="utf-8")
        os.replace(tmp, path)
        if self.claim(job_id):
            try:
                record = self._take_action(job_id)
            finally:
                self.release(job_id)
        return record

    def _take_action(self, job_id: str) -> dict[str, Any]:
        """Apply the waiting user action, if any, to the record (only while holding the job's lock)."""
        path = self.folder(job_id) / ACTION_FILE
        taken = path.with_name(f"{ACTION_FILE}.{uuid.uuid4().hex}.taken")
        try:
            os.replace(path, taken)  # a new action written meanwhile waits in a new action.json
        except FileNotFoundError:
            record = self.get(job_id)
            if record is None:
                raise NotFoundError(f"batch statistical request {job_id} not found") from None
            return record
        action = self._read_action(taken)
        taken.unlink(missing_ok=True)
        record = self.get(job_id)
        if record is None:
            raise NotFoundError(f"batch statistical request {job_id} not found")
        status = record["status"]
        if action is None or status not in ALLOWED[action] or record.get("quarantined"):
            log.info("batch statistical request %s: %s not applied in status %s", job_id, action, status)
            return record
        changes: dict[str, Any] = {"userAction": action, "userActionUpdated": now_iso()}
        if action == "STOP":
            changes.update(status="STOPPED", stoppedStatusReason="USER_ACTION")
        elif action == "ANALYSE" or status in ("CREATED",) or (status == "STOPPED" and not record["analysed"]):
            changes.update(status="ANALYSING", stoppedStatusReason=None)
        elif status in ("ANALYSIS_DONE", "STOPPED"):
            changes.update(status="PROCESSING", stoppedStatusReason=None)
        return self.update(job_id, **changes)

    # ---- running ------------------------------------------------------------------------------

    def run(self, job_id: str, archive: Archive, *, workers: int = 0, scheduler: str | None = None,
            limits: Limits | None = None, min_interval: float = 0.5) -> dict[str, Any]:
        """Run a job this store has claimed: take in its waiting action, analyse it when ANALYSING, process it when
        PROCESSING, until it is DONE, FAILED, STOPPED or waits for ``start`` (ANALYSIS_DONE). ``workers`` and
        ``scheduler`` are not used: features are computed one after the other in this thread."""
        record = self._take_action(job_id)
        if record.get("quarantined") or record.get("archive") != (archive.href or ""):
            log.warning("batch statistical request %s: not run here (another archive's, or set aside)", job_id)
            return record
        try:
            request = BatchStatisticalRequest.from_dict(record["request"], root=self.files_root,
                                                        buckets=self.server_buckets, limits=limits)
            while record["status"] in RUNNING and not self.stopping.is_set():
                if record["status"] == "ANALYSING":
                    record = self._analyse(job_id, request, limits)
                else:
                    record = self._process(job_id, request, archive, limits, min_interval)
        except Exception as exc:
            if self.stopping.is_set():
                return self._left_to_resume(job_id, exc, record)
            return self._failed_request(job_id, exc)
        return record

    def _failed_request(self, job_id: str, exc: Exception) -> dict[str, Any]:
        """FAILED, with the message of a bad request or storage, else only the kind of error."""
        if isinstance(exc, (InvalidRequestError, StorageError)):
            log.warning("batch statistical request %s failed: %s", job_id, exc)
            return self.update(job_id, status="FAILED", error=str(exc))
        log.error("batch statistical request %s failed: %s", job_id, exc, exc_info=exc)  # the runner goes on
        kind = "reading the archive" if isinstance(exc, StatsError) else "running the request"
        return self.update(job_id, status="FAILED", error=f"internal error {kind}; the server log has the details")

    def _analyse(self, job_id: str, request: BatchStatisticalRequest, limits: Limits | None) -> dict[str, Any]:
        """Read the GeoPackage, check the request over its first polygon and keep the features; then ANALYSIS_DONE,
        or PROCESSING when the user asked to start."""
        folder = self.folder(job_id)
        gpkg = folder / "features.gpkg"
        download(request.features, gpkg)
        crs, features = read_features(gpkg, request.features.given, self.max_features)
        check_with_feature(request, crs, features, limits)
        text = json.dumps({"crs": crs, "features": [f.to_json() for f in features]})
        tmp = folder / f".{FEATURES_FILE}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, folder / FEATURES_FILE)
        gpkg.unlink(missing_ok=True)
        record = self._take_action(job_id)
        if record["status"] != "ANALYSING":  # stopped meanwhile
            return self.update(job_id, analysed=True, progress={"done": 0, "total": len(features)})
        status = "PROCESSING" if record["userAction"] == "START" else "ANALYSIS_DONE"
        return self.update(job_id, status=status, analysed=True, progress={"done": 0, "total": len(features)})

    def _process(self, job_id: str, request: BatchStatisticalRequest, archive: Archive, limits: Limits | None,
                 min_interval: float) -> dict[str, Any]:
        """Compute and write every feature not written yet, taking in user actions between features; then DONE."""
        folder = self.folder(job_id)
        try:
            kept = json.loads((folder / FEATURES_FILE).read_text(encoding="utf-8"))
            crs, features = kept["crs"], [Feature.from_json(f) for f in kept["features"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidRequestError("the request's analysed features are missing on this server; submit the "
                                      "request again") from exc
        done = self._done(folder)
        total = len(features)
        last = 0.0
        record = self.update(job_id, progress={"done": len(done & {f.id for f in features}), "total": total})
        with (folder / DONE_FILE).open("a", encoding="utf-8") as log_file:
            for feature in features:
                if feature.id in done:
                    continue
                if self.stopping.is_set():  # this process is stopping: the next server goes on from here
                    return self.update(job_id, progress={"done": len(done), "total": total})
                if (folder / ACTION_FILE).is_file():
                    record = self._take_action(job_id)
                    if record["status"] != "PROCESSING":
                        return record
                document = feature_output(request, crs, feature, archive, limits)
                target = output_location(request, job_id, feature.id, feature.identifier)
                write(target, json.dumps(document).encode("utf-8"))
                log_file.write(f"{feature.id}\n")
                log_file.flush()
                done.add(feature.id)
                if time.monotonic() - last >= min_interval:
                    last = time.monotonic()
                    record = self.update(job_id, progress={"done": len(done), "total": total})
        return self.update(job_id, status="DONE", progress={"done": total, "total": total})

    @staticmethod
    def _done(folder: Path) -> set[int]:
        """Ids of the features whose output is written (the ``done`` list; a torn last line is ignored)."""
        try:
            lines = (folder / DONE_FILE).read_text(encoding="utf-8").split("\n")[:-1]  # the last one is unfinished
        except FileNotFoundError:
            return set()
        return {int(line) for line in lines if line.strip().lstrip("-").isdigit()}


def completion(record: dict[str, Any]) -> float:
    """The job's ``completionPercentage``: features written of all, in percent (100 once DONE)."""
    if record.get("status") == "DONE":
        return 100.0
    progress = record.get("progress") or {}
    total = progress.get("total")
    return round(100.0 * progress.get("done", 0) / total, 2) if total else 0.0


__all__ = ["ACTIONS", "STATUSES", "StatisticalJobStore", "completion", "is_job_id"]
