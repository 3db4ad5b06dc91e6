"""Analytics on the demo archive, against its known crop phenology, and through every entry point
(HTTP route, command line, library, batch and batch jobs)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from test_batch_http import wait_until_finished

from polyfis.cli import main
from service import create_app
from stats.archive.synthetic import demo_polygons
from stats.archive.synthetic.surface import cover_spectrum
from stats.batch import run_batch
from stats.settings import FIXTURES

RECIPE = json.loads((FIXTURES / "demo_recipe.json").read_text())
GEOMETRY = {f["properties"]["name"]: f["geometry"] for f in demo_polygons()["features"]}
#: Demo polygon -> (crop, shift in days) of the field of the recipe it lies in.
CROPS = {"field_wheat": ("winter_wheat", 0), "field_maize": ("maize", 0), "field_sunflower": ("sunflower", 0)}
YEAR = {"from": "2023-01-01", "to": "2023-12-31"}


def truth_ndvi(crop: str, shift: int) -> np.ndarray:
    """The crop's clear-sky NDVI on every day of 2023 (index 0 = 1 January), from the recipe's keypoints."""
    out = []
    for doy in range(1, 366):
        spectrum = cover_spectrum(RECIPE, crop, doy - shift)
        red, nir = spectrum[3], spectrum[7]
        out.append((nir - red) / (nir + red))
    return np.array(out)


def truth_season(curve: np.ndarray, share: float = 0.2) -> tuple[int, int, int]:
    """Days of year of start, peak and end by the amplitude rule, walked day by day on the truth curve."""
    peak = int(np.argmax(curve))
    left, right = curve[:peak].min(), curve[peak + 1:].min()
    start = peak
    while curve[start - 1] >= left + share * (curve[peak] - left):
        start -= 1
    end = peak
    while curve[end + 1] >= right + share * (curve[peak] - right):
        end += 1
    return start + 1, peak + 1, end + 1


def doy(text: str) -> int:
    return dt.date.fromisoformat(text).timetuple().tm_yday


@pytest.fixture(scope="module")
def client(demo_root: Path):
    return create_app({"archive": str(demo_root)}).test_client()


def post(client, name: str, **fields) -> dict:
    response = client.post("/api/v1/timeseries", json={"geometry": GEOMETRY[name], "time": YEAR, "bands": ["B04"],
                                                       "indices": ["NDVI"], **fields})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.mark.parametrize("name", sorted(CROPS))
def test_season_metrics_follow_the_known_crop_phenology(client, name: str) -> None:
    """Start and end within 10 days, peak within 15 days (crop peaks are flat) and amplitude within 0.1 of
    the truth curve's, by the same amplitude rule on the recipe's clear-sky NDVI."""
    start, peak, end = truth_season(truth_ndvi(*CROPS[name]))
    season = post(client, name, season="NDVI")["season"]
    assert abs(doy(season["start"]) - start) <= 10, (season, start)
    assert abs(doy(season["end"]) - end) <= 10, (season, end)
    assert abs(doy(season["peak"]) - peak) <= 15, (season, peak)
    curve = truth_ndvi(*CROPS[name])
    true_amplitude = curve.max() - (curve[: peak - 1].min() + curve[peak:].min()) / 2
    assert season["amplitude"] == pytest.approx(true_amplitude, abs=0.1)
    assert season["length_days"] == doy(season["end"]) - doy(season["start"]) + 1


def test_a_fields_year_comes_back_as_a_clean_five_day_curve(client) -> None:
    answer = post(client, "field_maize", fill={"method": "whittaker", "grid": "P5D"})
    curves = answer["curves"]
    dates = [dt.date.fromisoformat(d) for d in curves["dates"]]
    assert dates[0] == dt.date(2023, 1, 1) and {(b - a).days for a, b in zip(dates, dates[1:])} == {5}
    assert len(dates) == 73
    values = curves["variables"]["NDVI"]["value"]
    truth = truth_ndvi("maize", 0)
    errors = [abs(v - truth[d.timetuple().tm_yday - 1]) for d, v in zip(dates, values) if v is not None]
    assert len(errors) >= 65 and float(np.mean(errors)) < 0.05 and max(errors) < 0.15
    # every grid date without a clear acquisition that day is flagged
    clear_days = {e["date"] for e in answer["series"] if e["cloud"]["cloudy"] is False}
    for day, value, flag in zip(curves["dates"], values, curves["variables"]["NDVI"]["interpolated"]):
        assert flag == (value is not None and day not in clear_days)


def test_intervals_list_their_clear_dates_and_average_them(client) -> None:
    answer = post(client, "field_wheat", aggregation={"interval": "P1M"})
    clear = {e["date"]: e["indices"]["NDVI"]["mean"] for e in answer["series"] if e["cloud"]["cloudy"] is False}
    months = answer["intervals"]
    assert len(months) == 12
    for month in months:
        assert month["dates"] == sorted(d for d in clear if d.startswith(month["interval"]["from"][:7]))
        if month["dates"]:
            expected = np.mean([clear[d] for d in month["dates"]])
            assert month["indices"]["NDVI"]["mean"] == pytest.approx(expected)
        else:
            assert month["status"] == "NO_CLEAR_DATE" and month["reason"]


def test_each_table_of_the_csv_holds_what_the_json_says(client) -> None:
    fields = {"aggregation": "P1M", "fill": {"method": "linear"}, "season": "NDVI"}
    answer = post(client, "field_sunflower", **fields)
    body = {"geometry": GEOMETRY["field_sunflower"], "time": YEAR, "bands": ["B04"], "indices": ["NDVI"], **fields}

    def table(name: str) -> list[dict[str, str]]:
        response = client.post(f"/api/v1/timeseries?format=csv&table={name}", json=body)
        assert response.status_code == 200
        return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))

    intervals = table("intervals")
    assert [r["from"] for r in intervals] == [i["interval"]["from"] for i in answer["intervals"]]
    assert [r["NDVI_mean"] for r in intervals] == [
        "" if i["indices"].get("NDVI", {}).get("mean") is None else repr(i["indices"]["NDVI"]["mean"])
        for i in answer["intervals"]]
    curves = table("curves")
    assert [float(r["NDVI"]) if r["NDVI"] else None for r in curves] == answer["curves"]["variables"]["NDVI"]["value"]
    assert [r["NDVI_interpolated"] == "true" for r in curves] == answer["curves"]["variables"]["NDVI"]["interpolated"]
    (season,) = table("season")
    assert season["start"] == answer["season"]["start"] and float(season["amplitude"]) == answer["season"]["amplitude"]
    assert len(table("dates")) == len(answer["series"])


def test_a_table_the_request_did_not_ask_for_is_a_400(client) -> None:
    body = {"geometry": GEOMETRY["field_wheat"], "time": YEAR, "indices": ["NDVI"]}
    response = client.post("/api/v1/timeseries?format=csv&table=season", json=body)
    assert response.status_code == 400 and "season" in response.get_json()["error"]["message"]
    response = client.post("/api/v1/timeseries?format=csv&table=weekly", json=body)
    assert response.status_code == 400 and "expected one of" in response.get_json()["error"]["message"]


def test_the_command_line_gives_the_routes_tables(demo_root: Path, client) -> None:
    body = {"geometry": GEOMETRY["field_maize"], "time": YEAR, "bands": ["B04"], "indices": ["NDVI"],
            "aggregation": {"interval": "P10D", "method": "max", "index": "NDVI"}}
    http = client.post("/api/v1/timeseries?format=csv&table=intervals", json=body).get_data(as_text=True)
    result = CliRunner().invoke(main, [
        "query", "--archive", str(demo_root), "--geometry", json.dumps(GEOMETRY["field_maize"]), "--from",
        "2023-01-01", "--to", "2023-12-31", "--bands", "B04", "--indices", "NDVI", "--aggregate", "P10D",
        "--aggregate-method", "max", "--aggregate-index", "NDVI", "--format", "csv", "--table", "intervals"])
    assert result.exit_code == 0, result.output
    assert result.output == http


def test_batch_analytics_equal_each_polygons_own_and_go_beside_the_rows(demo_root: Path, client,
                                                                         tmp_path: Path) -> None:
    names = sorted(CROPS)
    collection = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": n}, "geometry": GEOMETRY[n]} for n in names]}
    (tmp_path / "fields.geojson").write_text(json.dumps(collection))
    options = {"bands": ["B04"], "indices": ["NDVI"], "aggregation": "P1M", "fill": {"grid": "P10D"},
               "season": "NDVI"}
    out = tmp_path / "out.parquet"
    run_batch(str(demo_root), tmp_path / "fields.geojson", "2023-01-01", "2023-12-31", out, options=options,
              workers=0, progress=False)
    season = pq.read_table(tmp_path / "out.season.parquet").to_pylist()
    curves = pq.read_table(tmp_path / "out.curves.parquet")
    intervals = pq.read_table(tmp_path / "out.intervals.parquet")
    assert [r["id"] for r in season] == names
    assert intervals.num_rows == 12 * len(names)
    for row in season:
        own = post(client, row["id"], **{k: v for k, v in options.items() if k not in ("bands", "indices")})
        assert row["start"].isoformat() == own["season"]["start"]
        assert row["integral"] == pytest.approx(own["season"]["integral"], rel=1e-9)
        mine = [r for r in curves.to_pylist() if r["id"] == row["id"]]
        assert [r["NDVI"] for r in mine] == pytest.approx(own["curves"]["variables"]["NDVI"]["value"], nan_ok=True)


def test_batch_jobs_serve_their_analytics_tables(client) -> None:
    collection = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "maize"}, "geometry": GEOMETRY["field_maize"]}]}
    submitted = client.post("/api/v1/batch", json={"polygons": collection, "time": YEAR,
                                                   "options": {"indices": ["NDVI"], "season": "NDVI"}})
    assert submitted.status_code in (200, 201, 202), submitted.get_json()
    job = submitted.get_json()["id"]
    assert wait_until_finished(client, job, timeout=120)["status"] == "DONE"
    season = client.get(f"/api/v1/batch/{job}/results?table=season")
    rows = list(csv.DictReader(io.StringIO(season.get_data(as_text=True))))
    assert [r["id"] for r in rows] == ["maize"] and rows[0]["start"]
    missing = client.get(f"/api/v1/batch/{job}/results?table=intervals")
    assert missing.status_code == 404 and "aggregation" in missing.get_json()["error"]["message"]


def test_the_library_gives_the_tables_as_dataframes_and_plots_the_filled_curve(demo_root: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import polyfis

    series = polyfis.timeseries(GEOMETRY["field_maize"], "2023-01-01", "2023-12-31", archive=str(demo_root),
                                bands=["B04"], indices=["NDVI"], fill={"grid": "P5D"}, season="NDVI")
    curves = series.to_pandas("curves")
    assert list(curves.columns) == ["date", "NDVI", "NDVI_observed", "NDVI_interpolated"] and len(curves) == 73
    assert str(curves["date"].dtype).startswith("datetime64")
    assert series.to_pandas("season")["peak"].iloc[0] == np.datetime64(series.to_dict()["season"]["peak"])
    figure = series.plot()
    lines = figure.axes[1].get_lines()
    assert [line.get_label() for line in lines] == ["clear dates", "filled (whittaker)"]
    assert len(lines[1].get_xdata()) == 73
