"""Production serving: gunicorn's arbiter over N worker processes, each reading HTTP with waitress.

* **The arbiter** (gunicorn) binds the port, loads the app once (the archive index, the FIS layers and the
  s2cloudless model, before forking, so the workers share them copy-on-write and a restarted worker is warm),
  forks ``workers`` processes, restarts any that dies and stops them on SIGTERM.
* **Each worker** (:class:`FrontWorker`) serves the shared listening socket with waitress: one I/O thread
  reads every connection without blocking and buffers the whole request (headers and body, spilled to a
  temporary file when large) before one of ``threads`` request threads sees it. A slow or stalled client
  costs a socket, never a request thread, so ``/health`` and normal queries keep their usual latency while
  slow connections are held.
* **Timeouts**: a request's headers must be complete within :attr:`FrontLimits.header_timeout_s` of its first
  byte; its body must arrive within :attr:`FrontLimits.body_timeout_s` of the headers, plus one second per
  :attr:`FrontLimits.body_min_rate` bytes received; an idle kept-alive connection is closed after
  :attr:`FrontLimits.idle_timeout_s`. A request past its deadline gets a JSON 408 and its connection is closed.
* **Limits answered by the front itself**, in the JSON error shape of :mod:`service.errors`: 408 for a late
  request, 400 for a malformed request, 414 for a request line over :attr:`FrontLimits.max_request_line`, 431
  for headers over :attr:`FrontLimits.max_header_bytes`, 413 for a body over the largest body setting and 501
  for a transfer coding other than chunked. A chunked body is buffered whole and handed to the app with its
  length, so the app's body limits (``POLYFIS_MAX_BODY_BYTES``, ``POLYFIS_BATCH_MAX_BODY_BYTES``) hold for it
  as for a body sent with ``Content-Length``.
* **Lingering close**: a connection the server closes while its client is still sending is drained for a
  moment after the answer, so the client reads the answer instead of a connection reset.
* Each worker starts its batch job runner right away (:func:`service.resume_jobs`), so jobs left pending by a
  previous run, or by a worker that was killed, resume without waiting for a request.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from gunicorn.app.base import BaseApplication
from gunicorn.workers.base import Worker
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask as _WaitressAnswerTask  # an answer task, not an exception
from waitress.task import ThreadedTaskDispatcher
from waitress.utilities import Error

from stats.settings import Settings

from .errors import error_body


@dataclass(frozen=True)
class FrontLimits:
    """What the front allows one connection before the app sees a request (:meth:`from_settings`: the
    ``POLYFIS_SERVER_THREADS``, ``POLYFIS_HEADER_TIMEOUT_S``, ... settings)."""

    #: request threads per worker process
    threads: int = 4
    #: seconds from a request's first byte to the end of its headers
    header_timeout_s: float = 10.0
    #: seconds from the end of the headers to the end of the body, before the rate allowance below
    body_timeout_s: float = 20.0
    #: bytes per second of body that earn one more second (a large body at a fair speed is never cut)
    body_min_rate: int = 50_000
    #: seconds a kept-alive connection may stay idle between requests
    idle_timeout_s: float = 15.0
    #: longest request line (method, URL and version), bytes (414 above)
    max_request_line: int = 16_384
    #: largest request line plus headers, bytes (431 above)
    max_header_bytes: int = 65_536
    #: open connections per worker; past it the worker stops accepting until some close
    max_connections: int = 1_000

    @classmethod
    def from_settings(cls, settings: Settings) -> FrontLimits:
        """The limits the settings give."""
        return cls(threads=settings.server_threads, header_timeout_s=settings.header_timeout_s,
                   body_timeout_s=settings.body_timeout_s, body_min_rate=settings.body_min_rate,
                   idle_timeout_s=settings.idle_timeout_s, max_request_line=settings.max_request_line,
                   max_header_bytes=settings.max_header_bytes, max_connections=settings.max_connections)


def uri_too_long(limit: int) -> Any:
    """waitress's answer object for a request line over ``limit`` bytes (waitress itself has no 414)."""
    answer = Error(f"more than {limit} bytes")
    answer.code, answer.reason = 414, "URI Too Long"
    return answer


# --------------------------------------------------------------------------------------------------------
# waitress, with deadlines, a request line limit and JSON errors
# --------------------------------------------------------------------------------------------------------


