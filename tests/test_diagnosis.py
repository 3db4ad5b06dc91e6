"""An empty answer says why: the polygon or the range misses the archive, with the likely mistake named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from polyfis.cli import main
from service import create_app
from stats import Archive, TimeSeriesRequest, query_timeseries

FIELD = [[15.02733, 46.03805], [15.02733, 46.03616], [15.03056, 46.03615], [15.03056, 46.03804], [15.02733, 46.03805]]
YEAR = {"from": "2023-01-01", "to": "2023-12-31"}


def wkt(ring: list[list[float]]) -> str:
    return "POLYGON ((" + ", ".join(f"{x} {y}" for x, y in ring) + "))"


def answer(demo_root: Path, **body: object) -> dict:
    request = TimeSeriesRequest.from_dict({"geometry": wkt(FIELD), "time": YEAR, "bands": ["B04"], **body})
    return query_timeseries(request, Archive.open(demo_root)).to_dict()


def test_swapped_coordinates_are_named(demo_root: Path) -> None:
    out = answer(demo_root, geometry=wkt([[y, x] for x, y in FIELD]))
    assert out["series"] == [] and out["summary"]["acquisitions"] == 0
    (warning,) = out["warnings"]
    assert "lies outside the archive" in warning and "with its coordinates swapped it lies inside" in warning
    archive = Archive.open(demo_root)
    west = min(a.bbox[0] for a in archive.acquisitions)
    assert f"lon {west:.4f}" in warning


def test_lon_lat_sent_with_a_projected_crs_is_named(demo_root: Path) -> None:
    (warning,) = answer(demo_root, crs="EPSG:32633")["warnings"]
    assert "look like lon/lat" in warning and "crs is EPSG:32633" in warning


def test_a_range_outside_the_archive_gives_its_dates(demo_root: Path) -> None:
    out = answer(demo_root, time={"from": "2019-01-01", "to": "2019-12-31"})
    archive = Archive.open(demo_root)
    first, last = archive.acquisitions[0].date, archive.acquisitions[-1].date
    (warning,) = out["warnings"]
    assert "holds no acquisition" in warning and f"from {first} to {last}" in warning


def test_an_answer_with_dates_has_no_warnings(demo_root: Path) -> None:
    out = answer(demo_root)
    assert out["series"] and "warnings" not in out


def test_a_repaired_polygon_is_said(demo_root: Path) -> None:
    bowtie = [FIELD[0], FIELD[2], FIELD[3], FIELD[1], FIELD[0]]
    out = answer(demo_root, geometry=wkt(bowtie), time={"from": "2023-06-01", "to": "2023-06-30"})
    assert out["series"]
    (warning,) = out["warnings"]
    assert "Self-intersection" in warning and "repaired" in warning


def test_the_command_line_and_fis_pass_the_warning_on(demo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    swapped = wkt([[y, x] for x, y in FIELD])
    result = CliRunner().invoke(main, ["query", "--archive", str(demo_root), "--geometry", swapped,
                                       "--from", "2023-01-01", "--to", "2023-12-31", "--bands", "B04"])
    assert result.exit_code == 0 and json.loads(result.stdout)["series"] == []
    assert "warning: the polygon" in result.stderr and "swapped" in result.stderr
    client = create_app({"archive": str(demo_root)}).test_client()
    response = client.get("/ogc/fis", query_string={"LAYER": "NDVI", "CRS": "CRS:84", "TIME": "2023-01-01/2023-12-31",
                                                    "GEOMETRY": swapped})
    assert response.status_code == 200 and response.json == {"C0": []}
    assert "swapped" in response.headers["X-Polyfis-Warning"]
