"""A range-capable static HTTP server on 127.0.0.1 that delays every request, counts requests and bytes, and can
fail chosen files: the simulated object store of ``bench/remote.py`` and ``tests/test_remote_reads.py``.

* ``GET`` and ``HEAD`` of the files under a folder, HTTP/1.1 with keep-alive, one thread per connection;
* ``Range: bytes=a-b`` (206 with ``Content-Range``), several ranges (a ``multipart/byteranges`` answer), suffix
  and open-ended ranges, 416 for a range past the end;
* a fixed delay (seconds) before each answer, standing for the network's round trip;
* counters of requests and body bytes sent, per path too, and a log of each request's ranges;
* faults: a path answered 404, or held without an answer for ``stall_s`` seconds (a timeout for the client);
* ``GET /__traffic``: the counters as JSON (not counted themselves).

:func:`serve_process` runs it in a process of its own (``python bench/remote_server.py ROOT --delay S``), so
that its threads never wait for the interpreter lock of the process being measured (GDAL holds it on some
paths of an open, which deadlocks a server running in the same process); :func:`serve` runs it in a thread.
Only the standard library is imported, so a test or a timed benchmark child can import it at no cost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BOUNDARY = "polyfis-byteranges"


@dataclass
class Traffic:
    """What the server answered: requests, body bytes, and per path; ``ranges`` logs each request's ranges."""

    requests: int = 0
    bytes: int = 0
    by_path: Counter[str] = field(default_factory=Counter)
    bytes_by_path: Counter[str] = field(default_factory=Counter)
    ranges: list[tuple[str, str]] = field(default_factory=list)
    #: the most requests being answered at once (since the start, or the last ``/__traffic?reset_peak``)
    peak_in_flight: int = 0

    def to_dict(self) -> dict[str, object]:
        """The counters as JSON-ready values."""
        return {"requests": self.requests, "bytes": self.bytes, "by_path": dict(self.by_path),
                "bytes_by_path": dict(self.bytes_by_path), "ranges": [list(r) for r in self.ranges],
                "peak_in_flight": self.peak_in_flight}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Traffic:
        """The counters :meth:`to_dict` gave."""
        return cls(int(data["requests"]), int(data["bytes"]), Counter(data["by_path"]),  # type: ignore[arg-type]
                   Counter(data["bytes_by_path"]),  # type: ignore[arg-type]
                   [(str(p), str(r)) for p, r in data["ranges"]],  # type: ignore[attr-defined]
                   int(data.get("peak_in_flight", 0)))  # type: ignore[call-overload]

    def copy(self) -> Traffic:
        """A snapshot of the counters."""
        return Traffic(self.requests, self.bytes, Counter(self.by_path), Counter(self.bytes_by_path),
                       list(self.ranges), self.peak_in_flight)

    def since(self, before: Traffic) -> Traffic:
        """The traffic after the snapshot ``before``."""
        return Traffic(self.requests - before.requests, self.bytes - before.bytes, self.by_path - before.by_path,
                       self.bytes_by_path - before.bytes_by_path, self.ranges[len(before.ranges):],
                       self.peak_in_flight)


def parse_ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """The (first, last) byte pairs of a ``Range`` header within a file of ``size`` bytes; None for a header
    that is not a byte range (the whole file is sent); [] when no range lies within the file (416).

    >>> parse_ranges("bytes=0-99,200-", 1000), parse_ranges("bytes=-10", 1000), parse_ranges("bytes=2000-", 1000)
    ([(0, 99), (200, 999)], [(990, 999)], [])
    """
    unit, sep, spec = header.partition("=")
    if unit.strip() != "bytes" or not sep:
        return None
    out = []
    for part in spec.split(","):
        first, dash, last = part.strip().partition("-")
        if not dash:
            return None
        try:
            if first == "":
                start, end = max(0, size - int(last)), size - 1
            else:
                start, end = int(first), min(int(last), size - 1) if last else size - 1
        except ValueError:
            return None
        if start <= end and start < size:
            out.append((start, end))
    return out


