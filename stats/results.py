"""Results of the time-series engine, with one schema for JSON and CSV.

:class:`TimeSeriesResult` turns into a dict (:meth:`~TimeSeriesResult.to_dict`) or CSV rows
(:meth:`~TimeSeriesResult.to_rows`); both use the statistic names of :mod:`stats.zonal` and write ``None``
(JSON null, an empty CSV cell), never NaN. :meth:`TimeSeriesResult.empty` gives the columns a set of
options produces before any date is computed (the batch writes them as its schema).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from .analytics.outputs import Analytics, clean, rows_of
from .errors import InvalidRequestError
from .request import QueryOptions
from .water.result import WATER_COLUMNS, Water

Number = float | int | None
Stats = dict[str, Number]


@dataclass(frozen=True)
class PixelCloud:
    """Per-pixel cloud result of one date over the polygon's valid pixels.

    ``fraction`` is the share of valid pixels under the cloud mask, ``probability_mean`` the mean CLP
    probability over them; ``clear_pixels + cloudy_pixels`` is the number of valid pixels. ``source`` says
    where the cloud cells came from: ``layers`` (the stored CLP/CLM), ``model`` (scored on the fly) or
    ``scl`` (an L2A date's scene classification, which has no probability: ``probability_mean`` is None,
    ``note`` says why and ``classes`` holds the share of valid pixels in each SCL class group).
    """

    fraction: float | None
    probability_mean: float | None
    clear_pixels: int
    cloudy_pixels: int
    source: str | None = None
    note: str | None = None
    classes: Mapping[str, float | None] | None = None


@dataclass(frozen=True)
class PixelShadow:
    """Cloud-shadow result of one date over the polygon's valid pixels (:mod:`stats.clouds.shadows`).

    ``fraction`` is the share of valid pixels in shadow and ``pixels`` their number; both are None, and
    ``warning`` says why, when the date could not be searched for shadows (no sun angles).
    """

    fraction: float | None
    pixels: int | None
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``cloud`` members of the shadow result."""
        return {"shadow_fraction": clean(self.fraction), "shadow_pixels": self.pixels,
                "shadow_warning": self.warning}

    def row(self) -> list[Any]:
        """The :data:`CSV_SHADOW_COLUMNS` cells."""
        return [clean(self.fraction), self.pixels, self.warning]


