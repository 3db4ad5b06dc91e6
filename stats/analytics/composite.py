"""Regular intervals composited from the clear dates of a series (``aggregation``).

Each interval ``[from, to)`` of ``aggregation.interval`` from the range's start takes the clear dates whose
acquisition time falls in it. ``mean`` and ``median`` composite every statistic of every band and index
over those dates (a missing value is left out); ``max`` keeps the date with the highest mean of
``aggregation.index`` (a maximum-value composite); ``last`` keeps the last clear date. An interval without a
clear date has no values and a ``reason``.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence

import numpy as np

from ..request import TimeRange
from .intervals import intervals
from .options import AggregationOptions
from .outputs import Interval
from .series import Column, Observations


def composite(obs: Observations, options: AggregationOptions, time: TimeRange,
              columns: Sequence[Column]) -> tuple[Interval, ...]:
    """The intervals of ``time`` with their composited values."""
    end = time.end + dt.timedelta(microseconds=1)  # the range's end is inclusive, intervals are [from, to)
    spans = intervals(time.start, end, options.interval, options.last_interval, name="aggregation.interval")
    stamps = np.array([d.timestamp() for d in obs.datetimes], dtype=np.float64)
    out = []
    for start, stop in spans:
        members = np.flatnonzero((stamps >= start.timestamp()) & (stamps < stop.timestamp()))
        used = members[obs.clear[members]]
        if used.size == 0:
            out.append(Interval(start, stop, (), int(members.size), reason=_reason(obs, members)))
            continue
        picked = _pick(obs, used, options)
        if picked is not None:
            used = np.array([picked])
        values = {c: _combine(obs.values[c][used], options.method) for c in columns}
        out.append(Interval(start, stop, tuple(obs.datetimes[i].date() for i in used), int(members.size), values))
    return tuple(out)


def _pick(obs: Observations, used: np.ndarray, options: AggregationOptions) -> int | None:
    """The one date ``max`` or ``last`` keeps (None for ``mean``/``median``)."""
    if options.method == "last":
        return int(used[-1])
    if options.method == "max":
        scores = obs.values[(str(options.index), "mean")][used]
        if np.isnan(scores).all():
            return int(used[-1])
        return int(used[np.nanargmax(scores)])
    return None


def _combine(values: np.ndarray, method: str) -> float | None:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.median(finite) if method == "median" else np.mean(finite))


def _reason(obs: Observations, members: np.ndarray) -> str:
    if members.size == 0:
        return "no acquisition in the interval"
    failed = int(obs.failed[members].sum())
    cloudy = int(members.size) - failed
    parts = [f"{cloudy} cloudy"] if cloudy else []
    parts += [f"{failed} without data or with an error"] if failed else []
    return f"no clear date: {members.size} acquisitions, " + " and ".join(parts)
