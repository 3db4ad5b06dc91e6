"""Load test: polyfis under gunicorn on 127.0.0.1, driven by locust headless, bounded in time.

Run:  .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/load.py [--users 20] [--seconds 60] [--workers 2]

It builds (or reuses) the demo archive, starts ``polyfis serve`` on a free local port, runs
``bench/locustfile.py`` (time series, FIS and Statistical requests in a 5:3:2 mix) and writes the
requests per second and p50/p95/p99 latencies per request kind to ``bench/results/load.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    port = free_port()
    env = dict(os.environ)
    server = subprocess.Popen([str(BIN / "polyfis"), "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", str(args.workers)], env=env, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                break
            except OSError:
                time.sleep(0.5)
        prefix = HERE / "results" / "load"
        prefix.parent.mkdir(exist_ok=True)
        subprocess.run([str(BIN / "locust"), "-f", str(HERE / "locustfile.py"), "--headless",
                        "--host", f"http://127.0.0.1:{port}", "--users", str(args.users),
                        "--spawn-rate", str(args.users), "--run-time", f"{args.seconds}s", "--csv", str(prefix),
                        "--only-summary"], check=False, timeout=args.seconds + 120)
    finally:
        server.terminate()
        server.wait(30)
    rows = list(csv.DictReader(open(f"{prefix}_stats.csv", encoding="utf-8")))
    for suffix in ("_stats.csv", "_stats_history.csv", "_failures.csv", "_exceptions.csv"):
        Path(f"{prefix}{suffix}").unlink(missing_ok=True)
    table = [{"name": r["Name"], "requests": int(r["Request Count"]), "failures": int(r["Failure Count"]),
              "rps": float(r["Requests/s"]), "p50_ms": float(r["50%"]), "p95_ms": float(r["95%"]),
              "p99_ms": float(r["99%"])} for r in rows]
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine()}
    (HERE / "results" / "load.json").write_text(json.dumps({"args": vars(args), "machine": machine, "rows": table},
                                                           indent=2) + "\n")
    lines = ["# Load test: mixed time series, FIS and Statistical requests", "",
             f"Command: `.venv/bin/python bench/load.py --users {args.users} --seconds {args.seconds} "
             f"--workers {args.workers}`; gunicorn with {args.workers} workers x 2 threads on 127.0.0.1, "
             f"locust in the same machine ({machine['cpus']} CPUs, {machine['machine']}, Python {machine['python']}), "
             "demo archive (37 dates), one year per time series.", "",
             "| request | requests | failures | req/s | p50 ms | p95 ms | p99 ms |", "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['name']} | {r['requests']} | {r['failures']} | {r['rps']:.2f} | {r['p50_ms']:.0f} | "
              f"{r['p95_ms']:.0f} | {r['p99_ms']:.0f} |" for r in table]
    (HERE / "results" / "load.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
