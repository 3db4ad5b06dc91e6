"""Geometry parsing, repair, rejection and reprojection."""

from __future__ import annotations

import json
import re

import pytest
import shapely
from pyproj import CRS
from shapely.geometry import Polygon

from stats.errors import InvalidCRSError, InvalidGeometryError
from stats.geometry import parse_crs, parse_geometry, reproject

SQUARE = [[15.0, 45.0], [15.01, 45.0], [15.01, 45.01], [15.0, 45.01], [15.0, 45.0]]
HOLE = [[15.004, 45.004], [15.004, 45.006], [15.006, 45.006], [15.006, 45.004], [15.004, 45.004]]


@pytest.mark.parametrize(
    "value",
    [
        {"type": "Polygon", "coordinates": [SQUARE]},
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [SQUARE]}},
        {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
                                                    "geometry": {"type": "Polygon", "coordinates": [SQUARE]}}]},
        json.dumps({"type": "Polygon", "coordinates": [SQUARE]}),
        "POLYGON ((15 45, 15.01 45, 15.01 45.01, 15 45.01, 15 45))",
        "SRID=4326;POLYGON ((15 45, 15.01 45, 15.01 45.01, 15 45.01, 15 45))",
    ],
    ids=["geojson", "feature", "featurecollection", "geojson-text", "wkt", "ewkt"],
)
def test_every_input_form_gives_the_same_polygon(value) -> None:
    """GeoJSON geometry, Feature, FeatureCollection, GeoJSON text, WKT and EWKT parse alike."""
    geom, crs = parse_geometry(value)
    assert crs.to_epsg() == 4326
    assert geom.equals(Polygon(SQUARE))


def test_polygon_with_hole_keeps_the_hole() -> None:
    """An interior ring stays a hole, so the area is the square's minus the hole's."""
    geom, _ = parse_geometry({"type": "Polygon", "coordinates": [SQUARE, HOLE]})
    assert geom.area == pytest.approx(Polygon(SQUARE).area - Polygon(HOLE).area)


def test_geojson_crs_member_overrides_the_request_crs() -> None:
    """An old-style GeoJSON crs member (as in the eo-learn land-use file) sets the CRS."""
    value = {"type": "Polygon", "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
             "coordinates": [[[500000, 5000000], [500100, 5000000], [500100, 5000100], [500000, 5000000]]]}
    _, crs = parse_geometry(value)
    assert crs.to_epsg() == 32633


def test_self_intersecting_bowtie_is_repaired_or_rejected() -> None:
    """A bow-tie is repaired into two triangles by default and rejected with repair=False."""
    bowtie = "POLYGON ((0 0, 10 10, 10 0, 0 10, 0 0))"
    geom, _ = parse_geometry(bowtie, "EPSG:32633")
    assert geom.is_valid and geom.area == pytest.approx(50.0)
    with pytest.raises(InvalidGeometryError, match=r"invalid polygon \(Self-intersection"):
        parse_geometry(bowtie, "EPSG:32633", repair=False)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("POINT (15 45)", r"a Point has no area"),
        ({"type": "LineString", "coordinates": [[15, 45], [16, 46]]}, r"'LineString' is not supported"),
        ("POLYGON EMPTY", r"the Polygon is empty"),
        ("POLYGON ((15 45, 15 45, 15 45, 15 45))", r"zero area"),
        ({"type": "Polygon", "coordinates": [[[float("nan"), 45], [15, 45], [15, 46], [float("nan"), 45]]]},
         r"NaN or Infinity"),
        ("POLYGON ((15 45, 15.1", r"cannot parse WKT"),
        ({"type": "FeatureCollection", "features": []}, r"no features"),
        ({"type": "Feature", "geometry": None}, r"the Feature has geometry None"),
        ("{not json", r"invalid GeoJSON text"),
        (42, r"expected a GeoJSON object or a WKT string, got int"),
        ("POLYGON ((45 100, 46 100, 46 101, 45 100))", r"lat 100\.\.101.*axes may be swapped"),
        ("POLYGON ((200 10, 201 10, 201 11, 200 10))", r"out of range"),
    ],
)
def test_unusable_geometry_is_rejected_with_a_message(value, match) -> None:
    """Points, lines, empty, degenerate, NaN, malformed and out-of-range input each get a clear error."""
    with pytest.raises(InvalidGeometryError, match=match):
        parse_geometry(value)


