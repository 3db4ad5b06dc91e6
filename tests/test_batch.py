"""Batch statistics: the same numbers as single time-series queries, on Dask, resumable, any input format."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pyogrio.raw
import pytest
import shapely
from click.testing import CliRunner
from conftest import CRS_UTM, band_array, utm_box
from shapely.geometry import shape

from polyfis.cli import main
from stats import Archive, TimeSeriesRequest, query_timeseries
from stats.archive.synthetic import demo_polygons
from stats.batch import BatchPolygon, compute_batch, read_polygons, run_batch
from stats.errors import InvalidRequestError

START, END = "2023-03-01", "2023-06-30"
OPTIONS = {"bands": ["B02", "B04", "B08", "B11"], "indices": ["NDVI", "NDWI"],
           "statistics": ["count", "mean", "min", "max", "std", "p10", "median", "p90", "sum"]}


@pytest.fixture(scope="module", name="polygons_file")
def fixture_polygons_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo polygons as GeoJSON with an ``id`` property, plus one polygon outside the archive."""
    fc = demo_polygons()
    for feature in fc["features"]:
        feature["properties"]["id"] = feature["properties"]["name"]
    fc["features"].append({"type": "Feature", "properties": {"id": "far_away"},
                           "geometry": shapely.geometry.mapping(shapely.box(100.0, 10.0, 100.01, 10.01))})
    path = tmp_path_factory.mktemp("batch") / "polygons.geojson"
    path.write_text(json.dumps(fc))
    return path


def single_rows(archive: Archive, geometry: Any, options: dict[str, Any], crs: str = "EPSG:4326",
                start: str = START, end: str = END) -> list[dict[str, Any]]:
    """The time-series CSV rows of one polygon, as dicts."""
    request = TimeSeriesRequest.from_dict({"geometry": geometry, "crs": crs, "time": {"from": start, "to": end},
                                           **options})
    result = query_timeseries(request, archive)
    return [dict(zip(result.columns(), row)) for row in result.to_rows()]


def assert_same_rows(batch: list[dict[str, Any]], single: list[dict[str, Any]]) -> None:
    """Batch table rows (dates as dates) hold the single query's CSV rows (dates as ISO text)."""
    assert [r["date"].isoformat() for r in batch] == [r["date"] for r in single]
    for ours, ref in zip(batch, single):
        assert set(ref) <= set(ours)
        for key, expected in ref.items():
            got = ours[key].isoformat() if key == "date" else ours[key]
            if isinstance(expected, float) and not isinstance(expected, bool):
                assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), (ref["date"], key)
            else:
                assert got == expected, (ref["date"], key)


def test_in_process_batch_equals_single_queries(demo_root: Path, polygons_file: Path) -> None:
    archive = Archive.open(demo_root)
    table = compute_batch(archive, polygons_file, START, END, options=OPTIONS)
    rows = table.to_pylist()
    assert table.column_names[:2] == ["id", "date"]
    for feature in demo_polygons()["features"]:
        name = feature["properties"]["name"]
        mine = [r for r in rows if r["id"] == name]
        assert mine, name
        assert_same_rows(mine, single_rows(archive, feature["geometry"], OPTIONS))
    # no acquisition covers it: not a silent gap, one row that says so
    (far,) = [r for r in rows if r["id"] == "far_away"]
    assert far["date"] is None and far["error"].startswith("no result: no acquisition between 2023-03-01")


def test_batch_on_a_local_dask_cluster_writes_csv_equal_to_single_queries(demo_root: Path, polygons_file: Path,
                                                                           tmp_path: Path) -> None:
    out = tmp_path / "stats.csv"
    seen: list[tuple[int, int]] = []
    summary = run_batch(demo_root, polygons_file, START, END, out, options=OPTIONS, workers=2,
                        progress=lambda done, total: seen.append((done, total)))
    assert summary.skipped_tasks == 0 and summary.tasks == seen[-1][1] == seen[-1][0]
    assert not out.with_name(out.name + ".parts").exists()
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    archive = Archive.open(demo_root)
    feature = next(f for f in demo_polygons()["features"] if f["properties"]["name"] == "mixed_lake_field")
    single = single_rows(archive, feature["geometry"], OPTIONS)
    mine = [r for r in rows if r["id"] == "mixed_lake_field"]
    assert [r["date"] for r in mine] == [r["date"] for r in single]
    for ours, ref in zip(mine, single):
        assert ours["cloudy"] == ("true" if ref["cloudy"] else "false")
        assert int(ours["valid_pixels"]) == ref["valid_pixels"]
        assert float(ours["NDVI_p90"]) == pytest.approx(ref["NDVI_p90"], rel=1e-12)
        assert float(ours["cloud_probability"]) == pytest.approx(ref["cloud_probability"], rel=1e-9)
    assert summary.rows == len(rows)
    # the header is the time-series CSV's, after the id
    result = query_timeseries(TimeSeriesRequest.from_dict(
        {"geometry": feature["geometry"], "time": {"from": START, "to": END}, **OPTIONS}), archive)
    assert list(rows[0]) == ["id"] + result.columns()


