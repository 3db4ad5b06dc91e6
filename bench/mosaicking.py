"""Cost of multi-temporal evalscripts (mosaicking ORBIT and TILE) in the Statistical API, against SIMPLE.

Run:  .venv/bin/python bench/mosaicking.py [--repeat 5] [--polygon field_maize] [--demo-dir DIR] [--results-dir DIR]

On the demo archive (37 dates of 2023, one tile per date), over one demo polygon at 10 m, in one run and in
this process (``stats.sentinelhub.statistical.run_statistics``, model loaded and caches warm after one
warm-up call of each case), ``--repeat`` calls of each case, round-robin, medians:

* ``simple P1D``: the NDVI script, one interval per date (the baseline: every date read once, one engine
  call per date);
* ``orbit P1M``: the documentation's maximum monthly NDVI (mosaicking ORBIT), 12 intervals;
* ``orbit P1Y``: the same over one yearly interval, 37 samples per pixel in one engine call;
* ``tile P1Y``: a TILE script counting each pixel's valid tiles and their mean red, one yearly interval.

Every case reads each date once, so the ratios show what the samples arrays cost in the engine. Writes
``mosaicking.md`` and ``mosaicking.json`` into ``--results-dir`` (default ``bench/results``); nothing asserts
a time.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

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
from pyproj import Transformer
from shapely.geometry import mapping, shape
from shapely.ops import transform

from stats import Archive
from stats.archive.synthetic import build_demo_archive, demo_polygons
from stats.sentinelhub.statistical import run_statistics

NDVI = """//VERSION=3
function setup() {
  return {input: [{bands: ["B04", "B08", "dataMask"]}], output: [{id: "ndvi", bands: 1}, {id: "dataMask", bands: 1}]};
}
function evaluatePixel(samples) {
  return {ndvi: [index(samples.B08, samples.B04)], dataMask: [samples.dataMask]};
}
"""

MAX_NDVI = """//VERSION=3
function setup() {
  return {input: [{bands: ["B04", "B08", "dataMask"]}], mosaicking: "ORBIT",
          output: [{id: "data", bands: ["max_ndvi"]}, {id: "dataMask", bands: 1}]};
}
function evaluatePixel(samples) {
  var max = 0, hasData = 0;
  for (var i = 0; i < samples.length; i++) {
    if (samples[i].dataMask == 1 && samples[i].B04 + samples[i].B08 != 0) {
      hasData = 1;
      var ndvi = index(samples[i].B08, samples[i].B04);
      max = ndvi > max ? ndvi : max;
    }
  }
  return {data: [max], dataMask: [hasData]};
}
"""

TILE_COUNT = """//VERSION=3
function setup() {
  return {input: [{bands: ["B04", "dataMask"]}], mosaicking: "TILE",
          output: [{id: "obs", bands: ["count", "mean_red"]}, {id: "dataMask", bands: 1}]};
}
function evaluatePixel(samples) {
  let n = 0, sum = 0;
  for (let i = 0; i < samples.length; i++) if (samples[i].dataMask === 1) { n += 1; sum += samples[i].B04; }
  return {obs: [n, n ? sum / n : 0], dataMask: [n > 0 ? 1 : 0]};
}
"""

CASES = {"simple P1D": (NDVI, "P1D"), "orbit P1M": (MAX_NDVI, "P1M"), "orbit P1Y": (MAX_NDVI, "P1Y"),
         "tile P1Y": (TILE_COUNT, "P1Y")}


def body(geometry: dict[str, Any], script: str, interval: str) -> dict[str, Any]:
    return {"input": {"bounds": {"geometry": geometry, "properties": {"crs": "http://www.opengis.net/def/crs/EPSG/0/32633"}},
                      "data": [{"type": "sentinel-2-l1c"}]},
            "aggregation": {"timeRange": {"from": "2023-01-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"},
                            "aggregationInterval": {"of": interval}, "resx": 10, "resy": 10, "evalscript": script}}


def main() -> None:
    """Run the cases and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--polygon", default="field_maize")
    parser.add_argument("--demo-dir", type=Path, default=Path("demo-archive"))
    add_results_dir(parser)
    args = parser.parse_args()
    archive = Archive.open(build_demo_archive(args.demo_dir))
    (feature,) = [f for f in demo_polygons()["features"] if f["properties"]["name"] == args.polygon]
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True).transform
    geometry = mapping(transform(to_utm, shape(feature["geometry"])))
    calls = {name: (lambda s=script, i=interval: run_statistics(body(geometry, s, i), archive))
             for name, (script, interval) in CASES.items()}
    answers = {name: call() for name, call in calls.items()}  # warm-up, and the shape of each answer
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.repeat):
        for name, call in calls.items():
            times[name] += repeat_times(call, 1)
    medians = {name: statistics.median(t) for name, t in times.items()}
    base = medians["simple P1D"]
    report = {"command": command_line(__file__), "revision": git_revision(), "machine": machine_info(),
              "packages": package_versions(["mini-racer", "numpy", "rasterio"]), "polygon": args.polygon,
              "repeat": args.repeat,
              "cases": {name: {"median_s": medians[name], "ratio_to_simple_p1d": medians[name] / base,
                               "intervals": len(answers[name]["data"]), "times_s": times[name]} for name in CASES}}
    lines = ["# Multi-temporal evalscripts (ORBIT, TILE) against SIMPLE", "",
             f"`{report['command']}` at {report['revision']}; {describe_machine(report['machine'])}; "
             f"{describe_packages(report['packages'])}.", "",
             f"One year of the demo archive (37 dates) over `{args.polygon}` at 10 m, in process, warm; medians of "
             f"{args.repeat} calls each, round-robin.", "",
             "| case | intervals | median s | ratio to simple P1D |", "|---|---|---|---|"]
    for name, case in report["cases"].items():
        lines.append(f"| {name} | {case['intervals']} | {case['median_s']:.3f} | {case['ratio_to_simple_p1d']:.2f} |")
    json_path, md_path = write_results(args.results_dir, "mosaicking", report, "\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
