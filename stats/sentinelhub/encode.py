"""Writing Process API outputs as Sentinel Hub does: typed arrays, GeoTIFF, PNG, JPEG, and the tar of many.

An evalscript output of ``sampleType`` UINT8, UINT16, INT8, INT16 or FLOAT32 is written as that type
(integers rounded and clipped to the type's range, no value as 0); ``AUTO`` stretches [0, 1] to [0, 255]
and writes UINT8. Images are (rows, cols, bands):

* ``image/tiff``: a GeoTIFF (GDAL's GTiff driver through rasterio) with the grid's CRS and transform, pixel
  interleaved, DEFLATE-compressed, every sample type;
* ``image/png``: 1 to 4 bands (grey, grey + alpha, RGB, RGBA) of UINT8 or UINT16 (GDAL's PNG driver);
* ``image/jpeg``: 1 or 3 bands of UINT8 (GDAL's JPEG driver), ``quality`` 1 to 100 (default 90).

Several responses go in one POSIX tar, each as ``<identifier>.<ext>`` (``tif``, ``png``, ``jpg``, ``json``),
which is how sentinelhub-py finds them.
"""

from __future__ import annotations

import io
import json
import tarfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile

from ..errors import InvalidRequestError
from ..grid import Grid

#: Response format -> file extension in a tar.
EXTENSIONS = {"image/tiff": "tif", "image/png": "png", "image/jpeg": "jpg", "application/json": "json"}
#: The tar's media type, and the one sentinelhub-py asks for in ``Accept``.
TAR = "application/tar"
TAR_TYPES = (TAR, "application/x-tar")

_INTEGER_RANGES = {"UINT8": (0, 255, np.uint8), "UINT16": (0, 65535, np.uint16), "INT8": (-128, 127, np.int8),
                   "INT16": (-32768, 32767, np.int16)}
_IMAGE_BANDS = {"image/png": (1, 2, 3, 4), "image/jpeg": (1, 3)}
_IMAGE_TYPES = {"image/png": (np.uint8, np.uint16), "image/jpeg": (np.uint8,)}


def typed(values: np.ndarray, sample_type: str) -> np.ndarray:
    """``values`` (any shape, float) as ``sample_type`` writes them."""
    if sample_type == "FLOAT32":
        return values.astype(np.float32)
    if sample_type == "AUTO":
        values = values * 255.0
        sample_type = "UINT8"
    low, high, dtype = _INTEGER_RANGES[sample_type]
    with np.errstate(invalid="ignore"):
        return np.clip(np.round(np.nan_to_num(values, nan=0.0, posinf=high, neginf=low)), low, high).astype(dtype)


def check_format(mime: str, bands: int, sample_type: str, identifier: str) -> None:
    """Reject an output that ``mime`` cannot hold, naming the response, its bands and its sample type."""
    if mime not in _IMAGE_BANDS:
        return
    allowed = _IMAGE_BANDS[mime]
    if bands not in allowed:
        raise InvalidRequestError(f"output.responses '{identifier}': {mime} holds {list(allowed)} bands; the "
                                  f"evalscript output has {bands}")
    dtype = np.dtype(np.float32 if sample_type == "FLOAT32" else (
        np.uint8 if sample_type == "AUTO" else _INTEGER_RANGES[sample_type][2]))
    if dtype not in [np.dtype(t) for t in _IMAGE_TYPES[mime]]:
        names = "UINT8 or UINT16" if mime == "image/png" else "UINT8"
        raise InvalidRequestError(f"output.responses '{identifier}': {mime} holds sampleType {names}; the "
                                  f"evalscript output is {sample_type}; use image/tiff for it")


def encode_image(image: np.ndarray, mime: str, grid: Grid, quality: int = 90) -> bytes:
    """``image`` (rows, cols, bands), already typed, as ``mime`` bytes."""
    rows, cols, bands = image.shape
    profile: dict[str, Any] = {"width": cols, "height": rows, "count": bands, "dtype": image.dtype.name}
    if mime == "image/tiff":
        profile.update(driver="GTiff", crs=grid.crs.to_wkt(), transform=grid.transform, interleave="pixel",
                       compress="deflate", photometric="minisblack")
        with MemoryFile() as memfile:
            with memfile.open(**profile) as dst:
                dst.write(np.moveaxis(image, -1, 0))
            return bytes(memfile.read())
    driver = {"image/png": "PNG", "image/jpeg": "JPEG"}[mime]
    options = {"quality": str(quality)} if driver == "JPEG" else {}
    with warnings.catch_warnings(), MemoryFile() as source, source.open(driver="MEM", **profile) as mem:
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # PNG and JPEG carry no georeferencing
        mem.write(np.moveaxis(image, -1, 0))
        with MemoryFile() as memfile:
            with memfile.open(driver=driver, **profile, **options) as dst:
                dst.write(mem.read())
            return bytes(memfile.read())


@dataclass(frozen=True)
class Encoded:
    """One encoded response: its ``identifier``, media type and bytes."""

    identifier: str
    mime: str
    data: bytes

    @property
    def name(self) -> str:
        """The file name in a tar."""
        return f"{self.identifier}.{EXTENSIONS[self.mime]}"


def encode_json(value: Any) -> bytes:
    """``value`` as UTF-8 JSON (``userdata.json``)."""
    return json.dumps(value, allow_nan=False, separators=(",", ":")).encode("utf-8")


def tar_of(files: Sequence[Encoded]) -> bytes:
    """A POSIX tar holding every response as ``<identifier>.<ext>``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for item in files:
            info = tarfile.TarInfo(item.name)
            info.size = len(item.data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(item.data))
    return buffer.getvalue()