def test_vertex_limit() -> None:
    """More vertices than the limit is rejected naming both numbers."""
    circle = shapely.Point(15, 45).buffer(0.01, quad_segs=100)  # 4 * 100 segments + the closing vertex
    with pytest.raises(InvalidGeometryError, match=r"401 vertices is more than the limit of 100"):
        parse_geometry(circle, max_vertices=100)


@pytest.mark.parametrize(
    ("text", "epsg"),
    [("EPSG:32633", 32633), ("32633", 32633), ("http://www.opengis.net/def/crs/EPSG/0/3857", 3857),
     ("urn:ogc:def:crs:EPSG::4326", 4326), ("CRS:84", 4326), ("OGC:CRS84", 4326)],
)
def test_crs_spellings(text, epsg) -> None:
    """EPSG codes, OGC URLs and URNs and CRS:84 are understood."""
    assert parse_crs(text).to_epsg() == epsg


@pytest.mark.parametrize("text", ["EPSG:999999", "not a crs", None, True])
def test_unknown_crs_is_rejected(text) -> None:
    """Unknown codes and nonsense get InvalidCRSError."""
    with pytest.raises(InvalidCRSError, match=r"crs: "):
        parse_crs(text)


def test_reproject_to_utm_and_back() -> None:
    """A lon/lat square goes to UTM 33N (metres, ~785 x 1112 m at 45 N) and back unchanged."""
    wgs, utm = CRS.from_epsg(4326), CRS.from_epsg(32633)
    geom = Polygon(SQUARE)
    projected = reproject(geom, wgs, utm)
    minx, miny, maxx, maxy = projected.bounds
    assert 780 < maxx - minx < 790 and 1105 < maxy - miny < 1115
    back = reproject(projected, utm, wgs)
    assert shapely.equals_exact(back, geom, tolerance=1e-9)


def test_a_collection_of_several_features_is_refused_pointing_to_batch() -> None:
    """Several polygons are not merged into one without a word: the 400 points to the batch route."""
    square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
    collection = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": square}] * 2}
    with pytest.raises(InvalidGeometryError, match=r"has 2 features; .*/api/v1/batch"):
        parse_geometry(collection)


@pytest.mark.parametrize(("kind", "coordinates", "said"), [
    ("Polygon", [[0, 0], [1, 0], [1, 1], [0, 0]], "a list of positions (one ring)"),
    ("MultiPolygon", [[[0, 0], [1, 0], [1, 1], [0, 0]]], "a list of rings (one polygon)"),
])
def test_coordinates_nested_one_level_short_are_named(kind: str, coordinates: list, said: str) -> None:
    with pytest.raises(InvalidGeometryError, match=rf"{kind}'s coordinates are {re.escape(said)}.*one more \[\.\.\.\]"):
        parse_geometry({"type": kind, "coordinates": coordinates})


@pytest.mark.parametrize("value", ["EPSG:" + "9" * 5000, "9" * 5000, "SRID=" + "9" * 5000 + ";POINT (0 0)",
                                   "+proj=longlat " + "+x_0=0 " * 20_000])
def test_absurd_crs_values_are_refused_before_parsing(value: str) -> None:
    """Codes of thousands of digits and CRS strings of tens of thousands of characters are 400-class errors
    naming the problem, not a crash (int() refuses over 4,300 digits) nor a PROJ parse of tens of seconds."""
    with pytest.raises(InvalidCRSError, match="unknown EPSG code|more than the limit of 20000"):
        if value.startswith("SRID="):
            parse_geometry(value)
        else:
            parse_crs(value)


