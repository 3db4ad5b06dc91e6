"""Remote reads: the demo archive served over loopback HTTP with a fixed delay per request, polyfis against
rasterio + numpy reading the same URLs, and the latency floor.

Run:  .venv/bin/python bench/remote.py [--delays 0,20,50,100] [--batch-delay 50] [--no-batch] [--results-dir DIR]

The demo archive (built on first use, as ``polyfis serve`` does) is served by ``bench/remote_server.py`` (one
thread per connection, keep-alive, HTTP Range incl. several ranges, counting requests and bytes) in a process
of its own; its catalog's links and asset hrefs are relative, so the collection's URL gives http:// hrefs
throughout. For each delay, each contender runs in a fresh subprocess (cold: nothing cached in the process,
catalog and model included), then repeats the query (warm):

* ``polyfis``: ``polyfis.timeseries`` of the demo's ``field_small`` (about 500 pixels), 2023, bands B02, B03,
  B04, B08 and NDVI: 11 bands read (with the cloud model's), 37 dates;
* ``rasterio, plain``: a script opening every band URL of the same dates with rasterio, reading the window of
  the polygon and taking numpy means, one band after the other with GDAL's defaults;
* ``rasterio, tuned``: the same with polyfis's GDAL options and as many reads in flight as polyfis's I/O
  threads (``POLYFIS_IO_THREADS``; what a careful script does).

Reported: wall times, requests, bytes moved, requests per band read, bytes against the bytes of the internal
COG tiles the polygon's window touches (from the local files' tile byte counts), the child's peak RSS, and the
latency floor: the round trips on the critical path (catalog, items, band header probe, header, data) times
the delay. The polyfis answers over HTTP are compared value for value with the same call on the local folder.
Then the 1000-field batch (``polyfis.batch``, 1000 squares of 1 ha over the demo scene, the same dates and
bands) over the remote archive at ``--batch-delay`` against the local folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import add_results_dir, command_line, describe_machine, git_revision, machine_info, write_results
from remote_server import serve_process

FIELD = "field_small"
YEAR = ("2023-01-01", "2023-12-31")
OPTIONS: dict[str, Any] = {"bands": ["B02", "B03", "B04", "B08"], "indices": ["NDVI"]}
READ_BANDS = ("B01", "B02", "B03", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12")
BATCH_FIELDS = 1000


# ---------------------------------------------------------------------------------------------------------
# children (each in a fresh process)
# ---------------------------------------------------------------------------------------------------------


def _traffic(server: str | None) -> dict[str, int]:
    if not server:
        return {"requests": 0, "bytes": 0}
    import urllib.request

    with urllib.request.urlopen(f"{server}/__traffic", timeout=30) as answer:
        data = json.loads(answer.read())
    return {"requests": int(data["requests"]), "bytes": int(data["bytes"])}


def _peak_rss() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _cpu_s() -> float:
    """CPU seconds (user + system) this process used so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return float(usage.ru_utime + usage.ru_stime)


def _field() -> Any:
    from stats.archive.synthetic.recipe import demo_polygons

    return next(f["geometry"] for f in demo_polygons()["features"] if f["properties"]["name"] == FIELD)


