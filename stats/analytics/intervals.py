"""Calendar arithmetic of regular intervals: ISO-8601 durations of whole days, weeks, months or years.

One rule serves the Statistical API's ``aggregationInterval``, the native ``aggregation.interval`` and the
output grid of gap filling (``fill.grid``). A month step keeps the day of the month where it exists and
takes the month's last day otherwise (31 January + P1M is 28 or 29 February).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidRequestError

#: ``lastIntervalBehavior`` values: drop, cut at the range's end, or keep the last interval whole.
LAST_INTERVAL = ("SKIP", "SHORTEN", "EXTEND")
#: Most intervals one request may ask for.
MAX_INTERVALS = 10_000

_DURATION = re.compile(r"^P(?:(\d{1,5})Y)?(?:(\d{1,6})M)?(?:(\d{1,6})W)?(?:(\d{1,7})D)?$")


@dataclass(frozen=True)
class Duration:
    """A calendar step: months (years are 12 months) and days (weeks are 7 days)."""

    months: int
    days: int

    @classmethod
    def parse(cls, value: Any, name: str) -> Duration:
        """Parse ``P5D``, ``P2W``, ``P1M``, ``P1Y``, ``P1M15D``...; the error names ``name``.

        >>> Duration.parse("P1Y2W", "interval")
        Duration(months=12, days=14)
        """
        match = _DURATION.match(value.strip().upper()) if isinstance(value, str) else None
        if match is None or not any(int(g or 0) for g in match.groups()):
            raise InvalidRequestError(
                f"{name}: got {value!r:.80}; expected an ISO-8601 duration of whole days, weeks, months or years "
                "such as 'P1D', 'P5D', 'P1M'")
        years, months, weeks, days = (int(g or 0) for g in match.groups())
        return cls(12 * years + months, 7 * weeks + days)

    @property
    def is_days(self) -> bool:
        """Whether the step is a fixed number of days (no months)."""
        return self.months == 0

    def after(self, when: dt.datetime, name: str) -> dt.datetime:
        """``when`` plus this step; a date past year 9999 is a 400 naming ``name``."""
        try:
            month = when.month - 1 + self.months
            year = when.year + month // 12
            month = month % 12 + 1
            day = min(when.day, calendar.monthrange(year, month)[1])
            return when.replace(year=year, month=month, day=day) + dt.timedelta(days=self.days)
        except (ValueError, OverflowError) as exc:
            raise InvalidRequestError(
                f"{name}: a step of {self.months} months and {self.days} days from {when.date().isoformat()} "
                "goes past the year 9999; expected a shorter interval") from exc


def intervals(start: dt.datetime, end: dt.datetime, of: Any, last: Any = "SKIP", *,
              name: str = "aggregation.aggregationInterval.of",
              last_name: str = "aggregation.aggregationInterval.lastIntervalBehavior",
              within: tuple[dt.datetime, dt.datetime] | None = None,
              ) -> list[tuple[dt.datetime, dt.datetime]]:
    """Intervals ``[from, to)`` of length ``of`` (a :class:`Duration` or its text) from ``start`` up to
    ``end``; ``last`` says what to do with an interval that would pass ``end`` (``SKIP`` it, ``SHORTEN`` it
    to ``end``, ``EXTEND``: keep it whole). Errors name the fields ``name`` (the step) and ``last_name``.

    ``within`` (an archive's first and last acquisition times) keeps only the intervals that can hold an
    acquisition, on the same boundaries as the whole range; only those count against :data:`MAX_INTERVALS`.

    >>> day = dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc)
    >>> [(a.day, b.day) for a, b in intervals(day, day + dt.timedelta(days=5), "P2D")]
    [(1, 3), (3, 5)]
    >>> [(a.day, b.day) for a, b in intervals(day, day + dt.timedelta(days=5), "P2D", "SHORTEN")]
    [(1, 3), (3, 5), (5, 6)]
    """
    step = of if isinstance(of, Duration) else Duration.parse(of, name)
    if last not in LAST_INTERVAL:
        raise InvalidRequestError(f"{last_name}: got {last!r:.80}; expected one of {list(LAST_INTERVAL)}")
    out = []
    current = start
    if within is not None and step.is_days:
        # fixed steps: jump to just before the first acquisition, and not past the range's last whole step
        # (the same boundaries, without walking there)
        skip = min((within[0] - current).days, (end - current).days) // step.days - 1
        current += dt.timedelta(days=step.days * max(skip, 0))
    while current < end:
        if within is not None and current > within[1]:
            break
        nxt = step.after(current, name)
        if nxt > end:
            if last == "SKIP":
                break
            if last == "SHORTEN":
                nxt = end
        if within is None or nxt > within[0]:
            out.append((current, nxt))
        current = nxt
        if len(out) > MAX_INTERVALS:
            raise InvalidRequestError(
                f"{name}: more than {MAX_INTERVALS} intervals; expected a longer interval or a shorter range")
    return out
