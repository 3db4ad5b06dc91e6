"""The reference contenders of the benchmark: the I/O floor, rasterio window + numpy, rasterstats, exactextract.

Each runs in a child process on one :class:`perf_job.Job` and loops over the archive's files one by one
(every file is one band of one date); :class:`FileLoop` times the loop and, when it is projected beyond the
cap, stops it at a date boundary and extrapolates. rasterstats' values are the reference polyfis is checked
against.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from perf_archive import BANDS
from perf_job import Job, Values

RASTERSTATS_STATS = "mean min max std percentile_10 percentile_50 percentile_90"
RASTERSTATS_KEYS: tuple[str, ...] = ("mean", "min", "max", "std", "percentile_10", "percentile_50", "percentile_90")
EXACTEXTRACT_OPS = ["mean", "min", "max", "stdev", "quantile(q=0.1)", "quantile(q=0.5)", "quantile(q=0.9)"]
#: DN per unit of reflectance (processing baselines before 04.00 have no offset).
QUANTIFICATION = 10_000.0


class FileLoop:
    """Times a per-file loop; stops at a date boundary once the projected total exceeds the cap.

    The loop stops only when at least a third of the cap has been spent and the projection says the whole
    run would take longer than the cap; the total is then extrapolated linearly in files (every file is
    the same work: the same polygons over one band of one date).
    """

    def __init__(self, files: Sequence[tuple[str, str, str]], cap_seconds: float, group: int = len(BANDS)) -> None:
        self.files = list(files)
        self.cap = cap_seconds
        self.group = group
        self.done = 0
        self.elapsed = 0.0

    def __iter__(self) -> Iterator[tuple[str, str, str]]:
        t0 = time.perf_counter()
        for item in self.files:
            yield item
            self.done += 1
            self.elapsed = time.perf_counter() - t0
            if self.done % self.group == 0 and self.done < len(self.files):
                projected = self.elapsed / self.done * len(self.files)
                if projected > self.cap and self.elapsed >= self.cap / 3:
                    break
                if self.done % (self.group * 4) == 0:
                    print(f"    {self.done}/{len(self.files)} files, {self.elapsed:.0f} s", flush=True)

    @property
    def remaining(self) -> list[tuple[str, str, str]]:
        return self.files[self.done:]

    def result(self) -> dict[str, Any]:
        total = len(self.files)
        extrapolated = self.done < total
        wall = self.elapsed / self.done * total if extrapolated else self.elapsed
        out: dict[str, Any] = {"wall_s": wall, "measured_s": self.elapsed, "files_done": self.done,
                               "files_total": total, "extrapolated": extrapolated}
        if extrapolated:
            out["note"] = (f"extrapolated: measured {self.done // self.group} of {total // self.group} dates "
                           f"(all bands, all polygons) in {self.elapsed:.0f} s, scaled linearly by files")
        return out


def run_io_floor(job: Job) -> dict[str, Any]:
    """Open each file, read and decode every internal tile touched by a polygon exactly once, close."""
    import rasterio
    from shapely import STRtree
    from shapely.geometry import box, shape

    polys = [shape(f["geometry"]) for f in job.features()]
    tree = STRtree(polys)
    with rasterio.open(job.files[0][2]) as src:
        blocks = [window for _, window in src.block_windows(1)
                  if len(tree.query(box(*src.window_bounds(window)), predicate="intersects"))]
        layout = (src.block_shapes, src.width, src.height)
    loop = FileLoop(job.files, job.cap_seconds)
    for _, _, path in loop:
        with rasterio.open(path) as src:
            assert (src.block_shapes, src.width, src.height) == layout
            for window in blocks:
                src.read(1, window=window)
    return {**loop.result(), "tiles_per_file": len(blocks)}


def _numpy_stats(values: np.ndarray) -> list[float]:
    p10, p50, p90 = np.percentile(values, [10, 50, 90]).tolist()
    mean = float(values.mean())
    return [mean, float(values.min()), float(values.max()), float(np.sqrt(np.mean((values - mean) ** 2))),
            p10, p50, p90]


def run_rasterio_numpy(job: Job) -> dict[str, Any]:
    """Per file, per polygon: window read of the polygon bounds, geometry_mask, numpy statistics."""
    import rasterio
    from rasterio.features import geometry_mask
    from rasterio.windows import Window
    from shapely.geometry import shape

    features = job.features()
    polys = [shape(f["geometry"]) for f in features]
    keep = set(job.sample_index(features))
    values: dict[str, Values] = {str(features[i]["properties"]["id"]): {} for i in keep}
    loop = FileLoop(job.files, job.cap_seconds)
    for date, band, path in loop:
        with rasterio.open(path) as src:
            t = src.transform
            for i, poly in enumerate(polys):
                minx, miny, maxx, maxy = poly.bounds
                c0 = max(0, math.floor((minx - t.c) / t.a))
                r0 = max(0, math.floor((maxy - t.f) / t.e))
                c1 = min(src.width, math.ceil((maxx - t.c) / t.a))
                r1 = min(src.height, math.ceil((miny - t.f) / t.e))
                window = Window(c0, r0, c1 - c0, r1 - r0)
                data = src.read(1, window=window)
                inside = geometry_mask([poly], out_shape=data.shape, transform=src.window_transform(window),
                                       invert=True)
                pixels = data[inside & (data != 0)].astype(np.float64) / QUANTIFICATION
                if i in keep and pixels.size:
                    values[str(features[i]["properties"]["id"])].setdefault(date, {})[band] = _numpy_stats(pixels)
                elif pixels.size:
                    _numpy_stats(pixels)
    return {**loop.result(), "values": values}


def run_rasterstats(job: Job) -> dict[str, Any]:
    """``zonal_stats`` per file; for the batch, ``boundless=False`` when the default is projected too slow."""
    from rasterstats import zonal_stats

    features = job.features()
    keep = job.sample_index(features)
    boundless = True
    note = "default (boundless=True)"
    if job.case == "batch":
        t0 = time.perf_counter()
        zonal_stats(features, job.files[0][2], stats=RASTERSTATS_STATS)
        probe = time.perf_counter() - t0
        projected = probe * len(job.files)
        if projected > job.cap_seconds:
            boundless = False
            note = (f"boundless=False: the default boundless=True took {probe:.1f} s on the first file, "
                    f"projected {projected / 60:.0f} min for all files")
        print(f"    rasterstats probe: {probe:.2f} s per file with boundless=True -> {note}", flush=True)
    raw: dict[tuple[str, str], list[dict[str, Any]]] = {}
    loop = FileLoop(job.files, job.cap_seconds)
    for date, band, path in loop:
        result = zonal_stats(features, path, stats=RASTERSTATS_STATS, boundless=boundless)
        raw[(date, band)] = [result[i] for i in keep]
    out = loop.result()
    if loop.remaining:  # untimed: the correctness sample must cover every date and band
        sample = [features[i] for i in keep]
        for date, band, path in loop.remaining:
            raw[(date, band)] = zonal_stats(sample, path, stats=RASTERSTATS_STATS, boundless=boundless)
    values: dict[str, Values] = {}
    for (date, band), rows in raw.items():
        for i, row in zip(keep, rows):
            if row.get("mean") is None:
                continue
            fid = str(features[i]["properties"]["id"])
            values.setdefault(fid, {}).setdefault(date, {})[band] = [row[k] / QUANTIFICATION for k in RASTERSTATS_KEYS]
    out["note"] = "; ".join(filter(None, [note, out.get("note")]))
    return {**out, "values": values, "boundless": boundless}


def run_exactextract(job: Job) -> dict[str, Any]:
    """``exact_extract(path, features, ops)`` per file (coverage-weighted; only timed, not compared)."""
    from exactextract import exact_extract

    features = job.features()
    loop = FileLoop(job.files, job.cap_seconds)
    for _, _, path in loop:
        exact_extract(path, features, EXACTEXTRACT_OPS)
    return loop.result()


RUNNERS: dict[str, Callable[[Job], dict[str, Any]]] = {
    "io_floor": run_io_floor,
    "rasterio_numpy": run_rasterio_numpy,
    "rasterstats": run_rasterstats,
    "exactextract": run_exactextract,
}
