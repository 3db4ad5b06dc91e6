"""The sky of one acquisition: cloud optical thickness on the line of sight and on the line to the sun.

Cumulus are analytic blobs with rough edges and internal texture, cirrus are streaky value noise (optionally
limited to a band across the scene), overcast is a textured deck. The field is a function of scene metres, so
the shadow is the same function evaluated at points moved towards the sun.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from .randomness import ValueNoise, rng
from .scene import Grid, distance_east_of

_EDGE_NOISE_CELL_M: Final[float] = 150.0


@dataclass
class Sky:
    """Cloud optical thickness on the line of sight (``tau``) and on the line to the sun (``tau_sun``)."""

    kind: str
    tau: np.ndarray
    tau_sun: np.ndarray
    cloud_type: str | None
    shadow_offset_m: tuple[float, float]


def _blob_tau(cloud: Mapping[str, Any], params: Mapping[str, Any], edge: ValueNoise, tex: ValueNoise,
              e: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Optical thickness of one cumulus: elliptical core, rough edge, textured inside."""
    ce, cs = cloud["centre_m"]
    a, b = cloud["semi_axes_m"]
    angle = math.radians(float(cloud.get("angle_deg", 0.0)))
    de, ds = e - ce, s - cs
    u = (de * math.cos(angle) + ds * math.sin(angle)) / a
    v = (-de * math.sin(angle) + ds * math.cos(angle)) / b
    r = np.hypot(u, v)
    near = r < 1.0 / (1.0 - float(params["edge_roughness"])) + 1e-6
    out = np.zeros(e.shape, dtype=np.float64)
    if not near.any():
        return out
    en, sn = e[near], s[near]
    r_eff = r[near] * (1.0 + float(params["edge_roughness"]) * edge(en, sn))
    core = np.clip((1.0 - r_eff) / float(params["edge_width"]), 0.0, 1.0) ** float(params["profile_exponent"])
    out[near] = float(cloud["tau"]) * core * (1.0 + float(params["texture"]) * tex(en, sn))
    return out


def build_sky(spec: Mapping[str, Any], grid: Grid, acq: Mapping[str, Any], index: int,
              elevation: float, azimuth: float) -> Sky:
    """Cloud optical thickness of one acquisition, on the line of sight and on the line to the sun.

    The field is a function of scene metres, so the shadow is the same function evaluated at points moved
    towards the sun by ``height / tan(elevation)``.
    """
    kind = str(acq["sky"])
    seed = int(spec["seed"])
    e, s = grid.centres()
    zeros = np.zeros(e.shape, dtype=np.float64)
    if kind == "clear":
        return Sky(kind, zeros, zeros, None, (0.0, 0.0))
    params = spec["cloud_types"][kind]
    height = float(acq.get("height_m", params.get("height_m", 1500.0)))
    length = height / math.tan(math.radians(max(elevation, 5.0)))
    # shadow lies away from the sun: in scene metres, north is -s
    shift_e = -length * math.sin(math.radians(azimuth))
    shift_s = length * math.cos(math.radians(azimuth))
    size = float(grid.size_m)
    bounds = (min(0.0, -shift_e) - 200.0, max(size, size - shift_e) + 200.0,
              min(0.0, -shift_s) - 200.0, max(size, size - shift_s) + 200.0)

    if kind == "overcast":
        noise = ValueNoise(rng(seed, "overcast", index), float(params["texture_cell_m"]), bounds, octaves=3)

        def field(pe: np.ndarray, ps: np.ndarray) -> np.ndarray:
            return float(acq["tau"]) * (1.0 + float(acq["variability"]) * noise(pe, ps))

    elif kind == "cirrus":
        noise = ValueNoise(rng(seed, "cirrus", index), float(params["texture_cell_m"]), bounds, octaves=3,
                           angle_deg=float(acq.get("streak_angle_deg", 0.0)),
                           stretch=float(params["streak_stretch"]))
        band = acq.get("band")

        def field(pe: np.ndarray, ps: np.ndarray) -> np.ndarray:
            tau = float(acq["tau"]) * (1.0 + float(acq["variability"]) * noise(pe, ps))
            if band is not None:
                distance = np.abs(distance_east_of(band, size, pe, ps))
                ramp = (float(band["half_width_m"]) + float(band["edge_m"]) - distance) / float(band["edge_m"])
                tau = tau * np.clip(ramp, 0.0, 1.0)
            return tau

    else:  # cumulus
        clouds = [dict(c) for c in acq.get("clouds", [])]
        puffs = acq.get("puffs")
        if puffs:
            prng = rng(seed, "puffs", index)
            for _ in range(int(puffs["count"])):
                radius = prng.uniform(*puffs["radius_m"])
                aspect = prng.uniform(0.7, 1.3)
                clouds.append({
                    "centre_m": [prng.uniform(0.0, size), prng.uniform(0.0, size)],
                    "semi_axes_m": [radius * aspect, radius / aspect],
                    "angle_deg": prng.uniform(0.0, 180.0),
                    "tau": prng.uniform(*puffs["tau"]),
                })
        edge = ValueNoise(rng(seed, "cloud_edge", index), _EDGE_NOISE_CELL_M, bounds, octaves=2)
        tex = ValueNoise(rng(seed, "cloud_texture", index), float(params["texture_cell_m"]), bounds, octaves=2)

        def field(pe: np.ndarray, ps: np.ndarray) -> np.ndarray:
            total = np.zeros(pe.shape, dtype=np.float64)
            for cloud in clouds:
                total += _blob_tau(cloud, params, edge, tex, pe, ps)
            return total

    tau = np.maximum(field(e, s), 0.0)
    tau_sun = np.maximum(field(e - shift_e, s - shift_s), 0.0)
    return Sky(kind, tau, tau_sun, kind, (shift_e, shift_s))
