"""HTTP behaviour through Flask's test client: JSON, CSV, errors, meta routes, the OpenAPI contract."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
import yaml
from conftest import BASE_DN, CRS_UTM, utm_box
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from service import create_app

ROOT = Path(__file__).resolve().parents[1]
SPEC = yaml.safe_load((ROOT / "service" / "openapi.yaml").read_text())


def schema(name: str) -> OAS30Validator:
    return OAS30Validator({"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]})


@pytest.fixture(name="client")
def fixture_client(simple_archive: Path):
    app = create_app({"archive": str(simple_archive)})
    app.testing = True
    return app.test_client()


def body(**extra):
    return {"geometry": {"type": "Polygon", "coordinates": [utm_box(6, 1, 10, 5)]}, "crs": CRS_UTM,
            "time": {"from": "2023-01-01", "to": "2023-12-31"}, **extra}


def test_openapi_document_is_valid_and_served(client) -> None:
    """openapi.yaml validates as OpenAPI 3 and /openapi.yaml serves it unchanged."""
    validate(SPEC)
    response = client.get("/openapi.yaml")
    assert response.status_code == 200
    assert yaml.safe_load(response.data) == SPEC


def test_every_route_is_in_the_openapi_document(client) -> None:
    """Each Flask rule (but static) has a path in openapi.yaml with its methods."""
    app = client.application
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        assert path in SPEC["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in SPEC["paths"][path], (path, method)


def test_timeseries_json_matches_the_schema_and_the_hand_values(client) -> None:
    """Three dates oldest first, schema-valid, with the B04 mean base + 12 * 2.5 + 7.5 + 1 DN on the first."""
    response = client.post("/api/v1/timeseries", json=body(bands=["B04"], indices=["NDVI"]))
    assert response.status_code == 200, response.json
    data = response.json
    schema("TimeSeriesResponse").validate(data)
    assert data["status"] == "OK"
    assert [d["date"] for d in data["series"]] == ["2023-01-05", "2023-07-04", "2023-08-10"]
    first = data["series"][0]
    assert first["datetime"] == "2023-01-05T10:00:31Z"
    assert first["bands"]["B04"]["mean"] == pytest.approx((BASE_DN["B04"] + 38.5) / 10000)
    assert set(first["bands"]["B04"]) == {"mean", "min", "max", "std", "p10", "p50", "p90"}
    assert first["pixels"] == {"valid": 16, "nodata": 0}
    assert isinstance(first["cloud"]["cloudy"], bool)


def test_timeseries_csv_by_query_and_by_accept_header(client) -> None:
    """?format=csv and Accept: text/csv both give one row per date with the documented header."""
    by_query = client.post("/api/v1/timeseries?format=csv", json=body(bands=["B04"], statistics=["mean", "p90"]))
    by_header = client.post("/api/v1/timeseries", json=body(bands=["B04"], statistics=["mean", "p90"]),
                            headers={"Accept": "text/csv"})
    assert by_query.status_code == by_header.status_code == 200
    assert by_query.mimetype == "text/csv"
    assert by_query.data == by_header.data
    rows = list(csv.DictReader(io.StringIO(by_query.data.decode())))
    assert list(rows[0]) == ["date", "cloud_probability", "cloudy", "valid_pixels", "nodata_pixels",
                             "B04_mean", "B04_p90", "error"]
    assert [r["date"] for r in rows] == ["2023-01-05", "2023-07-04", "2023-08-10"]
    assert float(rows[0]["B04_mean"]) == pytest.approx((BASE_DN["B04"] + 38.5) / 10000)
    assert rows[0]["cloudy"] in ("true", "false") and rows[0]["error"] == ""


def test_broken_scene_gives_partial_status_over_http(client, simple_archive: Path) -> None:
    """A missing COG gives that date an error entry and status PARTIAL; still schema-valid."""
    (simple_archive / "items" / "T1_20230704" / "B04.tif").unlink()
    data = client.post("/api/v1/timeseries", json=body(bands=["B04"])).json
    schema("TimeSeriesResponse").validate(data)
    assert data["status"] == "PARTIAL"
    assert [("error" in d) for d in data["series"]] == [False, True, False]
    assert data["summary"]["errors"] == 1


def test_collections_and_health(client) -> None:
    """/collections reports the archive's extent in lon/lat and its three acquisitions."""
    data = client.get("/collections").json
    schema("Collections").validate(data)
    (collection,) = data["collections"]
    assert collection["acquisitions"] == 3
    west, south, east, north = collection["extent"]["spatial"]["bbox"][0]
    assert 14.9 < west < east < 15.1 and 45.1 < south < north < 45.2
    assert collection["extent"]["temporal"]["interval"] == [["2023-01-05T10:00:31Z", "2023-08-10T10:00:31Z"]]
    assert client.get("/health").json == {"status": "ok", "archive": {"id": "sentinel-2-l1c", "acquisitions": 3}}


