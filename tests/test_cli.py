"""The polyfis command line: query and ingest without a server."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import BASE_DN, CRS_UTM, X0, Y0, utm_box

from polyfis.cli import main
from stats.archive.catalog import Archive


def wkt_box(col0: int, row0: int, col1: int, row1: int) -> str:
    ring = utm_box(col0, row0, col1, row1)
    return "POLYGON ((" + ", ".join(f"{x} {y}" for x, y in ring) + "))"


def test_query_prints_csv_rows(simple_archive: Path) -> None:
    """`polyfis query --format csv` prints the header and one row per date."""
    result = CliRunner().invoke(main, [
        "query", "--archive", str(simple_archive), "--geometry", wkt_box(6, 1, 10, 5), "--crs", CRS_UTM,
        "--from", "2023-01-01", "--to", "2023-12-31", "--bands", "B04", "--statistics", "mean,count",
        "--format", "csv",
    ])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["date"] for r in rows] == ["2023-01-05", "2023-07-04", "2023-08-10"]
    assert float(rows[0]["B04_mean"]) == pytest.approx((BASE_DN["B04"] + 38.5) / 10000)
    assert rows[0]["B04_count"] == "16"


def test_query_reads_a_geojson_file_and_prints_json(simple_archive: Path, tmp_path: Path) -> None:
    """--geometry may name a GeoJSON file; the JSON output has the series."""
    path = tmp_path / "field.geojson"
    path.write_text(json.dumps({"type": "Polygon", "coordinates": [utm_box(6, 1, 10, 5)]}))
    result = CliRunner().invoke(main, ["query", "--archive", str(simple_archive), "--geometry", str(path),
                                       "--crs", CRS_UTM, "--from", "2023-01-01", "--to", "2023-01-31"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [d["date"] for d in data["series"]] == ["2023-01-05"]


def test_query_reports_bad_input_without_traceback(simple_archive: Path) -> None:
    """A reversed time range exits non-zero with the engine's message."""
    result = CliRunner().invoke(main, ["query", "--archive", str(simple_archive), "--geometry", wkt_box(1, 1, 2, 2),
                                       "--crs", CRS_UTM, "--from", "2023-05-01", "--to", "2023-01-01"])
    assert result.exit_code == 1
    assert "after 'to'" in result.output and "Traceback" not in result.output


def _write_band(path: Path, value: int, tags: dict | None = None) -> None:
    profile = {"driver": "GTiff", "width": 6, "height": 6, "count": 1, "dtype": "uint16", "crs": CRS_UTM,
               "transform": rasterio.transform.from_origin(X0, Y0, 10, 10)}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((1, 6, 6), value, dtype=np.uint16))
        if tags:
            dst.update_tags(**tags)


def test_ingest_per_band_files_timed_from_the_file_name(tmp_path: Path) -> None:
    """Per-band files named like a SAFE granule become one acquisition with baseline from _N0400_."""
    src = tmp_path / "S2A_MSIL1C_20230105T100031_N0400_R122_T33TWM_20230105T120000.SAFE" / "IMG_DATA"
    src.mkdir(parents=True)
    for band, value in (("B02", 900), ("B04", 500), ("B8A", 2600)):
        _write_band(src / f"T33TWM_20230105T100031_{band}.tif", value)
    result = CliRunner().invoke(main, ["ingest", str(src), "--archive", str(tmp_path / "archive")])
    assert result.exit_code == 0, result.output
    (acq,) = Archive.open(tmp_path / "archive").acquisitions
    assert acq.datetime.isoformat() == "2023-01-05T10:00:31+00:00"
    assert sorted(acq.assets) == ["B02", "B04", "B8A"]
    assert acq.processing_baseline == "04.00" and acq.dn_offset == 1000


def test_ingest_without_a_time_explains_what_it_needs(tmp_path: Path) -> None:
    """A band file with no date in tags or name is refused with the accepted forms."""
    _write_band(tmp_path / "B04.tif", 500)
    result = CliRunner().invoke(main, ["ingest", str(tmp_path / "B04.tif"), "--archive", str(tmp_path / "a")])
    assert result.exit_code == 1
    assert "cannot find the acquisition time" in result.output and "ACQUISITION=" in result.output


