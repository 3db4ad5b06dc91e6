"""Meta routes: ``/health``, ``/collections``, the contract (``/openapi.yaml``, ``/openapi.json``) and its
reader (``/docs``, Swagger UI from the vendored ``swagger-ui-dist``, so it works offline)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml
from flask import Blueprint, Response, url_for

from stats.bands import S2_BANDS
from stats.results import format_datetime

from .. import archive
from ..render import json_response

bp = Blueprint("meta", __name__)

#: The HTTP contract, shipped in the package.
OPENAPI_PATH = Path(str(resources.files("service") / "openapi.yaml"))


@bp.get("/health")
def health() -> Response:
    """Liveness and the archive's size."""
    arch = archive()
    return json_response({"status": "ok", "archive": {"id": arch.id, "acquisitions": arch.count}})


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
        "acquisitions": arch.count,
        "bands": [b for b in S2_BANDS if b in set(arch.bands())],
    }
    return json_response({"collections": [collection]})


@bp.get("/openapi.yaml")
def openapi() -> Response:
    """The OpenAPI 3 contract of this service."""
    return Response(OPENAPI_PATH.read_text(encoding="utf-8"), mimetype="application/yaml")


@lru_cache(maxsize=1)
def _contract() -> dict[str, object]:
    value: dict[str, object] = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    return value


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """The OpenAPI 3 contract as JSON."""
    return json_response(_contract())


_DOCS = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>polyfis API</title>
<link rel="stylesheet" href="{css}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{js}"></script>
<script>
window.ui = SwaggerUIBundle({{url: "{spec}", dom_id: "#swagger-ui", deepLinking: true}});
</script>
</body>
</html>
"""


@bp.get("/docs")
def docs() -> Response:
    """The contract in Swagger UI, served from this server's own files (no network needed)."""
    page = _DOCS.format(css=url_for("static", filename="swagger-ui/swagger-ui.css"),
                        js=url_for("static", filename="swagger-ui/swagger-ui-bundle.js"),
                        spec=url_for("meta.openapi"))
    return Response(page, mimetype="text/html")

