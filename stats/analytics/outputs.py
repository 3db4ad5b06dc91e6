"""What the analytics answer, for one polygon or every polygon of a batch, as columns.

Each answer is a table whose rows belong to polygons (:meth:`row_polygons`): the intervals (polygon-major,
``polygon * K + k``), the filled curves (polygon-major over the grid dates) and the season (one row per
polygon). :meth:`columns` gives the CSV columns by name; JSON is built from the same arrays for one polygon.
Missing values are NaN in the arrays and ``None`` (JSON null, an empty CSV cell) outside, never NaN.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Column = tuple[str, str]
#: Table name -> column name -> values (a list or a numpy array), in CSV order.
Columns = dict[str, Any]


def clean(value: Any) -> Any:
    """A plain Python value: None for NaN or None, ``bool``/``int``/``float`` for numpy scalars."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def rows_of(columns: Columns) -> list[list[Any]]:
    """The rows of a column table, each value :func:`clean`."""
    lists = [v.tolist() if isinstance(v, np.ndarray) else list(v) for v in columns.values()]
    return [[clean(v) for v in row] for row in zip(*lists)]


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).replace(tzinfo=None).isoformat() + "Z"


@dataclass(frozen=True)
class IntervalTable:
    """Aggregation intervals ``[starts[k], ends[k])`` of every polygon: for group ``g = polygon * K + k``,
    the clear dates used, the number of the series' dates in it, the composited values (groups × columns)
    and why a group has none."""

    starts: tuple[dt.datetime, ...]
    ends: tuple[dt.datetime, ...]
    polygons: int
    columns: tuple[Column, ...]
    used_days: np.ndarray    # day numbers of the dates used, group after group
    offsets: np.ndarray      # group g used ``used_days[offsets[g]:offsets[g + 1]]``
    acquisitions: np.ndarray
    values: np.ndarray
    reasons: list[str | None]

    def row_polygons(self) -> np.ndarray:
        return np.repeat(np.arange(self.polygons), len(self.starts))

    def table(self) -> Columns:
        """CSV columns: ``from,to,status,dates,acquisitions``, ``<name>_<stat>``..., ``reason``."""
        iso = {int(day): dt.date.fromordinal(int(day)).isoformat() for day in np.unique(self.used_days)}
        texts = [iso[day] for day in self.used_days.tolist()]
        bounds = self.offsets.tolist()
        counts = np.diff(self.offsets)
        out: Columns = {"from": [_iso(a) for a in self.starts] * self.polygons,
                        "to": [_iso(b) for b in self.ends] * self.polygons,
                        "status": np.where(counts > 0, "OK", "NO_CLEAR_DATE").tolist(),
                        "dates": [";".join(texts[a:b]) for a, b in zip(bounds[:-1], bounds[1:])],
                        "acquisitions": self.acquisitions}
        out.update({f"{n}_{s}": self.values[:, j] for j, (n, s) in enumerate(self.columns)})
        out["reason"] = self.reasons
        return out

    def to_list(self, bands: Sequence[str], polygon: int = 0) -> list[dict[str, Any]]:
        """JSON-ready intervals of one polygon: ``interval``, ``status``, ``dates``, ``acquisitions``,
        ``bands``, ``indices``, ``reason``."""
        k = len(self.starts)
        out = []
        for i in range(k):
            g = polygon * k + i
            nested: dict[str, dict[str, dict[str, Any]]] = {"bands": {}, "indices": {}}
            used = [dt.date.fromordinal(d) for d in self.used_days[self.offsets[g]:self.offsets[g + 1]].tolist()]
            if used:
                for j, (name, stat) in enumerate(self.columns):
                    nested["bands" if name in bands else "indices"].setdefault(name, {})[stat] = clean(
                        self.values[g, j])
            out.append({"interval": {"from": _iso(self.starts[i]), "to": _iso(self.ends[i])},
                        "status": "OK" if used else "NO_CLEAR_DATE",
                        "dates": [d.isoformat() for d in used], "acquisitions": int(self.acquisitions[g]),
                        **nested, "reason": self.reasons[g]})
        return out


