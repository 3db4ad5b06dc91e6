"""Regular intervals composited from the clear dates of each series (``aggregation``), for all polygons at once.

Each interval ``[from, to)`` of ``aggregation.interval`` from the range's start takes the clear dates whose
acquisition time falls in it. ``mean`` and ``median`` composite every statistic of every band and index
over those dates (a missing value is left out); ``max`` keeps the date with the highest mean of
``aggregation.index`` (a maximum-value composite; the latest of equal ones); ``last`` keeps the last clear
date. An interval without a clear date has no values and a ``reason``. Rows are grouped by (polygon,
interval) and each statistic is reduced over the groups in one call, whatever the number of polygons.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np

from ..request import TimeRange
from .intervals import intervals
from .options import AggregationOptions
from .outputs import IntervalTable
from .series import Column, Observations


def composite(obs: Observations, options: AggregationOptions, time: TimeRange,
              columns: Sequence[Column]) -> IntervalTable:
    """The intervals of ``time`` of every polygon, with their composited values."""
    end = time.end + dt.timedelta(microseconds=1)  # the range's end is inclusive, intervals are [from, to)
    spans = intervals(time.start, end, options.interval, options.last_interval, name="aggregation.interval")
    starts = np.array([a.timestamp() for a, _ in spans])
    stops = np.array([b.timestamp() for _, b in spans])
    k = len(spans)
    groups = obs.polygons * k
    at = np.searchsorted(starts, obs.stamps, side="right") - 1
    inside = (at >= 0) & (obs.stamps < stops[np.clip(at, 0, None)]) if k else np.zeros(obs.stamps.size, bool)
    group = obs.polygon * k + at
    acquisitions = np.bincount(group[inside], minlength=groups)
    failed = np.bincount(group[inside & obs.failed], minlength=groups)
    used_rows = np.flatnonzero(inside & obs.clear)
    used_group = group[used_rows]
    matrix = np.column_stack([obs.values[c] for c in columns]) if columns else np.zeros((obs.stamps.size, 0))

    if options.method in ("max", "last"):
        score = np.zeros(used_rows.size) if options.method == "last" else obs.values[(str(options.index), "mean")][
            used_rows]
        score = np.where(np.isnan(score), -np.inf, score)
        order = np.lexsort((score, used_group))  # stable: equal scores keep date order, the latest comes last
        last = np.r_[used_group[order][1:] != used_group[order][:-1], True] if order.size else np.zeros(0, bool)
        used_rows, used_group = used_rows[order][last], used_group[order][last]
        values = np.full((groups, len(columns)), np.nan)
        values[used_group] = matrix[used_rows]
    elif options.method == "median":
        values = _grouped_median(matrix[used_rows], used_group, groups)
    else:
        values = _grouped_mean(matrix[used_rows], used_group, groups)

    # used rows are in (polygon, date) order and intervals follow the dates, so each group's rows are a run
    offsets = np.concatenate(([0], np.cumsum(np.bincount(used_group, minlength=groups))))
    empty = np.flatnonzero(offsets[1:] == offsets[:-1])
    reasons: list[str | None] = [None] * groups
    for g in empty.tolist():
        reasons[g] = _reason(int(acquisitions[g]), int(failed[g]))
    return IntervalTable(tuple(a for a, _ in spans), tuple(b for _, b in spans), obs.polygons, tuple(columns),
                         obs.days[used_rows], offsets, acquisitions, values, reasons)


def _grouped_mean(values: np.ndarray, group: np.ndarray, groups: int) -> np.ndarray:
    """Per group and column, the mean of the finite values (NaN where there is none)."""
    finite = np.isfinite(values)
    out = np.full((groups, values.shape[1]), np.nan)
    for j in range(values.shape[1]):
        counts = np.bincount(group[finite[:, j]], minlength=groups)
        sums = np.bincount(group[finite[:, j]], weights=values[finite[:, j], j], minlength=groups)
        np.divide(sums, counts, out=out[:, j], where=counts > 0)
    return out


def _grouped_median(values: np.ndarray, group: np.ndarray, groups: int) -> np.ndarray:
    """Per group and column, the median of the finite values (NaN where there is none): each column is
    sorted by (group, value) once, and each group's middle one or two values are read off."""
    out = np.full((groups, values.shape[1]), np.nan)
    for j in range(values.shape[1]):
        keep = np.isfinite(values[:, j])
        v, g = values[keep, j], group[keep]
        order = np.lexsort((v, g))
        v = v[order]
        counts = np.bincount(g, minlength=groups)
        first = np.concatenate(([0], np.cumsum(counts)[:-1]))
        has = counts > 0
        low = first[has] + (counts[has] - 1) // 2
        high = first[has] + counts[has] // 2
        out[has, j] = (v[low] + v[high]) / 2
    return out


def _reason(acquisitions: int, failed: int) -> str:
    if acquisitions == 0:
        return "no acquisition in the interval"
    cloudy = acquisitions - failed
    parts = [f"{cloudy} cloudy"] if cloudy else []
    parts += [f"{failed} without data or with an error"] if failed else []
    return f"no clear date: {acquisitions} acquisitions, " + " and ".join(parts)
