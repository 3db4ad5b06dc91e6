"""Soak test: the load test's mix for ``--minutes`` with a kill -9 of a worker every minute and a batch job
submitted every minute; no batch row may be lost and no request may fail but those a kill cut.

Run:  .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/soak.py [--minutes 10] [--users 20]
      [--workers 2] [--polygons 3000] [--results-dir DIR]

It starts ``polyfis serve`` on the demo archive with an empty jobs folder and runs locust headless
(``bench/soak_locustfile.py``: the mix of ``bench/locustfile.py``, each failure written with its start time).
At the start and after each kill it submits a batch job of ``--polygons`` demo polygons over 2023. Every
minute it kills with SIGKILL the worker holding a batch job's lock (else the workers in turn) and times until
the arbiter has replaced it. After the load it waits for every job, reads its CSV results and compares their
(id, date) rows with the same batch computed in this process (``polyfis.batch``). A failed request counts as
cut by a kill when it failed at the connection (no HTTP status) and a kill fell between its start (less 2 s,
for a kept-alive connection the kill closed) and its end; any other failure is reported as such.
Results: ``soak.md`` and ``.json`` in ``--results-dir``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from common import (
    BENCH,
    BIN,
    REPO,
    add_results_dir,
    command_line,
    describe_machine,
    git_revision,
    machine_info,
    polyfis_server,
    write_results,
)

TIME = {"from": "2023-01-01", "to": "2023-12-31"}
OPTIONS = {"bands": ["B04", "B08"], "indices": ["NDVI"], "statistics": ["mean", "p50"]}
#: Seconds around a kill within which a connection-level failure is taken as cut by it (see the docstring).
KILL_SLACK_BEFORE_S, KILL_SLACK_AFTER_S = 0.5, 2.0


def batch_polygons(count: int) -> dict[str, Any]:
    """``count`` demo polygons (the demo's features in turn), each with its own id."""
    features = json.loads((REPO / "stats" / "fixtures" / "demo_polygons.geojson").read_text())["features"]
    chosen = [features[i % len(features)] for i in range(count)]
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": f"{f['properties']['name']}-{i}"}, "geometry": f["geometry"]}
        for i, f in enumerate(chosen)]}


def call(url: str, body: dict[str, Any] | None = None, timeout: float = 300) -> bytes:
    """GET ``url`` (POST ``body`` as JSON), retried for a minute if the connection fails (a worker was killed)."""
    data = json.dumps(body).encode() if body is not None else None
    deadline = time.monotonic() + 60
    while True:
        request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return bytes(answer.read())
        except urllib.error.HTTPError:
            raise
        except (ConnectionError, urllib.error.URLError):  # not a timeout: a POST that timed out may have landed
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def workers_of(arbiter: int) -> list[int]:
    """The pids of the arbiter's worker processes."""
    import psutil

    return sorted(child.pid for child in psutil.Process(arbiter).children())