def child_polyfis(archive: str, server: str | None, warm: int, preload: bool = False) -> dict[str, Any]:
    """Cold then ``warm`` repeated time series of the field (``preload``: the cloud model loaded before the
    query, timed apart)."""
    import polyfis
    from stats.clouds.model import default_model

    geometry = _field()
    t0 = time.perf_counter()
    traffic0 = _traffic(server)
    opened = polyfis.open_archive(archive)
    t_open = time.perf_counter() - t0
    traffic_open = _traffic(server)
    if preload:
        _ = default_model().detector
    t_model = time.perf_counter() - t0 - t_open
    t1, cpu1 = time.perf_counter(), _cpu_s()
    series = polyfis.timeseries(geometry, *YEAR, archive=opened, **OPTIONS)
    t_query, cpu_query = time.perf_counter() - t1, _cpu_s() - cpu1
    cold = time.perf_counter() - t0
    traffic_cold = _traffic(server)
    warm_times = []
    for _ in range(warm):
        t = time.perf_counter()
        polyfis.timeseries(geometry, *YEAR, archive=opened, **OPTIONS)
        warm_times.append(time.perf_counter() - t)
    traffic_warm = _traffic(server)
    answer = series.to_dict()
    dates = answer["series"]
    return {"cold_s": cold, "open_s": t_open, "model_s": t_model, "query_s": t_query, "warm_s": warm_times,
            "query_cpu_s": cpu_query,
            "catalog_requests": traffic_open["requests"] - traffic0["requests"],
            "requests": traffic_cold["requests"] - traffic0["requests"],
            "bytes": traffic_cold["bytes"] - traffic0["bytes"],
            "warm_requests": traffic_warm["requests"] - traffic_cold["requests"],
            "dates": len(dates), "errors": sum(1 for d in dates if d.get("error")),
            "peak_rss": _peak_rss(), "answer": answer}


def child_warm(archive: str, repeats: int) -> dict[str, Any]:
    """The field's time series once (cold, not reported), then ``repeats`` times: wall and CPU seconds of
    each repeat, and the answer."""
    import polyfis

    geometry = _field()
    opened = polyfis.open_archive(archive)
    answer = polyfis.timeseries(geometry, *YEAR, archive=opened, **OPTIONS).to_dict()
    walls, cpus = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), _cpu_s()
        polyfis.timeseries(geometry, *YEAR, archive=opened, **OPTIONS)
        walls.append(time.perf_counter() - t)
        cpus.append(_cpu_s() - c)
    return {"wall_s": walls, "cpu_s": cpus, "answer": answer, "code": str(Path(polyfis.__file__).parent.parent)}


