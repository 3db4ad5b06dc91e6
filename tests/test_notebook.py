"""The README's notebook example runs as written, and its DataFrames hold the engine's answers."""

from __future__ import annotations

import os
import re
from pathlib import Path

import geopandas
import matplotlib
import pytest
import shapely
from shapely.geometry import shape

from stats.archive.synthetic import demo_polygons

matplotlib.use("Agg")

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Using polyfis from Python"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README has no Python example"
    return match.group(1)


@pytest.fixture(name="example")
def fixture_example(demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The README example executed in an empty folder, on the demo archive."""
    from stats.settings import configure

    monkeypatch.setenv("POLYFIS_DEMO_DIR", str(demo_root))
    monkeypatch.chdir(tmp_path)
    configure(None)
    namespace: dict = {}
    exec(compile(readme_example(), str(README), "exec"), namespace)  # noqa: S102 - the README's own code
    configure(None)
    return namespace


def test_the_wide_frame_is_the_csv_answer(example: dict) -> None:
    series, frame = example["series"], example["frame"]
    assert list(frame.columns) == series.result.columns()
    assert len(frame) == len(series.result.series) > 30
    assert str(frame["date"].dtype).startswith("datetime64")
    answer = series.to_dict()["series"]
    for row, entry in zip(frame.itertuples(index=False), answer):
        assert row.date.date().isoformat() == entry["date"]
        assert row.NDVI_mean == pytest.approx(entry["indices"]["NDVI"]["mean"])
        assert row.cloudy == entry["cloud"]["cloudy"]
    assert not example["clear"]["cloudy"].any()


def test_the_long_frame_has_one_row_per_date_name_and_statistic(example: dict) -> None:
    series, tidy, ndvi = example["series"], example["tidy"], example["ndvi"]
    dates = len(series.result.series)
    assert len(tidy) == dates * 3 * 7  # B04, B08, NDVI x the 7 default statistics
    assert set(tidy["kind"]) == {"band", "index"}
    first = series.result.series[0]
    assert ndvi.iloc[0]["p90"] == pytest.approx(first.indices["NDVI"]["p90"])
    assert sorted(ndvi.columns) == sorted(series.result.statistics)


def test_the_batch_frame_carries_each_polygon(example: dict, tmp_path: Path) -> None:
    rows = example["rows"]
    names = {f["properties"]["name"]: shape(f["geometry"]) for f in demo_polygons()["features"]}
    assert set(rows["id"]) == set(names)
    assert rows.crs.to_epsg() == 4326
    for name, geom in names.items():
        assert shapely.equals_exact(rows[rows.id == name].geometry.iloc[0].normalize(), geom.normalize(), 1e-9)
    written = geopandas.read_parquet(tmp_path / "fields.parquet")
    assert len(written) == len(rows) and written.crs.to_epsg() == 4326
    assert written["NDVI_mean"].tolist() == pytest.approx(rows["NDVI_mean"].tolist(), nan_ok=True)


def test_the_quick_look_has_the_cloud_and_index_panels(example: dict) -> None:
    figure = example["figure"]
    top, bottom = figure.axes
    assert top.get_ylabel() == "cloud probability"
    assert bottom.get_ylabel() == "NDVI mean (clear dates)"
    assert len(bottom.lines[0].get_xdata()) == int((~example["frame"]["cloudy"].astype(bool)).sum())


def test_the_example_needs_no_file_of_the_checkout(example: dict, tmp_path: Path) -> None:
    """It ran in an empty folder: only what it wrote is there."""
    assert sorted(os.listdir(tmp_path)) == ["fields.parquet"]
