"""The JSON error body, and the handlers that answer every error with it.

Every error class, the HTTP layer's own included, is in ``stats/errors.py``, and its status comes from the one
table there (:func:`stats.errors.status_for`).

Every error reaches the client as ``{"error": {"status", "reason", "message", "code"}}``. Errors caused by
the caller are 4xx with the engine's message (which names the field, what was received and what was
expected); anything unexpected is logged with its traceback and answered with a generic 500 message.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import (
    HTTPException,
    InternalServerError,
    MethodNotAllowed,
    NotFound,
    RequestEntityTooLarge,
)

from stats.errors import OPERATOR_ERRORS, StatsError, error_code, status_for

log = logging.getLogger(__name__)


def error_body(status: int, message: str, code: str) -> dict[str, Any]:
    """The JSON error body (also written by the HTTP front, :mod:`service.server`, outside any app)."""
    return {"error": {"status": status, "reason": HTTPStatus(status).phrase, "message": message, "code": code}}


def error_response(status: int, message: str, code: str) -> tuple[Response, int]:
    """The JSON error body with ``status``."""
    return jsonify(error_body(status, message, code)), status


def register(app: Flask) -> None:
    """Install the error handlers on ``app``."""

    @app.errorhandler(StatsError)
    def _stats_error(exc: StatsError) -> tuple[Response, int]:
        status = status_for(exc)
        if status >= 500:
            log.error("engine error: %s", exc, exc_info=exc)
            message = str(exc) if isinstance(exc, OPERATOR_ERRORS) else "internal error while computing the answer"
            return error_response(status, message, error_code(exc))
        return error_response(status, str(exc), error_code(exc))

    @app.errorhandler(InternalServerError)
    def _internal(exc: InternalServerError) -> tuple[Response, int]:
        original = getattr(exc, "original_exception", None)
        log.error("unhandled error: %r", original, exc_info=original or exc)
        return error_response(500, "internal server error", "InternalServerError")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        return error_response(status, _http_message(exc, status), type(exc).__name__)


def _http_message(exc: HTTPException, status: int) -> str:
    """What went wrong at the HTTP level, in the words of the other errors: what was received, what was
    expected."""
    where = f"{request.method} {request.path[:200]}"
    if isinstance(exc, NotFound):
        return f"{where}: no such route; the routes are described at GET /openapi.yaml"
    if isinstance(exc, MethodNotAllowed):
        allowed = sorted(m for m in (exc.valid_methods or []) if m not in ("HEAD", "OPTIONS"))
        return f"{where}: method {request.method} is not allowed here; expected {' or '.join(allowed)}"
    if isinstance(exc, RequestEntityTooLarge):
        limit = request.max_content_length
        setting = "POLYFIS_BATCH_MAX_BODY_BYTES" if request.path.startswith("/api/v1/batch") else \
            "POLYFIS_MAX_BODY_BYTES"
        return (f"request body: {request.content_length or 'more'} bytes, more than the limit of {limit} bytes "
                f"({setting}); send a smaller body")
    message = exc.description or HTTPStatus(status).phrase
    if status == 429:
        message = f"rate limit exceeded ({message}); retry later"
    return message
