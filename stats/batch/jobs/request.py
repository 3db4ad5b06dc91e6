"""Batch job requests: ``{"polygons": FeatureCollection, "crs", "time", "options"}`` checked whole, up front.

Every polygon, the time range and the options are parsed when the job is submitted, so that a bad job is
a 400 naming the field, never a job that fails later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyproj import CRS

from ...errors import InvalidRequestError
from ...fields import known_fields
from ...geometry import crs_name, parse_crs
from ...request import Area, Limits, TimeRange
from ..inputs import BatchPolygon
from ..plan import batch_options

#: Most polygons of one batch job, unless the caller sets another limit.
DEFAULT_MAX_POLYGONS = 100_000
#: Fields of a batch job request body.
REQUEST_FIELDS = frozenset({"polygons", "crs", "time", "options"})

_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class BatchJobRequest:
    """A validated batch job: polygons (GeoJSON features with ``properties.id`` and ``properties.crs``),
    the time range as given (``start``, ``end``) and the time-series ``options`` of every polygon."""

    features: tuple[dict[str, Any], ...]
    start: str
    end: str
    crs: str = "EPSG:4326"
    options: Mapping[str, Any] | None = None

    @classmethod
    def from_dict(cls, body: Any, *, max_polygons: int = DEFAULT_MAX_POLYGONS,
                  limits: Limits | None = None) -> BatchJobRequest:
        """Parse and validate a request body ``{"polygons": FeatureCollection, "crs", "time", "options"}``.

        Each feature's id is ``properties.id``, else the feature's ``id`` member, else its position
        (0-based); ids must be strings or integers and unique. Geometries must be Polygon or MultiPolygon
        in ``crs`` (x/lon first; default the FeatureCollection's ``crs`` member, else EPSG:4326).
        ``options`` are time-series request fields but ``geometry``, ``time`` and ``crs``.

        :raises InvalidRequestError: naming the field, what was received and what was expected.
        """
        if not isinstance(body, dict):
            raise InvalidRequestError("request body: expected a JSON object with 'polygons', 'time' and "
                                      f"'options', got {type(body).__name__}")
        known_fields(body, REQUEST_FIELDS, "request body")
        collection = body.get("polygons")
        features = _features(collection, max_polygons)
        crs = body.get("crs", _collection_crs(collection))
        if not isinstance(crs, str):
            raise InvalidRequestError(f"crs: expected a string such as 'EPSG:4326', got {crs!r:.80}")
        if "time" not in body:
            raise InvalidRequestError("time: missing; expected {'from': '2023-01-01', 'to': '2023-12-31'}")
        time_range, start, end = _time_strings(body["time"])
        options = body.get("options")
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise InvalidRequestError(f"options: expected an object of time-series fields (bands, indices, statistics, "
                                      f"cloud, ...), got {type(options).__name__}")
        batch_options(options)
        limits = limits or Limits()
        limits.check_range(time_range)
        job_crs = JobCRS(parse_crs(crs))  # once per job: parsing and naming a PROJ or WKT CRS costs up to 0.2 s
        parsed = tuple(_feature(i, feature, job_crs, limits.max_vertices) for i, feature in enumerate(features))
        seen: dict[str, int] = {}
        for i, feature in enumerate(parsed):
            key = str(feature["properties"]["id"])
            if key in seen:
                raise InvalidRequestError(
                    f"polygons.features[{i}]: id {feature['properties']['id']!r} is also the id of "
                    f"features[{seen[key]}]; expected unique ids")
            seen[key] = i
        return cls(parsed, start, end, crs, dict(options))

    def to_json(self) -> dict[str, Any]:
        """The request as stored in ``job.json`` (without the polygons)."""
        return {"crs": self.crs, "time": {"from": self.start, "to": self.end}, "options": dict(self.options or {})}

    def collection(self) -> dict[str, Any]:
        """The polygons as a GeoJSON FeatureCollection."""
        return {"type": "FeatureCollection", "features": list(self.features)}


def _features(collection: Any, max_polygons: int) -> list[Any]:
    expected = "expected a GeoJSON FeatureCollection of Polygon/MultiPolygon features"
    if collection is None:
        raise InvalidRequestError(f"polygons: missing; {expected}")
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        got = f"a {collection.get('type')!r} object" if isinstance(collection, dict) else type(collection).__name__
        raise InvalidRequestError(f"polygons: got {got:.80}; {expected}")
    features = collection.get("features")
    if not isinstance(features, list):
        raise InvalidRequestError(f"polygons.features: got {type(features).__name__}; expected a list of Features")
    if not features:
        raise InvalidRequestError("polygons.features: the list is empty; expected at least one Polygon feature")
    if len(features) > max_polygons:
        raise InvalidRequestError(f"polygons: {len(features)} features is more than the limit of {max_polygons} "
                                  "per batch; split the batch")
    return features


def _collection_crs(collection: Any) -> str:
    """The FeatureCollection's (GeoJSON 2008) ``crs`` member name, else EPSG:4326."""
    member = collection.get("crs") if isinstance(collection, dict) else None
    if member is None:
        return "EPSG:4326"
    properties = member.get("properties") if isinstance(member, dict) else None
    name = properties.get("name") if isinstance(properties, dict) else None
    if not isinstance(name, str):
        raise InvalidRequestError(f"polygons.crs: got {member!r:.80}; expected "
                                  "{'type': 'name', 'properties': {'name': 'EPSG:32633'}} or the body's 'crs'")
    return name


def _time_strings(value: Any) -> tuple[TimeRange, str, str]:
    """The parsed range and its two ends as given, from ``{"from", "to"}`` or ``"from/to"``."""
    time_range = TimeRange.parse(value)
    if isinstance(value, str):
        start, _, end = value.partition("/")
        return time_range, start, end
    return time_range, value["from"], value["to"]


class JobCRS:
    """The job's CRS, parsed once, and its name (``EPSG:<code>`` or WKT), worked out once on first use."""

    def __init__(self, crs: CRS) -> None:
        self.crs = crs
        self._name: str | None = None

    def name_of(self, area: Area) -> str:
        """The CRS name of a polygon parsed in the job's CRS (or in its own, from a GeoJSON ``crs`` member)."""
        if area.crs is not self.crs:
            return area.crs_name
        if self._name is None:
            self._name = crs_name(self.crs)
        return self._name


def _feature(i: int, feature: Any, job_crs: JobCRS, max_vertices: int) -> dict[str, Any]:
    """One validated feature: ``{"type": "Feature", "properties": {"id", "crs"}, "geometry"}``."""
    where = f"polygons.features[{i}]"
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        got = f"a {feature.get('type')!r} object" if isinstance(feature, dict) else type(feature).__name__
        raise InvalidRequestError(f"{where}: got {got:.80}; expected a GeoJSON Feature")
    properties = feature.get("properties")
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise InvalidRequestError(f"{where}.properties: got {type(properties).__name__}; expected an object or null")
    pid: Any = properties.get("id")
    field = "properties.id"
    if pid is None:
        pid, field = feature.get("id"), "id"
    if pid is None:
        pid = i
    if isinstance(pid, bool) or not isinstance(pid, (str, int)) or (
            isinstance(pid, int) and not _INT64[0] <= pid <= _INT64[1]):
        raise InvalidRequestError(f"{where}.{field}: got {pid!r:.80}; expected a string or a 64-bit integer")
    geometry = feature.get("geometry")
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    if kind not in ("Polygon", "MultiPolygon"):
        got = f"type {kind!r}" if isinstance(geometry, dict) else repr(geometry)
        raise InvalidRequestError(f"{where}.geometry: got {got:.80}; expected a GeoJSON Polygon or MultiPolygon")
    try:
        area = Area.parse(geometry, job_crs.crs, max_vertices=max_vertices)
    except InvalidRequestError as exc:
        raise InvalidRequestError(f"{where} (id {pid!r:.40}): {exc}") from exc
    return {"type": "Feature", "properties": {"id": pid, "crs": job_crs.name_of(area)}, "geometry": geometry}


def batch_polygons(collection: Mapping[str, Any]) -> list[BatchPolygon]:
    """The :class:`BatchPolygon` list of a stored ``polygons.geojson``."""
    from shapely.geometry import shape

    return [BatchPolygon(f["properties"]["id"], shape(f["geometry"]), f["properties"]["crs"])
            for f in collection["features"]]
