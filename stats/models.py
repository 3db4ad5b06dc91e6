"""Requests and results of the time-series engine, with one schema for JSON and CSV.

:class:`TimeSeriesRequest` is built from a plain dict (the native JSON body) by :meth:`from_dict`, which
parses and checks each parameter in one place and raises :class:`~stats.errors.InvalidRequestError`
subclasses naming the field, what was received and what was expected.
:class:`TimeSeriesResult` turns back into a dict (:meth:`to_dict`) or CSV rows (:meth:`to_rows`); both
use the statistic names of :mod:`stats.zonal` and write ``None`` (JSON null, an empty CSV cell), never NaN.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .bands import RESOLUTIONS, S2_BANDS
from .cloud import DEFAULT_THRESHOLD
from .cloudmask import (
    DEFAULT_CLOUD_RESOLUTION,
    SENTINELHUB_AVERAGE_OVER,
    SENTINELHUB_DILATION_SIZE,
    MaskParameters,
)
from .errors import InvalidRequestError, InvalidTimeRangeError, UnknownBandError
from .geometry import is_finite_number
from .indices import BUILTIN_INDICES, IndexSpec, resolve_index
from .zonal import DEFAULT_STATISTICS, HISTOGRAM_KINDS, MAX_BINS, HistogramKind, validate_statistics

Number = float | int | None
Stats = dict[str, Number]

_REQUEST_FIELDS = {
    "geometry", "crs", "time", "bands", "indices", "statistics", "resolution", "cloud", "harmonize",
    "max_cloud_cover", "include_empty", "water", "histogram", "exact",
}


CloudMode = Literal["averaged", "pixel", "both"]
CLOUD_MODES: tuple[str, ...] = ("averaged", "pixel", "both")
_CLOUD_FIELDS = ("threshold", "max_probability", "mode", "resolution", "average_over", "dilation_size", "mask",
                 "max_fraction")


@dataclass(frozen=True)
class CloudOptions:
    """Cloud options.

    ``mode``: ``averaged`` classifies the polygon's averaged pixel (``cloudy = probability >= threshold``);
    ``pixel`` scores cloud cells of ``resolution`` m and masks them (``p > threshold`` after averaging over
    ``average_over`` cells and dilating by ``dilation_size`` cells, see :mod:`stats.cloudmask`); ``both``
    does both and says when they disagree. ``mask`` computes the statistics over clear pixels only.
    ``max_probability`` drops dates by the averaged probability, ``max_fraction`` by the cloud fraction.
    """

    threshold: float = DEFAULT_THRESHOLD
    max_probability: float | None = None
    mode: CloudMode = "averaged"
    resolution: int = DEFAULT_CLOUD_RESOLUTION
    average_over: int = SENTINELHUB_AVERAGE_OVER
    dilation_size: int = SENTINELHUB_DILATION_SIZE
    mask: bool = False
    max_fraction: float | None = None

    @property
    def averaged(self) -> bool:
        """Whether the averaged pixel is classified."""
        return self.mode in ("averaged", "both")

    @property
    def pixel(self) -> bool:
        """Whether cloud cells are scored and masked."""
        return self.mode in ("pixel", "both") or self.mask

    @property
    def mask_parameters(self) -> MaskParameters:
        """Parameters of the per-pixel mask."""
        return MaskParameters(self.resolution, self.threshold, self.average_over, self.dilation_size)

    @classmethod
    def from_dict(cls, data: Any) -> CloudOptions:
        """Parse the ``cloud`` object of a request."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise InvalidRequestError(f"cloud: expected an object such as {{'threshold': 0.4}}, got {data!r:.80}")
        unknown = sorted(set(data) - set(_CLOUD_FIELDS))
        if unknown:
            raise InvalidRequestError(f"cloud: unknown fields {unknown}; expected fields among {list(_CLOUD_FIELDS)}")
        mode = data.get("mode", "averaged")
        if mode not in CLOUD_MODES:
            raise InvalidRequestError(f"cloud.mode: expected one of {list(CLOUD_MODES)}, got {mode!r}")
        resolution = data.get("resolution", DEFAULT_CLOUD_RESOLUTION)
        if isinstance(resolution, bool) or not isinstance(resolution, int) or not (
                10 <= resolution <= 160 and resolution % 10 == 0):
            raise InvalidRequestError(
                f"cloud.resolution: expected a multiple of 10 m from 10 to 160, got {resolution!r}")
        radii = {}
        for name, default in (("average_over", SENTINELHUB_AVERAGE_OVER), ("dilation_size", SENTINELHUB_DILATION_SIZE)):
            value = data.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 20:
                raise InvalidRequestError(f"cloud.{name}: expected an integer from 0 to 20 (cells), got {value!r}")
            radii[name] = value
        max_p = data.get("max_probability")
        max_f = data.get("max_fraction")
        options = cls(
            threshold=_unit_interval(data.get("threshold", DEFAULT_THRESHOLD), "cloud.threshold"),
            max_probability=None if max_p is None else _unit_interval(max_p, "cloud.max_probability"),
            mode=mode,
            resolution=resolution,
            mask=_flag(data.get("mask"), "cloud.mask", False),
            max_fraction=None if max_f is None else _unit_interval(max_f, "cloud.max_fraction"),
            **radii,
        )
        if options.max_probability is not None and not options.averaged:
            raise InvalidRequestError(
                "cloud.max_probability: filters on the averaged pixel, which cloud.mode 'pixel' does not compute; "
                "expected cloud.mode 'averaged' or 'both', or cloud.max_fraction"
            )
        if options.max_fraction is not None and not options.pixel:
            raise InvalidRequestError(
                "cloud.max_fraction: needs the per-pixel mask; expected cloud.mode 'pixel' or 'both'"
            )
        return options