class _Request(HTTPRequestParser):  # type: ignore[misc]
    """One request being read: when it started and when its headers ended, and the request line limit."""

    limits: ClassVar[FrontLimits] = FrontLimits()
    completed: bool = False  # waitress's, typed

    def __init__(self, adj: Adjustments) -> None:
        super().__init__(adj)
        self.started = time.monotonic()
        self.headers_done: float | None = None
        self.timed_out = False  # answered 408: the connection closes once the answer is sent

    def received(self, data: bytes) -> int:
        if not self.completed and self.body_rcv is None and not self.headers_finished \
                and self._line_too_long(data):  # checked first: waitress would answer a long line with 431
            self.parse_header(b"GET / HTTP/1.0\r\n")
            self.error = uri_too_long(self.limits.max_request_line)
            self.completed = True
            return len(data)
        consumed: int = super().received(data)
        if self.headers_finished and self.headers_done is None:
            self.headers_done = time.monotonic()
        return consumed

    def _line_too_long(self, data: bytes) -> bool:
        text = (self.header_plus + data).lstrip(b"\r\n")
        end = text.find(b"\n")
        return (len(text) if end < 0 else end) > self.limits.max_request_line

    def overdue(self, now: float) -> bool:
        """Whether the client has taken longer than allowed to send this request."""
        if self.completed or self.timed_out:
            return False
        if self.headers_done is None:
            return now - self.started > self.limits.header_timeout_s
        allowance = self.limits.body_timeout_s + self.body_bytes_received / self.limits.body_min_rate
        return now - self.headers_done > allowance


#: The message of each error the front answers itself, by status.
_MESSAGES = {
    400: "malformed HTTP request ({detail}); send a valid HTTP/1.1 request",
    413: "request body: more than the limit of {max_body} bytes (the largest of POLYFIS_MAX_BODY_BYTES and "
         "POLYFIS_BATCH_MAX_BODY_BYTES); send a smaller body",
    414: "request line: more than the limit of {max_line} bytes; send a shorter URL (a long geometry goes in "
         "a POST body)",
    408: "request: not received in time ({detail}); send it faster",
    431: "request headers: more than the limit of {max_header} bytes in all; send fewer or smaller headers",
    501: "transfer coding not supported ({detail}); send the body with Content-Length or chunked",
}
#: The error code of each status, named as werkzeug names the same HTTP errors inside the app.
_CODES = {400: "BadRequest", 408: "RequestTimeout", 413: "RequestEntityTooLarge", 414: "RequestURITooLarge",
          431: "RequestHeaderFieldsTooLarge", 500: "InternalServerError", 501: "NotImplemented"}
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def front_error(status: int, detail: str, adj: Adjustments, limits: FrontLimits) -> dict[str, Any]:
    """The JSON error body of an error the front answers itself (the shape of :func:`errors.error_body`)."""
    if status >= 500 and status != 501:
        return error_body(status, "internal server error", "InternalServerError")
    clean = _UNPRINTABLE.sub("?", detail)[:120]
    template = _MESSAGES.get(status, "{detail}")
    message = template.format(detail=clean, max_body=adj.max_request_body_size, max_line=limits.max_request_line,
                              max_header=adj.max_request_header_size)
    return error_body(status, message, _CODES.get(status, "HTTPError"))


class _JsonAnswerTask(_WaitressAnswerTask):  # type: ignore[misc]
    """waitress's own error answers (bad request line, 413, 414, 431, 501, 500) as the project's JSON."""

    def execute(self) -> None:
        error = self.request.error
        body = json.dumps(front_error(error.code, str(error.body), self.channel.server.adj, _Request.limits))
        payload = body.encode("utf-8")
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(payload)
        self.write(payload)


#: How long a closing connection keeps reading (and discarding) what its client still sends, seconds, and
#: the most bytes it reads so.
LINGER_S = 2.0
LINGER_BYTES = 16 * 1024 * 1024
#: The route answered on the health lane (:class:`_Server`).
HEALTH_PATH = "/health"


