"""Deterministic synthetic Sentinel-2 L1C demo archive.

The demo archive is one 5.04 km x 5.04 km scene in UTM 33N observed on every date of a recipe
(``fixtures/demo_recipe.json``): crop fields with phenology, a lake whose shore retreats in late summer
around a wooded island, a forest, a town, a gravel pit and grassland, seen through clear skies, thin or
thick cirrus, cumulus with their shadows and full overcast, sometimes cut by a no-data swath edge.

How a date is made
------------------
1. **Surface (10 m).** Every pixel belongs to a cover (a land-cover class, or a field's crop). A cover's
   spectrum on a day is a linear mixture of endmember spectra whose fractions are interpolated between
   keypoints of the recipe (bare soil in winter, green-up, peak, ripening, harvest …). A static texture
   scales the surface part of the signal (the part above the path radiance) by a few percent; fields get
   1.5 %, so they stay spectrally homogeneous.
2. **Sky.** A cloud optical thickness field ``tau`` (10 m) is built from the recipe: analytic cumulus blobs
   with rough edges and internal texture, streaky cirrus, or a textured overcast deck. The shadow uses the
   same field displaced away from the sun (solar position computed for the acquisition time, cloud height
   from the recipe). Shadow scales the surface part by ``T + (1 - T) * diffuse`` with the delta-scaled
   direct transmission ``T = exp(-(1 - g) tau_sun / cos(zenith))``. A cloud layer then mixes linearly with
   the surface: ``TOA = a * albedo + (1 - a) * surface``, with the two-stream reflectance of a conservative
   layer ``a = (1 - g) tau / (2 + (1 - g) tau)`` (``g`` the asymmetry parameter of the cloud type).
3. **Sensor.** Gaussian noise is added per 10 m pixel; the 20 m and 60 m bands are 2x2 and 6x6 block means of
   the 10 m reflectance, so all bands are consistent. DN = ``round(reflectance * 10000)``, plus 1000 from
   processing baseline 04.00 on, clipped to [1, 65535]; no-data pixels (a strip beyond a swath edge, drawn
   on the 60 m grid so all bands agree) are 0.

Ground truth follows the recipe's physical ``cloud_rule`` (cloud where ``tau >= 1``), never a detector's
output. It is written to ``<root>/ground_truth.json`` (per polygon and date: cloud, shadow and no-data
fractions, water area, clear-sky NDVI; per date: sky type, baseline, true cloud cover …) and as 10 m rasters
under ``<root>/truth/`` (``landcover.tif`` and one bit-flag raster per date, see :data:`TRUTH_FLAGS`).

Randomness comes from one seed in the recipe, split per purpose and date with :class:`numpy.random.SeedSequence`,
so the same recipe gives the same bytes on every run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import rasterio
import rasterio.features
import shapely
from affine import Affine
from pyproj import Transformer
from shapely.geometry import Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry

from ..bands import BASELINE_04_OFFSET, NATIVE_RESOLUTION, S2_BANDS, baseline_offset
from ..errors import ArchiveError
from .catalog import ArchiveWriter, CogLayout

#: Bump when a change of this module changes the generated archive; cached archives are then rebuilt.
GENERATOR_VERSION: Final[str] = "2"

#: COG layout of the demo bands, chosen by measurement (``bench/layout.py``, ``bench/results/layout.md``):
#: 256 px tiles without compression gave the fastest cold one-year field query on this small scene.
DEMO_LAYOUT: Final[CogLayout] = CogLayout(blocksize=256, compress="NONE")

#: File names in ``fixtures/`` and in a generated archive root.
RECIPE_FILE: Final[str] = "demo_recipe.json"
POLYGONS_FILE: Final[str] = "demo_polygons.geojson"
GROUND_TRUTH_FILE: Final[str] = "ground_truth.json"
STAMP_FILE: Final[str] = ".polyfis-demo-stamp.json"
TRUTH_DIR: Final[str] = "truth"
LANDCOVER_FILE: Final[str] = "landcover.tif"

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

#: Land-cover codes of ``truth/landcover.tif``; field ``i`` of the recipe has code ``FIELD_CODE_BASE + i``.
LANDCOVER_CODES: Final[dict[str, int]] = {
    "grassland": 1, "forest": 2, "town": 3, "lake": 4, "island": 5, "bare_soil": 6,
}
FIELD_CODE_BASE: Final[int] = 10

_RESOLUTION: Final[int] = 10          # truth grid, metres
_SKY_TYPES: Final[tuple[str, ...]] = ("clear", "cirrus", "cumulus", "overcast")
_N_BANDS: Final[int] = len(S2_BANDS)
_TEXTURE_CELL_M: Final[float] = 40.0
_EDGE_NOISE_CELL_M: Final[float] = 150.0


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------

def default_demo_dir() -> Path:
    """Return where the demo archive is cached by default.

    Returns
    -------
    Path
        ``$POLYFIS_DEMO_DIR`` if set, else ``$XDG_CACHE_HOME/polyfis/demo`` (``~/.cache/polyfis/demo`` when
        ``XDG_CACHE_HOME`` is unset). The folder is not created.
    """
    explicit = os.environ.get("POLYFIS_DEMO_DIR")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "polyfis" / "demo"


def fixtures_dir() -> Path:
    """Return the folder holding the demo recipe and polygons.

    Returns
    -------
    Path
        ``$POLYFIS_FIXTURES`` if set, else the repository's top-level ``fixtures/`` folder.
    """
    explicit = os.environ.get("POLYFIS_FIXTURES")
    if explicit:
        return Path(explicit).expanduser()
    return Path(__file__).resolve().parents[2] / "fixtures"


def demo_polygons() -> dict[str, Any]:
    """Return the demo polygons, a GeoJSON FeatureCollection in EPSG:4326 (lon, lat).

    Each Feature has the properties ``name`` (unique), ``kind`` (``field``, ``water``, ``forest``,
    ``urban``, ``bare`` or ``mixed``), ``homogeneous`` (bool: one surface cover on every date) and
    ``description``.

    Raises
    ------
    ArchiveError
        When ``fixtures_dir() / "demo_polygons.geojson"`` is missing or is not a FeatureCollection.
    """
    return _read_polygons(fixtures_dir() / POLYGONS_FILE)


def build_demo_archive(
    root: str | os.PathLike[str] | None = None,
    *,
    recipe: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> Path:
    """Generate the synthetic demo archive once and return its root.

    Parameters
    ----------
    root
        Archive folder; default :func:`default_demo_dir`. It must be absent, empty or a previous demo
        archive (it holds the stamp file); anything else is left alone and raises.
    recipe
        Recipe JSON; default ``fixtures_dir() / "demo_recipe.json"``. Its ``polygons`` entry names the
        polygon GeoJSON, relative to the recipe's folder.
    force
        Regenerate even when ``root`` already holds an archive of the same recipe.

    Returns
    -------
    Path
        ``root``, holding ``collection.json`` (STAC Collection; one Item per acquisition with 13 band COGs,
        uint16 DN, nodata 0, at 10/20/60 m), ``ground_truth.json``, ``truth/`` rasters, and copies of the
        recipe and polygons.

    Notes
    -----
    The archive is cached: when ``root`` holds a stamp whose digest (SHA-256 of the recipe bytes, the
    polygon bytes and :data:`GENERATOR_VERSION`) matches, the call returns at once without writing. A new
    archive is generated in a temporary sibling folder and renamed into place at the end, so an interrupted
    run never leaves a half archive at ``root``.

    Raises
    ------
    ArchiveError
        When the recipe or polygons are missing or malformed, or ``root`` holds something else.
    """
    target = Path(root).expanduser() if root is not None else default_demo_dir()
    recipe_path = Path(recipe).expanduser() if recipe is not None else fixtures_dir() / RECIPE_FILE
    spec = _read_recipe(recipe_path)
    polygons_path = recipe_path.parent / str(spec.get("polygons", POLYGONS_FILE))
    polygons = _read_polygons(polygons_path)
    digest = _digest(recipe_path, polygons_path)
    if not force and _stamp_matches(target, digest):
        return target
    if target.exists() and not _replaceable(target):
        raise ArchiveError(
            f"Refusing to write the demo archive into {str(target)!r}: it exists and is neither empty nor a "
            f"polyfis demo archive (no {STAMP_FILE}); expected an absent, empty or demo folder"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    # No dot in the name after the leading one: pystac takes a folder name with an "extension" for a file.
    work = Path(tempfile.mkdtemp(prefix=".polyfis-demo-build-", dir=target.parent))
    try:
        _generate(spec, polygons, work, digest)
        shutil.copyfile(recipe_path, work / RECIPE_FILE)
        shutil.copyfile(polygons_path, work / POLYGONS_FILE)
        _write_json(work / STAMP_FILE, {"digest": digest, "generator_version": GENERATOR_VERSION,
                                        "recipe": spec.get("name", recipe_path.stem)})
        _install(work, target, digest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target


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
    path = Path(root) / GROUND_TRUTH_FILE
    try:
        with path.open(encoding="utf-8") as fh:
            data: dict[str, Any] = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ArchiveError(f"Cannot read the demo ground truth {str(path)!r}: {exc}") from exc
    return data


def load_truth_masks(root: str | os.PathLike[str], day: str | dt.date) -> dict[str, np.ndarray]:
    """Read the 10 m truth rasters of one acquisition date of a demo archive.

    Parameters
    ----------
    root
        Archive root written by :func:`build_demo_archive`.
    day
        Acquisition date, ``datetime.date`` or ISO ``YYYY-MM-DD``.

    Returns
    -------
    dict
        One boolean array (rows, cols) per key of :data:`TRUTH_FLAGS`, plus ``landcover`` (uint8 codes,
        :data:`LANDCOVER_CODES`). Row 0 is the northern edge; the grid is the 10 m band grid.

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


