"""The water threshold of one date: fixed, Otsu's over the region, or Otsu's along the index's edges.

``threshold`` (``fixed``): water where the index is above a fixed value (0 for McFeeters' NDWI and for
MNDWI).

``otsu``: Otsu's threshold (``skimage.filters.threshold_otsu``) of every usable pixel of the region, which
adapts to haze and turbidity. Otsu assumes two classes; on a region that is all water (or all land) it
would split one class in two, so when the two classes' means differ by less than :data:`MIN_SEPARATION`,
or the upper class's mean is not above the fixed threshold (a split of two land covers, such as a field
beside a meadow, is no shore line), the fixed threshold is used instead.

``canny_otsu`` (BlueDot's water observatory, after Donchyts et al. 2016): edges of the index image by
``skimage.feature.canny`` (Gaussian ``sigma`` :data:`CANNY_SIGMA` pixels, hysteresis thresholds
:data:`CANNY_LOW` and :data:`CANNY_HIGH` in index units of the Sobel gradient, only inside the usable
pixels), dilated by a disk of :data:`EDGE_DILATION` pixels; Otsu's threshold of the index values of those
pixels, which hold about as much water as land whatever the share of water in the region, and none of the
smooth land gradients that can pull a region-wide Otsu off. Fallbacks, in order: fewer than
:data:`MIN_EDGE_PIXELS` edge pixels, or edge classes that do not split as above (less than
:data:`MIN_SEPARATION` apart, or both land), give Otsu's threshold of the whole region (as ``otsu``), and
that failing too, the fixed threshold. The answer says
which was used (:attr:`Threshold.method`: ``canny_otsu``, ``otsu`` or ``fixed``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Smallest difference of class means (index units) for Otsu's split to count as water vs land.
MIN_SEPARATION = 0.2
#: Gaussian smoothing of the Canny detector, pixels.
CANNY_SIGMA = 2.0
#: Canny hysteresis thresholds on the gradient magnitude (Sobel of the smoothed index): a step of 0.12 in
#: the index reaches the high threshold at ``sigma`` 2.
CANNY_LOW = 0.1
CANNY_HIGH = 0.2
#: Radius (pixels) of the disk the edges are dilated by before their values are taken.
EDGE_DILATION = 2
#: Fewest Canny edge pixels for the edges' Otsu threshold to be used.
MIN_EDGE_PIXELS = 10


@dataclass(frozen=True)
class Threshold:
    """The threshold of one date: ``value``, how it was found (``method``: ``canny_otsu``, ``otsu`` or
    ``fixed``) and the number of Canny edge pixels seen (0 when edges were not looked for)."""

    value: float
    method: str
    edge_pixels: int = 0


def otsu_split(values: np.ndarray, fixed: float) -> float | None:
    """Otsu's threshold of ``values`` (1-D, finite) when it separates two classes whose means are at least
    :data:`MIN_SEPARATION` apart, the upper one's above ``fixed``; None otherwise (too few values, one value,
    one class, or two classes of land).

    >>> otsu_split(np.array([-0.4, -0.4, -0.3, 0.5, 0.6]), 0.0) is not None
    True
    >>> otsu_split(np.array([0.30, 0.31, 0.32, 0.33]), 0.0) is None  # one class: no split
    True
    >>> otsu_split(np.array([-0.6, -0.6, -0.3, -0.3]), 0.0) is None  # two land covers: no water line
    True
    """
    if values.size < 2 or np.ptp(values) == 0:
        return None
    from skimage.filters import threshold_otsu

    split = float(threshold_otsu(values))
    low, high = values[values <= split], values[values > split]
    if low.size == 0 or high.size == 0 or float(high.mean() - low.mean()) < MIN_SEPARATION:
        return None
    if float(high.mean()) <= fixed:
        return None
    return split


def edge_pixels(image: np.ndarray, usable: np.ndarray, *, sigma: float = CANNY_SIGMA,
                dilation: int = EDGE_DILATION) -> tuple[np.ndarray, np.ndarray]:
    """Canny edges of ``image`` (2-D, index values; only ``usable`` pixels are looked at) and those edges
    dilated by a disk of ``dilation`` pixels, kept to the usable pixels: ``(edges, band)``, both bool."""
    from scipy import ndimage
    from skimage.feature import canny
    from skimage.morphology import disk

    if image.shape[0] < 3 or image.shape[1] < 3 or not usable.any():
        empty = np.zeros(image.shape, dtype=bool)
        return empty, empty
    filled = np.where(usable, image, 0.0).astype(np.float64)
    edges = canny(filled, sigma=sigma, low_threshold=CANNY_LOW, high_threshold=CANNY_HIGH, mask=usable)
    band = ndimage.binary_dilation(edges, structure=disk(dilation)) if dilation > 0 else edges.copy()
    return edges & usable, band & usable


def canny_otsu(image: np.ndarray, usable: np.ndarray, fixed: float) -> Threshold:
    """The ``canny_otsu`` threshold of ``image`` over its ``usable`` pixels, with the fallbacks of the
    module docstring (``otsu`` over the region, then ``fixed``)."""
    edges, band = edge_pixels(image, usable)
    count = int(edges.sum())
    if count >= MIN_EDGE_PIXELS:
        split = otsu_split(image[band], fixed)
        if split is not None:
            return Threshold(split, "canny_otsu", count)
    fallback = region_otsu(image[usable], fixed)
    return Threshold(fallback.value, fallback.method, count)


def region_otsu(values: np.ndarray, fixed: float) -> Threshold:
    """Otsu's threshold of all the region's ``values`` (1-D, finite), or ``fixed`` when they do not split.

    >>> region_otsu(np.array([0.30, 0.31, 0.32, 0.33]), 0.0)
    Threshold(value=0.0, method='fixed', edge_pixels=0)
    """
    split = otsu_split(values, fixed)
    return Threshold(fixed, "fixed") if split is None else Threshold(split, "otsu")


def water_threshold(image: np.ndarray, usable: np.ndarray, method: str, fixed: float) -> Threshold:
    """The threshold ``method`` (``threshold``, ``otsu`` or ``canny_otsu``) gives ``image`` (2-D index
    values) over its ``usable`` pixels; ``fixed`` is the ``threshold`` method's value and the fallback."""
    if method == "canny_otsu":
        return canny_otsu(image, usable, fixed)
    if method == "otsu":
        return region_otsu(image[usable], fixed)
    return Threshold(fixed, "fixed")
