"""The engine on the demo archive, checked against the generator's ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stats import Archive, TimeSeriesRequest, query_timeseries
from stats.archive.synthetic import demo_polygons, load_ground_truth

YEAR = {"from": "2023-01-01", "to": "2023-12-31"}


@pytest.fixture(name="demo_series", scope="module")
def fixture_demo_series(demo_root: Path) -> dict[str, dict]:
    """One year of series per demo polygon, with no-data dates kept."""
    archive = Archive.open(demo_root)
    out = {}
    for feature in demo_polygons()["features"]:
        request = TimeSeriesRequest.from_dict({"geometry": feature["geometry"], "time": YEAR, "indices": ["NDVI"],
                                               "statistics": ["mean", "count"], "include_empty": True})
        out[feature["properties"]["name"]] = query_timeseries(request, archive).to_dict()
    return out


def test_cloudy_flag_agrees_with_ground_truth_on_homogeneous_polygons(demo_root: Path, demo_series) -> None:
    """On every homogeneous demo polygon the averaged-pixel cloudy flag matches the truth on >= 95 % of dates."""
    truth = load_ground_truth(demo_root)["polygons"]
    homogeneous = [name for name, t in truth.items() if t["homogeneous"]]
    assert len(homogeneous) >= 6
    for name in homogeneous:
        pairs = [(entry["cloud"]["cloudy"], truth[name]["dates"][entry["date"]]["cloudy"])
                 for entry in demo_series[name]["series"] if entry["pixels"]["valid"] > 0]
        agreement = np.mean([ours == theirs for ours, theirs in pairs])
        assert len(pairs) >= 30, name
        assert agreement >= 0.95, f"{name}: {agreement:.3f}"


def test_every_demo_date_is_answered_oldest_first(demo_series) -> None:
    """Each polygon gets all 37 dates in ascending order, with status OK."""
    for name, series in demo_series.items():
        dates = [e["date"] for e in series["series"]]
        assert series["status"] == "OK"
        assert dates == sorted(dates) and len(dates) == 37, name


def test_valid_pixels_follow_the_nodata_truth(demo_root: Path, demo_series) -> None:
    """valid + nodata is the polygon's pixel count and the nodata share equals the truth's."""
    truth = load_ground_truth(demo_root)["polygons"]
    for name, series in demo_series.items():
        for entry in series["series"]:
            total = entry["pixels"]["valid"] + entry["pixels"]["nodata"]
            assert total == truth[name]["n_pixels"], name
            expected = truth[name]["dates"][entry["date"]]["nodata_fraction"]
            assert entry["pixels"]["nodata"] / total == pytest.approx(expected, abs=1e-6), (name, entry["date"])


def test_clear_field_ndvi_follows_the_generator(demo_root: Path, demo_series) -> None:
    """On clear dates the wheat field's mean NDVI is the generator's clear-sky NDVI (within noise)."""
    truth = load_ground_truth(demo_root)["polygons"]["field_wheat"]["dates"]
    checked = 0
    for entry in demo_series["field_wheat"]["series"]:
        t = truth[entry["date"]]
        if t["sky"] == "clear" and t["nodata_fraction"] == 0:
            assert entry["indices"]["NDVI"]["mean"] == pytest.approx(t["clear_sky_ndvi"], abs=0.02), entry["date"]
            checked += 1
    assert checked >= 15
