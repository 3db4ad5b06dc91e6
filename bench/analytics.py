"""Cost of the time-series analytics (``aggregation``, ``fill``, ``season``) on a query and on a batch.

Run:  .venv/bin/python bench/analytics.py [--size full|small] [--repeat 9] [--polygons N] [--batch-repeat 3]
      [--demo-dir DIR] [--results-dir DIR]

On the demo archive (37 dates of 2023; bands B04, B08, index NDVI, default statistics), in one run:

1. the one-year query of ``field_maize`` without analytics, with ``aggregation`` P10D mean, ``fill``
   whittaker P5D, ``season`` NDVI and all three: warm (model loaded, caches warm) and cold-ish (window
   cache emptied and a fresh cloud cache before each call: files are read again from the OS page cache),
   ``--repeat`` calls each, round-robin, medians; and ``stats.analytics.compute.analyse`` alone on the
   series' ``Observations``, the direct measure of the overhead;
2. a batch of ``--polygons`` rotated rectangles of 0.3-0.8 ha (one per cell of a 32 x 32 grid over the
   scene) in this process (``stats.batch.run_plan``, as ``compute_batch`` and ``run_batch`` with
   ``workers=0``) without analytics and with all three, ``--batch-repeat`` runs each after a warm-up run,
   with ``stats.batch.analytics.analytics_tables`` timed inside them;
3. a cProfile of ``analyse`` (field) and ``analytics_tables`` (batch), all three: the hot functions and
   their share (cProfile inflates code made of many small calls).

On 2 cores the default (full) run takes about 3 minutes, ``--size small`` (200 polygons, one batch run)
about 75 s. Writes ``analytics.md`` into ``--results-dir`` (default ``bench/results``); nothing asserts a time.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import math
import os
import pstats
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    add_results_dir,
    command_line,
    describe_machine,
    describe_packages,
    display_path,
    git_revision,
    machine_info,
    package_versions,
    repeat_times,
)

import polyfis
import stats.batch.output
from stats import Archive, TimeSeriesRequest, query_timeseries
from stats.analytics.compute import analyse
from stats.analytics.series import Observations
from stats.archive.synthetic import build_demo_archive, demo_polygons
from stats.batch import BatchPolygon, batch_options, batch_time, plan_batch, run_plan
from stats.clouds.cells import ProbabilityCache
from stats.clouds.model import default_model
from stats.datasets import window_cache

PACKAGES: tuple[str, ...] = ("polyfis", "numpy", "scipy", "pyarrow", "rasterio", "shapely")
FIELD = "field_maize"
YEAR = {"from": "2023-01-01", "to": "2023-12-31"}
BASE: dict[str, Any] = {"bands": ["B04", "B08"], "indices": ["NDVI"]}
AGGREGATION = {"aggregation": {"interval": "P10D", "method": "mean"}}
FILL = {"fill": {"method": "whittaker", "grid": "P5D"}}
SEASON = {"season": "NDVI"}
VARIANTS: dict[str, dict[str, Any]] = {"none": {}, "aggregation P10D mean": AGGREGATION,
                                       "fill whittaker P5D": FILL, "season NDVI": SEASON,
                                       "all three": {**AGGREGATION, **FILL, **SEASON}}
SIZES = {"full": {"polygons": 1000, "batch_repeat": 3}, "small": {"polygons": 200, "batch_repeat": 1}}
#: The demo scene (EPSG:32633): north-west corner and side, and the grid the batch rectangles are placed on.
X0, Y0, SIDE, GRID = 500040.0, 5100000.0, 5040.0, 32
SEED = 20230615
TARGET = 0.10


def batch_polygons(n: int) -> list[BatchPolygon]:
    """``n`` rotated rectangles of 0.3-0.8 ha, each inside its own cell of the grid (deterministic)."""
    from shapely import affinity
    from shapely.geometry import Polygon

    rng = np.random.default_rng([SEED, n])
    cell = SIDE / GRID
    out = []
    for k, c in enumerate(sorted(rng.choice(GRID * GRID, size=n, replace=False).tolist())):
        area, aspect = rng.uniform(3_000, 8_000), rng.uniform(1.0, 2.5)
        w = math.sqrt(area * aspect)
        h = area / w
        rect = affinity.rotate(Polygon([(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]),
                               rng.uniform(0, 180), origin=(0, 0))
        slack = max(0.0, cell / 2 - math.hypot(w, h) / 2 - 5)
        cx = X0 + (c % GRID + 0.5) * cell + rng.uniform(-slack, slack)
        cy = Y0 - (c // GRID + 0.5) * cell + rng.uniform(-slack, slack)
        out.append(BatchPolygon(f"b{k:04d}", affinity.translate(rect, cx, cy), "EPSG:32633"))
    return out


def hot_spots(fn: Callable[[], object], top: int = 10) -> dict[str, Any]:
    """cProfile of one call of ``fn``: the repository's functions by cumulative time, all by own time."""
    profile = cProfile.Profile()
    profile.enable()
    fn()
    profile.disable()
    st = pstats.Stats(profile)
    total = st.total_tt  # type: ignore[attr-defined]

    def where(file: str, line: int, name: str) -> str:
        shown = display_path(Path(file))
        if shown.startswith("stats/"):
            return f"{shown}:{line}({name})"
        return name if file == "~" else f"{file.split('site-packages/')[-1].split('/lib/')[-1]}:{name}"

    rows = [{"function": where(f, line, n), "calls": nc, "own_s": tt, "cum_s": ct,
             "ours": display_path(Path(f)).startswith(("stats/", "polyfis/"))}
            for (f, line, n), (_, nc, tt, ct, _) in st.stats.items()]  # type: ignore[attr-defined]
    cumulative = sorted((r for r in rows if r["ours"]), key=lambda r: -r["cum_s"])[:top]
    own = sorted(rows, key=lambda r: -r["own_s"])[:top]
    return {"total_s": total, "cumulative": cumulative, "own": own}


