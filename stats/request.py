"""What a query asks about and how: parsed once, at the boundary, with the limits.

A :class:`TimeSeriesRequest` is an :class:`Area` (a valid polygon and its CRS) and a :class:`TimeRange`
(what is asked about), and :class:`QueryOptions` (how: bands, indices, statistics, resolution, cloud,
water, histograms, exact mode). :meth:`TimeSeriesRequest.from_dict` parses the native JSON body; the FIS,
Statistical API and batch parsers build the same objects, and the engine never parses again. Every
parser raises :class:`~stats.errors.InvalidRequestError` subclasses naming the field, what was received
and what was expected. :class:`Limits` holds the per-request limits that parsing and reading enforce.

The cloud options and their rules live in :mod:`stats.clouds.options` (:class:`~stats.clouds.options.CloudOptions`),
in one place: ``cloudy = probability >= threshold``, the drop rules of ``max_probability`` and ``max_fraction``,
and when the averaged pixel is not trusted.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pyproj import CRS
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from .analytics.options import AnalyticsOptions
from .bands import MODEL_BANDS, RESOLUTIONS, S2_BANDS
from .clouds.options import CloudOptions
from .clouds.shadows import SHADOW_BANDS
from .errors import InvalidRequestError, InvalidTimeRangeError, UnknownBandError
from .fields import flag, integer, known_fields, optional_percent
from .geometry import DEFAULT_MAX_VERTICES, WGS84, crs_name, parse_geometry, reproject
from .indices import IndexSpec, resolve_index
from .sampling import NEAREST, Sampling
from .water.options import WaterOptions
from .zonal import DEFAULT_STATISTICS, HISTOGRAM_KINDS, MAX_BINS, HistogramKind, validate_statistics

#: Default cap on the pixels of one query window (Sentinel Hub's 2500 x 2500).
DEFAULT_MAX_PIXELS = 2500 * 2500
#: Default memory budget of one request's arrays, MiB (``POLYFIS_MAX_REQUEST_MB``).
DEFAULT_MAX_REQUEST_MB = 1024
#: Message of dates or intervals skipped because the request ran out of time.
BUDGET_MESSAGE = "not computed: the request's time budget of {:g} s ran out (POLYFIS_TIME_BUDGET_S)"

_REQUEST_FIELDS = frozenset({"geometry", "crs", "time"})
_OPTION_FIELDS = frozenset({
    "bands", "indices", "statistics", "resolution", "cloud", "harmonize", "max_cloud_cover", "include_empty",
    "water", "histogram", "exact", "aggregation", "fill", "season",
})


@dataclass(frozen=True)
class Limits:
    """Per-request limits (the service sets them from its settings).

    ``time_budget_s`` bounds the work of one request: dates (or intervals) not started before it runs out
    get an error entry saying so, and the answer is PARTIAL instead of late.
    """

    max_vertices: int = DEFAULT_MAX_VERTICES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_acquisitions: int = 1000
    max_days: int = 3 * 366
    time_budget_s: float = 60.0
    max_bytes: int = DEFAULT_MAX_REQUEST_MB * 2**20

    def check_memory(self, values: int, bytes_each: int, what: str) -> None:
        """Reject work that would hold ``values`` values of ``bytes_each`` bytes at once over ``max_bytes``,
        before it starts; ``what`` says what they are."""
        need = values * bytes_each
        if need > self.max_bytes:
            raise InvalidRequestError(
                f"{what} would hold about {need / 2**20:,.0f} MiB of arrays, more than the request memory limit of "
                f"{self.max_bytes / 2**20:,.0f} MiB (POLYFIS_MAX_REQUEST_MB); use fewer bands, a coarser "
                "resolution or a smaller polygon")

    def check_range(self, time_range: TimeRange, name: str = "time") -> None:
        """Reject a time range longer than ``max_days``."""
        days = time_range.days
        if days > self.max_days:
            raise InvalidRequestError(
                f"{name}: the range covers {days:.0f} days, more than the limit of {self.max_days}; "
                "split it into shorter requests")

    def check_acquisitions(self, count: int) -> None:
        """Reject a request that would read more than ``max_acquisitions`` tiles."""
        if count > self.max_acquisitions:
            raise InvalidRequestError(
                f"time: the polygon and range match {count} acquisitions, more than the limit of "
                f"{self.max_acquisitions}; shorten the time range or set max_cloud_cover")

    def deadline(self) -> float:
        """The monotonic time at which this request's budget runs out."""
        return time.monotonic() + self.time_budget_s

    @property
    def budget_message(self) -> str:
        """The error of a date or interval skipped for lack of time."""
        return BUDGET_MESSAGE.format(self.time_budget_s)


