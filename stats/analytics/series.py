"""The series of one polygon, or of every polygon of a batch, as columns: what every analytic reads.

Rows are dates, sorted by polygon and then by date; ``polygon`` says whose each row is. The analytics see
each row's day and time, whether it is clear (:meth:`stats.clouds.options.CloudOptions.clear_dates`, no error and
at least one valid pixel), its averaged-pixel probability and cloud fraction, and every
``<name>_<statistic>`` value as float64 with NaN for a missing value. A time series is one polygon; a batch
table is read column by column from Arrow, without a Python loop over its rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..request import QueryOptions
from ..results import DateResult

Column = tuple[str, str]  # (band or index name, statistic)

#: Proleptic Gregorian ordinal of 1970-01-01 (Arrow's date32 counts days from it).
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def columns_of(options: QueryOptions) -> list[Column]:
    """The (name, statistic) columns of a series, bands first, in request order."""
    return [(name, s) for name in options.bands + options.index_names for s in options.statistics]


@dataclass(frozen=True)
class Observations:
    """The dated rows of ``polygons`` series, sorted by polygon and date."""

    polygons: int
    polygon: np.ndarray      # int64: whose row it is, 0 .. polygons - 1, ascending
    days: np.ndarray         # int64: the date as a day number (proleptic Gregorian ordinal)
    stamps: np.ndarray       # float64: the acquisition time, POSIX seconds
    clear: np.ndarray        # bool: the date is used by the analytics
    failed: np.ndarray       # bool: the date has an error (or no valid pixel)
    probability: np.ndarray  # float64, NaN where not computed
    fraction: np.ndarray     # float64, NaN where not computed
    values: dict[Column, np.ndarray]

    @property
    def bounds(self) -> np.ndarray:
        """Row offsets of each polygon: its rows are ``bounds[p]:bounds[p + 1]``."""
        return np.searchsorted(self.polygon, np.arange(self.polygons + 1))

    @classmethod
    def from_series(cls, series: Sequence[DateResult], options: QueryOptions) -> Observations:
        """The columns of one finished time series."""
        failed = np.array([d.error is not None or d.valid_pixels == 0 for d in series], dtype=bool)
        values = {(name, stat): _floats((d.bands.get(name) or d.indices.get(name) or {}).get(stat) for d in series)
                  for name, stat in columns_of(options)}
        return cls._build(1, np.zeros(len(series), dtype=np.int64),
                          np.array([d.date.toordinal() for d in series], dtype=np.int64),
                          np.array([d.datetime.timestamp() for d in series], dtype=np.float64), failed,
                          _floats(d.cloud_probability for d in series),
                          _floats(d.pixel_cloud.fraction if d.pixel_cloud else None for d in series), values, options)

    @classmethod
    def from_table(cls, table: pa.Table, order_column: str, polygons: int, options: QueryOptions) -> Observations:
        """The columns of a batch table sorted by ``order_column`` (each row's polygon position) and date;
        rows without a date (a polygon's message row) are left out. A row's time is its date's midnight UTC."""
        table = table.filter(pc.is_valid(table.column("date")))
        days = table.column("date").cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64) + _EPOCH_ORDINAL

        def column(name: str) -> np.ndarray:
            if name not in table.column_names:
                return np.full(table.num_rows, np.nan)
            return np.asarray(table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)

        failed = table.column("error").is_valid().to_numpy(zero_copy_only=False) | ~(column("valid_pixels") > 0)
        values = {(name, stat): column(f"{name}_{stat}") for name, stat in columns_of(options)}
        stamps = (days - _EPOCH_ORDINAL).astype(np.float64) * 86400.0
        polygon = np.asarray(table.column(order_column).to_numpy(zero_copy_only=False), dtype=np.int64)
        return cls._build(polygons, polygon, days, stamps, np.asarray(failed, dtype=bool), column("cloud_probability"),
                          column("cloud_fraction"), values, options)

    @classmethod
    def _build(cls, polygons: int, polygon: np.ndarray, days: np.ndarray, stamps: np.ndarray, failed: np.ndarray,
               probability: np.ndarray, fraction: np.ndarray, values: dict[Column, np.ndarray],
               options: QueryOptions) -> Observations:
        clear = ~failed & options.cloud.clear_dates(probability, fraction)
        return cls(polygons, polygon, days, stamps, clear, failed, probability, fraction, values)


def _floats(values: Iterable[float | int | None]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
