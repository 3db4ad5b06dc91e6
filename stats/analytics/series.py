"""One polygon's series as columns: what every analytic reads, built from a time series or a batch table.

The analytics see each date's day, whether it is clear (:meth:`stats.request.CloudOptions.clear`, and no
error and at least one valid pixel), its averaged-pixel probability and cloud fraction, and every
``<name>_<statistic>`` value as float64 with NaN for a missing value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..request import QueryOptions
from ..results import DateResult

Column = tuple[str, str]  # (band or index name, statistic)


def columns_of(options: QueryOptions) -> list[Column]:
    """The (name, statistic) columns of a series, bands first, in request order."""
    return [(name, s) for name in options.bands + options.index_names for s in options.statistics]


@dataclass(frozen=True)
class Observations:
    """The dates of one polygon's series (ascending) and their values."""

    datetimes: tuple[dt.datetime, ...]
    clear: np.ndarray        # bool: the date is used by the analytics
    failed: np.ndarray       # bool: the date has an error (or no valid pixel)
    probability: np.ndarray  # float64, NaN where not computed
    fraction: np.ndarray     # float64, NaN where not computed
    values: Mapping[Column, np.ndarray]

    @property
    def days(self) -> np.ndarray:
        """Each date as a day number (proleptic Gregorian ordinal)."""
        return np.array([d.date().toordinal() for d in self.datetimes], dtype=np.int64)

    @classmethod
    def from_series(cls, series: Sequence[DateResult], options: QueryOptions) -> Observations:
        """The columns of a finished time series."""
        failed = np.array([d.error is not None or d.valid_pixels == 0 for d in series], dtype=bool)
        probability = _floats(d.cloud_probability for d in series)
        fraction = _floats(d.pixel_cloud.fraction if d.pixel_cloud else None for d in series)
        values = {}
        for name, stat in columns_of(options):
            values[(name, stat)] = _floats((d.bands.get(name) or d.indices.get(name) or {}).get(stat)
                                           for d in series)
        return cls._build(tuple(d.datetime for d in series), failed, probability, fraction, values, options)

    @classmethod
    def from_rows(cls, rows: Mapping[str, Sequence[Any]], options: QueryOptions) -> Observations:
        """The columns of one polygon's rows of a batch table (``date``, ``cloud_probability``,
        ``cloud_fraction``, ``valid_pixels``, ``error`` and ``<name>_<statistic>``), dated rows only."""
        dates = rows["date"]
        keep = [i for i, d in enumerate(dates) if d is not None]
        datetimes = tuple(dt.datetime.combine(_date(dates[i]), dt.time(), tzinfo=dt.UTC) for i in keep)

        def column(name: str) -> np.ndarray:
            if name not in rows:
                return np.full(len(keep), np.nan)
            source = rows[name]
            return _floats(source[i] for i in keep)

        valid = column("valid_pixels")
        errors = rows.get("error") or [None] * len(dates)
        failed = np.array([errors[i] is not None for i in keep], dtype=bool) | ~(valid > 0)
        values = {(name, stat): column(f"{name}_{stat}") for name, stat in columns_of(options)}
        return cls._build(datetimes, failed, column("cloud_probability"), column("cloud_fraction"), values, options)

    @classmethod
    def _build(cls, datetimes: tuple[dt.datetime, ...], failed: np.ndarray, probability: np.ndarray,
               fraction: np.ndarray, values: dict[Column, np.ndarray], options: QueryOptions) -> Observations:
        cloud = options.cloud
        clear = np.array([not bad and cloud.clear(None if np.isnan(p) else float(p), None if np.isnan(f) else float(f))
                          for bad, p, f in zip(failed, probability, fraction)], dtype=bool)
        return cls(datetimes, clear, failed, probability, fraction, values)


def _floats(values: Any) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))
