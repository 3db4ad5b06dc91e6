"""The analytics asked for, computed on the observations of one polygon or of every polygon of a batch."""

from __future__ import annotations

from ..request import QueryOptions, TimeRange
from .composite import composite
from .options import FillOptions
from .outputs import Analytics, SeasonTable
from .season import seasons
from .series import Observations, columns_of
from .smoothing import DailyCurve, daily_curves, fill


def analyse(obs: Observations, options: QueryOptions, time: TimeRange) -> Analytics | None:
    """What ``options.analytics`` asks for, computed on ``obs``; None when nothing is asked."""
    wanted = options.analytics
    if not wanted.requested:
        return None
    intervals = curves = season = None
    daily: dict[str, list[DailyCurve]] = {}
    if wanted.aggregation is not None:
        intervals = composite(obs, wanted.aggregation, time, columns_of(options))
    if wanted.fill is not None:
        curves, daily = fill(obs, wanted.fill, time)
    if wanted.season is not None:
        name = wanted.season.index
        smoother = wanted.fill or FillOptions(variables=(name,))
        reuse = wanted.fill is not None and wanted.fill.statistic == "mean" and name in daily
        per_polygon = daily[name] if reuse else daily_curves(obs, smoother, name, "mean")
        season = SeasonTable(seasons(per_polygon, wanted.season))
    return Analytics(intervals, curves, season)
