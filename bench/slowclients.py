"""Slow clients against ``polyfis serve``: how fast ``/health`` and a normal query answer while slow connections
are held open.

Run:  .venv/bin/python bench/slowclients.py [--connections 50] [--hold 30] [--interval 5] [--workers 2]
      [--results-dir DIR]

Half the connections are slowloris (a request line, then one more header line every ``--interval`` seconds,
the headers never ending), half are slow bodies (complete headers announcing a 100 kB body, then 10 bytes
every interval); one the server closes is reopened at once. The script measures ``/health`` and a
one-year time series of a demo field with no slow connection, then again every second while the slow
connections are held for ``--hold`` seconds, and counts the slow connections the server closed.
Results: ``slowclients.md`` and ``.json`` in ``--results-dir``.

:class:`SlowClients` and :func:`timed_get` are also used by ``tests/test_server_front.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from common import (
    REPO,
    add_results_dir,
    command_line,
    describe_machine,
    git_revision,
    machine_info,
    polyfis_server,
    write_results,
)

BODY_BYTES = 100_000


class SlowClients:
    """``count`` connections to ``host:port`` that send a little every ``interval`` s and never finish.

    ``kind`` is ``slowloris`` (headers dribbled), ``body`` (a body dribbled) or ``mixed`` (half each).
    :attr:`closed` counts the connections the server closed (a failed send or an answer ending in EOF);
    with ``reconnect`` each is replaced by a new one at once, as an attacker would.
    """

    def __init__(self, host: str, port: int, count: int, kind: str = "mixed", interval: float = 5.0,
                 reconnect: bool = False) -> None:
        self.host, self.port, self.interval, self.reconnect = host, port, interval, reconnect
        kinds = {"slowloris": ["slowloris"] * count, "body": ["body"] * count,
                 "mixed": ["slowloris", "body"] * (count // 2) + ["slowloris"] * (count % 2)}[kind]
        self.kinds = kinds
        self.sockets: list[socket.socket | None] = []
        self.closed = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the dribbling thread and open_count() take turns with the sockets
        self._thread = threading.Thread(target=self._dribble, daemon=True)

    def __enter__(self) -> SlowClients:
        self.sockets = [None] * len(self.kinds)
        for i in range(len(self.kinds)):
            self._open(i)
        self._thread.start()
        return self

    def _open(self, i: int) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=5)
        if self.kinds[i] == "slowloris":
            sock.sendall(f"GET /health?slow={i} HTTP/1.1\r\nHost: {self.host}\r\n".encode())
        else:
            sock.sendall(f"POST /api/v1/timeseries HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: "
                         f"application/json\r\nContent-Length: {BODY_BYTES}\r\n\r\n{{".encode())
        self.sockets[i] = sock

    def _dribble(self) -> None:
        tick = 0
        while not self._stop.wait(self.interval):
            tick += 1
            with self._lock:
                self._send_round(tick)

    def _send_round(self, tick: int) -> None:
        for i, sock in enumerate(self.sockets):
            if sock is None:
                continue
            payload = f"X-Slow-{tick}: {tick}\r\n".encode() if self.kinds[i] == "slowloris" else b" " * 10
            try:
                sock.sendall(payload)
            except OSError:
                self._close(i)
                if self.reconnect:
                    with contextlib.suppress(OSError):
                        self._open(i)

    def _close(self, i: int) -> None:
        sock = self.sockets[i]
        if sock is not None:
            sock.close()
            self.sockets[i] = None
            self.closed += 1

    def open_count(self) -> int:
        """Connections still open on the server's side (a closed one reads EOF without blocking)."""
        with self._lock:
            return self._count_open()

    def _count_open(self) -> int:
        for i, sock in enumerate(self.sockets):
            if sock is None:
                continue
            sock.setblocking(False)
            try:
                data = sock.recv(4096)
            except BlockingIOError:  # nothing to read: still open
                sock.setblocking(True)
                continue
            except OSError:
                self._close(i)
                continue
            if data:
                sock.setblocking(True)
            else:  # EOF: the server closed it
                self._close(i)
        return sum(s is not None for s in self.sockets)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self.interval + 5)
        for i in range(len(self.sockets)):
            with contextlib.suppress(OSError):
                self._close(i)


