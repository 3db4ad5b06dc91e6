"""The benchmark's Markdown report (``perf-<size>.md``) and its description of how everything is measured.

:func:`render_markdown` turns the report dictionary that is also written as ``perf-<size>.json`` into
tables: one per case, the polyfis single cases' cold/warm/model figures, correctness, targets and the
extrapolated rows, followed by :data:`HOW_MEASURED` and this run's disk probe and run counts.
"""

from __future__ import annotations

from typing import Any

from common import describe_machine, describe_packages
from perf_archive import BANDS
from perf_polygons import BATCH_SAMPLE

HOW_MEASURED = [
    ("One run, one job per case: every contender computes mean, min, max, std, p10, p50, p90 of all 13 bands on "
     "every date for the same polygons, pixel-centre rule."),
    ("Each contender runs in a fresh Python process (`bench/perf.py --child`), so GDAL's block cache, open "
     "datasets and RSS are per contender. Wall seconds are measured inside the child around the work only "
     "(imports, reading the GeoJSON and, for polyfis, opening the archive and loading the model excluded and "
     "reported separately)."),
    ("OS page cache: before every contender (and every run) all archive files are read once "
     "(`cat`-equivalent), so every contender starts from the same warm page cache and the comparison is "
     "decode-bound, not disk-bound. Bytes a contender still reads from disk (its `ru_inblock`) are given "
     "in its note, with their estimated cost from the disk probe below."),
    ("I/O floor: single thread; per file, open, read and decode each internal tile touched by a polygon "
     "(block windows from `src.block_windows()` intersecting a polygon) exactly once, close."),
    ("rasterio window + numpy: per file, per polygon, a window read of the polygon bounds, "
     "`geometry_mask` (pixel centres) and numpy statistics; the dataset is opened once per file."),
    ("rasterstats: `zonal_stats(features, path, stats=\"mean min max std percentile_10 percentile_50 "
     "percentile_90\")` once per file; for the batch it first times the default (boundless=True) on one file "
     "and switches to `boundless=False` when that projects beyond the cap (said in the row's note)."),
    ("exactextract: `exact_extract(path, features, [mean, min, max, stdev, quantile(q=0.1|0.5|0.9)])` once "
     "per file (raster read through rasterio as osgeo is not installed); it weights by coverage fraction, so "
     "only its time is reported."),
    ("polyfis engine: `query_timeseries(TimeSeriesRequest.from_dict(body), Archive.open(...))` with the "
     "s2cloudless model loaded beforehand; cold = first call in the process, warm = median of the repeated "
     "calls (datasets kept open by polyfis's pool). `stats.clouds.model.CloudModel.probability` is wrapped with a "
     "timer to report the model's share."),
    ("polyfis HTTP: `polyfis serve --workers 1` (one gunicorn worker so that the repeated call hits the warm "
     "process; POLYFIS_TIME_BUDGET_S=3600), POST /api/v1/timeseries with the same body. The cold call "
     "includes the worker's lazy archive open and model load."),
    ("polyfis batch: `stats.batch.compute_batch(archive, geojson_path, from, to, options={statistics})` "
     "in-process, and `run_batch(..., out.parquet, workers=2)` on a Dask LocalCluster (cluster start-up "
     "included)."),
    ("Peak RSS: the summed RSS of the child and all its descendants (HTTP server, Dask workers) polled every "
     "50 ms with psutil (shared pages are counted once per process), or the child's own ru_maxrss if higher."),
    ("Throughput: polygon-dates/s = polygons x dates / wall; Mpx/s = pixels inside the polygons x 13 bands "
     "x dates / wall. Ratios (x I/O floor, rasterstats ÷ polyfis, exactextract ÷ polyfis) use walls of this run."),
    ("Cap: a per-file contender projected beyond the cap (default 900 s) stops at a date boundary once a "
     "third of the cap is spent and is extrapolated linearly in files (every file is the same work: all the "
     "polygons over one band of one date); a polygon subset would overstate the time, since polygons share "
     "decoded tiles. The rasterstats batch then finishes the correctness sample untimed."),
    ("Correctness: polyfis (engine, HTTP, batch) and rasterio + numpy against rasterstats (DN / 10000), per "
     "polygon, date, band and statistic, relative tolerance 1e-9; batch on a sample of "
     f"{BATCH_SAMPLE} polygons."),
    ("Parallelism is each tool's own: the polyfis engine reads a date's bands on POLYFIS_READ_THREADS threads "
     "(default: CPU count), run_batch uses 2 Dask workers; the I/O floor, rasterstats, exactextract and "
     "rasterio + numpy are single-threaded."),
]


def fmt(value: Any, digits: int = 2) -> str:
    """A table cell: ``—`` for None, floats by magnitude (thousands separated, tiny ones in e-notation)."""
    if value is None:
        return "—"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) < 0.01:
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    return str(value)


def _header(report: dict[str, Any]) -> list[str]:
    """Command, machine, packages, archive and jobs."""
    arch = report["archive"]
    generated = (f"(generated in this run in {arch['generation_s']:.0f} s)." if arch["generated_in_this_run"]
                 else f"(reused; generated in {arch['generation_s']:.0f} s).")
    jobs = "; ".join(f"`{c}` {j['polygons']} polygon(s), {j['inside_pixels']:,} px inside, "
                     f"{j['polygon_dates']:,} polygon-dates, {j['zonal_mpx']:.1f} Mpx of zonal work"
                     for c, j in report["jobs"].items())
    return [f"# polyfis performance: `{report['size']}` archive", "",
            f"Command: `{report['command']}`  ", f"Run: {report['finished']}  ",
            f"Machine: {describe_machine(report['machine'])}  ",
            f"Packages: {describe_packages(report['packages'])}; polyfis checkout {report['polyfis_revision']}",
            "",
            (f"Archive (`{arch['path']}`): {arch['dates']} dates x {len(BANDS)} bands, {arch['pixels']} x "
             f"{arch['pixels']} px per band at 10 m, EPSG:32633, DEFLATE COGs with {arch['blocksize']} px tiles, "
             f"{arch['files']} files, {arch['bytes'] / 1e9:.2f} GB {generated}"),
            "", f"Jobs: {jobs}.", ""]


