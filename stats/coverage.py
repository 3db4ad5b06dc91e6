"""Exact mode: the fraction of each pixel covered by a polygon, and statistics weighted by it.

The default statistics (:mod:`stats.zonal`) count a pixel when its centre lies inside the polygon. In exact
mode every pixel the polygon touches counts with the fraction of its area the polygon covers, as
exactextract does:

* :func:`coverage_fractions` gives that fraction per pixel of a north-up grid, in [0, 1]. Pixels crossed by
  the polygon's boundary get the exact area of their intersection with the polygon; the others are wholly
  inside (1) or wholly outside (0);
* :func:`weighted_summary` computes the statistics of :mod:`stats.zonal` over pixel values weighted by
  their coverage fractions, with exactextract's definitions (see there).

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
from collections.abc import Sequence

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from .zonal import percentile_of, validate_statistics

#: Largest difference, in pixels, allowed between the sum of the fractions and the polygon's area in the
#: grid (plus a relative part of :data:`_AREA_RTOL`), beyond which exact areas are computed for more pixels.
_AREA_ATOL = 1e-7
_AREA_RTOL = 1e-9


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """``geom`` as a valid (Multi)Polygon: invalid input is repaired with ``shapely.make_valid``, and only
    the polygonal parts of a collection are kept (an empty polygon when there are none).

    :raises TypeError: when ``geom`` is not a shapely geometry.
    """
    if not isinstance(geom, BaseGeometry):
        raise TypeError(f"geom: expected a shapely Polygon or MultiPolygon, got {type(geom).__name__}")
    if geom.is_empty:
        return Polygon()
    if not shapely.is_valid(geom):
        geom = shapely.make_valid(geom)
    if isinstance(geom, (Polygon, MultiPolygon)):
        return geom
    parts = [p for p in shapely.get_parts(geom) if isinstance(p, (Polygon, MultiPolygon)) and not p.is_empty]
    if not parts:
        return Polygon()
    return shapely.union_all(parts) if len(parts) > 1 else parts[0]


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
    polygon = _polygonal(geom)
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


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: Sequence[float]) -> list[float]:
    """exactextract's weighted quantiles (``qs`` in [0, 1]) of ``values`` with positive ``weights``; see
    :func:`weighted_summary`."""
    uniques, index = np.unique(values, return_inverse=True)
    w = np.bincount(index.ravel(), weights=weights, minlength=uniques.size)
    n = uniques.size
    before = np.concatenate(([0.0], np.cumsum(w)[:-1]))  # weight of the smaller values
    s = np.arange(n) * w + (n - 1) * before
    total = float(np.cumsum(w)[-1]) * (n - 1)
    out = []
    for q in qs:
        target = q * total
        right = int(np.searchsorted(s, target, side="right"))  # first s > target
        left = right - 1
        if right >= n:
            out.append(float(uniques[left]))
        else:
            out.append(float(uniques[left] + (target - s[left]) * (uniques[right] - uniques[left])
                             / (s[right] - s[left])))
    return out


def weighted_summary(values: np.ndarray, weights: np.ndarray,
                     statistics: Sequence[str]) -> dict[str, float | int | None]:
    """Compute ``statistics`` (the names of :func:`stats.zonal.summarize`) over the 1-D array ``values``
    weighted by ``weights`` (coverage fractions, >= 0), as exactextract computes its statistics.

    Pixels with weight 0 are ignored; ``values`` must be finite where the weight is positive. With
    weights ``w`` and values ``x`` of the pixels with ``w > 0``:

    ``count``  sum of ``w`` (a float);  ``sum``  sum of ``w * x``;  ``mean``  ``sum / count``;
    ``std``  weighted population standard deviation, sqrt(sum(w * (x - mean)**2) / sum(w));
    ``min`` / ``max``  extremes of ``x`` (weights play no part);
    ``median`` and ``pNN``  exactextract's weighted quantile at q = NN / 100, defined as follows. Equal
    values are merged first, adding their weights: let ``x_1 < ... < x_n`` be the distinct values,
    ``w_k`` the total weight of ``x_k``, ``S_k = w_1 + ... + w_k`` and ``S = S_n``. Each value gets the
    position ``s_1 = 0``, ``s_k = (k - 1) * w_k + (n - 1) * S_(k-1)`` (non-decreasing, ``s_n = (n - 1) * S``).
    With the target ``t = q * (n - 1) * S`` and ``x_j`` the first value whose ``s_j > t``, the quantile is
    ``x_(j-1) + (t - s_(j-1)) * (x_j - x_(j-1)) / (s_j - s_(j-1))``, or ``x_n`` when there is no such
    value (so q = 0 gives ``x_1``, q = 1 gives ``x_n``, one distinct value gives itself). With equal weights
    and distinct values this is ``numpy.percentile``'s linear interpolation; repeated values differ from
    it, since they are merged into one value of larger weight (``[1, 1, 1, 2]`` has median 1.5, not 1).
    exactextract then converts the quantile to the raster's data type (rounding to float32, truncating to
    an integer); this function returns the float64 value.

    With no positive weight, ``count`` is 0 and every other statistic is None: never NaN.

    >>> weighted_summary(np.array([1.0, 2.0, 3.0, 4.0]), np.ones(4), ["count", "mean", "std", "p50"])
    {'count': 4.0, 'mean': 2.5, 'std': 1.118033988749895, 'p50': 2.5}
    >>> weighted_summary(np.array([10.0, 20.0, 30.0]), np.array([1.0, 0.5, 0.0]), ["count", "sum", "mean", "max"])
    {'count': 1.5, 'sum': 20.0, 'mean': 13.333333333333334, 'max': 20.0}
    >>> weighted_summary(np.array([1.0, 1.0, 1.0, 2.0]), np.ones(4), ["median", "p0", "p100"])
    {'median': 1.5, 'p0': 1.0, 'p100': 2.0}
    >>> weighted_summary(np.array([5.0]), np.array([0.0]), ["count", "mean", "p10"])
    {'count': 0, 'mean': None, 'p10': None}

    :raises UnknownStatisticError: for a name outside the schema of :mod:`stats.zonal`.
    :raises ValueError: when the arrays differ in shape or a weight is negative or not finite.
    """
    statistics = validate_statistics(statistics)
    values = np.asarray(values, dtype=np.float64).ravel()
    weights = np.asarray(weights, dtype=np.float64).ravel()
    if values.shape != weights.shape:
        raise ValueError(f"weights: expected {values.size} weights, one per value, got {weights.size}")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError("weights: expected finite weights >= 0")
    keep = weights > 0
    x, w = values[keep], weights[keep]
    if x.size == 0:
        return {name: (0 if name == "count" else None) for name in statistics}
    wanted = [percentile_of(s) for s in statistics]
    qs = sorted({q for q in wanted if q is not None} | ({50.0} if "median" in statistics else set()))
    pct = dict(zip(qs, _weighted_quantiles(x, w, [q / 100.0 for q in qs])))
    count = float(w.sum())
    total = float((w * x).sum())
    mean = total / count
    out: dict[str, float | int | None] = {}
    for name, q in zip(statistics, wanted):
        if q is not None:
            out[name] = pct[q]
        elif name == "count":
            out[name] = count
        elif name == "sum":
            out[name] = total
        elif name == "mean":
            out[name] = mean
        elif name == "min":
            out[name] = float(x.min())
        elif name == "max":
            out[name] = float(x.max())
        elif name == "std":
            out[name] = float(np.sqrt((w * (x - mean) ** 2).sum() / count))
        elif name == "median":
            out[name] = pct[50.0]
    return out
