"""Helpers shared by the polyfis benchmarks in ``bench/``.

* where things are: the repository, ``bench/results`` and the virtualenv's scripts, and paths as a report
  shows them (relative to the repository, never a machine path);
* what a result was measured on and with: the machine, package versions, the checkout's revision and the
  command line;
* writing a result as ``<name>.json`` and ``<name>.md`` into ``--results-dir``;
* measuring: repeated wall times, warming the OS page cache, a free local port and a ``polyfis serve``
  started on it.

Only the standard library is imported at module level, so importing this module in a timed child process
costs nothing (psutil and rasterio are imported where used).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
DATA = BENCH / ".data"
BIN = Path(sys.executable).parent

#: Top-level packages whose uncommitted changes mark a revision as ``+local changes``.
SOURCE_PACKAGES: tuple[str, ...] = ("polyfis", "stats", "service")


# --------------------------------------------------------------------------------------------------------
# paths and the command line
# --------------------------------------------------------------------------------------------------------


def display_path(path: Path) -> str:
    """``path`` relative to the repository when inside it, else its name (no machine paths in the results)."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return path.name


def command_line(script: str | Path, args: Sequence[str] | None = None) -> str:
    """The command as typed from the repository root, e.g. ``.venv/bin/python bench/perf.py --size small``.

    ``args`` defaults to this process's arguments; absolute paths among them are shown by
    :func:`display_path`.
    """
    given = sys.argv[1:] if args is None else args
    shown = [a if not Path(a).is_absolute() else display_path(Path(a)) for a in given]
    return shlex.join([".venv/bin/python", display_path(Path(script)), *shown])


def add_results_dir(parser: argparse.ArgumentParser) -> None:
    """The ``--results-dir`` option (default ``bench/results``) of every benchmark that writes results."""
    parser.add_argument("--results-dir", type=Path, default=RESULTS,
                        help="where to write the result files (default bench/results)")


def write_results(results_dir: Path, name: str, report: Mapping[str, Any], markdown: str,
                  suffix: str = "") -> tuple[Path, Path]:
    """Write ``<name>.json<suffix>`` and ``<name>.md<suffix>`` into ``results_dir`` (created if missing)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path = results_dir / f"{name}.json{suffix}"
    markdown_path = results_dir / f"{name}.md{suffix}"
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    markdown_path.write_text(markdown.rstrip("\n") + "\n", encoding="utf-8")
    return json_path, markdown_path


# --------------------------------------------------------------------------------------------------------
# machine, packages, revision
# --------------------------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """CPU count and model, RAM, architecture, Python and OS of this machine."""
    import psutil

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpus": os.cpu_count(), "cpu": cpu, "ram_bytes": psutil.virtual_memory().total,
            "machine": platform.machine(), "python": platform.python_version(), "os": platform.platform()}


def describe_machine(machine: Mapping[str, Any]) -> str:
    """:func:`machine_info` as one line of a report."""
    return (f"{machine['cpus']} CPUs ({machine['cpu']}), {machine['ram_bytes'] / 2**30:.1f} GiB RAM, "
            f"Python {machine['python']}, {machine['os']}")


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """The installed version of each package (``not installed`` where missing), then GDAL's."""
    import rasterio

    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["GDAL"] = rasterio.__gdal_version__
    return out


def describe_packages(packages: Mapping[str, str]) -> str:
    """:func:`package_versions` as one line of a report."""
    return ", ".join(f"{name} {version}" for name, version in packages.items())


def git_revision() -> str:
    """The checkout's commit, with ``+local changes`` when the source packages differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()

    revision = git("rev-parse", "--short", "HEAD") or "unknown"
    return revision + (" +local changes" if git("status", "--porcelain", "--", *SOURCE_PACKAGES) else "")


# --------------------------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------------------------


def repeat_times(fn: Callable[[], object], repeat: int) -> list[float]:
    """Wall seconds of each of ``repeat`` calls of ``fn``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def warm_page_cache(paths: Iterable[str | Path]) -> tuple[float, int]:
    """Read every file once (like ``cat files > /dev/null``); return seconds and bytes."""
    t0 = time.perf_counter()
    total = 0
    for path in paths:
        with open(path, "rb", buffering=0) as fh:
            while chunk := fh.read(16 << 20):
                total += len(chunk)
    return time.perf_counter() - t0, total


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Server:
    """A running ``polyfis serve``: its base URL, the seconds it took to answer ``/health`` and the pid of its
    arbiter (the parent of the worker processes)."""

    base: str
    start_s: float
    pid: int = 0


@contextlib.contextmanager
def polyfis_server(workers: int, env: Mapping[str, str] | None = None, timeout_s: float = 300.0) -> Iterator[Server]:
    """Run ``polyfis serve`` on a free port of 127.0.0.1 until the block ends.

    ``env`` is added to this process's environment. The block starts once ``/health`` answers; a server
    that exits or does not answer within ``timeout_s`` raises :class:`RuntimeError` with the end of its log.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.NamedTemporaryFile("w+", prefix="polyfis-serve-", suffix=".log") as log:
        t0 = time.perf_counter()
        server = subprocess.Popen([str(BIN / "polyfis"), "serve", "--host", "127.0.0.1", "--port", str(port),
                                   "--workers", str(workers)], env={**os.environ, **(env or {})},
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                if server.poll() is not None:
                    tail = Path(log.name).read_text()[-2000:]
                    raise RuntimeError(f"polyfis serve exited with {server.returncode}: {tail}")
                try:
                    urllib.request.urlopen(f"{base}/health", timeout=5).read()
                    break
                except OSError:
                    if time.perf_counter() - t0 > timeout_s:
                        raise RuntimeError(f"polyfis serve did not answer /health within {timeout_s:.0f} s") from None
                    time.sleep(0.1)
            yield Server(base, time.perf_counter() - t0, server.pid)
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(30)