def timed_get(url: str, timeout: float, body: dict[str, Any] | None = None) -> float | None:
    """Seconds to a complete 2xx answer of GET ``url`` (POST of ``body`` as JSON), or None on failure."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
    except (OSError, urllib.error.HTTPError):
        return None
    return time.perf_counter() - t0


def field_query() -> dict[str, Any]:
    """A one-year time series of the demo's first field (the load test's time series request)."""
    features = json.loads((REPO / "stats" / "fixtures" / "demo_polygons.geojson").read_text())["features"]
    field = next(f for f in features if f["properties"]["kind"] == "field")
    return {"geometry": field["geometry"], "time": {"from": "2023-01-01", "to": "2023-12-31"},
            "bands": ["B04", "B08"], "indices": ["NDVI"]}


@contextlib.contextmanager
def stalled(base: str, count: int, kind: str = "mixed", interval: float = 5.0,
            reconnect: bool = False) -> Iterator[SlowClients]:
    """:class:`SlowClients` against the server at ``base`` (``http://host:port``)."""
    host, port = base.removeprefix("http://").split(":")
    with SlowClients(host, int(port), count, kind, interval, reconnect) as clients:
        yield clients


def summary(times: list[float | None]) -> dict[str, Any]:
    """Median and worst of the answered probes, and how many failed (no answer within the timeout)."""
    ok = [t for t in times if t is not None]
    return {"probes": len(times), "failed": len(times) - len(ok),
            "median_s": round(statistics.median(ok), 3) if ok else None, "max_s": round(max(ok), 3) if ok else None}


def measure(base: str, args: argparse.Namespace) -> dict[str, Any]:
    """The probes without and with slow connections held, and how many of them the server closed."""
    query = field_query()
    timed_get(f"{base}/api/v1/timeseries", 60, query)  # warm
    quiet = {"health": summary([timed_get(f"{base}/health", 10) for _ in range(10)]),
             "timeseries": summary([timed_get(f"{base}/api/v1/timeseries", 60, query) for _ in range(3)])}
    health: list[float | None] = []
    series: list[float | None] = []
    with stalled(base, args.connections, "mixed", args.interval, reconnect=True) as clients:
        time.sleep(1.0)
        t_end = time.perf_counter() + args.hold
        while time.perf_counter() < t_end:
            health.append(timed_get(f"{base}/health", 10))
            if len(health) % 5 == 1:
                series.append(timed_get(f"{base}/api/v1/timeseries", 60, query))
            time.sleep(1.0)
        still_open = clients.open_count()
    return {"quiet": quiet, "stalled": {"health": summary(health), "timeseries": summary(series)},
            "slow_connections": args.connections, "closed_by_server": clients.closed, "open_at_end": still_open}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--hold", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--label", default="", help="what the run measures (shown in the report)")
    add_results_dir(parser)
    args = parser.parse_args()
    with polyfis_server(workers=args.workers, timeout_s=600) as server:
        figures = measure(server.base, args)
    report = {"command": command_line(__file__), "revision": git_revision(), "machine": machine_info(),
              "label": args.label, **figures}
    rows = [(when, what, figures[when][what]) for when in ("quiet", "stalled") for what in ("health", "timeseries")]
    label = f", {args.label}" if args.label else ""
    lines = ["# Slow clients: latency while slow connections are held", "",
             f"Command: `{report['command']}` (polyfis checkout {report['revision']}{label}); "
             f"{args.connections} slow connections (half slowloris, half slow bodies, one send every "
             f"{args.interval:g} s) held {args.hold:g} s, {args.workers} workers, "
             f"{describe_machine(report['machine'])}. A probe fails when it has no answer within 10 s "
             "(/health) or 60 s (time series).", "",
             "| slow connections | probe | probes | failed | median s | max s |", "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {'none' if when == 'quiet' else args.connections} | {what} | {s['probes']} | {s['failed']} | "
              f"{s['median_s']} | {s['max_s']} |" for when, what, s in rows]
    lines += ["", f"The server closed {figures['closed_by_server']} slow connections during the hold (past their "
              f"header or body deadline); each was reopened at its next send, within {args.interval:g} s "
              f"({figures['open_at_end']} were open at the end)."]
    write_results(args.results_dir, "slowclients", report, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

