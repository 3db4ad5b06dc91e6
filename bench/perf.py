"""Zonal-statistics benchmark: polyfis against rasterstats, exactextract, rasterio + numpy and the I/O floor.

Run:  .venv/bin/python bench/perf.py --size small|full [--data-dir DIR] [--results-dir DIR] [--cap-seconds 900]
      [--runs 3]

One command builds (or reuses) a deterministic synthetic Sentinel-2 L1C archive with polyfis's own
:class:`stats.archive.catalog.ArchiveWriter`, writes three polygon jobs as GeoJSON next to it, then times
every contender on the same job in the same run and writes ``perf-<size>.md`` and ``.json`` into
``<results-dir>`` (default ``bench/results``); a development run limited with ``--cases`` or
``--contenders`` writes ``perf-<size>.md.tmp`` and ``.json.tmp`` instead. ``<data-dir>`` defaults to
``bench/.data/<size>`` and is reused when complete. On 2 cores ``small`` runs in about a minute (67 s),
``full`` in about 45 minutes plus 9 minutes to generate the archive. The command exits non-zero when a polyfis
path's statistics differ from rasterstats' or a polyfis contender did not run.

Archive (``<data-dir>/archive``), EPSG:32633, origin (300000, 5100000), 10 m pixels, DEFLATE COGs:

* ``full``:  24 dates x 13 bands (B01..B12, B8A), 5490 x 5490 px per band, 1024 px tiles;
* ``small``:  6 dates x 13 bands, 1098 x 1098 px per band, 256 px tiles (a quick development run).

Jobs (``<data-dir>/<case>.geojson``): ``field`` one ~5 ha parcel; ``lake`` one ~4 km2 polygon with an
island hole; ``batch`` 1000 (small: 40) parcels of 2-15 ha. Statistics: mean, min, max, std, p10, p50, p90
of all 13 bands on every date; a pixel counts when its centre is inside the polygon.

Contenders, each timed in a fresh subprocess (peak RSS polled over the whole process tree):
I/O floor, rasterio window + numpy, rasterstats, exactextract, the polyfis engine (cold and warm),
polyfis over HTTP (cold and warm) and, for the batch, ``stats.batch.compute_batch`` and ``run_batch``.
The polyfis band statistics are checked against rasterstats in the same run.

This script is the entry point, both of the run and (``--child``) of each contender's process. The rest is
in ``perf_archive`` (sizes, synthetic archive), ``perf_polygons`` (jobs), ``perf_job`` (what a contender
process is given), ``perf_tools`` and ``perf_polyfis`` (the contenders), ``perf_child`` (a contender's
process), ``perf_parent`` (page cache, processes, RSS), ``perf_results`` (correctness, rows, targets) and
``perf_report`` (Markdown), with the helpers shared by all benchmarks in ``common``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import perf_child
from common import (
    DATA,
    add_results_dir,
    command_line,
    display_path,
    git_revision,
    machine_info,
    package_versions,
    write_results,
)
from perf_archive import BANDS, SEED, SIZES, SizeConfig, generate_archive
from perf_job import LABELS, Job, contenders
from perf_parent import combine_runs, damon_reclaim, disk_penalty, run_child
from perf_polygons import CASES, describe_jobs, make_polygons, polygons_path, write_polygons
from perf_report import HOW_MEASURED, render_markdown
from perf_results import Results, case_rows, correctness, failures, polyfis_details, targets

PACKAGES: tuple[str, ...] = ("polyfis", "rasterio", "numpy", "shapely", "rasterstats", "exactextract", "dask",
                             "distributed", "pyarrow", "s2cloudless", "lightgbm")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--data-dir", type=Path, help="archive and polygons (default bench/.data/<size>)")
    add_results_dir(parser)
    parser.add_argument("--cap-seconds", type=float, default=900.0,
                        help="per contender and case: extrapolate beyond this (default 900)")
    parser.add_argument("--repeats", type=int, default=3, help="warm calls of the polyfis single cases")
    parser.add_argument("--runs", type=int, default=3,
                        help="fresh-process runs of each contender for field and lake (median reported)")
    parser.add_argument("--batch-runs", type=int, default=1, help="fresh-process runs of each batch contender")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of field,lake,batch")
    parser.add_argument("--contenders", help="comma-separated subset of contenders (development)")
    parser.add_argument("--generate-only", action="store_true", help="build the archive and polygons, then exit")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args()


def run_contenders(args: argparse.Namespace, data_dir: Path, cases: list[str], only: set[str] | None,
                   files: list[tuple[str, str, str]], paths: list[str], samples: dict[str, list[str]]) -> Results:
    """Every contender of every case in fresh processes, ``--runs`` (batch: ``--batch-runs``) times each."""
    start, end = files[0][0], files[-1][0]
    results: Results = {}
    for case in cases:
        names = [n for n in contenders(case) if only is None or n in only]
        runs = args.batch_runs if case == "batch" else args.runs
        attempts: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for run in range(runs):  # round-robin, so that a busy spell of the machine hits every contender alike
            for name in names:
                print(f"[{case}] {LABELS[name]}, run {run + 1}/{runs} ...", flush=True)
                job = Job(contender=name, case=case, data_dir=str(data_dir),
                          polygons=str(polygons_path(data_dir, case)), files=files, start=start, end=end,
                          sample_ids=samples[case], cap_seconds=args.cap_seconds, repeats=args.repeats, out="")
                res = run_child(job, paths)
                attempts[name].append(res)
                wall = res.get("wall_s")
                print(f"[{case}] {LABELS[name]}: {res['status']}"
                      + (f", {wall:.2f} s{' (extrapolated)' if res.get('extrapolated') else ''}" if wall else "")
                      + f", peak RSS {res['peak_rss_bytes'] / 2**20:.0f} MiB, other processes "
                      f"{res['background_cpu_s']:.1f} CPU-s" + (f" — {res['message']}" if res.get("message") else ""),
                      flush=True)
        results[case] = {name: combine_runs(attempts[name]) for name in names}
    return results


def archive_report(cfg: SizeConfig, data_dir: Path, dates: int, files: int, manifest: dict[str, Any]) -> dict[str, Any]:
    """The ``archive`` section of the report."""
    return {"path": display_path(data_dir / "archive"), "dates": dates, "pixels": cfg.pixels,
            "blocksize": cfg.blocksize, "files": files, "bytes": manifest["bytes"],
            "generation_s": manifest["generation_s"], "generated_in_this_run": manifest["generated_in_this_run"],
            "seed": SEED}


def main() -> None:
    args = parse_args()
    if args.child:
        perf_child.main(args.child)
        return

    cfg = SIZES[args.size]
    data_dir: Path = (args.data_dir or DATA / cfg.name).resolve()
    cases = [c for c in args.cases.split(",") if c]
    only = set(args.contenders.split(",")) if args.contenders else None
    command = command_line(__file__)

    polygons = make_polygons(cfg)
    write_polygons(data_dir, polygons)
    manifest = generate_archive(data_dir, cfg, polygons)
    if args.generate_only:
        return

    from stats import Archive

    archive = Archive.open(data_dir / "archive")
    files = [(a.date.isoformat(), b, a.assets[b]) for a in archive.acquisitions for b in BANDS]
    paths = sorted({str(p) for p in (data_dir / "archive").rglob("*.tif")})
    dates = len(archive.acquisitions)
    jobs, samples = describe_jobs(polygons, dates, data_dir)

    penalty = disk_penalty([path for date, _, path in files if date == files[0][0]])
    reclaim = damon_reclaim()
    print(f"disk: reading tiles from disk instead of the page cache costs {penalty['s_per_gib']:.2f} s per GiB"
          + (f"; this machine runs {reclaim}" if reclaim else ""), flush=True)

    results = run_contenders(args, data_dir, cases, only, files, paths, samples)
    rows = {case: case_rows(case, results[case], jobs[case], penalty["s_per_gib"]) for case in cases}
    checks = correctness(results, samples)
    report = {
        "size": cfg.name,
        "command": command,
        "finished": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "packages": package_versions(PACKAGES),
        "polyfis_revision": git_revision(),
        "archive": archive_report(cfg, data_dir, dates, len(files), manifest),
        "jobs": jobs,
        "cap_seconds": args.cap_seconds,
        "runs": {"single": args.runs, "batch": args.batch_runs, "warm_repeats": args.repeats},
        "disk_penalty": penalty,
        "page_reclaim": reclaim,
        "rows": rows,
        "polyfis_details": polyfis_details(results),
        "correctness": checks,
        "targets": targets(rows, results),
        "results": {case: {name: {k: v for k, v in res.items() if k != "values"} for name, res in by.items()}
                    for case, by in results.items()},
        "how_measured": HOW_MEASURED,
    }
    # a development run over a subset of cases or contenders must not replace the real results
    suffix = ".tmp" if only is not None or set(cases) != set(CASES) else ""
    markdown = render_markdown(report)
    write_results(args.results_dir, f"perf-{cfg.name}", report, markdown, suffix)
    print(markdown)
    failed, broken = failures(checks, results)
    if failed or broken:
        sys.exit(f"polyfis differs from rasterstats in {failed} or did not run in {broken}")


if __name__ == "__main__":
    main()
