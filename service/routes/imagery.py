"""``GET /api/v1/render/<date>``: one acquisition date drawn as a PNG over a lon/lat box (the engine's
:mod:`stats.render`): true colour, any one or three bands, or a stored cloud layer (CLP, CLM)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from stats.render import RenderRequest, render

from .. import archive, settings

bp = Blueprint("imagery", __name__)


@bp.get("/api/v1/render/<date>")
def render_date(date: str) -> Response:
    """The PNG; ``X-Polyfis-Acquisitions`` names the acquisitions drawn, in mosaic order."""
    limits = settings().limits
    parsed = RenderRequest.parse(date, request.args.to_dict(), limits)
    image = render(parsed, archive(), limits)
    response = Response(image.png, mimetype="image/png")
    response.headers["X-Polyfis-Acquisitions"] = ",".join(image.acquisitions)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response