# --------------------------------------------------------------------------------------------------
# Recipe, polygons, cache
# --------------------------------------------------------------------------------------------------

def _load_json(path: Path, what: str) -> Any:
    """Parse a JSON input file, naming it and ``what`` it is in the error."""
    try:
        with path.open(encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise ArchiveError(f"Cannot read the {what} {str(path)!r}: {exc}") from exc


def _read_recipe(path: Path) -> dict[str, Any]:
    """Read and minimally validate a recipe; errors name the offending entry."""
    spec = _load_json(path, "demo recipe")
    if not isinstance(spec, dict):
        raise ArchiveError(f"Demo recipe {str(path)!r} is a JSON {type(spec).__name__}, expected an object")
    for key in ("seed", "scene", "baseline", "cloud_rule", "radiative_transfer", "noise", "endmembers",
                "cloud_types", "covers", "layout", "acquisitions"):
        if key not in spec:
            raise ArchiveError(f"Demo recipe {str(path)!r} lacks the entry {key!r}")
    size = int(spec["scene"]["size_m"])
    if size <= 0 or size % 60:
        raise ArchiveError(f"scene.size_m must be a positive multiple of 60 m, got {size}")
    for name, values in list(spec["endmembers"].items()) + [
        (f"cloud_types.{k}.albedo", v["albedo"]) for k, v in spec["cloud_types"].items()
    ]:
        if len(values) != _N_BANDS:
            raise ArchiveError(f"spectrum {name!r} has {len(values)} values, expected {_N_BANDS} (B01…B12)")
    if not spec["acquisitions"]:
        raise ArchiveError("The demo recipe lists no acquisitions")
    for acq in spec["acquisitions"]:
        if acq.get("sky") not in _SKY_TYPES:
            raise ArchiveError(f"acquisition {acq.get('date')!r} has sky {acq.get('sky')!r}, expected one of {_SKY_TYPES}")
    return spec


def _read_polygons(path: Path) -> dict[str, Any]:
    """Read the demo polygons FeatureCollection."""
    data = _load_json(path, "demo polygons")
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise ArchiveError(f"Demo polygons {str(path)!r} must be a GeoJSON FeatureCollection")
    names = [f.get("properties", {}).get("name") for f in data.get("features", [])]
    if not names or None in names or len(set(names)) != len(names):
        raise ArchiveError(f"Demo polygons {str(path)!r} need a unique 'name' property on every feature")
    return data


def _digest(recipe_path: Path, polygons_path: Path) -> str:
    """SHA-256 of the generator version, the recipe bytes and the polygon bytes."""
    sha = hashlib.sha256()
    sha.update(f"polyfis-synthetic/{GENERATOR_VERSION}\n".encode())
    sha.update(recipe_path.read_bytes())
    sha.update(b"\n")
    sha.update(polygons_path.read_bytes())
    return sha.hexdigest()


def _stamp_matches(root: Path, digest: str) -> bool:
    """Whether ``root`` holds a complete archive generated with ``digest``."""
    try:
        with (root / STAMP_FILE).open(encoding="utf-8") as fh:
            stamp = json.load(fh)
    except (OSError, ValueError):
        return False
    return (
        isinstance(stamp, dict)
        and stamp.get("digest") == digest
        and (root / "collection.json").is_file()
        and (root / GROUND_TRUTH_FILE).is_file()
    )


def _replaceable(root: Path) -> bool:
    """A folder may be replaced when it is empty or holds a demo stamp."""
    if not root.is_dir():
        return False
    return (root / STAMP_FILE).is_file() or not any(root.iterdir())


def _install(work: Path, target: Path, digest: str) -> None:
    """Move the finished ``work`` folder to ``target``, replacing an old demo archive there."""
    old: Path | None = None
    if target.exists():
        old = target.with_name(f".polyfis-demo-old-{uuid.uuid4().hex[:8]}")
        try:
            target.rename(old)
        except OSError:
            old = None
    try:
        work.rename(target)
    except OSError:
        # Another process installed an archive meanwhile: keep it if it is the same recipe.
        if _stamp_matches(target, digest):
            shutil.rmtree(work, ignore_errors=True)
        else:
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_json(path: Path, data: Any) -> None:
    with path.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, allow_nan=False)
        fh.write("\n")