BAD_REQUESTS = [
    ("not json", "{geometry:", 400, r"invalid JSON"),
    ("empty body", "", 400, r"empty"),
    ("array body", "[]", 400, r"expected a JSON object"),
    ("NaN number", '{"geometry": "POLYGON((0 0,1 0,1 1,0 0))", "time": {"from": "2023-01-01", "to": "2023-01-02"}, "cloud": {"threshold": NaN}}', 400, r"NaN"),
    ("missing geometry", {"time": {"from": "2023-01-01", "to": "2023-01-02"}}, 400, r"geometry: missing"),
    ("missing time", {"geometry": "POLYGON((0 0,1 0,1 1,0 0))"}, 400, r"time: missing"),
    ("bad WKT", {"geometry": "POLYGON((0 0, 1 0", "time": {"from": "2023-01-01", "to": "2023-01-02"}}, 400, r"cannot parse WKT"),
    ("point", {"geometry": {"type": "Point", "coordinates": [15, 45]}, "time": {"from": "2023-01-01", "to": "2023-01-02"}}, 400, r"'Point' is not supported"),
    ("line WKT", {"geometry": "LINESTRING (15 45, 15.1 45.1)", "time": {"from": "2023-01-01", "to": "2023-01-02"}}, 400, r"LineString has no area"),
    ("empty polygon", {"geometry": "POLYGON EMPTY", "time": {"from": "2023-01-01", "to": "2023-01-02"}}, 400, r"empty"),
    ("swapped lat/lon", {"geometry": "POLYGON ((45 150, 45.1 150, 45.1 150.1, 45 150))", "time": {"from": "2023-01-01", "to": "2023-01-02"}}, 400, r"swapped"),
    ("unknown crs", {"geometry": "POLYGON((0 0,1 0,1 1,0 0))", "crs": "EPSG:999999", "time": {"from": "2023-01-01", "to": "2023-01-02"}}, 400, r"unknown EPSG code 999999"),
    ("reversed dates", {"geometry": "POLYGON((0 0,1 0,1 1,0 0))", "time": {"from": "2023-02-01", "to": "2023-01-02"}}, 400, r"after 'to'"),
    ("malformed date", {"geometry": "POLYGON((0 0,1 0,1 1,0 0))", "time": {"from": "2023-13-01", "to": "2023-12-02"}}, 400, r"cannot parse '2023-13-01'"),
    ("unknown band", {"geometry": "POLYGON((0 0,1 0,1 1,0 0))", "time": {"from": "2023-01-01", "to": "2023-01-02"}, "bands": ["B13"]}, 400, r"unknown band 'B13'"),
    ("unknown index", {"geometry": "POLYGON((0 0,1 0,1 1,0 0))", "time": {"from": "2023-01-01", "to": "2023-01-02"}, "indices": ["FOO"]}, 400, r"unknown index 'FOO'"),
    ("code in index", {"geometry": "POLYGON((0 0,1 0,1 1,0 0))", "time": {"from": "2023-01-01", "to": "2023-01-02"}, "indices": [{"name": "X", "expression": "__import__('os')"}]}, 400, r"expected band names"),
    ("unknown statistic", {"geometry": "POLYGON((0 0,1 0,1 1,0 0))", "time": {"from": "2023-01-01", "to": "2023-01-02"}, "statistics": ["p101"]}, 400, r"unknown statistic 'p101'"),
    ("bad resolution", {"geometry": "POLYGON((0 0,1 0,1 1,0 0))", "time": {"from": "2023-01-01", "to": "2023-01-02"}, "resolution": -10}, 400, r"resolution: expected one of \[10, 20, 60\]"),
    ("threshold out of range", {"geometry": "POLYGON((0 0,1 0,1 1,0 0))", "time": {"from": "2023-01-01", "to": "2023-01-02"}, "cloud": {"threshold": 2}}, 400, r"cloud.threshold: expected a number between 0 and 1, got 2"),
    ("unknown field", {"geometry": "POLYGON((0 0,1 0,1 1,0 0))", "time": {"from": "2023-01-01", "to": "2023-01-02"}, "colour": "red"}, 400, r"unknown fields \['colour'\]"),
    ("integer too big for a float", '{"geometry": "POLYGON((0 0,1 0,1 1,0 0))", "time": {"from": "2023-01-01", "to": "2023-01-02"}, "cloud": {"threshold": 1' + "0" * 400 + '}}', 400, r"cloud.threshold: expected a number between 0 and 1"),
    ("feature that is not an object", {"geometry": {"type": "FeatureCollection", "features": [1]}, "time": {"from": "2023-01-01", "to": "2023-01-02"}}, 400, r"member 1 is not a Feature"),
    ("date out of range after offset", {"geometry": "POLYGON((0 0,1 0,1 1,0 0))", "time": {"from": "0001-01-01T00:00:00+01:00", "to": "2023-01-02"}}, 400, r"time.from: cannot parse"),
    ("superscript digit resolution", {"geometry": "POLYGON((0 0,1 0,1 1,0 0))", "time": {"from": "2023-01-01", "to": "2023-01-02"}, "resolution": "\u00b2"}, 400, r"resolution: expected one of"),
    ("lone surrogate crs", '{"geometry": "POLYGON((0 0,1 0,1 1,0 0))", "crs": "\\ud800", "time": {"from": "2023-01-01", "to": "2023-01-02"}}', 400, r"crs: unknown coordinate reference system"),
    ("vertical crs", {"geometry": "POLYGON((0 0,1 0,1 1,0 0))", "crs": "EPSG:5703", "time": {"from": "2023-01-01", "to": "2023-01-02"}}, 400, r"expected a horizontal"),
    ("huge constant in index", {"geometry": "POLYGON((0 0,1 0,1 1,0 0))", "time": {"from": "2023-01-01", "to": "2023-01-02"}, "indices": [{"name": "X", "expression": "1" + "0" * 400 + " * B04"}]}, 400, r"too large for a float"),
    ("deeply nested json", '{"geometry": ' + "[" * 100000 + "]" * 100000 + ', "time": {"from": "2023-01-01", "to": "2023-01-02"}}', 400, r"nested too deeply"),
    ("index named like a band", {"geometry": "POLYGON((0 0,1 0,1 1,0 0))", "time": {"from": "2023-01-01", "to": "2023-01-02"}, "indices": [{"name": "B04", "expression": "B08"}]}, 400, r"are band names"),
    ("unknown key in time", {"geometry": "POLYGON((0 0,1 0,1 1,0 0))", "time": {"from": "2023-01-01", "to": "2023-01-02", "tz": "CET"}}, 400, r"time: expected an object"),
]