def job_holder(jobs_dir: Path, workers: list[int]) -> int | None:
    """The worker holding a batch job's lock, if any."""
    for lock in jobs_dir.glob("*/lock"):
        try:
            pid = json.loads(lock.read_text())["pid"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if pid in workers:
            return int(pid)
    return None


def kill_one(arbiter: int, jobs_dir: Path, turn: int, workers: int) -> dict[str, Any]:
    """SIGKILL one worker (the one running a batch job, else the next in turn); seconds until replaced."""
    pids = workers_of(arbiter)
    holder = job_holder(jobs_dir, pids)
    victim = holder if holder is not None else pids[turn % len(pids)]
    at = time.time()
    os.kill(victim, signal.SIGKILL)
    while True:
        now = [p for p in workers_of(arbiter) if p != victim]
        if len(now) >= workers or time.time() - at > 120:
            break
        time.sleep(0.05)
    return {"at": at, "pid": victim, "had_batch_job": holder is not None, "replaced_s": round(time.time() - at, 2)}


def cut_by_kill(failure: dict[str, Any], kills: list[dict[str, Any]]) -> bool:
    """Whether a failed request failed at the connection while a kill happened (see the module docstring)."""
    if failure.get("status"):
        return False
    start, end = failure["start"], failure["start"] + failure["seconds"]
    return any(start - KILL_SLACK_AFTER_S <= k["at"] <= end + KILL_SLACK_BEFORE_S for k in kills)


def reference_keys(polygons: dict[str, Any]) -> set[tuple[str, str]]:
    """The (id, date) rows of the batch computed in this process on the demo archive."""
    import polyfis

    table = polyfis.batch(polygons, TIME["from"], TIME["to"], **OPTIONS).to_pandas()
    return {(str(i), str(d)[:10]) for i, d in zip(table["id"], table["date"])}


def job_keys(base: str, job_id: str) -> set[tuple[str, str]]:
    """The (id, date) rows of a finished job's CSV results."""
    text = call(f"{base}/api/v1/batch/{job_id}/results?format=csv").decode()
    return {(row["id"], row["date"][:10]) for row in csv.DictReader(io.StringIO(text))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--polygons", type=int, default=3000)
    add_results_dir(parser)
    args = parser.parse_args()
    polygons = batch_polygons(args.polygons)
    body = {"polygons": polygons, "time": TIME, "options": OPTIONS}
    with tempfile.TemporaryDirectory(prefix="polyfis-soak-") as scratch:
        jobs_dir = Path(scratch) / "jobs"
        failures_path = Path(scratch) / "failures.jsonl"
        failures_path.touch()
        prefix = Path(scratch) / "soak"
        env = {"POLYFIS_JOBS_DIR": str(jobs_dir), "SOAK_FAILURES": str(failures_path)}
        with polyfis_server(workers=args.workers, env=env, timeout_s=600) as server:
            locust = subprocess.Popen(
                [str(BIN / "locust"), "-f", str(BENCH / "soak_locustfile.py"), "--headless", "--host", server.base,
                 "--users", str(args.users), "--spawn-rate", str(args.users), "--run-time", f"{args.minutes * 60}s",
                 "--csv", str(prefix), "--only-summary"], env={**os.environ, **env},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                t0 = time.time()
                jobs = [json.loads(call(f"{server.base}/api/v1/batch", body))["id"]]
                kills = []
                for minute in range(1, args.minutes):
                    time.sleep(max(0.0, t0 + 60 * minute - time.time()))
                    kills.append(kill_one(server.pid, jobs_dir, minute, args.workers))
                    print(f"minute {minute}: killed {kills[-1]}", flush=True)
                    jobs.append(json.loads(call(f"{server.base}/api/v1/batch", body))["id"])
                locust.wait(timeout=args.minutes * 60 + 180)
            finally:
                if locust.poll() is None:
                    locust.terminate()
                    locust.wait(30)
            load_end = time.time()
            statuses = {}
            for job_id in jobs:
                while True:
                    status = json.loads(call(f"{server.base}/api/v1/batch/{job_id}"))
                    if status["status"] in ("DONE", "FAILED") or time.time() - load_end > 900:
                        break
                    time.sleep(2)
                statuses[job_id] = status
            drained_s = time.time() - load_end
            found = {j: job_keys(server.base, j) for j, s in statuses.items() if s["status"] == "DONE"}
        with open(f"{prefix}_stats.csv", encoding="utf-8") as fh:
            aggregated = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
        failures = [json.loads(line) for line in failures_path.read_text().splitlines() if line.strip()]
    expected = reference_keys(polygons)
    lost = {j: len(expected - keys) for j, keys in found.items()}
    extra = {j: len(keys - expected) for j, keys in found.items()}
    cut = [f for f in failures if cut_by_kill(f, kills)]
    other = [f for f in failures if not cut_by_kill(f, kills)]
    report: dict[str, Any] = {
        "command": command_line(__file__), "revision": git_revision(), "machine": machine_info(),
        "args": vars(args) | {"results_dir": None},
        "requests": int(aggregated["Request Count"]), "failures": int(aggregated["Failure Count"]),
        "rps": float(aggregated["Requests/s"]), "p50_ms": float(aggregated["50%"]), "p95_ms": float(aggregated["95%"]),
        "p99_ms": float(aggregated["99%"]), "kills": kills, "cut_by_kills": len(cut), "other_failures": other,
        "jobs": {j: {"status": s["status"], "rows": s.get("rows"), "lost_rows": lost.get(j),
                     "extra_rows": extra.get(j)} for j, s in statuses.items()},
        "expected_rows_per_job": len(expected), "jobs_drained_s": round(drained_s, 1),
    }
    write_results(args.results_dir, "soak", report, markdown(report, args))
    print(markdown(report, args))


def markdown(report: dict[str, Any], args: argparse.Namespace) -> str:
    """The soak report as Markdown."""
    jobs = report["jobs"].values()
    done = sum(j["status"] == "DONE" for j in jobs)
    lost = sum(j["lost_rows"] or 0 for j in jobs)
    replaced = [k["replaced_s"] for k in report["kills"]]
    lines = [
        "# Soak: mixed load with a worker killed every minute", "",
        f"Command: `{report['command']}` (polyfis checkout {report['revision']}); {args.workers} workers on "
        f"127.0.0.1, {args.users} locust users for {args.minutes} min with the load test's mix, "
        f"{describe_machine(report['machine'])}, demo archive. A batch job of {args.polygons} polygons over 2023 "
        "submitted at the start and after each kill; every minute a kill -9 of the worker running a batch job "
        "(else the next worker).", "",
        "| figure | value |", "|---|---:|",
        f"| requests | {report['requests']} |",
        f"| req/s | {report['rps']:.2f} |",
        f"| p50 / p95 / p99 ms | {report['p50_ms']:.0f} / {report['p95_ms']:.0f} / {report['p99_ms']:.0f} |",
        f"| failed requests | {report['failures']} |",
        f"| of which cut by a kill (connection closed while in flight) | {report['cut_by_kills']} |",
        f"| other failures | {len(report['other_failures'])} |",
        f"| workers killed | {len(report['kills'])} ({sum(k['had_batch_job'] for k in report['kills'])} while running "
        "a batch job) |",
        f"| seconds until a killed worker was replaced (max) | {max(replaced) if replaced else '-'} |",
        f"| batch jobs DONE | {done} of {len(report['jobs'])} |",
        f"| rows per job (expected, from `polyfis.batch` in process) | {report['expected_rows_per_job']} |",
        f"| batch rows lost, all jobs | {lost} |",
        f"| seconds after the load until every job was finished | {report['jobs_drained_s']} |",
    ]
    if report["other_failures"]:
        lines += ["", "Other failures:", ""] + [f"- {f['name']}: {f['status']} {f['error']}"
                                              for f in report["other_failures"][:20]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
