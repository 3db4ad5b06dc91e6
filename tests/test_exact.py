"""Exact mode: pixels weighted by the fraction of their area inside the polygon, checked against exactextract."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from conftest import CRS_UTM, X0, Y0, band_array
from shapely.geometry import mapping

from stats import Archive, TimeSeriesRequest, query_timeseries
from stats.batch import BatchPolygon, compute_batch
from stats.errors import InvalidRequestError

exactextract = pytest.importorskip("exactextract")

WHEN = dt.datetime(2023, 5, 1, 10, tzinfo=dt.UTC)

#: Polygons for which pixel centres give a poor answer: a 3 m sliver, a sub-pixel parcel, a thin triangle.
SHAPES = {
    "sliver": shapely.Polygon([(X0 + 12, Y0 - 15), (X0 + 101, Y0 - 88), (X0 + 103.5, Y0 - 85.6),
                               (X0 + 14.4, Y0 - 12.5)]),
    "subpixel": shapely.box(X0 + 31.5, Y0 - 47.2, X0 + 37.9, Y0 - 42.1),
    "triangle": shapely.Polygon([(X0 + 5, Y0 - 5), (X0 + 115, Y0 - 33), (X0 + 21, Y0 - 110)]),
    "holed": shapely.box(X0 + 3, Y0 - 117, X0 + 117, Y0 - 3).difference(
        shapely.Point(X0 + 60, Y0 - 60).buffer(27)),
}
STATISTICS = ["count", "sum", "mean", "std", "min", "max", "median", "p10", "p90"]


@pytest.fixture(name="archive")
def fixture_archive(make_archive: Any) -> Path:
    rng = np.random.default_rng(7)
    from stats.bands import NATIVE_RESOLUTION, S2_BANDS

    bands = {}
    for band in S2_BANDS:
        base = band_array(band)
        noisy = (base.astype(np.int64) + rng.integers(0, 400, base.shape)).astype(np.uint16)
        res = NATIVE_RESOLUTION[band]
        from affine import Affine

        bands[band] = (noisy, Affine(res, 0, X0, 0, -res, Y0))
    return make_archive([{"id": "T1_20230501", "when": WHEN, "bands": bands}])


def engine(archive: Path, geom: shapely.Geometry, bands: list[str], exact: bool = True) -> dict[str, Any]:
    request = TimeSeriesRequest.from_dict({
        "geometry": mapping(geom), "crs": CRS_UTM, "time": {"from": "2023-05-01", "to": "2023-05-01"},
        "bands": bands, "statistics": STATISTICS, "exact": exact})
    result = query_timeseries(request, Archive.open(archive))
    assert len(result.series) == 1
    return result.series[0].bands


def reference(archive: Path, band: str, geom: shapely.Geometry) -> dict[str, float]:
    path = archive / "items" / "T1_20230501" / f"{band}.tif"
    ops = ["count", "sum", "mean", "stdev", "min", "max", "median", "quantile(q=0.1)", "quantile(q=0.9)"]
    feature = {"type": "Feature", "properties": {}, "geometry": mapping(geom)}
    out = exactextract.exact_extract(str(path), [feature], ops, output="geojson")
    return dict(out[0]["properties"])


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("band", ["B04", "B05"])
def test_exact_statistics_equal_exactextract(archive: Path, name: str, band: str) -> None:
    geom = SHAPES[name]
    ours = engine(archive, geom, [band])[band]
    ref = reference(archive, band, geom)
    scale = 10000.0
    # exactextract keeps coverage fractions in float32: sums and moments agree to about 1e-6
    assert ours["mean"] * scale == pytest.approx(ref["mean"], rel=1e-6)
    assert ours["sum"] * scale == pytest.approx(ref["sum"] * (4 if band == "B05" else 1), rel=1e-6)
    assert ours["std"] * scale == pytest.approx(ref["stdev"], rel=1e-5, abs=1e-6)
    assert ours["min"] * scale == pytest.approx(ref["min"]) and ours["max"] * scale == pytest.approx(ref["max"])
    # count is the covered area in grid pixels: 10 m pixels here, the band's own pixels in exactextract
    area_px = geom.intersection(shapely.box(X0, Y0 - 120, X0 + 120, Y0)).area / 100.0
    assert ours["count"] == pytest.approx(area_px, rel=1e-9)
    assert ours["count"] == pytest.approx(ref["count"] * (4 if band == "B05" else 1), rel=1e-6)
    # exactextract truncates quantiles of a uint16 raster to whole DN
    for ours_key, ref_key in (("median", "median"), ("p10", "quantile_10"), ("p90", "quantile_90")):
        assert math.floor(ours[ours_key] * scale + 1e-6) == pytest.approx(ref[ref_key], abs=1), ours_key


def test_pixel_centres_and_exact_differ_where_they_should(archive: Path) -> None:
    sub = engine(archive, SHAPES["subpixel"], ["B04"], exact=False)["B04"]
    assert sub["count"] == 1  # a polygon holding no pixel centre falls back to the pixel it touches
    exact = engine(archive, SHAPES["subpixel"], ["B04"])["B04"]
    assert exact["count"] == pytest.approx(SHAPES["subpixel"].area / 100.0, rel=1e-9)
    # a box on whole pixels: every fraction is 1 and both modes agree
    box = shapely.box(X0 + 20, Y0 - 60, X0 + 70, Y0 - 30)
    centres = engine(archive, box.buffer(-0.001, join_style="mitre"), ["B04", "B05"], exact=False)
    exact_box = engine(archive, box, ["B04", "B05"])
    for band in ("B04", "B05"):
        for stat in ("mean", "std", "min", "max", "sum"):
            assert exact_box[band][stat] == pytest.approx(centres[band][stat], rel=1e-9)


def test_exact_mode_in_batch_matches_single_queries(archive: Path) -> None:
    polygons = [BatchPolygon(name, geom, CRS_UTM) for name, geom in sorted(SHAPES.items())]
    rows = compute_batch(archive, polygons, "2023-05-01", "2023-05-01",
                         options={"bands": ["B04"], "statistics": STATISTICS, "exact": True}).to_pylist()
    for row, (name, geom) in zip(rows, sorted(SHAPES.items())):
        single = engine(archive, geom, ["B04"])["B04"]
        assert row["id"] == name
        for stat in STATISTICS:
            assert row[f"B04_{stat}"] == pytest.approx(single[stat], rel=1e-12)


def test_exact_with_histogram_is_rejected() -> None:
    with pytest.raises(InvalidRequestError, match="exact"):
        TimeSeriesRequest.from_dict({"geometry": "POINT (0 0)", "time": {"from": "2023-01-01", "to": "2023-01-02"},
                                     "exact": True, "histogram": {"bins": 5}})
    with pytest.raises(InvalidRequestError, match="exact"):
        TimeSeriesRequest.from_dict({"geometry": "POINT (0 0)", "time": {"from": "2023-01-01", "to": "2023-01-02"},
                                     "exact": "yes"})