WaterMethod = Literal["threshold", "otsu"]


@dataclass(frozen=True)
class WaterOptions:
    """Water extent from an index over the clear pixels: water where ``index > threshold`` (``method``
    ``threshold``) or above Otsu's threshold of the date's values (``otsu``). Dates whose polygon is less
    than ``1 - max_cloud_fraction`` clear are flagged, not estimated."""

    method: WaterMethod = "threshold"
    threshold: float = 0.0
    index: str = "NDWI"
    max_cloud_fraction: float = 0.2

    @classmethod
    def from_dict(cls, data: Any) -> WaterOptions | None:
        """Parse the ``water`` object of a request (``true`` for all defaults; absent or null for none)."""
        if data is None or data is False:
            return None
        if data is True:
            return cls()
        if not isinstance(data, dict):
            raise InvalidRequestError(f"water: expected an object such as {{'method': 'otsu'}} or true, got {data!r:.80}")
        unknown = sorted(set(data) - {"method", "threshold", "index", "max_cloud_fraction"})
        if unknown:
            raise InvalidRequestError(
                f"water: unknown fields {unknown}; expected 'method', 'threshold', 'index', 'max_cloud_fraction'")
        method = data.get("method", "threshold")
        if method not in ("threshold", "otsu"):
            raise InvalidRequestError(f"water.method: expected 'threshold' or 'otsu', got {method!r}")
        threshold = data.get("threshold", 0.0)
        if not is_finite_number(threshold) or not -1 <= threshold <= 1:
            raise InvalidRequestError(f"water.threshold: expected a number from -1 to 1, got {threshold!r}")
        index = data.get("index", "NDWI")
        if not isinstance(index, str) or index.upper() not in BUILTIN_INDICES:
            raise InvalidRequestError(
                f"water.index: expected a built-in index name such as 'NDWI', got {index!r:.60}")
        return cls(method=method, threshold=float(threshold), index=str(index).upper(),
                   max_cloud_fraction=_unit_interval(data.get("max_cloud_fraction", 0.2), "water.max_cloud_fraction"))


