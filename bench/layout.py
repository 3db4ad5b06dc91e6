"""Choose the demo archive's COG layout (tile size, codec, predictor) by timing one-year polygon queries.

Run:  .venv/bin/python bench/layout.py [--work bench/.data/layout] [--results-dir DIR] [--runs 3] [--warm-repeat 3]

1. Build the synthetic demo archive once into ``<work>/base`` (cached by its stamp).
2. For every candidate layout (internal tile size 256/512/1024 px x DEFLATE/ZSTD/LZW with predictor 2 or
   no compression), copy the archive (``collection.json`` and ``items/``; STAC hrefs are relative, which is
   checked) into ``<work>/<codec>-<blocksize>`` and rewrite every band COG in place with
   :func:`stats.archive.catalog.write_band_cog`. The total size on disk is recorded.
3. Time ``query_timeseries`` over the 5 ha ``field_wheat`` and over the ``lake`` for 2023 (37 dates, all
   13 bands, averaged cloud mode) in fresh subprocesses, so no open dataset or GDAL block cache is shared:
   the cloud model is loaded first, then the first query is timed ("cold"), then the query is repeated
   (best of ``--warm-repeat``, "warm": datasets kept open by the engine's pool, blocks in GDAL's cache).
   Every (layout, polygon) pair runs in ``--runs`` subprocesses, round-robin over the layouts; the
   reported figures are medians over the subprocesses. Before each round every file of the layout is read
   once, so the OS page cache is warm for all layouts: this measures decoding and GDAL overhead, not disk.
   All layouts must give byte-identical results (SHA-256 of the result JSON), which is checked.
4. Band grouping (informative, the engine reads one file per band): with plain rasterio, read the polygon
   window of all 37 dates from the 13 single-band COGs versus from one 13-band GeoTIFF per date (bands
   resampled to 10 m by nearest neighbour), pixel-interleaved and band-interleaved, for each tile size,
   with the winning codec. Each repetition opens the files afresh (cold GDAL block cache, warm page cache).
5. Write ``layout.md`` and ``layout.json`` into ``--results-dir`` (default ``bench/results``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from common import (
    DATA,
    REPO,
    add_results_dir,
    command_line,
    describe_machine,
    describe_packages,
    display_path,
    git_revision,
    machine_info,
    package_versions,
    repeat_times,
    warm_page_cache,
    write_results,
)
from pyproj import Transformer
from rasterio.windows import Window
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from stats.archive.catalog import COLLECTION_FILE, CogLayout, write_band_cog
from stats.archive.synthetic import build_demo_archive, demo_polygons
from stats.bands import S2_BANDS

DEFAULT_WORK = DATA / "layout"
PACKAGES: tuple[str, ...] = ("numpy", "rasterio", "pystac", "shapely", "pyproj", "lightgbm", "s2cloudless")

BLOCKSIZES: tuple[int, ...] = (256, 512, 1024)
CODECS: tuple[str, ...] = ("DEFLATE", "ZSTD", "LZW", "NONE")
PREDICTOR = 2
FIELD = "field_wheat"
LAKE = "lake"
POLYGONS: tuple[str, ...] = (FIELD, LAKE)
YEAR = {"from": "2023-01-01", "to": "2023-12-31"}
MARKER = ".layout.json"
"""Written into a layout folder once all its COGs are rewritten; a folder with a matching marker is reused."""


# --------------------------------------------------------------------------------------------------
# Layouts and archive copies
# --------------------------------------------------------------------------------------------------

def layout_name(layout: CogLayout) -> str:
    """Folder and table name of a layout, e.g. ``deflate-512``."""
    return f"{layout.compress.lower()}-{layout.blocksize}"


def layout_args(layout: CogLayout) -> str:
    """The layout as Python constructor arguments."""
    if layout.compress.upper() == "NONE":
        return f'CogLayout(blocksize={layout.blocksize}, compress="NONE")'
    return f'CogLayout(blocksize={layout.blocksize}, compress="{layout.compress}", predictor={layout.predictor})'


def writable(layout: CogLayout, scratch: Path) -> bool:
    """Whether GDAL can write a COG with ``layout`` (tried on a small array)."""
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / f"probe-{layout_name(layout)}.tif"
    try:
        write_band_cog(path, np.ones((64, 64), dtype=np.uint16), "EPSG:32633",
                       rasterio.transform.from_origin(500000.0, 5100000.0, 10.0, 10.0), layout=layout)
    except rasterio.errors.RasterioError:
        return False
    finally:
        path.unlink(missing_ok=True)
    return True


def candidates(scratch: Path) -> tuple[list[CogLayout], list[str]]:
    """The candidate layouts GDAL can write, and the names of those it cannot."""
    layouts: list[CogLayout] = []
    dropped: list[CogLayout] = []
    for blocksize in BLOCKSIZES:
        for codec in CODECS:
            layout = CogLayout(blocksize=blocksize, compress=codec, predictor=PREDICTOR)
            (layouts if writable(layout, scratch) else dropped).append(layout)
    return layouts, [layout_name(d) for d in dropped]


def check_relative_hrefs(root: Path) -> None:
    """Fail unless every link and asset href of the collection and its items is relative."""
    files = [root / COLLECTION_FILE, *sorted((root / "items").glob("*/*.json"))]
    for path in files:
        doc = json.loads(path.read_text(encoding="utf-8"))
        hrefs = [link["href"] for link in doc.get("links", [])]
        hrefs += [asset["href"] for asset in doc.get("assets", {}).values()]
        absolute = [h for h in hrefs if h.startswith(("/", "http://", "https://", "file:"))]
        if absolute:
            raise SystemExit(f"{path.relative_to(root)} has absolute hrefs {absolute[:3]}; a copy would read the base")


def band_files(root: Path) -> list[Path]:
    """Every band COG of an archive folder."""
    return sorted(p for p in (root / "items").glob("*/*.tif") if p.stem in S2_BANDS)


def folder_bytes(root: Path) -> int:
    """Total size of the files under ``root`` (apparent size, the marker excluded)."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.name != MARKER)


