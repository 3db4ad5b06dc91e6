"""Sentinel Hub's Catalog API (a STAC API 1.0) on the polyfis archive: landing page, conformance, the one
collection, its items, and item search with Sentinel Hub's paging.

The archive is served as one collection, ``sentinel-2-l1c`` (sentinelhub-py's ``catalog_id`` for
``DataCollection.SENTINEL2_L1C`` and for a collection made from it with ``define_from``). The archive's own
id and ``byoc-<archive id>`` (``DataCollection.define_byoc(<archive id>)``) name the same collection; every
document carries ``sentinel-2-l1c``.

A search (:func:`parse_search` reads the POST body, :func:`parse_query` the GET query string) takes
``collections``, ``ids``, ``bbox`` or ``intersects`` (EPSG:4326), ``datetime`` (an RFC 3339 instant or
interval, open ends ``..``), ``filter`` (CQL2 text or JSON, evaluated by the ``cql2`` package on each item),
``fields`` (the STAC fields extension), ``distinct: "date"`` (Sentinel Hub's list of distinct dates),
``limit`` (1 to 100, default 10) and ``next``. Matching items are sorted by datetime then id; ``next`` is the
offset of the next page, as Sentinel Hub gives it in ``context.next`` and in the ``links`` entry ``rel: next``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cql2
import shapely
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry

from ..archive.catalog import Acquisition, Archive
from ..errors import (
    InvalidGeometryError,
    InvalidRequestError,
    InvalidTimeRangeError,
    MissingAcquisitionError,
    NotFoundError,
)
from ..fields import is_finite_number, known_fields
from ..geometry import cached_crs
from ..request import Area, parse_datetime
from ..results import format_datetime

STAC_VERSION = "1.0.0"
#: The served collection's id: sentinelhub-py's ``DataCollection.SENTINEL2_L1C.catalog_id``.
COLLECTION_ID = "sentinel-2-l1c"
DEFAULT_LIMIT, MAX_LIMIT = 10, 100
#: Most vertices of an ``intersects`` geometry.
MAX_VERTICES = 10_000
#: The fields of a valid STAC Item, kept when ``fields`` asks for no field in particular.
DEFAULT_FIELDS = ("type", "stac_version", "id", "geometry", "bbox", "links", "assets", "properties.datetime")
#: Fields always kept by an ``include`` list (the STAC fields extension allows these few).
ALWAYS_FIELDS = ("type", "id")
CRS84 = ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", "http://www.opengis.net/def/crs/EPSG/0/4326",
         "EPSG:4326")
FILTER_LANGS = ("cql2-text", "cql2-json")
#: Longest CQL2 text and deepest nesting (brackets, prefix operators, JSON levels) of a filter.
MAX_FILTER_CHARS, MAX_FILTER_DEPTH = 20_000, 100
#: CQL2 operators the ``cql2`` package evaluates on an item; any other is a 400.
CQL2_OPERATORS = frozenset({
    "and", "or", "not", "=", "<>", "<", "<=", ">", ">=", "like", "between", "in", "isNull", "casei", "accenti",
    "+", "-", "*", "/", "%", "^", "div",
    "s_intersects", "s_equals", "s_disjoint", "s_touches", "s_within", "s_overlaps", "s_crosses", "s_contains",
    "t_after", "t_before", "t_contains", "t_disjoint", "t_during", "t_equals", "t_finishedBy", "t_finishes",
    "t_intersects", "t_meets", "t_metBy", "t_overlappedBy", "t_overlaps", "t_startedBy", "t_starts",
})
SEARCH_FIELDS = ("collections", "ids", "bbox", "intersects", "datetime", "filter", "filter-lang", "filter-crs",
                 "fields", "distinct", "limit", "next")

CONFORMANCE = (
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#fields",
    "https://api.stacspec.org/v1.0.0/item-search#filter",
    "https://api.stacspec.org/v1.0.0-rc.1/item-search#context",
    "https://api.stacspec.org/v1.0.0/ogcapi-features#fields",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
)

GEOJSON = "application/geo+json"
#: The search of everything: the whole Earth at any time (a search without an area or a time range).
WORLD = box(-180, -90, 180, 90)
EARLIEST, LATEST = dt.datetime.min.replace(tzinfo=dt.UTC), dt.datetime.max.replace(tzinfo=dt.UTC)


# --------------------------------------------------------------------------------------------------------
# fields (the STAC fields extension)
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSelection:
    """Which fields of an item to return: ``include`` and ``exclude`` paths (``properties.datetime``); with
    ``everything`` the item's other fields are kept too (``exclude`` alone), else only the included ones."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    everything: bool = False

    @classmethod
    def from_json(cls, value: Any, name: str = "fields") -> FieldSelection:
        """The POST form ``{"include": [...], "exclude": [...]}``; ``null`` or ``{}`` is the default fields
        (a search without ``fields`` returns every field: :func:`parse_search` gives None then)."""
        if value is None:
            return cls(include=DEFAULT_FIELDS)
        if not isinstance(value, dict):
            raise InvalidRequestError(f"{name}: expected an object {{'include': [...], 'exclude': [...]}}, "
                                      f"got {value!r:.80}")
        known_fields(value, ("include", "exclude"), name)
        include, exclude = (_paths(value.get(key), f"{name}.{key}") for key in ("include", "exclude"))
        if include:
            return cls(include=include + ALWAYS_FIELDS, exclude=exclude)
        if "include" not in value and exclude:
            return cls(exclude=exclude, everything=True)
        defaults = tuple(f for f in DEFAULT_FIELDS if not any(f == e or f.startswith(e + ".") for e in exclude))
        return cls(include=defaults, exclude=exclude)

    @classmethod
    def from_text(cls, text: str) -> FieldSelection:
        """The GET form ``id,-geometry,properties``: ``-`` marks an exclusion (``include`` is then empty, not
        missing: the default fields less the exclusions)."""
        parts = [p.strip() for p in text.split(",") if p.strip()]
        include = [p.lstrip("+") for p in parts if not p.startswith("-")]
        exclude = [p[1:] for p in parts if p.startswith("-")]
        return cls.from_json({"include": include, "exclude": exclude})

    def apply(self, feature: Mapping[str, Any]) -> dict[str, Any]:
        """``feature`` with only the selected fields."""
        return self._select(feature, "")

    def _keeps(self, path: str) -> bool:
        """Whether ``path`` is kept: the most specific rule naming it or a parent decides, ``include`` winning
        a tie; with no rule, ``everything``."""
        best, keep = -1, self.everything
        for rules, verdict in ((self.exclude, False), (self.include, True)):
            for rule in rules:
                if (path == rule or path.startswith(rule + ".")) and len(rule) >= best:
                    best, keep = len(rule), verdict
        return keep

    def _select(self, value: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, item in value.items():
            path = prefix + key
            keep = self._keeps(path)
            deeper = any(rule.startswith(path + ".") for rule in self.include + self.exclude)
            if deeper and isinstance(item, Mapping):
                inner = self._select(item, path + ".")
                if inner or keep:
                    out[key] = inner
            elif keep:
                out[key] = item
        return out


def _paths(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidRequestError(f"{name}: expected a list of field names such as ['id', 'properties.datetime'], "
                                  f"got {value!r:.80}")
    return tuple(value)


# --------------------------------------------------------------------------------------------------------
# the search request
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Search:
    """A parsed item search. ``area`` is in EPSG:4326; ``start``/``end`` are inclusive, None when open."""

    collections: tuple[str, ...] | None = None
    ids: tuple[str, ...] | None = None
    area: BaseGeometry | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    filter: cql2.Expr | None = None
    fields: FieldSelection | None = None
    distinct: str | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def parse_search(body: Any) -> Search:
    """Parse a POST search body (every error names the field, what was received and what was expected)."""
    if not isinstance(body, dict):
        raise InvalidRequestError(f"request body: expected a JSON object, got {type(body).__name__}")
    known_fields(body, SEARCH_FIELDS, "search")
    if body.get("bbox") is not None and body.get("intersects") is not None:
        raise InvalidRequestError("bbox, intersects: got both; expected at most one of them")
    area = None
    if body.get("bbox") is not None:
        area = parse_bbox(body["bbox"])
    elif body.get("intersects") is not None:
        area = parse_intersects(body["intersects"])
    start, end = parse_interval(body["datetime"]) if body.get("datetime") is not None else (None, None)
    distinct = body.get("distinct")
    if distinct is not None and distinct != "date":
        raise InvalidRequestError(f"distinct: got {distinct!r:.80}; expected 'date'")
    return Search(
        collections=_names(body.get("collections"), "collections"),
        ids=_names(body.get("ids"), "ids"),
        area=area, start=start, end=end,
        filter=parse_filter(body.get("filter"), body.get("filter-lang"), body.get("filter-crs")),
        fields=FieldSelection.from_json(body["fields"]) if "fields" in body else None,
        distinct=distinct,
        limit=_limit(body.get("limit", DEFAULT_LIMIT), text=False),
        offset=_offset(body.get("next"), text=False),
    )


def parse_query(args: Mapping[str, str], collection: str | None = None) -> Search:
    """Parse a GET search (``/search`` or ``/collections/{id}/items``) query string; ``collection`` is the
    collection of the path."""
    known = set(SEARCH_FIELDS) - ({"collections"} if collection else set())
    unknown = sorted(set(args) - known)
    if unknown:
        raise InvalidRequestError(f"query parameters: unknown {unknown}; expected some of {sorted(known)}")
    body: dict[str, Any] = {}
    for key in ("collections", "ids"):
        if key in args:
            body[key] = [v.strip() for v in args[key].split(",") if v.strip()]
    if "bbox" in args:
        body["bbox"] = [_number_text(v, "bbox") for v in args["bbox"].split(",")]
    if "intersects" in args:
        try:
            body["intersects"] = json.loads(args["intersects"])
        except json.JSONDecodeError as exc:
            raise InvalidRequestError(f"intersects: expected a GeoJSON geometry, got invalid JSON ({exc.msg})") \
                from exc
    for key in ("datetime", "filter-crs", "distinct"):
        if key in args:
            body[key] = args[key]
    if "filter" in args:
        lang = args.get("filter-lang", "cql2-text")
        body["filter-lang"] = lang
        if lang == "cql2-json":
            try:
                body["filter"] = json.loads(args["filter"])
            except json.JSONDecodeError as exc:
                raise InvalidRequestError(f"filter: expected CQL2 JSON, got invalid JSON ({exc.msg})") from exc
        else:
            body["filter"] = args["filter"]
    search = parse_search(body)
    fields = FieldSelection.from_text(args["fields"]) if "fields" in args else None
    return Search(collections=(collection,) if collection else search.collections, ids=search.ids,
                  area=search.area, start=search.start, end=search.end, filter=search.filter, fields=fields,
                  distinct=search.distinct, limit=_limit(args.get("limit", DEFAULT_LIMIT), text=True),
                  offset=_offset(args.get("next"), text=True))


def _number_text(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise InvalidRequestError(f"{name}: got {text!r:.80}; expected comma-separated numbers") from exc


def _names(value: Any, name: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequestError(f"{name}: expected a list of strings, got {value!r:.80}")
    return tuple(value)


def _count(value: Any, name: str, low: int, expected: str, *, text: bool) -> int:
    """A whole number at least ``low`` (JSON integer, or decimal text from a query string)."""
    parsed = int(value) if text and isinstance(value, str) and value.strip().isdigit() and len(value) < 12 else value
    if isinstance(parsed, bool) or not isinstance(parsed, int) or not low <= parsed < 2**53:
        raise InvalidRequestError(f"{name}: expected {expected}, got {value!r:.80}")
    return parsed


def _limit(value: Any, *, text: bool) -> int:
    """``limit`` from 1 up; above :data:`MAX_LIMIT` the page holds :data:`MAX_LIMIT` items, as STAC says."""
    return min(_count(value, "limit", 1, f"a positive integer (pages hold at most {MAX_LIMIT} items)", text=text),
               MAX_LIMIT)


def _offset(value: Any, *, text: bool) -> int:
    if value is None:
        return 0
    return _count(value, "next", 0, "0 or a positive integer (the context.next of the previous page)", text=text)


def parse_bbox(value: Any) -> BaseGeometry:
    """A STAC ``bbox`` (4 numbers, or 6 with heights) in EPSG:4326 as a polygon; west > east crosses the
    antimeridian."""
    if not isinstance(value, list) or len(value) not in (4, 6) or not all(is_finite_number(v) for v in value):
        raise InvalidRequestError(f"bbox: expected [west, south, east, north] in degrees, got {value!r:.80}")
    west, south, east, north = (value[0], value[1], value[3], value[4]) if len(value) == 6 else value
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= north <= 90):
        raise InvalidRequestError(f"bbox: got {value!r:.80}; expected longitudes from -180 to 180 and latitudes "
                                  "from -90 to 90 with south <= north")
    if west > east:
        return box(west, south, 180, north).union(box(-180, south, east, north))
    return box(west, south, east, north)


def parse_intersects(value: Any) -> BaseGeometry:
    """A GeoJSON geometry in EPSG:4326: polygons are checked (and repaired) as every polygon of polyfis is,
    points and lines must have finite coordinates within the degree ranges."""
    if not isinstance(value, dict) or "type" not in value or "coordinates" not in value:
        raise InvalidRequestError(f"intersects: expected a GeoJSON geometry, got {value!r:.80}")
    if value["type"] in ("Polygon", "MultiPolygon"):
        try:
            return Area.parse(value, "EPSG:4326", max_vertices=MAX_VERTICES).geometry
        except InvalidGeometryError as exc:
            raise InvalidGeometryError(f"intersects: {str(exc).removeprefix('geometry: ')}") from exc
    if value["type"] not in ("Point", "MultiPoint", "LineString", "MultiLineString"):
        raise InvalidRequestError(f"intersects: got a {value['type']!r:.40}; expected a GeoJSON Point, MultiPoint, "
                                  "LineString, MultiLineString, Polygon or MultiPolygon")
    try:
        geometry = shape(value)
    except (ValueError, TypeError, AttributeError, IndexError, shapely.errors.ShapelyError) as exc:
        raise InvalidRequestError(f"intersects: malformed {value['type']} coordinates") from exc
    coords = shapely.get_coordinates(geometry)
    if geometry.is_empty or len(coords) > MAX_VERTICES or not (
            (abs(coords[:, 0]) <= 180).all() and (abs(coords[:, 1]) <= 90).all()):
        raise InvalidRequestError(f"intersects: expected a non-empty {value['type']} of at most {MAX_VERTICES} "
                                  "vertices with longitudes from -180 to 180 and latitudes from -90 to 90")
    return geometry


def parse_interval(value: Any) -> tuple[dt.datetime | None, dt.datetime | None]:
    """A STAC ``datetime``: one instant, or ``start/end`` with ``..`` (or nothing) for an open end. A date alone
    is that whole day."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidTimeRangeError(f"datetime: expected an RFC 3339 date-time or interval such as "
                                    f"'2023-01-01T00:00:00Z/2023-12-31T23:59:59Z', got {value!r:.80}")
    if "/" not in value:
        return parse_datetime(value, "datetime"), parse_datetime(value, "datetime", end_of_day=True)
    first, _, second = value.partition("/")
    start: dt.datetime | None
    end: dt.datetime | None
    start = None if first.strip() in ("", "..") else parse_datetime(first, "datetime")
    end = None if second.strip() in ("", "..") else parse_datetime(second, "datetime", end_of_day=True)
    if start is None and end is None:
        raise InvalidTimeRangeError(f"datetime: got {value!r:.80}, open at both ends; expected at least one end")
    if start is not None and end is not None and end < start:
        raise InvalidTimeRangeError(f"datetime: got {value!r:.80}, whose start is after its end; expected "
                                    "start/end with start <= end")
    return start, end


def parse_filter(value: Any, lang: Any, crs: Any) -> cql2.Expr | None:
    """A CQL2 filter in ``lang`` (``cql2-text`` by default for a string, ``cql2-json`` for an object)."""
    if value is None:
        return None
    if crs is not None and crs not in CRS84:
        raise InvalidRequestError(f"filter-crs: got {crs!r:.80}; expected {CRS84[0]!r} (WGS84 longitude, latitude)")
    if lang is not None and lang not in FILTER_LANGS:
        raise InvalidRequestError(f"filter-lang: got {lang!r:.80}; expected 'cql2-text' or 'cql2-json'")
    lang = lang or ("cql2-json" if isinstance(value, dict) else "cql2-text")
    _check_nesting(value)
    try:
        if lang == "cql2-text":
            if not isinstance(value, str):
                raise InvalidRequestError(f"filter: expected CQL2 text with filter-lang cql2-text, got {value!r:.80}")
            expression = cql2.parse_text(value)
        else:
            if not isinstance(value, dict):
                raise InvalidRequestError(f"filter: expected a CQL2 JSON object with filter-lang cql2-json, "
                                          f"got {value!r:.80}")
            expression = cql2.parse_json(json.dumps(value))
        tree = expression.to_json()
    except InvalidRequestError:
        raise
    except Exception as exc:  # noqa: BLE001 - cql2 raises ParseError, or a bare Exception for a malformed tree
        lines = [line.strip(" =") for line in str(exc).splitlines() if line.strip()]
        where = next((line for line in lines if line.startswith("-->")), "").removeprefix("-->").strip()
        hint = next((line for line in reversed(lines) if "expected" in line), "")
        detail = "; ".join(part for part in (f"at line:column {where}" if where else "", hint[:160]) if part)
        raise InvalidRequestError(f"filter: cannot parse {value!r:.120} as {lang}"
                                  + (f" ({detail})" if detail else "")) from exc
    unknown = sorted(_operators(tree) - CQL2_OPERATORS)
    if unknown:
        raise InvalidRequestError(f"filter: unknown operators {unknown}; expected CQL2 operators such as "
                                  "'=', '<', 'and', 'between', 'in', 's_intersects'")
    return expression


def _check_nesting(value: Any) -> None:
    """Refuse filters nested deeper than :data:`MAX_FILTER_DEPTH` or longer than :data:`MAX_FILTER_CHARS` before
    the ``cql2`` parser sees them: it recurses natively, and a few thousand levels overflow its stack."""
    if isinstance(value, str):
        if len(value) > MAX_FILTER_CHARS:
            raise InvalidRequestError(f"filter: {len(value)} characters; expected at most {MAX_FILTER_CHARS}")
        depth = deepest = 0
        for char in value:
            depth += {"(": 1, ")": -1}.get(char, 0)
            deepest = max(deepest, depth)
        prefixes = max((len(re.findall(r"NOT|-", run, re.IGNORECASE))
                        for run in re.findall(r"(?:(?:\bNOT\b|-)\s*)+", value, re.IGNORECASE)), default=0)
        deepest = max(deepest, prefixes)
    else:
        deepest, level = 0, [(value, 1)]
        while level:
            node, depth = level.pop()
            deepest = max(deepest, depth)
            children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
            level.extend((child, depth + 1) for child in children if deepest <= MAX_FILTER_DEPTH)
    if deepest > MAX_FILTER_DEPTH:
        raise InvalidRequestError(f"filter: nested more than {MAX_FILTER_DEPTH} levels deep; expected a flatter "
                                  "expression")


def _operators(tree: Any) -> set[str]:
    """Every ``op`` of a CQL2 JSON tree."""
    found: set[str] = set()
    if isinstance(tree, dict):
        if isinstance(tree.get("op"), str):
            found.add(tree["op"])
        for value in tree.values():
            found |= _operators(value)
    elif isinstance(tree, list):
        for value in tree:
            found |= _operators(value)
    return found


def matches(expression: cql2.Expr, item: Mapping[str, Any]) -> bool:
    """Whether ``item`` passes the filter; a comparison with a property the item lacks is not a match (as
    SQL's NULL)."""
    try:
        return bool(expression.matches(dict(item)))
    except Exception:  # noqa: BLE001 - cql2 raises a bare Exception when a comparison has no value to compare
        return False


# --------------------------------------------------------------------------------------------------------
# documents
# --------------------------------------------------------------------------------------------------------


class Catalog:
    """The Catalog API documents of ``archive``, with links under ``root`` (the absolute URL of
    ``/api/v1/catalog/1.0.0``, no trailing slash)."""

    def __init__(self, archive: Archive, root: str) -> None:
        self.archive = archive
        self.root = root.rstrip("/")

    @property
    def aliases(self) -> tuple[str, ...]:
        """The ids that name the collection."""
        return (COLLECTION_ID, self.archive.id, f"byoc-{self.archive.id}")

    def resolve(self, collection: str) -> str:
        """The served collection's id for ``collection``, else a 404 naming the ids served."""
        if collection not in self.aliases:
            raise NotFoundError(f"collection {collection!r:.80} is not served here; expected {COLLECTION_ID!r}")
        return COLLECTION_ID

    def link(self, rel: str, path: str, kind: str = "application/json", **extra: Any) -> dict[str, Any]:
        """A link to ``path`` under the root."""
        return {"rel": rel, "href": f"{self.root}{path}", "type": kind, **extra}

    def landing(self) -> dict[str, Any]:
        """The landing page (a STAC Catalog with its conformance classes)."""
        return {
            "type": "Catalog", "stac_version": STAC_VERSION, "id": "polyfis-catalog",
            "title": "polyfis Catalog API", "description": "The polyfis archive as a STAC API (Sentinel Hub's "
                                                          "Catalog API 1.0.0)",
            "conformsTo": list(CONFORMANCE),
            "links": [
                self.link("self", "/"), self.link("root", "/"),
                self.link("conformance", "/conformance"),
                self.link("data", "/collections"),
                self.link("child", f"/collections/{COLLECTION_ID}"),
                self.link("search", "/search", GEOJSON, method="GET"),
                self.link("search", "/search", GEOJSON, method="POST"),
                {"rel": "service-desc", "href": f"{self.root.split('/api/v1/')[0]}/openapi.json",
                 "type": "application/vnd.oai.openapi+json;version=3.0"},
            ],
        }

    def conformance(self) -> dict[str, Any]:
        """The conformance classes."""
        return {"conformsTo": list(CONFORMANCE)}

    def collection(self) -> dict[str, Any]:
        """The collection document, with its extent."""
        bbox = self.archive.spatial_extent
        interval = self.archive.temporal_extent
        path = f"/collections/{COLLECTION_ID}"
        return {
            "type": "Collection", "stac_version": STAC_VERSION,
            "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json"],
            "id": COLLECTION_ID, "title": self.archive.title,
            "description": f"Sentinel-2 L1C acquisitions of the archive {self.archive.id!r}",
            "license": "proprietary",
            "extent": {
                "spatial": {"bbox": [[float(v) for v in bbox]] if bbox else [[-180.0, -90.0, 180.0, 90.0]]},
                "temporal": {"interval": [[format_datetime(interval[0]), format_datetime(interval[1])]
                                          if interval else [None, None]]},
            },
            "summaries": {"constellation": ["sentinel-2"], "instruments": ["msi"]},
            "links": [self.link("self", path), self.link("root", "/"), self.link("parent", "/"),
                      self.link("items", f"{path}/items", GEOJSON)],
        }

    def collections(self) -> dict[str, Any]:
        """The collections list (one collection)."""
        return {"collections": [self.collection()],
                "links": [self.link("self", "/collections"), self.link("root", "/")]}

    def item(self, acquisition: Acquisition) -> dict[str, Any]:
        """The STAC Item of one acquisition."""
        properties: dict[str, Any] = {"datetime": format_datetime(acquisition.datetime),
                                      "constellation": "sentinel-2", "instruments": ["msi"], "gsd": 10}
        if acquisition.cloud_cover is not None:
            properties["eo:cloud_cover"] = acquisition.cloud_cover
        epsg = cached_crs(acquisition.crs).to_epsg()
        properties.update({"proj:epsg": epsg} if epsg else {"proj:code": acquisition.crs})
        if acquisition.processing_baseline:
            properties["s2:processing_baseline"] = acquisition.processing_baseline
        if acquisition.tile:
            properties["s2:mgrs_tile"] = acquisition.tile
        if acquisition.sun_azimuth is not None:
            properties["view:sun_azimuth"] = acquisition.sun_azimuth
        if acquisition.sun_elevation is not None:
            properties["view:sun_elevation"] = acquisition.sun_elevation
        path = f"/collections/{COLLECTION_ID}"
        return {
            "type": "Feature", "stac_version": STAC_VERSION,
            "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                                "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                                "https://stac-extensions.github.io/view/v1.0.0/schema.json"],
            "id": acquisition.id, "collection": COLLECTION_ID,
            "geometry": mapping(acquisition.footprint), "bbox": [float(v) for v in acquisition.bbox],
            "properties": properties,
            # band files are listed only where they are URLs: the server's own paths are not a client's concern
            "assets": {band: {"href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                              "roles": ["data"]}
                       for band, href in acquisition.assets.items() if href.startswith(("http://", "https://"))},
            "links": [self.link("self", f"{path}/items/{acquisition.id}", GEOJSON),
                      self.link("parent", path), self.link("collection", path), self.link("root", "/")],
        }

    def get_item(self, collection: str, item_id: str) -> dict[str, Any]:
        """One item by id, else a 404."""
        self.resolve(collection)
        try:
            (acquisition,) = self.archive.get([item_id])
        except MissingAcquisitionError:
            raise NotFoundError(f"item {item_id!r:.80} is not in collection {COLLECTION_ID!r}") from None
        return self.item(acquisition)

    def search(self, search: Search, next_link: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
        """One page of the items matching ``search`` as a FeatureCollection, with Sentinel Hub's ``context``
        and a ``next`` link made by ``next_link(offset)`` when more items match."""
        found: Sequence[Any] = self._matches(search)
        if search.distinct == "date":
            found = sorted({a.date.isoformat() for a in found})
        page: list[Any] = list(found[search.offset:search.offset + search.limit])
        if search.distinct is None:
            page = [item if isinstance(item, dict) else self.item(item) for item in page]
            if search.fields is not None:
                page = [search.fields.apply(feature) for feature in page]
        following = search.offset + len(page)
        context: dict[str, Any] = {"limit": search.limit, "returned": len(page), "matched": len(found)}
        links = [self.link("root", "/")]
        if following < len(found):
            context = {"next": following, **context}
            links.append(next_link(following))
        return {"type": "FeatureCollection", "features": page, "links": links, "context": context,
                "numberMatched": len(found), "numberReturned": len(page)}

    def _matches(self, search: Search) -> Sequence[Acquisition] | Sequence[dict[str, Any]]:
        """The matching acquisitions in archive order; as their items when a filter had to read those."""
        if search.collections is not None and not set(search.collections) & set(self.aliases):
            return []
        candidates: Sequence[Acquisition] = self.archive.search(
            search.area if search.area is not None else WORLD, search.start or EARLIEST, search.end or LATEST)
        if search.ids is not None:
            wanted = set(search.ids)
            candidates = [a for a in candidates if a.id in wanted]
        if search.filter is None:
            return candidates
        expression = search.filter
        if search.distinct == "date":
            return [a for a in candidates if matches(expression, self.item(a))]
        return [item for item in map(self.item, candidates) if matches(expression, item)]
