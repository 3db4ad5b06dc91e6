"""The s2cloudless cloud model, loaded once: cloud probability of averaged pixels and of cloud cells.

The model is s2cloudless's LightGBM classifier (``S2PixelCloudDetector``), loaded lazily and once per
process. Its input is TOA reflectance (DN / 10000, harmonised to baseline < 04.00) of the 10 bands
:data:`stats.bands.MODEL_BANDS` (B01 B02 B04 B05 B08 B8A B09 B10 B11 B12) in that order.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import numpy as np

from ..bands import MODEL_BANDS
from ..errors import CloudModelError


class CloudModel:
    """Lazy wrapper of ``s2cloudless.S2PixelCloudDetector(all_bands=False)``."""

    def __init__(self) -> None:
        self._detector: Any = None
        self._loading: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def detector(self) -> Any:
        """The s2cloudless detector, loaded on first use."""
        if self._detector is None:
            with self._lock:
                if self._detector is None:
                    try:
                        from s2cloudless import S2PixelCloudDetector
                    except ImportError as exc:  # pragma: no cover - a dependency of the package
                        raise CloudModelError(f"s2cloudless cannot be imported: {exc}") from exc
                    self._detector = S2PixelCloudDetector(all_bands=False)
        return self._detector

    def load_in_background(self) -> None:
        """Start loading the detector in a thread of its own, so that a query waiting for the network loads
        it meanwhile (a no-op once it is loaded or loading; a failure is raised again at first use)."""
        if self._detector is not None or self._loading is not None:
            return
        with self._lock:
            if self._detector is None and self._loading is None:
                self._loading = threading.Thread(target=self._load_quietly, name="polyfis-model", daemon=True)
                self._loading.start()

    def _load_quietly(self) -> None:
        with contextlib.suppress(CloudModelError):  # raised again where the model is used
            _ = self.detector

    def probability(self, pixels: np.ndarray) -> np.ndarray:
        """Cloud probability of N pixels, in one model call.

        :param pixels: float array ``(N, 10)``: per row, the reflectance of each model band in
            :data:`MODEL_BANDS` order (for an averaged pixel, the band means over a polygon's valid pixels;
            for a cloud cell, the cell's area averages).
        :returns: float32 array ``(N,)`` in [0, 1], as s2cloudless returns it.
        """
        pixels = np.asarray(pixels)
        if pixels.ndim != 2 or pixels.shape[1] != len(MODEL_BANDS):
            raise CloudModelError(
                f"averaged pixels must have shape (N, {len(MODEL_BANDS)}) in band order {list(MODEL_BANDS)}, "
                f"got shape {pixels.shape}"
            )
        if pixels.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        probs = self.detector.get_cloud_probability_maps(pixels[np.newaxis, :, np.newaxis, :])
        return np.asarray(probs[0, :, 0], dtype=np.float32)


_MODEL = CloudModel()


def default_model() -> CloudModel:
    """The process-wide model (loaded on its first prediction)."""
    return _MODEL
