"""Cross-cutting HTTP concerns: request ids and access logs, CORS, rate limiting, JSON logging.

* Every response carries ``X-Request-ID`` (the caller's, when it is a plain token, else a new one); every
  log line written while handling the request carries it too.
* CORS headers are sent only for the origins in ``POLYFIS_CORS_ORIGINS`` (flask-cors).
* ``POLYFIS_RATE_LIMIT`` (e.g. ``100/minute``) limits each client address (flask-limiter); past it the
  answer is a JSON 429. The counts are kept in ``POLYFIS_RATE_LIMIT_STORAGE``: ``memory://`` (the default)
  counts in each process, so N gunicorn workers let up to N times the limit through; a shared storage of the
  limits library (``redis://127.0.0.1:6379``, ``memcached://127.0.0.1:11211``, ...) counts once for all the
  workers and servers using it. While a shared storage cannot be reached, each worker counts in memory
  (logged), so that requests are still answered and still limited, per worker, until it is back.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from flask import Flask, Response, g, has_request_context, request

from stats.errors import ConfigError
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
        install_rate_limit(app, settings)


#: Seconds a request waits for a shared rate-limit storage before that worker counts in memory.
STORAGE_TIMEOUT_S = 0.5


def storage_options(uri: str) -> dict[str, Any]:
    """Options of the limits storage at ``uri``: short timeouts, so an unreachable storage costs little."""
    scheme = uri.partition("://")[0]
    if scheme.startswith(("redis", "rediss", "valkey")):
        return {"socket_connect_timeout": STORAGE_TIMEOUT_S, "socket_timeout": STORAGE_TIMEOUT_S}
    if scheme == "memcached":
        return {"connect_timeout": STORAGE_TIMEOUT_S, "timeout": STORAGE_TIMEOUT_S}
    return {}


def install_rate_limit(app: Flask, settings: Settings) -> Any:
    """flask-limiter on ``app`` with ``settings.rate_limit`` per client address, counted in
    ``settings.rate_limit_storage``; the :class:`flask_limiter.Limiter`.

    :raises ConfigError: when the storage's client library is not installed (``redis`` for ``redis://``,
        ``pymemcache`` for ``memcached://``).
    """
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address
    from limits.errors import ConfigurationError
    from limits.storage import storage_from_string

    uri = settings.rate_limit_storage
    options = storage_options(uri)
    try:
        storage_from_string(uri, **options)  # the client library is there (nothing is connected yet)
    except ConfigurationError as exc:
        raise ConfigError(f"POLYFIS_RATE_LIMIT_STORAGE: cannot use {uri.partition('://')[0]!r} storage: {exc}; "
                          "install its client (pip install redis, or pymemcache)") from exc
    shared = not uri.startswith("memory://")
    return Limiter(get_remote_address, app=app, default_limits=[settings.rate_limit] if settings.rate_limit else [],
                   storage_uri=uri,
                   storage_options=options, headers_enabled=True, in_memory_fallback_enabled=shared)
