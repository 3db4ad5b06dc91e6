"""Season metrics of a vegetation index on its filled daily curve, by TIMESAT's amplitude rule.

Around the curve's highest value (the peak), the left minimum is the lowest value before it and the right
minimum the lowest after it. The season starts on the first day after the last day before the peak on which
the curve is below ``left minimum + start × (peak − left minimum)``, and ends on the last day before the
first day after the peak on which it is below ``right minimum + end × (peak − right minimum)``. The base
is the mean of the two minima and the amplitude ``peak − base``; ``integral`` sums the curve's daily values
over the season (index × days) and ``integral_above_base`` the part above the base. One season is measured
per series: the one around the highest peak.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np

from .options import SeasonOptions
from .outputs import Season
from .smoothing import DailyCurve

#: Smallest amplitude (index units) that counts as a season rather than noise.
MIN_AMPLITUDE = 0.05


def season_metrics(curve: DailyCurve, options: SeasonOptions) -> Season:
    """The season of ``curve`` (see the module's rule), or a :class:`Season` whose ``reason`` says why not."""
    return seasons([curve], options)[0]


def seasons(curves: Sequence[DailyCurve], options: SeasonOptions) -> tuple[Season, ...]:
    """The season of every curve, computed on the curves padded into one array (NaN past a curve's end)."""
    length = max((c.values.size for c in curves), default=0)
    sizes = np.array([c.values.size for c in curves], dtype=np.int64)
    values = np.full((len(curves), max(length, 1)), np.nan)
    for p, curve in enumerate(curves):
        values[p, :curve.values.size] = curve.values
    col = np.arange(values.shape[1])[None, :]
    inside = col < sizes[:, None]
    peak = np.argmax(np.where(inside, values, -np.inf), axis=1)
    top = values[np.arange(len(curves)), peak]
    before, after = col < peak[:, None], (col > peak[:, None]) & inside
    with np.errstate(invalid="ignore"):
        left_min = np.where(before, values, np.inf).min(axis=1)
        right_min = np.where(after, values, np.inf).min(axis=1)
        start_level = left_min + options.start * (top - left_min)
        end_level = right_min + options.end * (top - right_min)
        start = np.where(before & (values < start_level[:, None]), col, -1).max(axis=1) + 1
        end = np.where(after & (values < end_level[:, None]), col, values.shape[1]).min(axis=1) - 1
        first_low = values[:, 0] < np.where(before & (col > 0), values, np.inf).min(axis=1)
        last_value = values[np.arange(len(curves)), np.maximum(sizes - 1, 0)]
        last_low = last_value < np.where(after & (col < sizes[:, None] - 1), values, np.inf).min(axis=1)
    running = np.concatenate([np.zeros((len(curves), 1)), np.cumsum(np.nan_to_num(values), axis=1)], axis=1)
    out = []
    for p, curve in enumerate(curves):
        reason = _reason(int(sizes[p]), int(peak[p]), float(top[p]), float(left_min[p]), float(right_min[p]))
        if reason is not None:
            out.append(Season(options.index, reason=reason))
            continue
        a, b = int(start[p]), int(end[p])
        base = (float(left_min[p]) + float(right_min[p])) / 2
        warnings = []
        if peak[p] > 1 and first_low[p]:
            warnings.append("the curve is lowest on its first clear day: the season may have started before it")
        if peak[p] < sizes[p] - 2 and last_low[p]:
            warnings.append("the curve is lowest on its last clear day: the season may end after it")
        total = float(running[p, b + 1] - running[p, a])
        out.append(Season(
            options.index, start=dt.date.fromordinal(curve.first + a),
            peak=dt.date.fromordinal(curve.first + int(peak[p])), end=dt.date.fromordinal(curve.first + b),
            start_value=float(values[p, a]), peak_value=float(top[p]),
            end_value=float(values[p, b]), base=base, amplitude=float(top[p]) - base, length_days=b - a + 1,
            integral=total, integral_above_base=total - base * (b - a + 1), warnings=tuple(warnings)))
    return tuple(out)


def _reason(size: int, peak: int, top: float, left_min: float, right_min: float) -> str | None:
    """Why a curve has no season to measure, or None."""
    if size < 3:
        return "fewer than three days between the first and the last clear date"
    if peak == 0 or peak == size - 1:
        edge = "first" if peak == 0 else "last"
        return (f"the curve is highest on its {edge} clear day, so the season's peak is not inside the time "
                "range; widen the range")
    if top - max(left_min, right_min) < MIN_AMPLITUDE:
        return (f"the curve rises less than {MIN_AMPLITUDE} above its minima on one side of its peak: no season "
                "to measure")
    return None
