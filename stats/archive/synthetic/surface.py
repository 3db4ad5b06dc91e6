"""The ground of the demo scene: its land-cover layout, per-pixel materials and texture, and cover spectra.

A cover's spectrum on a day is a linear mixture of the recipe's endmember spectra whose fractions are
interpolated between the cover's keypoints; the static texture later scales the part of the signal above the
path radiance by a few percent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from ...errors import ArchiveError
from .randomness import ValueNoise, rng
from .scene import RESOLUTION, Grid, burn, island_mask, lake_radius

#: Land-cover codes of ``truth/landcover.tif``; field ``i`` of the recipe has code ``FIELD_CODE_BASE + i``.
LANDCOVER_CODES: Final[dict[str, int]] = {
    "grassland": 1, "forest": 2, "town": 3, "lake": 4, "island": 5, "bare_soil": 6,
}
FIELD_CODE_BASE: Final[int] = 10

_TEXTURE_CELL_M: Final[float] = 40.0


@dataclass
class Surface:
    """Static surface layout: land-cover codes, per-pixel material rows and texture."""

    landcover: np.ndarray        # uint8 (rows, cols), LANDCOVER_CODES / fields
    material: np.ndarray         # intp (rows, cols): row of ``rows``
    rows: list[tuple[str, int]]  # (cover name, shift in days)
    texture: np.ndarray          # float32 (rows, cols), roughly N(0, 1)
    lake_radius: np.ndarray      # float64 (rows, cols), normalised shore radius
    basin: np.ndarray            # bool: lake basin (water at full level), island excluded
    mud_row: int                 # row used for the exposed lake bed


def build_surface(spec: Mapping[str, Any], grid: Grid) -> Surface:
    """Rasterise the layout (pixel-centre rule, later layers win: forest, town, gravel pit, fields, lake,
    island) and assign each pixel its cover row; the town gets blocks of roof, asphalt and garden."""
    layout = spec["layout"]
    seed = int(spec["seed"])
    shape_10 = grid.shape()
    e, s = grid.centres()
    landcover = np.full(shape_10, LANDCOVER_CODES["grassland"], dtype=np.uint8)
    burn(grid, landcover, layout["forest"], LANDCOVER_CODES["forest"])
    burn(grid, landcover, layout["town"]["polygon"], LANDCOVER_CODES["town"])
    burn(grid, landcover, layout["bare_soil"], LANDCOVER_CODES["bare_soil"])
    for i, field in enumerate(layout["fields"]):
        burn(grid, landcover, field["polygon"], FIELD_CODE_BASE + i)
    lake = layout["lake"]
    radius = lake_radius(lake, e, s)
    island = island_mask(lake, e, s)
    basin = (radius < 1.0) & ~island
    landcover[basin] = LANDCOVER_CODES["lake"]
    landcover[island] = LANDCOVER_CODES["island"]

    rows: list[tuple[str, int]] = []

    def row_of(cover: str, shift: int = 0) -> int:
        if cover not in spec["covers"]:
            raise ArchiveError(f"unknown cover {cover!r} in the demo recipe; expected one of {sorted(spec['covers'])}")
        key = (cover, int(shift))
        if key not in rows:
            rows.append(key)
        return rows.index(key)

    material = np.zeros(shape_10, dtype=np.intp)
    material[landcover == LANDCOVER_CODES["grassland"]] = row_of(str(layout["background"]))
    material[landcover == LANDCOVER_CODES["forest"]] = row_of("forest")
    material[landcover == LANDCOVER_CODES["island"]] = row_of("island")
    material[landcover == LANDCOVER_CODES["bare_soil"]] = row_of("gravel")
    material[basin] = row_of("water")
    mud_row = row_of("mud")
    for i, field in enumerate(layout["fields"]):
        material[landcover == FIELD_CODE_BASE + i] = row_of(str(field["crop"]), int(field.get("shift_days", 0)))

    # Town: blocks of block_m x block_m drawn from the material shares.
    town = layout["town"]
    block = max(1, int(town["block_m"]) // RESOLUTION)
    names = list(town["materials"])
    shares = np.asarray([town["materials"][n] for n in names], dtype=np.float64)
    n_blocks = -(-shape_10[0] // block)
    picks = rng(seed, "town").choice(len(names), size=(n_blocks, n_blocks), p=shares / shares.sum())
    picks = np.repeat(np.repeat(picks, block, axis=0), block, axis=1)[: shape_10[0], : shape_10[1]]
    town_rows = np.asarray([row_of(n) for n in names], dtype=np.intp)
    in_town = landcover == LANDCOVER_CODES["town"]
    material[in_town] = town_rows[picks[in_town]]

    texture_rng = rng(seed, "texture")
    smooth = ValueNoise(texture_rng, _TEXTURE_CELL_M, (0.0, grid.size_m, 0.0, grid.size_m), octaves=2)(e, s)
    speckle = texture_rng.standard_normal(shape_10)
    texture = (2.0 * smooth + 0.5 * speckle).astype(np.float32)
    return Surface(landcover, material, rows, texture, radius, basin, mud_row)


def cover_spectrum(spec: Mapping[str, Any], cover: str, doy: float) -> np.ndarray:
    """TOA reflectance (13,) of a cover on a day of year: the keypoint-interpolated endmember mixture."""
    info = spec["covers"][cover]
    endmembers = spec["endmembers"]
    names = list(info["endmembers"])
    keys = np.asarray(info["keypoints"], dtype=np.float64)
    day = (doy - 1.0) % 365.0 + 1.0
    fractions = [float(np.interp(day, keys[:, 0], keys[:, 1 + j])) for j in range(len(names))]
    rest = 1.0 - sum(fractions)
    out = rest * np.asarray(endmembers[info["rest"]], dtype=np.float64)
    for name, fraction in zip(names, fractions):
        out = out + fraction * np.asarray(endmembers[name], dtype=np.float64)
    return out / 10000.0
