"""Cost of the cloud model in polyfis: averaged pixel vs per-pixel mask, cold and cached.

Run:  .venv/bin/python bench/pixel_cloud.py [--demo-dir DIR] [--repeat 3]

It builds (or reuses) the demo archive, then times, over one year of the demo lake (about 16,000 px
at 10 m) and the 5 ha field:
* the raw s2cloudless model throughput on random reflectances (pixels per second on this machine);
* ``query_timeseries`` in averaged mode, pixel mode at 160 m and at 10 m with an empty cell cache,
  and the same pixel queries again with the cache warm (no model call).
Results go to ``bench/results/pixel_cloud.md`` and ``.json`` with the machine and package versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

from stats import Archive, TimeSeriesRequest, query_timeseries
from stats.archive.synthetic import build_demo_archive, demo_polygons
from stats.cloud import default_model
from stats.cloudmask import ProbabilityCache

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    archive = Archive.open(build_demo_archive(args.demo_dir))
    polygons = {f["properties"]["name"]: f["geometry"] for f in demo_polygons()["features"]}
    model = default_model()
    model.probability(np.zeros((1, 10)))  # load the model outside the timings

    rows = []
    sample = np.random.default_rng(0).uniform(0.0, 0.6, size=(200_000, 10))
    seconds = timed(lambda: model.probability(sample), args.repeat)
    rows.append({"case": "s2cloudless model, 200,000 random pixels", "seconds": seconds,
                 "throughput": f"{len(sample) / seconds:,.0f} px/s", "model_cells": len(sample)})

    for name in ("lake", "field_small"):
        for label, cloud in (("averaged", {"mode": "averaged"}),
                             ("pixel 160 m", {"mode": "pixel", "resolution": 160}),
                             ("pixel 10 m", {"mode": "pixel", "resolution": 10, "average_over": 4,
                                             "dilation_size": 2})):
            request = TimeSeriesRequest.from_dict({"geometry": polygons[name], "time": {"from": "2023-01-01",
                                                   "to": "2023-12-31"}, "bands": ["B03", "B04", "B08"],
                                                   "cloud": cloud})
            cold_times, cells = [], 0
            for _ in range(args.repeat):
                cache = ProbabilityCache()
                start = time.perf_counter()
                result = query_timeseries(request, archive, cache=cache)
                cold_times.append(time.perf_counter() - start)
                cells = cache.misses
            pixels = sum(e.valid_pixels for e in result.series)
            rows.append({"case": f"{name}, 37 dates, {label}, cold cache", "seconds": min(cold_times),
                         "throughput": f"{pixels / min(cold_times):,.0f} polygon px/s", "model_cells": cells})
            if label != "averaged":
                warm = ProbabilityCache()
                query_timeseries(request, archive, cache=warm)
                seconds = timed(lambda: query_timeseries(request, archive, cache=warm), args.repeat)
                rows.append({"case": f"{name}, 37 dates, {label}, warm cache", "seconds": seconds,
                             "throughput": f"{pixels / seconds:,.0f} polygon px/s", "model_cells": 0})

    machine = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
               "packages": {p: version(p) for p in ("numpy", "rasterio", "lightgbm", "s2cloudless")}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pixel_cloud.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    lines = ["# Cloud model cost: averaged pixel vs per-pixel mask", "",
             f"Command: `.venv/bin/python bench/pixel_cloud.py --repeat {args.repeat}` (best of {args.repeat}). "
             f"Machine: {machine['cpus']} CPUs, {machine['machine']}, Python {machine['python']}, "
             + ", ".join(f"{k} {v}" for k, v in machine["packages"].items()) + ".", "",
             "| case | seconds | throughput | cloud cells scored by the model |", "|---|---:|---:|---:|"]
    lines += [f"| {r['case']} | {r['seconds']:.3f} | {r['throughput']} | {r['model_cells']:,} |" for r in rows]
    (RESULTS / "pixel_cloud.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
