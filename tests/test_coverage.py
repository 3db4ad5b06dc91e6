"""Exact mode: coverage fractions and coverage-weighted statistics, checked against exactextract and by hand.

The rasters are 60 x 70 pixels of 10 m in EPSG:32633 with the top-left corner at (500000, 5000000), written
with rasterio as GeoTIFFs under ``tmp_path``; exactextract reads them and the same polygons as GeoJSON-like
features. exactextract stores coverage fractions as float32, so fractions agree to ~1e-7; its statistics
are computed in float64 from those fractions, so ``weighted_summary`` given exactextract's own fractions
agrees to ~1e-15, except that exactextract converts quantiles to the raster's data type (float32 rounding,
integer truncation).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import shapely
import shapely.affinity
from affine import Affine
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

import stats.coverage as coverage_module
from stats.coverage import coverage_fractions
from stats.errors import UnknownStatisticError
from stats.zonal import summarize, weighted_summary

exactextract = pytest.importorskip("exactextract")

X0, Y0 = 500000.0, 5000000.0
ROWS, COLS = 60, 70
GRID = Affine(10.0, 0.0, X0, 0.0, -10.0, Y0)
CRS_UTM = "EPSG:32633"
EXTENT = shapely.box(X0, Y0 - 10.0 * ROWS, X0 + 10.0 * COLS, Y0)


def _circle(x: float, y: float, radius: float, segments: int = 32) -> BaseGeometry:
    return shapely.Point(X0 + x, Y0 - y).buffer(radius, quad_segs=segments)


#: The polygons checked against exactextract, in metres east / south of the raster's top-left corner.
CASES: dict[str, BaseGeometry] = {
    # 2.8 m x 2.5 m inside pixel (row 20, col 10)
    "subpixel": shapely.box(X0 + 101.3, Y0 - 203.7, X0 + 104.1, Y0 - 201.2),
    # 3 m wide, 500 m long, at 23 degrees
    "sliver": shapely.affinity.rotate(shapely.box(X0 + 50, Y0 - 301.5, X0 + 550, Y0 - 298.5), 23),
    "rotated_triangle": shapely.affinity.rotate(
        shapely.Polygon([(X0 + 100, Y0 - 500), (X0 + 500, Y0 - 480), (X0 + 260, Y0 - 120)]), 31.7),
    "hole": _circle(300, 300, 200, 64).difference(_circle(320, 280, 90)),
    "multipolygon": shapely.MultiPolygon([
        _circle(150, 150, 60),
        shapely.affinity.rotate(shapely.box(X0 + 300, Y0 - 500, X0 + 450, Y0 - 380), 12),
        shapely.box(X0 + 461.2, Y0 - 499.9, X0 + 463.3, Y0 - 497.7),
    ]),
    # crosses the raster's top and right edges
    "partly_outside": _circle(680, 20, 150, 40),
}

#: exactextract operations and the matching statistic names.
EE_STATS = {"count": "count", "sum": "sum", "mean": "mean", "stdev": "std", "min": "min", "max": "max",
            "median": "median", "quantile(q=0.1)": "p10", "quantile(q=0.9)": "p90", "quantile(q=0.25)": "p25"}
EE_KEYS = {"count": "count", "sum": "sum", "mean": "mean", "stdev": "stdev", "min": "min", "max": "max",
           "median": "median", "quantile(q=0.1)": "quantile_10", "quantile(q=0.9)": "quantile_90",
           "quantile(q=0.25)": "quantile_25"}
STATISTICS = list(EE_STATS.values())


def _values(kind: str) -> np.ndarray:
    rng = np.random.default_rng({"float64": 1, "float32": 2, "uint16": 3, "ties": 4}[kind])
    if kind == "uint16":
        return rng.integers(0, 5000, (ROWS, COLS)).astype(np.uint16)
    if kind == "ties":  # few distinct values, many repeats: exactextract merges equal values for quantiles
        return rng.integers(0, 7, (ROWS, COLS)).astype(np.float64)
    return rng.normal(100.0, 30.0, (ROWS, COLS)).astype(kind)


@pytest.fixture(scope="module")
def rasters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One GeoTIFF per kind of values: float64, float32, uint16, and float64 with ties."""
    folder = tmp_path_factory.mktemp("coverage")
    out = {}
    for kind in ("float64", "float32", "uint16", "ties"):
        data = _values(kind)
        path = folder / f"{kind}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=COLS, height=ROWS, count=1, dtype=data.dtype.name,
                           crs=CRS_UTM, transform=GRID) as dst:
            dst.write(data, 1)
        out[kind] = path
    return out


