"""``/api/v1/batch``: batch jobs over HTTP — submit many polygons, poll the status, download CSV or Parquet.

A job is validated up front, written to the jobs folder (``POLYFIS_JOBS_DIR``) and run in the background
by this process's runner (:class:`stats.batch.jobs.runner.JobRunner`) with :func:`stats.batch.run_batch`. Any worker
process sharing the folder answers the status and result routes. A server lists, serves and runs only the jobs
of its own archive (a server of another archive sharing the folder answers 404 for them and leaves them
alone), and a job whose ``job.json`` is malformed is shown to every server as FAILED with the reason.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request, send_file

from stats.batch.jobs import STATUSES, BatchJobRequest
from stats.batch.output import EXTENT_LAYER
from stats.errors import ConflictError, MalformedRequestError, NotFoundError, ServiceUnavailableError
from stats.results import TABLES

from .. import archive, jobs, settings
from ..render import json_response
from .timeseries import json_body, limits

bp = Blueprint("batch", __name__)

BASE = "/api/v1/batch"
#: Download format -> media type.
MEDIA_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
#: The tables of a job's results: its rows, its analytics and its water extents (GeoParquet, or CSV with WKT).
JOB_TABLES = (*TABLES, EXTENT_LAYER)


def job_view(record: dict[str, Any]) -> dict[str, Any]:
    """The public status of a job record (no paths, no request), with its links."""
    link = f"{BASE}/{record['id']}"
    links = {"self": link}
    if record["status"] == "DONE":
        links.update({fmt: f"{link}/results?format={fmt}" for fmt in MEDIA_TYPES})
    return {"id": record["id"], "status": record["status"], "progress": record["progress"],
            "created": record["created"], "updated": record["updated"], "polygons": record["polygons"],
            "rows": record["rows"], "error": record["error"], "links": links}


def _record(job_id: str) -> dict[str, Any]:
    """The job's record; a job of another archive than this server's is not found here (a quarantined job,
    whose archive is unknown, is found by every server)."""
    record = jobs().store.get(job_id)
    if record is None:
        raise NotFoundError(f"batch job {job_id!r:.80} not found; expected an id returned by POST {BASE}")
    if not record.get("quarantined") and record["archive"] != (archive().href or ""):
        raise NotFoundError(f"batch job {job_id} not found on this server: it was submitted to a server of another "
                            "archive, which serves it")
    return record


def _state(record: dict[str, Any]) -> str:
    """Why a job has no results yet, in words."""
    if record["status"] == "FAILED":
        return f"it FAILED: {record['error']}"
    done, total = record["progress"]["done"], record["progress"]["total"]
    return f"it is {record['status']} ({done} of {'?' if total is None else total} tasks done)"


@bp.get(BASE)
def listing() -> Response:
    """The jobs of this server's archive (and quarantined ones), oldest first, each as its status view;
    ``?status=`` keeps one status."""
    wanted = request.args.get("status")
    if wanted is not None and wanted.upper() not in STATUSES:
        raise MalformedRequestError(f"status: got {wanted!r:.40}; expected one of {list(STATUSES)}")
    views = [job_view(r) for r in jobs().store.records(archive().href or "")
             if wanted is None or r["status"] == wanted.upper()]
    return json_response({"jobs": views})


@bp.post(BASE)
def create() -> Response:
    """Validate a batch job, store it and queue it: 202 with its status and a Location header."""
    s = settings()
    request.max_content_length = s.batch_max_body_bytes
    parsed = BatchJobRequest.from_dict(json_body(), max_polygons=s.batch_max_polygons, limits=limits())
    runner = jobs()
    try:
        record = runner.store.create(parsed, archive().href or "")
    except OSError as exc:
        raise ServiceUnavailableError("batch jobs cannot be stored on this server (its jobs folder is not "
                                      "writable); retry later or tell the operator") from exc
    runner.wake()
    response = json_response(job_view(record), status=202)
    response.headers["Location"] = f"{BASE}/{record['id']}"
    return response


@bp.get(f"{BASE}/<job_id>")
def status(job_id: str) -> Response:
    """The job's status, progress (tasks done / total) and, once DONE, the result links."""
    return json_response(job_view(_record(job_id)))


@bp.get(f"{BASE}/<job_id>/results")
def results(job_id: str) -> Response:
    """The job's result table (``?table=``: its rows, or an analytics table) as a CSV or Parquet attachment
    (409 until the job is DONE)."""
    record = _record(job_id)
    given = request.args.get("format", "csv")
    fmt = given.lower()
    if fmt not in MEDIA_TYPES:
        raise MalformedRequestError(f"format: unknown result format {given!r:.80}; expected 'csv' or 'parquet'")
    table = request.args.get("table", "dates")
    if table not in JOB_TABLES:
        raise MalformedRequestError(f"table: got {table!r:.40}; expected one of {list(JOB_TABLES)}")
    if record["status"] != "DONE":
        raise ConflictError(f"batch job {job_id}: no results, {_state(record)}; results can be downloaded once "
                            "the status is DONE")
    path = jobs().store.result_path(job_id, fmt, table)
    if not path.is_file():
        if table != "dates":
            raise NotFoundError(f"batch job {job_id}: no {table} table; its request asked for none (intervals need "
                                "'aggregation', curves 'fill', season 'season', water_extent 'water' with "
                                "'buffer_m')")
        raise NotFoundError(f"batch job {job_id}: the {fmt} result is no longer on this server")
    name = f"batch-{job_id}.{fmt}" if table == "dates" else f"batch-{job_id}.{table}.{fmt}"
    return send_file(path, mimetype=MEDIA_TYPES[fmt], as_attachment=True, download_name=name, max_age=0)
