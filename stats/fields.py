"""Checks of single request fields: numbers, integers in a range, flags, percentages and objects.

Each check takes the value as received and the field's name, and either returns the value in its Python
type or raises :class:`~stats.errors.InvalidRequestError` with a message naming the field, what was
received and what was expected. Every parser of the engine (native requests, FIS, Statistical API, batch
jobs) uses these, so that one field is checked the same way everywhere.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .errors import InvalidRequestError


def is_finite_number(value: Any) -> bool:
    """True for an int or float that is finite as a float (bools are not numbers here).

    >>> is_finite_number(1.5), is_finite_number(float("nan")), is_finite_number(10 ** 400), is_finite_number(True)
    (True, False, False, False)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def integer(value: Any, name: str, low: int, high: int, unit: str = "", *, text: bool = False,
            got_first: bool = False) -> int:
    """An integer (not a bool) from ``low`` to ``high``; with ``text``, also its decimal text (as OGC
    parameters arrive). ``got_first`` words the message as Sentinel Hub's routes do ("got X; expected ...").

    >>> integer(3, "bins", 1, 10), integer("7", "BINS", 1, 10, text=True)
    (3, 7)
    >>> integer(True, "bins", 1, 10)
    Traceback (most recent call last):
    ...
    stats.errors.InvalidRequestError: bins: expected an integer from 1 to 10, got True
    """
    parsed = value
    if text and isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]{1,20}\s*", value):
        parsed = int(value)
    if isinstance(parsed, bool) or not isinstance(parsed, int) or not low <= parsed <= high:
        raise _out_of_range(name, value, f"an integer from {low} to {high}", unit, got_first)
    return parsed


def _out_of_range(name: str, value: Any, expected: str, unit: str, got_first: bool) -> InvalidRequestError:
    """The error of a value outside its range, worded as the native or the Sentinel Hub routes word it."""
    expected += f" ({unit})" if unit else ""
    return InvalidRequestError(f"{name}: got {value!r:.80}; expected {expected}" if got_first
                               else f"{name}: expected {expected}, got {value!r:.80}")


def number(value: Any, name: str, low: float, high: float, unit: str = "", *, text: bool = False,
           got_first: bool = False) -> float:
    """A finite number from ``low`` to ``high``, as a float; ``text`` and ``got_first`` as for :func:`integer`.

    >>> number("20", "MAXCC", 0, 100, "percent", text=True)
    20.0
    """
    parsed = value
    if text and isinstance(value, str):
        try:
            parsed = float(value)
        except ValueError:
            parsed = None
    if not is_finite_number(parsed) or not low <= parsed <= high:
        raise _out_of_range(name, value, f"a number between {low:g} and {high:g}", unit, got_first)
    return float(parsed)


def unit_interval(value: Any, name: str) -> float:
    """A number between 0 and 1."""
    return number(value, name, 0, 1)


def optional_percent(value: Any, name: str, *, text: bool = False, got_first: bool = False) -> float | None:
    """None (or empty text), or a number between 0 and 100 (percent)."""
    if value is None or (text and value == ""):
        return None
    return number(value, name, 0, 100, "percent", text=text, got_first=got_first)


def flag(value: Any, name: str, default: bool) -> bool:
    """``true`` or ``false``; ``default`` when absent (None)."""
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidRequestError(f"{name}: expected true or false, got {value!r:.80}")
    return value


def obj(value: Any, name: str) -> dict[str, Any]:
    """A JSON object; an empty one when absent (None)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{name}: expected an object, got {value!r:.80}")
    return value


def known_fields(data: dict[str, Any], allowed: frozenset[str] | set[str] | tuple[str, ...], name: str) -> None:
    """Reject fields of ``data`` outside ``allowed``, naming them and the fields expected."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise InvalidRequestError(f"{name}: unknown fields {unknown}; expected fields among {sorted(allowed)}")
