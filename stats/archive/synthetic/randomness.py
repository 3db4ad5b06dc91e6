"""Randomness of the demo: one generator per (seed, purpose, date), and smooth value noise over scene metres.

Every random draw of the package goes through :func:`rng`, so the recipe's one seed fixes every byte of the
archive and a change to one purpose (say, sensor noise) leaves the draws of the others alone.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

_PURPOSES: Final[dict[str, int]] = {
    "texture": 1, "town": 2, "noise": 3, "cloud_edge": 4, "cloud_texture": 5, "puffs": 6, "cirrus": 7,
    "overcast": 8,
}


def rng(seed: int, purpose: str, index: int = 0) -> np.random.Generator:
    """An independent generator per (seed, purpose, date index).

    ``purpose`` is one of ``texture``, ``town``, ``noise``, ``cloud_edge``, ``cloud_texture``, ``puffs``,
    ``cirrus`` and ``overcast``.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), _PURPOSES[purpose], int(index)]))


class ValueNoise:
    """Smooth value noise in [-1, 1] over scene metres (fractal sum of smoothstep-interpolated lattices).

    The lattices cover ``bounds`` = (emin, emax, smin, smax); outside, the edge values repeat. ``angle_deg``
    and ``stretch`` make streaks: the pattern is stretched ``stretch`` times along the direction
    ``angle_deg`` (clockwise from north).
    """

    def __init__(self, rng: np.random.Generator, cell_m: float, bounds: tuple[float, float, float, float], *,
                 octaves: int = 2, angle_deg: float = 0.0, stretch: float = 1.0) -> None:
        angle = math.radians(angle_deg)
        # unit vector along the streak in (e, s): north is -s
        self._along = (math.sin(angle), -math.cos(angle))
        self._stretch = float(stretch)
        emin, emax, smin, smax = bounds
        corners_e = np.array([emin, emax, emin, emax], dtype=np.float64)
        corners_s = np.array([smin, smin, smax, smax], dtype=np.float64)
        u, v = self._frame(corners_e, corners_s)
        self._layers: list[tuple[float, float, float, np.ndarray, float]] = []
        for k in range(octaves):
            cell = cell_m / 2**k
            umin, vmin = float(u.min()) - cell, float(v.min()) - cell
            nu = math.ceil((float(u.max()) - umin) / cell) + 3
            nv = math.ceil((float(v.max()) - vmin) / cell) + 3
            lattice = rng.uniform(-1.0, 1.0, size=(nv, nu))
            self._layers.append((cell, umin, vmin, lattice, 0.5**k))
        self._norm = sum(layer[4] for layer in self._layers)

    def _frame(self, e: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ae, as_ = self._along
        along = e * ae + s * as_
        across = -e * as_ + s * ae
        return along / self._stretch, across

    def __call__(self, e: np.ndarray, s: np.ndarray) -> np.ndarray:
        """The noise at scene points ``(e, s)`` (arrays of one shape), float64 of that shape."""
        u, v = self._frame(np.asarray(e, dtype=np.float64), np.asarray(s, dtype=np.float64))
        total = np.zeros(u.shape, dtype=np.float64)
        for cell, umin, vmin, lattice, weight in self._layers:
            gu = np.clip((u - umin) / cell, 0.0, lattice.shape[1] - 1.001)
            gv = np.clip((v - vmin) / cell, 0.0, lattice.shape[0] - 1.001)
            iu = gu.astype(np.intp)
            iv = gv.astype(np.intp)
            fu = gu - iu
            fv = gv - iv
            fu = fu * fu * (3.0 - 2.0 * fu)
            fv = fv * fv * (3.0 - 2.0 * fv)
            c00 = lattice[iv, iu]
            c01 = lattice[iv, iu + 1]
            c10 = lattice[iv + 1, iu]
            c11 = lattice[iv + 1, iu + 1]
            top = c00 + (c01 - c00) * fu
            bottom = c10 + (c11 - c10) * fu
            total += weight * (top + (bottom - top) * fv)
        return total / self._norm
