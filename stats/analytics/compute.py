"""The analytics of one series: intervals, filled curves and season metrics, from its observations."""

from __future__ import annotations

from ..request import QueryOptions, TimeRange
from .composite import composite
from .options import FillOptions
from .outputs import Analytics
from .season import season_metrics
from .series import Observations, columns_of
from .smoothing import daily, fill


def analyse(obs: Observations, options: QueryOptions, time: TimeRange) -> Analytics | None:
    """What ``options.analytics`` asks for, computed on ``obs``; None when nothing is asked."""
    wanted = options.analytics
    if not wanted.requested:
        return None
    intervals = curves = season = None
    if wanted.aggregation is not None:
        intervals = composite(obs, wanted.aggregation, time, columns_of(options))
    if wanted.fill is not None:
        curves = fill(obs, wanted.fill, time)
    if wanted.season is not None:
        smoother = wanted.fill or FillOptions(variables=(wanted.season.index,))
        season = season_metrics(daily(obs, smoother, wanted.season.index, "mean"), wanted.season)
    return Analytics(intervals, curves, season)
