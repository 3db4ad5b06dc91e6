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

import numpy as np

from .options import SeasonOptions
from .outputs import Season
from .smoothing import DailyCurve

#: Smallest amplitude (index units) that counts as a season rather than noise.
MIN_AMPLITUDE = 0.05


def season_metrics(curve: DailyCurve, options: SeasonOptions) -> Season:
    """The season of ``curve`` (see the module's rule), or a :class:`Season` whose ``reason`` says why not."""
    values = curve.values
    if values.size < 3:
        return Season(options.index, reason="fewer than three days between the first and the last clear date")
    peak = int(np.argmax(values))
    if peak == 0 or peak == values.size - 1:
        edge = "first" if peak == 0 else "last"
        return Season(options.index, reason=f"the curve is highest on its {edge} clear day, so the season's "
                      "peak is not inside the time range; widen the range")
    left_min, right_min = float(values[:peak].min()), float(values[peak + 1:].min())
    top = float(values[peak])
    base = (left_min + right_min) / 2
    if top - max(left_min, right_min) < MIN_AMPLITUDE:
        return Season(options.index, reason=f"the curve rises less than {MIN_AMPLITUDE} above its minima on one "
                      "side of its peak: no season to measure")
    start_level = left_min + options.start * (top - left_min)
    end_level = right_min + options.end * (top - right_min)
    below_left = np.flatnonzero(values[:peak] < start_level)
    below_right = np.flatnonzero(values[peak + 1:] < end_level)
    start = int(below_left[-1]) + 1
    end = peak + int(below_right[0])
    warnings = []
    if peak > 1 and values[0] < values[1:peak].min():
        warnings.append("the curve is lowest on its first clear day: the season may have started before it")
    if peak < values.size - 2 and values[-1] < values[peak + 1:-1].min():
        warnings.append("the curve is lowest on its last clear day: the season may end after it")
    season = values[start:end + 1]

    def day(i: int) -> dt.date:
        return dt.date.fromordinal(curve.first + i)

    return Season(
        options.index, start=day(start), peak=day(peak), end=day(end), start_value=float(values[start]),
        peak_value=top, end_value=float(values[end]), base=base, amplitude=top - base, length_days=end - start + 1,
        integral=float(season.sum()), integral_above_base=float((season - base).sum()), warnings=tuple(warnings))
