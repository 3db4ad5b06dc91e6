"""Exact mode: the fraction of each pixel covered by a polygon.

The default statistics (:mod:`stats.zonal`) count a pixel when its centre lies inside the polygon. In exact
mode every pixel the polygon touches counts with the fraction of its area the polygon covers, as
exactextract does. :func:`coverage_fractions` gives that fraction per pixel of a north-up grid, in [0, 1].
Pixels crossed by the polygon's boundary get the exact area of their intersection with the polygon; the
others are wholly inside (1) or wholly outside (0). The statistics weighted by these fractions are
:func:`stats.zonal.weighted_summary`.

How the fractions are found: rasterio burns the polygon by pixel centre, and its rings with
``all_touched=True``. The pixels the rings touch are cut out of the polygon exactly with shapely, working in
pixel coordinates (pixel edges are whole numbers): the polygon is cut into one strip per row, and each
pixel out of its row's strip, by vectorised rectangle clipping, checked pixel by pixel and redone by full
overlay (``shapely.intersection``) where the check fails (see :func:`_exact_areas`). As a last check, the
fractions must add up to the area of the polygon within the grid; if they do not (a pixel the rasteriser
missed), the set of exactly computed pixels is widened to their neighbours, and then to every pixel of the
polygon's bounding box.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize
from shapely.geometry.base import BaseGeometry

from .geometry import polygonal

#: Largest difference, in pixels, allowed between the sum of the fractions and the polygon's area in the
#: grid (plus a relative part of :data:`_AREA_RTOL`), beyond which exact areas are computed for more pixels.
_AREA_ATOL = 1e-7
_AREA_RTOL = 1e-9


def _exact_areas(pixel_geom: BaseGeometry, rows: np.ndarray, cols: np.ndarray, *, fast: bool) -> np.ndarray:
    """Area of ``pixel_geom`` (a valid polygon in pixel coordinates: x = column, y = row) within each unit
    pixel ``(rows[i], cols[i])``.

    The polygon is first cut into one strip per row; each pixel's strip is then moved so that the pixel is
    the unit square at the origin, and cut by it, all pixels in one vectorised call. With ``fast``, the cuts
    use GEOS's rectangle clipping (``shapely.clip_by_rect``), which can go wrong on degenerate input (a
    vertex on a pixel corner): a pixel is trusted only when its area and those of its strip left and right
    of it add up to the strip's area, and the others are cut again by full overlay (``shapely.intersection``,
    robust but slower), as every pixel is without ``fast``.
    """
    if rows.size == 0:
        return np.zeros(0, dtype=np.float64)
    xmin, _, xmax, _ = pixel_geom.bounds
    x0, x1 = math.floor(xmin) - 1.0, math.ceil(xmax) + 1.0
    strip_rows, which = np.unique(rows, return_inverse=True)
    if fast:
        strips = np.array([shapely.clip_by_rect(pixel_geom, x0, float(r), x1, float(r) + 1.0) for r in strip_rows])
        # rectangle clipping may return a ring touching itself (a hole meeting the strip's edge): right in
        # area, but not fit to be clipped again; cut those strips by full overlay
        dirty = ~shapely.is_valid(strips)
        if dirty.any():
            strips[dirty] = shapely.intersection(pixel_geom, shapely.box(x0, strip_rows[dirty], x1,
                                                                         strip_rows[dirty] + 1.0))
    else:
        strips = shapely.intersection(pixel_geom, shapely.box(x0, strip_rows, x1, strip_rows + 1.0))
    pieces = strips[which.ravel()]
    shift = np.repeat(np.column_stack([cols, rows]), shapely.get_num_coordinates(pieces), axis=0)
    local = shapely.transform(pieces, lambda xy: xy - shift)
    unit = shapely.box(0.0, 0.0, 1.0, 1.0)
    if not fast:
        return np.clip(np.asarray(shapely.area(shapely.intersection(local, unit)), dtype=np.float64), 0.0, 1.0)
    areas = np.asarray(shapely.area(shapely.clip_by_rect(local, 0.0, 0.0, 1.0, 1.0)), dtype=np.float64)
    lo, hi = x0 - float(cols.max()) - 1.0, x1 - float(cols.min()) + 1.0
    left = shapely.area(shapely.clip_by_rect(local, lo, -1.0, 0.0, 2.0))
    right = shapely.area(shapely.clip_by_rect(local, 1.0, -1.0, hi, 2.0))
    whole = shapely.area(pieces)
    suspect = np.abs(left + areas + right - whole) > _AREA_RTOL * (1.0 + whole)
    if suspect.any():
        areas[suspect] = shapely.area(shapely.intersection(local[suspect], unit))
    return np.clip(areas, 0.0, 1.0)


def _grow(mask: np.ndarray) -> np.ndarray:
    """``mask`` with each True pixel's 8 neighbours set as well."""
    out = mask.copy()
    out[1:, :] |= mask[:-1, :]
    out[:-1, :] |= mask[1:, :]
    grown = out.copy()
    grown[:, 1:] |= out[:, :-1]
    grown[:, :-1] |= out[:, 1:]
    return grown


