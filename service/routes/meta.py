"""Meta routes: ``/health``, ``/collections``, ``/openapi.yaml``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from flask import Blueprint, Response

from stats.bands import S2_BANDS
from stats.results import format_datetime

from .. import archive
from ..render import json_response

bp = Blueprint("meta", __name__)

#: The HTTP contract, at the top of the project.
OPENAPI_PATH = Path(str(resources.files("service") / "openapi.yaml"))


@bp.get("/health")
def health() -> Response:
    """Liveness and the archive's size."""
    arch = archive()
    return json_response({"status": "ok", "archive": {"id": arch.id, "acquisitions": len(arch.acquisitions)}})


@bp.get("/collections")
def collections() -> Response:
    """The served archive as a STAC-like collection list with its extent."""
    arch = archive()
    bbox = arch.spatial_extent
    interval = arch.temporal_extent
    collection = {
        "id": arch.id,
        "title": arch.title,
        "extent": {
            "spatial": {"bbox": [list(map(float, bbox))] if bbox else []},
            "temporal": {"interval": [[format_datetime(interval[0]), format_datetime(interval[1])]]
                         if interval else []},
        },
        "acquisitions": len(arch.acquisitions),
        "bands": [b for b in S2_BANDS if any(b in acq.assets for acq in arch.acquisitions)],
    }
    return json_response({"collections": [collection]})


@bp.get("/openapi.yaml")
def openapi() -> Response:
    """The OpenAPI 3 contract of this service."""
    return Response(OPENAPI_PATH.read_text(encoding="utf-8"), mimetype="application/yaml")
