"""Zonal-statistics benchmark: polyfis against rasterstats, exactextract, rasterio + numpy and the I/O floor.

Run:  .venv/bin/python bench/perf.py --size small|full [--data-dir DIR] [--cap-seconds 900] [--runs 3]

One command builds (or reuses) a deterministic synthetic Sentinel-2 L1C archive with polyfis's own
:class:`stats.archive.catalog.ArchiveWriter`, writes three polygon jobs as GeoJSON next to it, then times
every contender on the same job in the same run and writes ``bench/results/perf-<size>.md`` and ``.json``
(a development run limited with ``--cases`` or ``--contenders`` writes ``perf-<size>.md.tmp`` and
``.json.tmp`` instead). ``<data-dir>`` defaults to ``bench/.data/<size>`` and is reused when complete.
``small`` runs in about three minutes, ``full`` in about 45 minutes plus 9 minutes to generate the archive
on 2 cores.

Archive (``<data-dir>/archive``), EPSG:32633, origin (300000, 5100000), 10 m pixels, DEFLATE COGs:

* ``full``:  24 dates x 13 bands (B01..B12, B8A), 5490 x 5490 px per band, 1024 px tiles;
* ``small``:  6 dates x 13 bands, 1098 x 1098 px per band, 256 px tiles (a quick development run).

Content: uint16 DN in 1..12000 (0 is no data and never occurs), a mosaic of field parcels of five cover
classes with per-parcel phenology, a lake, a per-date haze gradient, cloud blobs on some dates and
Gaussian sensor noise, so DEFLATE compresses about as well as on real imagery.

Jobs (``<data-dir>/<case>.geojson``, EPSG:32633, an ``id`` property per feature): ``field`` one ~5 ha
parcel; ``lake`` one ~4 km2 irregular polygon with an island hole; ``batch`` 1000 (small: 40)
non-overlapping parcels of 2-15 ha over the whole scene. Statistics: mean, min, max, std, p10, p50, p90
of all 13 bands on every date; a pixel counts when its centre is inside the polygon.

Contenders, each timed in a fresh subprocess (peak RSS polled over the whole process tree):
I/O floor, rasterio window + numpy, rasterstats, exactextract, the polyfis engine (cold and warm),
polyfis over HTTP (cold and warm) and, for the batch, ``stats.batch.compute_batch`` and ``run_batch``.
The polyfis band statistics are checked against rasterstats in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import math
import multiprocessing
import os
import platform
import resource
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
BIN = Path(sys.executable).parent

SEED = 20240917
EPSG = "EPSG:32633"
X0, Y0, PIXEL = 300_000.0, 5_100_000.0, 10.0
PROCESSING_BASELINE = "02.14"  # before 04.00: no DN offset
BANDS: tuple[str, ...] = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
STATS: tuple[str, ...] = ("mean", "min", "max", "std", "p10", "p50", "p90")
RASTERSTATS_STATS = "mean min max std percentile_10 percentile_50 percentile_90"
RASTERSTATS_KEYS: tuple[str, ...] = ("mean", "min", "max", "std", "percentile_10", "percentile_50", "percentile_90")
EXACTEXTRACT_OPS = ["mean", "min", "max", "stdev", "quantile(q=0.1)", "quantile(q=0.5)", "quantile(q=0.9)"]
QUANTIFICATION = 10_000.0
CASES: tuple[str, ...] = ("field", "lake", "batch")
REL_TOL = 1e-9
BATCH_SAMPLE = 50
RSS_TARGET = 1 << 30

# Values of one polygon: date -> band -> the STATS in order (reflectance).
Values = dict[str, dict[str, list[float]]]


# --------------------------------------------------------------------------------------------------------
# sizes and the synthetic archive
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SizeConfig:
    """Shape of one benchmark archive and its batch job."""

    name: str
    dates: int
    pixels: int  # rows = cols of every band
    blocksize: int  # COG internal tile size
    batch_fields: int
    batch_grid: int  # the batch parcels sit in distinct cells of a batch_grid x batch_grid grid
    first_date: str = "2023-03-05"
    date_step_days: int = 10


SIZES: dict[str, SizeConfig] = {
    "small": SizeConfig("small", dates=6, pixels=1098, blocksize=256, batch_fields=40, batch_grid=7),
    "full": SizeConfig("full", dates=24, pixels=5490, blocksize=1024, batch_fields=1000, batch_grid=32),
}

#: Top-of-atmosphere DN spectra (B01..B12 incl. B8A) of the surface endmembers and of clouds.
SPECTRA: dict[str, tuple[float, ...]] = {
    "soil": (1500, 1400, 1600, 1900, 2100, 2300, 2400, 2500, 2600, 900, 30, 3200, 2600),
    "vegetation": (1200, 1000, 900, 500, 1100, 2800, 3300, 3500, 3700, 1000, 25, 1700, 800),
    "urban": (1700, 1600, 1700, 1800, 1900, 2000, 2100, 2200, 2200, 800, 30, 2400, 2100),
    "water": (1300, 1100, 900, 600, 500, 400, 350, 300, 280, 150, 20, 100, 80),
    "cloud": (4000, 3800, 3700, 3800, 3900, 4000, 4100, 4200, 4200, 1500, 400, 3000, 2200),
}
#: Relative weight of the per-date additive haze (path radiance) per band.
HAZE_WEIGHT = (1.0, 0.8, 0.55, 0.35, 0.25, 0.15, 0.12, 0.1, 0.08, 0.05, 0.0, 0.02, 0.01)
COVERS = ("crop", "grass", "forest", "soil", "urban")
COVER_SHARE = (0.45, 0.2, 0.15, 0.1, 0.1)


def acquisition_dates(cfg: SizeConfig) -> list[dt.datetime]:
    """The acquisition times of the archive, 10:05:31 UTC every ``date_step_days`` days."""
    first = dt.datetime.fromisoformat(cfg.first_date).replace(hour=10, minute=5, second=31, tzinfo=dt.timezone.utc)
    return [first + dt.timedelta(days=cfg.date_step_days * i) for i in range(cfg.dates)]


def scene_transform(cfg: SizeConfig) -> Any:
    from affine import Affine

    return Affine(PIXEL, 0.0, X0, 0.0, -PIXEL, Y0)


def parcel_labels(cfg: SizeConfig) -> tuple[np.ndarray, int]:
    """A mosaic of rectangular parcels: strips of 15-60 px split into runs of 15-80 px. Returns the label
    map (int32) and the number of labels."""
    rng = np.random.default_rng([SEED, cfg.pixels, 1])
    n = cfg.pixels
    labels = np.empty((n, n), dtype=np.int32)
    row, count = 0, 0
    while row < n:
        height = int(rng.integers(15, 61))
        widths = rng.integers(15, 81, size=n // 15 + 1)
        runs = int(np.searchsorted(np.cumsum(widths), n) + 1)
        ids = np.repeat(np.arange(count, count + runs, dtype=np.int32), widths[:runs])[:n]
        labels[row:row + height] = ids
        count += runs
        row += height
    return labels, count


@dataclass(frozen=True)
class Landscape:
    """Static per-parcel properties: cover class, brightness, phenology peak and amplitude."""

    cover: np.ndarray
    brightness: np.ndarray
    peak_day: np.ndarray
    amplitude: np.ndarray

    @classmethod
    def make(cls, count: int, cfg: SizeConfig) -> Landscape:
        rng = np.random.default_rng([SEED, cfg.pixels, 2])
        return cls(
            cover=rng.choice(len(COVERS), size=count, p=COVER_SHARE),
            brightness=rng.uniform(0.85, 1.15, size=count),
            peak_day=rng.uniform(140, 230, size=count),
            amplitude=rng.uniform(0.55, 0.85, size=count),
        )

    def levels(self, day_of_year: float) -> np.ndarray:
        """(count + 1, 13) float32 DN of every parcel on a day; the last row is water."""
        crop = 0.08 + self.amplitude * np.exp(-(((day_of_year - self.peak_day) / 40.0) ** 2))
        grass = 0.45 + 0.25 * np.sin((day_of_year - 80.0) / 365.0 * 2 * np.pi) * self.amplitude
        forest = np.full_like(crop, 0.75 + 0.1 * math.exp(-(((day_of_year - 200.0) / 80.0) ** 2)))
        fraction = np.select([self.cover == i for i in range(len(COVERS))],
                             [crop, grass, forest, np.full_like(crop, 0.04), np.full_like(crop, 0.12)])
        ground = np.where((self.cover == COVERS.index("urban"))[:, None],
                          np.asarray(SPECTRA["urban"])[None, :], np.asarray(SPECTRA["soil"])[None, :])
        surface = (1 - fraction)[:, None] * ground + fraction[:, None] * np.asarray(SPECTRA["vegetation"])[None, :]
        surface *= self.brightness[:, None]
        return np.vstack([surface, np.asarray(SPECTRA["water"])[None, :]]).astype(np.float32)


_WORKER: dict[str, Any] = {}


def _init_worker(cfg: SizeConfig, root: str, lake_wkt: str) -> None:
    """Per writer process: the static label map (with the lake burnt in as the water label) and landscape."""
    from rasterio.features import geometry_mask
    from shapely import wkt

    labels, count = parcel_labels(cfg)
    lake = geometry_mask([wkt.loads(lake_wkt)], out_shape=labels.shape, transform=scene_transform(cfg), invert=True)
    labels[lake] = count  # the water row of Landscape.levels
    _WORKER.update(cfg=cfg, root=root, labels=labels, landscape=Landscape.make(count, cfg),
                   gradient=np.linspace(0.7, 1.3, cfg.pixels, dtype=np.float32)[None, :])


def _cloud_opacity(rng: np.random.Generator, n: int) -> np.ndarray | None:
    """Cloud opacity in [0, 1] (float32, n x n) for about a third of the dates, else None."""
    if rng.random() >= 0.35:
        return None
    alpha = np.zeros((n, n), dtype=np.float32)
    axis = np.arange(n, dtype=np.float32)
    for _ in range(int(rng.integers(1, 5))):
        cy, cx = rng.uniform(0, n, size=2)
        sy, sx = rng.uniform(0.03, 0.12, size=2) * n
        gy = np.exp(-0.5 * ((axis - cy) / sy) ** 2)[:, None]
        gx = np.exp(-0.5 * ((axis - cx) / sx) ** 2)[None, :]
        alpha += float(rng.uniform(0.6, 1.4)) * gy * gx
    np.clip(alpha, 0, 1, out=alpha)
    return alpha


def _write_date(index: int) -> dict[str, Any]:
    """Make and write the 13 band COGs of one date with ArchiveWriter; return the STAC Item as a dict."""
    from stats.archive.catalog import ArchiveWriter, CogLayout

    cfg: SizeConfig = _WORKER["cfg"]
    labels: np.ndarray = _WORKER["labels"]
    landscape: Landscape = _WORKER["landscape"]
    when = acquisition_dates(cfg)[index]
    n = cfg.pixels
    rng = np.random.default_rng([SEED, cfg.pixels, 3, index])
    levels = landscape.levels(float(when.timetuple().tm_yday))
    haze = float(rng.uniform(0, 400))
    alpha = _cloud_opacity(rng, n)
    clear = None if alpha is None else 1.0 - alpha
    transform = scene_transform(cfg)
    bands: dict[str, tuple[np.ndarray, Any]] = {}
    for b, band in enumerate(BANDS):
        image = levels[:, b][labels]
        if HAZE_WEIGHT[b]:
            image += np.float32(haze * HAZE_WEIGHT[b]) * _WORKER["gradient"]
        if alpha is not None and clear is not None:
            image *= clear
            image += np.float32(SPECTRA["cloud"][b]) * alpha
        sigma = np.float32(0.02 * float(np.mean(levels[:, b])) + 8.0)
        noise = np.random.default_rng([SEED, cfg.pixels, 4, index, b]).standard_normal((n, n), dtype=np.float32)
        noise *= sigma
        image += noise
        del noise
        np.clip(image, 1, 12000, out=image)
        bands[band] = (np.rint(image).astype(np.uint16), transform)
        del image
    cloud_cover = 0.0 if alpha is None else float((alpha > 0.3).mean() * 100)
    writer = ArchiveWriter(_WORKER["root"], layout=CogLayout(blocksize=cfg.blocksize, compress="DEFLATE"))
    item = writer.add(f"S2A_MSIL1C_{when:%Y%m%dT%H%M%S}_N0214_T33TWM", when, EPSG, bands,
                      cloud_cover=round(cloud_cover, 2), processing_baseline=PROCESSING_BASELINE)
    item.clear_links()
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def generate_archive(data_dir: Path, cfg: SizeConfig, polygons: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Write the archive under ``data_dir/archive`` unless a complete one for ``cfg`` is there already.

    Completeness is marked by ``data_dir/manifest.json``, written last.
    """
    import pystac
    from shapely.geometry import shape
    from stats.archive.catalog import ArchiveWriter, CogLayout

    manifest_path = data_dir / "manifest.json"
    wanted = {"seed": SEED, "config": asdict(cfg), "bands": list(BANDS), "baseline": PROCESSING_BASELINE}
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("archive") == wanted and (data_dir / "archive" / "collection.json").is_file():
            print(f"archive: reusing {display_path(data_dir / 'archive')}", flush=True)
            return {**manifest, "generated_in_this_run": False}
        manifest_path.unlink()
    root = data_dir / "archive"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    lake_wkt = shape(polygons["lake"]["features"][0]["geometry"]).wkt
    print(f"archive: writing {cfg.dates} dates x {len(BANDS)} bands of {cfg.pixels} x {cfg.pixels} px "
          f"({cfg.blocksize} px tiles, DEFLATE) with 2 processes", flush=True)
    t0 = time.perf_counter()
    writer = ArchiveWriter(root, layout=CogLayout(blocksize=cfg.blocksize, compress="DEFLATE"))
    context = multiprocessing.get_context("spawn")
    with context.Pool(2, initializer=_init_worker, initargs=(cfg, str(root), lake_wkt)) as pool:
        for done, item in enumerate(pool.imap(_write_date, range(cfg.dates)), start=1):
            writer.add_items([pystac.Item.from_dict(item)])
            print(f"archive: {done}/{cfg.dates} dates written ({time.perf_counter() - t0:.0f} s)", flush=True)
    writer.save()
    seconds = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in root.rglob("*.tif"))
    manifest = {"archive": wanted, "generation_s": round(seconds, 1), "bytes": size}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"archive: done in {seconds:.0f} s, {size / 1e9:.2f} GB", flush=True)
    return {**manifest, "generated_in_this_run": True}