def make_layout_copy(base: Path, dest: Path, layout: CogLayout, *, rebuild: bool) -> float:
    """Copy ``base``'s catalog into ``dest`` and rewrite every band COG with ``layout``; seconds spent."""
    wanted = {"layout": layout_args(layout), "source_files": len(band_files(base))}
    marker = dest / MARKER
    if not rebuild and marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == wanted:
        return 0.0
    start = time.perf_counter()
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copy2(base / COLLECTION_FILE, dest / COLLECTION_FILE)
    shutil.copytree(base / "items", dest / "items")
    for path in band_files(dest):
        with rasterio.open(path) as src:
            array, crs, transform = src.read(1), src.crs.to_wkt(), src.transform
        tmp = path.with_name(path.stem + ".rewrite.tif")
        write_band_cog(tmp, array, crs, transform, layout=layout)
        os.replace(tmp, path)
    marker.write_text(json.dumps(wanted), encoding="utf-8")
    return time.perf_counter() - start


def warm_folder(root: Path) -> None:
    """Read every file under ``root`` once so that it sits in the OS page cache."""
    warm_page_cache(path for path in root.rglob("*") if path.is_file())


# --------------------------------------------------------------------------------------------------
# Query timings (child process)
# --------------------------------------------------------------------------------------------------

def polygon_geometries() -> dict[str, dict[str, Any]]:
    """Demo polygon name -> GeoJSON geometry (EPSG:4326)."""
    return {f["properties"]["name"]: f["geometry"] for f in demo_polygons()["features"]}


def query_child(archive_dir: Path, polygon: str, warm_repeat: int) -> dict[str, Any]:
    """Body of the fresh subprocess: the cold (first) query, then the best of ``warm_repeat`` repeats."""
    from stats import Archive, TimeSeriesRequest, query_timeseries
    from stats.clouds.model import default_model

    archive = Archive.open(archive_dir)
    default_model().probability(np.full((1, 10), 0.1))
    request = TimeSeriesRequest.from_dict({"geometry": polygon_geometries()[polygon], "crs": "EPSG:4326",
                                           "time": YEAR})
    start, start_cpu = time.perf_counter(), time.process_time()
    result = query_timeseries(request, archive)
    cold, cold_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    warm = []
    for _ in range(warm_repeat):
        start = time.perf_counter()
        query_timeseries(request, archive)
        warm.append(time.perf_counter() - start)
    payload = json.dumps(result.to_dict(), sort_keys=True).encode()
    return {"cold_s": cold, "cold_cpu_s": cold_cpu, "warm_s": min(warm), "dates": len(result.series),
            "valid_pixels": sum(d.valid_pixels for d in result.series),
            "result_sha256": hashlib.sha256(payload).hexdigest()}


