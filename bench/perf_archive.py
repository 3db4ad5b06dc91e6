"""The benchmark's archive: its sizes and the deterministic synthetic Sentinel-2 L1C scene it is made of.

:func:`generate_archive` writes ``<data-dir>/archive`` with polyfis's own
:class:`stats.archive.catalog.ArchiveWriter` (two spawned writer processes, one date at a time) unless a
complete archive of the same size and seed is there, which ``<data-dir>/manifest.json`` (written last) says.

Content: uint16 DN in 1..12000 (0 is no data and never occurs), a mosaic of field parcels of five cover
classes with per-parcel phenology, a lake, a per-date haze gradient, cloud blobs on some dates and Gaussian
sensor noise, so DEFLATE compresses about as well as on real imagery.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import multiprocessing
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from common import display_path

SEED = 20240917
EPSG = "EPSG:32633"
X0, Y0, PIXEL = 300_000.0, 5_100_000.0, 10.0
PROCESSING_BASELINE = "02.14"  # before 04.00: no DN offset
BANDS: tuple[str, ...] = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")


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
    first = dt.datetime.fromisoformat(cfg.first_date).replace(hour=10, minute=5, second=31, tzinfo=dt.UTC)
    return [first + dt.timedelta(days=cfg.date_step_days * i) for i in range(cfg.dates)]


def scene_transform(cfg: SizeConfig) -> Any:
    """The affine transform of every band of the scene (10 m pixels from the origin (X0, Y0))."""
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


#: State of a writer process, set by :func:`_init_worker`.
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

    ``polygons`` are the jobs of :func:`perf_polygons.make_polygons`; the lake's polygon is burnt into the
    scene as water. Returns the manifest with ``generated_in_this_run``.
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
