"""The cloud options of a request, parsed once: how the averaged pixel is classified, how cloud cells are scored
and masked (:class:`MaskParameters`, with any custom :class:`Morphology`), where the cells come from, and the
cloud rules (:class:`CloudOptions`: ``cloudy = probability >= threshold``, the drop rules of ``max_probability``
and ``max_fraction``, when the averaged pixel is not trusted, and which dates the analytics count as clear).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import InvalidRequestError
from ..fields import flag, integer, known_fields, unit_interval
from .shadows import DEFAULT_HEIGHTS_M, ShadowParameters, parse_shadows

#: Default probability threshold: averaged pixel ``cloudy = probability >= threshold``, mask ``p > threshold``.
DEFAULT_THRESHOLD = 0.4
#: Sentinel Hub's CLP/CLM cloud resolution, metres.
DEFAULT_CLOUD_RESOLUTION = 160
#: s2cloudless's own post-processing radii, in cells (at the resolution of its input).
S2CLOUDLESS_AVERAGE_OVER = 1
S2CLOUDLESS_DILATION_SIZE = 1
#: Sentinel Hub / eo-learn post-processing radii, in cells (at 160 m).
SENTINELHUB_AVERAGE_OVER = 4
SENTINELHUB_DILATION_SIZE = 2
#: Most cloud fraction of a date the analytics count as clear, unless ``cloud.max_fraction`` says otherwise.
CLEAR_FRACTION = 0.2
#: Cloud fraction range in which the averaged pixel of a polygon is not trusted (``both`` mode).
MIXED_RANGE = (0.1, 0.9)
CloudMode = Literal["averaged", "pixel", "both"]
CLOUD_MODES: tuple[str, ...] = ("averaged", "pixel", "both")
#: Where the per-pixel cloud cells come from: the stored CLP/CLM layers when a date has them (``auto``), only
#: the layers (``layers``: a date without them is an error), or the model on the fly (``model``).
CloudSource = Literal["auto", "layers", "model"]
CLOUD_SOURCES: tuple[str, ...] = ("auto", "layers", "model")
#: Largest radius of a mask operation, and largest ``min_cloud_size``, in cells.
MAX_MASK_RADIUS = 20
MAX_MIN_CLOUD_SIZE = 400
_MORPHOLOGY_FIELDS = ("opening_size", "closing_size", "min_cloud_size", "erosion_size")
_CLOUD_FIELDS = ("threshold", "max_probability", "mode", "resolution", "average_over", "dilation_size", "mask",
                 "max_fraction", "source", *_MORPHOLOGY_FIELDS, "shadows", "shadow_heights_m")


@dataclass(frozen=True)
class Morphology:
    """Binary morphology of a cloud mask after the threshold, radii and sizes in cells (0: not applied).

    Applied in this order: ``opening_size`` (removes specks and thin bridges), ``closing_size`` (fills small
    holes and gaps), ``min_cloud_size`` (drops clouds of fewer cells, 8-connected), ``erosion_size``; the
    dilation of :class:`MaskParameters` comes last, as in s2cloudless.
    """

    opening_size: int = 0
    closing_size: int = 0
    min_cloud_size: int = 0
    erosion_size: int = 0

    @property
    def margin_cells(self) -> int:
        """Cells beyond a region whose mask values change the region's after this morphology."""
        return 2 * self.opening_size + 2 * self.closing_size + self.min_cloud_size + self.erosion_size

    @property
    def applied(self) -> bool:
        """Whether any step is applied."""
        return bool(self.opening_size or self.closing_size or self.min_cloud_size or self.erosion_size)