def run_child(archive_dir: Path, polygon: str, warm_repeat: int) -> dict[str, Any]:
    """Run :func:`query_child` in a fresh Python process and return its measurement."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(archive_dir), polygon,
               "--warm-repeat", str(warm_repeat)]
    load = os.getloadavg()[0]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"child {archive_dir.name} {polygon} failed:\n{done.stderr}")
    measurement: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    measurement["load_1min"] = load
    return measurement


# --------------------------------------------------------------------------------------------------
# Band grouping (plain rasterio)
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    """One acquisition of the archive: its folder and the polygon bounds in its CRS."""

    folder: Path
    bounds: dict[str, tuple[float, ...]]


def items_with_bounds(root: Path, geometries: dict[str, BaseGeometry]) -> list[Item]:
    """The archive's item folders with the bounds of each polygon in the item's CRS."""
    items = []
    for folder in sorted(p for p in (root / "items").iterdir() if p.is_dir()):
        with rasterio.open(folder / "B02.tif") as src:
            crs = src.crs
        to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform
        bounds = {name: tuple(shapely.transform(geom, to_crs, interleaved=False).bounds)
                  for name, geom in geometries.items()}
        items.append(Item(folder, bounds))
    return items


def window_of(bounds: Sequence[float], src: rasterio.io.DatasetReader) -> Window:
    """Whole-pixel window of ``src`` covering ``bounds`` (minx, miny, maxx, maxy), clipped to the dataset."""
    t = src.transform
    c0 = max(0, int(np.floor((bounds[0] - t.c) / t.a)))
    c1 = min(src.width, int(np.ceil((bounds[2] - t.c) / t.a)))
    r0 = max(0, int(np.floor((bounds[3] - t.f) / t.e)))
    r1 = min(src.height, int(np.ceil((bounds[1] - t.f) / t.e)))
    return Window(c0, r0, c1 - c0, r1 - r0)


def write_grouped(item_folder: Path, dest: Path, layout: CogLayout, interleave: str) -> None:
    """Write the 13 bands of one item, resampled to 10 m by nearest neighbour, as one tiled GeoTIFF."""
    arrays: list[np.ndarray] = []
    with rasterio.open(item_folder / "B02.tif") as ref:
        shape_10m, crs, transform = (ref.height, ref.width), ref.crs, ref.transform
    for band in S2_BANDS:
        with rasterio.open(item_folder / f"{band}.tif") as src:
            data = src.read(1)
        factor = shape_10m[0] // data.shape[0]
        arrays.append(np.repeat(np.repeat(data, factor, axis=0), factor, axis=1))
    profile = {"driver": "GTiff", "width": shape_10m[1], "height": shape_10m[0], "count": len(S2_BANDS),
               "dtype": "uint16", "crs": crs, "transform": transform, "nodata": 0, "tiled": True,
               "blockxsize": layout.blocksize, "blockysize": layout.blocksize, "interleave": interleave,
               **{k: v for k, v in layout.profile().items() if k != "blocksize"}}
    with rasterio.open(dest, "w", **profile) as dst:
        dst.write(np.stack(arrays))
        dst.descriptions = tuple(S2_BANDS)


def read_single(items: Iterable[Item], polygon: str) -> int:
    """Read the polygon window of every band file of every item; return the pixels read."""
    pixels = 0
    for item in items:
        for band in S2_BANDS:
            with rasterio.open(item.folder / f"{band}.tif") as src:
                pixels += src.read(1, window=window_of(item.bounds[polygon], src)).size
    return pixels


def read_grouped(files: Iterable[tuple[Path, Item]], polygon: str) -> int:
    """Read the polygon window of all bands of every grouped file; return the pixels read."""
    pixels = 0
    for path, item in files:
        with rasterio.open(path) as src:
            pixels += src.read(window=window_of(item.bounds[polygon], src)).size
    return pixels


def median_time(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``repeat`` calls of ``fn``."""
    return statistics.median(repeat_times(fn, repeat))