@dataclass(frozen=True)
class DateResult:
    """Statistics of one acquisition date (all tiles of the date mosaicked).

    ``cloud_probability`` is the s2cloudless probability of the averaged pixel (None without valid
    pixels or in pixel mode); ``pixel_cloud`` the per-pixel result (pixel/both modes); ``warning`` says
    why the averaged pixel cannot be trusted (``disagree``: it contradicts the majority of the pixel mask;
    ``mixed``: the polygon is partly cloudy). ``bands``/``indices`` map a name to its statistics. ``error``
    is set, and the rest empty, when the date's imagery could not be read.
    """

    date: dt.date
    datetime: dt.datetime
    scenes: tuple[str, ...]
    cloud_probability: float | None = None
    cloudy: bool | None = None
    valid_pixels: int = 0
    nodata_pixels: int = 0
    bands: Mapping[str, Stats] = field(default_factory=dict)
    indices: Mapping[str, Stats] = field(default_factory=dict)
    error: str | None = None
    pixel_cloud: PixelCloud | None = None
    warning: str | None = None
    water: Water | None = None
    histograms: Mapping[str, list[dict[str, float]]] = field(default_factory=dict)
    shadow: PixelShadow | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (ISO-8601 date and ``...Z`` date-time)."""
        out: dict[str, Any] = {
            "date": self.date.isoformat(),
            "datetime": format_datetime(self.datetime),
            "scenes": list(self.scenes),
        }
        if self.error is not None:
            out["error"] = self.error
            return out
        cloud: dict[str, Any] = {"probability": clean(self.cloud_probability), "cloudy": self.cloudy}
        if self.pixel_cloud is not None:
            pc = self.pixel_cloud
            cloud.update(fraction=clean(pc.fraction), probability_mean=clean(pc.probability_mean),
                         clear_pixels=pc.clear_pixels, cloudy_pixels=pc.cloudy_pixels,
                         trusted=self.warning is None, warning=self.warning, source=pc.source)
            if pc.note is not None:
                cloud["note"] = pc.note
            if pc.classes is not None:
                cloud["scl"] = {group: clean(value) for group, value in pc.classes.items()}
        if self.shadow is not None:
            cloud.update(self.shadow.to_dict())
        out["cloud"] = cloud
        out["pixels"] = {"valid": self.valid_pixels, "nodata": self.nodata_pixels}
        out["bands"] = {b: {k: clean(v) for k, v in s.items()} for b, s in self.bands.items()}
        out["indices"] = {i: {k: clean(v) for k, v in s.items()} for i, s in self.indices.items()}
        if self.water is not None:
            out["water"] = self.water.to_dict()
        if self.histograms:
            out["histograms"] = {name: list(bins) for name, bins in self.histograms.items()}
        return out


def format_datetime(value: dt.datetime) -> str:
    """UTC ISO-8601 with a ``Z`` suffix, to the second (or microsecond when present)."""
    text = value.astimezone(dt.UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


#: The CSV tables of a time series: one row per date, per interval, per curve date, or the season.
TABLES = ("dates", "intervals", "curves", "season")
CSV_FIXED_COLUMNS = ("date", "cloud_probability", "cloudy", "valid_pixels", "nodata_pixels")
CSV_PIXEL_COLUMNS = ("cloud_fraction", "cloud_probability_mean", "clear_pixels", "cloudy_pixels", "cloud_warning",
                     "cloud_trusted", "cloud_source", "cloud_note")
CSV_WATER_COLUMNS = WATER_COLUMNS
CSV_SHADOW_COLUMNS = ("shadow_fraction", "shadow_pixels", "shadow_warning")


@dataclass(frozen=True)
class TimeSeriesResult:
    """A time series, oldest date first, with a summary of what was searched and dropped."""

    series: tuple[DateResult, ...]
    bands: tuple[str, ...]
    indices: tuple[str, ...]
    statistics: tuple[str, ...]
    acquisitions: int = 0
    dropped_cloudy: int = 0
    dropped_empty: int = 0
    pixel_cloud: bool = False
    water: bool = False
    warnings: tuple[str, ...] = ()  # what the caller should know: a repaired polygon, why the series is empty
    analytics: Analytics | None = None  # intervals, filled curves and season metrics, when asked for
    shadows: bool = False  # whether cloud shadows were searched for (cloud.shadows)

    @classmethod
    def empty(cls, options: QueryOptions) -> TimeSeriesResult:
        """A result with no dates, whose columns are those ``options`` produce."""
        return cls(series=(), bands=options.bands, indices=options.index_names, statistics=options.statistics,
                   pixel_cloud=options.pixel_clouds, water=options.water is not None,
                   shadows=options.cloud.shadows)

    @property
    def status(self) -> str:
        """``OK``, or ``PARTIAL`` when some dates carry an error."""
        return "PARTIAL" if any(d.error for d in self.series) else "OK"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``status``, ``series``, ``summary`` and, when there are any, ``warnings``."""
        out: dict[str, Any] = {
            "status": self.status,
            "series": [d.to_dict() for d in self.series],
            "summary": {
                "acquisitions": self.acquisitions,
                "dates": len(self.series),
                "errors": sum(1 for d in self.series if d.error),
                "dropped_cloudy": self.dropped_cloudy,
                "dropped_empty": self.dropped_empty,
            },
        }
        if self.analytics is not None:
            out.update(self.analytics.to_dict(self.bands))
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out

    @property
    def tables(self) -> tuple[str, ...]:
        """The CSV tables this result has: ``dates``, then those of the analytics computed."""
        return ("dates",) + (tuple(self.analytics.tables()) if self.analytics is not None else ())

    def table(self, name: str = "dates") -> tuple[list[str], list[list[Any]]]:
        """The header and rows of one table: ``dates`` (one row per date, :meth:`columns`), ``intervals``,
        ``curves`` (one row per grid date) or ``season``; a table the request did not ask for is a 400."""
        if name == "dates":
            return self.columns(), self.to_rows()
        parts = self.analytics.tables() if self.analytics is not None else {}
        if name not in parts:
            raise InvalidRequestError(
                f"table: got {name!r:.40}; this request has the tables {list(self.tables)} (intervals need "
                "'aggregation', curves 'fill', season 'season')")
        columns = parts[name].table()
        return list(columns), rows_of(columns)

    def columns(self) -> list[str]:
        """CSV header: fixed columns, the pixel-cloud, shadow and water columns when computed,
        ``<band>_<stat>``, ``<index>_<stat>``, then ``error``."""
        cols = list(CSV_FIXED_COLUMNS)
        cols += list(CSV_PIXEL_COLUMNS) if self.pixel_cloud else []
        cols += list(CSV_SHADOW_COLUMNS) if self.shadows else []
        cols += list(CSV_WATER_COLUMNS) if self.water else []
        cols += [f"{b}_{s}" for b in self.bands for s in self.statistics]
        cols += [f"{i}_{s}" for i in self.indices for s in self.statistics]
        return cols + ["error"]

    def to_rows(self) -> list[list[Any]]:
        """One row per date in :meth:`columns` order; None for missing values."""
        rows = []
        for d in self.series:
            row: list[Any] = [d.date.isoformat(), clean(d.cloud_probability), d.cloudy, d.valid_pixels,
                              d.nodata_pixels]
            if self.pixel_cloud:
                pc = d.pixel_cloud
                row += ([clean(pc.fraction), clean(pc.probability_mean), pc.clear_pixels, pc.cloudy_pixels, d.warning,
                         d.warning is None, pc.source, pc.note] if pc is not None else [None] * len(CSV_PIXEL_COLUMNS))
            if self.shadows:
                row += d.shadow.row() if d.shadow is not None else [None] * len(CSV_SHADOW_COLUMNS)
            if self.water:
                w = d.water
                row += w.row() if w is not None else [None] * len(CSV_WATER_COLUMNS)
            for names, table in ((self.bands, d.bands), (self.indices, d.indices)):
                for name in names:
                    values = table.get(name, {})
                    row += [clean(values.get(s)) for s in self.statistics]
            row.append(d.error)
            rows.append(row)
        return rows

    def to_csv(self, table: str = "dates") -> str:
        """One :meth:`table` as CSV text: its header, then its rows (by default the dates); text cells are
        made safe for spreadsheets (:func:`safe_text`)."""
        header, rows = self.table(table)
        buffer = io.StringIO()
        write_csv(buffer, header, rows)
        return buffer.getvalue()


