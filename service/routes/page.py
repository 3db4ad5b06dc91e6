"""The web page: ``/`` (``static/page/index.html``, whose scripts and styles are this server's own static files,
so it works offline), the settings it starts from (``/page/config.json``) and the example polygons it offers
(``/page/polygons.geojson``, the demo archive's)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from flask import Blueprint, Response

from stats.archive.catalog import Archive
from stats.archive.synthetic.files import POLYGONS_FILE
from stats.archive.synthetic.recipe import read_polygons
from stats.indices import BUILTIN_INDICES
from stats.render import CLOUD_LAYERS, DEFAULT_MAX_REFLECTANCE, MAX_SIDE

from .. import archive, settings
from ..render import json_response

bp = Blueprint("page", __name__)

#: The page, shipped in the package.
PAGE_PATH = Path(str(resources.files("service") / "static" / "page" / "index.html"))

#: OpenStreetMap's tile URL, used only when the page's OpenStreetMap switch is turned on.
OSM_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"

#: The page runs only the server's own scripts; images may also come from OpenStreetMap's tile server (when
#: its switch is on) and blob: URLs (the images the page fetched with its token).
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' blob: data: https://tile.openstreetmap.org; connect-src 'self'; "
                           "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'")


@bp.get("/")
def index() -> Response:
    """The web page."""
    response = Response(PAGE_PATH.read_text(encoding="utf-8"), mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/page/config.json")
def config() -> Response:
    """What the page needs to know of this server: whether it asks for a token, the image limits, the built-in
    indices, the archive's acquisition dates (with their tiles' mean scene cloud cover, for the base layer) and the
    OpenStreetMap tile URL (the request defaults are read from /openapi.json)."""
    current = settings()
    return json_response({
        "auth": bool(current.clients),
        "max_pixels": current.limits.max_pixels,
        "render": {"max_side": MAX_SIDE, "max_reflectance": DEFAULT_MAX_REFLECTANCE,
                   "cloud_layers": list(CLOUD_LAYERS)},
        "indices": list(BUILTIN_INDICES),
        "dates": acquisition_dates(archive()),
        "osm_tiles": OSM_TILES,
    })


def acquisition_dates(arch: Archive) -> list[dict[str, Any]]:
    """The archive's dates, oldest first, each with the mean ``eo:cloud_cover`` of its tiles (null when none
    has one)."""
    return [{"date": day.isoformat(), "cloud_cover": None if cover is None else float(cover)}
            for day, cover in arch.dates()]


@bp.get("/page/polygons.geojson")
def polygons() -> Response:
    """The demo polygons (a FeatureCollection in EPSG:4326), offered by the page as examples."""
    return json_response(read_polygons(settings().fixtures_path / POLYGONS_FILE))
