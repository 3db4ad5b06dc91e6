"""``POST /api/v1/process``: Sentinel Hub's Process API (JSON body, or multipart request + evalscript)."""

from __future__ import annotations

import json

from flask import Blueprint, Response, request

from stats.errors import MalformedRequestError
from stats.sentinelhub.process import run_process

from .. import archive
from .timeseries import json_body, limits

bp = Blueprint("process", __name__)

#: Most characters of a warning header (the full list is in the log).
_WARNING_CHARS = 2000


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
            body["evalscript"] = request.form["evalscript"]
        return body
    return json_body()


@bp.post("/api/v1/process")
def process() -> Response:
    """An image (or a tar of several) of an evalscript's outputs over a box, as Sentinel Hub's Process API."""
    result = run_process(_body(), archive(), accept=request.headers.get("Accept"), limits=limits())
    response = Response(result.data, mimetype=result.mime)
    if result.warnings:
        text = "; ".join(result.warnings)
        response.headers["X-Polyfis-Warning"] = text.encode("ascii", "replace").decode("ascii")[:_WARNING_CHARS]
    return response
