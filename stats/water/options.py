"""The ``water`` object of a request, parsed once at the boundary into :class:`WaterOptions`.

Two modes:

* **plain** (``true``, or an object without ``outline`` and ``buffer_m``): the water inside the posted
  polygon, by a fixed threshold (``method`` ``threshold``, the default) or Otsu's (``otsu``);
* **monitoring** (``outline`` or ``buffer_m`` given), as Sentinel Hub's BlueDot water observatory: the
  nominal ``outline`` of a water body (the posted polygon when ``outline`` is absent), grown by
  ``buffer_m`` metres on the ground, is the region analysed; the default ``method`` is ``canny_otsu`` and
  each date reports its extent polygon and its ``level`` (water area over the outline's area).

Every date passes two rules over the region first: at least ``min_valid`` of it has data (BlueDot's 0.98)
and at most ``max_cloud_fraction`` of its valid pixels is under the per-pixel s2cloudless mask (0.2);
otherwise the date is refused (``NODATA`` or ``CLOUDY``) and reports no values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pyproj import CRS
from shapely.geometry import MultiPolygon, Polygon

from ..errors import InvalidGeometryError, InvalidRequestError
from ..fields import flag, known_fields, number, unit_interval
from ..geometry import DEFAULT_MAX_VERTICES, parse_geometry
from ..indices import BUILTIN_INDICES, IndexSpec, resolve_index

WaterMethod = Literal["threshold", "otsu", "canny_otsu"]
#: The ways to find the water threshold of a date.
WATER_METHODS: tuple[str, ...] = ("threshold", "otsu", "canny_otsu")
#: Buffer around the outline (metres) when only ``outline`` is given.
DEFAULT_BUFFER_M = 100.0
#: Largest buffer accepted (metres).
MAX_BUFFER_M = 10_000.0
#: Least share of the region with data for a date to be measured (BlueDot's ``S2_MIN_VALID_FRACTION``).
DEFAULT_MIN_VALID = 0.98
#: Largest cloud share of the region's valid pixels for a date to be measured (BlueDot's 0.2).
DEFAULT_MAX_CLOUD_FRACTION = 0.2
#: Members of the ``water`` object.
WATER_FIELDS: tuple[str, ...] = ("method", "threshold", "index", "max_cloud_fraction", "min_valid", "outline",
                                 "buffer_m", "extent")


@dataclass(frozen=True)
class WaterOptions:
    """How water is measured.

    ``method``: ``threshold`` (water where ``index > threshold``), ``otsu`` (above Otsu's threshold of the
    region's values) or ``canny_otsu`` (above Otsu's threshold of the values along the index's Canny edges),
    see :mod:`stats.water.threshold`; ``threshold`` is also the last fallback of the other two.
    ``outline`` (in ``outline_crs``) is the nominal water body; None means the posted polygon. The region
    analysed is the outline grown by ``buffer_m`` metres. ``monitoring`` is set when the request gave
    ``outline`` or ``buffer_m``. ``extent`` adds each date's water polygon to the answer.
    """

    method: WaterMethod = "threshold"
    threshold: float = 0.0
    index: str = "NDWI"
    max_cloud_fraction: float = DEFAULT_MAX_CLOUD_FRACTION
    min_valid: float = DEFAULT_MIN_VALID
    outline: Polygon | MultiPolygon | None = None
    outline_crs: CRS | None = None
    buffer_m: float = 0.0
    monitoring: bool = False
    extent: bool = False

    @property
    def spec(self) -> IndexSpec:
        """The index whose values are thresholded."""
        return resolve_index(self.index)

    @property
    def own_region(self) -> bool:
        """Whether the region analysed differs from the posted polygon (and is read on its own)."""
        return self.outline is not None or self.buffer_m > 0

    @classmethod
    def from_dict(cls, data: Any, *, crs: Any = "EPSG:4326",
                  max_vertices: int = DEFAULT_MAX_VERTICES) -> WaterOptions | None:
        """Parse the ``water`` object of a request (``true`` for all defaults; absent, null or false for
        none). ``crs`` is the request's CRS, in which ``outline`` is read; ``max_vertices`` bounds it as it
        bounds the posted polygon.

        >>> WaterOptions.from_dict({"buffer_m": 50}).method
        'canny_otsu'
        >>> WaterOptions.from_dict({"buffer_m": -1})
        Traceback (most recent call last):
        ...
        stats.errors.InvalidRequestError: water.buffer_m: expected a number between 0 and 10000 (m), got -1
        """
        if data is None or data is False:
            return None
        if data is True:
            return cls()
        if not isinstance(data, dict):
            raise InvalidRequestError(
                f"water: expected an object such as {{'method': 'otsu'}} or {{'outline': <polygon>, 'buffer_m': 100}}"
                f" or true, got {data!r:.80}")
        known_fields(data, WATER_FIELDS, "water")
        outline, outline_crs = None, None
        if data.get("outline") is not None:
            outline, outline_crs = parse_outline(data["outline"], crs, max_vertices)
        monitoring = outline is not None or data.get("buffer_m") is not None
        buffer_default = DEFAULT_BUFFER_M if outline is not None else 0.0
        raw_buffer = data.get("buffer_m")
        buffer_m = buffer_default if raw_buffer is None else number(raw_buffer, "water.buffer_m", 0, MAX_BUFFER_M, "m")
        method = data.get("method", "canny_otsu" if monitoring else "threshold")
        if method not in WATER_METHODS:
            raise InvalidRequestError(f"water.method: expected one of {list(WATER_METHODS)}, got {method!r:.80}")
        index = data.get("index", "NDWI")
        if not isinstance(index, str) or index.upper() not in BUILTIN_INDICES:
            raise InvalidRequestError(
                f"water.index: expected a built-in index name such as 'NDWI' or 'MNDWI', got {index!r:.60}")
        return cls(
            method=method,
            threshold=number(data.get("threshold", 0.0), "water.threshold", -1, 1),
            index=index.upper(),
            max_cloud_fraction=unit_interval(data.get("max_cloud_fraction", DEFAULT_MAX_CLOUD_FRACTION),
                                             "water.max_cloud_fraction"),
            min_valid=unit_interval(data.get("min_valid", DEFAULT_MIN_VALID), "water.min_valid"),
            outline=outline,
            outline_crs=outline_crs,
            buffer_m=buffer_m,
            monitoring=monitoring,
            extent=flag(data.get("extent"), "water.extent", monitoring),
        )


def parse_outline(value: Any, crs: Any, max_vertices: int) -> tuple[Polygon | MultiPolygon, CRS]:
    """The nominal outline: a valid (Multi)Polygon in GeoJSON or WKT, in ``crs`` unless it declares its own.
    It is not repaired (a nominal outline should be right as given); errors name ``water.outline``.

    >>> parse_outline({"type": "Point", "coordinates": [15, 46]}, "EPSG:4326", 10)
    Traceback (most recent call last):
    ...
    stats.errors.InvalidGeometryError: water.outline: GeoJSON type 'Point' is not supported; expected Polygon, \
MultiPolygon, Feature or FeatureCollection of polygons
    """
    try:
        return parse_geometry(value, crs, repair=False, max_vertices=max_vertices)
    except InvalidGeometryError as exc:
        raise InvalidGeometryError("water.outline: " + str(exc).removeprefix("geometry: ")) from exc
