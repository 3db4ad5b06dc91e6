"""CSV injection (OWASP): text cells that a spreadsheet would run as a formula get a leading single quote,
numbers (negative ones too) stay numbers, and ids holding line breaks never break a record; in batch CSV
files (``polyfis batch``, batch jobs, their water extent files) and in the native time-series CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import CRS_UTM, utm_box
from test_batch_http import make_app, polygons, wait_until_finished

from polyfis.cli import main
from stats.batch.output import write_table
from stats.results import DateResult, TimeSeriesResult, csv_cell, safe_text, write_csv

#: Ids as given -> as the CSV must hold them (OWASP: prefix a single quote to =, +, -, @, tab, CR).
IDS = {
    "=HYPERLINK(\"http://evil.example\",\"x\")": "'=HYPERLINK(\"http://evil.example\",\"x\")",
    "=cmd|' /C calc'!A0": "'=cmd|' /C calc'!A0",
    "+1+1": "'+1+1",
    "-2+3": "'-2+3",
    "@SUM(A1:A9)": "'@SUM(A1:A9)",
    "\tTAB": "'\tTAB",
    "\rCR first": "'\rCR first",
    "line\nbreak": "line\nbreak",
    "carriage\rreturn": "carriage\rreturn",
    "both\r\nends": "both\r\nends",
    "-0.12": "-0.12",  # a plain number as text: no formula, kept
    "+7": "+7",
    "a=b": "a=b",  # only the first character counts
    "field 1": "field 1",
}


@pytest.mark.parametrize(("given", "written"), list(IDS.items()), ids=range(len(IDS)))
def test_safe_text_prefixes_formula_starts_only(given: str, written: str) -> None:
    assert safe_text(given) == written
    assert csv_cell(given) == written


def test_numbers_stay_numbers() -> None:
    assert [csv_cell(v) for v in (-0.12, -3, 0.0, None, True, False, float("nan"))] == [
        -0.12, -3, 0.0, "", "true", "false", ""]


def read(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_write_csv_keeps_every_record_whole() -> None:
    rows = [[given, -0.12, 5] for given in IDS]
    buffer = io.StringIO()
    write_csv(buffer, ["id", "value", "n"], rows)
    header, *back = read(buffer.getvalue())
    assert header == ["id", "value", "n"]
    assert back == [[written, "-0.12", "5"] for written in IDS.values()]
    # every physical line ending outside quotes is a record end: 1 header + one line per row, once parsed
    assert len(back) == len(IDS)


def test_batch_csv_files_neutralise_ids_and_keep_negative_numbers(tmp_path: Path) -> None:
    table = pa.table({"id": list(IDS), "date": [dt.date(2023, 3, 6)] * len(IDS),
                      "NDVI_mean": [-0.12] * len(IDS), "B04_count": list(range(len(IDS)))})
    out = tmp_path / "out.csv"
    write_table(table, out)
    with out.open(newline="", encoding="utf-8") as fh:
        header, *rows = read(fh.read())
    assert header == ["id", "date", "NDVI_mean", "B04_count"]
    assert [r[0] for r in rows] == list(IDS.values())
    assert all(r[1:] == ["2023-03-06", "-0.12", str(i)] for i, r in enumerate(rows))
    parquet = tmp_path / "out.parquet"
    write_table(table, parquet)
    assert pq.read_table(parquet).column("id").to_pylist() == list(IDS)  # Parquet keeps the ids as given


def test_polyfis_batch_writes_safe_ids(simple_archive: Path, tmp_path: Path) -> None:
    names = ["=1+1", "@x", "a\rb", "ok"]
    source = tmp_path / "p.geojson"
    source.write_text(json.dumps({"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": CRS_UTM}},
                                  "features": [{"type": "Feature", "properties": {"id": name}, "geometry": {
                                      "type": "Polygon", "coordinates": [utm_box(i, 0, i + 2, 2)]}}
                                      for i, name in enumerate(names)]}))
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(main, ["batch", str(source), "--archive", str(simple_archive), "--from", "2023-01-01",
                                       "--to", "2023-01-31", "--bands", "B04", "--workers", "0", "--no-progress",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open(newline="", encoding="utf-8")))
    assert [r["id"] for r in rows] == ["'=1+1", "'@x", "a\rb", "ok"]
    assert all(float(r["B04_mean"]) > 0 for r in rows)


def test_a_batch_job_csv_neutralises_ids_in_its_tables(demo_root: Path, tmp_path: Path) -> None:
    """Through HTTP: the rows and the water extent CSV get the safe ids; the lake's negative NDVI stays a number."""
    lake = polygons(("lake",))["features"][0]["geometry"]
    given = ["=HYPERLINK(\"http://evil.example\")", "+SUM(1)", "-1-1", "@A1", "\tx", "id\r\nwith break", "-5"]
    collection = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": pid}, "geometry": lake} for pid in given]}
    options: dict[str, Any] = {"bands": ["B03"], "indices": ["NDVI"], "statistics": ["mean"],
                               "water": {"buffer_m": 50}}
    client = make_app(demo_root, tmp_path / "jobs").test_client()
    submitted = client.post("/api/v1/batch", json={"polygons": collection, "time": {"from": "2023-03-01",
                                                                                    "to": "2023-03-31"},
                                                   "options": options})
    assert submitted.status_code == 202, submitted.json
    status = wait_until_finished(client, submitted.json["id"], timeout=120)
    assert status["status"] == "DONE", status["error"]
    text = client.get(status["links"]["csv"]).get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == status["rows"]
    want = {pid: safe_text(pid) for pid in given}
    assert want["-5"] == "-5" and want["-1-1"] == "'-1-1"
    assert {r["id"] for r in rows} == set(want.values())
    means = [r["NDVI_mean"] for r in rows if r["NDVI_mean"]]
    assert means and all(m.startswith("-") and float(m) < 0 for m in means)  # a number, no quote
    extents = client.get(f"/api/v1/batch/{status['id']}/results?format=csv&table=water_extent").get_data(as_text=True)
    extent_rows = list(csv.DictReader(io.StringIO(extents, newline="")))
    assert extent_rows and {r["id"] for r in extent_rows} <= set(want.values())
    assert all(r["geometry"].startswith(("POLYGON", "MULTIPOLYGON")) for r in extent_rows)
    parquet = pq.read_table(io.BytesIO(client.get(status["links"]["parquet"]).data))
    assert set(parquet.column("id").to_pylist()) == set(given)


def test_the_time_series_csv_neutralises_text_cells_and_keeps_numbers(demo_root: Path, tmp_path: Path) -> None:
    """Its text cells hold no user input today (index names are letters, digits and '_'), but any text cell
    starting like a formula is written safe; the lake's negative NDVI stays a number."""
    day = dt.date(2023, 3, 6)
    result = TimeSeriesResult(series=(DateResult(date=day, datetime=dt.datetime(2023, 3, 6, tzinfo=dt.UTC),
                                                 scenes=("T",), error="=1+1"),), bands=(), indices=(),
                              statistics=())
    assert read(result.to_csv())[1][-1] == "'=1+1"
    client = make_app(demo_root, tmp_path / "jobs").test_client()
    response = client.post("/api/v1/timeseries?format=csv", json={
        "geometry": polygons(("lake",))["features"][0]["geometry"], "time": {"from": "2023-03-01", "to": "2023-03-31"},
        "indices": ["NDVI"], "bands": ["B04"], "statistics": ["mean", "min"]})
    assert response.status_code == 200, response.json
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert rows and all(float(r["NDVI_min"]) < 0 and not r["NDVI_min"].startswith("'") for r in rows)
