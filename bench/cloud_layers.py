"""Stored CLP/CLM cloud layers: per-pixel queries and batches that read them, and the cost of computing them.

Run:  .venv/bin/python bench/cloud_layers.py [--size full|small] [--data-dir DIR] [--demo-dir DIR]
      [--runs 3] [--fallback-fields 50] [--results-dir DIR]

One command, three measurements, each in fresh Python processes (this script with ``--child``), and writes
``cloud_layers.md`` and ``.json`` into ``--results-dir`` (default ``bench/results``):

1. **Lake query**: one year (2023) of the demo lake (``stats.archive.synthetic.demo_polygons()``) on a copy
   of the demo archive whose layers this run stores, in ``cloud.mode`` ``averaged`` and ``pixel`` at 160 m and
   at 10 m, the pixel queries both from the stored layers (``cloud.source`` ``auto``) and scored on the fly
   (``model``). Cold means a fresh process per measurement: no window cache, no cell probabilities, no GDAL
   block cache and no open datasets; the OS page cache is warm (every archive file read once before), so the
   figure is decode- and compute-bound, not disk-bound. Imports, opening the archive and loading the model
   are outside the timing. Each child also repeats the query in-process the way ``bench/pixel_cloud.py``
   times its cold cache (a fresh ``ProbabilityCache``; here the window cache is emptied too, GDAL's block
   cache and the open datasets stay): that column is comparable with ``pixel_cloud.md``.
2. **1000-field batch**: the archive and polygon set of ``bench/perf.py`` (``--size full``: 24 dates of
   5490 x 5490 px, 1000 parcels; ``small``: 6 dates of 1098 x 1098 px, 40 parcels), on a copy with the
   layers stored, ``run_batch(..., workers=0)`` in ``averaged`` and ``pixel`` mode (160 m, the layers'
   cells), and ``pixel`` mode on the archive without layers (the per-polygon fallback) over the first
   ``--fallback-fields`` parcels only, with the averaged batch of the same parcels beside it.
3. **Layer computation**: ``store_cloud_layers(copy, workers=0)`` on the demo archive and on the batch's
   archive, in cloud cells and 10 m pixels per second, against the s2cloudless package's own
   ``S2PixelCloudDetector(all_bands=False).get_cloud_probability_maps`` on as many cells per tile (random
   reflectances in [0, 0.6): the model's time per row does not depend on the values), the model floor.

The copies are hard links of the band files (``polyfis clouds`` only adds files and renames item JSONs
into place, so the originals are never changed) in a temporary folder beside the data, removed at the end.
A target that is missed is profiled (cProfile, one more child) and the report names where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    DATA,
    add_results_dir,
    command_line,
    describe_machine,
    describe_packages,
    display_path,
    git_revision,
    machine_info,
    package_versions,
    warm_page_cache,
    write_results,
)

PACKAGES: tuple[str, ...] = ("polyfis", "numpy", "rasterio", "lightgbm", "s2cloudless", "pyarrow")
YEAR = ("2023-01-01", "2023-12-31")
LAKE_BANDS = ["B03", "B04", "B08"]
#: The cloud options of each lake case (the 10 m post-processing is ``bench/pixel_cloud.py``'s).
LAKE_CLOUDS: dict[str, dict[str, Any]] = {
    "averaged": {"mode": "averaged"},
    "pixel 160 m, stored layers": {"mode": "pixel", "resolution": 160},
    "pixel 10 m, stored layers": {"mode": "pixel", "resolution": 10, "average_over": 4, "dilation_size": 2},
    "pixel 160 m, model (on the fly)": {"mode": "pixel", "resolution": 160, "source": "model"},
    "pixel 10 m, model (on the fly)": {"mode": "pixel", "resolution": 10, "average_over": 4, "dilation_size": 2,
                                       "source": "model"},
}
QUERY_TARGET = 1.2
BATCH_TARGET = 1.3
PROFILE_LINES = 14
#: CPU seconds (all threads of the process) of each timed call of a child.
_CPU: list[float] = []


# --------------------------------------------------------------------------------------------------------
# the child processes
# --------------------------------------------------------------------------------------------------------


def _load_model() -> float:
    """Load s2cloudless outside the timings; its load time."""
    import numpy as np

    from stats.clouds.model import default_model

    t0 = time.perf_counter()
    default_model().probability(np.zeros((1, 10)))
    return time.perf_counter() - t0


def _profiled(fn: Any, profile: bool) -> tuple[Any, float, list[str] | None]:
    """``fn()``, its wall seconds and, with ``profile``, the top of its cProfile (cumulative, then own time)."""
    profiler = cProfile.Profile() if profile else None
    t0, c0 = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    out = fn()
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - t0
    _CPU.append(time.process_time() - c0)
    if profiler is None:
        return out, seconds, None
    return out, seconds, _profile_text(profiler)


def _profile_text(profiler: cProfile.Profile) -> dict[str, Any]:
    """The top of a profile as text (cumulative, then own time) and the functions with the most own time."""
    stats = pstats.Stats(profiler)
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    own = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    hot = [{"function": _strip_paths(f"{path}:{line}({name})"), "own_s": v[2], "cumulative_s": v[3],
            "share": v[2] / total if total else 0.0} for (path, line, name), v in own[:PROFILE_LINES]]
    ours = sorted(((k, v) for k, v in stats.stats.items()  # type: ignore[attr-defined]
                   if f"{os.sep}stats{os.sep}" in k[0] and k[2] not in ("query_timeseries", "run_batch")),
                  key=lambda kv: kv[1][3], reverse=True)
    inside = [{"function": _strip_paths(f"{path}:{line}({name})"), "cumulative_s": v[3],
               "share": v[3] / total if total else 0.0} for (path, line, name), v in ours[:PROFILE_LINES]]
    lines = []
    for sort in ("cumulative", "tottime"):
        buffer = io.StringIO()
        stats = pstats.Stats(profiler, stream=buffer)
        stats.sort_stats(sort).print_stats(PROFILE_LINES)
        text = buffer.getvalue()
        table = text[text.index("ncalls"):] if "ncalls" in text else text
        lines.append(f"sorted by {sort}:\n" + table.rstrip())
    return {"text": [_strip_paths(line) for line in lines], "hot": hot, "ours": inside, "total_s": total}


def _strip_paths(text: str) -> str:
    """cProfile lines with the site-packages and repository prefixes cut (no machine paths in the results)."""
    import site

    prefixes = sorted({*site.getsitepackages(), str(Path(__file__).resolve().parent.parent), sys.prefix,
                       sys.base_prefix}, key=len, reverse=True)
    for prefix in prefixes:
        text = text.replace(prefix + os.sep, "").replace(prefix, "")
    return text


def child_query(job: dict[str, Any]) -> dict[str, Any]:
    """One cold lake query (fresh process), then ``repeat`` in-process ones with the caches emptied."""
    from stats import Archive, TimeSeriesRequest, query_timeseries
    from stats.clouds.cells import ProbabilityCache
    from stats.datasets import window_cache

    archive = Archive.open(job["archive"])
    model_load = _load_model()
    request = TimeSeriesRequest.from_dict({"geometry": job["geometry"], "time": {"from": YEAR[0], "to": YEAR[1]},
                                           "bands": LAKE_BANDS, "cloud": job["cloud"]})
    window_cache().clear()
    cache = ProbabilityCache()
    result, cold, profile = _profiled(lambda: query_timeseries(request, archive, cache=cache), job["profile"])
    model_cells = cache.misses
    again = []
    for _ in range(job["repeat"]):
        window_cache().clear()
        fresh = ProbabilityCache()
        t0 = time.perf_counter()
        query_timeseries(request, archive, cache=fresh)
        again.append(time.perf_counter() - t0)
    series = [{"date": e.date.isoformat(), "valid": e.valid_pixels,
               "fraction": e.pixel_cloud.fraction if e.pixel_cloud else None,
               "source": e.pixel_cloud.source if e.pixel_cloud else None} for e in result.series]
    return {"cold_s": cold, "cold_cpu_s": _CPU[0], "in_process_s": again, "model_load_s": model_load,
            "model_cells": model_cells,
            "dates": len(series), "valid_pixels": sum(e["valid"] for e in series),
            "sources": sorted({str(e["source"]) for e in series}), "series": series, "profile": profile}


def child_batch(job: dict[str, Any]) -> dict[str, Any]:
    """One ``run_batch(..., workers=0)`` of the first ``limit`` parcels."""
    from stats import Archive
    from stats.batch import run_batch
    from stats.batch.inputs import read_polygons

    archive = Archive.open(job["archive"])
    model_load = _load_model()
    polygons = read_polygons(job["polygons"])
    if job["limit"]:
        polygons = polygons[: job["limit"]]
    with tempfile.TemporaryDirectory(prefix="polyfis-bench-") as tmp:
        out = Path(tmp) / "batch.parquet"
        summary, seconds, profile = _profiled(
            lambda: run_batch(archive, polygons, job["start"], job["end"], out, options=job["options"], workers=0,
                              progress=False), job["profile"])
        import pyarrow.parquet as pq

        table = pq.read_table(out)
    cols = table.column_names
    sources = sorted({str(s) for s in table.column("cloud_source").to_pylist()}) if "cloud_source" in cols else []
    return {"wall_s": seconds, "cpu_s": _CPU[0], "model_load_s": model_load, "polygons": len(polygons),
            "rows": summary.rows,
            "tasks": summary.tasks, "error_rows": summary.error_rows, "sources": sources, "profile": profile}


def child_layers(job: dict[str, Any]) -> dict[str, Any]:
    """``store_cloud_layers(workers=0)`` on the copy, then the model floor on as many cells per tile."""
    import numpy as np
    import rasterio
    from s2cloudless import S2PixelCloudDetector

    from stats import Archive
    from stats.archive.catalog import CLM_ASSET
    from stats.clouds.cells import NO_DATA
    from stats.clouds.store import store_cloud_layers, tile_grid

    model_load = _load_model()
    summary, seconds, profile = _profiled(lambda: store_cloud_layers(job["archive"], workers=0), job["profile"])
    archive = Archive.open(job["archive"])
    tile_px, cells = 0, []
    for acq in archive.acquisitions:
        rows, cols = tile_grid(acq).shape
        tile_px += rows * cols
        assert acq.cloud_layers is not None, f"{acq.id} has no layers after store_cloud_layers"
        with rasterio.open(acq.cloud_layers.clm) as src:
            cells.append(int((src.read(1) != NO_DATA).sum()))
    detector = S2PixelCloudDetector(all_bands=False)
    detector.get_cloud_probability_maps(np.zeros((1, 1, 1, 10)))
    rng = np.random.default_rng(0)
    floor = 0.0
    for n in cells:
        data = rng.uniform(0.0, 0.6, size=(1, n, 1, 10))
        t0 = time.perf_counter()
        detector.get_cloud_probability_maps(data)
        floor += time.perf_counter() - t0
    return {"wall_s": seconds, "cpu_s": _CPU[0], "model_load_s": model_load, "items": summary.items,
            "done": summary.done,
            "failed": summary.failed, "cells": sum(cells), "summary_cells": summary.cells, "tile_px": tile_px,
            "model_floor_s": floor, "clm_asset": CLM_ASSET, "profile": profile}


CHILDREN = {"query": child_query, "batch": child_batch, "layers": child_layers}


def run_child(job: dict[str, Any]) -> dict[str, Any]:
    """Run ``job`` in a fresh Python process; its result (the last line it prints, JSON) with the 1-minute load
    average of the machine after it. A profiled job reads on one thread (``POLYFIS_READ_THREADS=1``), so that
    cProfile, which sees the main thread only, sees the reads."""
    env = {**os.environ, **({"POLYFIS_READ_THREADS": "1"} if job.get("profile") else {})}
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], capture_output=True, text=True,
                          check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"child {job['kind']} failed ({done.returncode}): {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["load_after"] = os.getloadavg()[0]
    return result


# --------------------------------------------------------------------------------------------------------
# the parent
# --------------------------------------------------------------------------------------------------------


def linked_copy(src: Path, dst: Path) -> Path:
    """``src`` copied to ``dst`` with the files hard-linked (copied where links are not possible)."""
    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link, symlinks=True)
    return dst


def archive_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.tif") if p.is_file())


def measure_layers(name: str, archive: Path, profile: bool = False) -> dict[str, Any]:
    warm_page_cache(archive_files(archive))
    print(f"[layers] {name}: store_cloud_layers(workers=0) ...", flush=True)
    res = run_child({"kind": "layers", "archive": str(archive), "profile": profile})
    res["archive"] = name
    res["ratio"] = res["wall_s"] / res["model_floor_s"]
    print(f"[layers] {name}: {res['items']} items, {res['cells']:,} cells in {res['wall_s']:.1f} s "
          f"(model alone {res['model_floor_s']:.2f} s, x{res['ratio']:.1f})", flush=True)
    return res


def measure_lake(demo_layers: Path, lake: dict[str, Any], runs: int) -> dict[str, dict[str, Any]]:
    """Every lake case, ``runs`` fresh processes each, round-robin."""
    files = archive_files(demo_layers)
    attempts: dict[str, list[dict[str, Any]]] = {case: [] for case in LAKE_CLOUDS}
    for run in range(runs):
        for case, cloud in LAKE_CLOUDS.items():
            warm_page_cache(files)
            res = run_child({"kind": "query", "archive": str(demo_layers), "geometry": lake, "cloud": cloud,
                             "repeat": 1, "profile": False})
            attempts[case].append(res)
            print(f"[lake] {case}, run {run + 1}/{runs}: cold {res['cold_s']:.3f} s, in-process "
                  f"{min(res['in_process_s']):.3f} s, model cells {res['model_cells']:,}, sources {res['sources']}",
                  flush=True)
    out = {}
    for case, tries in attempts.items():
        cold = [t["cold_s"] for t in tries]
        inproc = [s for t in tries for s in t["in_process_s"]]
        first = tries[0]
        out[case] = {"cloud": LAKE_CLOUDS[case], "cold_s": statistics.median(cold), "cold_runs_s": cold,
                     "cold_cpu_s": statistics.median(t["cold_cpu_s"] for t in tries),
                     "load": [t["load_after"] for t in tries],
                     "in_process_s": min(inproc), "in_process_runs_s": inproc, "model_cells": first["model_cells"],
                     "dates": first["dates"], "valid_pixels": first["valid_pixels"], "sources": first["sources"],
                     "model_load_s": statistics.median(t["model_load_s"] for t in tries), "series": first["series"]}
    return out


def fraction_difference(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    """Largest difference of the per-date cloud fraction between two lake cases (None without fractions)."""
    diffs = [abs(x["fraction"] - y["fraction"]) for x, y in zip(a["series"], b["series"])
             if x["fraction"] is not None and y["fraction"] is not None]
    return max(diffs) if diffs else None


def measure_batches(cases: dict[str, tuple[str, Path, dict[str, Any], int | None]], polygons: Path,
                    dates: tuple[str, str], runs: int) -> dict[str, dict[str, Any]]:
    """Each batch case (label, archive, options, parcels or None for all), ``runs`` fresh processes, round-robin."""
    tries: dict[str, list[dict[str, Any]]] = {key: [] for key in cases}
    for run in range(runs):
        for key, (label, archive, options, limit) in cases.items():
            warm_page_cache(archive_files(archive))
            res = run_child({"kind": "batch", "archive": str(archive), "polygons": str(polygons), "start": dates[0],
                             "end": dates[1], "options": options, "limit": limit, "profile": False})
            tries[key].append(res)
            print(f"[batch] {label}, run {run + 1}/{runs}: {res['wall_s']:.2f} s, {res['polygons']} polygons, "
                  f"{res['rows']} rows, sources {res['sources']}", flush=True)
    out = {}
    for key, (label, _archive, options, _limit) in cases.items():
        walls = [t["wall_s"] for t in tries[key]]
        out[key] = {**tries[key][0], "label": label, "options": options, "wall_s": statistics.median(walls),
                    "runs_s": walls, "cpu_s": statistics.median(t["cpu_s"] for t in tries[key]),
                    "load": [t["load_after"] for t in tries[key]]}
    return out


def profile_summary(profile: dict[str, Any] | None) -> str:
    return "\n\n".join(profile["text"]) if profile else ""


def hot_spots(profile: dict[str, Any], count: int = 6) -> str:
    """The functions with the most own time of a profile, as one sentence."""
    own = "; ".join(f"{h['function']} {h['own_s']:.2f} s ({h['share']:.0%})" for h in profile["hot"][:count])
    ours = "; ".join(f"{h['function']} {h['cumulative_s']:.2f} s ({h['share']:.0%})"
                     for h in profile["ours"][:count])
    return f"own time: {own}; cumulative, polyfis functions: {ours}"


def render(report: dict[str, Any]) -> str:
    lake, batch, layers = report["lake"], report["batch"], report["layers"]
    base = lake["averaged"]
    lines = [
        "# Stored cloud layers (CLP/CLM): per-pixel queries, batches and the cost of computing them", "",
        f"Command: `{report['command']}`  ",
        f"Run: {report['finished']}; polyfis checkout {report['revision']}  ",
        f"Machine: {describe_machine(report['machine'])}  ",
        f"Packages: {describe_packages(report['packages'])}", "",
        "## Targets", "",
        "| target | wall s vs baseline | wall ratio | limit | result | CPU s vs baseline | CPU ratio |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for t in report["targets"]:
        lines.append(f"| {t['name']} | {t['value_s']:.3f} vs {t['baseline_s']:.3f} | {t['ratio']:.2f} | "
                     f"{t['limit']:.1f} | {'met' if t['met'] else 'missed by ' + format(t['miss'], '.0%')} | "
                     f"{t['cpu_s']:.3f} vs {t['baseline_cpu_s']:.3f} | {t['cpu_ratio']:.2f} |")
    lines += ["", *report["verdict"], ""]
    lines += [
        "## 1. Lake, one year, per-pixel cloud mask with stored layers", "",
        f"The demo lake, {base['dates']} dates of {YEAR[0][:4]}, bands {', '.join(LAKE_BANDS)}, on a copy of the "
        f"demo archive with the layers stored in this run. *Cold*: median of {report['runs']} fresh processes "
        "(no window cache, no cell probabilities, no GDAL block cache, OS page cache warm; imports, archive "
        "open and model load excluded). *In-process*: best of the queries repeated in those processes with "
        "a fresh `ProbabilityCache` and the window cache emptied (GDAL's block cache and open datasets stay), "
        "as `bench/pixel_cloud.py` times its cold cache.", "",
        "| case | cold s (median) | cold runs s | x averaged (cold) | cold CPU s | x averaged (CPU) | in-process s "
        "| x averaged (in-process) | cells scored by the model | cloud cells from |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for case, r in lake.items():
        runs = ", ".join(f"{s:.3f}" for s in r["cold_runs_s"])
        lines.append(f"| {case} | {r['cold_s']:.3f} | {runs} | {r['cold_s'] / base['cold_s']:.2f} | "
                     f"{r['cold_cpu_s']:.3f} | {r['cold_cpu_s'] / base['cold_cpu_s']:.2f} | "
                     f"{r['in_process_s']:.3f} | {r['in_process_s'] / base['in_process_s']:.2f} | "
                     f"{r['model_cells']:,} | {', '.join(s for s in r['sources'] if s != 'None') or '—'} |")
    lines += ["", f"Valid lake pixels over the year: {base['valid_pixels']:,}. Largest per-date difference of the "
              "cloud fraction, stored layers against the model: "
              + "; ".join(f"{k} {v:.4f}" if v is not None else f"{k} —" for k, v in report["agreement"].items())
              + ". At 160 m the stored CLM is the model's mask itself (same cells, same post-processing); at 10 m "
              "the stored path takes the 160 m CLP of the cell containing each 10 m cell's centre and post-processes "
              "it at 10 m, while the model path scores every 10 m cell, so the two 10 m masks differ by design.", ""]
    job = report["batch_job"]
    lines += [
        "## 2. Batch, pixel mode with stored layers", "",
        f"`bench/perf.py --size {job['size']}`'s archive ({job['dates']} dates, {job['pixels']} x {job['pixels']} px "
        f"per band, {job['archive_bytes'] / 1e9:.2f} GB{', generated in this run' if job['generated'] else ''}) "
        f"and its batch polygons ({job['polygons']} parcels, `{job['polygons_file']}`), "
        f"{job['start']} to {job['end']}, statistics {', '.join(job['statistics'])} of all 13 bands; "
        "`run_batch(..., workers=0)` (planning, every task in this process, the Parquet output) in a fresh "
        f"process, OS page cache warm, median of {report['batch_runs']} run(s).", "",
        "| case | polygons | wall s | x averaged | CPU s | x averaged (CPU) | rows | cloud cells from |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in batch.values():
        full = r["polygons"] == batch["averaged"]["polygons"]
        ref = batch["averaged"] if full else batch["averaged, fallback subset"]
        lines.append(f"| {r['label']} | {r['polygons']} | {r['wall_s']:.2f} | {r['wall_s'] / ref['wall_s']:.2f} | "
                     f"{r['cpu_s']:.2f} | {r['cpu_s'] / ref['cpu_s']:.2f} | {r['rows']:,} | "
                     f"{', '.join(s for s in r['sources'] if s != 'None') or '—'} |")
    fb = batch["pixel, no layers (per-polygon fallback)"]
    per_field = fb["wall_s"] / fb["polygons"]
    if fb["polygons"] < job["polygons"]:
        lines += ["", f"The fallback ran on the first {fb['polygons']} of the {job['polygons']} parcels only (capped "
                  f"by `--fallback-fields`): {per_field:.3f} s per parcel, about {per_field * job['polygons']:.0f} s "
                  "for all of them if it scales linearly (an extrapolation, not a measurement).", ""]
    else:
        lines += ["", f"The fallback ran on all {fb['polygons']} parcels ({per_field:.3f} s per parcel).", ""]
    lines += [
        "## 3. Computing the layers", "",
        "`store_cloud_layers(copy, workers=0)` in a fresh process (reading the 10 model bands of every tile, "
        "cell means, one s2cloudless call per tile, post-processing, writing two COGs and the item JSON), "
        "against `S2PixelCloudDetector(all_bands=False).get_cloud_probability_maps` alone on as many cells "
        "per tile (random reflectances), the model floor.", "",
        "| archive | items | 10 m px | cells | wall s | CPU s | cells/s | 10 m px/s | model alone s | x model |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in layers:
        lines.append(f"| {r['archive']} | {r['items']} | {r['tile_px']:,} | {r['cells']:,} | {r['wall_s']:.2f} | "
                     f"{r['cpu_s']:.2f} | "
                     f"{r['cells'] / r['wall_s']:,.0f} | {r['tile_px'] / r['wall_s']:,.0f} | "
                     f"{r['model_floor_s']:.3f} | {r['ratio']:.1f} |")
    if report["profiles"]:
        lines += ["", "## Profiles of the missed targets", ""]
        for name, text in report["profiles"].items():
            lines += [f"### {name}", "", "```", text, "```", ""]
    lines += ["", "## Notes", "", *[f"* {n}" for n in report["notes"]]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", choices=("small", "full"), default="full",
                        help="the bench/perf.py archive and batch (default full: 1000 parcels)")
    parser.add_argument("--data-dir", type=Path, help="that archive and its polygons (default bench/.data/<size>)")
    parser.add_argument("--demo-dir", type=Path, default=None, help="the demo archive (default: its cache)")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per lake case (median reported)")
    parser.add_argument("--batch-runs", type=int, default=1, help="fresh processes per batch case")
    parser.add_argument("--fallback-fields", type=int, default=50,
                        help="parcels of the pixel batch without layers (the per-polygon fallback)")
    add_results_dir(parser)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        job = json.loads(args.child)
        print(json.dumps(CHILDREN[job["kind"]](job)))
        return

    import datetime as dt

    from perf_archive import SIZES, generate_archive
    from perf_job import STATS
    from perf_polygons import make_polygons, polygons_path, write_polygons

    from stats import Archive
    from stats.archive.synthetic import build_demo_archive, demo_polygons

    command = command_line(__file__)
    cfg = SIZES[args.size]
    data_dir: Path = (args.data_dir or DATA / cfg.name).resolve()
    polygons = make_polygons(cfg)
    write_polygons(data_dir, polygons)
    manifest = generate_archive(data_dir, cfg, polygons)
    bench_archive = data_dir / "archive"
    demo = build_demo_archive(args.demo_dir)
    lake = next(f["geometry"] for f in demo_polygons()["features"] if f["properties"]["name"] == "lake")
    notes: list[str] = []
    profiles: dict[str, str] = {}

    with tempfile.TemporaryDirectory(prefix=".cloud-layers-", dir=data_dir) as tmp:
        demo_copy = linked_copy(demo, Path(tmp) / "demo")
        bench_copy = linked_copy(bench_archive, Path(tmp) / "archive")
        layers = [measure_layers("demo", demo_copy), measure_layers(f"perf {cfg.name}", bench_copy)]

        lake_rows = measure_lake(demo_copy, lake, args.runs)
        agreement = {f"{res}": fraction_difference(lake_rows[f"pixel {res}, stored layers"],
                                                   lake_rows[f"pixel {res}, model (on the fly)"])
                     for res in ("160 m", "10 m")}

        acquisitions = Archive.open(bench_archive).acquisitions
        dates = (acquisitions[0].date.isoformat(), acquisitions[-1].date.isoformat())
        stats_list = list(STATS)
        averaged = {"statistics": stats_list}
        pixel = {"statistics": stats_list, "cloud": {"mode": "pixel"}}
        batch_file = polygons_path(data_dir, "batch")
        subset = args.fallback_fields if args.fallback_fields < cfg.batch_fields else None
        cases: dict[str, tuple[str, Path, dict[str, Any], int | None]] = {
            "averaged": ("averaged, stored layers present", bench_copy, averaged, None),
            "pixel": ("pixel 160 m, stored layers", bench_copy, pixel, None),
        }
        if subset is not None:
            cases["averaged, fallback subset"] = ("averaged, fallback subset", bench_archive, averaged, subset)
        cases["pixel, no layers (per-polygon fallback)"] = ("pixel 160 m, no layers (per-polygon fallback)",
                                                            bench_archive, pixel, subset)
        batch = measure_batches(cases, batch_file, dates, args.batch_runs)

        targets = []
        for res in ("10 m", "160 m"):
            case = f"pixel {res}, stored layers"
            targets.append({"name": f"lake query, {case} (cold) <= {QUERY_TARGET} x averaged", "case": case,
                            "value_s": lake_rows[case]["cold_s"], "baseline_s": lake_rows["averaged"]["cold_s"],
                            "cpu_s": lake_rows[case]["cold_cpu_s"],
                            "baseline_cpu_s": lake_rows["averaged"]["cold_cpu_s"],
                            "limit": QUERY_TARGET})
        targets.append({"name": f"{cfg.batch_fields}-parcel batch, pixel with stored layers <= {BATCH_TARGET} x "
                        "averaged", "case": "batch pixel", "value_s": batch["pixel"]["wall_s"],
                        "baseline_s": batch["averaged"]["wall_s"], "cpu_s": batch["pixel"]["cpu_s"],
                        "baseline_cpu_s": batch["averaged"]["cpu_s"], "limit": BATCH_TARGET})
        for t in targets:
            t["ratio"] = t["value_s"] / t["baseline_s"]
            t["cpu_ratio"] = t["cpu_s"] / t["baseline_cpu_s"]
            t["met"] = t["ratio"] <= t["limit"]
            t["cpu_met"] = t["cpu_ratio"] <= t["limit"]
            t["miss"] = max(0.0, t["ratio"] / t["limit"] - 1)
            t["cpu_miss"] = max(0.0, t["cpu_ratio"] / t["limit"] - 1)
            if t["met"] and t["cpu_met"]:
                continue
            print(f"[profile] {t['name']}: over the limit in wall or CPU time, profiling ...", flush=True)
            if t["case"] == "batch pixel":
                prof = run_child({"kind": "batch", "archive": str(bench_copy), "polygons": str(batch_file),
                                  "start": dates[0], "end": dates[1], "options": pixel, "limit": None,
                                  "profile": True})
                base = run_child({"kind": "batch", "archive": str(bench_copy), "polygons": str(batch_file),
                                  "start": dates[0], "end": dates[1], "options": averaged, "limit": None,
                                  "profile": True})
            else:
                prof = run_child({"kind": "query", "archive": str(demo_copy), "geometry": lake,
                                  "cloud": LAKE_CLOUDS[t["case"]], "repeat": 0, "profile": True})
                base = run_child({"kind": "query", "archive": str(demo_copy), "geometry": lake,
                                  "cloud": LAKE_CLOUDS["averaged"], "repeat": 0, "profile": True})
            profiles[t["name"]] = (
                f"{t['case']} under cProfile (one reader thread, POLYFIS_READ_THREADS=1):\n\n"
                f"{profile_summary(prof['profile'])}\n\nthe averaged baseline under cProfile (one reader "
                f"thread):\n\n{profile_summary(base['profile'])}")
            t["hot"] = prof["profile"]["hot"]
            t["hot_baseline"] = base["profile"]["hot"]
            t["where"] = (f"under cProfile the case's own time goes to {hot_spots(prof['profile'])}; the averaged "
                          f"baseline's to {hot_spots(base['profile'])}")

    verdict = []
    for t in targets:
        wall = (f"wall {t['ratio']:.2f} x ({t['value_s']:.3f} s against {t['baseline_s']:.3f} s), "
                + ("met" if t["met"] else f"missed by {t['miss']:.0%}"))
        cpu = (f"CPU {t['cpu_ratio']:.2f} x ({t['cpu_s']:.3f} s against {t['baseline_cpu_s']:.3f} s), "
               + ("within the limit" if t["cpu_met"] else f"{t['cpu_miss']:.0%} over the limit"))
        line = f"* **{'Met' if t['met'] else 'Missed'}** (wall time, the target's measure): {t['name']}: {wall}; {cpu}."
        if "where" in t:
            line += f" Profiled: {t['where']} (profiles below)."
        verdict.append(line)
    if args.size != "full":
        notes.append(f"The batch ran on `bench/perf.py`'s `{cfg.name}` archive ({cfg.batch_fields} parcels), not "
                     f"the `full` one ({SIZES['full'].batch_fields} parcels on {SIZES['full'].dates} dates of "
                     f"{SIZES['full'].pixels} x {SIZES['full'].pixels} px), which takes far longer to generate, "
                     "store the layers of and measure.")
    notes += [
        "The copies with layers share the band files with the originals by hard links; the averaged batch ran on "
        "the copy, the fallback cases on the original archive (no layers: `cloud.source` `auto` falls back to "
        "the model polygon by polygon).",
        "The model floor is timed on random reflectances: LightGBM's time per row does not depend on the values; "
        "the pipeline's wall time includes reading and decoding the 10 model bands of every tile, the cell means, "
        "the post-processing and writing the COGs and item JSON.",
        "No figure in this file is typed in: every number was measured by the command above in one run.",
    ]
    loads = [x for r in lake_rows.values() for x in r["load"]] + [x for r in batch.values() for x in r["load"]]
    notes.append(f"The machine's 1-minute load average after each measurement was {min(loads):.1f} to "
                 f"{max(loads):.1f} on {os.cpu_count()} CPUs: other work shared the CPUs, which stretches wall "
                 "times; the runs of the lake cases, and of the batch cases, went round-robin so that it hit them "
                 "alike, and the CPU seconds (all threads of "
                 "the measuring process) are given beside the wall times.")
    report: dict[str, Any] = {
        "command": command,
        "finished": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "packages": package_versions(PACKAGES),
        "revision": git_revision(),
        "runs": args.runs,
        "batch_runs": args.batch_runs,
        "targets": targets,
        "verdict": verdict,
        "lake": lake_rows,
        "agreement": agreement,
        "batch_job": {"size": cfg.name, "dates": len(acquisitions), "pixels": cfg.pixels,
                      "archive_bytes": manifest["bytes"], "generated": manifest["generated_in_this_run"],
                      "polygons": cfg.batch_fields, "polygons_file": display_path(batch_file), "start": dates[0],
                      "end": dates[1], "statistics": stats_list},
        "batch": {k: {key: v for key, v in r.items() if key != "profile"} for k, r in batch.items()},
        "layers": [{k: v for k, v in r.items() if k != "profile"} for r in layers],
        "profiles": profiles,
        "notes": notes,
    }
    markdown = render(report)
    write_results(args.results_dir, "cloud_layers", report, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
