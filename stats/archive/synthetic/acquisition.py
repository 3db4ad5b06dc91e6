"""One acquisition as the sensor records it: TOA reflectance through the sky, sensor noise, no-data swath edge
and the uint16 DN of each band at its native resolution.

Shadow scales the surface part of the signal (above the path radiance) by ``T + (1 - T) * diffuse`` with the
delta-scaled direct transmission ``T = exp(-(1 - g) tau_sun / cos(zenith))``; a cloud layer then mixes linearly
with the surface, ``TOA = a * albedo + (1 - a) * surface`` with the two-stream reflectance ``a`` of a
conservative layer. The 20 m and 60 m bands are block means of the 10 m reflectance, so all bands agree.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from affine import Affine

from ...bands import NATIVE_RESOLUTION, S2_BANDS
from .randomness import rng
from .scene import RESOLUTION, Grid, day_of_year, distance_east_of
from .sky import Sky
from .surface import Surface, cover_spectrum


def _two_stream(tau: np.ndarray, asymmetry: float) -> np.ndarray:
    """Reflectance weight of a conservative cloud layer: (1 - g) tau / (2 + (1 - g) tau)."""
    scaled = (1.0 - asymmetry) * tau
    return scaled / (2.0 + scaled)


def reflectance(spec: Mapping[str, Any], surface: Surface, sky: Sky, water: np.ndarray, day: dt.date,
                elevation: float, index: int) -> tuple[np.ndarray, np.ndarray]:
    """TOA reflectance (13, rows, cols) float32 at 10 m, and the cloud-free surface (13, rows, cols).

    ``water`` marks the open water of the lake on ``day``; the rest of the basin shows the exposed lake bed.
    ``elevation`` is the solar elevation (degrees), ``index`` the acquisition's index in the recipe (it
    selects the sensor-noise draw).
    """
    rt = spec["radiative_transfer"]
    doy = float(day_of_year(day))
    lut = np.stack([cover_spectrum(spec, cover, doy - shift) for cover, shift in surface.rows])  # (rows, 13)
    amplitude = np.asarray([float(spec["covers"][cover].get("texture", 0.0)) for cover, _ in surface.rows])
    material = surface.material.copy()
    material[surface.basin & ~water] = surface.mud_row
    path_ref = np.asarray(rt["path_radiance"], dtype=np.float64) / 10000.0
    mu0 = math.cos(math.radians(90.0 - elevation))
    mu_ref = math.cos(math.radians(float(rt["reference_solar_zenith_deg"])))
    path = path_ref * (mu_ref / max(mu0, 0.05)) ** float(rt["path_radiance_zenith_exponent"])
    above_path = (lut - path_ref).astype(np.float32).T                     # (13, n_rows)
    scale = (1.0 + amplitude[material] * surface.texture).astype(np.float32)  # (rows, cols)
    path32 = path.astype(np.float32)[:, None, None]
    clear = path32 + np.take(above_path, material, axis=1) * scale[None]
    toa = clear
    if sky.cloud_type is not None:
        params = spec["cloud_types"][sky.cloud_type]
        asymmetry = float(params["asymmetry"])
        diffuse = np.asarray(rt["shadow_diffuse_fraction"], dtype=np.float32)[:, None, None]
        # delta-scaled direct transmission: light scattered forward by the cloud still lights the ground
        direct = np.exp(-(1.0 - asymmetry) * sky.tau_sun / max(mu0, 0.05)).astype(np.float32)[None]
        toa = path32 + (clear - path32) * (direct + (1.0 - direct) * diffuse)
        weight = _two_stream(sky.tau, asymmetry).astype(np.float32)[None]
        albedo = (np.asarray(params["albedo"], dtype=np.float32) / 10000.0)[:, None, None]
        toa = weight * albedo + (1.0 - weight) * toa
    noise = spec["noise"]
    noise_rng = rng(int(spec["seed"]), "noise", index)
    sigma = float(noise["relative"]) * toa + float(noise["absolute"])
    toa = toa + sigma * noise_rng.standard_normal(toa.shape, dtype=np.float32)
    return np.maximum(toa, 0.0001).astype(np.float32), clear


def nodata_mask(acq: Mapping[str, Any], grid: Grid) -> np.ndarray:
    """No-data strip beyond the acquisition's swath edge, drawn at 60 m (the coarsest band) and repeated onto
    the 10 m grid so that all bands agree; all False when the acquisition has no ``nodata`` entry."""
    strip = acq.get("nodata")
    if not strip:
        return np.zeros(grid.shape(), dtype=bool)
    e, s = grid.centres(60)
    distance = distance_east_of(strip, float(grid.size_m), e, s)
    if strip.get("side", "east") == "west":
        distance = -distance
    coarse = (distance >= 0.0) & (distance <= float(strip.get("width_m", 1e9)))
    return np.repeat(np.repeat(coarse, 6, axis=0), 6, axis=1)


def _block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    """Mean of ``factor`` x ``factor`` blocks of a 2-D array (the array itself for factor 1)."""
    if factor == 1:
        return array
    rows, cols = array.shape
    return array.reshape(rows // factor, factor, cols // factor, factor).mean(axis=(1, 3))


def band_dns(grid: Grid, toa: np.ndarray, nodata: np.ndarray, offset: int) -> dict[str, tuple[np.ndarray, Affine]]:
    """Per band at native resolution: uint16 DN (nodata 0) and its transform.

    DN = ``round(reflectance * 10000) + offset`` (the baseline's DN offset), clipped to [1, 65535]; pixels of
    ``nodata`` (10 m mask) are 0.
    """
    out: dict[str, tuple[np.ndarray, Affine]] = {}
    for b, name in enumerate(S2_BANDS):
        res = NATIVE_RESOLUTION[name]
        factor = res // RESOLUTION
        values = _block_mean(toa[b], factor)
        dn = np.clip(np.rint(values * 10000.0) + offset, 1, 65535).astype(np.uint16)
        dn[nodata[::factor, ::factor]] = 0
        out[name] = (dn, grid.transform(res))
    return out