def test_batch_resumes_after_an_interruption(demo_root: Path, polygons_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "stats.parquet"

    def stop_after_three(done: int, total: int) -> None:
        if done >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(demo_root, polygons_file, START, END, out, options=OPTIONS, workers=1, progress=stop_after_three)
    parts = sorted(out.with_name(out.name + ".parts").glob("*.parquet"))
    assert len(parts) >= 3 and not out.exists()
    summary = run_batch(demo_root, polygons_file, START, END, out, options=OPTIONS, workers=1, progress=False)
    assert summary.skipped_tasks == len(parts) and summary.tasks > len(parts)
    resumed = pq.read_table(out).to_pylist()
    fresh = compute_batch(demo_root, polygons_file, START, END, options=OPTIONS).to_pylist()
    assert len(resumed) == len(fresh)
    for a, b in zip(resumed, fresh):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(b[key], float):
                assert a[key] == pytest.approx(b[key], rel=1e-12), key
            else:
                assert a[key] == b[key], key
    # another range is another batch: old parts are not reused
    again = run_batch(demo_root, polygons_file, START, "2023-05-31", out, options=OPTIONS, workers=0, progress=False)
    assert again.skipped_tasks == 0


def test_csv_with_wkt_and_geopackage_inputs_and_outputs(demo_root: Path, tmp_path: Path) -> None:
    archive = Archive.open(demo_root)
    features = [f for f in demo_polygons()["features"] if f["properties"]["name"] in ("field_small", "lake_centre")]
    source = tmp_path / "parcels.csv"
    with source.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["parcel", "owner", "wkt"])
        for i, feature in enumerate(features):
            writer.writerow([f"P-{i}", "x", shape(feature["geometry"]).wkt])
        writer.writerow(["P-bad", "x", "POLYGON ((0 0, 1"])
    polygons = read_polygons(source, id_field="parcel")
    assert [p.id for p in polygons] == ["P-0", "P-1", "P-bad"] and polygons[2].error
    options = {"bands": ["B04"], "statistics": ["mean"]}
    out = tmp_path / "out.gpkg"
    run_batch(archive, polygons, START, END, out, options=options, workers=1, progress=False)
    meta, _, geometries, columns = pyogrio.raw.read(out)
    fields = list(meta["fields"])
    ids = list(columns[fields.index("id")])
    errors = list(columns[fields.index("error")])
    assert ids.count("P-bad") == 1 and "WKT" in errors[ids.index("P-bad")]
    assert geometries[ids.index("P-bad")] is None
    first = shapely.from_wkb(geometries[ids.index("P-0")])
    assert first.equals_exact(shape(features[0]["geometry"]), 1e-9)
    single = single_rows(archive, features[1]["geometry"], options)
    means = [float(m) for i, m in zip(ids, columns[fields.index("B04_mean")]) if i == "P-1"]
    assert means == pytest.approx([r["B04_mean"] for r in single], rel=1e-12)

    # the GeoPackage written is itself a valid input; ids stay strings, geometry stays put
    back = read_polygons(out)
    assert {p.id for p in back} >= {"P-0", "P-1"}