@dataclass(frozen=True)
class MaskParameters:
    """How cloud cells are scored and masked: cell size (m), threshold (``p > threshold``), disk radii (cells),
    any further :class:`Morphology`, and where the cells come from (``source``, see :data:`CloudSource`)."""

    resolution: int = DEFAULT_CLOUD_RESOLUTION
    threshold: float = DEFAULT_THRESHOLD
    average_over: int = SENTINELHUB_AVERAGE_OVER
    dilation_size: int = SENTINELHUB_DILATION_SIZE
    morphology: Morphology = field(default_factory=Morphology)
    source: CloudSource = "auto"

    def cell_pixels(self, pixel_m: float) -> int:
        """Cell size in pixels of ``pixel_m`` metres on the ground: the whole number of pixels closest to
        :attr:`resolution`.

        :raises InvalidRequestError: when :attr:`resolution` is under half a pixel (no cell can be that small).
        """
        k = round(self.resolution / pixel_m)
        if k < 1:
            raise InvalidRequestError(
                f"cloud.resolution: got {self.resolution} m, but this archive's pixels are about {pixel_m:.0f} m on "
                f"the ground; expected at least {math.ceil(pixel_m)} m")
        return k

    @property
    def margin_cells(self) -> int:
        """Cells around the polygon whose data changes its mask (averaging, morphology and dilation)."""
        return self.average_over + self.morphology.margin_cells + self.dilation_size