def test_ingest_takes_the_time_from_a_tag(tmp_path: Path) -> None:
    """An ACQUISITION tag wins over the name."""
    _write_band(tmp_path / "scene_B03.tif", 800, tags={"ACQUISITION": "2022-06-30T09:59:59"})
    result = CliRunner().invoke(main, ["ingest", str(tmp_path / "scene_B03.tif"), "--archive", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    (acq,) = Archive.open(tmp_path / "a").acquisitions
    assert acq.datetime.isoformat() == "2022-06-30T09:59:59+00:00" and acq.dn_offset == 0


def test_query_pixel_mode_flags_add_cloud_and_water_columns(simple_archive: Path) -> None:
    """--cloud-mode both --cloud-resolution 20 --mask-clouds --water otsu add their CSV columns."""
    result = CliRunner().invoke(main, [
        "query", "--archive", str(simple_archive), "--geometry", wkt_box(6, 1, 10, 5), "--crs", CRS_UTM,
        "--from", "2023-01-01", "--to", "2023-01-31", "--bands", "B04", "--statistics", "count",
        "--cloud-mode", "both", "--cloud-resolution", "20", "--mask-clouds", "--water", "otsu", "--format", "csv",
    ])
    assert result.exit_code == 0, result.output
    (row,) = list(csv.DictReader(io.StringIO(result.output)))
    assert row["cloud_fraction"] == "0.0" and row["clear_pixels"] == "16" and row["cloudy_pixels"] == "0"
    assert row["cloud_warning"] == "" and row["water_fraction"] == "0.0" and row["water_status"] == "OK"
    assert row["B04_count"] == "16"


def test_two_granules_of_one_date_become_two_acquisitions(tmp_path: Path) -> None:
    """Per-band files in two SAFE granules of one date keep distinct ids (the mosaic case)."""
    for granule, value in (("L1C_T33TWM_A1", 500), ("L1C_T33TWL_A1", 600)):
        folder = tmp_path / "S2A_MSIL1C_20230105T100031_N0509.SAFE" / "GRANULE" / granule / "IMG_DATA"
        folder.mkdir(parents=True)
        for band in ("B04", "B08"):
            _write_band(folder / f"T33_20230105T100031_{band}.tif", value)
        _write_band(folder / "T33_20230105T100031_TCI.tif", 1)  # not a band: skipped
    result = CliRunner().invoke(main, ["ingest", str(tmp_path), "--archive", str(tmp_path / "archive")])
    assert result.exit_code == 0, result.output
    ids = sorted(a.id for a in Archive.open(tmp_path / "archive").acquisitions)
    assert ids == ["L1C_T33TWL_A1_20230105T100031", "L1C_T33TWM_A1_20230105T100031"]


def test_source_nodata_becomes_zero(tmp_path: Path) -> None:
    """A stack whose no-data value is 65535 is written with 0 there, the archive's no-data."""
    profile = {"driver": "GTiff", "width": 2, "height": 1, "count": 2, "dtype": "uint16", "crs": CRS_UTM,
               "transform": rasterio.transform.from_origin(X0, Y0, 10, 10), "nodata": 65535}
    path = tmp_path / "stack_2023-02-01.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.array([[[65535, 700]], [[65535, 2500]]], dtype=np.uint16))
        dst.descriptions = ("B04", "B08")
    result = CliRunner().invoke(main, ["ingest", str(path), "--archive", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    (acq,) = Archive.open(tmp_path / "a").acquisitions
    with rasterio.open(acq.assets["B04"]) as src:
        assert src.read(1).tolist() == [[0, 700]]


@pytest.mark.parametrize("command", ["demo", "serve"])
def test_a_taken_port_is_named_before_anything_starts(command: str) -> None:
    """`polyfis demo` / `serve` on a port in use stop at once, saying which port and how to choose another."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, [command, "--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot serve on 127.0.0.1:{port}" in result.output and f"--port {port + 1}" in result.output
    assert "curl" not in result.output


def test_a_misspelt_geometry_file_is_named_as_a_missing_file(simple_archive: Path) -> None:
    result = CliRunner().invoke(main, ["query", "--archive", str(simple_archive), "--geometry", "field.geojsn",
                                       "--from", "2023-01-01", "--to", "2023-01-31"])
    assert result.exit_code == 2
    assert "no file 'field.geojsn'" in result.output and "WKT" in result.output


def test_demo_stores_the_cloud_layers_of_its_archive(tmp_path: Path) -> None:
    """`polyfis demo --no-serve` builds the demo archive with its CLP/CLM layers (as Sentinel Hub precomputes
    them) and prints the example query's CSV."""
    result = CliRunner().invoke(main, ["demo", "--no-serve", "--demo-dir", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    archive = Archive.open(tmp_path / "demo")
    assert len(archive.acquisitions) == 37
    assert all(a.cloud_layers is not None and Path(a.cloud_layers.clm).is_file() for a in archive.acquisitions)
    assert result.stdout.splitlines()[0].startswith("date,cloud_probability,cloudy")
