"""What the analytics answer: composited intervals, filled curves and season metrics, as JSON and CSV rows.

Missing values are ``None`` (JSON null, an empty CSV cell), never NaN.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Column = tuple[str, str]


def clean(value: float | None) -> float | None:
    """A finite float, or None."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class Interval:
    """One aggregation interval ``[start, end)``: the clear dates it used and the composited values.
    ``reason`` says why it has no value (no acquisition, or none of them clear)."""

    start: dt.datetime
    end: dt.datetime
    dates: tuple[dt.date, ...]
    acquisitions: int
    values: Mapping[Column, float | None] = field(default_factory=dict)
    reason: str | None = None

    @property
    def status(self) -> str:
        """``OK``, or ``NO_CLEAR_DATE``."""
        return "OK" if self.dates else "NO_CLEAR_DATE"

    def to_dict(self, bands: Sequence[str]) -> dict[str, Any]:
        """JSON-ready: ``interval``, ``status``, ``dates``, ``acquisitions``, ``bands``, ``indices``, ``reason``."""
        nested: dict[str, dict[str, dict[str, float | None]]] = {"bands": {}, "indices": {}}
        for (name, stat), value in self.values.items():
            nested["bands" if name in bands else "indices"].setdefault(name, {})[stat] = clean(value)
        return {"interval": {"from": _iso(self.start), "to": _iso(self.end)}, "status": self.status,
                "dates": [d.isoformat() for d in self.dates], "acquisitions": self.acquisitions, **nested,
                "reason": self.reason}


@dataclass(frozen=True)
class Curves:
    """Filled (and smoothed) series on a common grid of dates: per variable its values, the clear
    observation on each grid date (None where there is none) and whether the value is interpolated."""

    method: str
    grid: str
    statistic: str
    weights: str
    dates: tuple[dt.date, ...]
    values: Mapping[str, tuple[float | None, ...]]
    observed: Mapping[str, tuple[float | None, ...]]

    def interpolated(self, variable: str) -> list[bool]:
        """Per grid date: a value with no clear observation that day."""
        return [v is not None and o is None for v, o in zip(self.values[variable], self.observed[variable])]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the method and grid, ``dates``, and per variable ``value``/``observed``/``interpolated``."""
        return {"method": self.method, "grid": self.grid, "statistic": self.statistic, "weights": self.weights,
                "dates": [d.isoformat() for d in self.dates],
                "variables": {name: {"value": [clean(v) for v in self.values[name]],
                                     "observed": [clean(v) for v in self.observed[name]],
                                     "interpolated": self.interpolated(name)} for name in self.values}}

    def columns(self) -> list[str]:
        """CSV header: ``date``, then ``<variable>``, ``<variable>_observed``, ``<variable>_interpolated``."""
        return ["date"] + [f"{v}{suffix}" for v in self.values for suffix in ("", "_observed", "_interpolated")]

    def to_rows(self) -> list[list[Any]]:
        """One row per grid date, in :meth:`columns` order."""
        flags = {v: self.interpolated(v) for v in self.values}
        return [[day.isoformat()] + [cell for v in self.values
                                     for cell in (clean(self.values[v][i]), clean(self.observed[v][i]), flags[v][i])]
                for i, day in enumerate(self.dates)]


SEASON_FIELDS = ("start", "peak", "end", "start_value", "peak_value", "end_value", "base", "amplitude",
                 "length_days", "integral", "integral_above_base")


@dataclass(frozen=True)
class Season:
    """Season metrics of one index on its filled daily curve (all None, with ``reason``, when there is no
    season to measure); ``warnings`` say when a start or end may lie outside the clear dates."""

    index: str
    start: dt.date | None = None
    peak: dt.date | None = None
    end: dt.date | None = None
    start_value: float | None = None
    peak_value: float | None = None
    end_value: float | None = None
    base: float | None = None
    amplitude: float | None = None
    length_days: int | None = None
    integral: float | None = None
    integral_above_base: float | None = None
    reason: str | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``index``, the :data:`SEASON_FIELDS` (dates as ISO text), ``reason`` and ``warnings``."""
        out: dict[str, Any] = {"index": self.index}
        for name in SEASON_FIELDS:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, dt.date) else (
                value if isinstance(value, int) or value is None else clean(value))
        out["reason"] = self.reason
        out["warnings"] = list(self.warnings)
        return out


@dataclass(frozen=True)
class Analytics:
    """The analytics of one series (each None when not asked for)."""

    intervals: tuple[Interval, ...] | None = None
    curves: Curves | None = None
    season: Season | None = None

    def to_dict(self, bands: Sequence[str]) -> dict[str, Any]:
        """The ``intervals``, ``curves`` and ``season`` members of a time-series answer, those computed."""
        out: dict[str, Any] = {}
        if self.intervals is not None:
            out["intervals"] = [i.to_dict(bands) for i in self.intervals]
        if self.curves is not None:
            out["curves"] = self.curves.to_dict()
        if self.season is not None:
            out["season"] = self.season.to_dict()
        return out


def interval_columns(columns: Sequence[Column]) -> list[str]:
    """CSV header of the intervals table."""
    return ["from", "to", "status", "dates", "acquisitions"] + [f"{n}_{s}" for n, s in columns] + ["reason"]


def interval_rows(intervals: Sequence[Interval], columns: Sequence[Column]) -> list[list[Any]]:
    """One row per interval in :func:`interval_columns` order; ``dates`` joined by ``;``."""
    return [[_iso(i.start), _iso(i.end), i.status, ";".join(d.isoformat() for d in i.dates), i.acquisitions]
            + [clean(i.values.get(c)) for c in columns] + [i.reason] for i in intervals]


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).replace(tzinfo=None).isoformat() + "Z"
