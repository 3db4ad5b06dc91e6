"""What a rendered image should hold, worked out with rasterio and pystac alone (not through polyfis), for the
render route's tests and the web page's quicklook test."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_bounds
from rasterio.warp import Resampling, reproject, transform_bounds

from stats.archive.synthetic import build_demo_archive
from stats.clouds.store import store_cloud_layers

#: The dates whose cloud layers :func:`layered_demo` stores (the demo's six July and August acquisitions).
LAYERED_DATES = ("2023-07-04", "2023-07-14", "2023-07-24", "2023-08-03", "2023-08-13", "2023-08-23")


def session_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's demo archive, the one the tests' environment points POLYFIS_DEMO_DIR at (the folder the user
    names, else one per session; see conftest), built on first use. For module fixtures, which are set up before
    that environment is."""
    named = os.environ.get("POLYFIS_DEMO_DIR")
    return build_demo_archive(Path(named) if named else tmp_path_factory.getbasetemp() / "demo-archive")


def layered_demo(source: Path, root: Path) -> Path:
    """A copy of the demo archive ``source`` at ``root`` whose items of :data:`LAYERED_DATES`, and only those,
    have their CLP/CLM layers stored (layers the source already had on other dates are taken out)."""
    shutil.copytree(source, root)
    for path in root.glob("items/*/*.json"):
        item = json.loads(path.read_text())
        if item["properties"]["datetime"][:10] in LAYERED_DATES or "CLM" not in item["assets"]:
            continue
        for key in ("CLP", "CLM"):
            (path.parent / item["assets"].pop(key)["href"]).unlink()
        item["properties"].pop("polyfis:clouds", None)
        path.write_text(json.dumps(item))
    summary = store_cloud_layers(root, start="2023-07-01", end="2023-08-31")
    assert summary.done + summary.skipped == len(LAYERED_DATES) and not summary.failed
    items = [json.loads(p.read_text()) for p in root.glob("items/*/*.json")]
    layered = sorted(i["properties"]["datetime"][:10] for i in items if "CLM" in i["assets"])
    assert tuple(layered) == LAYERED_DATES
    return root


def item_of(root: Path, day: str) -> pystac.Item:
    """The demo's STAC item of ``day``, read with pystac (not through polyfis's catalog)."""
    stamp = day.replace("-", "")
    folder = next(p for p in (root / "items").iterdir() if f"_{stamp}T" in p.name)
    return pystac.Item.from_file(str(folder / f"{folder.name}.json"))


def expected_rgba(item: pystac.Item, bbox: tuple[float, ...], width: int, height: int, bands: list[str],
                  max_reflectance: float = 0.3, harmonize: bool = True) -> np.ndarray:
    """What the image should hold, worked out with rasterio alone: each band reprojected (nearest) onto the
    width x height Web Mercator grid of the box, the baseline offset removed, scaled to bytes."""
    bounds = transform_bounds("EPSG:4326", "EPSG:3857", *bbox)
    transform = from_bounds(*bounds, width, height)
    offset = 1000 if harmonize and item.properties["s2:processing_baseline"] >= "04.00" else 0
    dns = []
    for band in bands:
        dn = np.zeros((height, width), np.uint16)
        with rasterio.open(item.assets[band].get_absolute_href()) as src:
            reproject(rasterio.band(src, 1), dn, dst_transform=transform, dst_crs="EPSG:3857",
                      resampling=Resampling.nearest, src_nodata=0, dst_nodata=0)
        dns.append(dn)
    valid = np.logical_and.reduce([d > 0 for d in dns])
    reflectance = [np.maximum(d.astype(np.float64) - offset, 0) / 10000 for d in dns]
    scaled = [np.clip(np.rint(r * 255 / max_reflectance), 0, 255) for r in reflectance]
    rgb = scaled if len(scaled) == 3 else scaled * 3
    rgba = np.stack([*(np.where(valid, c, 0) for c in rgb), np.where(valid, 255, 0)]).astype(np.uint8)
    return rgba


def png_pixels(data: bytes) -> np.ndarray:
    """RGBA bytes (4, height, width) of a PNG, decoded with Pillow."""
    image = Image.open(io.BytesIO(data))
    assert image.mode == "RGBA"
    return np.moveaxis(np.asarray(image), -1, 0)


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert np.array_equal(got[3], want[3]), "the transparent pixels differ"
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1, f"{(diff > 1).sum()} values differ by more than rounding"


#: The CLM overlay's colour of a cloud pixel, as the render route's contract states it.
CLOUD_RGBA = (255, 0, 255, 140)


def reproject_layer(href: str, bbox: tuple[float, ...], width: int, height: int, fill: int) -> np.ndarray:
    """A uint8 layer reprojected (nearest) onto the width x height Web Mercator grid of the box; ``fill``
    outside it."""
    bounds = transform_bounds("EPSG:4326", "EPSG:3857", *bbox)
    out = np.full((height, width), fill, np.uint8)
    with rasterio.open(href) as src:
        reproject(rasterio.band(src, 1), out, dst_transform=from_bounds(*bounds, width, height), dst_crs="EPSG:3857",
                  resampling=Resampling.nearest, src_nodata=None, dst_nodata=None)
    return out


def expected_clm_rgba(item: pystac.Item, bbox: tuple[float, ...], width: int, height: int) -> np.ndarray:
    """The CLM overlay: cloud (1) in :data:`CLOUD_RGBA`, clear (0) and no data (255) transparent."""
    clm = reproject_layer(item.assets["CLM"].get_absolute_href(), bbox, width, height, 255)
    return np.stack([np.where(clm == 1, c, 0) for c in CLOUD_RGBA]).astype(np.uint8)


def expected_clp_rgba(item: pystac.Item, bbox: tuple[float, ...], width: int, height: int) -> np.ndarray:
    """CLP as grey where CLM has data (for a box inside the tile)."""
    clp = reproject_layer(item.assets["CLP"].get_absolute_href(), bbox, width, height, 0)
    clm = reproject_layer(item.assets["CLM"].get_absolute_href(), bbox, width, height, 255)
    valid = clm != 255
    return np.stack([*(np.where(valid, clp, 0),) * 3, np.where(valid, 255, 0)]).astype(np.uint8)
