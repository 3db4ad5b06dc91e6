"""Cost of the cloud model in polyfis: averaged pixel vs per-pixel mask, cold and cached.

Run:  .venv/bin/python bench/pixel_cloud.py [--demo-dir DIR] [--results-dir DIR] [--repeat 3]

It builds (or reuses) the demo archive, then times, over one year of the demo lake (about 16,000 px
at 10 m) and the 5 ha field:
* the raw s2cloudless model throughput on random reflectances (pixels per second on this machine);
* ``query_timeseries`` in averaged mode, pixel mode at 160 m and at 10 m with an empty cell cache,
  and the same pixel queries again with the cache warm (no model call).
Results go to ``pixel_cloud.md`` and ``.json`` in ``--results-dir`` (default ``bench/results``) with the
machine, package versions and the checkout's revision.
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    add_results_dir,
    command_line,
    describe_machine,
    describe_packages,
    git_revision,
    machine_info,
    package_versions,
    repeat_times,
    write_results,
)

from stats import Archive, TimeSeriesRequest, query_timeseries
from stats.archive.synthetic import build_demo_archive, demo_polygons
from stats.clouds.cells import ProbabilityCache
from stats.clouds.model import default_model

PACKAGES: tuple[str, ...] = ("numpy", "rasterio", "lightgbm", "s2cloudless")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    add_results_dir(parser)
    args = parser.parse_args()
    archive = Archive.open(build_demo_archive(args.demo_dir))
    polygons = {f["properties"]["name"]: f["geometry"] for f in demo_polygons()["features"]}
    model = default_model()
    model.probability(np.zeros((1, 10)))  # load the model outside the timings

    rows = []
    sample = np.random.default_rng(0).uniform(0.0, 0.6, size=(200_000, 10))
    seconds = min(repeat_times(partial(model.probability, sample), args.repeat))
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
                seconds = min(repeat_times(partial(query_timeseries, request, archive, cache=warm), args.repeat))
                rows.append({"case": f"{name}, 37 dates, {label}, warm cache", "seconds": seconds,
                             "throughput": f"{pixels / seconds:,.0f} polygon px/s", "model_cells": 0})

    report: dict[str, Any] = {
        "command": command_line(__file__),
        "machine": machine_info(),
        "packages": package_versions(PACKAGES),
        "revision": git_revision(),
        "repeat": args.repeat,
        "rows": rows,
    }
    setup = (f"Command: `{report['command']}` (best of {args.repeat}; polyfis checkout {report['revision']}). "
             f"Machine: {describe_machine(report['machine'])}. Packages: {describe_packages(report['packages'])}.")
    lines = ["# Cloud model cost: averaged pixel vs per-pixel mask", "", setup, "",
             "| case | seconds | throughput | cloud cells scored by the model |", "|---|---:|---:|---:|"]
    lines += [f"| {r['case']} | {r['seconds']:.3f} | {r['throughput']} | {r['model_cells']:,} |" for r in rows]
    write_results(args.results_dir, "pixel_cloud", report, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
