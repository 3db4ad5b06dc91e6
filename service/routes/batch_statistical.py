"""``/api/v1/statistics/batch``: Sentinel Hub's Batch Statistical API — statistics of every polygon of a GeoPackage,
written per feature to S3 or the server's local folder.

A request is checked and stored CREATED (201); ``analyse``, ``start`` and ``stop`` (or ``cancel``) are 204 and
move it through Sentinel Hub's statuses on the runner thread of a server process
(:mod:`stats.sentinelhub.batch_statistical_jobs`). ``GET`` gives one request (or ``/status``, its status alone) or
the requests of this server's archive (``count``, ``viewtoken`` paging). Secret keys given in the request are
never shown back.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from stats.batch.jobs import is_job_id
from stats.errors import MalformedRequestError, NotFoundError, ServiceUnavailableError
from stats.fields import integer
from stats.sentinelhub.batch_statistical import BatchStatisticalRequest, public_request
from stats.sentinelhub.batch_statistical_jobs import ACTIONS, StatisticalJobStore, completion

from .. import archive, settings, statistical_jobs
from ..render import json_response
from .timeseries import json_body, limits

bp = Blueprint("batch_statistical", __name__)

BASE = "/api/v1/statistics/batch"
#: Most requests one page of the listing holds.
MAX_PAGE = 100


def _store() -> StatisticalJobStore:
    store = statistical_jobs().store
    assert isinstance(store, StatisticalJobStore)
    return store


def status_view(store: StatisticalJobStore, record: dict[str, Any]) -> dict[str, Any]:
    """A request's status as Sentinel Hub's ``/status`` gives it."""
    if record.get("quarantined"):
        return {"id": record["id"], "status": "FAILED", "completionPercentage": 0.0, "created": record["created"],
                "lastUpdated": record["updated"], "error": record["error"]}
    view: dict[str, Any] = {"id": record["id"], "status": record["status"],
                            "completionPercentage": completion(record), "created": record["created"],
                            "lastUpdated": record["updated"]}
    if record["error"] is not None:
        view["error"] = record["error"]
    if record["stoppedStatusReason"] is not None:
        view["stoppedStatusReason"] = record["stoppedStatusReason"]
    return view


def request_view(store: StatisticalJobStore, record: dict[str, Any]) -> dict[str, Any]:
    """A request as Sentinel Hub gives it: its status, the request (without secret keys) and the last user action."""
    view = status_view(store, record)
    if record.get("quarantined"):
        return {**view, "request": {}, "userAction": "NONE"}
    view.update(request=public_request(record["request"]), userAction=store.user_action(record))
    if record["userActionUpdated"] is not None:
        view["userActionUpdated"] = record["userActionUpdated"]
    return view


def _record(store: StatisticalJobStore, request_id: str) -> dict[str, Any]:
    """The request's record; one of another archive's server is not found here."""
    record = store.get(request_id) if is_job_id(request_id) else None
    if record is None:
        raise NotFoundError(f"batch statistical request {request_id!r:.80} not found; expected an id returned by "
                            f"POST {BASE}")
    if not record.get("quarantined") and record["archive"] != (archive().href or ""):
        raise NotFoundError(f"batch statistical request {request_id} not found on this server: it was submitted to a "
                            "server of another archive, which serves it")
    return record


@bp.post(BASE)
def create() -> Response:
    """Check a Batch Statistical request and store it CREATED: 201 with the request."""
    s = settings()
    request.max_content_length = s.batch_max_body_bytes
    parsed = BatchStatisticalRequest.from_dict(json_body(), root=s.batch_statistical_path,
                                               buckets=s.batch_statistical_bucket_set, limits=limits())
    store = _store()
    try:
        record = store.submit(parsed, archive().href or "")
    except OSError as exc:
        raise ServiceUnavailableError("batch statistical requests cannot be stored on this server (its jobs folder "
                                      "is not writable); retry later or tell the operator") from exc
    response = json_response(request_view(store, record), status=201)
    response.headers["Location"] = f"{BASE}/{record['id']}"
    return response


@bp.get(BASE)
def listing() -> Response:
    """This server's requests, oldest first, ``count`` (default and most 100) a page from ``viewtoken``."""
    count = integer(_number_arg("count", MAX_PAGE), "count", 1, MAX_PAGE, got_first=True)
    start = integer(_number_arg("viewtoken", 0), "viewtoken", 0, 10**9, got_first=True)
    store = _store()
    records = store.records(archive().href or "")
    page = records[start:start + count]
    links: dict[str, Any] = {"currentToken": str(start)}
    if start + count < len(records):
        links.update(nextToken=str(start + count), next=f"{BASE}?count={count}&viewtoken={start + count}")
    return json_response({"data": [request_view(store, r) for r in page], "links": links})


def _number_arg(name: str, default: int) -> Any:
    text = request.args.get(name)
    if text is None:
        return default
    if not text.isdigit():
        raise MalformedRequestError(f"{name}: got {text!r:.40}; expected a whole number")
    return int(text)


@bp.get(f"{BASE}/<request_id>")
def one(request_id: str) -> Response:
    """One request: its status, progress, request and last user action."""
    store = _store()
    return json_response(request_view(store, _record(store, request_id)))


@bp.get(f"{BASE}/<request_id>/status")
def status(request_id: str) -> Response:
    """A request's status and completion percentage."""
    store = _store()
    return json_response(status_view(store, _record(store, request_id)))


def act(request_id: str, action: str) -> Response:
    """``analyse``, ``start``, ``stop`` or ``cancel`` a request: 204, or 409 when its status does not allow it."""
    store = _store()
    _record(store, request_id)
    store.request_action(request_id, action)
    statistical_jobs().wake()
    return Response(status=204)


for _name in ACTIONS:
    bp.add_url_rule(f"{BASE}/<request_id>/{_name}", f"act_{_name}", act, methods=["POST"], defaults={"action": _name})
