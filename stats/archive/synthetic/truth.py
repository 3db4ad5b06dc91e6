"""Ground truth of the demo archive: the per-date bit-flag rasters, the per-polygon answers, and reading both.

Truth follows the recipe's physical ``cloud_rule`` (cloud where ``tau`` reaches its minimum optical
thickness), never a detector's output.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import rasterio
import rasterio.features
import shapely
from pyproj import Transformer
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from ...bands import S2_BANDS
from ...errors import ArchiveError
from .files import GROUND_TRUTH_FILE, LANDCOVER_FILE, TRUTH_DIR, load_json
from .scene import RESOLUTION, Grid
from .sky import Sky

#: Bits of the per-date truth rasters ``truth/<YYYY-MM-DD>.tif`` (uint8, 10 m grid of the scene).
#: ``cloud``/``shadow``/``haze``/``thick``/``cirrus`` are 0 where ``nodata`` is set; ``water`` is the
#: surface and is set whatever the sky.
TRUTH_FLAGS: Final[dict[str, int]] = {
    "nodata": 1,   # all bands DN 0
    "cloud": 2,    # tau >= cloud_rule.min_optical_thickness
    "shadow": 4,   # not cloud, tau on the line to the sun >= min_optical_thickness
    "water": 8,    # open water of the lake on that date
    "haze": 16,    # any cloud at all (tau > 0), including thin cirrus and cloud edges
    "thick": 32,   # tau >= cloud_rule.thick_optical_thickness (opaque)
    "cirrus": 64,  # any cirrus (tau > 0 on a cirrus date), thin or thick
}


def flag_raster(sky: Sky, nodata: np.ndarray, water: np.ndarray, min_tau: float, thick_tau: float) -> np.ndarray:
    """The uint8 :data:`TRUTH_FLAGS` raster of one date.

    Parameters
    ----------
    sky
        The date's cloud optical thickness.
    nodata, water
        The date's no-data pixels and open water (10 m masks).
    min_tau, thick_tau
        The recipe's ``cloud_rule.min_optical_thickness`` and ``cloud_rule.thick_optical_thickness``.
    """
    haze = sky.tau > 1e-6
    cloud = sky.tau >= min_tau
    flags = np.zeros(sky.tau.shape, dtype=np.uint8)
    flags[cloud] |= TRUTH_FLAGS["cloud"]
    flags[(sky.tau_sun >= min_tau) & ~cloud] |= TRUTH_FLAGS["shadow"]
    flags[haze] |= TRUTH_FLAGS["haze"]
    flags[sky.tau >= thick_tau] |= TRUTH_FLAGS["thick"]
    if sky.kind == "cirrus":
        flags[haze] |= TRUTH_FLAGS["cirrus"]
    flags[nodata] = TRUTH_FLAGS["nodata"]
    flags[water] |= TRUTH_FLAGS["water"]
    return flags


def polygon_masks(polygons: Mapping[str, Any], grid: Grid) -> dict[str, tuple[dict[str, Any], np.ndarray]]:
    """Name -> (properties, 10 m mask of pixel centres inside the polygon reprojected to the scene CRS)."""
    to_scene = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True)
    out: dict[str, tuple[dict[str, Any], np.ndarray]] = {}
    for feature in polygons["features"]:
        props = dict(feature.get("properties") or {})
        geom: BaseGeometry = shapely.transform(
            shape(feature["geometry"]), lambda xy: np.column_stack(to_scene.transform(xy[:, 0], xy[:, 1]))
        )
        mask = rasterio.features.geometry_mask([mapping(geom)], out_shape=grid.shape(), transform=grid.transform(),
                                               all_touched=False, invert=True)
        out[str(props["name"])] = (props, mask)
    return out


def _fraction(count: int, total: int) -> float | None:
    """``count / total`` rounded to 6 decimals, None when ``total`` is 0."""
    return round(count / total, 6) if total else None


def polygon_truth(mask: np.ndarray, flags: np.ndarray, clear: np.ndarray, sky: str) -> dict[str, Any]:
    """The ground truth of one polygon on one date (see :func:`load_ground_truth` for the keys).

    ``mask`` is the polygon's 10 m mask, ``flags`` the date's :func:`flag_raster`, ``clear`` its cloud-free
    surface reflectance (13, rows, cols) and ``sky`` its sky type.
    """
    inside = flags[mask]
    n = int(inside.size)
    nodata = int(np.count_nonzero(inside & TRUTH_FLAGS["nodata"]))
    valid = n - nodata
    cloud = int(np.count_nonzero(inside & TRUTH_FLAGS["cloud"]))
    shadow = int(np.count_nonzero(inside & TRUTH_FLAGS["shadow"]))
    water = int(np.count_nonzero(inside & TRUTH_FLAGS["water"]))
    cloud_fraction = _fraction(cloud, valid)
    red = float(clear[S2_BANDS.index("B04")][mask].mean()) if n else 0.0
    nir = float(clear[S2_BANDS.index("B08")][mask].mean()) if n else 0.0
    return {
        "cloud_fraction": cloud_fraction,
        "cloudy": None if cloud_fraction is None else cloud_fraction >= 0.5,
        "shadow_fraction": _fraction(shadow, valid),
        "nodata_fraction": _fraction(nodata, n),
        "sky": sky,
        "water_area_m2": float(water * RESOLUTION * RESOLUTION),
        "water_fraction": _fraction(water, n),
        "clear_sky_ndvi": round((nir - red) / (nir + red), 6) if n else None,
    }


def write_truth_raster(path: Path, array: np.ndarray, grid: Grid) -> None:
    """Write a uint8 raster on the 10 m grid (deflate, 256 px tiles): ``landcover.tif`` or a date's flags."""
    profile = {
        "driver": "GTiff", "width": array.shape[1], "height": array.shape[0], "count": 1, "dtype": "uint8",
        "crs": grid.crs, "transform": grid.transform(), "compress": "deflate", "tiled": True,
        "blockxsize": 256, "blockysize": 256,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array.astype(np.uint8, copy=False), 1)