def field_part(archive: Archive, repeat: int) -> dict[str, Any]:
    """Warm and cold-ish query times per variant, and ``analyse`` alone."""
    geometry = next(f["geometry"] for f in demo_polygons()["features"] if f["properties"]["name"] == FIELD)
    requests = {name: TimeSeriesRequest.from_dict({"geometry": geometry, "time": YEAR, **BASE, **extra})
                for name, extra in VARIANTS.items()}
    warm: dict[str, list[float]] = {name: [] for name in VARIANTS}
    cold: dict[str, list[float]] = {name: [] for name in VARIANTS}
    results = {name: query_timeseries(request, archive) for name, request in requests.items()}  # warm-up
    for _ in range(repeat):  # round-robin, so that a busy spell of the machine hits every variant alike
        for name, request in requests.items():
            warm[name] += repeat_times(lambda r=request: query_timeseries(r, archive), 1)
        for name, request in requests.items():
            window_cache().clear()
            cache = ProbabilityCache()
            cold[name] += repeat_times(lambda r=request, c=cache: query_timeseries(r, archive, cache=c), 1)
    rows = []
    for name, request in requests.items():
        series, options = results[name].series, request.options
        obs = Observations.from_series(series, options)
        calls = max(50, 5 * repeat)
        analyse_all = repeat_times(lambda o=obs, q=request: analyse(o, q.options, q.time), calls)
        analyse_s = statistics.median(analyse_all)
        obs_s = statistics.median(repeat_times(lambda s=series, o=options: Observations.from_series(s, o), calls))
        rows.append({"variant": name, "dates": len(series), "warm_s": statistics.median(warm[name]),
                     "warm_all_s": warm[name], "cold_s": statistics.median(cold[name]), "cold_all_s": cold[name],
                     "analyse_s": analyse_s, "analyse_min_s": min(analyse_all), "observations_s": obs_s,
                     "analyse_calls": calls})
    for row in rows:
        row.update(warm_ratio=row["warm_s"] / rows[0]["warm_s"], cold_ratio=row["cold_s"] / rows[0]["cold_s"],
                   analyse_share_warm=row["analyse_s"] / rows[0]["warm_s"],
                   analyse_share_cold=row["analyse_s"] / rows[0]["cold_s"])
    request = requests["all three"]
    obs = Observations.from_series(results["all three"].series, request.options)
    profile = hot_spots(lambda: [analyse(obs, request.options, request.time) for _ in range(20)])
    return {"polygon": FIELD, "rows": rows, "profile": profile}


