"""Gap filling and smoothing of one series onto a daily curve (``fill``), and sampling it on a grid.

All three methods work on the days between the first and the last date that carries weight; nothing is
extrapolated beyond them.

* ``linear``: straight lines between the clear dates (``numpy.interp``).
* ``savgol``: the linear daily curve smoothed by a Savitzky–Golay filter (``scipy.signal.savgol_filter``,
  ``window_days`` and ``order``, ``mode="interp"``); a span shorter than the window stays linear.
* ``whittaker``: Eilers' Whittaker smoother on the daily grid, minimising
  ``sum w_i (y_i - z_i)^2 + lambda * sum (second difference of z)^2``, with ``w`` 0 on days without an
  observation (which fills them) and, per ``weights``, 1 on clear dates, ``1 - cloud probability`` or
  ``1 - cloud fraction`` on every date with a value. The banded system is solved by
  ``scipy.linalg.solveh_banded``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.linalg import solveh_banded
from scipy.signal import savgol_filter

from ..request import TimeRange
from .options import FillOptions
from .outputs import Curves
from .series import Observations


@dataclass(frozen=True)
class DailyCurve:
    """Values per day from ``first`` (a day number) on; empty when no date carries weight."""

    first: int
    values: np.ndarray

    def at(self, day: int) -> float | None:
        """The value on a day number, None outside the curve."""
        i = day - self.first
        return float(self.values[i]) if 0 <= i < self.values.size else None


def weights_of(obs: Observations, options: FillOptions) -> np.ndarray:
    """Each date's weight: 1 on clear dates (``clear``), else the date's clarity on every date with data."""
    has_data = ~obs.failed
    if options.weights == "cloud_probability":
        weight = 1.0 - obs.probability
    elif options.weights == "clear_fraction":
        weight = 1.0 - obs.fraction
    else:
        return obs.clear.astype(np.float64)
    return np.where(has_data & np.isfinite(weight), np.clip(weight, 0.0, 1.0), 0.0)


def daily_curve(days: np.ndarray, values: np.ndarray, weights: np.ndarray, options: FillOptions) -> DailyCurve:
    """The filled daily curve of one variable (``days``: ascending day numbers, one value each)."""
    use = (weights > 0) & np.isfinite(values)
    if options.method != "whittaker":
        use &= weights >= 1.0  # linear and savgol use the clear dates only
    if not use.any():
        return DailyCurve(0, np.zeros(0))
    d, y, w = days[use], values[use], weights[use]
    first, span = int(d[0]), int(d[-1] - d[0]) + 1
    if options.method == "whittaker":
        return DailyCurve(first, whittaker(d - first, y, w, span, options.smoothing))
    grid = np.arange(first, first + span)
    curve = np.interp(grid, d, y)
    if options.method == "savgol" and span >= options.window_days:
        curve = savgol_filter(curve, options.window_days, options.order, mode="interp")
    return DailyCurve(first, curve)


def whittaker(index: np.ndarray, y: np.ndarray, w: np.ndarray, n: int, smoothing: float) -> np.ndarray:
    """Whittaker smoother (second differences) of ``y`` observed at ``index`` with weights ``w``, on ``n`` days.

    >>> whittaker(np.array([0, 4]), np.array([1.0, 3.0]), np.ones(2), 5, 10.0).round(6).tolist()
    [1.0, 1.5, 2.0, 2.5, 3.0]
    """
    if n < 3:
        return np.interp(np.arange(n), index, y) if index.size > 1 else np.full(n, y[0])
    weight = np.zeros(n)
    target = np.zeros(n)
    np.add.at(weight, index, w)
    np.add.at(target, index, w * y)
    # D'D of the (n-2) x n second-difference matrix D, as its three upper diagonals
    main = np.full(n, 6.0)
    main[[0, -1]] = 1.0
    main[[1, -2]] = 5.0
    off1 = np.full(n - 1, -4.0)
    off1[[0, -1]] = -2.0
    off2 = np.ones(n - 2)
    if n == 3:
        main, off1 = np.array([1.0, 4.0, 1.0]), np.array([-2.0, -2.0])
    bands = np.zeros((3, n))
    bands[0, 2:] = smoothing * off2
    bands[1, 1:] = smoothing * off1
    bands[2] = smoothing * main + weight
    if np.count_nonzero(weight) < 2:
        return np.full(n, float(np.average(y, weights=w)))
    return solveh_banded(bands, target, check_finite=False)


def grid_days(obs: Observations, options: FillOptions, time: TimeRange) -> list[dt.date]:
    """The dates a curve is given on: the series' own dates, or the regular ``grid`` from the range's start."""
    if options.grid is None:
        return sorted({d.date() for d in obs.datetimes})
    out = []
    current = dt.datetime.combine(time.start.date(), dt.time(), tzinfo=dt.UTC)
    while current <= time.end:
        out.append(current.date())
        current = options.grid.after(current, "fill.grid")
    return out


def fill(obs: Observations, options: FillOptions, time: TimeRange) -> Curves:
    """The filled curves of ``options.variables`` on their grid, with each grid date's clear observation."""
    days = obs.days
    weights = weights_of(obs, options)
    grid = grid_days(obs, options, time)
    clear_day = {int(day): i for i, day in enumerate(days) if obs.clear[i]}
    values: dict[str, tuple[float | None, ...]] = {}
    observed: dict[str, tuple[float | None, ...]] = {}
    for name in options.variables:
        series = obs.values[(name, options.statistic)]
        curve = daily_curve(days, series, weights, options)
        values[name] = tuple(curve.at(day.toordinal()) for day in grid)
        observed[name] = tuple(_observed(series, clear_day.get(day.toordinal())) for day in grid)
    return Curves(options.method, options.grid_text, options.statistic, options.weights, tuple(grid), values,
                  observed)


def _observed(series: np.ndarray, i: int | None) -> float | None:
    if i is None or not np.isfinite(series[i]):
        return None
    return float(series[i])


def daily(obs: Observations, options: FillOptions, variable: str, statistic: str) -> DailyCurve:
    """The filled daily curve of one column, for the season metrics."""
    return daily_curve(obs.days, obs.values[(variable, statistic)], weights_of(obs, options), options)


__all__: Sequence[str] = ("DailyCurve", "daily", "daily_curve", "fill", "grid_days", "weights_of", "whittaker")
