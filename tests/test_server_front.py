"""The HTTP front of `polyfis serve` (service/server.py), against a real server on a free 127.0.0.1 port:
slow clients do not stall it, its own errors are JSON, and a chunked body is held to the body limit."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import S2_BANDS, band_array, band_transform
from waitress.adjustments import Adjustments

from service.server import FrontLimits, _Request
from stats.archive.catalog import ArchiveWriter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from common import polyfis_server  # noqa: E402
from slowclients import stalled, timed_get  # noqa: E402

QUERY = {"geometry": {"type": "Polygon", "coordinates": [[[500011, 5000009], [500049, 5000009], [500049, 5000049],
                                                           [500011, 5000049], [500011, 5000009]]]},
         "crs": "EPSG:32633", "time": {"from": "2023-01-01", "to": "2023-01-31"}, "bands": ["B04"]}


@pytest.fixture(name="base", scope="module")
def fixture_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`polyfis serve --workers 2` on a one-tile archive, for the whole module."""
    root = tmp_path_factory.mktemp("front") / "archive"
    with ArchiveWriter(root) as writer:
        writer.add("T1", dt.datetime(2023, 1, 5, 10, tzinfo=dt.UTC), "EPSG:32633",
                   {b: (band_array(b), band_transform(b)) for b in S2_BANDS})
    env = {"POLYFIS_ARCHIVE": str(root), "POLYFIS_JOBS_DIR": str(root.parent / "jobs")}
    with polyfis_server(workers=2, env=env, timeout_s=120) as server:
        yield server.base


