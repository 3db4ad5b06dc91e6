"""The benchmark's polygon jobs, written as GeoJSON next to the archive (EPSG:32633, an ``id`` per feature).

* ``field``: one ~5 ha parcel;
* ``lake``: one ~4 km2 irregular polygon with an island hole;
* ``batch``: 1000 (small: 40) non-overlapping parcels of 2-15 ha over the whole scene.

All three are deterministic for a :class:`perf_archive.SizeConfig`. :func:`describe_jobs` gives each job's
size (polygons, pixels inside by the pixel-centre rule, polygon-dates, zonal megapixels) and the polygons
whose values are checked against rasterstats.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from common import display_path
from perf_archive import BANDS, PIXEL, SEED, X0, Y0, SizeConfig

CASES: tuple[str, ...] = ("field", "lake", "batch")
#: Polygons of a case whose statistics are compared with rasterstats (every polygon of a smaller case).
BATCH_SAMPLE = 50


def _feature_collection(features: list[tuple[str, Any]]) -> dict[str, Any]:
    from shapely import set_precision
    from shapely.geometry import mapping

    def rounded(geom: Any) -> Any:
        return mapping(set_precision(geom, 0.01))

    return {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
        "features": [{"type": "Feature", "properties": {"id": fid}, "geometry": rounded(g)} for fid, g in features],
    }


def _scaled(geom: Any, area: float, centre: tuple[float, float]) -> Any:
    from shapely import affinity

    factor = math.sqrt(area / geom.area)
    geom = affinity.scale(geom, factor, factor, origin=(0, 0))
    return affinity.translate(geom, *centre)


def make_polygons(cfg: SizeConfig) -> dict[str, dict[str, Any]]:
    """The three jobs as GeoJSON FeatureCollections in EPSG:32633 (deterministic)."""
    from shapely import affinity
    from shapely.geometry import Polygon

    extent = cfg.pixels * PIXEL
    field = affinity.rotate(Polygon([(-125, -100), (128, -96), (122, 103), (-120, 98)]), 17, origin=(0, 0))
    field = _scaled(field, 49_800.0, (X0 + 0.37 * extent, Y0 - 0.41 * extent))

    rng = np.random.default_rng([SEED, 5])
    theta = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    phases = rng.uniform(0, 2 * np.pi, size=3)
    radius = 1 + 0.18 * np.sin(3 * theta + phases[0]) + 0.10 * np.sin(5 * theta + phases[1]) \
        + 0.05 * np.sin(8 * theta + phases[2])
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    island = affinity.rotate(Polygon(np.c_[0.25 + 0.18 * np.cos(t), -0.1 + 0.1 * np.sin(t)]), 30)
    lake = Polygon(np.c_[radius * np.cos(theta), radius * np.sin(theta)], [list(island.exterior.coords)])
    lake = _scaled(lake, 4_000_000.0, (X0 + 0.58 * extent, Y0 - 0.52 * extent))

    rng = np.random.default_rng([SEED, 6, cfg.batch_fields])
    cell = extent / cfg.batch_grid
    cells = rng.choice(cfg.batch_grid ** 2, size=cfg.batch_fields, replace=False)
    batch = []
    for k, c in enumerate(sorted(cells.tolist())):
        area = rng.uniform(20_000, 150_000)
        aspect = rng.uniform(1.0, 2.5)
        w = math.sqrt(area * aspect)
        h = area / w
        rect = affinity.rotate(Polygon([(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]),
                               rng.uniform(0, 180), origin=(0, 0))
        slack = cell / 2 - math.hypot(w, h) / 2 - 20
        cx = X0 + (c % cfg.batch_grid + 0.5) * cell + rng.uniform(-slack, slack)
        cy = Y0 - (c // cfg.batch_grid + 0.5) * cell + rng.uniform(-slack, slack)
        batch.append((f"b{k:04d}", affinity.translate(rect, cx, cy)))
    return {"field": _feature_collection([("field", field)]), "lake": _feature_collection([("lake", lake)]),
            "batch": _feature_collection(batch)}


def polygons_path(data_dir: Path, case: str) -> Path:
    """The GeoJSON file of one case."""
    return data_dir / f"{case}.geojson"


def write_polygons(data_dir: Path, polygons: dict[str, dict[str, Any]]) -> None:
    """Write each job as ``<data_dir>/<case>.geojson``, leaving a file with the same content untouched."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for case, fc in polygons.items():
        path = polygons_path(data_dir, case)
        text = json.dumps(fc) + "\n"
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)


def inside_pixels(geometry: dict[str, Any]) -> int:
    """Pixels of the scene grid whose centre lies inside ``geometry`` (the pixel-centre rule)."""
    from affine import Affine
    from rasterio.features import geometry_mask
    from shapely.geometry import shape

    geom = shape(geometry)
    minx, miny, maxx, maxy = geom.bounds
    c0, r0 = math.floor((minx - X0) / PIXEL), math.floor((Y0 - maxy) / PIXEL)
    c1, r1 = math.ceil((maxx - X0) / PIXEL), math.ceil((Y0 - miny) / PIXEL)
    transform = Affine(PIXEL, 0, X0 + c0 * PIXEL, 0, -PIXEL, Y0 - r0 * PIXEL)
    return int(geometry_mask([geom], out_shape=(r1 - r0, c1 - c0), transform=transform, invert=True).sum())


def describe_jobs(polygons: dict[str, dict[str, Any]], dates: int,
                  data_dir: Path) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    """Per case, the size of its job and the ids of its correctness sample (at most :data:`BATCH_SAMPLE`)."""
    jobs: dict[str, dict[str, Any]] = {}
    samples: dict[str, list[str]] = {}
    for case in CASES:
        feats = polygons[case]["features"]
        px = sum(inside_pixels(f["geometry"]) for f in feats)
        jobs[case] = {"polygons": len(feats), "inside_pixels": px, "polygon_dates": len(feats) * dates,
                      "zonal_mpx": px * len(BANDS) * dates / 1e6,
                      "file": display_path(polygons_path(data_dir, case))}
        step = max(1, len(feats) // BATCH_SAMPLE)
        samples[case] = [str(f["properties"]["id"]) for f in feats[::step][:BATCH_SAMPLE]]
        print(f"job {case}: {len(feats)} polygon(s), {px:,} px inside", flush=True)
    return jobs, samples