def measure_grouping(work: Path, codec: str, repeat: int) -> list[dict[str, Any]]:
    """Single-band files vs 13-band pixel- and band-interleaved files, per tile size and polygon."""
    geometries = {name: shape(geom) for name, geom in polygon_geometries().items() if name in POLYGONS}
    rows = []
    for blocksize in BLOCKSIZES:
        layout = CogLayout(blocksize=blocksize, compress=codec, predictor=PREDICTOR)
        single = work / layout_name(layout)
        items = items_with_bounds(single, geometries)
        grouped: dict[str, list[tuple[Path, Item]]] = {}
        sizes = {"single-band files": folder_bytes(single / "items") - sum(
            p.stat().st_size for p in (single / "items").glob("*/*.json"))}
        for interleave in ("pixel", "band"):
            folder = work / "grouped" / f"{layout_name(layout)}-{interleave}"
            folder.mkdir(parents=True, exist_ok=True)
            files = []
            for item in items:
                path = folder / f"{item.folder.name}.tif"
                write_grouped(item.folder, path, layout, interleave)
                files.append((path, item))
            grouped[interleave] = files
            sizes[f"13-band {interleave}-interleaved"] = folder_bytes(folder)
            warm_folder(folder)
        warm_folder(single)
        for polygon in POLYGONS:
            single_s = median_time(partial(read_single, items, polygon), repeat)
            pixel_s = median_time(partial(read_grouped, grouped["pixel"], polygon), repeat)
            band_s = median_time(partial(read_grouped, grouped["band"], polygon), repeat)
            rows.append({"blocksize": blocksize, "codec": codec, "polygon": polygon,
                         "single_band_s": single_s, "pixel_interleaved_s": pixel_s,
                         "band_interleaved_s": band_s, "files_read": {"single": 13 * len(items),
                                                                       "grouped": len(items)},
                         "size_mb": {k: v / 1e6 for k, v in sizes.items()}})
            print(f"grouping {blocksize:>4} px {polygon:<12} single {single_s:.3f} s  pixel {pixel_s:.3f} s  "
                  f"band {band_s:.3f} s", flush=True)
    return rows


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------

