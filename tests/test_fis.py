"""Sentinel Hub FIS compatibility: parameters, axis order, layers, histograms, response shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import BASE_DN, CRS_UTM, at_10m, band_array, utm_box
from pyproj import Transformer

from service import create_app

TO_WGS = Transformer.from_crs(CRS_UTM, "EPSG:4326", always_xy=True)


@pytest.fixture(name="client")
def fixture_client(simple_archive: Path):
    return create_app({"archive": str(simple_archive)}).test_client()


def wkt(ring, *, lat_lon: bool = False) -> str:
    points = [(y, x) if lat_lon else (x, y) for x, y in ring]
    return "POLYGON ((" + ", ".join(f"{a!r} {b!r}" for a, b in points) + "))"


def lonlat_ring(col0: int, row0: int, col1: int, row1: int) -> list[tuple[float, float]]:
    return [TO_WGS.transform(x, y) for x, y in utm_box(col0, row0, col1, row1)]


def expected(band: str, col0: int, row0: int, col1: int, row1: int) -> np.ndarray:
    return at_10m(band, band_array(band))[row0:row1, col0:col1].ravel() / 10000


def test_get_with_utm_geometry_gives_basic_stats_newest_first(client) -> None:
    """LAYER=BANDS-S2-L1C answers C0..C12 and the data mask C13, one entry per date, newest first, B04 stats
    by hand."""
    response = client.get("/ogc/fis/my-instance", query_string={
        "LAYER": "BANDS-S2-L1C", "CRS": CRS_UTM, "TIME": "2023-01-01/2023-12-31",
        "GEOMETRY": wkt(utm_box(6, 1, 10, 5)), "RESOLUTION": "10"})
    assert response.status_code == 200, response.json
    data = response.json
    assert list(data) == [f"C{i}" for i in range(14)]
    assert [e["date"] for e in data["C3"]] == ["2023-08-10", "2023-07-04", "2023-01-05"]
    values = expected("B04", 6, 1, 10, 5)
    stats = data["C3"][-1]["basicStats"]
    assert set(stats) == {"min", "max", "mean", "stDev"}
    assert stats["mean"] == pytest.approx(values.mean()) and stats["stDev"] == pytest.approx(values.std())
    assert stats["min"] == pytest.approx(values.min()) and stats["max"] == pytest.approx(values.max())
    assert "histogram" not in data["C3"][0]


def test_epsg4326_is_lat_lon_and_crs84_is_lon_lat(client) -> None:
    """The same polygon as EPSG:4326 (lat lon) and CRS:84 (lon lat) gives the same answer."""
    ring = lonlat_ring(6, 1, 10, 5)
    common = {"LAYER": "NDVI", "TIME": "2023-01-05", "RESOLUTION": "10m"}
    lat_lon = client.get("/ogc/fis", query_string={**common, "CRS": "EPSG:4326", "GEOMETRY": wkt(ring, lat_lon=True)})
    lon_lat = client.get("/ogc/fis", query_string={**common, "CRS": "CRS:84", "GEOMETRY": wkt(ring)})
    assert lat_lon.status_code == lon_lat.status_code == 200, (lat_lon.json, lon_lat.json)
    assert lat_lon.json == lon_lat.json and len(lat_lon.json["C0"]) == 1
    for spelling in ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", "urn:ogc:def:crs:OGC:1.3:CRS84"):
        other = client.get("/ogc/fis", query_string={**common, "CRS": spelling, "GEOMETRY": wkt(ring)})
        assert other.json == lon_lat.json, spelling
    red, nir = expected("B04", 6, 1, 10, 5), expected("B08", 6, 1, 10, 5)
    assert lat_lon.json["C0"][0]["basicStats"]["mean"] == pytest.approx(((nir - red) / (nir + red)).mean())


def test_post_json_as_sentinelhub_py_sent_it(client) -> None:
    """The lower-case JSON body of sentinelhub-py's FisRequest (service, warnings, maxcc...) works."""
    ring = lonlat_ring(6, 1, 10, 5)
    body = {"service": "fis", "warnings": False, "maxcc": 100.0, "crs": "EPSG:4326", "layer": "TRUE_COLOR",
            "resolution": "10m", "time": "2023-01-01T00:00:00Z/2023-07-31T23:59:59Z",
            "geometry": wkt(ring, lat_lon=True), "bins": 4, "type": "EQUALFREQUENCY"}
    response = client.post("/ogc/fis/instance-id", json=body)
    assert response.status_code == 200, response.json
    data = response.json
    assert list(data) == ["C0", "C1", "C2", "C3"]
    first = data["C0"][0]
    assert first["date"] == "2023-07-04"
    bins = first["histogram"]["bins"]
    assert len(bins) == 4 and all(set(b) == {"lowEdge", "mean", "count"} for b in bins)
    assert sum(b["count"] for b in bins) == 16.0 and all(b["count"] == 4.0 for b in bins)
    red = np.sort(expected("B04", 6, 1, 10, 5))
    assert [b["lowEdge"] for b in bins] == pytest.approx(red[::4].tolist())