def exact_extract(path: Path, geom: BaseGeometry, ops: list[str]) -> dict[str, Any]:
    """exactextract's results for one polygon over the raster at ``path``."""
    feature = {"type": "Feature", "properties": {}, "geometry": mapping(geom)}
    with rasterio.open(path) as src:
        return exactextract.exact_extract(src, [feature], ops)[0]["properties"]


def ee_fractions(path: Path, geom: BaseGeometry) -> np.ndarray:
    """exactextract's coverage fractions as a (ROWS, COLS) array."""
    props = exact_extract(path, geom, ["cell_id", "coverage"])
    out = np.zeros(ROWS * COLS)
    out[np.asarray(props["cell_id"], dtype=np.int64)] = props["coverage"]
    return out.reshape(ROWS, COLS)


def overlay_fractions(geom: BaseGeometry, transform: Affine = GRID, shape: tuple[int, int] = (ROWS, COLS)
                      ) -> np.ndarray:
    """Brute-force reference: every pixel box intersected with ``geom`` by shapely, divided by the pixel area."""
    rows, cols = np.indices(shape)
    xa, ya = transform.c + cols * transform.a, transform.f + rows * transform.e
    xb, yb = xa + transform.a, ya + transform.e
    boxes = shapely.box(np.minimum(xa, xb), np.minimum(ya, yb), np.maximum(xa, xb), np.maximum(ya, yb))
    return np.asarray(shapely.area(shapely.intersection(boxes, geom)) / abs(transform.a * transform.e))


# --- coverage fractions against exactextract -------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_fractions_match_exactextract(case: str, rasters: dict[str, Path]) -> None:
    """Same pixels covered, same fractions up to exactextract's float32 storage."""
    geom = CASES[case]
    ours = coverage_fractions(geom, GRID, (ROWS, COLS))
    theirs = ee_fractions(rasters["float64"], geom)
    assert ours.dtype == np.float64 and ours.shape == (ROWS, COLS)
    assert np.array_equal(ours > 0, theirs > 0)
    assert np.abs(ours - theirs).max() < 1e-6
    assert ours.min() >= 0.0 and ours.max() <= 1.0


@pytest.mark.parametrize("case", sorted(CASES))
def test_fractions_add_up_to_the_area_inside_the_raster(case: str) -> None:
    """Sum of fractions x pixel area = area of the polygon within the raster's extent."""
    geom = CASES[case]
    ours = coverage_fractions(geom, GRID, (ROWS, COLS))
    assert ours.sum() * 100.0 == pytest.approx(geom.intersection(EXTENT).area, rel=1e-10)


@pytest.mark.parametrize("case", sorted(CASES))
def test_fractions_match_brute_force_overlay(case: str) -> None:
    """Every pixel agrees with shapely's intersection of its box and the polygon."""
    geom = CASES[case]
    assert np.abs(coverage_fractions(geom, GRID, (ROWS, COLS)) - overlay_fractions(geom)).max() < 1e-9


# --- weighted statistics against exactextract ------------------------------------------------------------


def _assert_matches_exactextract(ours: dict[str, float | int | None], props: dict[str, Any], kind: str,
                                 rel: float) -> None:
    for op, name in EE_STATS.items():
        theirs, mine = props[EE_KEYS[op]], ours[name]
        assert mine is not None, name
        if name in ("min", "max"):
            assert mine == theirs, name
        elif name in ("median", "p10", "p90", "p25"):
            if kind == "float32":  # exactextract rounds the quantile to the raster's float32
                assert float(np.float32(mine)) == pytest.approx(theirs, rel=max(rel, 1e-7)), name
            elif kind == "uint16":  # ... and truncates it to the raster's integer type
                assert theirs - 1e-9 <= mine < theirs + 1 + 1e-9, name
            else:
                assert mine == pytest.approx(theirs, rel=rel, abs=rel), name
        else:
            assert mine == pytest.approx(theirs, rel=rel), name