def _case_tables(report: dict[str, Any]) -> list[str]:
    header = ("| contender | wall s | polygon-dates/s | Mpx/s | x I/O floor | rasterstats ÷ polyfis | "
              "exactextract ÷ polyfis | peak RSS MiB | note |")
    lines = []
    for case, rows in report["rows"].items():
        lines += [f"## {case}", "", header, "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in rows:
            wall = fmt(r["wall_s"]) + (" (extrap.)" if r["extrapolated"] and r["wall_s"] else "")
            if r["status"] != "ok":
                wall = r["status"] or "—"
            rss = r["peak_rss_bytes"] / 2**20 if r.get("peak_rss_bytes") and r["status"] == "ok" else None
            lines.append(f"| {r['label']} | {wall} | {fmt(r.get('polygon_dates_per_s'))} | {fmt(r.get('mpx_per_s'))} | "
                         f"{fmt(r.get('x_io_floor'))} | {fmt(r.get('rasterstats_over_polyfis'))} | "
                         f"{fmt(r.get('exactextract_over_polyfis'))} | {fmt(rss, 0)} | {r['note'] or ''} |")
        lines.append("")
    return lines


def _details_table(details: list[dict[str, Any]]) -> list[str]:
    if not details:
        return []
    header = ("| case | path | import s | model load s | archive open / server start s | cold s | "
              "warm s (median) | warm speed-up | model in cold call s (share) | model in warm call s (share) | "
              "model calls per query |")
    lines = ["## polyfis single cases: cold, warm, model", "", header,
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for d in details:
        model = "— | — | — |"
        if d.get("model_cold_s") is not None:
            model = (f"{fmt(d['model_cold_s'])} ({d['model_cold_s'] / d['cold_s']:.1%}) | "
                     f"{fmt(d['model_warm_s'])} ({d['model_warm_s'] / d['warm_s']:.1%}) | "
                     f"{d['model_calls']} call(s), {d['model_rows']} rows |")
        lines.append(f"| {d['case']} | {d['path']} | {fmt(d.get('import_s'))} | {fmt(d.get('model_load_s'))} | "
                     f"{fmt(d.get('startup_s'))} | {fmt(d['cold_s'])} | {fmt(d['warm_s'])} | {fmt(d['speedup'])} | "
                     + model)
    lines.append("")
    return lines


def _checks(report: dict[str, Any]) -> list[str]:
    """Correctness, targets and the extrapolated rows."""
    header = ("| case | polyfis path | polygons | values compared | missing band-dates | max abs diff | "
              "max rel diff | result |")
    lines = ["## Correctness (band statistics against rasterstats, reflectance = DN / 10000)", "", header,
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for c in report["correctness"]:
        lines.append(f"| {c['case']} | {c['path']} | {c['polygons']} | {c.get('compared_values', 0):,} | "
                     f"{c.get('missing_band_dates', '—')} | {fmt(c.get('max_abs_diff'))} | "
                     f"{fmt(c.get('max_rel_diff'))} | {c['result']} |")
    lines += ["", "## Targets", "", "| target | case | polyfis | measured | status |", "|---|---|---|---:|---|"]
    for t in report["targets"]:
        value = "—"
        if t["value"] is not None:
            value = f"{t['value']:.0f} MiB" if t["unit"] == "MiB" else f"{t['value']:.2f} x"
        lines.append(f"| {t['target']} | {t['case']} | {t['subject']} | {value} | {t['status']} |")
    extrapolated = [f"{case} / {r['label']}: {r['note']}" for case, rows in report["rows"].items() for r in rows
                    if r["extrapolated"]]
    lines += ["", "## Extrapolated", ""] + ([f"* {e}" for e in extrapolated] or ["None: every contender ran in full."])
    return lines


def _how_measured(report: dict[str, Any]) -> list[str]:
    probe = report["disk_penalty"]
    disk = (f"Disk probe (this run): reading the full-resolution tiles of the first date's {len(BANDS)} files "
            f"({probe['bytes'] / 2**30:.2f} GiB read from disk when cold) took {probe['warm_s']:.2f} s from the "
            f"page cache and {probe['cold_s']:.2f} s after `posix_fadvise(DONTNEED)`, i.e. disk costs "
            f"{probe['s_per_gib']:.2f} s per GiB read.")
    if report["page_reclaim"]:
        disk += (f" This machine runs {report['page_reclaim']} (read from /sys, left unchanged), so a contender "
                 "running longer than that after the warm-up finds part of the archive dropped from the page "
                 "cache.")
    runs = (f"Runs: field and lake contenders {report['runs']['single']} times each in fresh processes, round-robin "
            f"(median wall reported, the spread in the note); batch contenders {report['runs']['batch']} time(s); "
            f"polyfis warm = median of {report['runs']['warm_repeats']} repeated calls. `other processes` in a note "
            "is CPU time other programs on the machine used during the contender (psutil), a sign of interference.")
    measured = [disk, runs]
    return ["", "## How measured", ""] + [f"* {line}" for line in HOW_MEASURED + measured] + [""]


def render_markdown(report: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    return "\n".join(_header(report) + _case_tables(report) + _details_table(report["polyfis_details"])
                     + _checks(report) + _how_measured(report))