#: What a spreadsheet takes for the start of a formula (OWASP, CSV injection): such text cells get a ``'``.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_FIRST = frozenset(FORMULA_START)
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def safe_text(text: str) -> str:
    """A text cell a spreadsheet shows as text: one starting with ``=``, ``+``, ``-``, ``@``, a tab or a
    carriage return gets a leading single quote (OWASP's advice against CSV injection), unless it is a plain
    number (``-0.12``, ``+3``, ``-1e-5``), which no spreadsheet runs.

    >>> safe_text("=1+2"), safe_text("@SUM(A1)"), safe_text("-0.12"), safe_text("-1+2"), safe_text("field 1")
    ("'=1+2", "'@SUM(A1)", '-0.12', "'-1+2", 'field 1')
    """
    if text.startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_cell(value: Any) -> Any:
    """A CSV cell: empty for None (and NaN), ``true``/``false`` for booleans, text made safe for
    spreadsheets (:func:`safe_text`), numbers as they are (a negative number stays a number)."""
    kind = type(value)
    if kind is float:  # the most common cell first
        return value if value == value else ""
    if kind is str:
        return safe_text(value) if value[:1] in _FORMULA_FIRST else value
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    return value


def write_csv(out: TextIO, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    r"""Write a header and rows as CSV (``\n`` line ends) with every cell through :func:`csv_cell`.

    A text cell holding a line break is quoted, so that it never breaks the record: the csv module quotes
    ``\n`` but not a bare ``\r`` under ``\n`` line ends, so rows holding one are written by a writer that
    quotes both (and given ``\n`` line ends). A reader that follows RFC 4180 (Python's csv, pandas,
    spreadsheets) reads each cell back whole.

    >>> buffer = io.StringIO()
    >>> write_csv(buffer, ["id", "v"], [["a\rb", -0.5], ["@x", None]])
    >>> buffer.getvalue()
    'id,v\n"a\rb",-0.5\n\'@x,\n'
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([csv_cell(name) for name in header])
    chunk: list[list[Any]] = []
    for row in rows:
        chunk.append([csv_cell(v) for v in row])
        if len(chunk) == 10_000:
            _write_chunk(out, chunk)
            chunk = []
    _write_chunk(out, chunk)


def _write_chunk(out: TextIO, rows: list[list[Any]]) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    text = buffer.getvalue()
    if "\r" in text:  # rare: some text cell holds a carriage return; quote such cells too
        quoting = io.StringIO()
        crlf = csv.writer(quoting, lineterminator="\r\n")
        lines = []
        for row in rows:
            quoting.seek(0)
            quoting.truncate()
            crlf.writerow(row)
            lines.append(quoting.getvalue()[:-2] + "\n")
        text = "".join(lines)
    out.write(text)
