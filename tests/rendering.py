"""What a rendered image should hold, worked out with rasterio and pystac alone (not through polyfis), for the
render route's tests and the web page's quicklook test."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pystac
import rasterio
from PIL import Image
from rasterio.transform import from_bounds
from rasterio.warp import Resampling, reproject, transform_bounds


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
