"""Archive search over a million items: the stac-geoparquet index (pyarrow) against a linear scan, in one run.

Generates ``--items`` synthetic Sentinel-2 L1C item rows (default 1,000,000: a grid of 1-degree tiles, one
acquisition every 5 days per tile, 13 band assets each, as polyfis's archive writer writes them) straight into
a stac-geoparquet index with :func:`stats.archive.sources.geoparquet.write_index_tables`, then times the same
field queries (a small polygon, one year, with and without a cloud cover limit) on:

* the index (:class:`~stats.archive.sources.geoparquet.GeoparquetSource`: row groups pruned by their bbox and
  time statistics, read with pyarrow), the first query after opening it
  (cold) and the others (warm);
* the acquisitions in memory, searched the way polyfis did before the index: one footprint test per item
  (the baseline);
* the in-memory static catalog source (:class:`~stats.archive.sources.static.MemorySource`, an STRtree).

Every query's answer is checked equal (same ids, same order) across the three. Results go in
``bench/results/archive_search.md`` (and ``.json``).

    .venv/bin/python bench/archive_search.py            # 1,000,000 items
    .venv/bin/python bench/archive_search.py --items 50000 --queries 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    add_results_dir,
    command_line,
    describe_machine,
    describe_packages,
    git_revision,
    machine_info,
    package_versions,
    write_results,
)
from stats.archive.catalog import Acquisition  # noqa: E402
from stats.archive.sources.geoparquet import (  # noqa: E402
    CELL_COLUMN,
    ITEM_COLUMN,
    GeoparquetSource,
    cell_numbers,
    index_table,
    write_index_tables,
)
from stats.archive.sources.static import MemorySource  # noqa: E402
from stats.bands import S2_BANDS  # noqa: E402

UTC = dt.UTC
#: The first acquisition, and the revisit interval of every tile.
FIRST = dt.datetime(2017, 1, 1, 10, 0, 31, tzinfo=UTC)
REVISIT = dt.timedelta(days=5)
#: Tiles are 1-degree squares on a grid from (LON0, LAT0), overlapping their neighbours by OVERLAP degrees.
LON0, LAT0, OVERLAP = -10.0, 35.0, 0.02
#: Items per generated table (and per template).
CHUNK_ITEMS = 4096


def grid_shape(items: int) -> tuple[int, int, int]:
    """(tile columns, tile rows, dates per tile) for about ``items`` items, about 500 dates per tile."""
    tiles = max(1, round(items / 500))
    cols = max(1, int(np.sqrt(tiles * 1.25)))
    rows = max(1, -(-tiles // cols))
    return cols, rows, -(-items // (cols * rows))


def item_dict(tile: tuple[int, int], index: int, cover: float) -> dict[str, Any]:
    """One synthetic item (as :func:`~stats.archive.sources.geoparquet.index_dict` stores it)."""
    col, row = tile
    x0, y0 = LON0 + col, LAT0 + row
    when = FIRST + index * REVISIT
    name = f"T{col:02d}{row:02d}_{when:%Y%m%dT%H%M%S}"
    ring = [[x0, y0], [x0 + 1 + OVERLAP, y0], [x0 + 1 + OVERLAP, y0 + 1 + OVERLAP], [x0, y0 + 1 + OVERLAP], [x0, y0]]
    return {
        "type": "Feature", "stac_version": "1.1.0", "id": name, "collection": "sentinel-2-l1c",
        "stac_extensions": ["https://stac-extensions.github.io/projection/v2.0.0/schema.json",
                            "https://stac-extensions.github.io/eo/v1.1.0/schema.json"],
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "bbox": [x0, y0, x0 + 1 + OVERLAP, y0 + 1 + OVERLAP],
        "properties": {"datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "platform": "sentinel-2a",
                       "constellation": "sentinel-2", "instruments": ["msi"], "s2:product_type": "S2MSI1C",
                       "s2:processing_baseline": "04.00", "eo:cloud_cover": cover, "proj:code": "EPSG:32633",
                       "s2:mgrs_tile": f"{col:02d}{row:02d}"},
        "links": [],
        "assets": {band: {"href": f"items/{name}/{band}.tif", "type": "image/tiff; application=geotiff; "
                          "profile=cloud-optimized", "roles": ["data"]} for band in S2_BANDS},
    }


def tile_rows(items: int, seed: int) -> Iterator[tuple[int, int, int, float]]:
    """(tile column, tile row, date index, cloud cover) of every item, tile after tile."""
    cols, rows, dates = grid_shape(items)
    rng = np.random.default_rng(seed)
    written = 0
    for row in range(rows):
        for col in range(cols):
            covers = np.round(rng.uniform(0, 100, dates), 2)
            for index in range(dates):
                if written == items:
                    return
                yield col, row, index, float(covers[index])
                written += 1


def chunk_table(template: pa.Table, rows: list[tuple[int, int, int, float]]) -> pa.Table:
    """The index rows of ``rows``: the columns that differ between items are built here, column by column;
    the others (the same for every item) are the template's. The result equals :func:`index_table` of the
    :func:`item_dict` items (which is far slower for a million items)."""
    table = template.slice(0, len(rows))
    col = np.array([r[0] for r in rows], dtype=np.float64)
    row = np.array([r[1] for r in rows], dtype=np.float64)
    x0, y0 = LON0 + col, LAT0 + row
    x1, y1 = x0 + 1 + OVERLAP, y0 + 1 + OVERLAP
    names = np.array([f"T{c:02d}{r:02d}_{FIRST + i * REVISIT:%Y%m%dT%H%M%S}" for c, r, i, _ in rows], dtype=object)
    schema = table.schema

    def put(name: str, values: pa.Array) -> None:
        nonlocal table
        table = table.set_column(schema.get_field_index(name), schema.field(name), values)

    put("id", pa.array(names, pa.string()))
    put("datetime", pa.array([FIRST + r[2] * REVISIT for r in rows], schema.field("datetime").type))
    put("bbox", pa.StructArray.from_arrays([pa.array(v) for v in (x0, y0, x1, y1)],
                                           fields=list(schema.field("bbox").type)))
    put("geometry", pa.array(shapely.to_wkb(shapely.box(x0, y0, x1, y1)), schema.field("geometry").type))
    put("eo:cloud_cover", pa.array([r[3] for r in rows], pa.float64()))
    put("s2:mgrs_tile", pa.array([f"{c:02d}{r:02d}" for c, r, _, _ in rows], pa.string()))
    assets = table.column("assets").combine_chunks()
    bands = []
    for field in assets.type:
        old = assets.field(field.name)
        hrefs = pa.array([f"items/{n}/{field.name}.tif" for n in names], pa.string())
        bands.append(pa.StructArray.from_arrays([hrefs, *(old.field(i) for i in range(1, old.type.num_fields))],
                                                fields=list(old.type)))
    put("assets", pa.StructArray.from_arrays(bands, fields=list(assets.type)))
    put(ITEM_COLUMN, pa.array([json.dumps(item_dict((c, r), i, cover), separators=(",", ":"))
                               for c, r, i, cover in rows], pa.string()))
    put(CELL_COLUMN, pa.array(cell_numbers((x0 + x1) / 2, (y0 + y1) / 2)))
    return table


def generate(path: Path, items: int, seed: int) -> tuple[int, float]:
    """Write the synthetic index, tile after tile (the index's own cell and time order); (items, seconds)."""
    start = time.perf_counter()
    template = index_table([item_dict((0, 0), i, 0.0) for i in range(CHUNK_ITEMS)])
    template = template.take(pa.array(np.arange(CHUNK_ITEMS)))  # plain, unsorted by the dates it made up

    done = [0]

    def chunks() -> Iterator[pa.Table]:
        batch: list[tuple[int, int, int, float]] = []
        for entry in tile_rows(items, seed):
            batch.append(entry)
            if len(batch) == CHUNK_ITEMS:
                yield chunk_table(template, batch)
                batch = []
                done[0] += CHUNK_ITEMS
                if done[0] % (50 * CHUNK_ITEMS) == 0:
                    print(f"  {done[0]} items written, {time.perf_counter() - start:.0f} s", file=sys.stderr)
        if batch:
            yield chunk_table(template, batch)

    write_index_tables(chunks(), path, collection_id="sentinel-2-l1c", title="synthetic")
    return items, time.perf_counter() - start


def memory_acquisitions(items: int, seed: int) -> list[Acquisition]:
    """The same items as acquisitions in memory (box footprints), sorted by (datetime, id) as the former
    ``Archive`` held them, for the scans."""
    footprints: dict[tuple[int, int], Any] = {}
    out = []
    for col, row, index, cover in tile_rows(items, seed):
        footprint = footprints.get((col, row))
        if footprint is None:
            footprint = footprints[col, row] = shapely.box(LON0 + col, LAT0 + row, LON0 + col + 1 + OVERLAP,
                                                           LAT0 + row + 1 + OVERLAP)
        when = FIRST + index * REVISIT
        out.append(Acquisition(id=f"T{col:02d}{row:02d}_{when:%Y%m%dT%H%M%S}", datetime=when, crs="EPSG:32633",
                               footprint=footprint, assets={}, cloud_cover=cover))
    return sorted(out, key=lambda a: (a.datetime, a.id))


def linear_search(acquisitions: list[Acquisition], geometry: Any, start: dt.datetime, end: dt.datetime,
                  max_cloud_cover: float | None) -> list[Acquisition]:
    """The search polyfis had before the index: every item tested in turn (its former ``Archive.search``)."""
    found = []
    for acq in acquisitions:
        if not (start <= acq.datetime <= end):
            continue
        if max_cloud_cover is not None and acq.cloud_cover is not None and acq.cloud_cover > max_cloud_cover:
            continue
        if acq.footprint.intersects(geometry):
            found.append(acq)
    return found


def queries(items: int, count: int, seed: int) -> list[tuple[Any, dt.datetime, dt.datetime, float | None]]:
    """Field-sized squares (about 300 m) inside the grid, one calendar year each; every other one with
    ``max_cloud_cover`` 30."""
    cols, rows, dates = grid_shape(items)
    rng = np.random.default_rng(seed)
    last_year = (FIRST + (dates - 1) * REVISIT).year
    out = []
    for q in range(count):
        x = LON0 + rng.uniform(0.05, cols - 0.05)
        y = LAT0 + rng.uniform(0.05, min(rows, items / (cols * dates)) - 0.05)
        year = int(rng.integers(FIRST.year, last_year + 1))
        out.append((shapely.box(x, y, x + 0.004, y + 0.003), dt.datetime(year, 1, 1, tzinfo=UTC),
                    dt.datetime(year, 12, 31, 23, 59, 59, tzinfo=UTC), 30.0 if q % 2 else None))
    return out


def fmt_load(load: tuple[float, float, float]) -> str:
    """A load average as ``1.0 / 2.0 / 3.0``."""
    return " / ".join(f"{v:.1f}" for v in load)


def ms(values: list[float]) -> str:
    """Median (min–max) milliseconds."""
    return f"{statistics.median(values) * 1000:.1f} ({min(values) * 1000:.1f}–{max(values) * 1000:.1f})"


def main() -> None:
    """Generate, time, check, write the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, help="where to write the index (default: a temporary folder); "
                        "an index already there with --items rows is used again")
    add_results_dir(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="polyfis-archive-search-") as tmp:
        folder = args.data_dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "items.parquet"
        if args.data_dir and path.is_file() and pq.ParquetFile(path).metadata.num_rows == args.items:
            written, gen_s = args.items, float("nan")  # the index of an earlier run with the same --items
        else:
            written, gen_s = generate(path, args.items, args.seed)
        size = path.stat().st_size
        print(f"index: {written} items, {size / 2**20:.0f} MiB, written in {gen_s:.1f} s", file=sys.stderr)
        asked = queries(args.items, args.queries, args.seed)

        load_before = os.getloadavg()
        t0, c0 = time.perf_counter(), time.process_time()
        source = GeoparquetSource.open(path)
        open_s, open_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        index_times, index_cpu, answers = [], [], []
        for geometry, start, end, cover in asked:
            t0, c0 = time.perf_counter(), time.process_time()
            found = source.search(geometry, start, end, max_cloud_cover=cover)
            index_times.append(time.perf_counter() - t0)
            index_cpu.append(time.process_time() - c0)
            answers.append([a.id for a in found])
        load_after = os.getloadavg()

        t0 = time.perf_counter()
        acquisitions = memory_acquisitions(args.items, args.seed)
        build_s = time.perf_counter() - t0
        linear_times, linear_cpu = [], []
        for (geometry, start, end, cover), expected in zip(asked, answers):
            t0, c0 = time.perf_counter(), time.process_time()
            found = linear_search(acquisitions, geometry, start, end, cover)
            linear_times.append(time.perf_counter() - t0)
            linear_cpu.append(time.process_time() - c0)
            if [a.id for a in found] != expected:
                raise SystemExit(f"the index and the linear scan differ for {geometry.wkt} {start.year}")
        t0 = time.perf_counter()
        memory = MemorySource(acquisitions)
        tree_s = time.perf_counter() - t0
        tree_times = []
        for (geometry, start, end, cover), expected in zip(asked, answers):
            t0 = time.perf_counter()
            found = memory.search(geometry, start, end, max_cloud_cover=cover)
            tree_times.append(time.perf_counter() - t0)
            if [a.id for a in found] != expected:
                raise SystemExit(f"the index and the STRtree differ for {geometry.wkt} {start.year}")

    matched = [len(a) for a in answers]
    warm = index_times[1:] or index_times
    warm_cpu = index_cpu[1:] or index_cpu
    report = {
        "command": command_line(__file__), "revision": git_revision(), "machine": machine_info(),
        "packages": package_versions(["pyarrow", "stac-geoparquet", "pystac", "shapely"]),
        "items": written, "index_bytes": size, "generate_s": gen_s, "open_s": open_s, "open_cpu_s": open_cpu_s,
        "queries": len(asked), "matched_per_query": matched,
        "index_s": index_times, "index_cpu_s": index_cpu, "linear_s": linear_times, "linear_cpu_s": linear_cpu,
        "strtree_s": tree_times, "load_average_before": load_before, "load_average_after": load_after,
        "memory_build_s": build_s, "strtree_build_s": tree_s,
    }
    ratio = statistics.median(linear_times) / statistics.median(warm)
    markdown = f"""# Archive search over {written:,} items

`{report['command']}` (revision {report['revision']})

{describe_machine(report['machine'])}; {describe_packages(report['packages'])}.

{written:,} synthetic Sentinel-2 L1C items (1-degree tiles, one acquisition every 5 days, 13 band assets each)
in one stac-geoparquet index of {size / 2**20:.0f} MiB (written in {gen_s:.0f} s; nan: by an earlier run).
{len(asked)} queries: a field of about 300 m, one calendar year, every other one with `max_cloud_cover` 30; each matched
{min(matched)}–{max(matched)} items (median {statistics.median(matched):.0f}). Every answer was checked equal
(ids and order) across the three searches. Times are median (min–max) milliseconds per query: wall time, and
the process's CPU time (`time.process_time`, all its threads), which a shared machine's load inflates less. Load
average (1, 5, 15 min) while the index was searched: {fmt_load(load_before)} before, {fmt_load(load_after)} after.

| search | wall, ms | CPU, ms | vs linear scan (wall) |
|---|---:|---:|---:|
| stac-geoparquet index, pyarrow (first query after opening) | {index_times[0] * 1000:.1f} | \
{index_cpu[0] * 1000:.1f} | |
| stac-geoparquet index, pyarrow (the others) | {ms(warm)} | {ms(warm_cpu)} | {ratio:.0f}x faster |
| acquisitions in memory, linear scan (the former `Archive.search`) | {ms(linear_times)} | {ms(linear_cpu)} | 1 |
| acquisitions in memory, STRtree (`MemorySource`, a static catalog) | {ms(tree_times)} | | \
{statistics.median(linear_times) / statistics.median(tree_times):.0f}x faster |

Opening the index: {open_s * 1000:.0f} ms wall, {open_cpu_s * 1000:.0f} ms CPU (it reads the Parquet footer and
keeps each row group's bbox and time bounds). Holding the items in memory instead
took {build_s:.0f} s to build {written:,} acquisitions (without reading any file) and {tree_s:.1f} s more for the
STRtree; a static catalog of that size would first have to read {written:,} item files.
"""
    json_path, md_path = write_results(args.results_dir, "archive_search", report, markdown)
    print(markdown)
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
