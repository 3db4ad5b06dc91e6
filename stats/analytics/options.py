"""The analytics fields of a time-series request: ``aggregation``, ``fill`` and ``season``, parsed once.

``aggregation`` composites the acquisitions into regular intervals; ``fill`` fills the gaps of chosen
series and smooths them onto the acquisition dates or a regular grid; ``season`` finds a vegetation
index's start, peak and end of season on the filled daily curve. Each is absent (None) unless asked for.
Which names they may refer to (the request's bands, indices and statistics) is checked by
:meth:`AnalyticsOptions.check` once the rest of the request is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..errors import InvalidRequestError
from ..fields import integer, known_fields, number, obj
from .intervals import LAST_INTERVAL, Duration

AggregationMethod = Literal["mean", "median", "max", "last"]
AGGREGATION_METHODS: tuple[str, ...] = ("mean", "median", "max", "last")
FillMethod = Literal["linear", "savgol", "whittaker"]
FILL_METHODS: tuple[str, ...] = ("linear", "savgol", "whittaker")
FillWeights = Literal["clear", "cloud_probability", "clear_fraction"]
FILL_WEIGHTS: tuple[str, ...] = ("clear", "cloud_probability", "clear_fraction")

#: Whittaker smoothing parameter on the daily grid (second differences): larger is smoother.
DEFAULT_LAMBDA = 500.0
#: Savitzky–Golay window (days, odd) and polynomial order on the daily grid.
DEFAULT_WINDOW_DAYS = 31
DEFAULT_ORDER = 2
#: TIMESAT's basic rule: the season starts and ends where the curve crosses 20 % of its amplitude.
DEFAULT_SEASON_FRACTION = 0.2


@dataclass(frozen=True)
class AggregationOptions:
    """Regular intervals of ``interval`` from the range's start; each composites its clear dates by
    ``method`` (``mean``/``median`` of every statistic, ``max``: the date with the highest mean of
    ``index``, ``last``: the last clear date)."""

    interval: Duration
    interval_text: str
    method: AggregationMethod = "mean"
    index: str | None = None
    last_interval: str = "SHORTEN"

    @classmethod
    def from_dict(cls, data: Any) -> AggregationOptions | None:
        """Parse ``{"interval": "P10D", "method": "mean"}`` (or a bare ``"P10D"``); absent or null for none."""
        if data is None:
            return None
        if isinstance(data, str):
            data = {"interval": data}
        data = obj(data, "aggregation")
        known_fields(data, ("interval", "method", "index", "last_interval"), "aggregation")
        if "interval" not in data:
            raise InvalidRequestError("aggregation.interval: missing; expected an ISO-8601 duration such as 'P10D'")
        interval = Duration.parse(data["interval"], "aggregation.interval")
        method = data.get("method", "mean")
        if method not in AGGREGATION_METHODS:
            raise InvalidRequestError(
                f"aggregation.method: expected one of {list(AGGREGATION_METHODS)}, got {method!r:.80}")
        last = data.get("last_interval", "SHORTEN")
        if last not in LAST_INTERVAL:
            raise InvalidRequestError(
                f"aggregation.last_interval: expected one of {list(LAST_INTERVAL)}, got {last!r:.80}")
        index = data.get("index")
        if index is not None and not isinstance(index, str):
            raise InvalidRequestError(f"aggregation.index: expected an index name such as 'NDVI', got {index!r:.80}")
        if index is not None and method != "max":
            raise InvalidRequestError(
                f"aggregation.index: only the 'max' method picks a date by an index; got method {method!r}")
        return cls(interval, str(data["interval"]).strip().upper(), method, index.upper() if index else None, last)


@dataclass(frozen=True)
class FillOptions:
    """Gap filling and smoothing of the ``statistic`` of each of ``variables`` (bands or indices).

    ``method``: ``linear`` interpolation between clear dates, ``savgol`` (Savitzky–Golay of ``order``
    over ``window_days`` on the daily linear interpolation), or ``whittaker`` (penalised least squares of
    second differences with ``smoothing`` λ on the daily grid, each date weighted by ``weights``). The
    curve is given on the series' dates (``grid`` None) or on a regular grid of ``grid`` from the range's
    start.
    """

    method: FillMethod = "whittaker"
    variables: tuple[str, ...] = ()
    statistic: str = "mean"
    grid: Duration | None = None
    grid_text: str = "dates"
    weights: FillWeights = "clear"
    smoothing: float = DEFAULT_LAMBDA
    window_days: int = DEFAULT_WINDOW_DAYS
    order: int = DEFAULT_ORDER

    @classmethod
    def from_dict(cls, data: Any) -> FillOptions | None:
        """Parse ``{"method": "whittaker", "grid": "P5D"}`` (or a bare method name); absent or null for none."""
        if data is None:
            return None
        if isinstance(data, str):
            data = {"method": data}
        data = obj(data, "fill")
        known_fields(data, ("method", "variables", "statistic", "grid", "weights", "smoothing", "window_days",
                            "order"), "fill")
        method = data.get("method", "whittaker")
        if method not in FILL_METHODS:
            raise InvalidRequestError(f"fill.method: expected one of {list(FILL_METHODS)}, got {method!r:.80}")
        variables = data.get("variables", [])
        if not isinstance(variables, list) or not all(isinstance(v, str) for v in variables):
            raise InvalidRequestError(
                f"fill.variables: expected a list of band or index names such as ['NDVI'], got {variables!r:.80}")
        statistic = data.get("statistic", "mean")
        if not isinstance(statistic, str):
            raise InvalidRequestError(
                f"fill.statistic: expected a statistic name such as 'mean', got {statistic!r:.80}")
        grid_value = data.get("grid", "dates")
        grid = None if grid_value == "dates" else Duration.parse(grid_value, "fill.grid")
        weights = data.get("weights", "clear")
        if weights not in FILL_WEIGHTS:
            raise InvalidRequestError(f"fill.weights: expected one of {list(FILL_WEIGHTS)}, got {weights!r:.80}")
        if weights != "clear" and method != "whittaker":
            raise InvalidRequestError(
                f"fill.weights: {weights!r} weights the whittaker smoother only; got method {method!r}")
        window = integer(data.get("window_days", DEFAULT_WINDOW_DAYS), "fill.window_days", 3, 365, "days")
        order = integer(data.get("order", DEFAULT_ORDER), "fill.order", 1, 5)
        if window % 2 == 0 or order >= window:
            raise InvalidRequestError(
                f"fill.window_days: expected an odd number of days larger than fill.order ({order}), got {window}")
        return cls(method=method, variables=tuple(v.upper() for v in variables), statistic=statistic.lower(),
                   grid=grid, grid_text="dates" if grid is None else str(grid_value).strip().upper(),
                   weights=weights, window_days=window, order=order,
                   smoothing=number(data.get("smoothing", DEFAULT_LAMBDA), "fill.smoothing", 1e-3, 1e9))


@dataclass(frozen=True)
class SeasonOptions:
    """Season metrics of ``index`` (its ``mean``): the season starts where the filled curve rises above
    its left minimum plus ``start`` × the left amplitude, and ends where it falls below its right minimum
    plus ``end`` × the right amplitude (TIMESAT's amplitude rule), around the curve's highest peak."""

    index: str
    start: float = DEFAULT_SEASON_FRACTION
    end: float = DEFAULT_SEASON_FRACTION

    @classmethod
    def from_dict(cls, data: Any) -> SeasonOptions | None:
        """Parse ``{"index": "NDVI", "start": 0.2, "end": 0.2}`` (or a bare index name); absent for none."""
        if data is None:
            return None
        if isinstance(data, str):
            data = {"index": data}
        data = obj(data, "season")
        known_fields(data, ("index", "start", "end"), "season")
        index = data.get("index")
        if not isinstance(index, str) or not index:
            raise InvalidRequestError(
                f"season.index: expected a requested index name such as 'NDVI', got {index!r:.80}")
        return cls(index.upper(), number(data.get("start", DEFAULT_SEASON_FRACTION), "season.start", 0.01, 0.99),
                   number(data.get("end", DEFAULT_SEASON_FRACTION), "season.end", 0.01, 0.99))


@dataclass(frozen=True)
class AnalyticsOptions:
    """The analytics asked for (each None when not)."""

    aggregation: AggregationOptions | None = None
    fill: FillOptions | None = None
    season: SeasonOptions | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalyticsOptions:
        """Parse the ``aggregation``, ``fill`` and ``season`` fields of a request body."""
        return cls(AggregationOptions.from_dict(data.get("aggregation")), FillOptions.from_dict(data.get("fill")),
                   SeasonOptions.from_dict(data.get("season")))

    @property
    def requested(self) -> bool:
        """Whether any analytics are asked for."""
        return self.aggregation is not None or self.fill is not None or self.season is not None

    def check(self, bands: tuple[str, ...], indices: tuple[str, ...], statistics: tuple[str, ...], *,
              averaged: bool, pixel: bool) -> AnalyticsOptions:
        """Check the names these options refer to against the request's (``averaged``/``pixel``: whether
        the averaged-pixel probability and the per-pixel cloud fraction are computed); fill in the default
        variables (the requested indices, else the bands) and return the completed options."""
        fill, aggregation = self.fill, self.aggregation
        if fill is not None and fill.weights == "cloud_probability" and not averaged:
            raise InvalidRequestError("fill.weights: 'cloud_probability' needs the averaged pixel; expected "
                                      "cloud.mode 'averaged' or 'both', or weights 'clear_fraction'")
        if fill is not None and fill.weights == "clear_fraction" and not pixel:
            raise InvalidRequestError("fill.weights: 'clear_fraction' needs the per-pixel cloud mask; expected "
                                      "cloud.mode 'pixel' or 'both', or weights 'cloud_probability'")
        if aggregation is not None and aggregation.method == "max":
            index = aggregation.index or (indices[0] if indices else None)
            if index not in indices:
                raise InvalidRequestError(
                    f"aggregation.index: the 'max' method needs one of the requested indices {list(indices)}, got "
                    f"{index!r}; add it to 'indices'")
            aggregation = AggregationOptions(aggregation.interval, aggregation.interval_text, "max", index,
                                             aggregation.last_interval)
        if fill is not None:
            variables = fill.variables or indices or bands
            unknown = [v for v in variables if v not in bands and v not in indices]
            if unknown:
                raise InvalidRequestError(
                    f"fill.variables: {unknown} are not among the requested bands {list(bands)} or indices "
                    f"{list(indices)}")
            if fill.statistic not in statistics:
                raise InvalidRequestError(
                    f"fill.statistic: {fill.statistic!r} is not among the requested statistics {list(statistics)}")
            fill = FillOptions(fill.method, tuple(variables), fill.statistic, fill.grid, fill.grid_text, fill.weights,
                               fill.smoothing, fill.window_days, fill.order)
        if self.season is not None:
            if self.season.index not in indices:
                raise InvalidRequestError(
                    f"season.index: {self.season.index!r} is not among the requested indices {list(indices)}; add it "
                    "to 'indices'")
            if "mean" not in statistics:
                raise InvalidRequestError("season: works on the index's mean; add 'mean' to 'statistics'")
        return AnalyticsOptions(aggregation, fill, self.season)
