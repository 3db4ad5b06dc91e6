"""Reading the demo's inputs: the recipe JSON and the polygon GeoJSON, checked before anything is generated."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from ...bands import S2_BANDS
from ...errors import ArchiveError
from .files import POLYGONS_FILE, fixtures_dir, load_json

_SKY_TYPES: Final[tuple[str, ...]] = ("clear", "cirrus", "cumulus", "overcast")
_N_BANDS: Final[int] = len(S2_BANDS)


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
    return read_polygons(fixtures_dir() / POLYGONS_FILE)


def read_recipe(path: Path) -> dict[str, Any]:
    """Read and minimally validate a demo recipe.

    Raises
    ------
    ArchiveError
        When the file is not a JSON object, lacks a top-level entry, has a scene size that is not a positive
        multiple of 60 m, a spectrum without one value per band, no acquisitions, or an unknown sky type; the
        message names the offending entry.
    """
    spec = load_json(path, "demo recipe")
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
            raise ArchiveError(
                f"acquisition {acq.get('date')!r} has sky {acq.get('sky')!r}, expected one of {_SKY_TYPES}"
            )
    return spec


def read_polygons(path: Path) -> dict[str, Any]:
    """Read the demo polygons FeatureCollection.

    Raises
    ------
    ArchiveError
        When the file is not a GeoJSON FeatureCollection or a feature lacks a unique ``name`` property.
    """
    data = load_json(path, "demo polygons")
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise ArchiveError(f"Demo polygons {str(path)!r} must be a GeoJSON FeatureCollection")
    names = [f.get("properties", {}).get("name") for f in data.get("features", [])]
    if not names or None in names or len(set(names)) != len(names):
        raise ArchiveError(f"Demo polygons {str(path)!r} need a unique 'name' property on every feature")
    return data
