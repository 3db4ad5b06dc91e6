"""Malformed requests across the native, FIS and Statistical routes: each gets a JSON 4xx that names the
field, what was received and what was expected; none gets a 5xx."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import CRS_UTM, utm_box

from service import create_app

SQUARE = {"type": "Polygon", "coordinates": [utm_box(6, 1, 10, 5)]}
WKT = "POLYGON ((500061 5000109, 500099 5000109, 500099 5000071, 500061 5000071, 500061 5000109))"
GOOD_TS = {"geometry": SQUARE, "crs": CRS_UTM, "time": {"from": "2023-01-01", "to": "2023-12-31"}}
SCRIPT = ("//VERSION=3\nfunction setup(){return {input:[{bands:['B04','dataMask']}],output:[{id:'x',bands:1},"
          "{id:'dataMask',bands:1}]}}\nfunction evaluatePixel(s){return {x:[s.B04],dataMask:[s.dataMask]}}")
GOOD_STAT = {"input": {"bounds": {"geometry": SQUARE, "properties": {"crs": "http://www.opengis.net/def/crs/EPSG/0/32633"}},
                       "data": [{"type": "sentinel-2-l1c"}]},
             "aggregation": {"timeRange": {"from": "2023-01-01T00:00:00Z", "to": "2023-02-01T00:00:00Z"},
                             "aggregationInterval": {"of": "P1D"}, "resx": 10, "resy": 10, "evalscript": SCRIPT}}
GOOD_FIS = {"LAYER": "NDVI", "CRS": CRS_UTM, "TIME": "2023-01-01/2023-12-31", "GEOMETRY": WKT}


def ts(**changes):
    return {**GOOD_TS, **changes}


def stat(path: str, value):
    import copy

    body = copy.deepcopy(GOOD_STAT)
    *parents, last = path.split(".")
    node = body
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    node[last] = value
    return body


# (route, payload, status, regex of the message)
CASES = [
    # native: JSON itself
    ("ts", "{not json", 400, r"request body: invalid JSON"),
    ("ts", "", 400, r"request body: empty"),
    ("ts", '"a string"', 400, r"request body: expected a JSON object, got str"),
    ("ts", '{"geometry": NaN}', 400, r"NaN is not a valid JSON number"),
    ("ts", '{"geometry": Infinity}', 400, r"Infinity is not a valid JSON number"),
    ("ts", '{"a": ' + "[" * 5000 + "]" * 5000 + "}", 400, r"nested too deeply"),
    # native: geometry
    ("ts", ts(geometry="POLYGON ((0 0, 1 1"), 400, r"geometry: cannot parse WKT"),
    ("ts", ts(geometry={"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1]]]}), 400, r"ring 0 of the Polygon is not closed"),
    ("ts", ts(geometry={"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}), 400, r"is not closed or has 4 positions"),
    ("ts", ts(geometry={"type": "Polygon", "coordinates": "x"}), 400, r"geometry: coordinate 'x' is not a finite number"),
    ("ts", ts(geometry="POLYGON ((0 0, 10 10, 10 0, 0 10, 0 0))", crs=CRS_UTM), 200, r""),  # repaired bow-tie
    ("ts", ts(geometry="POLYGON EMPTY"), 400, r"the Polygon is empty"),
    ("ts", ts(geometry="POINT (500080 5000090)"), 400, r"a Point has no area"),
    ("ts", ts(geometry="LINESTRING (500080 5000090, 500090 5000100)"), 400, r"a LineString has no area"),
    ("ts", '{"geometry": {"type": "Polygon", "coordinates": [[[1e400, 0], [1, 0], [1, 1], [1e400, 0]]]}, "time": {"from": "2023-01-01", "to": "2023-01-02"}}', 400, r"coordinate inf is not a finite number"),
    ("ts", ts(geometry="POLYGON ((45 200, 46 200, 46 201, 45 200))", crs="EPSG:4326"), 400, r"out of range for a geographic CRS"),
    ("ts", ts(geometry="POLYGON ((46.03 15.02, 46.04 15.02, 46.04 95.03, 46.03 15.02))", crs="EPSG:4326"), 400, r"out of range"),
    ("ts", ts(geometry=12), 400, r"geometry: expected a GeoJSON object or a WKT string, got int"),
    ("ts", ts(geometry={"type": "Feature", "geometry": None}), 400, r"the Feature has geometry None"),
    ("ts", ts(geometry="POLYGON ((\u00e9 0, 1 0, 1 1, 0 0))"), 400, r"cannot parse WKT"),
    # native: crs and time
    ("ts", ts(crs="EPSG:123456789"), 400, r"crs: unknown EPSG code"),
    ("ts", ts(crs="mars"), 400, r"crs: unknown coordinate reference system 'mars'"),
    ("ts", ts(crs=4326), 400, r"crs: expected a string such as 'EPSG:4326', got 4326"),
    ("ts", ts(time={"from": "2023-12-31", "to": "2023-01-01"}), 400, r"'from' \(2023-12-31\) is after 'to'"),
    ("ts", ts(time={"from": "31/12/2023", "to": "2024-01-01"}), 400, r"time.from: cannot parse '31/12/2023'"),
    ("ts", ts(time={"from": "2023-01-01"}), 400, r"time: expected an object"),
    ("ts", ts(time="yesterday"), 400, r"time: expected an object"),
    ("ts", ts(time={"from": 20230101, "to": "2023-02-01"}), 400, r"time.from: expected an ISO-8601 date"),
    # native: other fields
    ("ts", ts(bands=["B4"]), 400, r"bands: unknown band 'B4'; expected one of"),
    ("ts", ts(bands="B04"), 400, r"bands: expected a non-empty list"),
    ("ts", ts(bands=[]), 400, r"bands: expected a non-empty list"),
    ("ts", ts(indices=["NDXI"]), 400, r"indices: unknown index 'NDXI'"),
    ("ts", ts(indices=[{"name": "X", "expression": "open('/etc/passwd')"}]), 400, r"indices: 'X' has"),
    ("ts", ts(statistics=["average"]), 400, r"statistics: unknown statistic 'average'"),
    ("ts", ts(statistics="mean"), 400, r"statistics: expected a non-empty list"),
    ("ts", ts(resolution=-10), 400, r"resolution: expected one of \[10, 20, 60\] \(metres\), got -10"),
    ("ts", ts(resolution=15), 400, r"resolution: expected one of"),
    ("ts", ts(resolution="ten"), 400, r"resolution: expected one of"),
    ("ts", ts(cloud={"threshold": "0.4"}), 400, r"cloud.threshold: expected a number between 0 and 1, got '0.4'"),
    ("ts", ts(cloud={"threshold": True}), 400, r"cloud.threshold: expected a number"),
    ("ts", ts(cloud=[0.4]), 400, r"cloud: expected an object"),
    ("ts", ts(cloud={"source": "disk"}), 400, r"cloud.source: expected one of \['auto', 'layers', 'model'\], got 'disk'"),
    ("ts", ts(cloud={"opening_size": -1}), 400, r"cloud.opening_size: expected .*0.*20"),
    ("ts", ts(cloud={"closing_size": 2.5}), 400, r"cloud.closing_size: expected"),
    ("ts", ts(cloud={"min_cloud_size": 401}), 400, r"cloud.min_cloud_size: expected .*400"),
    ("ts", ts(cloud={"erosion_size": "1"}), 400, r"cloud.erosion_size: expected"),
    ("ts", ts(harmonize="yes"), 400, r"harmonize: expected true or false, got 'yes'"),
    ("ts", ts(max_cloud_cover=101), 400, r"max_cloud_cover: expected a number between 0 and 100"),
    ("ts", ts(water={"method": "magic"}), 400, r"water.method: expected one of \['threshold', 'otsu', 'canny_otsu'\]"),
    ("ts", ts(histogram={"bins": 0}), 400, r"histogram.bins: expected an integer from 1 to 1000"),
    ("ts", ts(unexpected=1), 400, r"unknown fields \['unexpected'\]"),
    ("ts", ts(**{"g\u00e9om\u00e9trie": 1}), 400, r"unknown fields \['g\u00e9om\u00e9trie'\]"),
    # FIS
    ("fis", {**GOOD_FIS, "LAYER": "NDVI2"}, 400, r"LAYER: unknown layer 'NDVI2'"),
    ("fis", {k: v for k, v in GOOD_FIS.items() if k != "TIME"}, 400, r"missing FIS parameters \['TIME'\]"),
    ("fis", {**GOOD_FIS, "BINS": "-3"}, 400, r"BINS: got '-3'; expected an integer from 1 to 1000"),
    ("fis", {**GOOD_FIS, "BINS": "5000"}, 400, r"BINS: got '5000'"),
    ("fis", {**GOOD_FIS, "RESOLUTION": "-20m"}, 400, r"RESOLUTION: got '-20m'"),
    ("fis", {**GOOD_FIS, "RESOLUTION": "fast"}, 400, r"RESOLUTION: got 'fast'"),
    ("fis", {**GOOD_FIS, "TIME": "2023-13-01"}, 400, r"TIME: cannot parse '2023-13-01'"),
    ("fis", {**GOOD_FIS, "MAXCC": "lots"}, 400, r"MAXCC: got 'lots'"),
    ("fis", {**GOOD_FIS, "CRS": "EPSG:99999"}, 400, r"crs: unknown EPSG code 99999"),
    ("fis", {**GOOD_FIS, "GEOMETRY": "LINESTRING (0 0, 1 1)"}, 400, r"a LineString has no area"),
    ("fis", {**GOOD_FIS, "EVALSCRIPT": "cmV0dXJuIFsxXQ=="}, 400, r"EVALSCRIPT: not supported"),
    ("fis", {**GOOD_FIS, "FOO": "1"}, 400, r"unknown FIS parameters \['FOO'\]"),
    # Statistical
    ("stat", stat("input.data.0.type", "landsat-8"), 400, r"input.data\[0\].type: got 'landsat-8'"),
    ("stat", stat("input.bounds", {}), 400, r"input.bounds: expected 'geometry'"),
    ("stat", stat("input.bounds.properties", {"crs": "urn:nope"}), 400, r"crs: unknown coordinate reference system"),
    ("stat", stat("aggregation.aggregationInterval", {"of": "P0D"}), 400, r"aggregationInterval.of: got 'P0D'"),
    ("stat", stat("aggregation.aggregationInterval", {"of": "P8000Y"}), 400, r"goes past the year 9999"),
    ("ts", {**GOOD_TS, "aggregation": {"interval": "P9000Y"}}, 400, r"aggregation.interval: a step of"),
    ("ts", {**GOOD_TS, "fill": {"grid": "P1000000Y"}}, 400, r"fill.grid: got 'P1000000Y'"),
    ("ts", {**GOOD_TS, "season": ["NDVI"]}, 400, r"season: expected an object"),
    ("stat", stat("aggregation.timeRange", {"from": "2023-02-01T00:00:00Z", "to": "2023-01-01T00:00:00Z"}), 400, r"is not before 'to'"),
    ("stat", stat("aggregation.evalscript", "return 1"), 400, r"evalscript: error while evaluating the script"),
    ("stat", stat("aggregation.evalscript", ""), 400, r"evalscript: expected the text"),
    ("stat", stat("aggregation.resx", -10), 400, r"aggregation.resx: got -10"),
    ("stat", stat("input.data.0.dataFilter", {"maxCloudCoverage": 500}), 400, r"maxCloudCoverage: got 500"),
    ("stat", stat("calculations", {"default": {"histograms": {"default": {"nBins": 0}}}}), 400, r"nBins: got 0"),
]


@pytest.fixture(name="client")
def fixture_client(simple_archive: Path):
    return create_app({"archive": str(simple_archive), "max_body_bytes": 200_000}).test_client()


def _send(client, route: str, payload):
    if route == "fis":
        return client.get("/ogc/fis", query_string=payload)
    url = "/api/v1/timeseries" if route == "ts" else "/api/v1/statistics"
    if isinstance(payload, str):
        return client.post(url, data=payload.encode("utf-8"), content_type="application/json")
    return client.post(url, json=payload)


@pytest.mark.parametrize(("route", "payload", "status", "match"), CASES, ids=[f"{i}-{c[0]}" for i, c in enumerate(CASES)])
def test_malformed_request_gets_a_clear_4xx(client, route, payload, status, match) -> None:
    """The status is as listed (4xx, or 200 for input that is repaired) and the message explains it."""
    response = _send(client, route, payload)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    if status >= 400:
        error = response.json["error"]
        assert error["status"] == status and re.search(match, error["message"]), error
    assert "Traceback" not in response.get_data(as_text=True)


def test_the_table_covers_every_route_with_at_least_forty_cases() -> None:
    """At least 40 cases, spread over the native, FIS and Statistical routes."""
    assert len(CASES) >= 40 and {c[0] for c in CASES} == {"ts", "fis", "stat"}


def test_oversized_body_is_413_on_every_route(simple_archive: Path) -> None:
    """A body over POLYFIS_MAX_BODY_BYTES is 413 on each POST route."""
    client = create_app({"archive": str(simple_archive), "max_body_bytes": 1000}).test_client()
    for url in ("/api/v1/timeseries", "/api/v1/statistics", "/ogc/fis"):
        response = client.post(url, data="{" + " " * 5000 + "}", content_type="application/json")
        assert response.status_code == 413, url
        assert response.json["error"]["status"] == 413


def test_an_error_lists_at_most_ten_unknown_fis_parameters(client) -> None:
    params = {**GOOD_FIS, **{f"P{i:06d}": "1" for i in range(5000)}}
    response = client.get("/ogc/fis", query_string=params)
    message = response.get_json()["error"]["message"]
    assert response.status_code == 400 and "and 4990 more" in message and len(message) < 2000


def test_a_multipart_evalscript_may_use_the_whole_body_limit(client) -> None:
    """The body limit (200,000 bytes here) bounds a multipart evalscript, not a smaller form limit."""
    import json as json_module

    script = "//" + "x" * 150_000 + "\n" + GOOD_STAT["aggregation"]["evalscript"]
    request = dict(GOOD_STAT)
    response = client.post("/api/v1/statistics", data={"request": json_module.dumps(request), "evalscript": script},
                           content_type="multipart/form-data")
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("crs, match", [
    ("+proj=utm +zone=33" + " +x=1" * 200, "more than the limit of 100"),
    ("9" * 5000, "out of range|EPSG"),
])
def test_crs_texts_with_too_many_parameters_or_digits_are_400(client, crs: str, match: str) -> None:
    response = client.post("/api/v1/timeseries", json={**GOOD_TS, "crs": crs})
    assert response.status_code == 400 and re.search(match, response.get_json()["error"]["message"])
