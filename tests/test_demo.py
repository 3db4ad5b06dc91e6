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


def _series(demo_root: Path, name: str, **extra) -> dict:
    feature = next(f for f in demo_polygons()["features"] if f["properties"]["name"] == name)
    body = {"geometry": feature["geometry"], "time": YEAR, "bands": ["B03"], "statistics": ["mean"], **extra}
    return query_timeseries(TimeSeriesRequest.from_dict(body), Archive.open(demo_root)).to_dict()


@pytest.mark.parametrize("name", ["mixed_lake_field", "mixed_forest_field"])
def test_partly_cloudy_mixed_polygons_are_flagged(demo_root: Path, name: str) -> None:
    """On every date the truth has a mixed polygon 20-80 % clouded, both modes are reported and the entry
    says the averaged pixel cannot be trusted (mixed or disagree)."""
    truth = load_ground_truth(demo_root)["polygons"][name]["dates"]
    series = _series(demo_root, name, cloud={"mode": "both", "resolution": 20, "average_over": 1,
                                             "dilation_size": 1})["series"]
    partly = [e for e in series if 0.2 <= truth[e["date"]]["cloud_fraction"] <= 0.8]
    assert partly, "the demo recipe puts partial cumulus on the mixed polygons"
    for entry in partly:
        cloud = entry["cloud"]
        assert cloud["probability"] is not None and cloud["fraction"] is not None
        assert cloud["trusted"] is False and cloud["warning"] in ("mixed", "disagree"), entry["date"]
        assert cloud["fraction"] == pytest.approx(truth[entry["date"]]["cloud_fraction"], abs=0.15)


def test_homogeneous_clear_dates_are_trusted(demo_root: Path) -> None:
    """On clear dates the homogeneous wheat field is trusted in both modes, with fraction 0."""
    truth = load_ground_truth(demo_root)["polygons"]["field_wheat"]["dates"]
    series = _series(demo_root, "field_wheat", cloud={"mode": "both"})["series"]
    clear = [e for e in series if truth[e["date"]]["sky"] == "clear"]
    assert len(clear) >= 15
    assert all(e["cloud"]["trusted"] and e["cloud"]["fraction"] == 0 for e in clear)


@pytest.mark.parametrize("method", ["threshold", "otsu"])
def test_lake_water_area_follows_the_ground_truth(demo_root: Path, method: str) -> None:
    """On clear dates the lake's water area is within 5 % of the truth; too-cloudy dates are refused (CLOUDY)."""
    truth = load_ground_truth(demo_root)["polygons"]["lake"]["dates"]
    series = _series(demo_root, "lake", water={"method": method})["series"]
    checked = flagged = 0
    for entry in series:
        t, water = truth[entry["date"]], entry["water"]
        if water["status"] == "CLOUDY":
            assert water["area_m2"] is None and water["fraction"] is None
            assert entry["cloud"]["fraction"] > 0.2
            flagged += 1
        elif t["sky"] == "clear" and t["nodata_fraction"] == 0:
            assert water["area_m2"] == pytest.approx(t["water_area_m2"], rel=0.05), entry["date"]
            checked += 1
    assert checked >= 15 and flagged >= 5
    areas = [truth[e["date"]]["water_area_m2"] for e in series]
    assert max(areas) > 1.5 * min(areas)  # the lake does change over the year


def test_cached_cloud_cells_do_not_depend_on_earlier_queries(demo_root: Path) -> None:
    """Pixel-mode answers for a field are the same with a fresh cell cache and after other polygons filled it."""
    from stats.clouds.cells import ProbabilityCache

    archive = Archive.open(demo_root)
    polygons = {f["properties"]["name"]: f["geometry"] for f in demo_polygons()["features"]}

    def run(name: str, cache: ProbabilityCache) -> dict:
        request = TimeSeriesRequest.from_dict({"geometry": polygons[name], "time": YEAR, "bands": ["B04"],
                                               "statistics": ["mean"], "cloud": {"mode": "pixel"}})
        return query_timeseries(request, archive, cache=cache).to_dict()

    fresh = run("field_small", ProbabilityCache())
    shared = ProbabilityCache()
    run("field_wheat", shared)
    run("forest", shared)
    assert run("field_small", shared) == fresh