def child_rasterio(jobs_file: str, server: str | None, threads: int) -> dict[str, Any]:
    """The plain script: every band of every date opened by URL, the polygon's window read, numpy means."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import rasterio
    from rasterio.features import geometry_mask
    from rasterio.warp import transform_geom
    from rasterio.windows import from_bounds
    from shapely.geometry import shape

    from stats.datasets import REMOTE_GDAL_OPTIONS

    jobs = json.loads(Path(jobs_file).read_text())
    geometry = _field()

    def one(job: dict[str, str]) -> float | None:
        options = REMOTE_GDAL_OPTIONS if threads > 1 else {}
        with rasterio.Env(**options), rasterio.open(job["url"]) as src:
            geom = transform_geom("EPSG:4326", src.crs, geometry)
            window = from_bounds(*shape(geom).bounds, transform=src.transform).round_offsets().round_lengths()
            data = src.read(1, window=window, boundless=False)
            inside = geometry_mask([geom], out_shape=data.shape, transform=src.window_transform(window),
                                   invert=True, all_touched=False)
            values = data[inside & (data > 0)]
            return float(np.mean(values)) if values.size else None

    def run() -> list[float | None]:
        if threads <= 1:
            return [one(j) for j in jobs]
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, jobs))

    t0, cpu0 = time.perf_counter(), _cpu_s()
    traffic0 = _traffic(server)
    means = run()
    cold, cpu_cold = time.perf_counter() - t0, _cpu_s() - cpu0
    traffic1 = _traffic(server)
    t1 = time.perf_counter()
    run()
    warm = time.perf_counter() - t1
    traffic2 = _traffic(server)
    return {"cold_s": cold, "query_cpu_s": cpu_cold, "warm_s": [warm],
            "requests": traffic1["requests"] - traffic0["requests"], "bytes": traffic1["bytes"] - traffic0["bytes"],
            "warm_requests": traffic2["requests"] - traffic1["requests"],
            "band_reads": len(jobs), "peak_rss": _peak_rss(), "means": means}


def child_batch(archive: str, polygons_file: str, server: str | None) -> dict[str, Any]:
    """The 1000-field batch, cold."""
    import polyfis
    from stats.clouds.model import default_model

    collection = json.loads(Path(polygons_file).read_text())
    t0 = time.perf_counter()
    traffic0 = _traffic(server)
    opened = polyfis.open_archive(archive)
    default_model()
    result = polyfis.batch(collection, *YEAR, archive=opened, crs="EPSG:32633", **OPTIONS)
    seconds = time.perf_counter() - t0
    traffic1 = _traffic(server)
    table = result.to_pandas()
    errors = int(table["error"].notna().sum()) if "error" in table else 0
    return {"seconds": seconds, "rows": len(table), "errors": errors, "peak_rss": _peak_rss(),
            "requests": traffic1["requests"] - traffic0["requests"], "bytes": traffic1["bytes"] - traffic0["bytes"],
            "checksum": float(table.select_dtypes("number").sum().sum())}


def run_child(*args: str, env: dict[str, str] | None = None, tree: Path | None = None) -> dict[str, Any]:
    """Run this script as a child with ``args`` (``tree``: importing polyfis from that copy of the project);
    its last output line is its JSON answer."""
    extra = {"PYTHONPATH": str(tree)} if tree is not None else {}
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {}), **extra}, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------
# the parent
# ---------------------------------------------------------------------------------------------------------


def demo_root() -> Path:
    """The demo archive folder (built on first use)."""
    from stats.archive.synthetic import demo_archive_of
    from stats.settings import current

    return Path(demo_archive_of(current()))


def band_jobs(root: Path, base: str) -> tuple[list[dict[str, str]], int]:
    """The band URLs of the field's dates (as polyfis reads them) and the bytes of the internal tiles the
    polygon's window touches in them."""
    import rasterio
    from rasterio.warp import transform_geom
    from rasterio.windows import from_bounds
    from shapely.geometry import shape

    from stats import Archive

    archive = Archive.open(root)
    geometry = shape(_field())
    start = dt.datetime.fromisoformat(YEAR[0]).replace(tzinfo=dt.UTC)
    end = dt.datetime.fromisoformat(YEAR[1]).replace(hour=23, minute=59, second=59, tzinfo=dt.UTC)
    jobs, touched = [], 0
    for acq in archive.search(geometry, start, end):
        for band in READ_BANDS:
            path = Path(acq.assets[band])
            jobs.append({"url": f"{base}/{path.relative_to(root).as_posix()}", "band": band, "date": str(acq.date)})
            with rasterio.open(path) as src:
                geom = transform_geom("EPSG:4326", src.crs, _field())
                window = from_bounds(*shape(geom).bounds, transform=src.transform)
                bh, bw = src.block_shapes[0]
                r0, c0 = max(0, math.floor(window.row_off)), max(0, math.floor(window.col_off))
                r1 = min(src.height, math.ceil(window.row_off + window.height))
                c1 = min(src.width, math.ceil(window.col_off + window.width))
                for row in range(r0 // bh, (r1 - 1) // bh + 1):
                    for col in range(c0 // bw, (c1 - 1) // bw + 1):
                        touched += src.block_size(1, row, col)
    return jobs, touched


def batch_polygons(root: Path, out: Path) -> Path:
    """:data:`BATCH_FIELDS` squares of 100 m x 100 m on a grid over the demo scene (EPSG:32633)."""
    import rasterio

    first = next((root / "items").iterdir())
    with rasterio.open(first / "B02.tif") as src:
        left, bottom, right, top = src.bounds
    per_side = math.ceil(math.sqrt(BATCH_FIELDS))
    step = (right - left) / per_side
    features = []
    for k in range(BATCH_FIELDS):
        x = left + (k % per_side + 0.5) * step
        y = top - (k // per_side + 0.5) * step
        ring = [[x - 50, y - 50], [x + 50, y - 50], [x + 50, y + 50], [x - 50, y + 50], [x - 50, y - 50]]
        features.append({"type": "Feature", "properties": {"id": f"f{k}"},
                         "geometry": {"type": "Polygon", "coordinates": [ring]}})
    out.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return out


def same_answers(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two time-series answers agree value for value (the scene hrefs aside)."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("href", "archive")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return bool(strip(a["series"]) == strip(b["series"]))


def main() -> None:
    """Run every measurement and write ``remote.md`` / ``remote.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delays", default="0,20,50,100", help="milliseconds per request, comma-separated")
    parser.add_argument("--batch-delay", type=float, default=50.0, help="milliseconds per request for the batch")
    parser.add_argument("--no-batch", action="store_true")
    parser.add_argument("--plain-max-delay", type=float, default=20.0,
                        help="largest delay (ms) at which the plain rasterio script runs (it takes minutes above)")
    parser.add_argument("--warm", type=int, default=3, help="repeated queries after the cold one")
    add_results_dir(parser)
    parser.add_argument("--render-only", action="store_true", help="rewrite remote.md from remote.json")
    parser.add_argument("--warm-only", action="store_true",
                        help="only the repeated query on the local folder, against --baseline; writes remote_warm.md")
    parser.add_argument("--baseline", default="main",
                        help="git revision the --warm-only figures are compared with (default main)")
    parser.add_argument("--rounds", type=int, default=3, help="--warm-only: alternating child processes per side")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.render_only:
        report = json.loads((args.results_dir / "remote.json").read_text())
        (args.results_dir / "remote.md").write_text(render(report))
        return
    if args.child:
        kind, rest = args.child[0], args.child[1:]
        server = rest[1] if len(rest) > 1 and rest[1] != "-" else None
        if kind == "warm":
            out = child_warm(rest[0], int(rest[2]))
        elif kind in ("polyfis", "polyfis-preload"):
            out = child_polyfis(rest[0], server, int(rest[2]), preload=kind == "polyfis-preload")
        elif kind == "rasterio":
            out = child_rasterio(rest[0], server, int(rest[2]))
        else:
            out = child_batch(rest[0], rest[2], server)
        print(json.dumps(out))
        return

    root = demo_root()
    if args.warm_only:
        report = warm_only(root, args.baseline, args.rounds, max(args.warm, 5))
        write_results(args.results_dir, "remote_warm", report, render_warm(report))
        print(render_warm(report))
        return
    from stats.settings import current

    delays = [float(d) for d in args.delays.split(",")]
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"polyfis-remote-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"command": command_line(__file__), "revision": git_revision(),
                              "machine": machine_info(), "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                              "runs": []}
    local = run_child("polyfis", str(root), "-", str(args.warm))
    report["local"] = {k: v for k, v in local.items() if k != "answer"}
    for delay in delays:
        with serve_process(root, delay / 1000.0) as server:
            jobs, touched = band_jobs(root, server.url)
            jobs_file = work / "jobs.json"
            jobs_file.write_text(json.dumps(jobs))
            url = f"{server.url}/collection.json"
            row: dict[str, Any] = {"delay_ms": delay, "band_reads": len(jobs), "touched_tile_bytes": touched,
                                   "load_average": os.getloadavg()[0]}
            remote = run_child("polyfis", url, server.url, str(args.warm))
            row["identical_to_local"] = same_answers(remote.pop("answer"), local["answer"])
            row["polyfis"] = remote
            preloaded = run_child("polyfis-preload", url, server.url, "1")
            preloaded.pop("answer")
            row["polyfis_preloaded"] = preloaded
            row["rasterio_tuned"] = {k: v for k, v in run_child("rasterio", str(jobs_file), server.url,
                                                                str(current().io_threads)).items() if k != "means"}
            if delay <= args.plain_max_delay:  # the plain script takes minutes at larger delays
                row["rasterio_plain"] = {k: v for k, v in run_child("rasterio", str(jobs_file), server.url,
                                                                    "1").items() if k != "means"}
            row["floor_s"] = floor_s(delay, len(jobs), remote["catalog_requests"])
            report["runs"].append(row)
            print(json.dumps(row, default=str)[:600], flush=True)
    if not args.no_batch:
        polygons = batch_polygons(root, work / "batch.geojson")
        batch_local = run_child("batch", str(root), "-", str(polygons))
        with serve_process(root, args.batch_delay / 1000.0) as server:
            batch_remote = run_child("batch", f"{server.url}/collection.json", server.url, str(polygons))
        report["batch"] = {"delay_ms": args.batch_delay, "local": batch_local, "remote": batch_remote}
    json_path, md_path = write_results(args.results_dir, "remote", report, render(report))
    print(f"wrote {md_path} and {json_path}")


def floor_s(delay_ms: float, band_reads: int, catalog_requests: int) -> dict[str, float]:
    """The latency floor: round trips on the critical path times the delay. The catalog takes two (the
    collection, then its items at once), a band read three (GDAL's size probe, the header, the data); with
    ``POLYFIS_IO_THREADS`` reads in flight, the band requests queue in waves."""
    from stats.settings import current

    delay = delay_ms / 1000.0
    threads = current().io_threads
    band_requests = 3 * band_reads
    return {"critical_path_s": 5 * delay, "with_io_threads_s": (2 + math.ceil(band_requests / threads)) * delay}


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def render(report: dict[str, Any]) -> str:
    """The Markdown report."""
    local = report["local"]
    lines = ["# Remote reads: the demo archive over loopback HTTP with a fixed delay per request", "",
             f"Command: `{report['command']}`  ", f"Revision: {report['revision']}, {report['date']}  ",
             f"Machine: {describe_machine(report['machine'])}", "",
             f"One field ({FIELD}, about 500 pixels), 2023: {report['runs'][0]['band_reads'] // len(READ_BANDS)} "
             f"dates x {len(READ_BANDS)} bands = {report['runs'][0]['band_reads']} band reads. Cold = a fresh "
             "process: catalog, cloud model and query (Python start and imports excluded); warm = the same "
             "query repeated in that process (best of the repeats). Every figure of a row comes from one run.", "",
             f"Local folder, same call: cold {local['cold_s']:.2f} s (catalog {local['open_s']:.2f} s, query "
             f"{local['query_s']:.2f} s, {local['query_cpu_s']:.1f} CPU s), warm {min(local['warm_s']):.3f} s, "
             f"peak RSS {local['peak_rss'] / 2**20:.0f} MiB.", "",
             "| delay | load avg | contender | cold | of which query (CPU s) | warm | requests | per band read | "
             "bytes | bytes / touched tiles | peak RSS | identical to local |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in report["runs"]:
        touched = row["touched_tile_bytes"]
        for name, label in (("polyfis", "polyfis"), ("polyfis_preloaded", "polyfis, model loaded before the query"),
                            ("rasterio_tuned", "rasterio + numpy, tuned"),
                            ("rasterio_plain", "rasterio + numpy, plain")):
            r = row.get(name)
            if r is None:
                continue
            band_requests = r["requests"] - r.get("catalog_requests", 0)
            query = (f"{r['query_s']:.2f} s" if "query_s" in r else "") + f" ({r['query_cpu_s']:.1f})"
            same = ("yes" if row["identical_to_local"] else "**no**") if name == "polyfis" else ""
            if name == "polyfis_preloaded":
                query += f", model {r['model_s']:.1f} s before"
            lines.append(f"| {row['delay_ms']:.0f} ms | {row['load_average']:.1f} | {label} | {r['cold_s']:.2f} s | "
                         f"{query} | "
                         f"{min(r['warm_s']):.3f} s | {r['requests']} | {band_requests / row['band_reads']:.2f} | "
                         f"{_mb(r['bytes'])} | {r['bytes'] / touched:.2f} | {r['peak_rss'] / 2**20:.0f} MiB | {same} |")
    lines += ["", "Latency floor (round trips on the critical path x delay: collection, items, then per band GDAL's "
              "size probe, header and data; and with the band requests queued over the I/O threads):", "",
              "| delay | critical path | with the I/O threads | polyfis cold query | ratio to the queued floor |",
              "|---:|---:|---:|---:|---:|"]
    for row in report["runs"]:
        f = row["floor_s"]
        ratio = row["polyfis"]["query_s"] / f["with_io_threads_s"] if f["with_io_threads_s"] else float("nan")
        lines.append(f"| {row['delay_ms']:.0f} ms | {f['critical_path_s']:.2f} s | {f['with_io_threads_s']:.2f} s | "
                     f"{row['polyfis']['query_s']:.2f} s | {ratio:.1f} |")
    if "batch" in report:
        b = report["batch"]
        lo, re_ = b["local"], b["remote"]
        lines += ["", f"## {BATCH_FIELDS}-field batch ({BATCH_FIELDS} squares of 1 ha, the same dates and bands)", "",
                  "| archive | time | requests | bytes | rows | errors | peak RSS |",
                  "|---|---:|---:|---:|---:|---:|---:|",
                  f"| local folder | {lo['seconds']:.1f} s | | | {lo['rows']} | {lo['errors']} | "
                  f"{lo['peak_rss'] / 2**20:.0f} MiB |",
                  f"| HTTP, {b['delay_ms']:.0f} ms per request | {re_['seconds']:.1f} s | {re_['requests']} | "
                  f"{_mb(re_['bytes'])} | {re_['rows']} | {re_['errors']} | {re_['peak_rss'] / 2**20:.0f} MiB |", "",
                  f"Remote / local: {re_['seconds'] / lo['seconds']:.2f}; same numbers: "
                  f"{'yes' if abs(re_['checksum'] - lo['checksum']) < 1e-6 * max(1.0, abs(lo['checksum'])) else 'no'}."]
    lines += ["", "## Reading the figures", "",
              "* **Requests per band read: 3.0.** GDAL asks for a file's size (a HEAD) before reading its header "
              "(one 16 KiB range: `GDAL_INGESTED_BYTES_AT_OPEN`), then reads the window's tiles in one merged "
              "range. Without `GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR` and the allowed extensions it also lists "
              "the folder and probes nine sidecar files (the plain script's 12 per band read). The HEAD can only "
              "go with `CPL_VSIL_CURL_USE_HEAD=NO`, where GDAL sends a GET without a range instead, which a plain "
              "HTTP server answers with the whole file: 2.5 per band read is not reachable through GDAL's "
              "`/vsicurl/` against such a server. A repeated query reads no header again (the open remote "
              "datasets are kept: `POLYFIS_REMOTE_OPEN_DATASETS`) and no window (the window cache).",
              "* **Bytes: 1.15 x the touched tiles**: the 16 KiB header read and GDAL's 16 KiB chunk rounding.",
              "* **Cold time is CPU time on this machine.** The cold query costs about the same CPU seconds "
              "whatever the delay (the column in brackets: GDAL's opens and reads through curl, the per-date masks "
              "and statistics), and the delaying server shares the 2 cores (about 1 CPU s for these requests). "
              "The first GeoTIFF open in each I/O thread costs about 20 ms of CPU on top (GDAL's per-thread "
              "GeoTIFF and PROJ state), one thread after the other: 32 fresh threads opening 64 band files at "
              "50 ms took 1.05 s (0.86 CPU s), the same threads again 0.36 s (0.20 CPU s). A fresh process pays "
              "it for every I/O thread, which is why 32 threads (`POLYFIS_IO_THREADS`, the default) answer the "
              "cold query at 20 and 50 ms faster than 64, with less CPU; at 100 ms the round trips dominate and "
              "64 threads are faster. A server pays it once per thread. Loading the cloud model (s2cloudless, "
              "then lightgbm, which imports scikit-learn and pandas) costs about 0.7 s more (the row with the "
              "model loaded first); a query over a remote archive starts it in the background while its reads "
              "wait. The cold query on the local folder, model included, is the first line above the table.",
              "* **The delaying server sets `TCP_NODELAY`**, as web and object storage servers do. Runs made before "
              "it did are not comparable with these: each answer's body waited for the client's delayed ACK, "
              "about 40 ms per request on top of the delay (a \"0 ms\" request took 48 ms).",
              "* **Warm time is the statistics**: a repeated query reads nothing (0 requests) and, its first date's "
              "windows being cached, computes its dates one after the other, as the same query on the local "
              "folder does; its time goes to the per-date masks and statistics (`--warm-only` measures it against "
              "a baseline revision: `remote_warm.md`).",
              "* **Batch**: the tasks (one per date) run several at once over a remote archive, their band headers "
              "and tiles read on the I/O threads."]
    return "\n".join(lines) + "\n"


def warm_only(root: Path, baseline: str, rounds: int, repeats: int) -> dict[str, Any]:
    """The repeated query on the local folder by this tree and by ``baseline`` (exported with ``git
    archive``), in alternating child processes of ``repeats`` repeats each."""
    import shutil
    import tarfile
    import tempfile

    project = Path(__file__).resolve().parent.parent
    base_rev = subprocess.run(["git", "rev-parse", "--short", baseline], cwd=project, capture_output=True,
                              text=True, check=True).stdout.strip()
    tree = Path(tempfile.mkdtemp(prefix="polyfis-baseline-"))
    try:
        archive = subprocess.run(["git", "archive", "--format=tar", base_rev], cwd=project, capture_output=True,
                                 check=True).stdout
        tar_path = tree / "tree.tar"
        tar_path.write_bytes(archive)
        with tarfile.open(tar_path) as tar:
            tar.extractall(tree, filter="data")
        sides: dict[str, dict[str, Any]] = {"baseline": {"wall_s": [], "cpu_s": []},
                                            "this tree": {"wall_s": [], "cpu_s": []}}
        identical = True
        answers: dict[str, Any] = {}
        for _ in range(rounds):
            for side, where in (("baseline", tree), ("this tree", None)):
                out = run_child("warm", str(root), "-", str(repeats), tree=where)
                if where is not None and Path(out["code"]).resolve() != where.resolve():
                    raise RuntimeError(f"the baseline child imported polyfis from {out['code']}, not {where}")
                sides[side]["wall_s"] += out["wall_s"]
                sides[side]["cpu_s"] += out["cpu_s"]
                if side in answers:
                    identical = identical and out["answer"] == answers[side]
                answers[side] = out["answer"]
        identical = identical and answers["baseline"] == answers["this tree"]
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    return {"command": command_line(__file__), "revision": git_revision(), "baseline": base_rev,
            "machine": machine_info(), "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "load_average": os.getloadavg()[0], "rounds": rounds, "repeats": repeats, "sides": sides,
            "identical": identical}


def render_warm(report: dict[str, Any]) -> str:
    """``remote_warm.md`` from a :func:`warm_only` report."""
    def median(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[len(ordered) // 2]

    base, this = report["sides"]["baseline"], report["sides"]["this tree"]
    lines = ["# Warm query: the same one-year field query repeated in one process (local folder)", "",
             f"Command: `{report['command']}`  ",
             f"Revision: {report['revision']}, against the baseline {report['baseline']}, {report['date']}  ",
             f"Machine: {describe_machine(report['machine'])}; load average {report['load_average']:.1f}", "",
             f"{FIELD}, 2023, bands {', '.join(OPTIONS['bands'])} and {', '.join(OPTIONS['indices'])} (37 dates, "
             "11 bands read with the cloud model's, averaged-pixel cloud probability, default statistics). "
             f"Each side ran in {report['rounds']} child processes taken in turn, each repeating the query "
             f"{report['repeats']} times after a first (cold) one; CPU = user + system seconds of the process.", "",
             "| code | best wall | median wall | best CPU | median CPU |", "|---|---:|---:|---:|---:|"]
    for name, side in (("baseline", base), ("this tree", this)):
        lines.append(f"| {name} | {min(side['wall_s']):.3f} s | {median(side['wall_s']):.3f} s | "
                     f"{min(side['cpu_s']):.3f} s | {median(side['cpu_s']):.3f} s |")
    lines += ["", f"Baseline / this tree: {median(base['wall_s']) / median(this['wall_s']):.1f} x (median wall), "
              f"{median(base['cpu_s']) / median(this['cpu_s']):.1f} x (median CPU). "
              f"Answers identical, value for value: {'yes' if report['identical'] else 'NO'}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