def summarise(layout: CogLayout, size: int, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians over the subprocesses of one layout."""
    row: dict[str, Any] = {"layout": layout_name(layout), "cog_layout": layout_args(layout),
                           "blocksize": layout.blocksize, "compress": layout.compress,
                           "predictor": layout.predictor if layout.compress != "NONE" else None,
                           "size_mb": size / 1e6}
    for polygon, key in ((FIELD, "field"), (LAKE, "lake")):
        row[f"{key}_cold_s"] = statistics.median(r["cold_s"] for r in runs[polygon])
        row[f"{key}_cold_cpu_s"] = statistics.median(r["cold_cpu_s"] for r in runs[polygon])
        row[f"{key}_warm_s"] = statistics.median(r["warm_s"] for r in runs[polygon])
        row[f"{key}_cold_runs_s"] = [r["cold_s"] for r in runs[polygon]]
        row[f"{key}_warm_runs_s"] = [r["warm_s"] for r in runs[polygon]]
    return row


def render_markdown(report: dict[str, Any]) -> str:
    """The human-readable results."""
    m = report["machine"]
    rows, winner = report["layouts"], report["winner"]
    lines = [
        "# Demo archive COG layout: tile size, compression, predictor",
        "",
        (f"Command: `{report['command']}` (polyfis checkout {report['revision']}). "
         f"Machine: {describe_machine(m)}. Packages: {describe_packages(report['packages'])}."),
        "",
        (f"Query: `query_timeseries` for 2023 ({report['dates']} dates, all 13 bands, averaged cloud mode) over "
         f"`{FIELD}` ({report['pixels'][FIELD]:,} valid pixel-dates) and `{LAKE}` "
         f"({report['pixels'][LAKE]:,}). Each (layout, polygon) ran in {report['runs']} fresh subprocesses "
         "(no open dataset or GDAL block cache shared), round-robin over the layouts, after the cloud model was "
         "loaded. **cold** = the first query of the process (median over the subprocesses); **warm** = best of "
         f"{report['warm_repeat']} repeats in the same process (datasets kept open by the engine's pool, blocks "
         "in GDAL's cache), median over the subprocesses. **The OS page cache was warm for every layout** (each "
         "file read once before each round), so these times are decoding and GDAL/Python overhead, not disk "
         "or network I/O. Size = all files of the layout's archive copy (catalog JSON + band COGs), 10^6 bytes. "
         "All layouts returned byte-identical results (SHA-256 of the result JSON). *field cold CPU s* is the "
         "process CPU time (all threads) of the cold field query, less sensitive to other load on the machine; "
         f"1-minute load average when the subprocesses started: mean {report['load_1min']['mean']:.2f}, "
         f"max {report['load_1min']['max']:.2f} on {m['cpus']} CPUs."),
        "",
        ("| layout | CogLayout | size MB | field cold s | field warm s | lake cold s | lake warm s "
         "| field cold CPU s |"),
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        mark = "**" if r["layout"] == winner["layout"] else ""
        lines.append(f"| {mark}{r['layout']}{mark} | `{r['cog_layout']}` | {r['size_mb']:.1f} | "
                     f"{r['field_cold_s']:.3f} | {r['field_warm_s']:.3f} | {r['lake_cold_s']:.3f} | "
                     f"{r['lake_warm_s']:.3f} | {r['field_cold_cpu_s']:.3f} |")
    if report["dropped"]:
        lines += ["", f"Dropped (GDAL cannot write them): {', '.join(report['dropped'])}."]
    runner_up = report["runner_up"]
    lines += [
        "",
        (f"**Chosen layout (fastest field cold): `{winner['layout']}` -> `{winner['cog_layout']}`**, "
         f"field cold {winner['field_cold_s']:.3f} s "
         f"(runs {', '.join(f'{t:.3f}' for t in winner['field_cold_runs_s'])}), {winner['size_mb']:.1f} MB. "
         f"Runner-up `{runner_up['layout']}`: {runner_up['field_cold_s']:.3f} s "
         f"(runs {', '.join(f'{t:.3f}' for t in runner_up['field_cold_runs_s'])})."),
        f"Spread note: {report['spread_note']}",
        "",
        "## Band grouping (informative)",
        "",
        ("The engine reads one file per band (13 per date). With plain rasterio, one thread, each repetition "
         f"opening the files afresh (cold GDAL block cache, warm page cache), median of {report['grouping_repeat']} "
         f"repetitions: read the polygon window of all {report['dates']} dates from the 13 single-band COGs "
         "(native 10/20/60 m) vs from one 13-band GeoTIFF per date (all bands resampled to 10 m by nearest "
         f"neighbour, tiled GTiff, same codec as the chosen layout: {report['grouping_codec_args']}), pixel- or "
         "band-interleaved. Sizes are the band rasters only; the grouped files store the 20 m and 60 m bands at "
         "10 m (4x and 36x their pixels)."),
        "",
        ("| tile px | polygon | 13 single-band files s | 13-band pixel-interleaved s | 13-band band-interleaved s "
         "| speed-up (best grouped) | sizes MB single / pixel / band |"),
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for g in report["grouping"]:
        best = min(g["pixel_interleaved_s"], g["band_interleaved_s"])
        s = g["size_mb"]
        lines.append(f"| {g['blocksize']} | {g['polygon']} | {g['single_band_s']:.3f} | "
                     f"{g['pixel_interleaved_s']:.3f} | {g['band_interleaved_s']:.3f} | "
                     f"{g['single_band_s'] / best:.1f}x | "
                     f"{s['single-band files']:.1f} / {s['13-band pixel-interleaved']:.1f} / "
                     f"{s['13-band band-interleaved']:.1f} |")
    return "\n".join(lines)


def spread_note(winner: dict[str, Any], runner_up: dict[str, Any]) -> str:
    """Whether the winner's margin exceeds the run-to-run spread of the two best layouts."""
    margin = runner_up["field_cold_s"] - winner["field_cold_s"]
    spread = max(max(r["field_cold_runs_s"]) - min(r["field_cold_runs_s"]) for r in (winner, runner_up))
    verdict = "larger" if margin > spread else "not larger"
    return (f"the winner's margin over the runner-up ({margin * 1000:.0f} ms) is {verdict} than the largest "
            f"min-max spread of their cold runs ({spread * 1000:.0f} ms).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="work folder (default bench/.data/layout)")
    parser.add_argument("--runs", type=int, default=3, help="fresh subprocesses per layout and polygon")
    parser.add_argument("--warm-repeat", type=int, default=3, help="warm repeats per subprocess (best taken)")
    parser.add_argument("--grouping-repeat", type=int, default=5, help="repetitions of each grouping read")
    parser.add_argument("--rebuild", action="store_true", help="rewrite the layout copies even if present")
    add_results_dir(parser)
    parser.add_argument("--child", nargs=2, metavar=("ARCHIVE", "POLYGON"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(query_child(Path(args.child[0]), args.child[1], args.warm_repeat)))
        return

    work: Path = args.work.resolve()
    base = build_demo_archive(work / "base")
    check_relative_hrefs(base)
    layouts, dropped = candidates(work / "probe")
    print(f"{len(layouts)} layouts; dropped: {dropped or 'none'}", flush=True)
    folders = {}
    for layout in layouts:
        folder = work / layout_name(layout)
        seconds = make_layout_copy(base, folder, layout, rebuild=args.rebuild)
        folders[layout_name(layout)] = folder
        print(f"{layout_name(layout):<14} {folder_bytes(folder) / 1e6:8.1f} MB  (written in {seconds:.1f} s)",
              flush=True)

    runs: dict[str, dict[str, list[dict[str, Any]]]] = {n: {p: [] for p in POLYGONS} for n in folders}
    for round_ in range(args.runs):
        for name, folder in folders.items():
            warm_folder(folder)
            for polygon in POLYGONS:
                result = run_child(folder, polygon, args.warm_repeat)
                runs[name][polygon].append(result)
                print(f"round {round_ + 1} {name:<14} {polygon:<12} cold {result['cold_s']:.3f} s  "
                      f"warm {result['warm_s']:.3f} s", flush=True)

    for polygon in POLYGONS:
        digests = {r["result_sha256"] for per in runs.values() for r in per[polygon]}
        if len(digests) != 1:
            raise SystemExit(f"layouts disagree on the {polygon} result: {len(digests)} different digests")

    rows = [summarise(layout, folder_bytes(folders[layout_name(layout)]), runs[layout_name(layout)])
            for layout in layouts]
    ranked = sorted(rows, key=lambda r: r["field_cold_s"])
    winner, runner_up = ranked[0], ranked[1]
    grouping = measure_grouping(work, winner["compress"], args.grouping_repeat)

    any_run = next(iter(runs.values()))
    loads = [r["load_1min"] for per in runs.values() for rs in per.values() for r in rs]
    report: dict[str, Any] = {
        "command": command_line(__file__),
        "machine": machine_info(),
        "packages": package_versions(PACKAGES),
        "revision": git_revision(),
        "work": display_path(work),
        "runs": args.runs,
        "warm_repeat": args.warm_repeat,
        "grouping_repeat": args.grouping_repeat,
        "page_cache": "warm for every layout (every file read once before each round)",
        "load_1min": {"mean": statistics.mean(loads), "max": max(loads)},
        "dates": any_run[FIELD][0]["dates"],
        "pixels": {p: any_run[p][0]["valid_pixels"] for p in POLYGONS},
        "result_sha256": {p: any_run[p][0]["result_sha256"] for p in POLYGONS},
        "dropped": dropped,
        "layouts": rows,
        "winner": winner,
        "runner_up": runner_up,
        "spread_note": spread_note(winner, runner_up),
        "grouping_codec": winner["compress"],
        "grouping_codec_args": ("no compression" if winner["compress"] == "NONE"
                                else f"{winner['compress']} + predictor {PREDICTOR}"),
        "grouping": grouping,
    }
    write_results(args.results_dir, "layout", report, render_markdown(report))
    print(f"winner: {winner['layout']} -> {winner['cog_layout']}")


if __name__ == "__main__":
    main()