def _ring(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


SHELL = _ring(0, 0, 400, 400)  # 160,000 m2 in UTM


@pytest.mark.parametrize("hole, area", [
    (_ring(500, 500, 600, 600), 160_000),        # outside the shell: removes nothing, adds nothing
    (_ring(300, 100, 500, 300), 160_000 - 20_000),  # crosses the shell: removes the 100 x 200 m it covers
    (_ring(-50, -50, 450, 450), None),           # covers the shell: nothing is left
    (SHELL, None),                               # equal to the shell: nothing is left
])
def test_repairing_a_polygon_never_adds_area(hole: list, area: float | None) -> None:
    value = {"type": "Polygon", "coordinates": [SHELL, hole]}
    repairs: list[str] = []
    if area is None:
        with pytest.raises(InvalidGeometryError, match="zero area after repair"):
            parse_geometry(value, "EPSG:32633")
        return
    geom, _ = parse_geometry(value, "EPSG:32633", on_repair=repairs.append)
    assert geom.area == pytest.approx(area)
    assert geom.within(Polygon(SHELL).buffer(1e-9)) and repairs


def test_a_repaired_hole_outside_the_field_answers_as_the_field(simple_archive) -> None:
    """The series of a field with a stray hole outside it is the field's own series, with the repair said."""
    from conftest import utm_box

    from stats import Archive, TimeSeriesRequest, query_timeseries

    archive = Archive.open(simple_archive)
    time = {"from": "2023-01-01", "to": "2023-12-31"}
    field = utm_box(2, 2, 6, 6)
    stray = utm_box(8, 8, 10, 10)
    plain = query_timeseries(TimeSeriesRequest.from_dict({"geometry": {"type": "Polygon", "coordinates": [field]},
                                                          "crs": "EPSG:32633", "time": time}), archive)
    holed = query_timeseries(TimeSeriesRequest.from_dict({"geometry": {"type": "Polygon", "coordinates": [field, stray]},
                                                          "crs": "EPSG:32633", "time": time}), archive)
    assert [d.valid_pixels for d in holed.series] == [d.valid_pixels for d in plain.series] == [16] * len(plain.series)
    assert any("repaired" in w for w in holed.warnings)


def test_geometry_collection_members_are_checked_like_polygons() -> None:
    unclosed = [[0, 0], [400, 0], [400, 400], [0, 400]]
    with pytest.raises(InvalidGeometryError, match="not closed"):
        parse_geometry({"type": "GeometryCollection", "geometries": [{"type": "Polygon", "coordinates": [unclosed]}]},
                       "EPSG:32633")
    nested = {"type": "GeometryCollection", "geometries": [
        {"type": "GeometryCollection", "geometries": [{"type": "Polygon", "coordinates": [SHELL]}]},
        {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}]}
    geom, _ = parse_geometry(nested, "EPSG:32633")
    assert geom.area == pytest.approx(160_000)
    with pytest.raises(InvalidGeometryError, match="'geometries'"):
        parse_geometry({"type": "GeometryCollection", "geometries": "x"}, "EPSG:32633")


def test_geojson_nested_thousands_deep_is_a_clear_error() -> None:
    deep = '{"type": "Polygon", "coordinates": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(InvalidGeometryError, match="nested too deeply|not closed|coordinates"):
        parse_geometry(deep)
    collection = {"type": "GeometryCollection", "geometries": []}
    inner = collection
    for _ in range(5000):
        nxt = {"type": "GeometryCollection", "geometries": []}
        inner["geometries"].append(nxt)
        inner = nxt
    with pytest.raises(InvalidGeometryError, match="nested too deeply|holds no polygon"):
        parse_geometry(collection)  # (which one depends on the interpreter's recursion limit)
