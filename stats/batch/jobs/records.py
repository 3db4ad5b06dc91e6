"""Job records (``job.json``): what a well-formed one holds, and the FAILED record that replaces a bad one.

A record is trusted only when every field has its type (:func:`record_problem`). A ``job.json`` that is not
a record (not JSON, not an object, fields missing or of the wrong type, another job's id) is *quarantined*
by the store: its bytes are kept beside it as ``job.json.quarantined`` and it is replaced by
:func:`quarantined_record`, a FAILED record built from the job's id alone, whose ``error`` says what was
wrong without repeating anything the bad file holds. Such a job is never run.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

#: Job statuses, in the order a job goes through them (FAILED instead of DONE when it raised).
STATUSES = ("CREATED", "PROCESSING", "DONE", "FAILED")
#: Statuses of a job that still has to run.
PENDING = ("CREATED", "PROCESSING")
#: Fields every job record has.
RECORD_FIELDS = frozenset({"id", "status", "progress", "created", "updated", "polygons", "rows", "error", "request",
                           "archive"})
#: Where the bytes of a quarantined ``job.json`` are kept, in the job's folder.
QUARANTINE_FILE = "job.json.quarantined"

_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
               type(None): "null"}


def now_iso() -> str:
    """The current UTC time as ISO-8601 with milliseconds and a ``Z``."""
    return iso(dt.datetime.now(dt.UTC))


def iso(when: dt.datetime) -> str:
    """A UTC date-time as ISO-8601 with milliseconds and a ``Z``."""
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _count(value: Any, *, nullable: bool = False) -> bool:
    if value is None:
        return nullable
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _text(value: Any, *, nullable: bool = False) -> bool:
    return isinstance(value, str) or (nullable and value is None)


def _progress(value: Any) -> bool:
    return isinstance(value, dict) and _count(value.get("done")) and "total" in value \
        and _count(value["total"], nullable=True)


def _request(value: Any) -> bool:
    if not isinstance(value, dict) or not _text(value.get("crs")) or not isinstance(value.get("options"), dict):
        return False
    time = value.get("time")
    return isinstance(time, dict) and _text(time.get("from")) and _text(time.get("to"))


#: Field -> whether a value is of its type (in a record that is not quarantined).
_CHECKS = {
    "created": _text,
    "updated": _text,
    "progress": _progress,
    "polygons": _count,
    "rows": lambda v: _count(v, nullable=True),
    "error": lambda v: _text(v, nullable=True),
    "request": _request,
    "archive": _text,
}


def record_problem(record: Any, job_id: str) -> str | None:
    """What makes ``record`` (parsed ``job.json``) no record of job ``job_id``, or None when it is one.

    The answer names only the record's fields (from :data:`RECORD_FIELDS`), never a value of the file.

    >>> record_problem([], "0" * 32)
    'it holds an array, not a JSON object'
    >>> record_problem({"id": "0" * 32}, "0" * 32)[:38]
    "it lacks the fields ['archive', 'creat"
    """
    if not isinstance(record, dict):
        return f"it holds {_JSON_KINDS.get(type(record), 'a value')}, not a JSON object"
    if record.get("quarantined") is True:  # written by the store: FAILED, with what was wrong
        ok = record.get("id") == job_id and record.get("status") == "FAILED" and _text(record.get("error")) \
            and _progress(record.get("progress")) and _text(record.get("created")) and _text(record.get("updated"))
        return None if ok else "it is a quarantined record whose fields are malformed"
    missing = sorted(RECORD_FIELDS - set(record))
    if missing:
        return f"it lacks the fields {missing}"
    if not isinstance(record["id"], str) or record["id"] != job_id:
        return "its 'id' is not the id of the job's folder"
    if not isinstance(record["status"], str) or record["status"] not in STATUSES:
        return f"its 'status' is not one of {list(STATUSES)}"
    wrong = sorted(name for name, check in _CHECKS.items() if not check(record[name]))
    if wrong:
        return f"its fields {wrong} are not of their types"
    return None


def quarantined_record(job_id: str, problem: str, created: str) -> dict[str, Any]:
    """The FAILED record that replaces a malformed ``job.json``: built from the job's id and ``problem``
    (from :func:`record_problem`), with unknown polygons, rows, request and archive."""
    return {"id": job_id, "status": "FAILED", "progress": {"done": 0, "total": None}, "created": created,
            "updated": now_iso(), "polygons": None, "rows": None,
            "error": (f"the job's record (job.json) was malformed: {problem}; the job was set aside and will not "
                      "run; submit it again"),
            "request": None, "archive": None, "quarantined": True}
