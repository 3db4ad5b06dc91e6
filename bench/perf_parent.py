"""The benchmark's parent side: page cache, contender processes, their RSS and the machine's other load.

:func:`run_child` warms the page cache, runs one :class:`perf_job.Job` in a fresh interpreter
(``bench/perf.py --child``), polls the summed RSS of its process tree and notes the CPU other processes
used meanwhile; :func:`combine_runs` merges repeated runs. :func:`disk_penalty` and :func:`damon_reclaim`
describe how much a page-cache miss costs on this machine and whether the kernel reclaims idle pages.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import BENCH, REPO, warm_page_cache
from perf_job import Job

#: The script a contender process runs (with ``--child``).
ENTRY = BENCH / "perf.py"


class TreeMonitor(threading.Thread):
    """Polls the summed RSS of a process and all its descendants; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.peak_processes = 0
        self.pids: set[int] = {pid}
        self._stop_event = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop_event.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            self.pids.update(proc.pid for proc in procs)
            total = 0
            for proc in procs:
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    total += proc.memory_info().rss
            if total > self.peak:
                self.peak, self.peak_processes = total, len(procs)
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def cpu_snapshot() -> dict[int, tuple[float, float]]:
    """CPU seconds (user + system) of every process: pid -> (create time, seconds)."""
    import psutil

    out = {}
    for proc in psutil.process_iter(["create_time", "cpu_times"]):
        times = proc.info["cpu_times"]
        if times is not None:
            out[proc.pid] = (proc.info["create_time"], times.user + times.system)
    return out


def background_cpu(before: dict[int, tuple[float, float]], after: dict[int, tuple[float, float]],
                   exclude: set[int]) -> float:
    """CPU seconds spent meanwhile by processes other than ``exclude`` (other work on the machine)."""
    total = 0.0
    for pid, (created, seconds) in after.items():
        if pid in exclude:
            continue
        start = before.get(pid)
        total += seconds - start[1] if start is not None and start[0] == created else seconds
    return total


def disk_penalty(files: Sequence[str]) -> dict[str, float]:
    """Seconds per GiB that reading tiles from disk costs over reading them from the page cache.

    Reads every full-resolution tile of ``files`` (all our own benchmark files) warm, drops them from the
    page cache (``posix_fadvise(DONTNEED)``), reads them again and compares.
    """
    import rasterio

    def read_all() -> float:
        t0 = time.perf_counter()
        for path in files:
            with rasterio.open(path) as src:
                for _, window in src.block_windows(1):
                    src.read(1, window=window)
        return time.perf_counter() - t0

    warm_page_cache(files)
    warm = read_all()
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    before = _read_bytes()
    cold = read_all()
    after = _read_bytes()
    size = after - before if before is not None and after is not None else 0
    if not size:  # no /proc/self/io: assume whole files
        size = sum(os.path.getsize(p) for p in files)
    return {"warm_s": warm, "cold_s": cold, "bytes": size, "s_per_gib": max(0.0, cold - warm) / (size / 2**30)}


def _read_bytes() -> int | None:
    """Bytes this process has read from storage so far (``/proc/self/io``), None where unknown."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("read_bytes:"):
                return int(line.split(":")[1])
    return None


def damon_reclaim() -> str | None:
    """A description of a running DAMON ``pageout`` scheme (proactive reclaim of idle pages), if any.

    Only reads ``/sys/kernel/mm/damon``; the benchmark never changes it.
    """
    root = Path("/sys/kernel/mm/damon/admin/kdamonds")
    try:
        for kdamond in sorted(p for p in root.iterdir() if p.name.isdigit()):
            if (kdamond / "state").read_text().strip() != "on":
                continue
            for context in (kdamond / "contexts").glob("[0-9]*"):
                aggr_us = int((context / "monitoring_attrs/intervals/aggr_us").read_text())
                for scheme in (context / "schemes").glob("[0-9]*"):
                    if (scheme / "action").read_text().strip() != "pageout":
                        continue
                    age = int((scheme / "access_pattern/age/min").read_text()) * aggr_us / 1e6
                    quota = int((scheme / "quotas/bytes").read_text())
                    reset = int((scheme / "quotas/reset_interval_ms").read_text())
                    return (f"DAMON pageout of pages idle for at least {age:.0f} s, up to "
                            f"{quota / 2**20:.0f} MiB per {reset} ms")
    except (OSError, ValueError):
        return None
    return None


def run_child(job: Job, archive_files: Sequence[str]) -> dict[str, Any]:
    """Warm the page cache, run ``job`` in a fresh interpreter, poll its tree's RSS; return its result.

    The result also says how much CPU other processes used meanwhile (``background_cpu_s``) and how much
    the contender read from disk rather than from the page cache (``disk_read_bytes``).
    """
    warm_s, _ = warm_page_cache(archive_files)
    with tempfile.TemporaryDirectory(prefix="polyfis-perf-") as tmp:
        spec = Path(tmp) / "job.json"
        job.out = str(Path(tmp) / "result.json")
        job.save(spec)
        before = cpu_snapshot()
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(ENTRY), "--child", str(spec)], cwd=REPO)
        monitor = TreeMonitor(proc.pid)
        monitor.start()
        proc.wait()
        monitor.stop()
        process_s = time.perf_counter() - t0
        other = background_cpu(before, cpu_snapshot(), monitor.pids | {os.getpid()})
        out = Path(job.out)
        result = json.loads(out.read_text()) if out.is_file() else {
            "status": "error", "message": f"the child exited with {proc.returncode} without a result"}
    result.update(process_s=process_s, page_cache_warmup_s=warm_s, peak_rss_bytes=max(
        monitor.peak, int(result.get("maxrss_self_bytes", 0))), peak_rss_processes=monitor.peak_processes,
        background_cpu_s=other, load_before=load)
    return result


def combine_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from repeated runs: the median run's details with the medians of the timings, the
    highest peak RSS, and every run's figures under ``runs``."""
    ok = [r for r in runs if r.get("status") == "ok"]
    if not ok:
        return runs[-1]
    out = dict(sorted(ok, key=lambda r: r["wall_s"])[(len(ok) - 1) // 2])
    for key in ("wall_s", "cold_s", "warm_s"):
        if key in out:
            out[key] = statistics.median(r[key] for r in ok)
    out["peak_rss_bytes"] = max(r["peak_rss_bytes"] for r in runs)
    out["runs"] = [{k: r.get(k) for k in ("status", "wall_s", "cold_s", "warm_s", "peak_rss_bytes",
                                          "process_s", "background_cpu_s", "disk_read_bytes")} for r in runs]
    return out
