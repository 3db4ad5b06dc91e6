"""Time-series analytics on series whose answers are known by hand: intervals, gap filling, smoothing,
season metrics, and the clear-date rule they share."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from stats.analytics.composite import composite
from stats.analytics.intervals import Duration, intervals
from stats.analytics.options import AggregationOptions, FillOptions, SeasonOptions
from stats.analytics.season import season_metrics, seasons
from stats.analytics.series import Observations
from stats.analytics.smoothing import DailyCurve, daily_curve, daily_curves, fill, whittaker
from stats.clouds.options import CloudOptions
from stats.errors import InvalidRequestError
from stats.request import QueryOptions, TimeRange, TimeSeriesRequest

UTC = dt.UTC
YEAR = TimeRange.parse({"from": "2023-01-01", "to": "2023-12-31"})


def observations(days: list[int], values: list[float], clear: list[bool] | None = None, *,
                 name: str = "NDVI", probability: list[float] | None = None) -> Observations:
    """A series on days of 2023 (1 = 1 January) with one column ``(name, "mean")``."""
    start = dt.datetime(2023, 1, 1, 10, tzinfo=UTC)
    n = len(days)
    times = [start + dt.timedelta(days=d - 1) for d in days]
    return Observations(
        polygons=1,
        polygon=np.zeros(n, dtype=np.int64),
        days=np.array([t.date().toordinal() for t in times], dtype=np.int64),
        stamps=np.array([t.timestamp() for t in times]),
        clear=np.array(clear if clear is not None else [True] * n),
        failed=np.zeros(n, dtype=bool),
        probability=np.array(probability if probability is not None else [0.0] * n, dtype=float),
        fraction=np.full(n, np.nan),
        values={(name, "mean"): np.array(values, dtype=float)},
    )


def test_a_month_step_keeps_the_day_or_takes_the_months_last_day() -> None:
    step = Duration.parse("P1M", "x")
    jan31 = dt.datetime(2023, 1, 31, tzinfo=UTC)
    assert step.after(jan31, "x").date() == dt.date(2023, 2, 28)
    assert step.after(dt.datetime(2024, 1, 31, tzinfo=UTC), "x").date() == dt.date(2024, 2, 29)
    assert Duration.parse("p1y2w", "x") == Duration(12, 14)


def test_intervals_cover_the_range_with_the_last_one_shortened_or_skipped() -> None:
    start, end = dt.datetime(2023, 1, 1, tzinfo=UTC), dt.datetime(2023, 1, 26, tzinfo=UTC)
    shortened = intervals(start, end, "P10D", "SHORTEN")
    assert [(a.day, b.day) for a, b in shortened] == [(1, 11), (11, 21), (21, 26)]
    assert len(intervals(start, end, "P10D", "SKIP")) == 2


@pytest.mark.parametrize("value", ["P8000Y", "P0D", "10D", "P1.5D", "P99999999999D", 5])
def test_an_unusable_interval_is_a_clear_error(value: object) -> None:
    start = dt.datetime(2023, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidRequestError, match="aggregation.interval"):
        intervals(start, start + dt.timedelta(days=400), value, name="aggregation.interval")


def test_a_date_is_clear_by_its_cloud_fraction_when_the_mask_was_computed() -> None:
    default = CloudOptions(mode="pixel")
    assert default.clear(None, 0.2) and not default.clear(None, 0.21)
    assert CloudOptions(mode="pixel", max_fraction=0.5).clear(None, 0.45)
    assert CloudOptions().clear(0.39, None) and not CloudOptions().clear(0.4, None)
    assert not CloudOptions().clear(None, None)


def test_linear_fill_puts_missing_dates_on_the_line_between_their_clear_neighbours() -> None:
    days = [10, 20, 30, 40, 50]
    values = [0.2, 0.4, 0.9, 0.5, 0.3]
    obs = observations(days, values, clear=[True, True, False, True, True])
    options = FillOptions(method="linear", variables=("NDVI",))
    curves, _ = fill(obs, options, YEAR)
    by_date = dict(zip(curves.dates, curves.values["NDVI"][0]))
    # day 30 is cloudy: on the line from (20, 0.4) to (40, 0.5)
    assert by_date[dt.date(2023, 1, 30)] == pytest.approx(0.4 + (0.5 - 0.4) * 10 / 20)
    assert curves.interpolated("NDVI")[0].tolist() == [False, False, True, False, False]
    assert np.isnan(curves.observed["NDVI"][0, 2]) and curves.observed["NDVI"][0, 1] == pytest.approx(0.4)


def test_a_regular_grid_is_not_extrapolated_beyond_the_clear_dates() -> None:
    obs = observations([15, 40], [0.3, 0.5])
    options = FillOptions(method="linear", variables=("NDVI",), grid=Duration(0, 5), grid_text="P5D")
    curves, _ = fill(obs, options, TimeRange.parse({"from": "2023-01-01", "to": "2023-02-28"}))
    assert curves.dates[:4] == tuple(dt.date(2023, 1, d) for d in (1, 6, 11, 16))
    assert len(curves.dates) == 12  # 1 Jan + 5 days ... 26 Feb
    values = dict(zip(curves.dates, curves.values["NDVI"][0]))
    assert np.isnan(values[dt.date(2023, 1, 11)]) and np.isnan(values[dt.date(2023, 2, 15)])
    assert values[dt.date(2023, 1, 16)] == pytest.approx(0.3 + 0.2 * 1 / 25)


def test_whittaker_keeps_a_straight_line_and_fills_its_gaps_on_it() -> None:
    index = np.array([0, 3, 4, 9, 17, 20])
    line = 0.1 + 0.03 * index
    z = whittaker(index, line, np.ones(index.size), 21, 1000.0)
    np.testing.assert_allclose(z, 0.1 + 0.03 * np.arange(21), atol=1e-9)


def test_whittaker_matches_the_normal_equations_solved_densely() -> None:
    rng = np.random.default_rng(3)
    n, lam = 40, 25.0
    index = np.sort(rng.choice(n, 15, replace=False))
    y, w = rng.normal(size=15), rng.uniform(0.2, 1.0, 15)
    d = np.diff(np.eye(n), 2, axis=0)
    weights, target = np.zeros(n), np.zeros(n)
    weights[index], target[index] = w, w * y
    expected = np.linalg.solve(np.diag(weights) + lam * d.T @ d, target)
    np.testing.assert_allclose(whittaker(index, y, w, n, lam), expected, atol=1e-9)


def test_whittaker_recovers_a_sampled_sine_with_dates_removed() -> None:
    """A 365-day sine sampled every 5 days with a third of the samples removed and noise of 0.02 added:
    the smoothed daily curve is closer to the sine than the noisy samples are."""
    rng = np.random.default_rng(7)
    days = np.arange(1, 366, 5)
    kept = days[rng.random(days.size) > 1 / 3]
    truth = np.sin(2 * np.pi * np.arange(1, 366) / 365)
    noisy = np.sin(2 * np.pi * kept / 365) + rng.normal(0, 0.02, kept.size)
    options = FillOptions(method="whittaker", variables=("NDVI",), smoothing=2000.0)
    curve = daily_curve(kept, noisy, np.ones(kept.size), options)
    span = truth[curve.first - 1: curve.first - 1 + curve.values.size]
    assert np.abs(curve.values - span).max() < 0.03
    assert np.sqrt(np.mean((curve.values - span) ** 2)) < 0.02 / 2


def test_savitzky_golay_of_order_two_keeps_a_quadratic() -> None:
    days = np.arange(0, 60)
    quadratic = 0.2 + 0.01 * days - 0.0002 * days ** 2
    options = FillOptions(method="savgol", variables=("NDVI",), window_days=11, order=2)
    curve = daily_curve(days, quadratic, np.ones(days.size), options)
    np.testing.assert_allclose(curve.values, quadratic, atol=1e-9)


def test_whittaker_weights_pull_less_towards_cloudier_dates() -> None:
    obs = observations([10, 20, 30], [0.5, 0.1, 0.5], probability=[0.0, 0.9, 0.0])
    weighted = FillOptions(method="whittaker", variables=("NDVI",), weights="cloud_probability", smoothing=50.0)
    plain = FillOptions(method="whittaker", variables=("NDVI",), weights="clear", smoothing=50.0)
    cloudy_low = fill(obs, weighted, YEAR)[0].values["NDVI"][0, 1]
    assert 0.1 < cloudy_low < 0.5
    # with the clear weights only (and a clear dip), the dip is followed more closely
    assert fill(obs, plain, YEAR)[0].values["NDVI"][0, 1] < cloudy_low


def trapezoid(day: int) -> float:
    """0.2 until day 100, up to 0.8 on day 150, down to 0.2 on day 200, flat after."""
    if day <= 100 or day >= 200:
        return 0.2
    return 0.2 + 0.6 * (day - 100) / 50 if day <= 150 else 0.8 - 0.6 * (day - 150) / 50


def test_season_metrics_of_a_known_curve() -> None:
    first = dt.date(2023, 1, 1).toordinal()
    curve = DailyCurve(first, np.array([trapezoid(d) for d in range(0, 300)]))
    season = season_metrics(curve, SeasonOptions("NDVI", 0.25, 0.25))
    # 25 % of the amplitude 0.6 above 0.2 is 0.35: first reached on day 113 (0.356) going up, last held on
    # day 187 (0.356) going down
    assert season.start == dt.date.fromordinal(first + 113)
    assert season.peak == dt.date.fromordinal(first + 150)
    assert season.end == dt.date.fromordinal(first + 187)
    assert season.amplitude == pytest.approx(0.6) and season.base == pytest.approx(0.2)
    assert season.length_days == 75
    assert season.integral == pytest.approx(sum(trapezoid(d) for d in range(113, 188)))
    assert season.integral_above_base == pytest.approx(sum(trapezoid(d) - 0.2 for d in range(113, 188)))
    assert season.warnings == ()


def test_a_season_cut_by_the_range_is_measured_with_a_warning() -> None:
    first = dt.date(2023, 1, 1).toordinal()
    curve = DailyCurve(first, np.array([trapezoid(d) for d in range(120, 300)]))
    season = season_metrics(curve, SeasonOptions("NDVI", 0.25, 0.25))
    # the left minimum is the first value, 0.44 (day 120): the start level 0.44 + 0.25 * 0.36 = 0.53 is
    # first reached on day 128 (0.536), the curve's eighth day
    assert season.start == dt.date.fromordinal(first + 8) and len(season.warnings) == 1
    assert "started before" in season.warnings[0]


def test_a_curve_without_a_season_says_why() -> None:
    flat = season_metrics(DailyCurve(1, np.full(50, 0.3) + np.linspace(0, 0.01, 50) ** 2), SeasonOptions("NDVI"))
    assert flat.start is None and "peak is not inside" in (flat.reason or "")
    bump = season_metrics(DailyCurve(1, 0.3 + 0.02 * np.sin(np.linspace(0, math.pi, 50))), SeasonOptions("NDVI"))
    assert bump.start is None and "no season" in (bump.reason or "")


def test_intervals_composite_their_clear_dates_and_say_why_they_have_none() -> None:
    # January: two clear dates and a cloudy one; February: none; March: two cloudy dates
    obs = observations([5, 15, 25, 64, 74], [0.2, 0.4, 0.9, 0.5, 0.6], clear=[True, True, False, False, False])
    spans = TimeRange.parse({"from": "2023-01-01", "to": "2023-03-31"})
    options = AggregationOptions(Duration(1, 0), "P1M")
    jan, feb, mar = composite(obs, options, spans, [("NDVI", "mean")]).to_list(bands=())
    assert jan["status"] == "OK" and jan["dates"] == ["2023-01-05", "2023-01-15"]
    assert jan["indices"]["NDVI"]["mean"] == pytest.approx(0.3) and jan["acquisitions"] == 3
    assert feb["status"] == "NO_CLEAR_DATE" and feb["reason"] == "no acquisition in the interval"
    assert mar["status"] == "NO_CLEAR_DATE" and mar["reason"] == "no clear date: 2 acquisitions, 2 cloudy"
    assert mar["interval"] == {"from": "2023-03-01T00:00:00Z", "to": "2023-04-01T00:00:00Z"}


def test_intervals_of_many_polygons_are_each_their_own() -> None:
    """Two polygons in one set of observations composite as they would alone."""
    first = observations([5, 15, 25], [0.2, 0.4, 0.9], clear=[True, True, False])
    second = observations([5, 40], [0.6, 0.8])
    both = Observations(
        2, np.r_[first.polygon, second.polygon + 1], np.r_[first.days, second.days], np.r_[first.stamps, second.stamps],
        np.r_[first.clear, second.clear], np.r_[first.failed, second.failed],
        np.r_[first.probability, second.probability], np.r_[first.fraction, second.fraction],
        {("NDVI", "mean"): np.r_[first.values[("NDVI", "mean")], second.values[("NDVI", "mean")]]})
    span = TimeRange.parse({"from": "2023-01-01", "to": "2023-02-28"})
    for method in ("mean", "median", "max", "last"):
        options = AggregationOptions(Duration(1, 0), "P1M", method, "NDVI" if method == "max" else None)  # type: ignore[arg-type]
        table = composite(both, options, span, [("NDVI", "mean")])
        alone = [composite(o, options, span, [("NDVI", "mean")]).to_list(()) for o in (first, second)]
        assert [table.to_list((), p) for p in (0, 1)] == alone, method


@pytest.mark.parametrize("method, date, value", [("max", 15, 0.4), ("last", 15, 0.4), ("median", None, 0.3)])
def test_max_and_last_keep_one_date_and_median_takes_the_middle(method: str, date: int | None, value: float) -> None:
    obs = observations([5, 15, 25], [0.2, 0.4, 0.9], clear=[True, True, False])
    options = AggregationOptions(Duration(1, 0), "P1M", method, "NDVI" if method == "max" else None)  # type: ignore[arg-type]
    table = composite(obs, options, TimeRange.parse({"from": "2023-01-01", "to": "2023-01-31"}), [("NDVI", "mean")])
    jan = table.to_list(bands=())[0]
    if date is not None:
        assert jan["dates"] == [f"2023-01-{date:02d}"]
    assert jan["indices"]["NDVI"]["mean"] == pytest.approx(value)


GEOMETRY = "POLYGON ((15.02733 46.03805, 15.02733 46.03616, 15.03056 46.03615, 15.03056 46.03804, 15.02733 46.03805))"


@pytest.mark.parametrize("fields, message", [
    ({"aggregation": {"interval": "P10D", "method": "mode"}}, "aggregation.method"),
    ({"aggregation": {"method": "mean"}}, "aggregation.interval: missing"),
    ({"aggregation": {"interval": "P10D", "method": "max"}}, "aggregation.index"),
    ({"aggregation": {"interval": "P10D", "index": "NDVI"}, "indices": ["NDVI"]}, "only the 'max' method"),
    ({"fill": {"method": "spline"}}, "fill.method"),
    ({"fill": {"variables": ["NDWI"]}, "indices": ["NDVI"]}, "fill.variables"),
    ({"fill": {"statistic": "p95"}}, "fill.statistic"),
    ({"fill": {"grid": "weekly"}}, "fill.grid"),
    ({"fill": {"method": "savgol", "window_days": 30}}, "fill.window_days"),
    ({"fill": {"method": "linear", "weights": "cloud_probability"}}, "fill.weights"),
    ({"fill": {"weights": "cloud_probability"}, "cloud": {"mode": "pixel"}}, "fill.weights"),
    ({"fill": {"weights": "clear_fraction"}}, "fill.weights"),
    ({"season": "NDVI"}, "season.index"),
    ({"season": {"index": "NDVI", "start": 1.5}, "indices": ["NDVI"]}, "season.start"),
    ({"season": "NDVI", "indices": ["NDVI"], "statistics": ["p90"]}, "season"),
])
def test_bad_analytics_fields_are_refused_naming_the_field(fields: dict, message: str) -> None:
    body = {"geometry": GEOMETRY, "time": {"from": "2023-01-01", "to": "2023-12-31"}, **fields}
    with pytest.raises(InvalidRequestError, match=message):
        TimeSeriesRequest.from_dict(body)


def test_fill_defaults_to_the_requested_indices_else_the_bands() -> None:
    assert QueryOptions.from_dict({"indices": ["NDVI"], "fill": "linear"}).analytics.fill.variables == ("NDVI",)
    assert QueryOptions.from_dict({"bands": ["B04"], "fill": {}}).analytics.fill.variables == ("B04",)


def test_the_whittaker_curves_of_many_polygons_are_each_their_own() -> None:
    """One polygon with a full series, one with a single clear date, one with none and one with two close
    dates: solved together, each curve is the one it has alone."""
    parts = [observations([5, 20, 41, 60, 90], [0.2, 0.3, 0.7, 0.6, 0.2]),
             observations([5, 20], [0.2, 0.5], clear=[False, True]),
             observations([5], [0.4], clear=[False]),
             observations([10, 11], [0.3, 0.35])]
    both = Observations(
        len(parts), np.concatenate([o.polygon + i for i, o in enumerate(parts)]),
        *(np.concatenate([getattr(o, f) for o in parts]) for f in ("days", "stamps", "clear", "failed", "probability",
                                                                   "fraction")),
        {("NDVI", "mean"): np.concatenate([o.values[("NDVI", "mean")] for o in parts])})
    options = FillOptions(method="whittaker", variables=("NDVI",), smoothing=30.0)
    together = daily_curves(both, options, "NDVI", "mean")
    for curve, part in zip(together, parts):
        (alone,) = daily_curves(part, options, "NDVI", "mean")
        assert curve.first == alone.first
        np.testing.assert_allclose(curve.values, alone.values, atol=1e-12)
    assert together[2].values.size == 0 and together[1].values.tolist() == [0.5]
    days = np.array([5, 20, 41, 60, 90])
    np.testing.assert_allclose(together[0].values, whittaker(days - 5, np.array([0.2, 0.3, 0.7, 0.6, 0.2]),
                                                             np.ones(5), 86, 30.0), atol=1e-12)


def test_the_seasons_of_curves_of_different_lengths_are_each_their_own() -> None:
    first = dt.date(2023, 1, 1).toordinal()
    curves = [DailyCurve(first, np.array([trapezoid(d) for d in range(0, 300)])),
              DailyCurve(first + 3, np.array([trapezoid(d) for d in range(120, 260)])),
              DailyCurve(first, np.zeros(0)),
              DailyCurve(first, np.linspace(0.2, 0.8, 40))]
    together = seasons(curves, SeasonOptions("NDVI", 0.25, 0.25))
    assert together[0].start == dt.date.fromordinal(first + 113) and together[0].length_days == 75
    assert together[1].start == dt.date.fromordinal(first + 3 + 8)
    assert together[1].end == dt.date.fromordinal(first + 3 + 187 - 120)
    assert together[2].reason and "three days" in together[2].reason
    assert together[3].reason and "last clear day" in together[3].reason
