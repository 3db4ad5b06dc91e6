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
from functools import lru_cache

import numpy as np
from scipy.linalg import solveh_banded
from scipy.signal import savgol_filter

from ..request import TimeRange
from .options import FillOptions
from .outputs import CurveTable
from .series import Observations


@dataclass(frozen=True)
class DailyCurve:
    """Values per day from ``first`` (a day number) on; empty when no date carries weight."""

    first: int
    values: np.ndarray


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
    if n < 3 or np.count_nonzero(w) < 2:
        return np.interp(np.arange(n), index, y) if index.size > 1 else np.full(n, float(y[0]))
    return _solve_blocks(np.array([n]), index, w, y, smoothing)


def _solve_blocks(spans: np.ndarray, at: np.ndarray, w: np.ndarray, y: np.ndarray, smoothing: float) -> np.ndarray:
    """Whittaker curves of independent series laid end to end (block ``i`` has ``spans[i]`` >= 3 days),
    solved as one block-diagonal banded system; ``at`` places each observation on the joined days."""
    offset = np.concatenate(([0], np.cumsum(spans)))
    bands = np.zeros((3, int(offset[-1])))
    for i, n in enumerate(spans.tolist()):
        bands[:, offset[i]:offset[i + 1]] = _penalty_bands(n)
    bands *= smoothing
    bands[2] += np.bincount(at, weights=w, minlength=bands.shape[1])
    if not bands.shape[1]:
        return np.zeros(0)
    return solveh_banded(bands, np.bincount(at, weights=w * y, minlength=bands.shape[1]), check_finite=False)


@lru_cache(maxsize=16)
def _penalty_bands(n: int) -> np.ndarray:
    """The three upper diagonals of D'D, D the (n-2) x n second-difference matrix, in the upper form of
    ``scipy.linalg.solveh_banded`` (n >= 3)."""
    main = np.full(n, 6.0)
    main[[0, -1]] = 1.0
    main[[1, -2]] = 5.0
    off1 = np.full(n - 1, -4.0)
    off1[[0, -1]] = -2.0
    if n == 3:
        main, off1 = np.array([1.0, 4.0, 1.0]), np.array([-2.0, -2.0])
    bands = np.zeros((3, n))
    bands[0, 2:] = 1.0
    bands[1, 1:] = off1
    bands[2] = main
    bands.flags.writeable = False
    return bands


def grid_days(options: FillOptions, time: TimeRange, days: np.ndarray) -> np.ndarray:
    """The day numbers a curve is given on: the series' own dates (``days``), or the regular ``grid``
    from the range's start to its end."""
    if options.grid is None:
        return np.unique(days)
    out = []
    current = dt.datetime.combine(time.start.date(), dt.time(), tzinfo=dt.UTC)
    while current <= time.end:
        out.append(current.date().toordinal())
        current = options.grid.after(current, "fill.grid")
    return np.array(out, dtype=np.int64)


def daily_curves(obs: Observations, options: FillOptions, variable: str, statistic: str) -> list[DailyCurve]:
    """The filled daily curve of one column for every polygon. The Whittaker curves of all polygons are one
    block-diagonal banded system, solved in one call (each block is its polygon's own system)."""
    weights = weights_of(obs, options)
    series = obs.values[(variable, statistic)]
    bounds = obs.bounds
    if options.method != "whittaker":
        return [daily_curve(obs.days[a:b], series[a:b], weights[a:b], options) for a, b in zip(bounds[:-1], bounds[1:])]
    rows = np.flatnonzero((weights > 0) & np.isfinite(series))
    polygon, days = obs.polygon[rows], obs.days[rows]
    starts = np.searchsorted(polygon, np.arange(obs.polygons))
    ends = np.searchsorted(polygon, np.arange(obs.polygons), side="right")
    has = ends > starts
    first = np.zeros(obs.polygons, dtype=np.int64)
    span = np.zeros(obs.polygons, dtype=np.int64)
    first[has] = days[starts[has]]
    span[has] = days[ends[has] - 1] - first[has] + 1
    joint = (ends - starts >= 2) & (span >= 3)
    offset = np.concatenate(([0], np.cumsum(np.where(joint, span, 0))))
    in_joint = joint[polygon]
    at = offset[polygon[in_joint]] + days[in_joint] - first[polygon[in_joint]]
    solved = _solve_blocks(span[joint], at, weights[rows][in_joint], series[rows][in_joint], options.smoothing)
    out = []
    for p, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        if joint[p]:
            out.append(DailyCurve(int(first[p]), solved[offset[p]:offset[p + 1]]))
        else:  # one or two days, or a single clear date: the curve of that polygon alone
            out.append(daily_curve(obs.days[a:b], series[a:b], weights[a:b], options))
    return out


def sample(curves: Sequence[DailyCurve], grid: np.ndarray) -> np.ndarray:
    """The curves' values on the ``grid`` day numbers (polygons x grid; NaN outside a curve)."""
    out = np.full((len(curves), grid.size), np.nan)
    for p, curve in enumerate(curves):
        at = grid - curve.first
        inside = (at >= 0) & (at < curve.values.size)
        out[p, inside] = curve.values[at[inside]]
    return out


def fill(obs: Observations, options: FillOptions, time: TimeRange) -> tuple[CurveTable, dict[str, list[DailyCurve]]]:
    """The filled curves of ``options.variables`` of every polygon on their grid, with each grid date's clear
    observation; and the daily curves themselves, by variable (the season reuses them)."""
    grid = grid_days(options, time, obs.days)
    at = np.searchsorted(grid, obs.days)
    on_grid = obs.clear & (at < grid.size)
    on_grid[on_grid] &= grid[at[on_grid]] == obs.days[on_grid]
    values: dict[str, np.ndarray] = {}
    observed: dict[str, np.ndarray] = {}
    daily: dict[str, list[DailyCurve]] = {}
    for name in options.variables:
        daily[name] = daily_curves(obs, options, name, options.statistic)
        values[name] = sample(daily[name], grid)
        seen = np.full((obs.polygons, grid.size), np.nan)
        seen[obs.polygon[on_grid], at[on_grid]] = obs.values[(name, options.statistic)][on_grid]
        observed[name] = seen
    table = CurveTable(options.method, options.grid_text, options.statistic, options.weights,
                       tuple(dt.date.fromordinal(int(d)) for d in grid), obs.polygons, values, observed)
    return table, daily