@dataclass(frozen=True)
class Area:
    """The polygon a query is about: valid, non-empty, of positive area, in ``crs`` ((x, y) axis order)."""

    geometry: Polygon | MultiPolygon
    crs: CRS
    repaired: str | None = None  # what was wrong with the polygon as given, when it was repaired

    @classmethod
    def parse(cls, value: Any, crs: Any = "EPSG:4326", *, max_vertices: int = DEFAULT_MAX_VERTICES,
              swap_axes: bool = False) -> Area:
        """Parse GeoJSON, WKT or a shapely geometry in ``crs`` (see :func:`stats.geometry.parse_geometry`)."""
        repairs: list[str] = []
        geometry, parsed_crs = parse_geometry(value, crs, max_vertices=max_vertices, swap_axes=swap_axes,
                                              on_repair=repairs.append)
        return cls(geometry, parsed_crs, repairs[0] if repairs else None)

    @property
    def warnings(self) -> list[str]:
        """What a client should know about the polygon used."""
        if self.repaired is None:
            return []
        return [f"geometry: the polygon was invalid ({self.repaired}) and was repaired with shapely.make_valid; "
                "the answer is for the repaired polygon"]

    @cached_property
    def wgs84(self) -> BaseGeometry:
        """The polygon in EPSG:4326 (lon, lat), for catalog searches."""
        return reproject(self.geometry, self.crs, WGS84)

    def to(self, crs: CRS) -> BaseGeometry:
        """The polygon in another CRS."""
        return reproject(self.geometry, self.crs, crs)

    @property
    def crs_name(self) -> str:
        """``EPSG:<code>`` when the CRS has one, else its WKT."""
        return crs_name(self.crs)


