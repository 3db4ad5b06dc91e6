"""Compute and store the CLP/CLM layers of every acquisition of an archive (``polyfis clouds``).

For each STAC item, the whole tile is cut into cloud cells of 160 m on the ground anchored at the tile origin
(:func:`stats.clouds.cells.cell_pixels`), read strip by strip, area-averaged and scored by s2cloudless in one
model call; the probabilities are post-processed on the whole tile with :data:`LAYER_PARAMETERS` (Sentinel
Hub's: averaged over a disk of 4 cells, ``p > 0.4``, dilated by 2 cells). The cells are exactly those the
on-the-fly recipe computes, so a query reads the same values from the layers (CLP to 1/255, CLM identical).

``CLP`` (uint8 ``round(255 p)``) and ``CLM`` (uint8 0/1, 255 for no data, where CLP is 0) are written as COGs
beside the item's bands and added to the item as assets with the :data:`~stats.archive.catalog.CLOUD_LAYERS_PROPERTY`
property. The run is idempotent and resumable: an item whose layers were made with the same parameters is
skipped, and every file is written under a temporary name and renamed into place, the item JSON last. An
``flock`` per item lets two runs share an archive: each item is computed by one of them, the other skips it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
from affine import Affine
from shapely.geometry import box

from ..archive.catalog import (
    CLM_ASSET,
    CLOUD_LAYERS_PROPERTY,
    CLP_ASSET,
    COLLECTION_FILE,
    Acquisition,
    acquisition_from_item,
)
from ..bands import MODEL_BANDS
from ..errors import ArchiveError, StatsError
from ..geometry import cached_crs
from ..grid import Grid, pixel_size_10m
from ..progress import progress_reporter
from ..raster import band_shape, read_date
from .cells import NO_DATA, cell_means, cell_pixels, to_clm, to_clp
from .layers import LAYER_PARAMETERS
from .masks import mask_from_probability
from .model import CloudModel, default_model
from .options import MaskParameters

log = logging.getLogger(__name__)

#: Cell rows read at a time: 32 cells of 160 m are 512 rows of 10 m pixels (about 230 MB for a whole
#: Sentinel-2 tile's strip of the 10 model bands).
STRIP_CELLS = 32
#: Outcomes of one item.
DONE, SKIPPED, BUSY, FAILED = "done", "skipped", "busy", "failed"
_LOCK_FILE = ".polyfis-clouds.lock"


@dataclass(frozen=True)
class TileLayers:
    """The CLP and CLM layers of one tile on its cell ``grid``; ``cell_pixels`` pixels of the 10 m class a cell."""

    grid: Grid
    clp: np.ndarray
    clm: np.ndarray
    cell_pixels: int


def tile_grid(tile: Acquisition) -> Grid:
    """The whole tile on the grid of its 10 m class, anchored at its finest band's origin."""
    shapes = [band_shape(tile, b) for b in MODEL_BANDS]
    finest = min(shapes, key=lambda s: abs(s.transform.a))
    px, py = pixel_size_10m(finest.transform)
    t = finest.transform
    rows = round(finest.height * abs(t.e) / py)
    cols = round(finest.width * t.a / px)
    return Grid(cached_crs(tile.crs), Affine(px, 0.0, t.c, 0.0, -py, t.f), (rows, cols))