# --------------------------------------------------------------------------------------------------
# Scene grid and geometry
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Grid:
    """The scene's pixel grids. Scene metres: ``e`` east of the west edge, ``s`` south of the north edge."""

    crs: str
    x0: float
    y0: float
    size_m: int

    def shape(self, res: int = _RESOLUTION) -> tuple[int, int]:
        n = self.size_m // res
        return n, n

    def transform(self, res: int = _RESOLUTION) -> Affine:
        return Affine(float(res), 0.0, self.x0, 0.0, -float(res), self.y0)

    def centres(self, res: int = _RESOLUTION) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre scene coordinates ``(e, s)``, each (rows, cols) float64."""
        n = self.size_m // res
        c = (np.arange(n, dtype=np.float64) + 0.5) * res
        return np.broadcast_to(c[None, :], (n, n)), np.broadcast_to(c[:, None], (n, n))

    def to_map(self, points: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
        """Scene metres -> map coordinates (x, y) in ``crs``."""
        return [(self.x0 + float(e), self.y0 - float(s)) for e, s in points]


def _grid_from(spec: Mapping[str, Any]) -> _Grid:
    scene = spec["scene"]
    return _Grid(crs=str(scene["crs"]), x0=float(scene["x0"]), y0=float(scene["y0"]), size_m=int(scene["size_m"]))


def _burn(grid: _Grid, target: np.ndarray, polygon_scene: Sequence[Sequence[float]], value: int) -> None:
    """Set ``target`` to ``value`` at the 10 m pixels whose centre lies inside a scene-metre polygon."""
    geom = Polygon(grid.to_map(polygon_scene))
    inside = rasterio.features.geometry_mask([geom], out_shape=target.shape, transform=grid.transform(),
                                             all_touched=False, invert=True)
    target[inside] = value


def _shore_factor(theta: np.ndarray, harmonics: Sequence[Sequence[float]]) -> np.ndarray:
    """``1 + sum a_k cos(k theta + phi_k)``: the lake's shore roughness by polar angle (radians)."""
    out = np.ones_like(theta)
    for k, amplitude, phase_deg in harmonics:
        out = out + float(amplitude) * np.cos(float(k) * theta + math.radians(float(phase_deg)))
    return out


