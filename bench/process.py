"""Cost of a Process API request against reading the same bands onto the same grid with rasterio alone.

Run:  .venv/bin/python bench/process.py [--repeat 5] [--demo-dir DIR] [--results-dir DIR]

On the demo archive, one date (2023-07-24), the request eo-learn's land-cover example makes
(``SentinelHubInputTask``: B02, B03, B04, B08, B11, B12 as UINT16 DN, with dataMask, CLM and CLP, one TIFF
each in a tar) over two UTM boxes on the tile's 10 m grid, 120 x 100 and 500 x 400 pixels, in this process
(``stats.sentinelhub.process.run_process``: parsing, catalog search, warping, the evalscript in V8, the
cloud cells, encoding): with the cloud layers and without them (bands and dataMask only). The baseline, in
the same run, is the floor of the reading: each band COG warped onto the grid with ``rasterio.warp.reproject``
(nearest), single-threaded. Times are medians of ``--repeat`` calls after a warm-up call (the page cache and
polyfis's caches warm); nothing asserts a time. Writes ``process.md`` and ``process.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
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
from rasterio.enums import Resampling
from rasterio.warp import reproject

from stats import Archive
from stats.archive.synthetic import build_demo_archive
from stats.sentinelhub.process import run_process

BANDS = ["B02", "B03", "B04", "B08", "B11", "B12"]
DATE = "2023-07-24"
#: (name, bbox in EPSG:32633, width, height): boxes on the demo tile's 10 m grid.
BOXES = [("120 x 100 px", (501640.0, 5096600.0, 502840.0, 5097600.0), 120, 100),
         ("500 x 400 px", (501040.0, 5095600.0, 506040.0, 5099600.0), 500, 400)]


def evalscript(clouds: bool) -> str:
    """SentinelHubInputTask's evalscript for BANDS (DN, UINT16) and its additional data, one ``units`` value."""
    extra = ["dataMask", "CLM", "CLP"] if clouds else ["dataMask"]
    outputs = [f'{{id: "{b}", bands: 1, sampleType: "UINT16"}}' for b in BANDS]
    outputs += [f'{{id: "{b}", bands: 1, sampleType: "UINT8"}}' for b in extra]
    values = ", ".join(f"{b}: [s.{b}]" for b in BANDS + extra)
    return (f'//VERSION=3\nfunction setup() {{ return {{input: [{{bands: {BANDS + extra}, units: "DN"}}], '
            f'output: [{", ".join(outputs)}]}}; }}\nfunction evaluatePixel(s) {{ return {{{values}}}; }}')


def request(bbox: tuple[float, ...], width: int, height: int, clouds: bool) -> dict[str, Any]:
    names = BANDS + (["dataMask", "CLM", "CLP"] if clouds else ["dataMask"])
    return {"input": {"bounds": {"bbox": list(bbox), "properties": {"crs": "http://www.opengis.net/def/crs/EPSG/0/32633"}},
                      "data": [{"type": "sentinel-2-l1c", "dataFilter": {
                          "timeRange": {"from": f"{DATE}T00:00:00Z", "to": f"{DATE}T23:59:59Z"}}}]},
            "evalscript": evalscript(clouds),
            "output": {"width": width, "height": height,
                       "responses": [{"identifier": n, "format": {"type": "image/tiff"}} for n in names]}}


def baseline(folder: Path, bbox: tuple[float, ...], width: int, height: int) -> None:
    """Each band COG warped onto the grid by rasterio, one after another."""
    transform = Affine((bbox[2] - bbox[0]) / width, 0, bbox[0], 0, -(bbox[3] - bbox[1]) / height, bbox[3])
    for band in BANDS:
        out = np.zeros((height, width), dtype=np.float32)
        with rasterio.open(folder / f"{band}.tif") as src:
            reproject(rasterio.band(src, 1), out, src_transform=src.transform, src_crs=src.crs, src_nodata=0,
                      dst_transform=transform, dst_crs="EPSG:32633", dst_nodata=0, resampling=Resampling.nearest)


def main() -> None:
    """Measure and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--demo-dir", type=Path, default=None)
    add_results_dir(parser)
    args = parser.parse_args()
    if args.demo_dir is not None:
        os.environ["POLYFIS_DEMO_DIR"] = str(args.demo_dir)
    root = build_demo_archive()
    archive = Archive.open(root)
    (folder,) = (root / "items").glob(f"*{DATE.replace('-', '')}T*")
    rows = []
    for name, bbox, width, height in BOXES:
        row: dict[str, Any] = {"box": name}
        calls = {"rasterio (bands only)": lambda b=bbox, w=width, h=height: baseline(folder, b, w, h),
                 "polyfis bands + dataMask": lambda b=bbox, w=width, h=height: run_process(
                     request(b, w, h, False), archive),
                 "polyfis bands + dataMask + CLM + CLP": lambda b=bbox, w=width, h=height: run_process(
                     request(b, w, h, True), archive)}
        for label, call in calls.items():
            call()  # warm-up
            row[label] = statistics.median(repeat_times(call, args.repeat))
        rows.append(row)
    labels = [k for k in rows[0] if k != "box"]
    lines = ["# Process API: one eo-learn-style request against rasterio reading the same bands", "",
             f"Command: `{command_line(__file__)}`", "", f"Machine: {describe_machine(machine_info())}", "",
             f"Packages: {describe_packages(package_versions(['polyfis', 'numpy', 'rasterio', 'mini-racer']))}", "",
             f"Revision: {git_revision()}", "",
             f"Demo archive, {DATE}, six bands (UINT16 DN) of the demo tile's 10 m grid; medians of {args.repeat} "
             "calls after a warm-up (ratios against the rasterio baseline of the same run).", "",
             "| box | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for row in rows:
        base = row[labels[0]]
        lines.append(f"| {row['box']} | " + " | ".join(
            f"{row[k]:.3f} s" + ("" if k == labels[0] else f" ({row[k] / base:.1f}x)") for k in labels) + " |")
    write_results(args.results_dir, "process", {"rows": rows, "repeat": args.repeat, "date": DATE},
                  "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