def raw_exchange(base: str, request: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as it is, read until the server closes; the status, headers and body."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def assert_json_error(status: int, headers: dict[str, str], body: bytes, expected: int, code: str) -> dict:
    assert status == expected, body[:300]
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert set(error) == {"status", "reason", "message", "code"}
    assert error["status"] == expected and error["code"] == code and error["message"]
    return error


def test_health_answers_at_once_while_50_slow_connections_are_held(base: str) -> None:
    """25 slowloris connections (headers dribbled) and 25 slow bodies leave /health answering in well under 2 s;
    under gunicorn's gthread workers 4 such connections were enough to stall it."""
    with stalled(base, 50, "mixed", interval=1.0) as clients:
        time.sleep(1.5)
        times = [timed_get(f"{base}/health", timeout=5) for _ in range(5)]
        assert clients.open_count() == 50  # the slow connections were all still held
    assert all(t is not None and t < 2.0 for t in times), times


def test_a_normal_query_answers_while_slow_connections_are_held(base: str) -> None:
    """A time series is computed and answered while 50 slow connections are held."""
    assert timed_get(f"{base}/api/v1/timeseries", timeout=30, body=QUERY) is not None  # warm
    with stalled(base, 50, "mixed", interval=1.0):
        time.sleep(1.0)
        took = timed_get(f"{base}/api/v1/timeseries", timeout=10, body=QUERY)
    assert took is not None and took < 5.0


def feed(request: _Request, data: bytes) -> _Request:
    """Give ``data`` to ``request`` as waitress's channel does, until it has taken all it wants."""
    while data and not request.completed:
        data = data[request.received(data):]
    return request


def test_requests_that_take_too_long_to_arrive_are_past_their_deadline() -> None:
    """Headers must end within the header timeout; a body must arrive within the body timeout plus its rate
    allowance; a complete request never is overdue."""
    limits = FrontLimits(header_timeout_s=10, body_timeout_s=20, body_min_rate=1000)
    _Request.limits = limits
    try:
        request = feed(_Request(Adjustments()), b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert not request.overdue(request.started + 9)
        assert request.overdue(request.started + 11)
        body = feed(_Request(Adjustments()), b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
        assert body.headers_done is not None
        assert not body.overdue(body.headers_done + 24)  # 20 s + 5000 bytes / 1000 bytes per second
        assert body.overdue(body.headers_done + 26)
        done = feed(_Request(Adjustments()), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert done.completed and not done.overdue(done.started + 1000)
    finally:
        _Request.limits = FrontLimits()


def test_a_too_long_url_gets_a_json_414(base: str) -> None:
    status, headers, body = raw_exchange(base, b"GET /health?" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    error = assert_json_error(status, headers, body, 414, "RequestURITooLarge")
    assert "16384 bytes" in error["message"]


def test_too_large_headers_get_a_json_431(base: str) -> None:
    """64 KiB of headers (sent exactly, so that the server has read all when it answers and closes)."""
    start = b"GET /health HTTP/1.1\r\nHost: x\r\n"
    headers_sent = b"".join(b"X-Filler-%02d: %s\r\n" % (i, b"b" * 4000) for i in range(16))
    request = (start + headers_sent)[:65536].ljust(65536, b"c")
    status, headers, body = raw_exchange(base, request)
    error = assert_json_error(status, headers, body, 431, "RequestHeaderFieldsTooLarge")
    assert "65536 bytes" in error["message"]


def test_a_client_still_sending_headers_over_the_limit_reads_the_431_not_a_reset(base: str) -> None:
    """4 MiB of headers sent while the answer is read: the server stops reading at the limit, answers 431 and
    drains the rest before closing, so the kernel never resets the connection under the answer."""
    host, port = base.removeprefix("http://").split(":")
    filler = b"".join(b"X-Filler-%04d: %s\r\n" % (i, b"b" * 4000) for i in range(1024))
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sender = threading.Thread(target=_send_ignoring_errors, args=(sock, b"GET /health HTTP/1.1\r\nHost: x\r\n"
                                                                      + filler + b"\r\n"))
        sender.start()
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        sender.join(30)
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert_json_error(int(lines[0].split()[1]), headers, body, 431, "RequestHeaderFieldsTooLarge")


def _send_ignoring_errors(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the server may close its side once it has drained enough
        sock.sendall(data)


@pytest.mark.parametrize("request_line", [b"\x01\x02 /health HTTP/1.1", b"GET /health HTTP/1.1\r\nBad header"],
                         ids=["bad-method", "bad-header-line"])
def test_a_malformed_request_gets_a_json_400(base: str, request_line: bytes) -> None:
    status, headers, body = raw_exchange(base, request_line + b"\r\nHost: x\r\n\r\n")
    assert_json_error(status, headers, body, 400, "BadRequest")


def _chunked(payload: bytes, size: int = 65536) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(payload[i:i + size]), payload[i:i + size]) for i in range(0, len(payload), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def test_a_chunked_body_over_the_limit_gets_the_same_413_as_with_content_length(base: str) -> None:
    """A 1.5 MB body over the 1 MB limit is refused alike, chunked or with Content-Length (it used to be
    cut at 1 MB and processed when chunked)."""
    payload = json.dumps({**QUERY, "padding": "x" * 1_500_000}).encode()
    head = b"POST /api/v1/timeseries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
    chunked = raw_exchange(base, head + b"Transfer-Encoding: chunked\r\n\r\n" + _chunked(payload))
    sized = raw_exchange(base, head + b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
    for status, headers, body in (chunked, sized):
        error = assert_json_error(status, headers, body, 413, "RequestEntityTooLarge")
        assert "1000000 bytes" in error["message"]


def test_a_chunked_body_within_the_limit_is_answered(base: str) -> None:
    payload = json.dumps(QUERY).encode()
    status, _, body = raw_exchange(base, b"POST /api/v1/timeseries HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                         b"application/json\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   + _chunked(payload, 50))
    assert status == 200, body[:300]
    assert [d["date"] for d in json.loads(body)["series"]] == ["2023-01-05"]


def test_the_front_limits_are_settings(tmp_path: Path) -> None:
    """POLYFIS_MAX_REQUEST_LINE and POLYFIS_MAX_HEADER_BYTES set the 414 and 431 limits of a live server, and
    POLYFIS_HEADER_TIMEOUT_S and POLYFIS_BODY_TIMEOUT_S its deadlines: a late request gets a JSON 408."""
    root = tmp_path / "archive"
    with ArchiveWriter(root) as writer:
        writer.add("T1", dt.datetime(2023, 1, 5, 10, tzinfo=dt.UTC), "EPSG:32633",
                   {b: (band_array(b), band_transform(b)) for b in S2_BANDS})
    env = {"POLYFIS_ARCHIVE": str(root), "POLYFIS_JOBS_DIR": str(tmp_path / "jobs"),
           "POLYFIS_MAX_REQUEST_LINE": "1024", "POLYFIS_MAX_HEADER_BYTES": "4096", "POLYFIS_HEADER_TIMEOUT_S": "1",
           "POLYFIS_BODY_TIMEOUT_S": "1", "POLYFIS_BODY_MIN_RATE": "1000000"}
    with polyfis_server(workers=1, env=env, timeout_s=120) as server:
        began = time.monotonic()
        status, headers, body = raw_exchange(server.base, b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never ends
        message = assert_json_error(status, headers, body, 408, "RequestTimeout")["message"]
        assert "headers within 1 s, POLYFIS_HEADER_TIMEOUT_S" in message and time.monotonic() - began < 5
        status, headers, body = raw_exchange(server.base, b"POST /api/v1/timeseries HTTP/1.1\r\nHost: x\r\n"
                                                          b"Content-Length: 1000\r\n\r\n{\"geometry\"")
        assert "body within 1 s" in assert_json_error(status, headers, body, 408, "RequestTimeout")["message"]
        status, headers, body = raw_exchange(server.base, b"GET /health?" + b"a" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert "1024 bytes" in assert_json_error(status, headers, body, 414, "RequestURITooLarge")["message"]
        request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"b" * 5000 + b"\r\n\r\n"
        status, headers, body = raw_exchange(server.base, request[:4096])
        assert "4096 bytes" in assert_json_error(status, headers, body, 431, "RequestHeaderFieldsTooLarge")["message"]
        status, _, body = raw_exchange(server.base, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status == 200


BUSY_SCRIPT = """//VERSION=3
const began = Date.now();
while (Date.now() - began < 5000) {}
function setup() { return {input: ["B04", "dataMask"], output: [{id: "default", bands: 1}]}; }
function evaluatePixel(s) { return [s.B04]; }"""


def test_health_answers_while_every_request_thread_runs_a_long_query(tmp_path: Path) -> None:
    """One request thread, taken by an evalscript whose top level runs for 5 s, and another such request
    queued behind it: /health still answers at once, on the front's health lane."""
    root = tmp_path / "archive"
    with ArchiveWriter(root) as writer:
        writer.add("T1", dt.datetime(2023, 1, 5, 10, tzinfo=dt.UTC), "EPSG:32633",
                   {b: (band_array(b), band_transform(b)) for b in S2_BANDS})
    env = {"POLYFIS_ARCHIVE": str(root), "POLYFIS_JOBS_DIR": str(tmp_path / "jobs"), "POLYFIS_SERVER_THREADS": "1"}
    body = {"input": {"bounds": {"geometry": QUERY["geometry"],
                                 "properties": {"crs": "http://www.opengis.net/def/crs/EPSG/0/32633"}},
                      "data": [{"type": "sentinel-2-l1c"}]},
            "aggregation": {"timeRange": {"from": "2023-01-01T00:00:00Z", "to": "2023-01-31T00:00:00Z"},
                            "aggregationInterval": {"of": "P1D"}, "resx": 10, "resy": 10, "evalscript": BUSY_SCRIPT}}
    with polyfis_server(workers=1, env=env, timeout_s=120) as server:
        assert timed_get(f"{server.base}/health", timeout=10) is not None
        finished: list[float] = []
        began = time.monotonic()

        def busy() -> None:
            timed_get(f"{server.base}/api/v1/statistics", timeout=60, body=body)
            finished.append(time.monotonic() - began)

        threads = [threading.Thread(target=busy) for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        took = [timed_get(f"{server.base}/health", timeout=30) for _ in range(3)]
        assert not finished  # the long queries were still running
        for thread in threads:
            thread.join()
    assert all(t is not None and t < 2.0 for t in took), took
    assert min(finished) > 4.0  # each query did run its 5 s


def test_a_bad_front_setting_stops_the_start_naming_the_variable() -> None:
    from stats.errors import ConfigError
    from stats.settings import Settings

    with pytest.raises(ConfigError, match=r"POLYFIS_HEADER_TIMEOUT_S: expected a positive number of seconds, got 0"):
        Settings.from_env({"POLYFIS_HEADER_TIMEOUT_S": "0"})
    assert FrontLimits.from_settings(Settings.from_env({"POLYFIS_SERVER_THREADS": "8"})).threads == 8