def _unit_interval(value: Any, name: str) -> float:
    if not is_finite_number(value) or not 0 <= value <= 1:
        raise InvalidRequestError(f"{name}: expected a number between 0 and 1, got {value!r}")
    return float(value)


def parse_datetime(value: Any, name: str, *, end_of_day: bool = False) -> dt.datetime:
    """Parse an ISO-8601 date or date-time; a bare date is the day's start (or end with ``end_of_day``).

    Naive date-times are UTC. The result is timezone-aware UTC.

    >>> parse_datetime("2023-03-05", "time.to", end_of_day=True).isoformat()
    '2023-03-05T23:59:59.999999+00:00'
    """
    if not isinstance(value, str):
        raise InvalidTimeRangeError(f"{name}: expected an ISO-8601 date such as '2023-01-31', got {value!r}")
    text = value.strip()
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        day = None
    if day is not None:
        clock = dt.time.max if end_of_day else dt.time.min
        return dt.datetime.combine(day, clock, tzinfo=dt.timezone.utc)
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        return parsed.astimezone(dt.timezone.utc)
    except (ValueError, OverflowError) as exc:
        raise InvalidTimeRangeError(
            f"{name}: cannot parse {value!r}; expected an ISO-8601 date '2023-01-31' or date-time "
            "'2023-01-31T10:00:00Z'"
        ) from exc


def parse_time_range(data: Any) -> tuple[dt.datetime, dt.datetime]:
    """Parse ``{"from": ..., "to": ...}`` (or a ``"from/to"`` string) into an inclusive UTC range."""
    if isinstance(data, str) and "/" in data:
        start_text, _, end_text = data.partition("/")
        data = {"from": start_text, "to": end_text}
    if not isinstance(data, dict) or "from" not in data or "to" not in data or set(data) - {"from", "to"}:
        raise InvalidTimeRangeError(
            f"time: expected an object {{'from': '2023-01-01', 'to': '2023-12-31'}}, got {data!r:.80}"
        )
    start = parse_datetime(data["from"], "time.from")
    end = parse_datetime(data["to"], "time.to", end_of_day=True)
    if end < start:
        raise InvalidTimeRangeError(
            f"time: 'from' ({data['from']}) is after 'to' ({data['to']}); expected from <= to"
        )
    return start, end


def parse_bands(value: Any) -> tuple[str, ...]:
    """Band names in request order; default all 13. Names are case-insensitive ("b8a" -> "B8A")."""
    if value is None:
        return S2_BANDS
    if not isinstance(value, list) or not value:
        raise UnknownBandError(f"bands: expected a non-empty list of band names such as ['B04', 'B08'], got {value!r:.80}")
    out: list[str] = []
    for item in value:
        name = item.upper() if isinstance(item, str) else item
        if name not in S2_BANDS:
            raise UnknownBandError(f"bands: unknown band {item!r}; expected one of {list(S2_BANDS)}")
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
        raise InvalidRequestError(f"resolution: expected one of {list(RESOLUTIONS)} (metres), got {raw!r}")
    return int(value)


