"""Load test: polyfis under gunicorn on 127.0.0.1, driven by locust headless, bounded in time.

Run:  .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/load.py [--users 20] [--seconds 60]
      [--workers 2] [--results-dir DIR]

It builds (or reuses) the demo archive, starts ``polyfis serve`` on a free local port, runs
``bench/locustfile.py`` (time series, FIS and Statistical requests in a 5:3:2 mix) and writes the
requests per second and p50/p95/p99 latencies per request kind to ``load.md`` and ``.json`` in
``--results-dir`` (default ``bench/results``). When that folder already holds a ``load.json``, the report
also gives the previous run's aggregated figures and this run's ratio to them.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
from pathlib import Path
from typing import Any

from common import (
    BENCH,
    BIN,
    add_results_dir,
    command_line,
    describe_machine,
    git_revision,
    machine_info,
    polyfis_server,
    write_results,
)

#: Seconds ``polyfis serve`` may take to answer ``/health`` (it builds the demo archive on a first run).
START_TIMEOUT_S = 600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    add_results_dir(parser)
    args = parser.parse_args()
    args.results_dir.mkdir(parents=True, exist_ok=True)
    prefix = args.results_dir / "load"
    previous_path = args.results_dir / "load.json"
    previous = json.loads(previous_path.read_text()) if previous_path.exists() else None
    with polyfis_server(workers=args.workers, timeout_s=START_TIMEOUT_S) as server:
        subprocess.run([str(BIN / "locust"), "-f", str(BENCH / "locustfile.py"), "--headless",
                        "--host", server.base, "--users", str(args.users),
                        "--spawn-rate", str(args.users), "--run-time", f"{args.seconds}s", "--csv", str(prefix),
                        "--only-summary"], check=False, timeout=args.seconds + 120)
    with open(f"{prefix}_stats.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for suffix in ("_stats.csv", "_stats_history.csv", "_failures.csv", "_exceptions.csv"):
        Path(f"{prefix}{suffix}").unlink(missing_ok=True)
    table = [{"name": r["Name"], "requests": int(r["Request Count"]), "failures": int(r["Failure Count"]),
              "rps": float(r["Requests/s"]), "p50_ms": float(r["50%"]), "p95_ms": float(r["95%"]),
              "p99_ms": float(r["99%"])} for r in rows]
    report: dict[str, Any] = {
        "command": command_line(__file__),
        "args": {"users": args.users, "seconds": args.seconds, "workers": args.workers},
        "machine": machine_info(),
        "revision": git_revision(),
        "rows": table,
    }
    setup = (f"Command: `{report['command']}` (polyfis checkout {report['revision']}); `polyfis serve` "
             f"(gunicorn's arbiter, waitress workers) with {args.workers} workers on 127.0.0.1, locust in the same "
             "machine "
             f"({describe_machine(report['machine'])}), demo archive (37 dates), one year per time series.")
    lines = ["# Load test: mixed time series, FIS and Statistical requests", "", setup, "",
             "| request | requests | failures | req/s | p50 ms | p95 ms | p99 ms |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['name']} | {r['requests']} | {r['failures']} | {r['rps']:.2f} | {r['p50_ms']:.0f} | "
              f"{r['p95_ms']:.0f} | {r['p99_ms']:.0f} |" for r in table]
    lines += compare(table, previous)
    write_results(args.results_dir, "load", report, "\n".join(lines))
    print("\n".join(lines))


def compare(table: list[dict[str, Any]], previous: dict[str, Any] | None) -> list[str]:
    """Lines comparing this run's aggregated figures with the previous run's (none without one)."""
    before = next((r for r in (previous or {}).get("rows", []) if r["name"] == "Aggregated"), None)
    now = next((r for r in table if r["name"] == "Aggregated"), None)
    if before is None or now is None or not before["rps"] or not before["p95_ms"]:
        return []
    revision = (previous or {}).get("revision", "unknown revision")
    return ["", f"Previous run ({revision}): {before['rps']:.2f} req/s, "
            f"p95 {before['p95_ms']:.0f} ms, {before['failures']} failures. This run / previous: "
            f"{now['rps'] / before['rps']:.2f}x the requests per second, {now['p95_ms'] / before['p95_ms']:.2f}x "
            "the p95."]


if __name__ == "__main__":
    main()
