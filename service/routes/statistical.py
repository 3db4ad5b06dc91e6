"""``POST /api/v1/statistics``: Sentinel Hub's Statistical API (JSON body, or multipart request + evalscript)."""

from __future__ import annotations

from flask import Blueprint, Response

from stats.sentinelhub.statistical import run_statistics

from .. import archive
from ..render import json_response
from .timeseries import limits, sentinelhub_body

bp = Blueprint("statistical", __name__)


@bp.post("/api/v1/statistics")
def statistics() -> Response:
    """Statistics per aggregation interval of an evalscript's outputs over a polygon."""
    return json_response(run_statistics(sentinelhub_body("aggregation"), archive(), limits=limits()))