@pytest.mark.parametrize("kind", ["float64", "float32", "uint16", "ties"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_weighted_summary_with_exactextract_fractions(case: str, kind: str, rasters: dict[str, Path]) -> None:
    """Given exactextract's own values and fractions, every statistic matches to rounding (1e-12)."""
    props = exact_extract(rasters[kind], CASES[case], ["values", "coverage", *EE_STATS])
    ours = weighted_summary(np.asarray(props["values"]), np.asarray(props["coverage"]), STATISTICS)
    _assert_matches_exactextract(ours, props, kind, rel=1e-12)


@pytest.mark.parametrize("kind", ["float64", "float32", "uint16", "ties"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_exact_mode_end_to_end(case: str, kind: str, rasters: dict[str, Path]) -> None:
    """Our fractions over the values read by rasterio give exactextract's statistics (to its float32 fractions).
    """
    props = exact_extract(rasters[kind], CASES[case], list(EE_STATS))
    with rasterio.open(rasters[kind]) as src:
        data = src.read(1)
    frac = coverage_fractions(CASES[case], GRID, (ROWS, COLS))
    ours = weighted_summary(data.ravel(), frac.ravel(), STATISTICS)
    _assert_matches_exactextract(ours, props, kind, rel=1e-6)


def test_repeated_values_are_merged_for_quantiles(rasters: dict[str, Path]) -> None:
    """With ties, exactextract's quantiles differ from those of the unmerged values; ours follow exactextract."""
    geom = CASES["rotated_triangle"]
    props = exact_extract(rasters["ties"], geom, ["values", "coverage", "quantile(q=0.1)", "median"])
    values, weights = np.asarray(props["values"]), np.asarray(props["coverage"])
    ours = weighted_summary(values, weights, ["p10", "median"])
    assert ours == {"p10": props["quantile_10"], "median": props["median"]}
    # the same definition without merging equal values would be something else
    order = np.argsort(values, kind="stable")
    x, w = values[order], weights[order]
    n = x.size
    s = np.arange(n) * w + (n - 1) * np.concatenate(([0.0], np.cumsum(w)[:-1]))
    t = 0.1 * (n - 1) * w.sum()
    j = int(np.searchsorted(s, t, side="right"))
    unmerged = x[j - 1] + (t - s[j - 1]) * (x[j] - x[j - 1]) / (s[j] - s[j - 1])
    assert unmerged != pytest.approx(props["quantile_10"], abs=1e-3)


# --- coverage fractions by hand --------------------------------------------------------------------------


def _pixel(row: int, col: int) -> tuple[float, float, float, float]:
    """Bounds (minx, miny, maxx, maxy) of pixel (row, col) of GRID."""
    return X0 + 10.0 * col, Y0 - 10.0 * (row + 1), X0 + 10.0 * (col + 1), Y0 - 10.0 * row


def test_half_a_pixel_gives_one_half() -> None:
    """The left half of pixel (3, 4) covers 0.5 of it and nothing else."""
    minx, miny, maxx, maxy = _pixel(3, 4)
    frac = coverage_fractions(shapely.box(minx, miny, minx + 5.0, maxy), GRID, (ROWS, COLS))
    expected = np.zeros((ROWS, COLS))
    expected[3, 4] = 0.5
    assert np.array_equal(frac, expected)


def test_diagonal_half_pixel_gives_one_half() -> None:
    """A triangle cut along a pixel's diagonal covers 0.5 of it."""
    minx, miny, maxx, maxy = _pixel(7, 9)
    frac = coverage_fractions(shapely.Polygon([(minx, miny), (maxx, miny), (maxx, maxy)]), GRID, (ROWS, COLS))
    assert frac[7, 9] == pytest.approx(0.5, abs=1e-12)
    assert np.count_nonzero(frac) == 1


def test_square_on_a_pixel_corner_covers_four_quarters() -> None:
    """A 4 m x 4 m square centred on the corner shared by four pixels covers 16/4 m^2 of each."""
    x, y = X0 + 50.0, Y0 - 50.0
    frac = coverage_fractions(shapely.box(x - 2, y - 2, x + 2, y + 2), GRID, (ROWS, COLS))
    assert np.allclose(frac[4:6, 4:6], 0.04, rtol=0, atol=1e-12)
    assert np.count_nonzero(frac) == 4


def test_pixel_aligned_block_is_exactly_one() -> None:
    """A block of whole pixels gives exactly 1 there and 0 elsewhere (neighbours sharing an edge get 0)."""
    frac = coverage_fractions(shapely.box(X0 + 20, Y0 - 50, X0 + 60, Y0 - 30), GRID, (ROWS, COLS))
    expected = np.zeros((ROWS, COLS))
    expected[3:5, 2:6] = 1.0
    assert np.array_equal(frac, expected)


def test_hole_of_one_pixel_is_zero() -> None:
    """A 5 x 5 pixel square with a one-pixel hole in the middle."""
    outer = shapely.box(X0 + 100, Y0 - 150, X0 + 150, Y0 - 100)
    frac = coverage_fractions(outer.difference(shapely.box(*_pixel(12, 12))), GRID, (ROWS, COLS))
    expected = np.zeros((ROWS, COLS))
    expected[10:15, 10:15] = 1.0
    expected[12, 12] = 0.0
    assert np.array_equal(frac, expected)


def test_polygon_outside_the_grid_covers_nothing() -> None:
    far = shapely.box(X0 - 500, Y0 + 100, X0 - 100, Y0 + 500)
    assert not coverage_fractions(far, GRID, (ROWS, COLS)).any()


def test_polygon_containing_the_grid_covers_everything() -> None:
    assert np.array_equal(coverage_fractions(EXTENT.buffer(1000), GRID, (ROWS, COLS)), np.ones((ROWS, COLS)))


def test_corner_of_the_grid_partly_outside() -> None:
    """A 10 m square centred on the raster's top-left corner: a quarter of pixel (0, 0)."""
    frac = coverage_fractions(shapely.box(X0 - 5, Y0 - 5, X0 + 5, Y0 + 5), GRID, (ROWS, COLS))
    assert frac[0, 0] == pytest.approx(0.25, abs=1e-12)
    assert np.count_nonzero(frac) == 1


@pytest.mark.parametrize("geom", [shapely.Polygon(), shapely.LineString([(X0, Y0 - 5), (X0 + 100, Y0 - 5)]),
                                  shapely.Point(X0 + 5, Y0 - 5)], ids=["empty", "line", "point"])
def test_geometries_without_area_cover_nothing(geom: BaseGeometry) -> None:
    assert not coverage_fractions(geom, GRID, (ROWS, COLS)).any()


def test_invalid_polygon_is_repaired() -> None:
    """A bow tie over 4 x 4 pixels becomes its two triangles (make_valid)."""
    bowtie = shapely.Polygon([(X0, Y0), (X0 + 40, Y0 - 40), (X0 + 40, Y0), (X0, Y0 - 40)])
    frac = coverage_fractions(bowtie, GRID, (ROWS, COLS))
    assert np.abs(frac - overlay_fractions(shapely.make_valid(bowtie))).max() < 1e-12
    assert frac.sum() == pytest.approx(8.0)


def test_south_up_grid_is_the_north_up_grid_flipped() -> None:
    """The same pixels counted from the bottom row give the same fractions upside down."""
    geom = CASES["rotated_triangle"]
    south_up = Affine(10.0, 0.0, X0, 0.0, 10.0, Y0 - 10.0 * ROWS)
    assert np.allclose(coverage_fractions(geom, south_up, (ROWS, COLS))[::-1],
                       coverage_fractions(geom, GRID, (ROWS, COLS)), rtol=0, atol=1e-12)


def test_rotated_grid_is_rejected() -> None:
    with pytest.raises(ValueError, match="rotation"):
        coverage_fractions(CASES["hole"], Affine(9.85, 1.74, X0, 1.74, -9.85, Y0), (ROWS, COLS))


def _on_pixels(coords: list[tuple[float, float]]) -> BaseGeometry:
    """A polygon from (col, row) pixel coordinates of GRID."""
    return shapely.Polygon([(X0 + 10.0 * c, Y0 - 10.0 * r) for c, r in coords])


def test_vertex_on_a_pixel_corner() -> None:
    """Degenerate input for rectangle clipping (a vertex on a pixel corner, a notch ending there) still gives
    exact areas."""
    geom = _on_pixels([(12.777777777777779, 53), (27.178571428571427, 53), (27.107142857142858, 52),
                       (16.441176470588236, 52), (16.5, 52.5), (16, 52), (13.88888888888889, 52)])
    frac = coverage_fractions(geom, GRID, (ROWS, COLS))
    assert np.abs(frac - overlay_fractions(geom)).max() < 1e-9
    assert frac[52, 16] == pytest.approx(overlay_fractions(geom)[52, 16], abs=1e-9)


def test_grid_aligned_polygons_match_brute_force() -> None:
    """Random polygons with every vertex on a pixel corner, edge or centre, some with holes."""
    rng = np.random.default_rng(46)
    for _ in range(25):
        k = int(rng.integers(3, 30))
        theta = np.sort(rng.uniform(0, 2 * np.pi, k))
        radius = rng.uniform(0.2, 1.0, k) * rng.uniform(1, 25)
        cx, cy = rng.uniform(-5, 75), rng.uniform(-5, 65)
        coords = np.round(np.c_[cx + radius * np.cos(theta), cy + radius * np.sin(theta)] * 2) / 2
        geom = shapely.make_valid(_on_pixels([tuple(p) for p in coords]))
        if rng.uniform() < 0.5:
            geom = geom.difference(shapely.box(*_pixel(int(cy), int(cx))))
        frac = coverage_fractions(geom, GRID, (ROWS, COLS))
        assert np.abs(frac - overlay_fractions(geom)).max() < 1e-9


def test_pixels_missed_by_the_rasteriser_are_recovered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should rasterio miss boundary pixels, the area check widens the exactly computed set."""
    geom = CASES["hole"]
    expected = coverage_fractions(geom, GRID, (ROWS, COLS))
    real: Callable[..., np.ndarray] = coverage_module.rasterize

    def lossy(shapes: list[BaseGeometry], **kwargs: Any) -> np.ndarray:
        out = real(shapes, **kwargs)
        if kwargs.get("all_touched"):  # drop every other boundary pixel
            rr, cc = np.nonzero(out)
            out[rr[::2], cc[::2]] = 0
        return out

    monkeypatch.setattr(coverage_module, "rasterize", lossy)
    assert np.abs(coverage_fractions(geom, GRID, (ROWS, COLS)) - expected).max() < 1e-12


def test_four_square_km_polygon_sums_to_its_area() -> None:
    """A 4 km^2 polygon of 2000 vertices on a 10 m grid (~40,000 pixels, ~2,300 on its boundary)."""
    rng = np.random.default_rng(1)
    theta = np.linspace(0, 2 * np.pi, 2000, endpoint=False)
    radius = 1 + 0.03 * np.sin(37 * theta) + 0.01 * rng.standard_normal(theta.size)
    unit = shapely.Polygon(np.c_[radius * np.cos(theta), radius * np.sin(theta)])
    scale = math.sqrt(4e6 / unit.area)
    geom = shapely.affinity.translate(shapely.affinity.scale(unit, scale, scale, origin=(0, 0)),
                                      501234.56, 5003456.78)
    minx, miny, maxx, maxy = geom.bounds
    grid = Affine(10.0, 0.0, math.floor(minx / 10) * 10 - 50, 0.0, -10.0, math.ceil(maxy / 10) * 10 + 50)
    shape = (int((grid.f - miny) // 10) + 10, int((maxx - grid.c) // 10) + 10)
    frac = coverage_fractions(geom, grid, shape)
    assert frac.sum() * 100.0 == pytest.approx(4e6, rel=1e-12)
    assert np.count_nonzero((frac > 0) & (frac < 1)) > 2000


# --- weighted statistics by hand -------------------------------------------------------------------------


def test_weighted_quantiles_by_hand() -> None:
    """Values 1, 2, 3 with weights 1, 2, 1: n = 3, S = 4, positions s = 0, 1*2 + 2*1 = 4, 2*1 + 2*3 = 8,
    target t = q * 2 * 4. p10: t = 0.8 -> 1 + 0.8/4; p25: t = 2 -> 1.5; median: t = 4 -> 2; p75: t = 6 -> 2.5."""
    out = weighted_summary(np.array([3.0, 1.0, 2.0]), np.array([1.0, 1.0, 2.0]),
                           ["p0", "p10", "p25", "median", "p75", "p100"])
    assert out == pytest.approx({"p0": 1.0, "p10": 1.2, "p25": 1.5, "median": 2.0, "p75": 2.5, "p100": 3.0})


def test_equal_weights_and_distinct_values_give_numpy_percentiles() -> None:
    """With weights all equal and no ties the definition is numpy's linear interpolation, as summarize."""
    values = np.random.default_rng(5).normal(size=101)
    names = ["count", "mean", "min", "max", "std", "sum", "median", "p2.5", "p10", "p90", "p99.9"]
    ours = weighted_summary(values, np.full(values.size, 0.25), names)
    plain = summarize(values, names)
    assert ours.pop("count") == pytest.approx(101 * 0.25)
    assert ours.pop("sum") == pytest.approx(0.25 * values.sum())
    del plain["count"], plain["sum"]
    assert ours == pytest.approx(plain, rel=1e-12)


def test_weighted_moments_by_hand() -> None:
    """Values 0, 10 with weights 1, 3: count 4, sum 30, mean 7.5, variance (56.25 + 3 * 6.25) / 4 = 18.75."""
    out = weighted_summary(np.array([0.0, 10.0]), np.array([1.0, 3.0]), ["count", "sum", "mean", "std"])
    assert out == pytest.approx({"count": 4.0, "sum": 30.0, "mean": 7.5, "std": math.sqrt(18.75)})
    assert isinstance(out["count"], float)


def test_zero_weights_are_ignored() -> None:
    """A value of weight 0 takes no part, not even in min and max."""
    out = weighted_summary(np.array([100.0, 1.0, 2.0, -50.0]), np.array([0.0, 0.5, 0.5, 0.0]),
                           ["count", "min", "max", "mean", "p0", "p100"])
    assert out == {"count": 1.0, "min": 1.0, "max": 2.0, "mean": 1.5, "p0": 1.0, "p100": 2.0}


def test_single_value_and_single_distinct_value() -> None:
    assert weighted_summary(np.array([4.0]), np.array([0.3]), ["std", "p10", "median"]) == {
        "std": 0.0, "p10": 4.0, "median": 4.0}
    assert weighted_summary(np.array([4.0, 4.0]), np.array([0.3, 1.0]), ["p90", "min"]) == {"p90": 4.0, "min": 4.0}


@pytest.mark.parametrize("weights", [np.zeros(3), np.array([0.0, 0.0, 0.0])])
def test_no_positive_weight_gives_count_zero_and_nulls(weights: np.ndarray) -> None:
    out = weighted_summary(np.array([1.0, 2.0, 3.0]), weights, ["count", "mean", "std", "min", "median", "p10"])
    assert out == {"count": 0, "mean": None, "std": None, "min": None, "median": None, "p10": None}
    assert weighted_summary(np.array([]), np.array([]), ["count", "sum"]) == {"count": 0, "sum": None}


def test_bad_weights_are_rejected() -> None:
    with pytest.raises(ValueError, match="weights"):
        weighted_summary(np.array([1.0, 2.0]), np.array([1.0]), ["mean"])
    with pytest.raises(ValueError, match="weights"):
        weighted_summary(np.array([1.0, 2.0]), np.array([1.0, -0.5]), ["mean"])
    with pytest.raises(ValueError, match="weights"):
        weighted_summary(np.array([1.0, 2.0]), np.array([1.0, np.nan]), ["mean"])


def test_unknown_statistic_is_rejected() -> None:
    with pytest.raises(UnknownStatisticError, match="average"):
        weighted_summary(np.array([1.0]), np.array([1.0]), ["mean", "average"])