@dataclass(frozen=True)
class CloudOptions:
    """Cloud options, and the rules they stand for.

    ``mode``: ``averaged`` classifies the polygon's averaged pixel (:meth:`cloudy`); ``pixel`` scores cloud
    cells of ``resolution`` m and masks them (``p > threshold`` after averaging over ``average_over`` cells
    and dilating by ``dilation_size`` cells, see :mod:`stats.clouds.cells`); ``both`` does both and says when
    they disagree (:meth:`warning`). ``mask`` computes the statistics over clear pixels only.
    ``max_probability`` drops dates by the averaged probability, ``max_fraction`` by the cloud fraction
    (:meth:`drops`). ``shadows`` also finds the shadows of the mask's clouds cast from ``shadow_heights_m``
    (:mod:`stats.clouds.shadows`); ``mask`` then leaves them out too.
    """

    threshold: float = DEFAULT_THRESHOLD
    max_probability: float | None = None
    mode: CloudMode = "averaged"
    resolution: int = DEFAULT_CLOUD_RESOLUTION
    average_over: int = SENTINELHUB_AVERAGE_OVER
    dilation_size: int = SENTINELHUB_DILATION_SIZE
    mask: bool = False
    max_fraction: float | None = None
    morphology: Morphology = field(default_factory=Morphology)
    source: CloudSource = "auto"
    shadows: bool = False
    shadow_heights_m: tuple[float, float] = DEFAULT_HEIGHTS_M

    @property
    def averaged(self) -> bool:
        """Whether the averaged pixel is classified."""
        return self.mode in ("averaged", "both")

    @property
    def pixel(self) -> bool:
        """Whether cloud cells are scored and masked."""
        return self.mode in ("pixel", "both") or self.mask or self.shadows

    @property
    def shadow_parameters(self) -> ShadowParameters:
        """Parameters of the shadow mask."""
        return ShadowParameters(*self.shadow_heights_m)

    @property
    def mask_parameters(self) -> MaskParameters:
        """Parameters of the per-pixel mask."""
        return MaskParameters(self.resolution, self.threshold, self.average_over, self.dilation_size, self.morphology,
                              self.source)

    def cloudy(self, probability: float | None) -> bool | None:
        """Whether an averaged pixel of this probability is cloudy (None without a probability)."""
        return None if probability is None else bool(probability >= self.threshold)

    def drops(self, probability: float | None, fraction: float | None = None) -> bool:
        """Whether ``max_probability`` (on the averaged probability) or ``max_fraction`` (on the cloud
        fraction) drops a date."""
        if self.max_probability is not None and probability is not None and probability > self.max_probability:
            return True
        return self.max_fraction is not None and fraction is not None and fraction > self.max_fraction

    def clear(self, probability: float | None, fraction: float | None) -> bool:
        """Whether the analytics (aggregation, gap filling, season) use a date: by its cloud fraction when
        the per-pixel mask was computed (at most ``max_fraction``, else :data:`CLEAR_FRACTION`), else by its
        averaged pixel (not :meth:`cloudy`); see :meth:`clear_dates` for arrays."""
        nan = float("nan")
        return bool(self.clear_dates(np.array([nan if probability is None else probability]),
                                     np.array([nan if fraction is None else fraction]))[0])

    def clear_dates(self, probability: np.ndarray, fraction: np.ndarray) -> np.ndarray:
        """:meth:`clear` of many dates at once (NaN for a probability or fraction not computed)."""
        most = CLEAR_FRACTION if self.max_fraction is None else self.max_fraction
        by_fraction = ~np.isnan(fraction)
        with np.errstate(invalid="ignore"):
            return np.where(by_fraction, fraction <= most, probability < self.threshold) & (
                by_fraction | ~np.isnan(probability))

    def warning(self, cloudy: bool | None, fraction: float | None) -> str | None:
        """Why the averaged pixel cannot be trusted, in ``both`` mode: ``disagree`` (it contradicts the
        mask's majority) or ``mixed`` (the polygon is partly cloudy); else None."""
        if self.mode != "both" or cloudy is None or fraction is None:
            return None
        if cloudy != (fraction >= 0.5):
            return "disagree"
        if MIXED_RANGE[0] <= fraction <= MIXED_RANGE[1]:
            return "mixed"
        return None

    @classmethod
    def from_dict(cls, data: Any) -> CloudOptions:
        """Parse the ``cloud`` object of a request."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise InvalidRequestError(f"cloud: expected an object such as {{'threshold': 0.4}}, got {data!r:.80}")
        known_fields(data, _CLOUD_FIELDS, "cloud")
        mode = data.get("mode", "averaged")
        if mode not in CLOUD_MODES:
            raise InvalidRequestError(f"cloud.mode: expected one of {list(CLOUD_MODES)}, got {mode!r:.80}")
        source = data.get("source", "auto")
        if source not in CLOUD_SOURCES:
            raise InvalidRequestError(f"cloud.source: expected one of {list(CLOUD_SOURCES)}, got {source!r:.80}")
        resolution = data.get("resolution", DEFAULT_CLOUD_RESOLUTION)
        expected = f"cloud.resolution: expected a multiple of 10 m from 10 to 160, got {resolution!r:.80}"
        if integer(resolution, "cloud.resolution", 10, 160, "m") % 10:
            raise InvalidRequestError(expected)
        max_p = data.get("max_probability")
        max_f = data.get("max_fraction")
        options = cls(
            threshold=unit_interval(data.get("threshold", DEFAULT_THRESHOLD), "cloud.threshold"),
            max_probability=None if max_p is None else unit_interval(max_p, "cloud.max_probability"),
            mode=mode,
            resolution=resolution,
            average_over=integer(data.get("average_over", SENTINELHUB_AVERAGE_OVER), "cloud.average_over", 0,
                                 MAX_MASK_RADIUS, "cells"),
            dilation_size=integer(data.get("dilation_size", SENTINELHUB_DILATION_SIZE), "cloud.dilation_size", 0,
                                  MAX_MASK_RADIUS, "cells"),
            mask=flag(data.get("mask"), "cloud.mask", False),
            max_fraction=None if max_f is None else unit_interval(max_f, "cloud.max_fraction"),
            morphology=Morphology(**{
                name: integer(data.get(name, 0), f"cloud.{name}", 0,
                              MAX_MIN_CLOUD_SIZE if name == "min_cloud_size" else MAX_MASK_RADIUS, "cells")
                for name in _MORPHOLOGY_FIELDS}),
            source=source,
            **parse_shadows(data),
        )
        if options.max_probability is not None and not options.averaged:
            raise InvalidRequestError(
                "cloud.max_probability: filters on the averaged pixel, which cloud.mode 'pixel' does not compute; "
                "expected cloud.mode 'averaged' or 'both', or cloud.max_fraction"
            )
        if options.max_fraction is not None and not options.pixel:
            raise InvalidRequestError(
                "cloud.max_fraction: needs the per-pixel mask; expected cloud.mode 'pixel' or 'both'"
            )
        return options
