"""``/api/v1/catalog/1.0.0``: Sentinel Hub's Catalog API, a STAC API over the served archive
(:mod:`stats.sentinelhub.catalog`). The landing page and the conformance classes are public, as Sentinel Hub's
are; the collections, items and search need a token when auth is on."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, request

from stats.sentinelhub.catalog import GEOJSON, Catalog, parse_query, parse_search

from .. import archive
from ..render import json_response
from .timeseries import json_body

PREFIX = "/api/v1/catalog/1.0.0"
bp = Blueprint("catalog", __name__, url_prefix=PREFIX)


def _catalog() -> Catalog:
    return Catalog(archive(), request.url_root.rstrip("/") + PREFIX)


def _geojson(body: Any) -> Response:
    response = json_response(body)
    response.mimetype = GEOJSON
    return response


def _get_next(offset: int) -> dict[str, Any]:
    """The link to the next page of a GET search: the same query with ``next``."""
    query = {**request.args.to_dict(), "next": str(offset)}
    return {"rel": "next", "href": f"{request.base_url}?{urlencode(query)}", "type": GEOJSON, "method": "GET"}


def _post_next(offset: int) -> dict[str, Any]:
    """The link to the next page of a POST search: the same body with ``next`` (``merge``)."""
    return {"rel": "next", "href": request.base_url, "type": GEOJSON, "method": "POST", "body": {"next": offset},
            "merge": True}


@bp.get("/", strict_slashes=False)
def landing() -> Response:
    """The landing page: links and conformance classes."""
    return json_response(_catalog().landing())


@bp.get("/conformance")
def conformance() -> Response:
    """The conformance classes."""
    return json_response(_catalog().conformance())


@bp.get("/collections")
def collections() -> Response:
    """The served collection."""
    return json_response(_catalog().collections())


@bp.get("/collections/<collection>")
def collection(collection: str) -> Response:
    """One collection (by any of its ids)."""
    catalog = _catalog()
    catalog.resolve(collection)
    return json_response(catalog.collection())


@bp.get("/collections/<collection>/items")
def items(collection: str) -> Response:
    """The collection's items, paged, with the search parameters of a GET search but ``collections``."""
    catalog = _catalog()
    catalog.resolve(collection)
    return _geojson(catalog.search(parse_query(request.args, collection), _get_next))


@bp.get("/collections/<collection>/items/<item>")
def item(collection: str, item: str) -> Response:
    """One item."""
    return _geojson(_catalog().get_item(collection, item))


@bp.get("/search")
def search_get() -> Response:
    """Item search from the query string."""
    return _geojson(_catalog().search(parse_query(request.args), _get_next))


@bp.post("/search")
def search_post() -> Response:
    """Item search from a JSON body."""
    return _geojson(_catalog().search(parse_search(json_body()), _post_next))