@pytest.mark.parametrize(("kind", "keys"), [("EQUIDISTANT", {"lowEdge", "count"}), ("STREAMING", {"value", "count"})])
def test_histogram_shapes_follow_type(client, kind, keys) -> None:
    """EQUIDISTANT bins are {lowEdge, count} with equal widths; STREAMING {value, count}."""
    response = client.get("/ogc/fis", query_string={
        "layer": "NDWI", "crs": CRS_UTM, "time": "2023-01-05", "geometry": wkt(utm_box(6, 1, 10, 5)),
        "resolution": "10", "bins": "5", "type": kind.lower()})
    bins = response.json["C0"][0]["histogram"]["bins"]
    assert all(set(b) == keys for b in bins) and sum(b["count"] for b in bins) == 16.0
    if kind == "EQUIDISTANT":
        edges = [b["lowEdge"] for b in bins]
        assert np.allclose(np.diff(edges), edges[1] - edges[0])


def test_maxcc_filters_on_scene_cloud_cover(make_archive) -> None:
    """MAXCC drops tiles whose eo:cloud_cover is above it."""
    import datetime as dt

    root = make_archive([
        {"id": "a", "when": dt.datetime(2023, 5, 1, 10, tzinfo=dt.UTC), "cloud_cover": 5.0},
        {"id": "b", "when": dt.datetime(2023, 5, 11, 10, tzinfo=dt.UTC), "cloud_cover": 60.0},
    ])
    client = create_app({"archive": str(root)}).test_client()
    params = {"LAYER": "NDVI", "CRS": CRS_UTM, "TIME": "2023-05-01/2023-05-31", "GEOMETRY": wkt(utm_box(1, 1, 5, 5))}
    assert [e["date"] for e in client.get("/ogc/fis", query_string=params).json["C0"]] == ["2023-05-11", "2023-05-01"]
    assert [e["date"] for e in client.get("/ogc/fis", query_string={**params, "MAXCC": "20"}).json["C0"]] == ["2023-05-01"]


def test_cloud_probability_layer_is_the_averaged_pixel(client) -> None:
    """CLOUD_PROBABILITY's C0 is the averaged-pixel probability of /api/v1/timeseries, stDev 0."""
    geometry = wkt(utm_box(6, 1, 10, 5))
    fis = client.get("/ogc/fis", query_string={"LAYER": "CLOUD_PROBABILITY", "CRS": CRS_UTM, "TIME": "2023-01-05",
                                                "GEOMETRY": geometry}).json
    native = client.post("/api/v1/timeseries", json={"geometry": geometry, "crs": CRS_UTM,
                                                      "time": {"from": "2023-01-05", "to": "2023-01-05"}}).json
    p = native["series"][0]["cloud"]["probability"]
    assert fis["C0"][0]["basicStats"] == {"min": p, "max": p, "mean": p, "stDev": 0.0}


def test_clp_and_clm_layers(client) -> None:
    """CLP (0..255) and CLM (0/1) layers answer per-pixel cloud statistics; clear tile -> CLM 0."""
    params = {"CRS": CRS_UTM, "TIME": "2023-01-05", "GEOMETRY": wkt(utm_box(6, 1, 10, 5)), "RESOLUTION": "10"}
    clm = client.get("/ogc/fis", query_string={**params, "LAYER": "CLM"}).json
    clp = client.get("/ogc/fis", query_string={**params, "LAYER": "CLP"}).json
    assert clm["C0"][0]["basicStats"]["max"] == 0.0
    assert 0 <= clp["C0"][0]["basicStats"]["mean"] < 0.4 * 255