# --------------------------------------------------------------------------------------------------------
# polygon jobs
# --------------------------------------------------------------------------------------------------------


def _feature_collection(features: list[tuple[str, Any]]) -> dict[str, Any]:
    from shapely.geometry import mapping

    def rounded(geom: Any) -> Any:
        from shapely import set_precision

        return mapping(set_precision(geom, 0.01))

    return {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
        "features": [{"type": "Feature", "properties": {"id": fid}, "geometry": rounded(g)} for fid, g in features],
    }


def _scaled(geom: Any, area: float, centre: tuple[float, float]) -> Any:
    from shapely import affinity

    factor = math.sqrt(area / geom.area)
    geom = affinity.scale(geom, factor, factor, origin=(0, 0))
    return affinity.translate(geom, *centre)


def make_polygons(cfg: SizeConfig) -> dict[str, dict[str, Any]]:
    """The three jobs as GeoJSON FeatureCollections in EPSG:32633 (deterministic)."""
    from shapely import affinity
    from shapely.geometry import Polygon

    extent = cfg.pixels * PIXEL
    field = affinity.rotate(Polygon([(-125, -100), (128, -96), (122, 103), (-120, 98)]), 17, origin=(0, 0))
    field = _scaled(field, 49_800.0, (X0 + 0.37 * extent, Y0 - 0.41 * extent))

    rng = np.random.default_rng([SEED, 5])
    theta = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    phases = rng.uniform(0, 2 * np.pi, size=3)
    radius = 1 + 0.18 * np.sin(3 * theta + phases[0]) + 0.10 * np.sin(5 * theta + phases[1]) \
        + 0.05 * np.sin(8 * theta + phases[2])
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    island = affinity.rotate(Polygon(np.c_[0.25 + 0.18 * np.cos(t), -0.1 + 0.1 * np.sin(t)]), 30)
    lake = Polygon(np.c_[radius * np.cos(theta), radius * np.sin(theta)], [list(island.exterior.coords)])
    lake = _scaled(lake, 4_000_000.0, (X0 + 0.58 * extent, Y0 - 0.52 * extent))

    rng = np.random.default_rng([SEED, 6, cfg.batch_fields])
    cell = extent / cfg.batch_grid
    cells = rng.choice(cfg.batch_grid ** 2, size=cfg.batch_fields, replace=False)
    batch = []
    for k, c in enumerate(sorted(cells.tolist())):
        area = rng.uniform(20_000, 150_000)
        aspect = rng.uniform(1.0, 2.5)
        w = math.sqrt(area * aspect)
        h = area / w
        rect = affinity.rotate(Polygon([(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]),
                               rng.uniform(0, 180), origin=(0, 0))
        slack = cell / 2 - math.hypot(w, h) / 2 - 20
        cx = X0 + (c % cfg.batch_grid + 0.5) * cell + rng.uniform(-slack, slack)
        cy = Y0 - (c // cfg.batch_grid + 0.5) * cell + rng.uniform(-slack, slack)
        batch.append((f"b{k:04d}", affinity.translate(rect, cx, cy)))
    return {"field": _feature_collection([("field", field)]), "lake": _feature_collection([("lake", lake)]),
            "batch": _feature_collection(batch)}


def write_polygons(data_dir: Path, polygons: dict[str, dict[str, Any]]) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    for case, fc in polygons.items():
        path = data_dir / f"{case}.geojson"
        text = json.dumps(fc) + "\n"
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)


def inside_pixels(geometry: dict[str, Any]) -> int:
    """Pixels of the scene grid whose centre lies inside ``geometry`` (the pixel-centre rule)."""
    from affine import Affine
    from rasterio.features import geometry_mask
    from shapely.geometry import shape

    geom = shape(geometry)
    minx, miny, maxx, maxy = geom.bounds
    c0, r0 = math.floor((minx - X0) / PIXEL), math.floor((Y0 - maxy) / PIXEL)
    c1, r1 = math.ceil((maxx - X0) / PIXEL), math.ceil((Y0 - miny) / PIXEL)
    transform = Affine(PIXEL, 0, X0 + c0 * PIXEL, 0, -PIXEL, Y0 - r0 * PIXEL)
    return int(geometry_mask([geom], out_shape=(r1 - r0, c1 - c0), transform=transform, invert=True).sum())


# --------------------------------------------------------------------------------------------------------
# contenders (run in child processes)
# --------------------------------------------------------------------------------------------------------


@dataclass
class Job:
    """What a child process runs: one contender on one case."""

    contender: str
    case: str
    data_dir: str
    polygons: str  # GeoJSON path
    files: list[tuple[str, str, str]]  # (date, band, path), date-major
    start: str
    end: str
    sample_ids: list[str]
    cap_seconds: float
    repeats: int
    out: str


def _features(job: Job) -> list[dict[str, Any]]:
    return list(json.loads(Path(job.polygons).read_text())["features"])


def _sample_index(features: list[dict[str, Any]], ids: Sequence[str]) -> list[int]:
    wanted = set(ids)
    return [i for i, f in enumerate(features) if str(f["properties"]["id"]) in wanted]


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

    polys = [shape(f["geometry"]) for f in _features(job)]
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

    features = _features(job)
    polys = [shape(f["geometry"]) for f in features]
    keep = set(_sample_index(features, job.sample_ids))
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
                inside = geometry_mask([poly], out_shape=data.shape, transform=src.window_transform(window), invert=True)
                pixels = data[inside & (data != 0)].astype(np.float64) / QUANTIFICATION
                if i in keep and pixels.size:
                    values[str(features[i]["properties"]["id"])].setdefault(date, {})[band] = _numpy_stats(pixels)
                elif pixels.size:
                    _numpy_stats(pixels)
    return {**loop.result(), "values": values}


def run_rasterstats(job: Job) -> dict[str, Any]:
    """``zonal_stats`` per file; for the batch, ``boundless=False`` when the default is projected too slow."""
    from rasterstats import zonal_stats

    features = _features(job)
    keep = _sample_index(features, job.sample_ids)
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

    features = _features(job)
    loop = FileLoop(job.files, job.cap_seconds)
    for _, _, path in loop:
        exact_extract(path, features, EXACTEXTRACT_OPS)
    return loop.result()


def _series_values(series: Sequence[dict[str, Any]]) -> Values:
    """Values from a time-series JSON ``series`` list."""
    out: Values = {}
    for entry in series:
        if entry.get("error"):
            raise RuntimeError(f"date {entry['date']}: {entry['error']}")
        out[entry["date"]] = {b: [s[k] for k in STATS] for b, s in entry["bands"].items() if s.get("mean") is not None}
    return out


def _body(job: Job) -> dict[str, Any]:
    geometry = _features(job)[0]["geometry"]
    return {"geometry": geometry, "crs": EPSG, "time": {"from": job.start, "to": job.end},
            "statistics": list(STATS), "include_empty": True}


def run_polyfis_engine(job: Job) -> dict[str, Any]:
    """``query_timeseries`` in-process: archive open, model load, the cold call, then warm repeats."""
    t0 = time.perf_counter()
    import stats.cloud
    from stats import Archive, TimeSeriesRequest, query_timeseries
    from stats.cloud import default_model

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    default_model().probability(np.full((1, 10), 0.1))
    model_load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    archive = Archive.open(Path(job.data_dir) / "archive")
    archive_open_s = time.perf_counter() - t0

    model_calls: list[tuple[float, int]] = []
    original = stats.cloud.CloudModel.probability

    def timed(self: Any, pixels: np.ndarray) -> np.ndarray:
        t = time.perf_counter()
        try:
            return original(self, pixels)
        finally:
            model_calls.append((time.perf_counter() - t, int(np.asarray(pixels).shape[0])))

    stats.cloud.CloudModel.probability = timed  # type: ignore[method-assign]
    body = _body(job)
    calls: list[dict[str, Any]] = []
    values: Values = {}
    for k in range(1 + job.repeats):
        model_calls.clear()
        t0 = time.perf_counter()
        result = query_timeseries(TimeSeriesRequest.from_dict(body), archive)
        seconds = time.perf_counter() - t0
        data = result.to_dict()
        if data["status"] != "OK" or len(data["series"]) != len(job.files) // len(BANDS):
            raise RuntimeError(f"unexpected answer: status {data['status']}, {len(data['series'])} dates")
        if k == 0:
            values = _series_values(data["series"])
        calls.append({"seconds": seconds, "model_s": sum(c[0] for c in model_calls),
                      "model_calls": len(model_calls), "model_rows": sum(c[1] for c in model_calls)})
        print(f"    polyfis engine call {k + 1}: {seconds:.2f} s (model {calls[-1]['model_s'] * 1000:.1f} ms)", flush=True)
    warm = [c["seconds"] for c in calls[1:]]
    return {"wall_s": calls[0]["seconds"], "cold_s": calls[0]["seconds"], "warm_s": statistics.median(warm),
            "warm_all_s": warm, "calls": calls, "import_s": import_s, "model_load_s": model_load_s,
            "archive_open_s": archive_open_s, "values": {job.sample_ids[0]: values}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_polyfis_http(job: Job) -> dict[str, Any]:
    """``polyfis serve`` (1 gunicorn worker) on a free port; POST /api/v1/timeseries cold, then warm."""
    port = _free_port()
    env = {**os.environ, "POLYFIS_ARCHIVE": str(Path(job.data_dir) / "archive"), "POLYFIS_TIME_BUDGET_S": "3600"}
    log = tempfile.NamedTemporaryFile("w+", prefix="polyfis-serve-", suffix=".log", delete=False)
    t0 = time.perf_counter()
    server = subprocess.Popen([str(BIN / "polyfis"), "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", "1"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"polyfis serve exited with {server.returncode}: {Path(log.name).read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{base}/health", timeout=5).read()
                break
            except OSError:
                if time.perf_counter() - t0 > 300:
                    raise RuntimeError("polyfis serve did not answer /health within 300 s")
                time.sleep(0.1)
        server_start_s = time.perf_counter() - t0
        payload = json.dumps(_body(job)).encode()
        calls: list[float] = []
        values: Values = {}
        for k in range(1 + job.repeats):
            request = urllib.request.Request(f"{base}/api/v1/timeseries", data=payload,
                                             headers={"Content-Type": "application/json"}, method="POST")
            t0 = time.perf_counter()
            with urllib.request.urlopen(request, timeout=3600) as response:
                data = json.loads(response.read())
            calls.append(time.perf_counter() - t0)
            if data["status"] != "OK" or len(data["series"]) != len(job.files) // len(BANDS):
                raise RuntimeError(f"unexpected answer: status {data['status']}, {len(data['series'])} dates")
            if k == 0:
                values = _series_values(data["series"])
            print(f"    polyfis http call {k + 1}: {calls[-1]:.2f} s", flush=True)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(30)
        log.close()
        os.unlink(log.name)
    return {"wall_s": calls[0], "cold_s": calls[0], "warm_s": statistics.median(calls[1:]), "warm_all_s": calls[1:],
            "server_start_s": server_start_s, "values": {job.sample_ids[0]: values}}


def _batch_values(table: Any, ids: Sequence[str]) -> dict[str, Values]:
    """Values of the sample polygons from a batch table (``id``, ``date``, ``<band>_<stat>``)."""
    wanted = set(ids)
    values: dict[str, Values] = {}
    for row in table.to_pylist():
        fid = str(row["id"])
        if fid not in wanted:
            continue
        date = str(row["date"])[:10]
        for band in BANDS:
            cells = [row.get(f"{band}_{s}") for s in STATS]
            if all(c is not None for c in cells):
                values.setdefault(fid, {}).setdefault(date, {})[band] = [float(c) for c in cells]
    return values


def _batch_module() -> Any:
    try:
        import stats.batch as batch
    except ImportError as exc:
        raise NotAvailable(f"stats.batch is not importable ({exc})") from exc
    return batch


class NotAvailable(Exception):
    """A contender that cannot run in this checkout."""


def run_polyfis_compute_batch(job: Job) -> dict[str, Any]:
    """``stats.batch.compute_batch`` in-process, returning a pyarrow Table."""
    batch = _batch_module()
    from stats import Archive
    from stats.cloud import default_model

    t0 = time.perf_counter()
    default_model().probability(np.full((1, 10), 0.1))
    model_load_s = time.perf_counter() - t0
    archive = Archive.open(Path(job.data_dir) / "archive")
    t0 = time.perf_counter()
    table = batch.compute_batch(archive, job.polygons, job.start, job.end, options={"statistics": list(STATS)})
    seconds = time.perf_counter() - t0
    return {"wall_s": seconds, "rows": table.num_rows, "model_load_s": model_load_s,
            "values": _batch_values(table, job.sample_ids)}


def run_polyfis_run_batch(job: Job) -> dict[str, Any]:
    """``stats.batch.run_batch`` on a Dask LocalCluster of 2 workers, writing Parquet."""
    batch = _batch_module()
    import pyarrow.parquet as pq
    from stats import Archive

    archive = Archive.open(Path(job.data_dir) / "archive")
    with tempfile.TemporaryDirectory(prefix="polyfis-perf-") as tmp:
        out = Path(tmp) / "batch.parquet"
        t0 = time.perf_counter()
        batch.run_batch(archive, job.polygons, job.start, job.end, out, options={"statistics": list(STATS)},
                        workers=2, progress=False)
        seconds = time.perf_counter() - t0
        table = pq.read_table(out)
    return {"wall_s": seconds, "rows": table.num_rows, "values": _batch_values(table, job.sample_ids)}


RUNNERS: dict[str, Callable[[Job], dict[str, Any]]] = {
    "io_floor": run_io_floor,
    "rasterio_numpy": run_rasterio_numpy,
    "rasterstats": run_rasterstats,
    "exactextract": run_exactextract,
    "polyfis_engine": run_polyfis_engine,
    "polyfis_http": run_polyfis_http,
    "polyfis_compute_batch": run_polyfis_compute_batch,
    "polyfis_run_batch": run_polyfis_run_batch,
}
SINGLE = ["io_floor", "rasterio_numpy", "rasterstats", "exactextract", "polyfis_engine", "polyfis_http"]
BATCH = ["io_floor", "rasterio_numpy", "rasterstats", "exactextract", "polyfis_compute_batch", "polyfis_run_batch"]
LABELS = {
    "io_floor": "I/O floor",
    "rasterio_numpy": "rasterio window + numpy",
    "rasterstats": "rasterstats",
    "exactextract": "exactextract",
    "polyfis_engine": "polyfis engine",
    "polyfis_http": "polyfis HTTP",
    "polyfis_compute_batch": "polyfis compute_batch",
    "polyfis_run_batch": "polyfis run_batch (LocalCluster, 2 workers)",
}


def child_main(spec_path: str) -> None:
    """Entry point of a contender subprocess: run the job, write its JSON result."""
    job = Job(**json.loads(Path(spec_path).read_text()))
    job.files = [tuple(f) for f in job.files]  # type: ignore[misc]
    try:
        result = {"status": "ok", **RUNNERS[job.contender](job)}
    except NotAvailable as exc:
        result = {"status": "not available", "message": str(exc)}
    except Exception as exc:  # reported as a row, the run goes on
        traceback.print_exc()
        result = {"status": "error", "message": f"{type(exc).__name__}: {exc}"}
    usage_self = resource.getrusage(resource.RUSAGE_SELF)
    usage_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    result.update(maxrss_self_bytes=usage_self.ru_maxrss * 1024, maxrss_children_bytes=usage_children.ru_maxrss * 1024,
                  disk_read_bytes=(usage_self.ru_inblock + usage_children.ru_inblock) * 512)
    Path(job.out).write_text(json.dumps(result))


# --------------------------------------------------------------------------------------------------------
# the parent: page cache, subprocesses, RSS
# --------------------------------------------------------------------------------------------------------


class TreeMonitor(threading.Thread):
    """Polls the summed RSS of a process and all its descendants; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.peak_processes = 0
        self.pids: set[int] = {pid}
        self._stop_event = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop_event.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            self.pids.update(proc.pid for proc in procs)
            total = 0
            for proc in procs:
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    total += proc.memory_info().rss
            if total > self.peak:
                self.peak, self.peak_processes = total, len(procs)
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def warm_page_cache(paths: Sequence[str]) -> tuple[float, int]:
    """Read every file once (like ``cat files > /dev/null``); return seconds and bytes."""
    t0 = time.perf_counter()
    total = 0
    for path in paths:
        with open(path, "rb", buffering=0) as fh:
            while chunk := fh.read(16 << 20):
                total += len(chunk)
    return time.perf_counter() - t0, total


def cpu_snapshot() -> dict[int, tuple[float, float]]:
    """CPU seconds (user + system) of every process: pid -> (create time, seconds)."""
    import psutil

    out = {}
    for proc in psutil.process_iter(["create_time", "cpu_times"]):
        times = proc.info["cpu_times"]
        if times is not None:
            out[proc.pid] = (proc.info["create_time"], times.user + times.system)
    return out


def background_cpu(before: dict[int, tuple[float, float]], after: dict[int, tuple[float, float]],
                   exclude: set[int]) -> float:
    """CPU seconds spent meanwhile by processes other than ``exclude`` (other work on the machine)."""
    total = 0.0
    for pid, (created, seconds) in after.items():
        if pid in exclude:
            continue
        start = before.get(pid)
        total += seconds - start[1] if start is not None and start[0] == created else seconds
    return total


def disk_penalty(files: Sequence[str]) -> dict[str, float]:
    """Seconds per GiB that reading tiles from disk costs over reading them from the page cache.

    Reads every full-resolution tile of ``files`` (all our own benchmark files) warm, drops them from the
    page cache (``posix_fadvise(DONTNEED)``), reads them again and compares.
    """
    import rasterio

    def read_all() -> float:
        t0 = time.perf_counter()
        for path in files:
            with rasterio.open(path) as src:
                for _, window in src.block_windows(1):
                    src.read(1, window=window)
        return time.perf_counter() - t0

    warm_page_cache(files)
    warm = read_all()
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    before = _read_bytes()
    cold = read_all()
    after = _read_bytes()
    size = after - before if before is not None and after is not None else 0
    if not size:  # no /proc/self/io: assume whole files
        size = sum(os.path.getsize(p) for p in files)
    return {"warm_s": warm, "cold_s": cold, "bytes": size, "s_per_gib": max(0.0, cold - warm) / (size / 2**30)}


def _read_bytes() -> int | None:
    """Bytes this process has read from storage so far (``/proc/self/io``), None where unknown."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("read_bytes:"):
                return int(line.split(":")[1])
    return None


def damon_reclaim() -> str | None:
    """A description of a running DAMON ``pageout`` scheme (proactive reclaim of idle pages), if any.

    Only reads ``/sys/kernel/mm/damon``; the benchmark never changes it.
    """
    root = Path("/sys/kernel/mm/damon/admin/kdamonds")
    try:
        for kdamond in sorted(p for p in root.iterdir() if p.name.isdigit()):
            if (kdamond / "state").read_text().strip() != "on":
                continue
            for context in (kdamond / "contexts").glob("[0-9]*"):
                aggr_us = int((context / "monitoring_attrs/intervals/aggr_us").read_text())
                for scheme in (context / "schemes").glob("[0-9]*"):
                    if (scheme / "action").read_text().strip() != "pageout":
                        continue
                    age = int((scheme / "access_pattern/age/min").read_text()) * aggr_us / 1e6
                    quota = int((scheme / "quotas/bytes").read_text())
                    reset = int((scheme / "quotas/reset_interval_ms").read_text())
                    return (f"DAMON pageout of pages idle for at least {age:.0f} s, up to "
                            f"{quota / 2**20:.0f} MiB per {reset} ms")
    except (OSError, ValueError):
        return None
    return None


def run_child(job: Job, archive_files: Sequence[str]) -> dict[str, Any]:
    """Warm the page cache, run ``job`` in a fresh interpreter, poll its tree's RSS; return its result.

    The result also says how much CPU other processes used meanwhile (``background_cpu_s``) and how much
    the contender read from disk rather than from the page cache (``disk_read_bytes``).
    """
    warm_s, _ = warm_page_cache(archive_files)
    with tempfile.TemporaryDirectory(prefix="polyfis-perf-") as tmp:
        spec = Path(tmp) / "job.json"
        job.out = str(Path(tmp) / "result.json")
        spec.write_text(json.dumps(asdict(job)))
        before = cpu_snapshot()
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", str(spec)], cwd=REPO)
        monitor = TreeMonitor(proc.pid)
        monitor.start()
        proc.wait()
        monitor.stop()
        process_s = time.perf_counter() - t0
        other = background_cpu(before, cpu_snapshot(), monitor.pids | {os.getpid()})
        out = Path(job.out)
        result = json.loads(out.read_text()) if out.is_file() else {
            "status": "error", "message": f"the child exited with {proc.returncode} without a result"}
    result.update(process_s=process_s, page_cache_warmup_s=warm_s, peak_rss_bytes=max(
        monitor.peak, int(result.get("maxrss_self_bytes", 0))), peak_rss_processes=monitor.peak_processes,
        background_cpu_s=other, load_before=load)
    return result


def combine_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from repeated runs: the median run's details with the medians of the timings, the
    highest peak RSS, and every run's figures under ``runs``."""
    ok = [r for r in runs if r.get("status") == "ok"]
    if not ok:
        return runs[-1]
    out = dict(sorted(ok, key=lambda r: r["wall_s"])[(len(ok) - 1) // 2])
    for key in ("wall_s", "cold_s", "warm_s"):
        if key in out:
            out[key] = statistics.median(r[key] for r in ok)
    out["peak_rss_bytes"] = max(r["peak_rss_bytes"] for r in runs)
    out["runs"] = [{k: r.get(k) for k in ("status", "wall_s", "cold_s", "warm_s", "peak_rss_bytes",
                                          "process_s", "background_cpu_s", "disk_read_bytes")} for r in runs]
    return out


# --------------------------------------------------------------------------------------------------------
# correctness, rows, targets, report
# --------------------------------------------------------------------------------------------------------


def compare(candidate: dict[str, Values], reference: dict[str, Values], *, complete: bool = True) -> dict[str, Any]:
    """Compare every statistic of ``reference`` with ``candidate`` (relative tolerance :data:`REL_TOL`).

    With ``complete=False`` (a candidate measured on a subset of the dates) missing dates are skipped.
    """
    compared, missing, failed = 0, 0, 0
    max_abs, max_rel = 0.0, 0.0
    for fid, dates in reference.items():
        for date, bands in dates.items():
            for band, ref in bands.items():
                got = candidate.get(fid, {}).get(date, {}).get(band)
                if got is None:
                    if complete or date in candidate.get(fid, {}):
                        missing += 1
                    continue
                for a, b in zip(got, ref):
                    compared += 1
                    diff = abs(a - b)
                    rel = diff / max(abs(b), 1e-300)
                    max_abs, max_rel = max(max_abs, diff), max(max_rel, rel)
                    failed += rel > REL_TOL
    ok = compared > 0 and missing == 0 and failed == 0
    return {"compared_values": compared, "missing_band_dates": missing, "failed_values": failed,
            "max_abs_diff": max_abs, "max_rel_diff": max_rel, "result": "PASS" if ok else "FAIL"}


def case_rows(case: str, results: dict[str, dict[str, Any]], job_size: dict[str, Any],
              penalty_s_per_gib: float) -> list[dict[str, Any]]:
    """Table rows of one case: one per contender (polyfis engine and HTTP as cold and warm rows)."""
    floor = results.get("io_floor", {}).get("wall_s")
    rs = results.get("rasterstats", {}).get("wall_s")
    ee = results.get("exactextract", {}).get("wall_s")
    rows = []
    for name in (SINGLE if case != "batch" else BATCH):
        res = results.get(name)
        if res is None:
            continue
        variants = [("cold", "cold_s"), ("warm", "warm_s")] if name in ("polyfis_engine", "polyfis_http") else [("", "wall_s")]
        for variant, key in variants:
            label = LABELS[name] + (f" ({variant})" if variant else "")
            row: dict[str, Any] = {"contender": name, "variant": variant or None, "label": label,
                                   "status": res.get("status"), "peak_rss_bytes": res.get("peak_rss_bytes"),
                                   "extrapolated": bool(res.get("extrapolated")),
                                   "note": "; ".join(filter(None, [res.get("note") or res.get("message"),
                                                                   _run_note(res, key, penalty_s_per_gib)]))}
            seconds = res.get(key) if res.get("status") == "ok" else None
            row["wall_s"] = seconds
            if seconds:
                row["polygon_dates_per_s"] = job_size["polygon_dates"] / seconds
                row["mpx_per_s"] = job_size["zonal_mpx"] / seconds
                row["x_io_floor"] = seconds / floor if floor else None
                if name.startswith("polyfis"):
                    row["rasterstats_over_polyfis"] = rs / seconds if rs else None
                    row["exactextract_over_polyfis"] = ee / seconds if ee else None
            rows.append(row)
    return rows


def _run_note(res: dict[str, Any], key: str, penalty_s_per_gib: float) -> str:
    """The spread of repeated runs and any sign of a busy machine or of disk reads."""
    runs = res.get("runs") or [res]
    notes = []
    times = [r[key] for r in runs if r.get(key) is not None]
    if len(times) > 1:
        notes.append(f"median of {len(times)} runs ({min(times):.2f}–{max(times):.2f} s)")
    busy = max((r.get("background_cpu_s") or 0) / max(r.get("process_s") or 1.0, 1e-9) for r in runs)
    if busy > 0.1:
        notes.append(f"other processes used up to {busy:.1f} CPU-s per wall second meanwhile")
    read = max(r.get("disk_read_bytes") or 0 for r in runs)
    if read > 10 << 20:
        notes.append(f"read {read / 2**20:.0f} MiB from disk, the page cache having dropped it since the "
                     f"warm-up (≈ +{read / 2**30 * penalty_s_per_gib:.1f} s)")
    return "; ".join(notes)


def targets(all_rows: dict[str, list[dict[str, Any]]], results: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The targets, each measured in this run and marked met or gap."""
    out: list[dict[str, Any]] = []

    def add(target: str, case: str, subject: str, value: float | None, limit: float, higher_is_better: bool,
            unit: str = "x") -> None:
        if value is None:
            met = "n/a"
        else:
            met = "met" if (value >= limit if higher_is_better else value <= limit) else "gap"
        out.append({"target": target, "case": case, "subject": subject, "value": value, "limit": limit,
                    "unit": unit, "status": met})

    for case, rows in all_rows.items():
        for row in rows:
            if not row["contender"].startswith("polyfis"):
                continue
            if row["variant"] != "warm":
                add("<= 1.2 x I/O floor", case, row["label"], row.get("x_io_floor"), 1.2, False)
            if case == "batch":
                add(">= 75 x rasterstats", case, row["label"], row.get("rasterstats_over_polyfis"), 75, True)
                add(">= 3 x exactextract", case, row["label"], row.get("exactextract_over_polyfis"), 3, True)
                rss = row.get("peak_rss_bytes") if row["status"] == "ok" else None
                add("peak RSS < 1 GB", case, row["label"], None if rss is None else rss / 2**20, 1024, False, "MiB")
        for name in ("polyfis_engine", "polyfis_http"):
            res = results.get(case, {}).get(name)
            if res and res.get("status") == "ok":
                add("warm >= 5 x faster than cold", case, LABELS[name], res["cold_s"] / res["warm_s"], 5, True)
    return out


def fmt(value: Any, digits: int = 2) -> str:
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


def display_path(path: Path) -> str:
    """``path`` relative to the repository when inside it (no machine paths in the results)."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return path.name


def machine_info() -> dict[str, Any]:
    import psutil

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpus": os.cpu_count(), "cpu": cpu, "ram_bytes": psutil.virtual_memory().total,
            "python": platform.python_version(), "os": platform.platform()}


def git_revision() -> str:
    """The checkout's commit, with ``+local changes`` when stats/ or service/ differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()

    revision = git("rev-parse", "--short", "HEAD") or "unknown"
    return revision + (" +local changes" if git("status", "--porcelain", "--", "stats", "service") else "")


def package_versions() -> dict[str, str]:
    import rasterio

    out = {}
    for name in ("polyfis", "rasterio", "numpy", "shapely", "rasterstats", "exactextract", "dask", "distributed",
                 "pyarrow", "s2cloudless", "lightgbm"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["GDAL"] = rasterio.__gdal_version__
    return out


def render_markdown(report: dict[str, Any]) -> str:
    m, p = report["machine"], report["packages"]
    arch = report["archive"]
    lines = [f"# polyfis performance: `{report['size']}` archive", "",
             f"Command: `{report['command']}`  ", f"Run: {report['finished']}  ",
             f"Machine: {m['cpus']} CPUs ({m['cpu']}), {m['ram_bytes'] / 2**30:.1f} GiB RAM, Python {m['python']}, "
             f"{m['os']}  ",
             "Packages: " + ", ".join(f"{k} {v}" for k, v in p.items()) + f"; polyfis checkout {report['polyfis_revision']}",
             "",
             f"Archive (`{arch['path']}`): {arch['dates']} dates x {len(BANDS)} bands, {arch['pixels']} x "
             f"{arch['pixels']} px per band at 10 m, EPSG:32633, DEFLATE COGs with {arch['blocksize']} px tiles, "
             f"{arch['files']} files, {arch['bytes'] / 1e9:.2f} GB "
             + (f"(generated in this run in {arch['generation_s']:.0f} s)." if arch["generated_in_this_run"]
                else f"(reused; generated in {arch['generation_s']:.0f} s)."),
             "", "Jobs: " + "; ".join(f"`{c}` {j['polygons']} polygon(s), {j['inside_pixels']:,} px inside, "
                                      f"{j['polygon_dates']:,} polygon-dates, {j['zonal_mpx']:.1f} Mpx of zonal work"
                                      for c, j in report["jobs"].items()) + ".", ""]
    header = ("| contender | wall s | polygon-dates/s | Mpx/s | x I/O floor | rasterstats ÷ polyfis | "
              "exactextract ÷ polyfis | peak RSS MiB | note |")
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
    details = report["polyfis_details"]
    if details:
        lines += ["## polyfis single cases: cold, warm, model", "",
                  "| case | path | import s | model load s | archive open / server start s | cold s | warm s (median) | "
                  "warm speed-up | model in cold call s (share) | model in warm call s (share) | model calls per query |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for d in details:
            lines.append(
                f"| {d['case']} | {d['path']} | {fmt(d.get('import_s'))} | {fmt(d.get('model_load_s'))} | "
                f"{fmt(d.get('startup_s'))} | {fmt(d['cold_s'])} | {fmt(d['warm_s'])} | {fmt(d['speedup'])} | "
                + (f"{fmt(d['model_cold_s'])} ({d['model_cold_s'] / d['cold_s']:.1%}) | "
                   f"{fmt(d['model_warm_s'])} ({d['model_warm_s'] / d['warm_s']:.1%}) | "
                   f"{d['model_calls']} call(s), {d['model_rows']} rows |"
                   if d.get("model_cold_s") is not None else "— | — | — |"))
        lines.append("")
    lines += ["## Correctness (band statistics against rasterstats, reflectance = DN / 10000)", "",
              "| case | polyfis path | polygons | values compared | missing band-dates | max abs diff | max rel diff | result |",
              "|---|---|---:|---:|---:|---:|---:|---|"]
    for c in report["correctness"]:
        lines.append(f"| {c['case']} | {c['path']} | {c['polygons']} | {c.get('compared_values', 0):,} | "
                     f"{c.get('missing_band_dates', '—')} | {fmt(c.get('max_abs_diff'))} | {fmt(c.get('max_rel_diff'))} | "
                     f"{c['result']} |")
    lines += ["", "## Targets", "", "| target | case | polyfis | measured | status |", "|---|---|---|---:|---|"]
    for t in report["targets"]:
        value = "—" if t["value"] is None else (f"{t['value']:.0f} MiB" if t["unit"] == "MiB" else f"{t['value']:.2f} x")
        lines.append(f"| {t['target']} | {t['case']} | {t['subject']} | {value} | {t['status']} |")
    extrapolated = [f"{case} / {r['label']}: {r['note']}" for case, rows in report["rows"].items() for r in rows
                    if r["extrapolated"]]
    lines += ["", "## Extrapolated", ""] + ([f"* {e}" for e in extrapolated] or ["None: every contender ran in full."])
    probe = report["disk_penalty"]
    measured = [
        f"Disk probe (this run): reading the full-resolution tiles of the first date's {len(BANDS)} files "
        f"({probe['bytes'] / 2**30:.2f} GiB read from disk when cold) took {probe['warm_s']:.2f} s from the page cache and "
        f"{probe['cold_s']:.2f} s after `posix_fadvise(DONTNEED)`, i.e. disk costs "
        f"{probe['s_per_gib']:.2f} s per GiB read."
        + (f" This machine runs {report['page_reclaim']} (read from /sys, left unchanged), so a contender "
           "running longer than that after the warm-up finds part of the archive dropped from the page "
           "cache." if report["page_reclaim"] else ""),
        f"Runs: field and lake contenders {report['runs']['single']} times each in fresh processes, round-robin "
        f"(median wall reported, the spread in the note); batch contenders {report['runs']['batch']} time(s); "
        f"polyfis warm = median of {report['runs']['warm_repeats']} repeated calls. `other processes` in a note is "
        "CPU time other programs on the machine used during the contender (psutil), a sign of interference.",
    ]
    lines += ["", "## How measured", ""] + [f"* {line}" for line in HOW_MEASURED + measured] + [""]
    return "\n".join(lines)


HOW_MEASURED = [
    "One run, one job per case: every contender computes mean, min, max, std, p10, p50, p90 of all 13 bands on "
    "every date for the same polygons, pixel-centre rule.",
    "Each contender runs in a fresh Python process (`bench/perf.py --child`), so GDAL's block cache, open "
    "datasets and RSS are per contender. Wall seconds are measured inside the child around the work only "
    "(imports, reading the GeoJSON and, for polyfis, opening the archive and loading the model excluded and "
    "reported separately).",
    "OS page cache: before every contender (and every run) all archive files are read once "
    "(`cat`-equivalent), so every contender starts from the same warm page cache and the comparison is "
    "decode-bound, not disk-bound. Bytes a contender still reads from disk (its `ru_inblock`) are given "
    "in its note, with their estimated cost from the disk probe below.",
    "I/O floor: single thread; per file, open, read and decode each internal tile touched by a polygon "
    "(block windows from `src.block_windows()` intersecting a polygon) exactly once, close.",
    "rasterio window + numpy: per file, per polygon, a window read of the polygon bounds, "
    "`geometry_mask` (pixel centres) and numpy statistics; the dataset is opened once per file.",
    "rasterstats: `zonal_stats(features, path, stats=\"mean min max std percentile_10 percentile_50 "
    "percentile_90\")` once per file; for the batch it first times the default (boundless=True) on one file "
    "and switches to `boundless=False` when that projects beyond the cap (said in the row's note).",
    "exactextract: `exact_extract(path, features, [mean, min, max, stdev, quantile(q=0.1|0.5|0.9)])` once "
    "per file (raster read through rasterio as osgeo is not installed); it weights by coverage fraction, so "
    "only its time is reported.",
    "polyfis engine: `query_timeseries(TimeSeriesRequest.from_dict(body), Archive.open(...))` with the "
    "s2cloudless model loaded beforehand; cold = first call in the process, warm = median of the repeated "
    "calls (datasets kept open by polyfis's pool). `stats.cloud.CloudModel.probability` is wrapped with a "
    "timer to report the model's share.",
    "polyfis HTTP: `polyfis serve --workers 1` (one gunicorn worker so that the repeated call hits the warm "
    "process; POLYFIS_TIME_BUDGET_S=3600), POST /api/v1/timeseries with the same body. The cold call "
    "includes the worker's lazy archive open and model load.",
    "polyfis batch: `stats.batch.compute_batch(archive, geojson_path, from, to, options={statistics})` "
    "in-process, and `run_batch(..., out.parquet, workers=2)` on a Dask LocalCluster (cluster start-up "
    "included).",
    "Peak RSS: the summed RSS of the child and all its descendants (HTTP server, Dask workers) polled every "
    "50 ms with psutil (shared pages are counted once per process), or the child's own ru_maxrss if higher.",
    "Throughput: polygon-dates/s = polygons x dates / wall; Mpx/s = pixels inside the polygons x 13 bands "
    "x dates / wall. Ratios (x I/O floor, rasterstats ÷ polyfis, exactextract ÷ polyfis) use walls of this run.",
    "Cap: a per-file contender projected beyond the cap (default 900 s) stops at a date boundary once a "
    "third of the cap is spent and is extrapolated linearly in files (every file is the same work: all the "
    "polygons over one band of one date); a polygon subset would overstate the time, since polygons share "
    "decoded tiles. The rasterstats batch then finishes the correctness sample untimed.",
    "Correctness: polyfis (engine, HTTP, batch) and rasterio + numpy against rasterstats (DN / 10000), per "
    "polygon, date, band and statistic, relative tolerance 1e-9; batch on a sample of "
    f"{BATCH_SAMPLE} polygons.",
    "Parallelism is each tool's own: the polyfis engine reads a date's bands on POLYFIS_READ_THREADS threads "
    "(default: CPU count), run_batch uses 2 Dask workers; the I/O floor, rasterstats, exactextract and "
    "rasterio + numpy are single-threaded.",
]


# --------------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--data-dir", type=Path, help="archive and polygons (default bench/.data/<size>)")
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
    args = parser.parse_args()
    if args.child:
        child_main(args.child)
        return

    cfg = SIZES[args.size]
    data_dir: Path = (args.data_dir or HERE / ".data" / cfg.name).resolve()
    cases = [c for c in args.cases.split(",") if c]
    only = set(args.contenders.split(",")) if args.contenders else None
    command = shlex.join([".venv/bin/python", "bench/perf.py", *(
        a if not Path(a).is_absolute() else display_path(Path(a)) for a in sys.argv[1:])])

    polygons = make_polygons(cfg)
    write_polygons(data_dir, polygons)
    manifest = generate_archive(data_dir, cfg, polygons)
    if args.generate_only:
        return

    from stats import Archive

    archive = Archive.open(data_dir / "archive")
    files = [(a.date.isoformat(), b, a.assets[b]) for a in archive.acquisitions for b in BANDS]
    paths = sorted({str(p) for p in (data_dir / "archive").rglob("*.tif")})
    start, end = archive.acquisitions[0].date.isoformat(), archive.acquisitions[-1].date.isoformat()
    dates = len(archive.acquisitions)

    jobs: dict[str, dict[str, Any]] = {}
    samples: dict[str, list[str]] = {}
    for case in CASES:
        feats = polygons[case]["features"]
        px = sum(inside_pixels(f["geometry"]) for f in feats)
        jobs[case] = {"polygons": len(feats), "inside_pixels": px, "polygon_dates": len(feats) * dates,
                      "zonal_mpx": px * len(BANDS) * dates / 1e6, "file": display_path(data_dir / f"{case}.geojson")}
        step = max(1, len(feats) // BATCH_SAMPLE)
        samples[case] = [str(f["properties"]["id"]) for f in feats[::step][:BATCH_SAMPLE]]
        print(f"job {case}: {len(feats)} polygon(s), {px:,} px inside", flush=True)

    penalty = disk_penalty([path for date, _, path in files if date == start])
    reclaim = damon_reclaim()
    print(f"disk: reading tiles from disk instead of the page cache costs {penalty['s_per_gib']:.2f} s per GiB"
          + (f"; this machine runs {reclaim}" if reclaim else ""), flush=True)

    results: dict[str, dict[str, dict[str, Any]]] = {}
    for case in cases:
        names = [n for n in (BATCH if case == "batch" else SINGLE) if only is None or n in only]
        runs = args.batch_runs if case == "batch" else args.runs
        attempts: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for run in range(runs):  # round-robin, so that a busy spell of the machine hits every contender alike
            for name in names:
                print(f"[{case}] {LABELS[name]}, run {run + 1}/{runs} ...", flush=True)
                job = Job(contender=name, case=case, data_dir=str(data_dir), polygons=str(data_dir / f"{case}.geojson"),
                          files=files, start=start, end=end, sample_ids=samples[case], cap_seconds=args.cap_seconds,
                          repeats=args.repeats, out="")
                res = run_child(job, paths)
                attempts[name].append(res)
                wall = res.get("wall_s")
                print(f"[{case}] {LABELS[name]}: {res['status']}"
                      + (f", {wall:.2f} s{' (extrapolated)' if res.get('extrapolated') else ''}" if wall else "")
                      + f", peak RSS {res['peak_rss_bytes'] / 2**20:.0f} MiB, other processes "
                      f"{res['background_cpu_s']:.1f} CPU-s" + (f" — {res['message']}" if res.get("message") else ""),
                      flush=True)
        results[case] = {name: combine_runs(attempts[name]) for name in names}

    rows = {case: case_rows(case, results[case], jobs[case], penalty["s_per_gib"]) for case in cases}
    correctness = []
    for case in cases:
        reference = results[case].get("rasterstats", {}).get("values")
        for name in ("polyfis_engine", "polyfis_http", "polyfis_compute_batch", "polyfis_run_batch", "rasterio_numpy"):
            outcome = results[case].get(name)
            if outcome is None:
                continue
            entry: dict[str, Any] = {"case": case, "path": LABELS[name], "polygons": len(samples[case])}
            if outcome.get("status") != "ok" or reference is None:
                entry.update(result="not run", compared_values=0)
            else:
                # an extrapolated rasterio + numpy run is compared on the dates it measured
                entry.update(compare(outcome.get("values", {}), reference, complete=not outcome.get("extrapolated")))
            correctness.append(entry)

    details = []
    for case in cases:
        for name, path in (("polyfis_engine", "engine"), ("polyfis_http", "HTTP")):
            timing = results[case].get(name)
            if not timing or timing.get("status") != "ok":
                continue
            d: dict[str, Any] = {"case": case, "path": path, "cold_s": timing["cold_s"], "warm_s": timing["warm_s"],
                                 "speedup": timing["cold_s"] / timing["warm_s"], "warm_all_s": timing["warm_all_s"]}
            if name == "polyfis_engine":
                calls = timing["calls"]
                d.update(import_s=timing["import_s"], model_load_s=timing["model_load_s"], startup_s=timing["archive_open_s"],
                         model_cold_s=calls[0]["model_s"], model_warm_s=statistics.median(c["model_s"] for c in calls[1:]),
                         model_rows=calls[0]["model_rows"], model_calls=calls[0]["model_calls"])
            else:
                d.update(startup_s=timing["server_start_s"])
            details.append(d)

    report = {
        "size": cfg.name,
        "command": command,
        "finished": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "packages": package_versions(),
        "polyfis_revision": git_revision(),
        "archive": {"path": display_path(data_dir / "archive"), "dates": dates, "pixels": cfg.pixels,
                    "blocksize": cfg.blocksize, "files": len(files), "bytes": manifest["bytes"],
                    "generation_s": manifest["generation_s"], "generated_in_this_run": manifest["generated_in_this_run"],
                    "seed": SEED},
        "jobs": jobs,
        "cap_seconds": args.cap_seconds,
        "runs": {"single": args.runs, "batch": args.batch_runs, "warm_repeats": args.repeats},
        "disk_penalty": penalty,
        "page_reclaim": reclaim,
        "rows": rows,
        "polyfis_details": details,
        "correctness": correctness,
        "targets": targets(rows, results),
        "results": {case: {name: {k: v for k, v in res.items() if k != "values"} for name, res in by.items()}
                    for case, by in results.items()},
        "how_measured": HOW_MEASURED,
    }
    RESULTS.mkdir(exist_ok=True)
    # a development run over a subset of cases or contenders must not replace the real results
    suffix = ".tmp" if only is not None or set(cases) != set(CASES) else ""
    (RESULTS / f"perf-{cfg.name}.json{suffix}").write_text(json.dumps(report, indent=2) + "\n")
    markdown = render_markdown(report)
    (RESULTS / f"perf-{cfg.name}.md{suffix}").write_text(markdown)
    print(markdown)
    failed = [f"{c['case']} / {c['path']}" for c in correctness if c.get("result") == "FAIL"]
    broken = [f"{case} / {LABELS[name]}" for case, by in results.items() for name, res in by.items()
              if name.startswith("polyfis") and res.get("status") != "ok"]
    if failed or broken:
        sys.exit(f"polyfis differs from rasterstats in {failed} or did not run in {broken}")


if __name__ == "__main__":
    main()