@dataclass(frozen=True)
class CurveTable:
    """Filled (and smoothed) curves of every polygon on common grid ``dates``: per variable the values and
    the clear observation on each grid date (polygons × dates, NaN where there is none)."""

    method: str
    grid: str
    statistic: str
    weights: str
    dates: tuple[dt.date, ...]
    polygons: int
    values: Mapping[str, np.ndarray]
    observed: Mapping[str, np.ndarray]

    def interpolated(self, variable: str) -> np.ndarray:
        """Per polygon and grid date: a value with no clear observation that day."""
        return np.isfinite(self.values[variable]) & np.isnan(self.observed[variable])

    def row_polygons(self) -> np.ndarray:
        return np.repeat(np.arange(self.polygons), len(self.dates))

    def table(self) -> Columns:
        """CSV columns: ``date``, then ``<variable>``, ``<variable>_observed``, ``<variable>_interpolated``."""
        out: Columns = {"date": [d.isoformat() for d in self.dates] * self.polygons}
        for name in self.values:
            out[name] = self.values[name].ravel()
            out[f"{name}_observed"] = self.observed[name].ravel()
            out[f"{name}_interpolated"] = self.interpolated(name).ravel()
        return out

    def to_dict(self, polygon: int = 0) -> dict[str, Any]:
        """JSON-ready: the method and grid, ``dates``, and per variable ``value``/``observed``/``interpolated``."""
        return {"method": self.method, "grid": self.grid, "statistic": self.statistic, "weights": self.weights,
                "dates": [d.isoformat() for d in self.dates],
                "variables": {name: {"value": [clean(v) for v in self.values[name][polygon].tolist()],
                                     "observed": [clean(v) for v in self.observed[name][polygon].tolist()],
                                     "interpolated": self.interpolated(name)[polygon].tolist()}
                              for name in self.values}}


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
            out[name] = value.isoformat() if isinstance(value, dt.date) else clean(value)
        out["reason"] = self.reason
        out["warnings"] = list(self.warnings)
        return out


@dataclass(frozen=True)
class SeasonTable:
    """The season of every polygon."""

    seasons: tuple[Season, ...]

    def row_polygons(self) -> np.ndarray:
        return np.arange(len(self.seasons))

    def table(self) -> Columns:
        """CSV columns: ``index``, the :data:`SEASON_FIELDS`, ``reason`` and ``warnings`` (joined by ``; ``)."""
        out: Columns = {"index": [s.index for s in self.seasons]}
        for name in SEASON_FIELDS:
            values = [getattr(s, name) for s in self.seasons]
            out[name] = [v.isoformat() if isinstance(v, dt.date) else v for v in values]
        out["reason"] = [s.reason for s in self.seasons]
        out["warnings"] = ["; ".join(s.warnings) for s in self.seasons]
        return out


@dataclass(frozen=True)
class Analytics:
    """The analytics of one or more series (each None when not asked for)."""

    intervals: IntervalTable | None = None
    curves: CurveTable | None = None
    season: SeasonTable | None = None

    def tables(self) -> dict[str, IntervalTable | CurveTable | SeasonTable]:
        """The tables computed, by name (``intervals``, ``curves``, ``season``)."""
        parts = {"intervals": self.intervals, "curves": self.curves, "season": self.season}
        return {name: part for name, part in parts.items() if part is not None}

    def to_dict(self, bands: Sequence[str], polygon: int = 0) -> dict[str, Any]:
        """The ``intervals``, ``curves`` and ``season`` members of one polygon's time-series answer."""
        out: dict[str, Any] = {}
        if self.intervals is not None:
            out["intervals"] = self.intervals.to_list(bands, polygon)
        if self.curves is not None:
            out["curves"] = self.curves.to_dict(polygon)
        if self.season is not None:
            out["season"] = self.season.seasons[polygon].to_dict()
        return out