def _read(file: Path, start: int, end: int) -> bytes:
    """Bytes ``start`` to ``end`` (inclusive) of ``file``."""
    with file.open("rb") as fh:
        fh.seek(start)
        return fh.read(end - start + 1)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    #: TCP_NODELAY, as web and object storage servers set it: without it the body written after the headers
    #: waits for the client's delayed ACK, about 40 ms more per request than the delay being simulated
    disable_nagle_algorithm = True
    server: DelayingServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        """Quiet: the counters say what happened."""

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
        """Headers of a file, as for GET."""
        self._answer(body=False)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        """A file, a range of it, or several ranges."""
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        srv = self.server
        if path == "/__traffic":
            if "reset_peak" in self.path:
                srv.reset_peak()
            payload = json.dumps(srv.snapshot().to_dict()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        srv.enter()
        try:
            self._serve(path, body)
        finally:
            srv.leave()

    def _serve(self, path: str, body: bool) -> None:
        srv = self.server
        time.sleep(srv.delay_s)
        if path in srv.stall:
            time.sleep(srv.stall_s)
            self.close_connection = True
            return
        file = (srv.root / path.lstrip("/")).resolve()
        if path in srv.missing or not file.is_file() or srv.root not in file.parents:
            self._send(404, {"Content-Type": "text/plain"}, [b"not found"], body, path)
            return
        size = file.stat().st_size
        ranges = parse_ranges(self.headers.get("Range", ""), size) if "Range" in self.headers else None
        if ranges is None:
            self._send(200, {"Content-Type": srv.content_type(file), "Accept-Ranges": "bytes"},
                       [file.read_bytes()] if body else [b""] , body, path, length=size)
            return
        if not ranges:
            self._send(416, {"Content-Range": f"bytes */{size}"}, [b""], body, path)
            return
        if len(ranges) == 1:
            start, end = ranges[0]
            self._send(206, {"Content-Type": srv.content_type(file), "Accept-Ranges": "bytes",
                             "Content-Range": f"bytes {start}-{end}/{size}"}, [_read(file, start, end)], body, path,
                       self.headers["Range"])
            return
        parts = []
        for start, end in ranges:
            parts.append(f"\r\n--{BOUNDARY}\r\nContent-Type: {srv.content_type(file)}\r\n"
                         f"Content-Range: bytes {start}-{end}/{size}\r\n\r\n".encode())
            parts.append(_read(file, start, end))
        parts.append(f"\r\n--{BOUNDARY}--\r\n".encode())
        self._send(206, {"Content-Type": f"multipart/byteranges; boundary={BOUNDARY}"}, parts, body, path,
                   self.headers["Range"])

    def _send(self, status: int, headers: dict[str, str], chunks: list[bytes], body: bool, path: str,
              ranges: str = "", length: int | None = None) -> None:
        if length is None:
            length = sum(len(c) for c in chunks)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        sent = 0
        if body:
            for chunk in chunks:
                self.wfile.write(chunk)
            sent = length
        self.server.count(path, sent, f"{self.command} {ranges}".strip())


class DelayingServer(ThreadingHTTPServer):
    """Serve ``root`` with ``delay_s`` seconds added to every request (see the module docstring)."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self, root: str | os.PathLike[str], delay_s: float = 0.0, *, stall_s: float = 30.0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = Path(root).resolve()
        self.delay_s = float(delay_s)
        self.stall_s = float(stall_s)
        self.missing: set[str] = set()
        self.stall: set[str] = set()
        self.traffic = Traffic()
        self._lock = threading.Lock()
        self._in_flight = 0

    def enter(self) -> None:
        """A request starts being answered."""
        with self._lock:
            self._in_flight += 1
            self.traffic.peak_in_flight = max(self.traffic.peak_in_flight, self._in_flight)

    def leave(self) -> None:
        """A request was answered."""
        with self._lock:
            self._in_flight -= 1

    def reset_peak(self) -> None:
        """Count the peak of requests in flight from now on."""
        with self._lock:
            self.traffic.peak_in_flight = self._in_flight

    @property
    def url(self) -> str:
        """The base URL (no trailing slash)."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def content_type(self, file: Path) -> str:
        """The media type a file is served with."""
        return {".json": "application/json", ".tif": "image/tiff", ".tiff": "image/tiff",
                ".jp2": "image/jp2"}.get(file.suffix.lower(), "application/octet-stream")

    def count(self, path: str, nbytes: int, ranges: str) -> None:
        """Count one answered request."""
        with self._lock:
            self.traffic.requests += 1
            self.traffic.bytes += nbytes
            self.traffic.by_path[path] += 1
            self.traffic.bytes_by_path[path] += nbytes
            self.traffic.ranges.append((path, ranges))

    def snapshot(self) -> Traffic:
        """The counters so far (take one before, and :meth:`Traffic.since` after)."""
        with self._lock:
            return self.traffic.copy()


@contextlib.contextmanager
def serve(root: str | os.PathLike[str], delay_s: float = 0.0, *, stall_s: float = 30.0) -> Iterator[DelayingServer]:
    """Run a :class:`DelayingServer` over ``root`` on a free port of 127.0.0.1 until the block ends."""
    server = DelayingServer(root, delay_s, stall_s=stall_s)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                              name="delaying-server")
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass
class ServerProcess:
    """A :class:`DelayingServer` in a process of its own: its base URL, and its counters on demand."""

    url: str
    process: subprocess.Popen[str]

    def snapshot(self, reset_peak: bool = False) -> Traffic:
        """The counters so far (``reset_peak``: then count the peak of requests in flight afresh)."""
        import urllib.request

        query = "?reset_peak" if reset_peak else ""
        with urllib.request.urlopen(f"{self.url}/__traffic{query}", timeout=30) as answer:
            return Traffic.from_dict(json.loads(answer.read()))


@contextlib.contextmanager
def serve_process(root: str | os.PathLike[str], delay_s: float = 0.0, *, missing: tuple[str, ...] = (),
                  stall: tuple[str, ...] = (), stall_s: float = 30.0) -> Iterator[ServerProcess]:
    """Run the server over ``root`` in a child process until the block ends; ``missing`` paths answer 404,
    ``stall`` paths are held ``stall_s`` seconds without an answer."""
    args = [sys.executable, str(Path(__file__).resolve()), str(root), "--delay", str(delay_s),
            "--stall-s", str(stall_s)]
    for path in missing:
        args += ["--missing", path]
    for path in stall:
        args += ["--stall", path]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the delaying server did not start (exit code {process.poll()})")
        yield ServerProcess(url, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def main() -> None:
    """Serve a folder until terminated (or stdin closes), printing the base URL first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--missing", action="append", default=[], help="a path answered 404")
    parser.add_argument("--stall", action="append", default=[], help="a path held without an answer")
    parser.add_argument("--stall-s", type=float, default=30.0)
    args = parser.parse_args()
    with contextlib.suppress(OSError):
        os.nice(-10)  # the simulated network must not wait for the machine's other work (needs the privilege)
    with serve(args.root, args.delay, stall_s=args.stall_s) as server:
        server.missing.update(args.missing)
        server.stall.update(args.stall)
        print(server.url, flush=True)
        sys.stdin.read()  # until the parent closes the pipe or terminates us


if __name__ == "__main__":
    main()
