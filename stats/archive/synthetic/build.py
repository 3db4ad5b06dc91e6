"""Building the demo archive: the cached, atomic :func:`build_demo_archive` and the date-by-date generation
that writes the band COGs, the STAC catalogue and the ground truth."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
from pyproj import Transformer

from ...bands import BASELINE_04_OFFSET, baseline_offset
from ...errors import ArchiveError
from ...settings import Settings
from ..catalog import ArchiveWriter, CogLayout
from .acquisition import band_dns, nodata_mask, reflectance
from .cache import GENERATOR_VERSION, install, recipe_digest, replaceable, stamp_matches
from .files import (
    GROUND_TRUTH_FILE,
    LANDCOVER_FILE,
    POLYGONS_FILE,
    RECIPE_FILE,
    STAMP_FILE,
    TRUTH_DIR,
    default_demo_dir,
    fixtures_dir,
    write_json,
)
from .recipe import read_polygons, read_recipe
from .scene import RESOLUTION, grid_from, lake_level
from .sky import build_sky
from .sun import sun_position
from .surface import FIELD_CODE_BASE, LANDCOVER_CODES, build_surface
from .truth import TRUTH_FLAGS, flag_raster, polygon_masks, polygon_truth, write_truth_raster

#: COG layout of the demo bands, chosen by measurement (``bench/layout.py``, ``bench/results/layout.md``):
#: 256 px tiles without compression gave the fastest cold one-year field query on this small scene.
DEMO_LAYOUT: Final[CogLayout] = CogLayout(blocksize=256, compress="NONE")


def build_demo_archive(
    root: str | os.PathLike[str] | None = None,
    *,
    recipe: str | os.PathLike[str] | None = None,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
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
    progress
        Called with (acquisitions written, acquisitions in all) while a new archive is generated.

    Returns
    -------
    Path
        ``root``, holding ``collection.json`` (STAC Collection; one Item per acquisition with 13 band COGs,
        uint16 DN, nodata 0, at 10/20/60 m), ``ground_truth.json``, ``truth/`` rasters, and copies of the
        recipe and polygons.

    Notes
    -----
    The archive is cached: when ``root`` holds a stamp whose digest (SHA-256 of the recipe bytes, the
    polygon bytes and :data:`~stats.archive.synthetic.cache.GENERATOR_VERSION`) matches, the call returns at
    once without writing. A new archive is generated in a temporary sibling folder and renamed into place at
    the end, so an interrupted run never leaves a half archive at ``root``.

    Raises
    ------
    ArchiveError
        When the recipe or polygons are missing or malformed, or ``root`` holds something else.
    """
    target = Path(root).expanduser() if root is not None else default_demo_dir()
    recipe_path = Path(recipe).expanduser() if recipe is not None else fixtures_dir() / RECIPE_FILE
    spec = read_recipe(recipe_path)
    polygons_path = recipe_path.parent / str(spec.get("polygons", POLYGONS_FILE))
    polygons = read_polygons(polygons_path)
    digest = recipe_digest(recipe_path, polygons_path)
    if not force and stamp_matches(target, digest):
        return target
    if target.exists() and not replaceable(target):
        raise ArchiveError(
            f"Refusing to write the demo archive into {str(target)!r}: it exists and is neither empty nor a "
            f"polyfis demo archive (no {STAMP_FILE}); expected an absent, empty or demo folder"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    # No dot in the name after the leading one: pystac takes a folder name with an "extension" for a file.
    work = Path(tempfile.mkdtemp(prefix=".polyfis-demo-build-", dir=target.parent))
    try:
        _generate(spec, polygons, work, digest, progress)
        shutil.copyfile(recipe_path, work / RECIPE_FILE)
        shutil.copyfile(polygons_path, work / POLYGONS_FILE)
        write_json(work / STAMP_FILE, {"digest": digest, "generator_version": GENERATOR_VERSION,
                                       "recipe": spec.get("name", recipe_path.stem)})
        install(work, target, digest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target


def demo_archive_of(settings: Settings, *,
                    progress: Callable[[int, int], None] | None = None) -> Path:
    """The demo archive of ``settings`` (their demo folder, built from their fixtures), built on first use."""
    return build_demo_archive(settings.demo_path, recipe=settings.fixtures_path / RECIPE_FILE, progress=progress)


def _generate(spec: Mapping[str, Any], polygons: Mapping[str, Any], out: Path, digest: str,
              progress: Callable[[int, int], None] | None = None) -> None:
    """Write the whole archive into ``out`` (an empty folder)."""
    grid = grid_from(spec)
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

    surface = build_surface(spec, grid)
    masks = polygon_masks(polygons, grid)
    truth_dir = out / TRUTH_DIR
    truth_dir.mkdir(parents=True)
    write_truth_raster(truth_dir / LANDCOVER_FILE, surface.landcover, grid)

    writer = ArchiveWriter(out, layout=DEMO_LAYOUT, title="Sentinel-2 L1C (polyfis synthetic demo)",
                           description="Deterministic synthetic Sentinel-2 L1C scenes generated by polyfis "
                                       "from stats/fixtures/demo_recipe.json; see ground_truth.json.")
    dates: dict[str, Any] = {}
    per_polygon: dict[str, dict[str, Any]] = {name: {} for name in masks}
    seen: set[str] = set()
    for index, acq in enumerate(spec["acquisitions"]):
        day = dt.date.fromisoformat(str(acq["date"]))
        iso = day.isoformat()
        if iso in seen:
            raise ArchiveError(f"acquisition date {iso} appears twice in the demo recipe; expected unique dates")
        seen.add(iso)
        when = dt.datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=dt.UTC)
        elevation, azimuth = sun_position(when, lon, lat)
        level = lake_level(lake, day)
        water = (surface.lake_radius < level) & surface.basin
        sky = build_sky(spec, grid, acq, index, elevation, azimuth)
        nodata = nodata_mask(acq, grid)
        toa, clear = reflectance(spec, surface, sky, water, day, elevation, index)
        flags = flag_raster(sky, nodata, water, min_tau, thick_tau)
        write_truth_raster(truth_dir / f"{iso}.tif", flags, grid)

        processing_baseline = str(baseline["after"] if day >= switch else baseline["before"])
        offset = baseline_offset(processing_baseline)
        n_valid = int(np.count_nonzero(~nodata))
        cloud_cover = 100.0 * np.count_nonzero(flags & TRUTH_FLAGS["cloud"]) / n_valid if n_valid else 0.0
        shadow_cover = 100.0 * np.count_nonzero(flags & TRUTH_FLAGS["shadow"]) / n_valid if n_valid else 0.0
        item_id = (f"S2A_MSIL1C_{day:%Y%m%d}T{hh:02d}{mm:02d}{ss:02d}_N{processing_baseline.replace('.', '')}"
                   f"_R{int(scene['relative_orbit']):03d}_T{scene['tile']}")
        writer.add(
            item_id, when, grid.crs, band_dns(grid, toa, nodata, offset),
            cloud_cover=round(cloud_cover, 4), processing_baseline=processing_baseline,
            extra_properties={"platform": scene.get("platform", "sentinel-2a"), "s2:mgrs_tile": scene["tile"],
                              "polyfis:sky": sky.kind, "view:sun_azimuth": round(azimuth, 3),
                              "view:sun_elevation": round(elevation, 3)},
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
            "lake_water_area_m2": float(np.count_nonzero(water) * RESOLUTION * RESOLUTION),
            "sun_elevation_deg": round(elevation, 3),
            "sun_azimuth_deg": round(azimuth, 3),
            "shadow_offset_m": [round(sky.shadow_offset_m[0], 1), round(sky.shadow_offset_m[1], 1)],
        }
        for name, (_, mask) in masks.items():
            per_polygon[name][iso] = polygon_truth(mask, flags, clear, sky.kind)
        if progress is not None:
            progress(index + 1, len(spec["acquisitions"]))

    writer.save(metadata={"synthetic": True, "generator_version": GENERATOR_VERSION, "recipe_sha256": digest,
                          "ground_truth": GROUND_TRUTH_FILE, "recipe": RECIPE_FILE, "polygons": POLYGONS_FILE})
    landcover_codes = dict(LANDCOVER_CODES)
    for i, field in enumerate(spec["layout"]["fields"]):
        landcover_codes[f"field:{field['name']}"] = FIELD_CODE_BASE + i
    truth = {
        "generator": {"name": "stats.archive.synthetic", "version": GENERATOR_VERSION, "recipe_sha256": digest,
                      "seed": int(spec["seed"])},
        "scene": {"crs": grid.crs, "resolution_m": RESOLUTION, "shape": list(grid.shape()),
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
    write_json(out / GROUND_TRUTH_FILE, truth)