@pytest.mark.parametrize(("label", "payload", "status", "match"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_request_gets_a_json_4xx_naming_the_problem(client, label, payload, status, match) -> None:
    """Each malformed request gets a JSON error with the expected status and a message that explains it."""
    if isinstance(payload, str):
        response = client.post("/api/v1/timeseries", data=payload, content_type="application/json")
    else:
        response = client.post("/api/v1/timeseries", json=payload)
    assert response.status_code == status, response.data
    schema("Error").validate(response.json)
    error = response.json["error"]
    assert error["status"] == status
    assert re.search(match, error["message"]), f"{error['message']!r} does not match {match!r}"
    assert "Traceback" not in response.get_data(as_text=True)


def test_unknown_format_wrong_method_and_oversized_body(simple_archive: Path) -> None:
    """?format=xml is 400, GET on the POST route is 405, a body over the limit is 413: all JSON."""
    app = create_app({"archive": str(simple_archive), "max_body_bytes": 2000})
    client = app.test_client()
    assert client.post("/api/v1/timeseries?format=xml", json=body()).status_code == 400
    response = client.get("/api/v1/timeseries")
    assert response.status_code == 405 and response.json["error"]["status"] == 405
    big = client.post("/api/v1/timeseries", data="x" * 5000, content_type="application/json")
    assert big.status_code == 413 and big.json["error"]["code"] == "RequestEntityTooLarge"
    assert client.post("/api/v1/timeseries", data="a=b", content_type="application/x-www-form-urlencoded").status_code == 415


def test_unreadable_archive_is_a_503_with_a_reason(tmp_path: Path) -> None:
    """An archive path without a catalog is reported as 503 naming the path, not a traceback."""
    client = create_app({"archive": str(tmp_path / "nowhere")}).test_client()
    response = client.get("/health")
    assert response.status_code == 503
    assert "nowhere" in response.json["error"]["message"]


def test_pixel_mode_and_water_over_http_match_the_schema(client) -> None:
    """cloud.mode both with water adds cloud.fraction, trust fields and water, all schema-valid."""
    response = client.post("/api/v1/timeseries", json=body(bands=["B04"], cloud={"mode": "both", "resolution": 20},
                                                             water={"method": "otsu"}))
    assert response.status_code == 200, response.json
    data = response.json
    schema("TimeSeriesResponse").validate(data)
    first = data["series"][0]["cloud"]
    assert first["fraction"] == 0.0 and first["clear_pixels"] == 16 and first["trusted"] is True
    assert data["series"][0]["water"]["fraction"] == 0.0
    csv_text = client.post("/api/v1/timeseries?format=csv", json=body(cloud={"mode": "pixel"})).get_data(as_text=True)
    assert csv_text.splitlines()[0].startswith(
        "date,cloud_probability,cloudy,valid_pixels,nodata_pixels,cloud_fraction,cloud_probability_mean")


@pytest.mark.parametrize(
    ("cloud", "match"),
    [({"mode": "cells"}, r"cloud.mode: expected one of \['averaged', 'pixel', 'both'\], got 'cells'"),
     ({"resolution": 15}, r"cloud.resolution: expected a multiple of 10 m from 10 to 160, got 15"),
     ({"mode": "pixel", "max_probability": 0.5}, r"cloud.max_probability: filters on the averaged pixel"),
     ({"max_fraction": 0.5}, r"cloud.max_fraction: needs the per-pixel mask"),
     ({"dilation_size": -1}, r"cloud.dilation_size: expected an integer from 0 to 20")],
)
def test_bad_cloud_options_are_400(client, cloud, match) -> None:
    """Each bad cloud option names itself, the value and what is accepted."""
    response = client.post("/api/v1/timeseries", json=body(cloud=cloud))
    assert response.status_code == 400
    assert re.search(match, response.json["error"]["message"]), response.json


def test_http_level_errors_name_what_was_received_and_expected(simple_archive: Path) -> None:
    """404, 405 and 413 say the method and path, the methods allowed, the size and the limit."""
    client = create_app({"archive": str(simple_archive), "max_body_bytes": 2000}).test_client()
    missing = client.get("/api/v1/timeserie").json["error"]
    assert missing["code"] == "NotFound" and "GET /api/v1/timeserie: no such route" in missing["message"]
    wrong = client.get("/api/v1/timeseries").json["error"]
    assert wrong["code"] == "MethodNotAllowed" and wrong["message"].endswith("expected POST")
    big = client.post("/api/v1/timeseries", data="x" * 5000, content_type="application/json").json["error"]
    assert "5000 bytes, more than the limit of 2000 bytes (POLYFIS_MAX_BODY_BYTES)" in big["message"]


def test_the_contract_is_read_offline_at_docs(client) -> None:
    """/docs is a Swagger UI page that loads its script and style from this server and the contract from
    /openapi.yaml; /openapi.json is the same document."""
    page = client.get("/docs").get_data(as_text=True)
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(s.startswith("/static/swagger-ui/") for s in sources)
    for source in sources:
        assert client.get(source).status_code == 200, source
    assert 'url: "/openapi.yaml"' in page
    assert client.get("/openapi.json").json == SPEC


def test_the_contracts_defaults_are_the_engines() -> None:
    """The defaults openapi.yaml states (which the web page's form starts from) are those a request parsed
    without the field gets."""
    from stats.request import QueryOptions

    props = SPEC["components"]["schemas"]["TimeSeriesRequest"]["properties"]
    parsed = QueryOptions.from_dict({})
    assert tuple(props["bands"]["default"]) == parsed.bands
    assert list(props["indices"]["default"]) == list(parsed.indices)
    assert tuple(props["statistics"]["default"]) == parsed.statistics
    assert props["resolution"]["default"] == parsed.resolution
    assert props["harmonize"]["default"] is parsed.harmonize
    for name, schema in props["cloud"]["properties"].items():
        if "default" in schema and hasattr(parsed.cloud, name):
            value = getattr(parsed.cloud, name)
            assert (list(value) if isinstance(value, tuple) else value) == schema["default"], name