def parse_datetime(value: Any, name: str, *, end_of_day: bool = False) -> dt.datetime:
    """Parse an ISO-8601 date or date-time; a bare date is the day's start (or end with ``end_of_day``).

    Naive date-times are UTC. The result is timezone-aware UTC.

    >>> parse_datetime("2023-03-05", "time.to", end_of_day=True).isoformat()
    '2023-03-05T23:59:59.999999+00:00'
    """
    if not isinstance(value, str):
        raise InvalidTimeRangeError(f"{name}: expected an ISO-8601 date such as '2023-01-31', got {value!r:.80}")
    text = value.strip()
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        day = None
    if day is not None:
        clock = dt.time.max if end_of_day else dt.time.min
        return dt.datetime.combine(day, clock, tzinfo=dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.astimezone(dt.UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidTimeRangeError(
            f"{name}: cannot parse {value!r:.80}; expected an ISO-8601 date '2023-01-31' or date-time "
            "'2023-01-31T10:00:00Z'"
        ) from exc


@dataclass(frozen=True)
class TimeRange:
    """A UTC time range; ``end`` is inclusive (a date-only end is the end of that day)."""

    start: dt.datetime
    end: dt.datetime

    @classmethod
    def parse(cls, value: Any, name: str = "time", *, single: bool = False, strict: bool = False) -> TimeRange:
        """Parse ``{"from": ..., "to": ...}`` or a ``"from/to"`` string (``single``: an OGC ``TIME`` value,
        ``from/to`` or one date, whose errors name the parameter alone).

        ``strict`` requires ``from < to`` (ranges read as ``[from, to)``), else ``from <= to``.

        >>> r = TimeRange.parse("2023-01-01/2023-01-31")
        >>> r.start.isoformat(), r.end.date().isoformat()
        ('2023-01-01T00:00:00+00:00', '2023-01-31')
        """
        shown = repr(value)[:80]
        if isinstance(value, str) and ("/" in value or single):
            start_text, _, end_text = value.partition("/")
            value = {"from": start_text, "to": end_text or start_text}
        if not isinstance(value, dict) or "from" not in value or "to" not in value or set(value) - {"from", "to"}:
            raise InvalidTimeRangeError(
                f"{name}: expected an object {{'from': '2023-01-01', 'to': '2023-12-31'}}, got {shown}")
        ends = (name, name) if single else (f"{name}.from", f"{name}.to")  # an OGC TIME is one parameter
        start = parse_datetime(value["from"], ends[0])
        end = parse_datetime(value["to"], ends[1], end_of_day=True)
        if end < start or (strict and end == start):
            relation, op = ("not before", "<") if strict else ("after", "<=")
            raise InvalidTimeRangeError(
                f"{name}: got {shown}, whose start is {relation} its end; expected start/end with start {op} end"
                if single else
                f"{name}: 'from' ({value['from']}) is {relation} 'to' ({value['to']}); expected from {op} to")
        return cls(start, end)

    @property
    def days(self) -> float:
        """Length in days."""
        return (self.end - self.start).total_seconds() / 86400

    def clip(self, first: dt.datetime, last: dt.datetime) -> TimeRange | None:
        """The part of this range from ``first`` to ``last`` (an archive's first and last acquisition
        times), or None when they do not overlap."""
        start, end = max(self.start, first), min(self.end, last)
        return TimeRange(start, end) if start <= end else None


@dataclass(frozen=True)
class HistogramOptions:
    """Histograms of every band and index per date: ``bins`` bins of ``kind`` (see :func:`stats.zonal.histogram`)."""

    bins: int = 10
    kind: HistogramKind = "equalfrequency"

    @classmethod
    def from_dict(cls, data: Any) -> HistogramOptions | None:
        """Parse ``{"bins": 10, "type": "equidistant"}``; absent or null for none."""
        if data is None:
            return None
        if not isinstance(data, dict) or set(data) - {"bins", "type"}:
            raise InvalidRequestError(
                f"histogram: expected an object {{'bins': 10, 'type': 'equalfrequency'}}, got {data!r:.80}")
        bins = integer(data.get("bins", 10), "histogram.bins", 1, MAX_BINS)
        kind = data.get("type", "equalfrequency")
        if not isinstance(kind, str) or kind.lower() not in HISTOGRAM_KINDS:
            raise InvalidRequestError(f"histogram.type: expected one of {list(HISTOGRAM_KINDS)}, got {kind!r:.80}")
        return cls(bins=bins, kind=kind.lower())  # type: ignore[arg-type]


def parse_bands(value: Any) -> tuple[str, ...]:
    """Band names in request order; default all 13. Names are case-insensitive ("b8a" -> "B8A")."""
    if value is None:
        return S2_BANDS
    if not isinstance(value, list) or not value:
        raise UnknownBandError(
            f"bands: expected a non-empty list of band names such as ['B04', 'B08'], got {value!r:.80}")
    out: list[str] = []
    for item in value:
        name = item.upper() if isinstance(item, str) else item
        if name not in S2_BANDS:
            raise UnknownBandError(f"bands: unknown band {item!r:.40}; expected one of {list(S2_BANDS)}")
        if name not in out:
            out.append(name)
    return tuple(out)


def parse_indices(value: Any) -> tuple[IndexSpec, ...]:
    """Index entries (names or ``{name, expression}`` objects); default none."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidRequestError(f"indices: expected a list such as ['NDVI', 'NDWI'], got {value!r:.80}")
    specs = [resolve_index(item) for item in value]
    clashes = sorted({s.name for s in specs} & set(S2_BANDS))
    if clashes:
        raise InvalidRequestError(f"indices: names {clashes} are band names; expected index names distinct from bands")
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidRequestError(f"indices: names {duplicates} appear more than once; expected unique names")
    return tuple(specs)


def parse_statistics(value: Any) -> tuple[str, ...]:
    """Statistic names; default :data:`stats.zonal.DEFAULT_STATISTICS`."""
    if value is None:
        return DEFAULT_STATISTICS
    if not isinstance(value, list) or not value:
        raise InvalidRequestError(f"statistics: expected a non-empty list such as ['mean', 'p90'], got {value!r:.80}")
    return validate_statistics(value)


def parse_resolution(value: Any) -> int:
    """Nominal resolution in metres: 10, 20 or 60 (also written '10m')."""
    if value is None:
        return 10
    raw = value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,5}", value.strip().lower().removesuffix("m").strip()):
        value = int(value.strip().lower().removesuffix("m"))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or value not in RESOLUTIONS:
        raise InvalidRequestError(f"resolution: expected one of {list(RESOLUTIONS)} (metres), got {raw!r:.80}")
    return int(value)


@dataclass(frozen=True)
class QueryOptions:
    """How a time series is computed.

    ``bands`` are reported with ``statistics``; ``indices`` are computed per pixel. ``resolution`` is the
    nominal grid (10, 20 or 60 m). ``harmonize`` removes the baseline 04.00 offset. ``max_cloud_cover``
    (0–100) filters tiles by their ``eo:cloud_cover``. ``include_empty`` keeps dates with no valid pixel
    in the polygon. ``exact`` weights each pixel by the fraction of its area inside the polygon (every pixel
    the polygon touches counts, ``count`` becomes the covered area in pixels), instead of counting the
    pixels whose centre is inside. ``analytics`` are computed on the finished series (:mod:`stats.analytics`).
    ``sampling`` brings the bands onto the grid (:mod:`stats.sampling`; FIS's UPSAMPLING/DOWNSAMPLING).
    """

    bands: tuple[str, ...] = S2_BANDS
    indices: tuple[IndexSpec, ...] = ()
    statistics: tuple[str, ...] = DEFAULT_STATISTICS
    resolution: int = 10
    cloud: CloudOptions = field(default_factory=CloudOptions)
    harmonize: bool = True
    max_cloud_cover: float | None = None
    include_empty: bool = False
    water: WaterOptions | None = None
    histogram: HistogramOptions | None = None
    exact: bool = False
    analytics: AnalyticsOptions = field(default_factory=AnalyticsOptions)
    sampling: Sampling = NEAREST

    @classmethod
    def from_dict(cls, data: Any, name: str = "options", *, crs: Any = "EPSG:4326",
                  max_vertices: int = DEFAULT_MAX_VERTICES) -> QueryOptions:
        """Parse the option fields of a request (every one has a default); ``crs`` and ``max_vertices`` are
        the request's, for a geometry among the options (``water.outline``)."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise InvalidRequestError(f"{name}: expected an object of time-series fields (bands, indices, "
                                      f"statistics, cloud, ...), got {type(data).__name__}")
        known_fields(data, _OPTION_FIELDS, name)
        exact = flag(data.get("exact"), "exact", False)
        if exact and data.get("histogram") not in (None, False):
            raise InvalidRequestError("exact: histograms count whole pixels and are not weighted by coverage; "
                                      "expected exact false (or absent) when a histogram is requested")
        bands, indices = parse_bands(data.get("bands")), parse_indices(data.get("indices"))
        statistics, cloud = parse_statistics(data.get("statistics")), CloudOptions.from_dict(data.get("cloud"))
        analytics = AnalyticsOptions.from_dict(data).check(bands, tuple(s.name for s in indices), statistics,
                                                           averaged=cloud.averaged, pixel=cloud.pixel)
        return cls(
            bands=bands,
            indices=indices,
            statistics=statistics,
            resolution=parse_resolution(data.get("resolution")),
            cloud=cloud,
            harmonize=flag(data.get("harmonize"), "harmonize", True),
            max_cloud_cover=optional_percent(data.get("max_cloud_cover"), "max_cloud_cover"),
            include_empty=flag(data.get("include_empty"), "include_empty", False),
            water=WaterOptions.from_dict(data.get("water"), crs=crs, max_vertices=max_vertices),
            histogram=HistogramOptions.from_dict(data.get("histogram")),
            exact=exact,
            analytics=analytics,
        )

    @property
    def index_names(self) -> tuple[str, ...]:
        """Names of the reported indices, in order."""
        return tuple(s.name for s in self.indices)

    @property
    def specs(self) -> tuple[IndexSpec, ...]:
        """Every index computed per pixel: the reported ones, then the water index."""
        return self.indices + ((self.water.spec,) if self.water is not None else ())

    @property
    def read_bands(self) -> list[str]:
        """Bands read from the archive (reported, needed by an index, by the model or by the shadow mask), in
        product order."""
        wanted = set(self.bands) | {b for spec in self.specs for b in spec.bands} | set(MODEL_BANDS)
        wanted |= set(SHADOW_BANDS) if self.cloud.shadows else set()
        return [b for b in S2_BANDS if b in wanted]

    @property
    def pixel_clouds(self) -> bool:
        """Whether the per-pixel cloud mask is computed (asked for, or needed by water or a CLP/CLM index)."""
        return self.cloud.pixel or self.water is not None or any(spec.cloud_layers for spec in self.specs)


@dataclass(frozen=True)
class TimeSeriesRequest:
    """A polygon time-series query: the :class:`Area` and :class:`TimeRange` asked about, and its options."""

    area: Area
    time: TimeRange
    options: QueryOptions = field(default_factory=QueryOptions)

    @classmethod
    def from_dict(cls, data: Any, *, limits: Limits | None = None) -> TimeSeriesRequest:
        """Parse the native request body (``geometry``, ``crs``, ``time`` and the option fields); every field
        but ``geometry`` and ``time`` has a default. ``limits`` bound the vertices (the days are checked
        when the request runs, :func:`stats.pipeline.query_timeseries`)."""
        limits = limits or Limits()
        if not isinstance(data, dict):
            raise InvalidRequestError(f"request body: expected a JSON object, got {type(data).__name__}")
        known_fields(data, _REQUEST_FIELDS | _OPTION_FIELDS, "request body")
        if "geometry" not in data or data["geometry"] in (None, "", {}):
            raise InvalidRequestError("geometry: missing; expected a GeoJSON geometry/Feature or a WKT string")
        if "time" not in data:
            raise InvalidTimeRangeError("time: missing; expected {'from': '2023-01-01', 'to': '2023-12-31'}")
        crs = data.get("crs", "EPSG:4326")
        if not isinstance(crs, str):
            raise InvalidRequestError(f"crs: expected a string such as 'EPSG:4326', got {crs!r:.80}")
        time_range = TimeRange.parse(data["time"])
        options = QueryOptions.from_dict({k: v for k, v in data.items() if k in _OPTION_FIELDS}, "request body",
                                         crs=crs, max_vertices=limits.max_vertices)
        area = Area.parse(data["geometry"], crs, max_vertices=limits.max_vertices)
        return cls(area, time_range, options)
