"""The region a date's water is measured over: the nominal outline grown by a buffer in metres on the ground.

The buffer and the outline's area are computed in a metric CRS: the tile's own when it is projected in
metres (a Sentinel-2 tile's UTM zone), else the UTM zone of the outline's centre (pyproj's database of UTM
zones). A buffer of ``buffer_m`` in degrees would be wrong by a factor that changes with latitude.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyproj import CRS
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info
from shapely.geometry.base import BaseGeometry

from ..geometry import WGS84, reproject
from .options import WaterOptions

_METRES = ("metre", "meter", "m")


def metric_crs(crs: CRS, geometry: BaseGeometry, geometry_crs: CRS) -> CRS:
    """``crs`` when it is projected with axes in metres, else the WGS 84 UTM zone of ``geometry``'s centre.

    >>> from shapely.geometry import box
    >>> metric_crs(WGS84, box(15.0, 46.0, 15.01, 46.01), WGS84).to_epsg()
    32633
    >>> metric_crs(CRS.from_epsg(32633), box(15.0, 46.0, 15.01, 46.01), WGS84).to_epsg()
    32633
    """
    if crs.is_projected and all(axis.unit_name in _METRES for axis in crs.axis_info[:2]):
        return crs
    centre = reproject(geometry, geometry_crs, WGS84).centroid
    lon, lat = float(centre.x), float(centre.y)
    zones = query_utm_crs_info(datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat))
    return CRS.from_epsg(int(zones[0].code))


@dataclass(frozen=True)
class RegionShape:
    """The region analysed and the nominal outline, both in ``crs`` (metric), and the outline's area."""

    region: BaseGeometry
    outline: BaseGeometry
    crs: CRS
    nominal_area_m2: float


def analysed_region(options: WaterOptions, polygon: BaseGeometry, polygon_crs: CRS, tile_crs: CRS) -> RegionShape:
    """The region of ``options`` for a date whose first tile is in ``tile_crs``: ``options.outline`` (or the
    posted ``polygon`` when it has none) grown by ``options.buffer_m`` metres.

    >>> import math
    >>> from shapely.geometry import box
    >>> shape = analysed_region(WaterOptions(buffer_m=10.0), box(500000, 5000000, 500100, 5000100),
    ...                         CRS.from_epsg(32633), CRS.from_epsg(32633))
    >>> by_hand = 100 * 100 + 4 * 100 * 10 + math.pi * 10 ** 2  # the square, 4 strips of 10 m, 4 quarter disks
    >>> shape.nominal_area_m2, abs(shape.region.area - by_hand) < 5  # the disks are polygons
    (10000.0, True)
    """
    if options.outline is not None and options.outline_crs is not None:
        outline, outline_crs = options.outline, options.outline_crs
    else:
        outline, outline_crs = polygon, polygon_crs
    crs = metric_crs(tile_crs, outline, outline_crs)
    metric = reproject(outline, outline_crs, crs)
    region = metric.buffer(options.buffer_m) if options.buffer_m > 0 else metric
    return RegionShape(region=region, outline=metric, crs=crs, nominal_area_m2=float(metric.area))
