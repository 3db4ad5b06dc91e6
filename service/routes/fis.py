"""``GET/POST /ogc/fis[/<instance>]``: Sentinel Hub's Feature Info Service.

Parameters come from the query string (GET), a JSON object (POST, as sentinelhub-py sent it, lower-case
keys) or a form (POST); names are case-insensitive. The layers come from ``POLYFIS_LAYERS``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from stats import query_timeseries
from stats.errors import MalformedRequestError
from stats.sentinelhub.fis import build_request, fis_response

from .. import archive, layers
from ..render import json_response
from .timeseries import json_body, limits

bp = Blueprint("fis", __name__)


def _params() -> dict[str, str]:
    params: dict[str, Any] = dict(request.args.items())
    if request.method == "POST":
        if request.mimetype == "application/x-www-form-urlencoded" or request.mimetype == "multipart/form-data":
            params.update(request.form.items())
        elif request.get_data(cache=True):
            body = json_body()
            if not isinstance(body, dict):
                raise MalformedRequestError(
                    f"request body: expected a JSON object of FIS parameters, got {type(body).__name__}")
            params.update(body)
    out = {}
    for key, value in params.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, (str, int, float)):
            raise MalformedRequestError(f"{key.upper()}: expected a string or number, got {value!r:.60}")
        out[key] = str(value)
    return out


@bp.route("/ogc/fis", methods=["GET", "POST"])
@bp.route("/ogc/fis/<instance>", methods=["GET", "POST"])
def fis(instance: str | None = None) -> Response:
    """Per-date basic statistics (and histograms with BINS) of a layer over a polygon, newest first."""
    params = _params()
    engine_request, layer = build_request(params, layers(), limits=limits())
    result = query_timeseries(engine_request, archive(), limits=limits(), within_archive=True)
    response = json_response(fis_response(result, layer, histogram=engine_request.options.histogram or False))
    if result.warnings:
        response.headers["X-Polyfis-Warning"] = "; ".join(result.warnings)[:4000]
    failed = [d for d in result.series if d.error]
    if failed:
        # FIS has no place for per-date errors: the answer keeps the good dates and says what is missing here
        response.headers["X-Polyfis-Partial"] = "; ".join(f"{d.date.isoformat()}: {d.error}" for d in failed)[:4000]
    return response
