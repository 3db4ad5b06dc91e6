"""The cloud mask of a grid of cell probabilities: s2cloudless's post-processing, then any custom morphology.

:func:`mask_from_probability` averages the probabilities over a disk of ``average_over`` cells (s2cloudless's
``get_mask_from_prob``: OpenCV ``filter2D``, reflected border), keeps ``p > threshold``, applies the request's
:class:`~stats.request.Morphology` (opening, closing, minimum cloud size, erosion; ``scipy.ndimage`` with
disk-shaped structuring elements, as ``skimage.morphology.disk`` draws them) and dilates by a disk of
``dilation_size`` cells (s2cloudless's ``cv2.dilate``). With no morphology asked for, the mask is exactly
s2cloudless's.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.morphology import disk

from ..request import MaskParameters, Morphology

#: 8-connectivity for the minimum cloud size: cells touching at a corner belong to one cloud.
_EIGHT = np.ones((3, 3), dtype=bool)


def mask_from_probability(probability: np.ndarray, cell_valid: np.ndarray, params: MaskParameters) -> np.ndarray:
    """The cloud mask (uint8 0/1) of a 2-D probability grid; no-data cells enter as 0 and leave as 0.

    Averaging and thresholding are s2cloudless's ``get_mask_from_prob``; the dilation is its ``cv2.dilate``
    with its disk, applied here so that it also works without averaging (``average_over=0``), where
    s2cloudless's int8 mask is refused by OpenCV.
    """
    import cv2
    from s2cloudless import S2PixelCloudDetector
    from s2cloudless.utils import cv2_disk

    detector = S2PixelCloudDetector(threshold=params.threshold, average_over=params.average_over or None,
                                    dilation_size=None)
    prob = np.where(cell_valid, probability, 0).astype(np.float32)
    mask = detector.get_mask_from_prob(prob[np.newaxis])[0].astype(np.uint8)
    if params.morphology.applied:
        mask = apply_morphology(mask.astype(bool), params.morphology).astype(np.uint8)
    if params.dilation_size:
        mask = cv2.dilate(mask, cv2_disk(params.dilation_size))
    return np.where(cell_valid, mask, 0).astype(np.uint8)


def apply_morphology(mask: np.ndarray, morphology: Morphology) -> np.ndarray:
    """``mask`` (bool, 2-D) after the opening, closing, minimum cloud size and erosion of ``morphology``.

    The grid is extended by reflection at its edges (by the radii the steps reach) and cropped back, so that a
    cloud cut by the edge of a tile is neither eaten away nor grown into the outside.
    """
    pad = morphology.margin_cells
    grid = np.asarray(mask, dtype=bool)
    out = np.pad(grid, pad, mode="reflect") if min(grid.shape) > pad else np.pad(grid, pad, mode="edge")
    if morphology.opening_size:
        out = ndimage.binary_opening(out, structure=disk(morphology.opening_size).astype(bool))
    if morphology.closing_size:
        out = ndimage.binary_closing(out, structure=disk(morphology.closing_size).astype(bool))
    if morphology.min_cloud_size:
        labels, count = ndimage.label(out, structure=_EIGHT)
        if count:
            keep = np.bincount(labels.ravel()) >= morphology.min_cloud_size
            keep[0] = False
            out = keep[labels]
    if morphology.erosion_size:
        out = ndimage.binary_erosion(out, structure=disk(morphology.erosion_size).astype(bool))
    rows, cols = mask.shape
    return out[pad:pad + rows, pad:pad + cols]