def compute_tile_layers(tile: Acquisition, model: CloudModel | None = None,
                        params: MaskParameters = LAYER_PARAMETERS) -> TileLayers:
    """CLP and CLM of a whole tile (see the module docstring).

    :raises SceneReadError: when a band cannot be read.
    """
    model = model or default_model()
    k = cell_pixels(tile, params)
    grid = tile_grid(tile)
    rows, cols = grid.shape
    t = grid.transform
    crows, ccols = math.ceil(rows / k), math.ceil(cols / k)
    means = np.zeros((crows, ccols, len(MODEL_BANDS)), dtype=np.float32)
    valid = np.zeros((crows, ccols), dtype=bool)
    for r0 in range(0, crows, STRIP_CELLS):
        r1 = min(crows, r0 + STRIP_CELLS)
        top, bottom = t.f + r0 * k * t.e, t.f + min(r1 * k, rows) * t.e
        strip = box(t.c, bottom, t.c + cols * t.a, top)
        block = read_date([tile], strip, grid.crs, MODEL_BANDS, resolution=10, max_pixels=rows * cols, snap=k)
        if block.grid.transform.f != top or block.grid.transform.c != t.c:
            raise ArchiveError(f"scene {tile.id}: the strip at cell row {r0} does not start on a cell corner")
        strip_means, strip_valid = cell_means({b: block.dn[b] for b in MODEL_BANDS}, block.data, k)
        means[r0:r1], valid[r0:r1] = strip_means[: r1 - r0], strip_valid[: r1 - r0]
    probability = np.zeros((crows, ccols), dtype=np.float32)
    probability[valid] = model.probability(means[valid].astype(np.float64))
    mask = mask_from_probability(probability, valid, params)
    cell_grid = Grid(grid.crs, t @ Affine.scale(k), (crows, ccols))
    return TileLayers(cell_grid, to_clp(probability, valid), to_clm(mask, valid), k)


def layer_properties(layers: TileLayers, params: MaskParameters = LAYER_PARAMETERS) -> dict[str, Any]:
    """The :data:`CLOUD_LAYERS_PROPERTY` of an item: how its layers were made."""
    from importlib.metadata import version

    return {"resolution": params.resolution, "cell_pixels": layers.cell_pixels, "threshold": params.threshold,
            "average_over": params.average_over, "dilation_size": params.dilation_size,
            "model": f"s2cloudless {version('s2cloudless')}"}


