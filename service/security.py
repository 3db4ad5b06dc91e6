"""Cross-cutting HTTP concerns: request ids and access logs, CORS, rate limiting, JSON logging.

* Every response carries ``X-Request-ID`` (the caller's, when it is a plain token, else a new one); every
  log line written while handling the request carries it too.
* CORS headers are sent only for the origins in ``POLYFIS_CORS_ORIGINS`` (flask-cors).
* ``POLYFIS_RATE_LIMIT`` (e.g. ``100/minute``) limits each client address (flask-limiter, in memory per
  worker); past it the answer is a JSON 429.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, has_request_context, request

from stats.settings import Settings

log = logging.getLogger("polyfis.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every log record (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def configure_logging(level: int = logging.INFO) -> None:
    """JSON log lines on stderr with time, level, logger, message and request id (python-json-logger)."""
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s"))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def register(app: Flask, settings: Settings) -> None:
    """Install request ids, access logging, CORS and rate limiting on ``app``."""

    @app.before_request
    def _start() -> None:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "-")
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        log.info("%s %s %s", request.method, request.path, response.status_code,
                 extra={"status": response.status_code, "seconds": round(elapsed, 4)})
        return response

    if settings.cors_origins:
        from flask_cors import CORS

        origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
        CORS(app, origins="*" if origins == ["*"] else origins,
             expose_headers=["X-Request-ID", "X-Polyfis-Partial", "Location", "Content-Disposition"])
    if settings.rate_limit:
        from flask_limiter import Limiter
        from flask_limiter.util import get_remote_address

        Limiter(get_remote_address, app=app, default_limits=[settings.rate_limit], storage_uri="memory://",
                headers_enabled=True)
