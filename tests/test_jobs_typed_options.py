"""Every column of every option set is typed and valued through batch jobs as the JSON time series says.

For ``cloud.mode: "both"``, water (whole-polygon and ``buffer_m`` monitoring), exact mode and histograms, a
job of two demo polygons is submitted over HTTP, polled until DONE, and its CSV and Parquet results are
checked, cell by cell, against each polygon's own ``POST /api/v1/timeseries`` JSON answer: the Arrow type
of every column is the one its name calls for (worked out here from the documented schema, not read from
polyfis), and every value equals the JSON one.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from shapely.geometry import shape
from test_batch_http import make_app, polygons, wait_until_finished

TIME = {"from": "2023-03-01", "to": "2023-04-30"}
NAMES = ("field_wheat", "lake")  # the lake's NDVI and NDWI means are negative, the field's positive

OPTION_SETS = {
    "cloud-both": {"bands": ["B04", "B08"], "indices": ["NDVI"], "statistics": ["mean", "count", "p90"],
                   "cloud": {"mode": "both"}},
    "water": {"bands": ["B03"], "indices": ["NDWI"], "statistics": ["mean", "count"], "water": True},
    "water-monitoring": {"bands": ["B03"], "statistics": ["mean"], "water": {"buffer_m": 100}},
    "exact": {"bands": ["B04"], "indices": ["NDVI"], "statistics": ["mean", "count", "min", "p50"], "exact": True},
    "histogram": {"bands": ["B04"], "indices": ["NDVI"], "statistics": ["mean", "count"],
                  "histogram": {"bins": 4}},
}

STRINGS = {"id", "error", "cloud_warning", "cloud_source", "cloud_note", "water_status", "water_threshold_method"}
BOOLEANS = {"cloudy", "cloud_trusted"}
PIXEL_COUNTS = {"valid_pixels", "nodata_pixels", "clear_pixels", "cloudy_pixels"}


def expected_type(column: str, exact: bool) -> pa.DataType:
    """The documented type of a result column (README, batch jobs): text, booleans, whole pixel counts."""
    if column == "date":
        return pa.date32()
    if column in STRINGS:
        return pa.string()
    if column in BOOLEANS:
        return pa.bool_()
    if column in PIXEL_COUNTS or (column.endswith("_count") and not exact):
        return pa.int64()
    return pa.float64()  # statistics, probabilities, fractions, areas; an exact count is a covered area


def json_cells(entry: dict[str, Any]) -> dict[str, Any]:
    """A JSON series entry flattened to the CSV column names."""
    cloud, pixels = entry.get("cloud", {}), entry.get("pixels", {})
    cells: dict[str, Any] = {
        "date": dt.date.fromisoformat(entry["date"]), "cloud_probability": cloud.get("probability"),
        "cloudy": cloud.get("cloudy"), "valid_pixels": pixels.get("valid"), "nodata_pixels": pixels.get("nodata"),
        "cloud_fraction": cloud.get("fraction"), "cloud_probability_mean": cloud.get("probability_mean"),
        "clear_pixels": cloud.get("clear_pixels"), "cloudy_pixels": cloud.get("cloudy_pixels"),
        "cloud_warning": cloud.get("warning"), "cloud_trusted": cloud.get("trusted"), "cloud_source": cloud.get("source"),
        "cloud_note": cloud.get("note"),
        "error": entry.get("error")}
    for key, value in entry.get("water", {}).items():
        if key != "extent":
            cells[f"water_{key}"] = value
    for group in ("bands", "indices"):
        for name, stats in entry.get(group, {}).items():
            cells.update({f"{name}_{stat}": value for stat, value in stats.items()})
    return cells


def same(ours: Any, want: Any, kind: pa.DataType) -> bool:
    if want is None or ours is None:
        return ours is None and want is None
    if pa.types.is_floating(kind):
        return isinstance(ours, float) and ours == pytest.approx(want, rel=1e-9, abs=1e-12)
    return type(ours) is type(want) and ours == want


def csv_text(value: Any) -> str:
    """How the CSV writes a JSON value (README: empty for null, true/false, numbers as Python prints them)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