def _lake_radius(lake: Mapping[str, Any], e: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Normalised shore radius of scene points: the lake holds water where it is below the level."""
    ce, cs = lake["centre_m"]
    a, b = lake["semi_axes_m"]
    u = (e - ce) / a
    v = (s - cs) / b
    return np.hypot(u, v) * _shore_factor(np.arctan2(v, u), lake["shore_harmonics"])


def _island_mask(lake: Mapping[str, Any], e: np.ndarray, s: np.ndarray) -> np.ndarray:
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
    return float(np.interp(_day_of_year(day), keys[:, 0], keys[:, 1]))


def _day_of_year(day: dt.date) -> int:
    return day.timetuple().tm_yday


# --------------------------------------------------------------------------------------------------
# Randomness
# --------------------------------------------------------------------------------------------------

_PURPOSES: Final[dict[str, int]] = {
    "texture": 1, "town": 2, "noise": 3, "cloud_edge": 4, "cloud_texture": 5, "puffs": 6, "cirrus": 7,
    "overcast": 8,
}


def _rng(seed: int, purpose: str, index: int = 0) -> np.random.Generator:
    """An independent generator per (seed, purpose, date index)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _PURPOSES[purpose], int(index)]))


class _ValueNoise:
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
            nu = int(math.ceil((float(u.max()) - umin) / cell)) + 3
            nv = int(math.ceil((float(v.max()) - vmin) / cell)) + 3
            lattice = rng.uniform(-1.0, 1.0, size=(nv, nu))
            self._layers.append((cell, umin, vmin, lattice, 0.5**k))
        self._norm = sum(layer[4] for layer in self._layers)

    def _frame(self, e: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ae, as_ = self._along
        along = e * ae + s * as_
        across = -e * as_ + s * ae
        return along / self._stretch, across

    def __call__(self, e: np.ndarray, s: np.ndarray) -> np.ndarray:
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


# --------------------------------------------------------------------------------------------------
# Sun
# --------------------------------------------------------------------------------------------------

def _sun_position(when: dt.datetime, lon: float, lat: float) -> tuple[float, float]:
    """Solar elevation and azimuth (degrees, azimuth clockwise from north), NOAA low-precision formulas.

    Accurate to a few tenths of a degree, plenty for shadow placement.
    """
    utc = when.astimezone(dt.timezone.utc)
    hours = utc.hour + utc.minute / 60.0 + utc.second / 3600.0
    gamma = 2.0 * math.pi / 365.0 * (_day_of_year(utc.date()) - 1 + (hours - 12.0) / 24.0)
    eq_time = 229.18 * (0.000075 + 0.001868 * math.cos(gamma) - 0.032077 * math.sin(gamma)
                        - 0.014615 * math.cos(2 * gamma) - 0.040849 * math.sin(2 * gamma))
    decl = (0.006918 - 0.399912 * math.cos(gamma) + 0.070257 * math.sin(gamma)
            - 0.006758 * math.cos(2 * gamma) + 0.000907 * math.sin(2 * gamma)
            - 0.002697 * math.cos(3 * gamma) + 0.00148 * math.sin(3 * gamma))
    solar_minutes = hours * 60.0 + eq_time + 4.0 * lon
    hour_angle = math.radians(solar_minutes / 4.0 - 180.0)
    phi = math.radians(lat)
    cos_zenith = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(hour_angle)
    elevation = 90.0 - math.degrees(math.acos(max(-1.0, min(1.0, cos_zenith))))
    azimuth = math.degrees(math.atan2(math.sin(hour_angle),
                                      math.cos(hour_angle) * math.sin(phi) - math.tan(decl) * math.cos(phi)))
    return elevation, (azimuth + 180.0) % 360.0


# --------------------------------------------------------------------------------------------------
# Surface
# --------------------------------------------------------------------------------------------------

@dataclass
class _Surface:
    """Static surface layout: land-cover codes, per-pixel material rows and texture."""

    landcover: np.ndarray        # uint8 (rows, cols), LANDCOVER_CODES / fields
    material: np.ndarray         # intp (rows, cols): row of ``rows``
    rows: list[tuple[str, int]]  # (cover name, shift in days)
    texture: np.ndarray          # float32 (rows, cols), roughly N(0, 1)
    lake_radius: np.ndarray      # float64 (rows, cols), normalised shore radius
    basin: np.ndarray            # bool: lake basin (water at full level), island excluded
    mud_row: int                 # row used for the exposed lake bed


def _build_surface(spec: Mapping[str, Any], grid: _Grid) -> _Surface:
    """Rasterise the layout (pixel-centre rule, later layers win: forest, town, gravel pit, fields, lake,
    island) and assign each pixel its cover row; the town gets blocks of roof, asphalt and garden."""
    layout = spec["layout"]
    seed = int(spec["seed"])
    shape_10 = grid.shape()
    e, s = grid.centres()
    landcover = np.full(shape_10, LANDCOVER_CODES["grassland"], dtype=np.uint8)
    _burn(grid, landcover, layout["forest"], LANDCOVER_CODES["forest"])
    _burn(grid, landcover, layout["town"]["polygon"], LANDCOVER_CODES["town"])
    _burn(grid, landcover, layout["bare_soil"], LANDCOVER_CODES["bare_soil"])
    for i, field in enumerate(layout["fields"]):
        _burn(grid, landcover, field["polygon"], FIELD_CODE_BASE + i)
    lake = layout["lake"]
    radius = _lake_radius(lake, e, s)
    island = _island_mask(lake, e, s)
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
    block = max(1, int(town["block_m"]) // _RESOLUTION)
    names = list(town["materials"])
    shares = np.asarray([town["materials"][n] for n in names], dtype=np.float64)
    n_blocks = -(-shape_10[0] // block)
    picks = _rng(seed, "town").choice(len(names), size=(n_blocks, n_blocks), p=shares / shares.sum())
    picks = np.repeat(np.repeat(picks, block, axis=0), block, axis=1)[: shape_10[0], : shape_10[1]]
    town_rows = np.asarray([row_of(n) for n in names], dtype=np.intp)
    in_town = landcover == LANDCOVER_CODES["town"]
    material[in_town] = town_rows[picks[in_town]]

    rng = _rng(seed, "texture")
    smooth = _ValueNoise(rng, _TEXTURE_CELL_M, (0.0, grid.size_m, 0.0, grid.size_m), octaves=2)(e, s)
    speckle = rng.standard_normal(shape_10)
    texture = (2.0 * smooth + 0.5 * speckle).astype(np.float32)
    return _Surface(landcover, material, rows, texture, radius, basin, mud_row)


def _cover_spectrum(spec: Mapping[str, Any], cover: str, doy: float) -> np.ndarray:
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


# --------------------------------------------------------------------------------------------------
# Sky
# --------------------------------------------------------------------------------------------------

@dataclass
class _Sky:
    """Cloud optical thickness on the line of sight (``tau``) and on the line to the sun (``tau_sun``)."""

    kind: str
    tau: np.ndarray
    tau_sun: np.ndarray
    cloud_type: str | None
    shadow_offset_m: tuple[float, float]


def _blob_tau(cloud: Mapping[str, Any], params: Mapping[str, Any], edge: _ValueNoise, tex: _ValueNoise,
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


def _build_sky(spec: Mapping[str, Any], grid: _Grid, acq: Mapping[str, Any], index: int,
               elevation: float, azimuth: float) -> _Sky:
    """Cloud optical thickness of one acquisition, on the line of sight and on the line to the sun.

    The field is a function of scene metres, so the shadow is the same function evaluated at points moved
    towards the sun by ``height / tan(elevation)``.
    """
    kind = str(acq["sky"])
    seed = int(spec["seed"])
    e, s = grid.centres()
    zeros = np.zeros(e.shape, dtype=np.float64)
    if kind == "clear":
        return _Sky(kind, zeros, zeros, None, (0.0, 0.0))
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
        noise = _ValueNoise(_rng(seed, "overcast", index), float(params["texture_cell_m"]), bounds, octaves=3)

        def field(pe: np.ndarray, ps: np.ndarray) -> np.ndarray:
            return float(acq["tau"]) * (1.0 + float(acq["variability"]) * noise(pe, ps))

    elif kind == "cirrus":
        noise = _ValueNoise(_rng(seed, "cirrus", index), float(params["texture_cell_m"]), bounds, octaves=3,
                            angle_deg=float(acq.get("streak_angle_deg", 0.0)),
                            stretch=float(params["streak_stretch"]))
        band = acq.get("band")

        def field(pe: np.ndarray, ps: np.ndarray) -> np.ndarray:
            tau = float(acq["tau"]) * (1.0 + float(acq["variability"]) * noise(pe, ps))
            if band is not None:
                distance = np.abs(_distance_east_of(band, size, pe, ps))
                ramp = (float(band["half_width_m"]) + float(band["edge_m"]) - distance) / float(band["edge_m"])
                tau = tau * np.clip(ramp, 0.0, 1.0)
            return tau

    else:  # cumulus
        clouds = [dict(c) for c in acq.get("clouds", [])]
        puffs = acq.get("puffs")
        if puffs:
            prng = _rng(seed, "puffs", index)
            for _ in range(int(puffs["count"])):
                radius = prng.uniform(*puffs["radius_m"])
                aspect = prng.uniform(0.7, 1.3)
                clouds.append({
                    "centre_m": [prng.uniform(0.0, size), prng.uniform(0.0, size)],
                    "semi_axes_m": [radius * aspect, radius / aspect],
                    "angle_deg": prng.uniform(0.0, 180.0),
                    "tau": prng.uniform(*puffs["tau"]),
                })
        edge = _ValueNoise(_rng(seed, "cloud_edge", index), _EDGE_NOISE_CELL_M, bounds, octaves=2)
        tex = _ValueNoise(_rng(seed, "cloud_texture", index), float(params["texture_cell_m"]), bounds, octaves=2)

        def field(pe: np.ndarray, ps: np.ndarray) -> np.ndarray:
            total = np.zeros(pe.shape, dtype=np.float64)
            for cloud in clouds:
                total += _blob_tau(cloud, params, edge, tex, pe, ps)
            return total

    tau = np.maximum(field(e, s), 0.0)
    tau_sun = np.maximum(field(e - shift_e, s - shift_s), 0.0)
    return _Sky(kind, tau, tau_sun, kind, (shift_e, shift_s))


def _distance_east_of(line: Mapping[str, Any], size: float, e: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Signed perpendicular distance (m) of scene points east of a line given by its ``e`` at the north
    edge (``north_e_m``) and at the south edge (``south_e_m``)."""
    north, south = float(line["north_e_m"]), float(line["south_e_m"])
    offset = e - (north + (south - north) * s / size)
    return offset * math.cos(math.atan2(south - north, size))


def _nodata_mask(acq: Mapping[str, Any], grid: _Grid) -> np.ndarray:
    """No-data strip at 60 m (the coarsest band), repeated onto the 10 m grid."""
    strip = acq.get("nodata")
    if not strip:
        return np.zeros(grid.shape(), dtype=bool)
    e, s = grid.centres(60)
    distance = _distance_east_of(strip, float(grid.size_m), e, s)
    if strip.get("side", "east") == "west":
        distance = -distance
    coarse = (distance >= 0.0) & (distance <= float(strip.get("width_m", 1e9)))
    return np.repeat(np.repeat(coarse, 6, axis=0), 6, axis=1)


# --------------------------------------------------------------------------------------------------
# One acquisition
# --------------------------------------------------------------------------------------------------

def _two_stream(tau: np.ndarray, asymmetry: float) -> np.ndarray:
    """Reflectance weight of a conservative cloud layer: (1 - g) tau / (2 + (1 - g) tau)."""
    scaled = (1.0 - asymmetry) * tau
    return scaled / (2.0 + scaled)


def _reflectance(spec: Mapping[str, Any], surface: _Surface, sky: _Sky, water: np.ndarray, day: dt.date,
                 elevation: float, index: int) -> tuple[np.ndarray, np.ndarray]:
    """TOA reflectance (13, rows, cols) float32 at 10 m, and the cloud-free surface (13, rows, cols)."""
    rt = spec["radiative_transfer"]
    doy = float(_day_of_year(day))
    lut = np.stack([_cover_spectrum(spec, cover, doy - shift) for cover, shift in surface.rows])  # (rows, 13)
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
    rng = _rng(int(spec["seed"]), "noise", index)
    sigma = float(noise["relative"]) * toa + float(noise["absolute"])
    toa = toa + sigma * rng.standard_normal(toa.shape, dtype=np.float32)
    return np.maximum(toa, 0.0001).astype(np.float32), clear


def _block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return array
    rows, cols = array.shape
    return array.reshape(rows // factor, factor, cols // factor, factor).mean(axis=(1, 3))


def _band_dns(grid: _Grid, toa: np.ndarray, nodata: np.ndarray, offset: int) -> dict[str, tuple[np.ndarray, Affine]]:
    """Per band at native resolution: uint16 DN (nodata 0) and its transform."""
    out: dict[str, tuple[np.ndarray, Affine]] = {}
    for b, name in enumerate(S2_BANDS):
        res = NATIVE_RESOLUTION[name]
        factor = res // _RESOLUTION
        values = _block_mean(toa[b], factor)
        dn = np.clip(np.rint(values * 10000.0) + offset, 1, 65535).astype(np.uint16)
        dn[nodata[::factor, ::factor]] = 0
        out[name] = (dn, grid.transform(res))
    return out


# --------------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------------

def _polygon_masks(polygons: Mapping[str, Any], grid: _Grid) -> dict[str, tuple[dict[str, Any], np.ndarray]]:
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
    return round(count / total, 6) if total else None


def _polygon_truth(mask: np.ndarray, flags: np.ndarray, clear: np.ndarray, sky: str) -> dict[str, Any]:
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
        "water_area_m2": float(water * _RESOLUTION * _RESOLUTION),
        "water_fraction": _fraction(water, n),
        "clear_sky_ndvi": round((nir - red) / (nir + red), 6) if n else None,
    }


def _write_truth_raster(path: Path, array: np.ndarray, grid: _Grid) -> None:
    profile = {
        "driver": "GTiff", "width": array.shape[1], "height": array.shape[0], "count": 1, "dtype": "uint8",
        "crs": grid.crs, "transform": grid.transform(), "compress": "deflate", "tiled": True,
        "blockxsize": 256, "blockysize": 256,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array.astype(np.uint8, copy=False), 1)


# --------------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------------

def _generate(spec: Mapping[str, Any], polygons: Mapping[str, Any], out: Path, digest: str) -> None:
    """Write the whole archive into ``out`` (an empty folder)."""
    grid = _grid_from(spec)
    scene = spec["scene"]
    rule = spec["cloud_rule"]
    min_tau = float(rule["min_optical_thickness"])
    thick_tau = float(rule["thick_optical_thickness"])
    baseline = spec["baseline"]
    switch = dt.date.fromisoformat(str(baseline["switch_date"]))
    lake = spec["layout"]["lake"]
    hh, mm, ss = (int(p) for p in str(scene["time_utc"]).split(":"))
    centre_x, centre_y = grid.x0 + grid.size_m / 2.0, grid.y0 - grid.size_m / 2.0
    lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(centre_x, centre_y)

    surface = _build_surface(spec, grid)
    masks = _polygon_masks(polygons, grid)
    truth_dir = out / TRUTH_DIR
    truth_dir.mkdir(parents=True)
    _write_truth_raster(truth_dir / LANDCOVER_FILE, surface.landcover, grid)

    writer = ArchiveWriter(out, layout=DEMO_LAYOUT, title="Sentinel-2 L1C (polyfis synthetic demo)",
                           description="Deterministic synthetic Sentinel-2 L1C scenes generated by polyfis "
                                       "from fixtures/demo_recipe.json; see ground_truth.json.")
    dates: dict[str, Any] = {}
    per_polygon: dict[str, dict[str, Any]] = {name: {} for name in masks}
    seen: set[str] = set()
    for index, acq in enumerate(spec["acquisitions"]):
        day = dt.date.fromisoformat(str(acq["date"]))
        iso = day.isoformat()
        if iso in seen:
            raise ArchiveError(f"acquisition date {iso} appears twice in the demo recipe; expected unique dates")
        seen.add(iso)
        when = dt.datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=dt.timezone.utc)
        elevation, azimuth = _sun_position(when, lon, lat)
        level = lake_level(lake, day)
        water = (surface.lake_radius < level) & surface.basin
        sky = _build_sky(spec, grid, acq, index, elevation, azimuth)
        nodata = _nodata_mask(acq, grid)
        toa, clear = _reflectance(spec, surface, sky, water, day, elevation, index)

        haze = sky.tau > 1e-6
        cloud = sky.tau >= min_tau
        flags = np.zeros(grid.shape(), dtype=np.uint8)
        flags[cloud] |= TRUTH_FLAGS["cloud"]
        flags[(sky.tau_sun >= min_tau) & ~cloud] |= TRUTH_FLAGS["shadow"]
        flags[haze] |= TRUTH_FLAGS["haze"]
        flags[sky.tau >= thick_tau] |= TRUTH_FLAGS["thick"]
        if sky.kind == "cirrus":
            flags[haze] |= TRUTH_FLAGS["cirrus"]
        flags[nodata] = TRUTH_FLAGS["nodata"]
        flags[water] |= TRUTH_FLAGS["water"]
        _write_truth_raster(truth_dir / f"{iso}.tif", flags, grid)

        processing_baseline = str(baseline["after"] if day >= switch else baseline["before"])
        offset = baseline_offset(processing_baseline)
        valid = ~nodata
        n_valid = int(np.count_nonzero(valid))
        cloud_cover = 100.0 * np.count_nonzero(cloud & valid) / n_valid if n_valid else 0.0
        shadow_cover = 100.0 * np.count_nonzero(flags & TRUTH_FLAGS["shadow"]) / n_valid if n_valid else 0.0
        item_id = (f"S2A_MSIL1C_{day:%Y%m%d}T{hh:02d}{mm:02d}{ss:02d}_N{processing_baseline.replace('.', '')}"
                   f"_R{int(scene['relative_orbit']):03d}_T{scene['tile']}")
        writer.add(
            item_id, when, grid.crs, _band_dns(grid, toa, nodata, offset),
            cloud_cover=round(cloud_cover, 4), processing_baseline=processing_baseline,
            extra_properties={"platform": scene.get("platform", "sentinel-2a"), "s2:mgrs_tile": scene["tile"],
                              "polyfis:sky": sky.kind},
        )
        dates[iso] = {
            "item_id": item_id,
            "datetime": when.isoformat().replace("+00:00", "Z"),
            "sky": sky.kind,
            "processing_baseline": processing_baseline,
            "dn_offset": offset,
            "cloud_cover": round(cloud_cover, 4),
            "shadow_cover": round(shadow_cover, 4),
            "nodata_cover": round(100.0 * np.count_nonzero(nodata) / nodata.size, 4),
            "max_optical_thickness": round(float(sky.tau.max()), 4),
            "lake_level": round(level, 6),
            "lake_water_area_m2": float(np.count_nonzero(water) * _RESOLUTION * _RESOLUTION),
            "sun_elevation_deg": round(elevation, 3),
            "sun_azimuth_deg": round(azimuth, 3),
            "shadow_offset_m": [round(sky.shadow_offset_m[0], 1), round(sky.shadow_offset_m[1], 1)],
        }
        for name, (_, mask) in masks.items():
            per_polygon[name][iso] = _polygon_truth(mask, flags, clear, sky.kind)

    writer.save(metadata={"synthetic": True, "generator_version": GENERATOR_VERSION, "recipe_sha256": digest,
                          "ground_truth": GROUND_TRUTH_FILE, "recipe": RECIPE_FILE, "polygons": POLYGONS_FILE})
    landcover_codes = dict(LANDCOVER_CODES)
    for i, field in enumerate(spec["layout"]["fields"]):
        landcover_codes[f"field:{field['name']}"] = FIELD_CODE_BASE + i
    truth = {
        "generator": {"name": "stats.archive.synthetic", "version": GENERATOR_VERSION, "recipe_sha256": digest,
                      "seed": int(spec["seed"])},
        "scene": {"crs": grid.crs, "resolution_m": _RESOLUTION, "shape": list(grid.shape()),
                  "transform": list(grid.transform())[:6], "tile": scene["tile"], "centre_lonlat": [lon, lat],
                  "dn_offset_from_04_00": BASELINE_04_OFFSET, "baseline_switch_date": switch.isoformat()},
        "cloud_rule": dict(rule),
        "landcover_codes": landcover_codes,
        "truth_flags": dict(TRUTH_FLAGS),
        "dates": dates,
        "polygons": {
            name: {
                "kind": props.get("kind"),
                "homogeneous": props.get("homogeneous"),
                "description": props.get("description"),
                "n_pixels": int(np.count_nonzero(mask)),
                "dates": per_polygon[name],
            }
            for name, (props, mask) in masks.items()
        },
    }
    _write_json(out / GROUND_TRUTH_FILE, truth)