def batch_part(archive: Archive, n: int, runs: int) -> dict[str, Any]:
    """In-process batch without and with all three analytics; ``analytics_tables`` timed inside the runs."""
    polygons = batch_polygons(n)
    time_range = batch_time(YEAR["from"], YEAR["to"])
    plans = {name: plan_batch(archive, polygons, time_range, batch_options({**BASE, **VARIANTS[name]}))
             for name in ("none", "all three")}
    original = stats.batch.output.analytics_tables
    inside: list[tuple[float, tuple[Any, ...]]] = []  # (seconds, arguments) of each call

    def timed(*args: Any) -> Any:
        start = time.perf_counter()
        out = original(*args)
        inside.append((time.perf_counter() - start, args))
        return out

    stats.batch.output.analytics_tables = timed  # finish_table calls it by this name
    walls: dict[str, list[float]] = {name: [] for name in plans}
    analytics_s: list[float] = []
    shape: dict[str, Any] = {}
    try:
        run_plan(plans["none"], archive)  # warm-up: the page cache, GDAL, the model
        for _ in range(runs):
            for name, plan in plans.items():
                inside.clear()
                start = time.perf_counter()
                table, extra = run_plan(plan, archive)
                walls[name].append(time.perf_counter() - start)
                if name == "all three":
                    analytics_s.append(inside[-1][0])
                    shape = {"rows": table.num_rows, "tables": {k: v.num_rows for k, v in extra.items()},
                             "answered": len(set(table.column("id").to_pylist()))}
        profile = hot_spots(lambda: original(*inside[-1][1]))
    finally:
        stats.batch.output.analytics_tables = original
    none_s, all_s, tables_s = (statistics.median(v) for v in (walls["none"], walls["all three"], analytics_s))
    return {"polygons": n, "tasks": len(plans["none"].tasks), "runs": runs, "none_s": none_s,
            "none_all_s": walls["none"], "all_s": all_s, "all_all_s": walls["all three"], "ratio": all_s / none_s,
            "analytics_tables_s": tables_s, "analytics_tables_all_s": analytics_s, "share": tables_s / none_s,
            "per_polygon_ms": tables_s / n * 1000, **shape, "profile": profile}


def profile_lines(title: str, profile: dict[str, Any]) -> list[str]:
    lines = [f"**{title}** ({profile['total_s']:.2f} s profiled)", "",
             "| repository function (cumulative) | calls | cumulative s | share |", "|---|---:|---:|---:|"]
    lines += [f"| `{r['function']}` | {r['calls']:,} | {r['cum_s']:.3f} | {r['cum_s'] / profile['total_s']:.0%} |"
              for r in profile["cumulative"]]
    lines += ["", "| function (own time) | calls | own s | share |", "|---|---:|---:|---:|"]
    lines += [f"| `{r['function']}` | {r['calls']:,} | {r['own_s']:.3f} | {r['own_s'] / profile['total_s']:.0%} |"
              for r in profile["own"]]
    return lines + [""]


def verdict(share: float) -> str:
    return f"**met** (adds {share:.1%})" if share <= TARGET else \
        f"**missed** (adds {share:.0%}, {share / TARGET:.1f}x the 10 % allowed)"


def hottest(profile: dict[str, Any]) -> str:
    """The repository functions under the profiled one with the largest cumulative shares."""
    return ", ".join(f"`{r['function']}` {r['cum_s'] / profile['total_s']:.0%}" for r in profile["cumulative"][1:5])


