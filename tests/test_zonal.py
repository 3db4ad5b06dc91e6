"""Statistics over hand-computable value sets."""

from __future__ import annotations

import numpy as np
import pytest

from stats.errors import UnknownStatisticError
from stats.zonal import percentile_of, summarize, summarize_many, validate_statistics


def test_basic_statistics_of_one_to_nine() -> None:
    """1..9: mean 5, min 1, max 9, sum 45, population std sqrt(60/9), median 5."""
    values = np.arange(1, 10, dtype=np.float64)
    out = summarize(values, ["count", "mean", "min", "max", "sum", "std", "median"])
    assert out == {"count": 9, "mean": 5.0, "min": 1.0, "max": 9.0, "sum": 45.0,
                   "std": pytest.approx((60 / 9) ** 0.5), "median": 5.0}


def test_percentiles_interpolate_linearly() -> None:
    """Over 1..9 (8 gaps), p10 = 1 + 0.8, p25 = 3, p90 = 8.2, p2.5 = 1.2, p0 = 1, p100 = 9."""
    values = np.arange(1, 10, dtype=np.float64)
    out = summarize(values, ["p10", "p25", "p90", "p2.5", "p0", "p100"])
    assert out == pytest.approx({"p10": 1.8, "p25": 3.0, "p90": 8.2, "p2.5": 1.2, "p0": 1.0, "p100": 9.0})


def test_no_values_give_count_zero_and_nulls() -> None:
    """An empty set gives count 0 and None for everything else, never NaN."""
    assert summarize(np.array([]), ["count", "mean", "std", "p50"]) == {"count": 0, "mean": None, "std": None,
                                                                       "p50": None}


def test_single_value() -> None:
    """One value: std 0 and every percentile equals it."""
    assert summarize(np.array([0.25]), ["std", "p10", "p90"]) == {"std": 0.0, "p10": 0.25, "p90": 0.25}


@pytest.mark.parametrize("name", ["p101", "P50", "q50", "average", "p", "p-1", ""])
def test_unknown_statistics_are_rejected(name) -> None:
    """Names outside the schema are rejected naming the bad name."""
    with pytest.raises(UnknownStatisticError, match=r"unknown statistic"):
        validate_statistics([name])


def test_percentile_names() -> None:
    """pNN names parse to their percentile; duplicates are removed in order."""
    assert percentile_of("p100") == 100.0 and percentile_of("p0") == 0.0 and percentile_of("std") is None
    assert validate_statistics(["mean", "p90", "mean"]) == ("mean", "p90")


def test_an_unknown_statistic_is_refused_by_name() -> None:
    with pytest.raises(UnknownStatisticError, match="unknown statistic 'average'"):
        summarize(np.array([1.0, 2.0]), ["mean", "average"])


def test_statistics_of_many_arrays_are_numpys_one_array_at_a_time() -> None:
    rng = np.random.default_rng(7)
    names = ["count", "mean", "min", "max", "std", "sum", "median", "p2.5", "p10", "p90", "p100"]
    arrays = [rng.random(n) * 0.4 for n in (523, 523, 523, 1, 17, 17, 0, 1000, 1000)]
    arrays.append(np.round(rng.random(523) * 1e4) / 1e4)  # repeated values
    for values, got in zip(arrays, summarize_many(arrays, names)):
        if values.size == 0:
            assert got == {name: (0 if name == "count" else None) for name in names}
            continue
        mean = float(np.mean(values))
        expected = {"count": values.size, "mean": mean, "min": float(values.min()), "max": float(values.max()),
                    "std": float(np.sqrt(np.mean((values - mean) ** 2))), "sum": float(values.sum()),
                    "median": float(np.percentile(values, 50))}
        expected.update({f"p{q:g}": float(np.percentile(values, q)) for q in (2.5, 10, 90, 100)})
        assert got == {name: expected[name] for name in names}  # the same numbers, bit for bit
