"""Water extent from a water index (NDWI by default) over the clear pixels of a polygon.

``threshold``: water where the index is above a fixed value (0 for McFeeters' NDWI).
``otsu``: water where the index is above Otsu's threshold of the date's values
(``skimage.filters.threshold_otsu``), which adapts to haze and turbidity. Otsu assumes two classes; on a
polygon that is all water (or all land) it would split one class in two, so when the two classes' means
differ by less than :data:`MIN_SEPARATION` the fixed threshold is used instead (and reported).
"""

from __future__ import annotations

import numpy as np

#: Smallest difference of class means (index units) for Otsu's split to count as water vs land.
MIN_SEPARATION = 0.2


def water_extent(values: np.ndarray, method: str, threshold: float, *,
                 weights: np.ndarray | None = None) -> tuple[float | None, float | None]:
    """Share of ``values`` (1-D, finite) classified as water, and the threshold used. ``weights`` (exact
    mode: each pixel's coverage fraction) weight the share; Otsu's threshold is found on the values alone.

    >>> water_extent(np.array([-0.4, -0.3, 0.2, 0.5]), "threshold", 0.0)
    (0.5, 0.0)
    >>> water_extent(np.array([]), "threshold", 0.0)
    (None, 0.0)
    >>> water_extent(np.array([0.30, 0.31, 0.32, 0.33]), "otsu", 0.0)  # one class: the fixed threshold
    (1.0, 0.0)
    """
    if method == "otsu" and values.size >= 2 and np.ptp(values) > 0:
        from skimage.filters import threshold_otsu

        split = float(threshold_otsu(values))
        low, high = values[values <= split], values[values > split]
        if high.mean() - low.mean() >= MIN_SEPARATION:
            threshold = split
    if values.size == 0:
        return None, threshold
    return float(np.average(values > threshold, weights=weights)), threshold