def test_utm_polygons_integer_ids_and_the_harmonisation_switch(simple_archive: Path, tmp_path: Path) -> None:
    """On the hand-made tile: DN known by hand, baseline 04.00 offset removed, half-empty date counted."""
    polygons = [BatchPolygon(7, shapely.Polygon(utm_box(0, 0, 4, 4)), CRS_UTM),
                BatchPolygon(8, shapely.Polygon(utm_box(6, 6, 12, 12)), CRS_UTM)]
    options = {"bands": ["B04", "B05"], "statistics": ["count", "mean", "min", "max"], "include_empty": True}
    table = compute_batch(simple_archive, polygons, "2023-01-01", "2023-12-31", options=options)
    assert table.schema.field("id").type == "int64"
    rows = table.to_pylist()
    assert [(r["id"], r["date"].isoformat()) for r in rows] == [
        (7, "2023-01-05"), (7, "2023-07-04"), (7, "2023-08-10"), (8, "2023-01-05"), (8, "2023-07-04"), (8, "2023-08-10")]
    b04 = band_array("B04").astype(float)
    expected = b04[0:4, 0:4]
    for row in rows[:2]:  # 04.00 date: stored DN + 1000, harmonised back
        assert row["B04_mean"] == pytest.approx(expected.mean() / 10000, rel=1e-12)
        assert row["B04_min"] == expected.min() / 10000 and row["B04_count"] == 16
    # 20 m band by nearest: the 4 x 4 block of 10 m pixels covers 2 x 2 pixels of 20 m
    b05 = band_array("B05").astype(float)[0:2, 0:2]
    assert rows[0]["B05_mean"] == pytest.approx(b05.mean() / 10000, rel=1e-12)
    assert rows[2]["valid_pixels"] == 0 and rows[2]["nodata_pixels"] == 16 and rows[2]["B04_mean"] is None
    assert rows[5]["valid_pixels"] == 36
    unharmonised = compute_batch(simple_archive, polygons, "2023-07-01", "2023-07-31",
                                 options={**options, "harmonize": False}).to_pylist()
    assert unharmonised[0]["B04_min"] == (expected.min() + 1000) / 10000


def test_pixel_cloud_options_use_the_time_series_engine(demo_root: Path, tmp_path: Path) -> None:
    archive = Archive.open(demo_root)
    feature = next(f for f in demo_polygons()["features"] if f["properties"]["name"] == "mixed_forest_field")
    options = {"bands": ["B04"], "statistics": ["mean"], "cloud": {"mode": "both", "mask": True}}
    table = compute_batch(archive, [BatchPolygon("m", shape(feature["geometry"]))], START, END, options=options)
    assert "cloud_fraction" in table.column_names
    assert_same_rows(table.to_pylist(), single_rows(archive, feature["geometry"], options))


def test_broken_scene_gives_per_date_errors_for_every_polygon(simple_archive: Path) -> None:
    (simple_archive / "items" / "T1_20230704" / "B04.tif").write_bytes(b"not a tiff")
    polygons = [BatchPolygon(i, shapely.Polygon(utm_box(i, i, i + 3, i + 3)), CRS_UTM) for i in range(3)]
    rows = compute_batch(simple_archive, polygons, "2023-01-01", "2023-12-31",
                         options={"bands": ["B04"], "statistics": ["mean"]}).to_pylist()
    broken = [r for r in rows if r["date"] == dt.date(2023, 7, 4)]
    assert len(broken) == 3 and all("B04" in r["error"] and r["B04_mean"] is None for r in broken)
    assert all(r["error"] is None and r["B04_mean"] is not None for r in rows if r["date"] == dt.date(2023, 1, 5))


def test_invalid_input(tmp_path: Path, simple_archive: Path) -> None:
    with pytest.raises(InvalidRequestError, match="expected a file ending in"):
        run_batch(simple_archive, [], START, END, tmp_path / "out.xlsx", progress=False)
    bad = tmp_path / "p.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(InvalidRequestError, match="no WKT column"):
        read_polygons(bad)
    with pytest.raises(InvalidRequestError, match="no id column 'parcel'"):
        read_polygons(bad, id_field="parcel", wkt_field="b")
    with pytest.raises(InvalidRequestError, match="options: 'geometry'"):
        compute_batch(simple_archive, [], START, END, options={"geometry": "POINT (0 0)"})
    self_crossing = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)])
    theta = np.linspace(0, 2 * np.pi, 150_000, endpoint=False)
    huge = shapely.Polygon(np.c_[10 * np.cos(theta), 10 * np.sin(theta)])
    table = compute_batch(simple_archive, [BatchPolygon("x", self_crossing), BatchPolygon("h", huge)],
                          START, END).to_pylist()
    assert [r["id"] for r in table] == ["x", "h"] and "vertices" in table[1]["error"]
    assert table[0]["error"].startswith("no result: no acquisition")  # repaired, but outside the tile