def render(report: dict[str, Any]) -> str:
    field, batch, repeat = report["field"], report["batch"], report["repeat"]
    rows, all_row = field["rows"], field["rows"][-1]
    lines = ["# Time-series analytics: cost on a one-year query and on a batch", "",
             f"Command: `{report['command']}`  ", f"Run: {report['finished']}  ",
             f"Machine: {describe_machine(report['machine'])}  ",
             f"Packages: {describe_packages(report['packages'])}; polyfis checkout {report['revision']}  ",
             "Background: 1-minute load average {:.1f} at the start, {:.1f} at the end".format(*report["load_average"]),
             "",
             f"Archive: the demo archive ({rows[0]['dates']} dates of 2023 over `{FIELD}`). Request: bands B04, "
             "B08, index NDVI, default statistics (mean, min, max, std, p10, p50, p90).", "",
             f"## One-year query of `{FIELD}` (median of {repeat} calls per variant, round-robin)", "",
             "Warm: model loaded, window and cloud-probability caches warm. Cold-ish: window cache emptied and a "
             "fresh cloud cache before each call (files reopened and read from the OS page cache). `analyse` "
             f"alone: `stats.analytics.compute.analyse` on the series' `Observations` (median of "
             f"{rows[0]['analyse_calls']} calls); its share is of the query without analytics.", "",
             "| analytics | warm s | warm ratio | cold-ish s | cold-ish ratio | `analyse` ms median (min) "
             "| share of warm query | share of cold-ish query |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['variant']} | {r['warm_s']:.3f} | {r['warm_ratio']:.3f} | {r['cold_s']:.3f} | "
              f"{r['cold_ratio']:.3f} | {r['analyse_s'] * 1000:.3f} ({r['analyse_min_s'] * 1000:.3f}) | "
              f"{r['analyse_share_warm']:.1%} | {r['analyse_share_cold']:.1%} |" for r in rows]
    lines += ["", f"`Observations.from_series` (run by every query, with or without analytics): "
              f"{rows[0]['observations_s'] * 1000:.3f} ms.", "",
              f"## Batch: {batch['polygons']} rectangles of 0.3-0.8 ha over the year (in-process `run_plan`, "
              f"median of {batch['runs']} run(s) after a warm-up)", "",
              f"{batch['tasks']} tasks; with analytics: {batch.get('rows', 0):,} rows for "
              f"{batch.get('answered', 0)} polygons, analytics tables "
              + ", ".join(f"{k} {v:,} rows" for k, v in batch.get("tables", {}).items()) + ".", "",
              "| analytics | run_plan s | ratio | `analytics_tables` s | share of the batch without | per polygon ms |",
              "|---|---:|---:|---:|---:|---:|",
              f"| none | {batch['none_s']:.2f} | 1.000 | — | — | — |",
              f"| all three | {batch['all_s']:.2f} | {batch['ratio']:.3f} | {batch['analytics_tables_s']:.2f} | "
              f"{batch['share']:.1%} | {batch['per_polygon_ms']:.2f} |", "",
              "## Target: the analytics add at most 10 % (measured directly: `analyse` / `analytics_tables`)", "",
              f"- Field query, all three, warm: {verdict(all_row['analyse_share_warm'])}; cold-ish: "
              f"{verdict(all_row['analyse_share_cold'])}. Measured end-to-end ratios: warm "
              f"{all_row['warm_ratio']:.3f}, cold-ish {all_row['cold_ratio']:.3f} (they move with the background "
              "load: see the spread at the end).",
              f"- Batch, all three: {verdict(batch['share'])}; end-to-end ratio {batch['ratio']:.3f}. "
              f"`analytics_tables` takes {batch['per_polygon_ms']:.2f} ms per polygon; `analyse` on one series "
              f"takes {all_row['analyse_s'] * 1000:.2f} ms.", "",
              "## Where the time goes (cProfile)", "",
              f"- field `analyse`: {hottest(field['profile'])}", f"- batch `analytics_tables`: "
              f"{hottest(batch['profile'])}", ""]
    lines += profile_lines("`analyse`, field, all three, 20 calls", field["profile"])
    lines += profile_lines(f"`analytics_tables`, batch of {batch['polygons']}, all three", batch["profile"])
    lines += ["Spread (min-max s): " + "; ".join(
        f"{r['variant']} warm {min(r['warm_all_s']):.3f}-{max(r['warm_all_s']):.3f}, cold-ish "
        f"{min(r['cold_all_s']):.3f}-{max(r['cold_all_s']):.3f}" for r in rows)
        + f"; batch none {min(batch['none_all_s']):.2f}-{max(batch['none_all_s']):.2f}, all three "
        f"{min(batch['all_all_s']):.2f}-{max(batch['all_all_s']):.2f}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--repeat", type=int, default=9, help="calls per field variant, warm and cold-ish (>= 7)")
    parser.add_argument("--polygons", type=int, help=f"batch polygons (default 1000, small 200; at most {GRID ** 2})")
    parser.add_argument("--batch-repeat", type=int, help="measured batch runs per variant (default 3, small 1)")
    parser.add_argument("--demo-dir", type=Path, default=None, help="demo archive folder (default: polyfis's)")
    add_results_dir(parser)
    args = parser.parse_args()
    size = SIZES[args.size]
    polygons = args.polygons or size["polygons"]
    if not 1 <= polygons <= GRID ** 2 or args.repeat < 1:
        parser.error(f"--polygons must be 1..{GRID ** 2} and --repeat at least 1")
    load = [os.getloadavg()[0]]
    archive = polyfis.open_archive(build_demo_archive(args.demo_dir))
    default_model().probability(np.zeros((1, 10)))  # load the model outside the timings
    print(f"field query, {args.repeat} calls per variant ...", flush=True)
    field = field_part(archive, args.repeat)
    print(f"batch of {polygons} polygons ...", flush=True)
    batch = batch_part(archive, polygons, args.batch_repeat or size["batch_repeat"])
    load.append(os.getloadavg()[0])
    report = {"command": command_line(__file__), "load_average": load,
              "finished": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": machine_info(), "packages": package_versions(PACKAGES), "revision": git_revision(),
              "repeat": args.repeat, "field": field, "batch": batch}
    markdown = render(report)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "analytics.md").write_text(markdown + "\n", encoding="utf-8")
    print(markdown)


if __name__ == "__main__":
    main()