class _Channel(HTTPChannel):  # type: ignore[misc]
    """waitress's channel with a lingering close.

    When the server closes a connection whose client is still sending (headers over the limit, a body it
    refused), closing at once would make the kernel answer the unread bytes with a reset, and the client
    could lose the answer already sent. So the channel first shuts its sending side (the client reads the
    whole answer, then end of stream) and goes on reading and discarding for up to :data:`LINGER_S` or
    :data:`LINGER_BYTES`, as Apache and nginx do, before it closes.
    """

    parser_class = _Request
    error_task_class = _JsonAnswerTask
    linger_deadline: float | None = None
    lingered_bytes = 0

    def handle_close(self) -> None:
        if self.linger_deadline is None and self.connected and self.socket is not None:
            try:
                self.socket.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            else:
                self.linger_deadline = time.monotonic() + LINGER_S
                self.will_close = self.close_when_flushed = False
                return
        super().handle_close()

    def lingering(self) -> bool:
        """Whether the answer is sent and the channel only drains the client before it closes."""
        return self.linger_deadline is not None

    def readable(self) -> bool:
        return True if self.lingering() else bool(super().readable())

    def writable(self) -> bool:
        return False if self.lingering() else bool(super().writable())

    def handle_read(self) -> None:
        if not self.lingering():
            super().handle_read()
            return
        try:
            data = self.socket.recv(self.adj.recv_bytes)
        except OSError:
            data = b""
        self.lingered_bytes += len(data)
        if not data or self.lingered_bytes > LINGER_BYTES or self.linger_over(time.monotonic()):
            super().handle_close()

    def linger_over(self, now: float) -> bool:
        """Whether the lingering close has run out of time."""
        return self.linger_deadline is not None and now > self.linger_deadline

    def close_lingered(self) -> None:
        """Close the connection for good, whatever the client still sends."""
        super().handle_close()


class _Server(TcpWSGIServer):  # type: ignore[misc]
    """waitress on an inherited listening socket, with request deadlines, and a lane of its own for health
    checks: a ``GET /health`` is run by :attr:`health_dispatcher`'s thread, so it answers while every request
    thread is busy with long queries (the app still runs it: limits, request ids and auth apply)."""

    channel_class = _Channel
    health_dispatcher: ThreadedTaskDispatcher | None = None

    def add_task(self, task: Any) -> None:
        request = task.requests[0] if getattr(task, "requests", None) else None
        if (self.health_dispatcher is not None and request is not None and not request.error
                and request.command in ("GET", "HEAD") and request.path == HEALTH_PATH):
            self.health_dispatcher.add_task(task)
        else:
            super().add_task(task)

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # idle connections (channel_timeout)
        clock = time.monotonic()
        for channel in list(self.active_channels.values()):
            if isinstance(channel, _Channel) and channel.lingering():
                if channel.linger_over(clock):
                    channel.close_lingered()
                continue
            request = channel.request
            if isinstance(request, _Request) and request.overdue(clock):
                if channel.requests or not channel.connected:  # an answer is being written: just close
                    channel.will_close = True
                    continue
                request.timed_out = True
                channel.write_soon(timeout_answer(request, self.adj))
                channel.close_when_flushed = True