def test_cli_batch_writes_parquet(demo_root: Path, polygons_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.parquet"
    result = CliRunner().invoke(main, ["batch", str(polygons_file), "--archive", str(demo_root), "--from", START,
                                       "--to", "2023-03-31", "--out", str(out), "--bands", "B08",
                                       "--statistics", "mean,p50", "--workers", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.column_names == ["id", "date", "cloud_probability", "cloudy", "valid_pixels", "nodata_pixels",
                                  "B08_mean", "B08_p50", "error"]
    assert "rows for 12 polygons" in result.output
    ids = set(table.column("id").to_pylist())
    assert "field_wheat" in ids and "far_away" in ids
    assert "1 have no result" in result.output
    values = [v for v in table.column("B08_mean").to_pylist() if v is not None]
    assert values and all(0 < v < 1 and not math.isnan(v) for v in values)
    assert table.schema.field("date").type == "date32[day]" and table.column("date")[0].as_py() >= dt.date(2023, 3, 1)


def test_batch_in_both_cloud_modes_equals_single_queries(demo_root: Path) -> None:
    """cloud.mode "both" gives the warning column as text, row by row as the time series does."""
    archive = Archive.open(demo_root)
    options = {"bands": ["B04"], "statistics": ["mean"], "cloud": {"mode": "both"}}
    feature = next(f for f in demo_polygons()["features"] if f["properties"]["name"] == "mixed_lake_field")
    table = compute_batch(archive, [BatchPolygon("m", shape(feature["geometry"]))], START, END, options=options)
    assert str(table.schema.field("cloud_warning").type) == "string"
    rows = table.to_pylist()
    single = single_rows(archive, feature["geometry"], options)
    assert_same_rows(rows, single)
    assert {r["cloud_warning"] for r in single} - {None}, "the lake and field polygon has mixed dates"


def test_batch_limits_bound_the_polygons(simple_archive: Path) -> None:
    """A batch's limits apply to each polygon: one over the vertex limit gets an error row naming it."""
    from stats import Limits

    polygons = [BatchPolygon("small", shapely.Polygon(utm_box(0, 0, 4, 4)), CRS_UTM),
                BatchPolygon("round", shapely.Point(500_060, 5_000_060).buffer(30, 16), CRS_UTM)]
    table = compute_batch(simple_archive, polygons, "2023-01-01", "2023-12-31", options={"bands": ["B04"]},
                          limits=Limits(max_vertices=10))
    errors = {r["id"]: r["error"] for r in table.to_pylist() if r["error"]}
    assert set(errors) == {"round"}
    assert "more than the limit of 10" in errors["round"]


def test_geopackage_columns_keep_their_types(demo_root: Path, tmp_path: Path) -> None:
    """Counts are integers, cloudy is a boolean and statistics are reals in the GeoPackage, not text."""
    feature = next(f for f in demo_polygons()["features"] if f["properties"]["name"] == "field_small")
    out = tmp_path / "typed.gpkg"
    run_batch(demo_root, [BatchPolygon("f", shape(feature["geometry"]))], START, END, out,
              options={"bands": ["B04"], "statistics": ["count", "mean"]}, workers=0, progress=False)
    info = pyogrio.read_info(out, layer="statistics")
    types = dict(zip(info["fields"], info["dtypes"]))
    assert types["valid_pixels"] == types["B04_count"] == "int64"
    assert types["cloudy"] == "bool" and types["B04_mean"] == types["cloud_probability"] == "float64"
    assert types["id"] == types["date"] == "object"


def test_a_repaired_polygon_is_counted_and_said(simple_archive: Path, tmp_path: Path) -> None:
    """A self-crossing polygon is answered as repaired, and `polyfis batch` says how many were."""
    ring = utm_box(0, 0, 4, 4)
    bowtie = [ring[0], ring[2], ring[1], ring[3], ring[0]]
    source = tmp_path / "p.geojson"
    source.write_text(json.dumps({"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": CRS_UTM}},
                                  "features": [{"type": "Feature", "properties": {"id": "bow"},
                                                "geometry": {"type": "Polygon", "coordinates": [bowtie]}}]}))
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(main, ["batch", str(source), "--archive", str(simple_archive), "--from", "2023-01-01",
                                       "--to", "2023-01-31", "--bands", "B04", "--workers", "0", "--no-progress",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 polygons were invalid and are answered as repaired" in result.stderr
    rows = list(csv.DictReader(out.open()))
    assert [r["id"] for r in rows] == ["bow"] and rows[0]["error"] == "" and float(rows[0]["B04_mean"]) > 0
