"""Water monitoring: the water extent, area and level of a polygon or a water body's outline, per date.

:mod:`.options` parses the request's ``water`` object (:class:`WaterOptions`); :mod:`.outline` builds the
region analysed (the nominal outline grown by a buffer in metres); :mod:`.region` reads its pixels on each
date; :mod:`.threshold` finds the date's water threshold (fixed, Otsu, or Otsu along Canny edges as
Sentinel Hub's BlueDot water observatory); :mod:`.extent` applies the validity rules and measures the
water, whose answer is a :class:`Water` (:mod:`.result`).

Only the modules that need no raster reading are imported here; :mod:`.region` and :mod:`.extent` are
imported by the pipeline itself (they depend on :mod:`stats.raster`, which depends on :mod:`stats.request`).
"""

from .options import WATER_METHODS, WaterMethod, WaterOptions
from .result import WATER_COLUMNS, WATER_STATUSES, Water
from .threshold import Threshold, canny_otsu, water_threshold

__all__ = [
    "WATER_COLUMNS",
    "WATER_METHODS",
    "WATER_STATUSES",
    "Threshold",
    "Water",
    "WaterMethod",
    "WaterOptions",
    "canny_otsu",
    "water_threshold",
]
