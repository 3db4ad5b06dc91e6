"""Query geometries: GeoJSON or WKT in any CRS -> a valid shapely (Multi)Polygon, and reprojection.

Axis order: polyfis reads every coordinate as (x, y) = (easting, northing) or (lon, lat), whatever the
CRS's official axis order (pyproj ``always_xy=True``), as GeoJSON does. The FIS route, which must read
EPSG:4326 as (lat, lon), asks :func:`parse_geometry` to swap the axes (``swap_axes``).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from .errors import InvalidCRSError, InvalidGeometryError
from .fields import is_finite_number

#: Default cap on the vertices of one query geometry.
DEFAULT_MAX_VERTICES = 100_000

#: WGS 84, the CRS of catalog footprints (read in (lon, lat) order).
WGS84 = CRS.from_epsg(4326)

#: Longest CRS text accepted (a WKT2 definition is a few thousand characters; PROJ takes seconds on
#: strings of tens of thousands).
MAX_CRS_TEXT = 20_000
#: Most ``+`` parameters of a PROJ string.
MAX_PROJ_PARAMETERS = 100

#: Spellings of OGC CRS84 (WGS 84 in lon/lat order).
OGC_CRS84 = {"CRS:84", "OGC:CRS84", "URN:OGC:DEF:CRS:OGC:1.3:CRS84", "HTTP://WWW.OPENGIS.NET/DEF/CRS/OGC/1.3/CRS84"}


def parse_crs(value: Any) -> CRS:
    """Parse a CRS given as ``EPSG:32633``, ``32633``, an OGC URL or URN, ``CRS:84`` or a WKT/PROJ string.

    >>> parse_crs("http://www.opengis.net/def/crs/EPSG/0/32633").to_epsg()
    32633
    >>> parse_crs("CRS:84").to_epsg()
    4326
    """
    if isinstance(value, CRS):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidCRSError(f"crs: expected a string such as 'EPSG:4326', got {type(value).__name__}")
    if isinstance(value, int) and not 0 < value < 10**9:
        raise InvalidCRSError("crs: the EPSG code is out of range; expected a code in the EPSG registry")
    text = str(value).strip()
    if len(text) > MAX_CRS_TEXT:
        raise InvalidCRSError(f"crs: the text is {len(text)} characters long, more than the limit of {MAX_CRS_TEXT}; "
                              "expected an EPSG code, an OGC URL or URN, or a WKT of ordinary length")
    if text.count("+") > MAX_PROJ_PARAMETERS:
        raise InvalidCRSError(f"crs: the PROJ string has {text.count('+')} parameters, more than the limit of "
                              f"{MAX_PROJ_PARAMETERS}; expected an EPSG code or a PROJ string of ordinary length")
    if text.upper() in OGC_CRS84:
        return _crs_from_epsg(4326)
    upper = text.upper()
    if upper.isdigit():
        return _crs_from_epsg(_epsg_code(upper))
    for prefix in ("HTTP://WWW.OPENGIS.NET/DEF/CRS/EPSG/0/", "HTTPS://WWW.OPENGIS.NET/DEF/CRS/EPSG/0/",
                   "URN:OGC:DEF:CRS:EPSG::", "URN:OGC:DEF:CRS:EPSG:", "EPSG:"):
        if upper.startswith(prefix):
            code = upper[len(prefix):].lstrip(":")
            if not code.isdigit():
                break
            return _crs_from_epsg(_epsg_code(code))
    try:
        crs = CRS.from_user_input(text)
    except (CRSError, ValueError, UnicodeError) as exc:
        raise InvalidCRSError(
            f"crs: unknown coordinate reference system {text!r}; expected e.g. 'EPSG:4326', 'EPSG:32633' "
            "or 'http://www.opengis.net/def/crs/EPSG/0/32633'"
        ) from exc
    return _check_horizontal(crs, text)


def _check_horizontal(crs: CRS, text: str) -> CRS:
    if not (crs.is_geographic or crs.is_projected) or crs.is_geocentric:
        raise InvalidCRSError(
            f"crs: {text!r} is a {crs.type_name} CRS; expected a horizontal (geographic or projected) CRS"
        )
    return crs


def _epsg_code(digits: str) -> int:
    """An EPSG code from its digits; more than 9 digits is no EPSG code (nor an int Python reads cheaply)."""
    if len(digits) > 9:
        raise InvalidCRSError(f"crs: unknown EPSG code {digits[:20]}... ({len(digits)} digits); expected a code in "
                              "the EPSG registry")
    return int(digits)


@lru_cache(maxsize=256)
def _crs_from_epsg(code: int) -> CRS:
    try:
        crs = CRS.from_epsg(code)
    except CRSError as exc:
        raise InvalidCRSError(f"crs: unknown EPSG code {code}; expected a code in the EPSG registry") from exc
    return _check_horizontal(crs, f"EPSG:{code}")


@lru_cache(maxsize=64)
def cached_crs(text: str) -> CRS:
    """The CRS of a catalog's ``proj`` text (WKT, ``EPSG:...``), parsed once (parsing costs about 0.1 ms
    and every band read checks one)."""
    return CRS.from_user_input(text)


def crs_name(crs: CRS) -> str:
    """``EPSG:<code>`` when the CRS has one, else its WKT."""
    code = crs.to_epsg()
    return f"EPSG:{code}" if code else crs.to_wkt()


def _crs_member(obj: dict[str, Any]) -> CRS | None:
    """Read the (old GeoJSON 2008) ``crs`` member: ``{"type": "name", "properties": {"name": ...}}``."""
    member = obj.get("crs")
    if not member:
        return None
    try:
        name = member["properties"]["name"]
    except (KeyError, TypeError) as exc:
        raise InvalidGeometryError(
            f"geometry: GeoJSON 'crs' member {member!r} is malformed; expected "
            "{'type': 'name', 'properties': {'name': 'EPSG:32633'}}"
        ) from exc
    return parse_crs(name)


def _from_geojson(obj: dict[str, Any]) -> tuple[BaseGeometry, CRS | None]:
    kind = obj.get("type")
    declared = _crs_member(obj)
    if kind == "Feature":
        geom = obj.get("geometry")
        if not isinstance(geom, dict):
            raise InvalidGeometryError(
                f"geometry: the Feature has geometry {geom!r}; expected a Polygon or MultiPolygon")
        inner, inner_crs = _from_geojson(geom)
        return inner, declared or inner_crs
    if kind == "FeatureCollection":
        features = obj.get("features")
        if not isinstance(features, list):
            raise InvalidGeometryError(
                f"geometry: FeatureCollection 'features' is {features!r:.60}; expected a list of Features")
        if not features:
            raise InvalidGeometryError("geometry: the FeatureCollection has no features; expected at least one polygon")
        if len(features) > 1:
            raise InvalidGeometryError(
                f"geometry: the FeatureCollection has {len(features)} features; a time series is for one polygon: "
                "post them to /api/v1/batch (polyfis batch) for one series each, or send one MultiPolygon")
        if not all(isinstance(f, dict) for f in features):
            bad = next(f for f in features if not isinstance(f, dict))
            raise InvalidGeometryError(f"geometry: FeatureCollection member {bad!r:.60} is not a Feature object")
        inner, inner_crs = _from_geojson(features[0])
        return inner, declared or inner_crs
    if kind not in ("Polygon", "MultiPolygon", "GeometryCollection"):
        raise InvalidGeometryError(
            f"geometry: GeoJSON type {kind!r} is not supported; expected Polygon, MultiPolygon, Feature "
            "or FeatureCollection of polygons"
        )
    if kind == "GeometryCollection":
        members = obj.get("geometries")
        if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
            raise InvalidGeometryError(
                f"geometry: GeometryCollection 'geometries' is {members!r:.60}; expected a list of geometry objects")
        parts: list[BaseGeometry] = []
        for member in members:
            if member.get("type") in ("Polygon", "MultiPolygon", "GeometryCollection"):
                parts.extend(shapely.get_parts(_from_geojson(member)[0]))  # nested collections flattened
        return shapely.GeometryCollection(parts), declared
    _check_finite(obj.get("coordinates"))
    _check_rings(kind, obj.get("coordinates"))
    try:
        return shape(obj), declared
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise InvalidGeometryError(
            f"geometry: malformed GeoJSON {kind} coordinates; expected "
            f"{'rings' if kind == 'Polygon' else 'polygons of rings'} of [x, y] positions") from exc


def _check_finite(coords: Any) -> None:
    """Reject NaN/Infinity and non-numbers anywhere in GeoJSON coordinates, before shapely sees them."""
    if isinstance(coords, (list, tuple)):
        for item in coords:
            _check_finite(item)
    elif coords is not None and not is_finite_number(coords):
        raise InvalidGeometryError(
            f"geometry: coordinate {coords!r} is not a finite number; expected finite numbers (no NaN or Infinity)"
        )


def _depth(value: Any) -> int:
    """How deep lists nest at the first position: 1 for [x, y], 2 for a ring, 3 for a polygon."""
    depth = 0
    while isinstance(value, list) and value:
        depth, value = depth + 1, value[0]
    return depth


def _check_rings(kind: Any, coords: Any) -> None:
    """GeoJSON rings must be closed and have at least four positions (RFC 7946 3.1.6), at the nesting of
    their type."""
    expected = {"Polygon": 3, "MultiPolygon": 4}.get(kind)
    depth = _depth(coords)
    if expected is not None and depth and depth != expected:
        shape = {1: "a position", 2: "a list of positions (one ring)", 3: "a list of rings (one polygon)",
                 4: "a list of polygons"}.get(depth, f"lists nested {depth} deep")
        what = "a list of rings, each a list of [x, y] positions" if kind == "Polygon" else \
            "a list of polygons, each a list of rings of [x, y] positions"
        fix = "; wrap them in one more [...]" if depth == expected - 1 else ""
        raise InvalidGeometryError(f"geometry: the {kind}'s coordinates are {shape}; expected {what}{fix}")
    polygons = [coords] if kind == "Polygon" else (coords if kind == "MultiPolygon" else [])
    for polygon in polygons if isinstance(polygons, list) else []:
        for i, ring in enumerate(polygon if isinstance(polygon, list) else []):
            if not isinstance(ring, list) or len(ring) < 4 or ring[0] != ring[-1]:
                size = len(ring) if isinstance(ring, list) else 0
                raise InvalidGeometryError(
                    f"geometry: ring {i} of the {kind} is not closed or has {size} positions; expected a closed "
                    "ring of at least 4 positions, the last equal to the first")


def _from_text(text: str) -> tuple[BaseGeometry, CRS | None]:
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise InvalidGeometryError(f"geometry: invalid GeoJSON text ({exc.msg} at char {exc.pos})") from exc
        return _from_geojson(obj)
    declared = None
    if stripped.upper().startswith("SRID="):
        srid, _, stripped = stripped.partition(";")
        declared = parse_crs(srid[5:])
    try:
        return shapely.from_wkt(stripped), declared
    except shapely.errors.GEOSException as exc:
        preview = stripped if len(stripped) <= 80 else stripped[:77] + "..."
        raise InvalidGeometryError(
            f"geometry: cannot parse WKT {preview!r}; expected e.g. 'POLYGON ((x y, x y, x y, x y))'"
        ) from exc


def parse_geometry(
    value: Any,
    crs: Any = "EPSG:4326",
    *,
    repair: bool = True,
    max_vertices: int = DEFAULT_MAX_VERTICES,
    swap_axes: bool = False,
    on_repair: Callable[[str], None] | None = None,
) -> tuple[Polygon | MultiPolygon, CRS]:
    """Parse a query geometry into a valid polygon and its CRS.

    :param value: GeoJSON (dict or text: Polygon, MultiPolygon, Feature, FeatureCollection of polygons),
        WKT (optionally ``SRID=<epsg>;`` prefixed) or a shapely geometry. A GeoJSON ``crs`` member or a
        WKT SRID overrides ``crs``.
    :param crs: CRS of the coordinates; coordinates are read in (x, y) / (lon, lat) order.
    :param swap_axes: the coordinates are (y, x) / (lat, lon): swap them first.
    :param on_repair: called with what was wrong when an invalid polygon is repaired.
    :param repair: repair invalid polygons with ``shapely.make_valid`` (keeping the polygonal parts);
        with ``False`` an invalid polygon is rejected.
    :returns: ``(polygon, crs)``; the polygon is valid, non-empty, of positive area, with finite coordinates.
    :raises InvalidGeometryError: with a message naming what was received and what was expected.
    """
    target_crs = parse_crs(crs)
    try:
        if isinstance(value, BaseGeometry):
            geom, declared = value, None
        elif isinstance(value, dict):
            geom, declared = _from_geojson(value)
        elif isinstance(value, str):
            geom, declared = _from_text(value)
        else:
            raise InvalidGeometryError(
                f"geometry: expected a GeoJSON object or a WKT string, got {type(value).__name__} {value!r:.80}")
    except RecursionError as exc:
        raise InvalidGeometryError("geometry: nested too deeply; expected a Polygon or MultiPolygon") from exc
    if declared is not None:
        target_crs = declared
    if geom.is_empty:
        raise InvalidGeometryError(f"geometry: the {geom.geom_type} is empty; expected a polygon with an area")
    coords = shapely.get_coordinates(geom)
    if not np.all(np.isfinite(coords)):
        raise InvalidGeometryError("geometry: coordinates contain NaN or Infinity; expected finite numbers")
    if len(coords) > max_vertices:
        raise InvalidGeometryError(
            f"geometry: {len(coords)} vertices is more than the limit of {max_vertices}; simplify the polygon"
        )
    if swap_axes:
        geom = shapely.transform(geom, lambda xy: xy[:, ::-1])
        coords = coords[:, ::-1]
    if target_crs.is_geographic:
        _check_geographic_range(coords)
    if geom.geom_type == "GeometryCollection":
        geom = polygonal(geom)
        if geom.is_empty:
            raise InvalidGeometryError(
                "geometry: the GeometryCollection holds no polygon with an area; expected a Polygon or MultiPolygon")
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise InvalidGeometryError(
            f"geometry: a {geom.geom_type} has no area; expected a Polygon or MultiPolygon"
        )
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        if not repair:
            raise InvalidGeometryError(f"geometry: invalid polygon ({reason}); expected a valid polygon")
        geom = repair_polygon(geom)
        if geom.is_empty or geom.area <= 0:
            raise InvalidGeometryError(
                f"geometry: invalid polygon ({reason}) has zero area after repair; expected a polygon with an area"
            )
        if on_repair is not None:
            on_repair(reason)
    if geom.is_empty or geom.area <= 0:
        raise InvalidGeometryError("geometry: the polygon has zero area; expected a polygon with an area")
    return geom, target_crs


def repair_polygon(geom: Polygon | MultiPolygon) -> Polygon | MultiPolygon:
    """An invalid (Multi)Polygon repaired without adding area: each part is its shell, made valid, minus its
    holes, made valid; the parts are then united. A hole outside its shell removes nothing, a hole crossing
    the shell removes what it covers, and a hole equal to the shell leaves nothing (``shapely.make_valid``
    alone would turn the first two into area of their own and the last into the whole shell).

    >>> repair_polygon(shapely.from_wkt("POLYGON ((0 0, 4 0, 4 4, 0 4, 0 0), (5 5, 6 5, 6 6, 5 6, 5 5))")).area
    16.0
    >>> repair_polygon(shapely.from_wkt("POLYGON ((0 0, 4 0, 4 4, 0 4, 0 0), (3 1, 5 1, 5 3, 3 3, 3 1))")).area
    14.0
    """
    parts = list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]
    pieces = []
    for part in parts:
        shell = polygonal(Polygon(part.exterior))
        holes = [polygonal(Polygon(ring)) for ring in part.interiors]
        pieces.append(shell.difference(shapely.union_all(holes)) if holes else shell)
    return polygonal(shapely.union_all(pieces) if len(pieces) > 1 else pieces[0])


def polygonal(geom: BaseGeometry) -> Polygon | MultiPolygon:
    """``geom`` as a valid (Multi)Polygon: an invalid one is repaired with ``shapely.make_valid``, and only
    the polygonal parts of a collection are kept (an empty Polygon when there are none).

    >>> polygonal(shapely.from_wkt("POLYGON ((0 0, 2 2, 2 0, 0 2, 0 0))")).geom_type
    'MultiPolygon'
    """
    if geom.is_empty:
        return Polygon()
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    if isinstance(geom, (Polygon, MultiPolygon)):
        return geom
    parts = [g for g in shapely.get_parts(geom) if isinstance(g, (Polygon, MultiPolygon)) and not g.is_empty]
    if not parts:
        return Polygon()
    merged = shapely.union_all(parts) if len(parts) > 1 else parts[0]
    return merged  # type: ignore[no-any-return]


def _check_geographic_range(coords: np.ndarray) -> None:
    lon, lat = coords[:, 0], coords[:, 1]
    if np.any(np.abs(lat) > 90) or np.any(np.abs(lon) > 180):
        hint = ""
        if np.all(np.abs(lon) <= 90) and np.all(np.abs(lat) <= 180):
            hint = "; the axes may be swapped: polyfis expects (lon, lat)"
        raise InvalidGeometryError(
            f"geometry: coordinates out of range for a geographic CRS (lon {lon.min():g}..{lon.max():g}, "
            f"lat {lat.min():g}..{lat.max():g}); expected lon in [-180, 180] and lat in [-90, 90]{hint}"
        )


@lru_cache(maxsize=256)
def _transformer(src: CRS, dst: CRS) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


_PROJECTED: OrderedDict[tuple[bytes, int, int], tuple[CRS, CRS, BaseGeometry]] = OrderedDict()
_PROJECTED_MAX = 256
_PROJECTED_LOCK = threading.Lock()


def reproject(geom: BaseGeometry, src: CRS, dst: CRS) -> BaseGeometry:
    """Reproject ``geom`` from ``src`` to ``dst`` in (x, y) axis order. Identity when the CRSs are equal.

    The last results are remembered per polygon (its exact coordinates) and pair of CRS objects (the
    parsed CRSs are shared, :func:`cached_crs`), so that every date of a query projects its polygon once.
    """
    key = (geom.wkb, id(src), id(dst))
    with _PROJECTED_LOCK:
        known = _PROJECTED.get(key)
        if known is not None and known[0] is src and known[1] is dst:  # the entry holds both: ids not reused
            _PROJECTED.move_to_end(key)
            return known[2]
    out = _reproject(geom, src, dst)
    with _PROJECTED_LOCK:
        _PROJECTED[key] = (src, dst, out)
        while len(_PROJECTED) > _PROJECTED_MAX:
            _PROJECTED.popitem(last=False)
    return out


def _reproject(geom: BaseGeometry, src: CRS, dst: CRS) -> BaseGeometry:
    if src == dst:
        return geom
    try:
        transformer = _transformer(src, dst)
        out = shapely.transform(geom, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
    except ProjError as exc:
        raise InvalidCRSError(f"crs: cannot transform from {crs_name(src)} to {crs_name(dst)}; expected a CRS PROJ "
                              "can transform to the archive's") from exc
    if not np.all(np.isfinite(shapely.get_coordinates(out))):
        raise InvalidGeometryError(
            f"geometry: cannot be projected from {crs_name(src)} to {crs_name(dst)} (outside the CRS's area of use)"
        )
    if not out.is_valid:
        out = polygonal(out)
        if out.is_empty or out.area <= 0:
            raise InvalidGeometryError(
                f"geometry: collapses when projected from {crs_name(src)} to {crs_name(dst)}; expected a polygon "
                "inside the area of use of both CRSs"
            )
    return out


def ground_pixel_size(crs: CRS, pixel: tuple[float, float], lon: float, lat: float) -> float:
    """The mean ground size, in metres, of a pixel of ``pixel`` (width, height) CRS units near (lon, lat).

    For a projected CRS the size is the pixel times the axis unit (the projection's scale error is ignored);
    for a geographic CRS it is the geodesic length of one pixel step east and north on the WGS 84 ellipsoid.
    """
    px, py = abs(pixel[0]), abs(pixel[1])
    if not crs.is_geographic:
        factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        return (px + py) / 2.0 * float(factor or 1.0)
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    east = geod.inv(lon, lat, lon + px, lat)[2]
    north = geod.inv(lon, lat, lon, lat + py)[2]
    return float(east + north) / 2.0