def coverage_fractions(geom: BaseGeometry, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """The fraction of each pixel's area covered by ``geom``, float64 of shape ``shape`` (rows, cols).

    ``transform`` is the grid's affine transform (north-up or south-up, no rotation) and ``geom`` a shapely
    Polygon or MultiPolygon in the grid's CRS. Holes, several parts, polygons smaller than one pixel, narrow
    slivers and polygons reaching beyond the grid are handled; the part outside the grid is ignored.
    An invalid polygon is repaired with ``shapely.make_valid``; an empty or non-polygonal geometry covers
    nothing.

    >>> grid = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5000020.0)
    >>> coverage_fractions(shapely.box(500005.0, 5000000.0, 500020.0, 5000015.0), grid, (2, 2))
    array([[0.25, 0.5 ],
           [0.5 , 1.  ]])

    :raises ValueError: for a rotated or sheared ``transform``.
    :raises TypeError: when ``geom`` is not a shapely geometry.
    """
    rows, cols = int(shape[0]), int(shape[1])
    out = np.zeros((rows, cols), dtype=np.float64)
    if transform.b != 0 or transform.d != 0 or transform.a == 0 or transform.e == 0:
        raise ValueError(f"transform: expected a grid without rotation, got {tuple(transform)[:6]}")
    if not isinstance(geom, BaseGeometry):
        raise TypeError(f"geom: expected a shapely Polygon or MultiPolygon, got {type(geom).__name__}")
    polygon = polygonal(geom)
    if polygon.is_empty or rows <= 0 or cols <= 0:
        return out

    # pixel coordinates: x = column, y = row, so that pixel (r, c) is the unit box at (c, r)
    origin = np.array([transform.c, transform.f])
    step = np.array([transform.a, transform.e])
    pixel_geom = shapely.transform(polygon, lambda xy: (xy - origin) / step)
    pixel_geom = shapely.intersection(pixel_geom, shapely.box(0.0, 0.0, float(cols), float(rows)))
    area = float(shapely.area(pixel_geom))
    if area <= 0:
        return out

    # window of the grid holding the polygon
    xmin, ymin, xmax, ymax = pixel_geom.bounds
    c0, c1 = max(math.floor(xmin), 0), min(max(math.ceil(xmax), math.floor(xmin) + 1), cols)
    r0, r1 = max(math.floor(ymin), 0), min(max(math.ceil(ymax), math.floor(ymin) + 1), rows)
    window_shape = (r1 - r0, c1 - c0)
    window_transform = Affine(transform.a, 0.0, transform.c + c0 * transform.a,
                              0.0, transform.e, transform.f + r0 * transform.e)

    inside = rasterize([polygon], out_shape=window_shape, transform=window_transform, all_touched=False,
                       fill=0, default_value=1, dtype="uint8").astype(bool)
    edge = rasterize([polygon.boundary], out_shape=window_shape, transform=window_transform, all_touched=True,
                     fill=0, default_value=1, dtype="uint8").astype(bool)
    frac = inside.astype(np.float64)
    tolerance = _AREA_ATOL + _AREA_RTOL * area
    # exact areas of the pixels the boundary touches; should the fractions not add up to the polygon's area
    # (the rasteriser missed a pixel), of their neighbours too, and at last of the whole window by full overlay
    for stage, fast in (("edge", True), ("grown", True), ("window", False)):
        todo = edge if stage == "edge" else _grow(edge) if stage == "grown" else np.ones(window_shape, dtype=bool)
        rr, cc = np.nonzero(todo)
        frac[rr, cc] = _exact_areas(pixel_geom, rr + float(r0), cc + float(c0), fast=fast)
        if abs(float(frac.sum()) - area) <= tolerance:
            break
    out[r0:r1, c0:c1] = frac
    return out