@pytest.fixture(scope="module", name="client")
def fixture_client(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_app(demo_root, tmp_path_factory.mktemp("jobs")).test_client()


@pytest.mark.parametrize("name", list(OPTION_SETS))
def test_job_results_are_typed_and_valued_as_the_time_series(client: Any, name: str) -> None:
    options = OPTION_SETS[name]
    exact = bool(options.get("exact"))
    collection = polygons(NAMES)
    submitted = client.post("/api/v1/batch", json={"polygons": collection, "time": TIME, "options": options})
    assert submitted.status_code == 202, submitted.json
    status = wait_until_finished(client, submitted.json["id"], timeout=180)
    assert status["status"] == "DONE", status["error"]
    table = pq.read_table(io.BytesIO(client.get(status["links"]["parquet"]).data))
    text = client.get(status["links"]["csv"]).get_data(as_text=True)
    header, *csv_rows = list(csv.reader(io.StringIO(text)))
    assert header == table.column_names
    for column in table.column_names:
        assert table.schema.field(column).type == expected_type(column, exact), (name, column)
    rows = table.to_pylist()
    assert len(rows) == len(csv_rows) == status["rows"]
    checked = 0
    for feature in collection["features"]:
        pid = feature["properties"]["id"]
        single = client.post("/api/v1/timeseries", json={"geometry": feature["geometry"], "time": TIME, **options})
        assert single.status_code == 200, single.json
        series = single.json["series"]
        ours = [(row, cells) for row, cells in zip(rows, csv_rows) if row["id"] == pid]
        assert [r["date"] for r, _ in ours] == [dt.date.fromisoformat(e["date"]) for e in series], (name, pid)
        single_header = client.post("/api/v1/timeseries?format=csv", json={
            "geometry": feature["geometry"], "time": TIME, **options}).get_data(as_text=True).split("\n", 1)[0]
        assert header == ["id", *single_header.split(",")]
        for (row, cells), entry in zip(ours, series):
            want = json_cells(entry)
            assert set(want) >= set(header) - {"id"}, (name, set(header) - set(want))
            for at, column in enumerate(header):
                if column == "id":
                    assert row[column] == cells[at] == pid
                    continue
                kind = expected_type(column, exact)
                assert same(row[column], want[column], kind), (name, pid, entry["date"], column, row[column])
                if pa.types.is_floating(kind) and want[column] is not None:
                    assert float(cells[at]) == pytest.approx(want[column], rel=1e-9, abs=1e-12)
                else:
                    assert cells[at] == csv_text(want[column]), (name, pid, entry["date"], column)
                checked += 1
        if name == "histogram":  # histograms are in the JSON answer only; the tables keep the other columns
            assert all(set(e["histograms"]) == {"B04", "NDVI"} for e in series if "histograms" in e)
            assert not [c for c in header if "hist" in c]
    assert checked > 50
    if name == "water-monitoring":
        check_water_extents(client, status, collection)


def check_water_extents(client: Any, status: dict[str, Any], collection: dict[str, Any]) -> None:
    """The job's water_extent table (GeoParquet) holds each date's extent of the JSON answer."""
    response = client.get(f"/api/v1/batch/{status['id']}/results?format=parquet&table=water_extent")
    assert response.status_code == 200
    import geopandas as gpd

    frame = gpd.read_parquet(io.BytesIO(response.data))
    assert len(frame) > 0
    for feature in collection["features"]:
        pid = feature["properties"]["id"]
        series = client.post("/api/v1/timeseries", json={"geometry": feature["geometry"], "time": TIME,
                                                         **OPTION_SETS["water-monitoring"]}).json["series"]
        extents = {e["date"]: shape(e["water"]["extent"]) for e in series if e.get("water", {}).get("extent")}
        mine = frame[frame["id"] == pid]
        assert len(mine) == len(extents), pid
        for _, row in mine.iterrows():
            want = extents[str(row["date"])[:10]]
            assert shapely.equals_exact(row.geometry, want, 1e-9) or row.geometry.symmetric_difference(
                want).area <= 1e-12 * max(want.area, 1e-12), (pid, row["date"])
