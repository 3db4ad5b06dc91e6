"""Values worked out from the archive's files for the Process API tests: rasterio reads and warps of the band
COGs onto a requested grid, a nearest-neighbour lookup by hand, and s2cloudless on the tile's 160 m cells."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.warp import reproject
from s2cloudless import S2PixelCloudDetector

from stats.bands import MODEL_BANDS


def item_dir(root: Path, date: str) -> Path:
    (folder,) = (root / "items").glob(f"S2A_MSIL1C_{date.replace('-', '')}T*")
    return folder


def grid_transform(bbox: tuple[float, float, float, float], width: int, height: int) -> Affine:
    return Affine((bbox[2] - bbox[0]) / width, 0, bbox[0], 0, -(bbox[3] - bbox[1]) / height, bbox[3])


def warped(path: Path, crs: str, transform: Affine, shape: tuple[int, int], resampling: Resampling) -> np.ndarray:
    """A band COG warped by rasterio onto the grid (DN, 0 for no data)."""
    out = np.zeros(shape, dtype=np.float32)
    with rasterio.open(path) as src:
        reproject(rasterio.band(src, 1), out, src_transform=src.transform, src_crs=src.crs, src_nodata=0,
                  dst_transform=transform, dst_crs=crs, dst_nodata=0, resampling=resampling)
    return out


def nearest_by_hand(path: Path, crs: str, transform: Affine, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The band pixel under each output pixel centre, looked up without GDAL's warper, and where that lookup
    is unambiguous (the centre is more than 0.15 band pixel from the band pixel's edges)."""
    rows, cols = np.indices(shape)
    x, y = transform @ (cols + 0.5, rows + 0.5)
    with rasterio.open(path) as src:
        data, band = src.read(1), src.transform
        tx, ty = Transformer.from_crs(crs, src.crs, always_xy=True).transform(x, y)
    col, row = ~band @ (np.asarray(tx), np.asarray(ty))
    clear = (np.abs(col - np.round(col)) > 0.15) & (np.abs(row - np.round(row)) > 0.15)
    return data[np.floor(row).astype(int), np.floor(col).astype(int)], clear


def independent_clouds(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """CLP (round(255 p)) and CLM of s2cloudless on the tile's 160 m cells (16 x 16 pixels of 10 m from the tile
    origin), from the band files read with rasterio (Sentinel Hub's parameters: 0.4, disk 4, dilation 2)."""
    with rasterio.open(folder / "B02.tif") as ref:
        shape10 = (ref.height, ref.width)
    item = json.loads(next(folder.glob("*.json")).read_text())
    offset = 1000 if item["properties"]["s2:processing_baseline"] >= "04.00" else 0
    stack = []
    for band in MODEL_BANDS:
        with rasterio.open(folder / f"{band}.tif") as src:
            stack.append(src.read(1, out_shape=shape10, resampling=Resampling.nearest).astype(np.float64))
    dn = np.stack(stack, axis=-1)
    valid = (dn > 0).all(axis=-1)
    dn = np.clip(dn - offset, 0, None)
    k = 16
    crows, ccols = -(-shape10[0] // k), -(-shape10[1] // k)
    pad = ((0, crows * k - shape10[0]), (0, ccols * k - shape10[1]))
    counts = np.pad(valid, pad).reshape(crows, k, ccols, k).sum(axis=(1, 3))
    means = np.zeros((crows, ccols, len(MODEL_BANDS)), np.float32)
    for i in range(len(MODEL_BANDS)):
        sums = np.pad(np.where(valid, dn[..., i], 0), pad).reshape(crows, k, ccols, k).sum(axis=(1, 3))
        means[..., i] = (sums / np.maximum(counts, 1)).astype(np.float32) / np.float32(10000)
    detector = S2PixelCloudDetector(threshold=0.4, average_over=4, dilation_size=2, all_bands=False)
    probs = detector.get_cloud_probability_maps(means[np.newaxis].astype(np.float64))[0]
    probs = np.where(counts > 0, probs, 0).astype(np.float32)
    mask = detector.get_mask_from_prob(probs[np.newaxis])[0]
    return np.round(probs.astype(np.float64) * 255), mask
