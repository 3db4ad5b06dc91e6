"""``POST /api/v1/timeseries``: the native polygon time series, as JSON or CSV."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, request

from stats import Limits, TimeSeriesRequest, query_timeseries
from stats.errors import MalformedRequestError, UnsupportedMediaTypeError
from stats.results import TABLES

from .. import archive, settings
from ..render import choose_format, csv_response, json_response

bp = Blueprint("timeseries", __name__)


def json_body() -> Any:
    """The request body parsed as JSON, or a 400/415 naming the problem."""
    mimetype = request.mimetype
    if mimetype and mimetype not in ("application/json", "text/plain") and not mimetype.endswith("+json"):
        raise UnsupportedMediaTypeError(f"Content-Type: got {mimetype!r}; expected 'application/json'")
    raw = request.get_data(cache=True)
    if not raw:
        raise MalformedRequestError("request body: empty; expected a JSON object")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise MalformedRequestError(
            f"request body: not UTF-8 ({exc.reason} at byte {exc.start}); expected UTF-8 JSON") from exc
    except json.JSONDecodeError as exc:
        raise MalformedRequestError(
            f"request body: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc
    except RecursionError as exc:
        raise MalformedRequestError("request body: JSON nested too deeply; expected a plain request object") from exc
    except MalformedRequestError:
        raise
    except ValueError as exc:  # e.g. an integer literal with thousands of digits
        raise MalformedRequestError("request body: unreadable JSON value (such as an integer of thousands of digits); "
                                    "expected ordinary numbers") from exc


def sentinelhub_body(evalscript_in: str | None = None) -> Any:
    """The body of a Sentinel Hub request: JSON (:func:`json_body`), or multipart/form-data with a ``request``
    part (JSON) and an ``evalscript`` part, which becomes the body's ``evalscript`` field (or that of its
    ``evalscript_in`` object, e.g. the Statistical API's ``aggregation``)."""
    if request.mimetype != "multipart/form-data":
        return json_body()
    text = request.form.get("request")
    if text is None:
        raise MalformedRequestError(
            "multipart body: missing the 'request' part; expected 'request' (JSON) and 'evalscript'")
    try:
        body = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise MalformedRequestError(f"multipart 'request' part: invalid JSON ({exc.msg})") from exc
    if isinstance(body, dict) and "evalscript" in request.form:
        target = body if evalscript_in is None else body.setdefault(evalscript_in, {})
        if isinstance(target, dict):  # otherwise the request's parser names the field that is not an object
            target["evalscript"] = request.form["evalscript"]
    return body


def _reject_constant(name: str) -> None:
    raise MalformedRequestError(f"request body: {name} is not a valid JSON number; expected finite numbers")


def limits() -> Limits:
    """Engine limits from the service settings."""
    return settings().limits


@bp.post("/api/v1/timeseries")
def timeseries() -> Response:
    """Per-date statistics and averaged-pixel cloud probability for a polygon and a time range."""
    fmt = choose_format(request)
    table = request.args.get("table", "dates")
    if table not in TABLES:
        raise MalformedRequestError(f"table: got {table!r:.40}; expected one of {list(TABLES)}")
    parsed = TimeSeriesRequest.from_dict(json_body(), limits=limits())
    result = query_timeseries(parsed, archive(), limits=limits())
    if fmt == "csv":
        return csv_response(result.to_csv(table), filename=f"timeseries-{table}.csv" if table != "dates"
                            else "timeseries.csv")
    return json_response(result.to_dict())
