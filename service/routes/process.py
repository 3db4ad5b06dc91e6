"""``POST /api/v1/process``: Sentinel Hub's Process API (JSON body, or multipart request + evalscript)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from stats.sentinelhub.process import run_process

from .. import archive
from .timeseries import limits, sentinelhub_body

bp = Blueprint("process", __name__)

#: Most characters of a warning header (the full list is in the log).
_WARNING_CHARS = 2000


@bp.post("/api/v1/process")
def process() -> Response:
    """An image (or a tar of several) of an evalscript's outputs over a box, as Sentinel Hub's Process API."""
    result = run_process(sentinelhub_body(), archive(), accept=request.headers.get("Accept"), limits=limits())
    response = Response(result.data, mimetype=result.mime)
    if result.warnings:
        text = "; ".join(result.warnings)
        response.headers["X-Polyfis-Warning"] = text.encode("ascii", "replace").decode("ascii")[:_WARNING_CHARS]
    return response