def load_ground_truth(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``ground_truth.json`` of a demo archive.

    Returns
    -------
    dict
        ``{"generator", "scene", "cloud_rule", "landcover_codes", "truth_flags", "dates", "polygons"}``.
        ``dates[YYYY-MM-DD]`` holds the scene: ``item_id``, ``datetime``, ``sky`` (clear|cirrus|cumulus|
        overcast), ``processing_baseline``, ``dn_offset``, ``cloud_cover``/``shadow_cover``/``nodata_cover``
        (percent; cloud and shadow of the valid pixels, no data of all), ``max_optical_thickness``,
        ``lake_level`` and ``lake_water_area_m2`` (whole lake), ``sun_elevation_deg``, ``sun_azimuth_deg`` and
        ``shadow_offset_m`` (east, south displacement of shadows from their clouds, scene metres).
        ``polygons[name]`` holds ``kind``, ``homogeneous``, ``n_pixels`` and ``dates[YYYY-MM-DD]`` with
        ``cloud_fraction`` (share of the valid pixels that are cloud, null when none is valid), ``cloudy``
        (``cloud_fraction >= 0.5``, null when none is valid), ``shadow_fraction``, ``nodata_fraction`` (of
        all pixels), ``sky``, ``water_area_m2``, ``water_fraction`` (of all pixels) and ``clear_sky_ndvi``
        (NDVI of the polygon-mean cloud-free B08 and B04 reflectance). Pixels are the 10 m pixels whose
        centre lies inside the polygon.

    Raises
    ------
    ArchiveError
        When the file is missing or is not JSON.
    """
    data: dict[str, Any] = load_json(Path(root) / GROUND_TRUTH_FILE, "demo ground truth")
    return data


def load_truth_masks(root: str | os.PathLike[str], day: str | dt.date) -> dict[str, np.ndarray]:
    """Read the 10 m truth rasters of one acquisition date of a demo archive.

    Parameters
    ----------
    root
        Archive root written by :func:`~stats.archive.synthetic.build_demo_archive`.
    day
        Acquisition date, ``datetime.date`` or ISO ``YYYY-MM-DD``.

    Returns
    -------
    dict
        One boolean array (rows, cols) per key of :data:`TRUTH_FLAGS`, plus ``landcover`` (uint8 codes,
        :data:`~stats.archive.synthetic.surface.LANDCOVER_CODES`). Row 0 is the northern edge; the grid is
        the 10 m band grid.

    Raises
    ------
    ArchiveError
        When the date has no truth raster.
    """
    iso = day.isoformat() if isinstance(day, dt.date) else str(day)
    truth = Path(root) / TRUTH_DIR
    path = truth / f"{iso}.tif"
    if not path.is_file():
        raise ArchiveError(f"No truth raster for {iso!r} in {str(truth)!r}; expected one of the archive's dates")
    with rasterio.open(path) as src:
        flags = src.read(1)
    with rasterio.open(truth / LANDCOVER_FILE) as src:
        landcover = src.read(1)
    masks = {name: (flags & bit) != 0 for name, bit in TRUTH_FLAGS.items()}
    masks["landcover"] = landcover
    return masks
