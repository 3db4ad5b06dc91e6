"""Render engine results as JSON or CSV.

JSON: dates as ISO-8601 strings (the engine's ``to_dict`` already formats them), ``null`` never NaN.
CSV: a header row then one row per date; empty cells for missing values; booleans as ``true``/``false``.
The output format is chosen by ``?format=json|csv`` or else by the ``Accept`` header.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Request, Response

from stats.errors import MalformedRequestError

FORMATS = ("json", "csv")


def choose_format(request: Request) -> str:
    """``json`` or ``csv`` from ``?format=`` (wins) or the Accept header; JSON by default."""
    fmt = request.args.get("format")
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise MalformedRequestError(
                f"format: unknown output format {request.args.get('format')!r}; expected 'json' or 'csv'")
        return fmt
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"], default="application/json")
    return "csv" if best == "text/csv" else "json"


def json_response(body: Any, status: int = 200) -> Response:
    """A JSON response; NaN or Infinity in ``body`` is a bug and raises instead of being sent."""
    text = json.dumps(body, allow_nan=False, separators=(",", ":"))
    return Response(text, status=status, mimetype="application/json")


def csv_response(text: str, filename: str = "timeseries.csv") -> Response:
    """A CSV attachment response."""
    response = Response(text, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
