"""The demo scene's pixel grids and the geometry of its layout: polygons, the lake and its island, lines.

Scene metres: ``e`` east of the scene's west edge, ``s`` south of its north edge. Row 0 of every grid is the
northern edge.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import rasterio.features
from affine import Affine
from shapely.geometry import Polygon

#: Resolution (metres) of the truth grid, the 10 m band grid on which the scene is drawn.
RESOLUTION: Final[int] = 10


@dataclass(frozen=True)
class Grid:
    """The scene's pixel grids. Scene metres: ``e`` east of the west edge, ``s`` south of the north edge."""

    crs: str
    x0: float
    y0: float
    size_m: int

    def shape(self, res: int = RESOLUTION) -> tuple[int, int]:
        """(rows, cols) of the grid at ``res`` metres."""
        n = self.size_m // res
        return n, n

    def transform(self, res: int = RESOLUTION) -> Affine:
        """Affine transform of the grid at ``res`` metres, in ``crs``."""
        return Affine(float(res), 0.0, self.x0, 0.0, -float(res), self.y0)

    def centres(self, res: int = RESOLUTION) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre scene coordinates ``(e, s)``, each (rows, cols) float64."""
        n = self.size_m // res
        c = (np.arange(n, dtype=np.float64) + 0.5) * res
        return np.broadcast_to(c[None, :], (n, n)), np.broadcast_to(c[:, None], (n, n))

    def to_map(self, points: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
        """Scene metres -> map coordinates (x, y) in ``crs``."""
        return [(self.x0 + float(e), self.y0 - float(s)) for e, s in points]


def grid_from(spec: Mapping[str, Any]) -> Grid:
    """The grid of the recipe's ``scene`` entry (``crs``, north-west corner ``x0``, ``y0``, ``size_m``)."""
    scene = spec["scene"]
    return Grid(crs=str(scene["crs"]), x0=float(scene["x0"]), y0=float(scene["y0"]), size_m=int(scene["size_m"]))


def burn(grid: Grid, target: np.ndarray, polygon_scene: Sequence[Sequence[float]], value: int) -> None:
    """Set ``target`` to ``value`` at the 10 m pixels whose centre lies inside a scene-metre polygon."""
    geom = Polygon(grid.to_map(polygon_scene))
    inside = rasterio.features.geometry_mask([geom], out_shape=target.shape, transform=grid.transform(),
                                             all_touched=False, invert=True)
    target[inside] = value


def distance_east_of(line: Mapping[str, Any], size: float, e: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Signed perpendicular distance (m) of scene points east of a line given by its ``e`` at the north
    edge (``north_e_m``) and at the south edge (``south_e_m``) of a scene ``size`` metres high."""
    north, south = float(line["north_e_m"]), float(line["south_e_m"])
    offset = e - (north + (south - north) * s / size)
    return offset * math.cos(math.atan2(south - north, size))


def _shore_factor(theta: np.ndarray, harmonics: Sequence[Sequence[float]]) -> np.ndarray:
    """``1 + sum a_k cos(k theta + phi_k)``: the lake's shore roughness by polar angle (radians)."""
    out = np.ones_like(theta)
    for k, amplitude, phase_deg in harmonics:
        out = out + float(amplitude) * np.cos(float(k) * theta + math.radians(float(phase_deg)))
    return out


def lake_radius(lake: Mapping[str, Any], e: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Normalised shore radius of scene points: the lake holds water where it is below the level."""
    ce, cs = lake["centre_m"]
    a, b = lake["semi_axes_m"]
    u = (e - ce) / a
    v = (s - cs) / b
    return np.hypot(u, v) * _shore_factor(np.arctan2(v, u), lake["shore_harmonics"])


def island_mask(lake: Mapping[str, Any], e: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Scene points on the lake's elliptical island."""
    island = lake["island"]
    ce, cs = island["centre_m"]
    a, b = island["semi_axes_m"]
    return ((e - ce) / a) ** 2 + ((s - cs) / b) ** 2 <= 1.0


def lake_ring(lake: Mapping[str, Any], radius: float, n: int = 180) -> list[tuple[float, float]]:
    """Scene-metre points of the lake contour where the normalised shore radius equals ``radius``.

    Parameters
    ----------
    lake
        The recipe's ``layout.lake`` entry.
    radius
        Normalised radius: 1.0 is the full-basin shore, the water line on a day is ``level(day)``.
    n
        Number of vertices (the ring is closed by repeating the first point).
    """
    theta = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    rho = radius / _shore_factor(theta, lake["shore_harmonics"])
    ce, cs = lake["centre_m"]
    a, b = lake["semi_axes_m"]
    points = [(float(ce + a * r * math.cos(t)), float(cs + b * r * math.sin(t))) for r, t in zip(rho, theta)]
    return points + [points[0]]


def lake_level(lake: Mapping[str, Any], day: dt.date) -> float:
    """Normalised water level of the lake on ``day`` (linear between the recipe's keypoints)."""
    keys = np.asarray(lake["level"], dtype=np.float64)
    return float(np.interp(day_of_year(day), keys[:, 0], keys[:, 1]))


def day_of_year(day: dt.date) -> int:
    """Day of the year of ``day``, 1 on 1 January."""
    return day.timetuple().tm_yday