def timeout_answer(request: _Request, adj: Adjustments) -> bytes:
    """The raw JSON 408 of a request that did not arrive in time (its headers, or its body after them)."""
    limits = request.limits
    detail = (f"headers within {limits.header_timeout_s:g} s, POLYFIS_HEADER_TIMEOUT_S" if request.headers_done is None
              else f"body within {limits.body_timeout_s:g} s plus 1 s per {limits.body_min_rate} bytes, "
                   "POLYFIS_BODY_TIMEOUT_S and POLYFIS_BODY_MIN_RATE")
    payload = json.dumps(front_error(408, detail, adj, limits)).encode("utf-8")
    head = (f"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode("ascii") + payload



def adjustments(settings: Settings, limits: FrontLimits, sockets: list[socket.socket]) -> Adjustments:
    """waitress's settings for ``settings`` and ``limits`` on the inherited ``sockets``."""
    return Adjustments(
        sockets=sockets, threads=limits.threads, ident="polyfis", expose_tracebacks=False,
        channel_timeout=int(limits.idle_timeout_s), cleanup_interval=1, connection_limit=limits.max_connections,
        max_request_header_size=limits.max_header_bytes,
        max_request_body_size=max(settings.max_body_bytes, settings.batch_max_body_bytes) + 1,
        asyncore_use_poll=True)


class FrontWorker(Worker):  # type: ignore[misc]
    """A gunicorn worker process that serves its app with waitress (see the module docstring)."""

    #: set by :func:`serve` before the arbiter forks
    settings: ClassVar[Settings]
    limits: ClassVar[FrontLimits] = FrontLimits()

    def run(self) -> None:
        from . import resume_jobs, stop_jobs

        resume_jobs(self.wsgi)
        try:
            self._serve()
        finally:  # a job running stays PROCESSING for the next worker, rather than failing as the process exits
            stop_jobs(self.wsgi, timeout=5.0)

    def _serve(self) -> None:
        _Request.limits = self.limits
        listeners = [listener.sock for listener in self.sockets]
        adj = adjustments(self.settings, self.limits, listeners)
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(self.limits.threads)
        health = ThreadedTaskDispatcher()
        health.set_thread_count(1)
        socket_map: dict[int, Any] = {}
        servers = [_Server(self.wsgi, socket_map, True, sock, dispatcher=dispatcher, adj=adj, bind_socket=False,
                           sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname())) for sock in listeners]
        for server in servers:
            server.health_dispatcher = health
        beat = 0.0
        while self.alive and os.getppid() == self.ppid:
            if time.monotonic() - beat >= 1.0:  # the arbiter's heartbeat, once a second at most
                self.notify()
                beat = time.monotonic()
            wasyncore.loop(timeout=1.0, use_poll=True, map=socket_map, count=1)
        self._drain(servers, dispatcher, health, socket_map)

    def _drain(self, servers: list[_Server], dispatcher: ThreadedTaskDispatcher, health: ThreadedTaskDispatcher,
               socket_map: dict[int, Any]) -> None:
        """Stop accepting, let the requests in progress finish (up to the graceful timeout), then stop."""
        for server in servers:
            server.del_channel()
            server.socket.close()
        deadline = time.monotonic() + self.cfg.graceful_timeout
        while time.monotonic() < deadline and (dispatcher.active_count or dispatcher.queue or any(
                getattr(channel, "total_outbufs_len", 0) for channel in list(socket_map.values()))):
            self.notify()
            wasyncore.loop(timeout=0.2, use_poll=True, map=socket_map, count=1)
        dispatcher.shutdown(cancel_pending=True, timeout=1)
        health.shutdown(cancel_pending=True, timeout=1)


# --------------------------------------------------------------------------------------------------------
# the arbiter
# --------------------------------------------------------------------------------------------------------


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25: no control socket in $HOME
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Any:
        from . import create_app
        from .security import configure_logging

        configure_logging()
        app = create_app(self.settings)
        preload(app)
        return app


def preload(app: Any) -> None:
    """Load what every worker needs before the fork: the archive index, the FIS layers and the model.

    Nothing here starts a thread or runs the model (LightGBM's OpenMP threads do not survive a fork); the
    batch job runner is started by each worker after the fork.
    """
    from stats.clouds.model import default_model

    from . import archive, layers

    with app.app_context():
        archive()
        layers()
    default_model().detector  # noqa: B018 - loads the booster


def port_in_use(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be served on (in use, or not an address of this machine), or None."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 2,
          timeout: int | None = None, limits: FrontLimits | None = None) -> None:
    """Run the service: gunicorn's arbiter over ``workers`` :class:`FrontWorker` processes (blocks).

    ``timeout`` (default: the time budget plus 30 s) is how long a worker's I/O loop may go without a
    heartbeat before the arbiter kills and replaces it.
    """
    worker_timeout = timeout or int(settings.time_budget_s) + 30
    folder = None
    if workers > 1 and settings.window_cache_dir is None and settings.window_cache_mb > 0:
        # the workers share the windows any of them read, for this run only
        folder = tempfile.mkdtemp(prefix="polyfis-windows-")
        settings = replace(settings, window_cache_dir=folder)
    arbiter = os.getpid()
    worker_class = type("PolyfisWorker", (FrontWorker,),
                        {"settings": settings, "limits": limits or FrontLimits.from_settings(settings)})
    try:
        _Gunicorn(settings, {"bind": f"{host}:{port}", "workers": workers, "worker_class": worker_class,
                             "preload_app": True, "timeout": worker_timeout, "graceful_timeout": 10,
                             "accesslog": None}).run()
    finally:
        if folder is not None and os.getpid() == arbiter:  # a worker leaving through here keeps it
            shutil.rmtree(folder, ignore_errors=True)
