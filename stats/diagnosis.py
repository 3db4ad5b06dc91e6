"""Why an answer is empty: the polygon or the time range misses the archive, and the likely cause.

A query whose polygon lies outside every footprint, or whose range holds no acquisition, has an empty
series; :func:`why_empty` says why, with the archive's extent and dates, and names the usual mistakes:
coordinates in (lat, lon) order, lon/lat sent with a projected ``crs``.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from .archive.catalog import Archive
from .geometry import WGS84, crs_name, reproject
from .request import Area, TimeRange


def _extent_text(archive: Archive) -> str:
    extent = archive.spatial_extent
    assert extent is not None
    return (f"lon {extent[0]:.4f}..{extent[2]:.4f}, lat {extent[1]:.4f}..{extent[3]:.4f}")


def _covered(archive: Archive, geometry: BaseGeometry) -> bool:
    return archive.covers(geometry)


def why_empty(archive: Archive, area: Area, time_range: TimeRange) -> list[str]:
    """The reasons no acquisition matches ``area`` and ``time_range`` (empty when some do)."""
    interval = archive.temporal_extent
    if interval is None or archive.spatial_extent is None:
        return ["the archive holds no acquisition"]
    reasons = []
    if not _covered(archive, area.wgs84):
        bounds = ", ".join(f"{v:.4f}" for v in area.wgs84.bounds)
        reason = (f"the polygon (lon/lat bounds {bounds}) lies outside the archive, whose acquisitions cover "
                  f"{_extent_text(archive)}")
        coords = shapely.get_coordinates(area.geometry)
        lonlat_like = bool(np.all(np.abs(coords[:, 0]) <= 180) and np.all(np.abs(coords[:, 1]) <= 90))
        if area.crs.is_geographic:
            swapped = shapely.transform(area.geometry, lambda xy: xy[:, ::-1])
            if _covered(archive, reproject(swapped, area.crs, WGS84)):
                reason += "; with its coordinates swapped it lies inside: polyfis reads (lon, lat), not (lat, lon)"
        elif lonlat_like and _covered(archive, area.geometry):
            reason += (f"; its coordinates look like lon/lat, which lie inside, but crs is {crs_name(area.crs)}: "
                       "send crs EPSG:4326 (or leave it out)")
        reasons.append(reason)
    first, last = interval
    if time_range.end < first or time_range.start > last:
        reasons.append(f"the time range {time_range.start.date()}..{time_range.end.date()} holds no acquisition; "
                       f"the archive's run from {first.date()} to {last.date()}")
    if not reasons:
        reasons.append(f"no acquisition both covers the polygon and falls in {time_range.start.date()}.."
                       f"{time_range.end.date()} (or none passes max_cloud_cover)")
    return reasons