def _optional_percent(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if not is_finite_number(value) or not 0 <= value <= 100:
        raise InvalidRequestError(f"{name}: expected a number between 0 and 100 (percent), got {value!r}")
    return float(value)


def _flag(value: Any, name: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidRequestError(f"{name}: expected true or false, got {value!r}")
    return value


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
        bins = data.get("bins", 10)
        if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= MAX_BINS:
            raise InvalidRequestError(f"histogram.bins: expected an integer from 1 to {MAX_BINS}, got {bins!r}")
        kind = data.get("type", "equalfrequency")
        if not isinstance(kind, str) or kind.lower() not in HISTOGRAM_KINDS:
            raise InvalidRequestError(f"histogram.type: expected one of {list(HISTOGRAM_KINDS)}, got {kind!r}")
        return cls(bins=bins, kind=kind.lower())  # type: ignore[arg-type]


@dataclass(frozen=True)
class TimeSeriesRequest:
    """A polygon time-series query.

    ``geometry`` is GeoJSON (dict) or WKT in ``crs`` (lon/lat order for EPSG:4326); ``start``/``end``
    bound acquisition times inclusively (UTC). ``bands`` are reported with ``statistics``; ``indices``
    are computed per pixel. ``resolution`` is the nominal grid (10, 20 or 60 m). ``harmonize`` removes
    the baseline 04.00 offset. ``max_cloud_cover`` (0–100) filters tiles by their ``eo:cloud_cover``.
    ``include_empty`` keeps dates with no valid pixel in the polygon. ``exact`` weights each pixel by the
    fraction of its area inside the polygon (every pixel the polygon touches counts, ``count`` becomes the
    covered area in pixels), instead of counting the pixels whose centre is inside.
    """

    geometry: Any
    start: dt.datetime
    end: dt.datetime
    crs: str = "EPSG:4326"
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

    @classmethod
    def from_dict(cls, data: Any) -> TimeSeriesRequest:
        """Parse the native request body. Every field but ``geometry`` and ``time`` has a default."""
        if not isinstance(data, dict):
            raise InvalidRequestError(f"request body: expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - _REQUEST_FIELDS)
        if unknown:
            raise InvalidRequestError(f"request body: unknown fields {unknown}; expected fields among {sorted(_REQUEST_FIELDS)}")
        if "geometry" not in data or data["geometry"] in (None, "", {}):
            raise InvalidRequestError("geometry: missing; expected a GeoJSON geometry/Feature or a WKT string")
        if "time" not in data:
            raise InvalidTimeRangeError("time: missing; expected {'from': '2023-01-01', 'to': '2023-12-31'}")
        crs = data.get("crs", "EPSG:4326")
        if not isinstance(crs, str):
            raise InvalidRequestError(f"crs: expected a string such as 'EPSG:4326', got {crs!r}")
        start, end = parse_time_range(data["time"])
        return cls(
            geometry=data["geometry"],
            start=start,
            end=end,
            crs=crs,
            bands=parse_bands(data.get("bands")),
            indices=parse_indices(data.get("indices")),
            statistics=parse_statistics(data.get("statistics")),
            resolution=parse_resolution(data.get("resolution")),
            cloud=CloudOptions.from_dict(data.get("cloud")),
            harmonize=_flag(data.get("harmonize"), "harmonize", True),
            max_cloud_cover=_optional_percent(data.get("max_cloud_cover"), "max_cloud_cover"),
            include_empty=_flag(data.get("include_empty"), "include_empty", False),
            water=WaterOptions.from_dict(data.get("water")),
            histogram=HistogramOptions.from_dict(data.get("histogram")),
            exact=_exact(data),
        )


def _exact(data: dict[str, Any]) -> bool:
    exact = _flag(data.get("exact"), "exact", False)
    if exact and data.get("histogram") not in (None, False):
        raise InvalidRequestError("exact: histograms count whole pixels and are not weighted by coverage; "
                                  "expected exact false (or absent) when a histogram is requested")
    return exact


@dataclass(frozen=True)
class PixelCloud:
    """Per-pixel cloud result of one date over the polygon's valid pixels.

    ``fraction`` is the share of valid pixels under the cloud mask, ``probability_mean`` the mean CLP
    probability over them; ``clear_pixels + cloudy_pixels`` is the number of valid pixels.
    """

    fraction: float | None
    probability_mean: float | None
    clear_pixels: int
    cloudy_pixels: int


@dataclass(frozen=True)
class Water:
    """Water extent of one date: ``fraction`` of the clear pixels that are water, ``area_m2`` that fraction
    of the polygon's area, the ``threshold`` used; ``flag`` says why they are None (``cloudy``)."""

    fraction: float | None
    area_m2: float | None
    threshold: float | None
    flag: str | None = None


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
        cloud: dict[str, Any] = {"probability": _clean(self.cloud_probability), "cloudy": self.cloudy}
        if self.pixel_cloud is not None:
            pc = self.pixel_cloud
            cloud.update(fraction=_clean(pc.fraction), probability_mean=_clean(pc.probability_mean),
                         clear_pixels=pc.clear_pixels, cloudy_pixels=pc.cloudy_pixels,
                         trusted=self.warning is None, warning=self.warning)
        out["cloud"] = cloud
        out["pixels"] = {"valid": self.valid_pixels, "nodata": self.nodata_pixels}
        out["bands"] = {b: {k: _clean(v) for k, v in s.items()} for b, s in self.bands.items()}
        out["indices"] = {i: {k: _clean(v) for k, v in s.items()} for i, s in self.indices.items()}
        if self.water is not None:
            out["water"] = {"fraction": _clean(self.water.fraction), "area_m2": _clean(self.water.area_m2),
                            "threshold": _clean(self.water.threshold), "flag": self.water.flag}
        if self.histograms:
            out["histograms"] = {name: list(bins) for name, bins in self.histograms.items()}
        return out


def format_datetime(value: dt.datetime) -> str:
    """UTC ISO-8601 with a ``Z`` suffix, to the second (or microsecond when present)."""
    text = value.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat()
    return text + "Z"


def _clean(value: Number) -> Number:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


CSV_FIXED_COLUMNS = ("date", "cloud_probability", "cloudy", "valid_pixels", "nodata_pixels")
CSV_PIXEL_COLUMNS = ("cloud_fraction", "cloud_probability_mean", "clear_pixels", "cloudy_pixels", "cloud_warning")
CSV_WATER_COLUMNS = ("water_fraction", "water_area_m2", "water_threshold", "water_flag")


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

    @property
    def status(self) -> str:
        """``OK``, or ``PARTIAL`` when some dates carry an error."""
        return "PARTIAL" if any(d.error for d in self.series) else "OK"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``status``, ``series`` and ``summary``."""
        return {
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

    def columns(self) -> list[str]:
        """CSV header: fixed columns, the pixel-cloud and water columns when computed, ``<band>_<stat>``,
        ``<index>_<stat>``, then ``error``."""
        cols = list(CSV_FIXED_COLUMNS)
        cols += list(CSV_PIXEL_COLUMNS) if self.pixel_cloud else []
        cols += list(CSV_WATER_COLUMNS) if self.water else []
        cols += [f"{b}_{s}" for b in self.bands for s in self.statistics]
        cols += [f"{i}_{s}" for i in self.indices for s in self.statistics]
        return cols + ["error"]

    def to_rows(self) -> list[list[Any]]:
        """One row per date in :meth:`columns` order; None for missing values."""
        rows = []
        for d in self.series:
            row: list[Any] = [d.date.isoformat(), _clean(d.cloud_probability), d.cloudy, d.valid_pixels, d.nodata_pixels]
            if self.pixel_cloud:
                pc = d.pixel_cloud
                row += ([_clean(pc.fraction), _clean(pc.probability_mean), pc.clear_pixels, pc.cloudy_pixels, d.warning]
                        if pc is not None else [None] * len(CSV_PIXEL_COLUMNS))
            if self.water:
                w = d.water
                row += ([_clean(w.fraction), _clean(w.area_m2), _clean(w.threshold), w.flag]
                        if w is not None else [None] * len(CSV_WATER_COLUMNS))
            for names, table in ((self.bands, d.bands), (self.indices, d.indices)):
                for name in names:
                    values = table.get(name, {})
                    row += [_clean(values.get(s)) for s in self.statistics]
            row.append(d.error)
            rows.append(row)
        return rows

    def to_csv(self) -> str:
        """The series as CSV text: the :meth:`columns` header, then :meth:`to_rows`."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns())
        writer.writerows([csv_cell(v) for v in row] for row in self.to_rows())
        return buffer.getvalue()


def csv_cell(value: Any) -> Any:
    """A CSV cell: empty for None, ``true``/``false`` for booleans, the value otherwise."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def names(specs: Sequence[IndexSpec]) -> tuple[str, ...]:
    """Names of index specs, in order."""
    return tuple(s.name for s in specs)
