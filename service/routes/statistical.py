"""``POST /api/v1/statistics``: Sentinel Hub's Statistical API (JSON body, or multipart request + evalscript)."""

from __future__ import annotations

import json

from flask import Blueprint, Response, request

from stats.errors import MalformedRequestError
from stats.sentinelhub.statistical import run_statistics

from .. import archive
from ..render import json_response
from .timeseries import json_body, limits

bp = Blueprint("statistical", __name__)


def _body() -> object:
    if request.mimetype == "multipart/form-data":
        text = request.form.get("request")
        if text is None:
            raise MalformedRequestError(
                "multipart body: missing the 'request' part; expected 'request' (JSON) and 'evalscript'")
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MalformedRequestError(f"multipart 'request' part: invalid JSON ({exc.msg})") from exc
        if isinstance(body, dict) and "evalscript" in request.form:
            body.setdefault("aggregation", {})["evalscript"] = request.form["evalscript"]
        return body
    return json_body()


@bp.post("/api/v1/statistics")
def statistics() -> Response:
    """Statistics per aggregation interval of an evalscript's outputs over a polygon."""
    return json_response(run_statistics(_body(), archive(), limits=limits()))
