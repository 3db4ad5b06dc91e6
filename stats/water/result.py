"""The water answer of one date, in JSON (:meth:`Water.to_dict`) and as CSV cells (:meth:`Water.row`).

``status`` is ``OK`` when the date was measured, ``NODATA`` when less than ``min_valid`` of the region
has data, and ``CLOUDY`` when more than ``max_cloud_fraction`` of its valid pixels is cloud; a refused date
reports its shares (``valid_fraction``, ``cloud_fraction``) and the outline's area, and None for the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: Per-date water statuses.
WATER_STATUSES: tuple[str, ...] = ("OK", "CLOUDY", "NODATA")
#: The CSV columns of the water answer, in :meth:`Water.row` order (the extent is JSON only).
WATER_COLUMNS: tuple[str, ...] = ("water_status", "water_fraction", "water_area_m2", "water_level",
                                  "water_nominal_area_m2", "water_threshold", "water_threshold_method",
                                  "water_valid_fraction", "water_cloud_fraction")


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass(frozen=True)
class Water:
    """Water of one date over the region.

    ``fraction`` is the share of the clear valid pixels that are water, ``area_m2`` that share of the
    region's area (the clouds a date may have are taken to hide water in the same share), ``level`` is
    ``area_m2 / nominal_area_m2`` (the outline's area). ``threshold`` is the index value used and
    ``threshold_method`` how it was found (``canny_otsu``, ``otsu`` or ``fixed``). ``extent`` is the
    GeoJSON (Multi)Polygon of the water pixels seen, in EPSG:4326 (lon, lat), when asked for.
    """

    status: str
    fraction: float | None = None
    area_m2: float | None = None
    level: float | None = None
    nominal_area_m2: float | None = None
    threshold: float | None = None
    threshold_method: str | None = None
    valid_fraction: float | None = None
    cloud_fraction: float | None = None
    extent: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``extent`` only when it was computed."""
        out: dict[str, Any] = {
            "status": self.status,
            "fraction": _finite(self.fraction),
            "area_m2": _finite(self.area_m2),
            "level": _finite(self.level),
            "nominal_area_m2": _finite(self.nominal_area_m2),
            "threshold": _finite(self.threshold),
            "threshold_method": self.threshold_method,
            "valid_fraction": _finite(self.valid_fraction),
            "cloud_fraction": _finite(self.cloud_fraction),
        }
        if self.extent is not None:
            out["extent"] = self.extent
        return out

    def row(self) -> list[Any]:
        """The :data:`WATER_COLUMNS` cells.

        >>> Water("CLOUDY", nominal_area_m2=100.0, valid_fraction=1.0, cloud_fraction=0.5).row()
        ['CLOUDY', None, None, None, 100.0, None, None, 1.0, 0.5]
        """
        return [self.status, _finite(self.fraction), _finite(self.area_m2), _finite(self.level),
                _finite(self.nominal_area_m2), _finite(self.threshold), self.threshold_method,
                _finite(self.valid_fraction), _finite(self.cloud_fraction)]