@pytest.mark.parametrize(
    ("params", "match"),
    [({"CRS": CRS_UTM, "TIME": "2023-01-05", "GEOMETRY": "POLYGON ((0 0, 1 0, 1 1, 0 0))"}, r"missing FIS parameters \['LAYER'\]"),
     ({"LAYER": "NOPE", "CRS": CRS_UTM, "TIME": "2023-01-05", "BBOX": "0,0,1,1"}, r"LAYER: unknown layer 'NOPE'"),
     ({"LAYER": "NDVI", "CRS": CRS_UTM, "TIME": "2023-01-05"}, r"GEOMETRY or BBOX"),
     ({"LAYER": "NDVI", "CRS": CRS_UTM, "TIME": "2023-01-05", "BBOX": "1,2,3"}, r"BBOX: got '1,2,3'; expected four numbers"),
     ({"LAYER": "NDVI", "CRS": "EPSG:4326", "TIME": "2023-01-05", "BBOX": "45,15,45.1,15.1", "RESOLUTION": "10"}, r"RESOLUTION: got '10' with a geographic CRS"),
     ({"LAYER": "NDVI", "CRS": CRS_UTM, "TIME": "2023-01-05", "BBOX": "0,0,1,1", "RESOLUTION": "-10m"}, r"RESOLUTION: got '-10m'"),
     ({"LAYER": "NDVI", "CRS": CRS_UTM, "TIME": "2023-01-05", "BBOX": "0,0,1,1", "BINS": "0"}, r"BINS: got '0'; expected an integer from 1 to 1000"),
     ({"LAYER": "NDVI", "CRS": CRS_UTM, "TIME": "2023-01-05", "BBOX": "0,0,1,1", "BINS": "5", "TYPE": "RANDOM"}, r"TYPE: got 'RANDOM'"),
     ({"LAYER": "NDVI", "CRS": CRS_UTM, "TIME": "2023-01-05", "BBOX": "0,0,1,1", "MAXCC": "150"}, r"MAXCC: got '150'"),
     ({"LAYER": "NDVI", "CRS": CRS_UTM, "TIME": "2023-02-05/2023-01-05", "BBOX": "0,0,1,1"}, r"TIME: got .* start is after its end"),
     ({"LAYER": "NDVI", "CRS": "EPSG:0", "TIME": "2023-01-05", "BBOX": "0,0,1,1"}, r"crs: unknown EPSG code 0")],
)
def test_bad_fis_parameters_are_400(client, params, match) -> None:
    """Each bad FIS parameter gets a JSON 400 naming it."""
    import re

    response = client.get("/ogc/fis", query_string=params)
    assert response.status_code == 400, response.json
    assert re.search(match, response.json["error"]["message"]), response.json


def test_red_band_value_is_reflectance(client) -> None:
    """C3 of BANDS-S2-L1C is reflectance (DN / 10000), not DN."""
    response = client.get("/ogc/fis", query_string={"LAYER": "BANDS-S2-L1C", "CRS": CRS_UTM, "TIME": "2023-01-05",
                                                     "BBOX": ",".join(map(str, (500061, 5000071, 500099, 5000109)))})
    assert response.json["C3"][0]["basicStats"]["min"] == pytest.approx((BASE_DN["B04"] + 12 * 1 + 6 + 1) / 10000)


def test_fis_response_matches_the_openapi_schema(client) -> None:
    """The FIS answer validates against FisResponse in openapi.yaml."""
    import yaml
    from openapi_schema_validator import OAS30Validator

    spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "service" / "openapi.yaml").read_text())
    validator = OAS30Validator({"$ref": "#/components/schemas/FisResponse", "components": spec["components"]})
    data = client.get("/ogc/fis", query_string={"LAYER": "TRUE_COLOR", "CRS": CRS_UTM, "TIME": "2023-01-01/2023-12-31",
                                                "GEOMETRY": wkt(utm_box(6, 1, 10, 5)), "BINS": "3"}).json
    validator.validate(data)
    assert len(data["C0"]) == 3


def test_maxcc_given_as_a_number_by_a_library_caller_filters_tiles() -> None:
    """build_request takes MAXCC as text (HTTP) or as a number (Python), 0 included."""
    from stats.sentinelhub.fis import build_request, load_layers
    from stats.settings import DEFAULT_LAYERS

    params = {"LAYER": "NDVI", "CRS": CRS_UTM, "TIME": "2023-01-05", "BBOX": "500000,5000000,500100,5000100"}
    layers = load_layers(DEFAULT_LAYERS)
    for value in (0, "0", 0.0):
        request, _ = build_request({**params, "MAXCC": value}, layers)  # type: ignore[dict-item]
        assert request.options.max_cloud_cover == 0.0
    request, _ = build_request(params, layers)
    assert request.options.max_cloud_cover is None