def write_tile_layers(item_path: Path, layers: TileLayers, params: MaskParameters = LAYER_PARAMETERS) -> None:
    """Write ``CLP.tif`` and ``CLM.tif`` beside the item and add them to the item JSON (each file under a
    temporary name, renamed into place; the item last)."""
    folder = item_path.parent
    for name, array in ((CLP_ASSET, layers.clp), (CLM_ASSET, layers.clm)):
        tmp = folder / f".{name}.tif.{os.getpid()}.tmp"
        profile = {"driver": "COG", "width": array.shape[1], "height": array.shape[0], "count": 1,
                   "dtype": "uint8", "crs": layers.grid.crs, "transform": layers.grid.transform,
                   "compress": "DEFLATE", "blocksize": 256, **({"nodata": NO_DATA} if name == CLM_ASSET else {})}
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(array, 1)
        os.replace(tmp, folder / f"{name}.tif")
    item = json.loads(item_path.read_text(encoding="utf-8"))
    size = abs(layers.grid.transform.a)
    titles = {CLP_ASSET: "Cloud probability, round(255 p), s2cloudless", CLM_ASSET: "Cloud mask, 0 clear / 1 cloud"}
    for name in (CLP_ASSET, CLM_ASSET):
        item.setdefault("assets", {})[name] = {
            "href": f"./{name}.tif", "type": pystac.MediaType.COG, "title": titles[name], "roles": ["cloud"],
            "proj:shape": list(layers.grid.shape), "proj:transform": list(layers.grid.transform)[:6],
            "raster:bands": [{**({"nodata": NO_DATA} if name == CLM_ASSET else {}), "data_type": "uint8",
                              "spatial_resolution": size}],
        }
    item.setdefault("properties", {})[CLOUD_LAYERS_PROPERTY] = layer_properties(layers, params)
    tmp = item_path.with_name(f".{item_path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(item, indent=2), encoding="utf-8")
    os.replace(tmp, item_path)


def has_layers(item: pystac.Item, params: MaskParameters = LAYER_PARAMETERS) -> bool:
    """Whether the item's stored layers exist and were made with ``params``."""
    info = item.properties.get(CLOUD_LAYERS_PROPERTY)
    if not isinstance(info, dict):
        return False
    same = (info.get("resolution") == params.resolution and info.get("threshold") == params.threshold
            and info.get("average_over") == params.average_over and info.get("dilation_size") == params.dilation_size)
    files = [item.assets.get(name) for name in (CLP_ASSET, CLM_ASSET)]
    return same and all(a is not None and Path(a.get_absolute_href() or a.href).is_file() for a in files)


@contextmanager
def _item_lock(folder: Path) -> Iterator[bool]:
    """An exclusive, non-blocking ``flock`` of the item's folder: yields False when another run holds it."""
    fd = os.open(folder / _LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def process_item(item_path: str, force: bool = False) -> tuple[str, str, int]:
    """Compute and store the layers of one item unless they are there: (outcome, message, cells scored)."""
    path = Path(item_path)
    try:
        with _item_lock(path.parent) as locked:
            if not locked:
                return BUSY, "another run is computing it", 0
            item = pystac.Item.from_file(str(path))
            if not force and has_layers(item):
                return SKIPPED, "layers already stored", 0
            layers = compute_tile_layers(acquisition_from_item(item))
            write_tile_layers(path, layers)
            return DONE, "", int((layers.clm != NO_DATA).sum())
    except (StatsError, OSError, rasterio.errors.RasterioError, ValueError) as exc:
        log.error("item %s: %s", path.parent.name, exc)
        return FAILED, str(exc), 0


@dataclass
class CloudsSummary:
    """What a run did: items computed, skipped (already stored), busy (another run had them) and failed."""

    items: int = 0
    done: int = 0
    skipped: int = 0
    busy: int = 0
    cells: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def item_paths(archive: str | os.PathLike[str], start: str | None = None, end: str | None = None) -> list[Path]:
    """The item JSON files of a local archive folder (optionally of dates ``start`` to ``end``, YYYY-MM-DD)."""
    root = Path(archive)
    collection = root / COLLECTION_FILE if root.is_dir() else root
    if str(archive).startswith(("http://", "https://")) or not collection.is_file():
        raise ArchiveError(f"archive: got {str(archive)!r}; the cloud layers are written beside the bands, so they "
                           f"need a local archive folder holding {COLLECTION_FILE}")
    catalog = pystac.read_file(str(collection.resolve()))
    if not isinstance(catalog, pystac.Catalog):
        raise ArchiveError(f"{collection} is not a STAC Collection or Catalog")
    paths = []
    for item in catalog.get_items(recursive=True):
        day = item.datetime.date().isoformat() if item.datetime else ""
        if (start and day < start) or (end and day > end):
            continue
        href = item.get_self_href()
        if href is None:
            raise ArchiveError(f"STAC Item {item.id!r} has no file of its own")
        paths.append(Path(href))
    return paths


def store_cloud_layers(archive: str | os.PathLike[str], *, start: str | None = None, end: str | None = None,
                       force: bool = False, workers: int | None = 0, scheduler: str | None = None,
                       progress: bool | Callable[[int, int], None] = False) -> CloudsSummary:
    """Compute and store the layers of every item of a local archive that lacks them (see the module docstring).

    ``workers=0`` runs here; otherwise a Dask LocalCluster of ``workers`` processes (default: the CPU count)
    or the running scheduler at ``scheduler`` computes the items.
    """
    began = time.monotonic()
    paths = item_paths(archive, start, end)
    summary = CloudsSummary(items=len(paths))
    report = progress_reporter(progress, len(paths), 0, unit="item", desc="clouds")
    for path, (outcome, message, cells) in _run(paths, force, workers, scheduler):
        if outcome == DONE:
            summary.done += 1
            summary.cells += cells
        elif outcome == SKIPPED:
            summary.skipped += 1
        elif outcome == BUSY:
            summary.busy += 1
        else:
            summary.failed[path.parent.name] = message
        report(1)
    report(None)
    if summary.done:  # the items changed: the archive's stac-geoparquet index follows them
        from ..archive.sources.geoparquet import index_catalog

        root = Path(archive)
        index_catalog(root if root.is_dir() else root.parent)
    summary.seconds = time.monotonic() - began
    return summary


def _run(paths: list[Path], force: bool, workers: int | None,
         scheduler: str | None) -> Iterable[tuple[Path, tuple[str, str, int]]]:
    if workers == 0 and not scheduler:
        for path in paths:
            yield path, process_item(str(path), force)
        return
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        futures = {client.submit(process_item, str(path), force, pure=False): path for path in paths}
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except Exception as exc:  # a worker died: the item is retried by the next run
                outcome = (FAILED, f"the worker failed: {exc}", 0)
            yield futures[future], outcome
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
