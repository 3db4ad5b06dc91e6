"""Sentinel Hub Batch Statistical API on the polyfis engine: the request, its features and each feature's output.

A request is a Statistical API request (``input.data``, ``aggregation``, ``calculations``, see
:mod:`.statistical`) whose ``input.features`` is a GeoPackage of polygons (on S3 or in the server's local folder,
:mod:`.storage`) instead of ``input.bounds``, and whose ``output`` is where one JSON file per feature goes. Each
feature is answered exactly as ``POST /api/v1/statistics`` answers its polygon (:func:`.statistical.run_statistics`)
and written, as Sentinel Hub writes it, to ``<output>/<request id>/<feature id>.json`` (or the output's template
with ``<REQUEST_ID>``, ``<ID>``, ``<IDENTIFIER>``) as ``{"id", "identifier", "response"}``, or ``{"id",
"identifier", "error": {"type", "message"}}`` when the feature cannot be computed.

The feature id is the GeoPackage's feature id (``fid``); ``identifier`` is its ``identifier`` column (a string) when
it has one, else null. The job around it (statuses, analysis, start, stop, resume) is
:mod:`.batch_statistical_jobs`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..archive.catalog import Archive
from ..errors import InvalidRequestError, StatsError
from ..fields import known_fields
from ..request import Limits
from .statistical import parse_request, run_statistics
from .storage import Location, parse_location, public_location

log = logging.getLogger(__name__)

#: Fields of a Batch Statistical request body.
REQUEST_FIELDS = frozenset({"input", "aggregation", "calculations", "output", "description"})
#: Fields of its ``input``.
INPUT_FIELDS = frozenset({"features", "data"})
#: Placeholders of an output template, and those of which one must be there to make file names unique.
PLACEHOLDERS = ("<REQUEST_ID>", "<ID>", "<IDENTIFIER>")
UNIQUE_PLACEHOLDERS = ("<ID>", "<IDENTIFIER>")
#: The GeoPackage column whose value becomes each output's ``identifier``.
IDENTIFIER_COLUMN = "identifier"
#: A stand-in polygon (CRS84) with which the statistical part of a request is checked before its features are read.
_STAND_IN = {"type": "Polygon", "coordinates": [[[0.0, 0.0], [0.001, 0.0], [0.001, 0.001], [0.0, 0.001], [0.0, 0.0]]]}
_CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
_PLACEHOLDER = re.compile(r"<[^<>]*>")


@dataclass(frozen=True)
class BatchStatisticalRequest:
    """A checked Batch Statistical request: the ``body`` as given (stored with the job), where its features are and
    where its outputs go (``template``: the output names its files with placeholders, else it is a folder)."""

    body: Mapping[str, Any]
    features: Location
    output: Location
    template: bool

    @classmethod
    def from_dict(cls, body: Any, *, root: Path | None, buckets: frozenset[str] = frozenset(),
                  limits: Limits | None = None) -> BatchStatisticalRequest:
        """Parse and check a request body; ``root`` is the server's local folder (None: S3 only), ``buckets``
        those an S3 location without keys may use the server's credentials for.

        The statistical part (data source, aggregation, evalscript, calculations) is checked as the Statistical
        API checks it, over a stand-in polygon: what depends on the features (their CRS, the resolution in its
        units) is checked when the job is analysed.

        :raises InvalidRequestError: naming the field, what was received and what was expected.
        """
        if not isinstance(body, dict):
            raise InvalidRequestError("request body: expected a JSON object with 'input', 'aggregation' and "
                                      f"'output', got {type(body).__name__}")
        known_fields(body, REQUEST_FIELDS, "request body")
        for name in ("input", "aggregation", "output"):
            if name not in body:
                raise InvalidRequestError(f"{name}: missing; a Batch Statistical request needs 'input' (features and "
                                          "data), 'aggregation' and 'output'")
        input_ = body["input"]
        if not isinstance(input_, dict):
            raise InvalidRequestError(f"input: expected an object with 'features' and 'data', got {input_!r:.80}")
        unknown = sorted(set(input_) - INPUT_FIELDS)
        if unknown:
            raise InvalidRequestError(f"input: unknown fields {unknown}; expected 'features' (where the GeoPackage "
                                      "is) and 'data'")
        if "features" not in input_:
            raise InvalidRequestError("input.features: missing; expected {'s3': {'url': 's3://bucket/fields.gpkg'}}")
        features = parse_location(input_["features"], "input.features", root, buckets)
        output = parse_location(body["output"], "output", root, buckets)
        template = _output_template(output)
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise InvalidRequestError(f"description: got {type(description).__name__}; expected a string")
        aggregation = body["aggregation"]
        if isinstance(aggregation, dict) and "evalscriptReference" in aggregation:
            raise InvalidRequestError("aggregation.evalscriptReference: polyfis reads the evalscript from the request; "
                                      "give it as 'aggregation.evalscript'")
        parse_request(statistical_body(body, _STAND_IN, _CRS84), limits)
        return cls(dict(body), features, output, template)


def _output_template(output: Location) -> bool:
    """Whether ``output`` is a template of file names (it holds ``<ID>`` or ``<IDENTIFIER>``), else a folder."""
    found = set(_PLACEHOLDER.findall(output.given))
    unknown = sorted(found - set(PLACEHOLDERS))
    if unknown:
        raise InvalidRequestError(f"output: unknown placeholders {unknown}; expected among {list(PLACEHOLDERS)}")
    if found and not found & set(UNIQUE_PLACEHOLDERS):
        raise InvalidRequestError("output: a template must hold <ID> or <IDENTIFIER>, so that each feature has its "
                                  "own file; or give a folder, where the files go to <folder>/<request id>/<id>.json")
    return bool(found)


def statistical_body(body: Mapping[str, Any], geometry: Mapping[str, Any], crs: str) -> dict[str, Any]:
    """The Statistical API request of one feature: the batch request's data, aggregation and calculations over
    ``geometry`` (GeoJSON, in ``crs``)."""
    input_ = body.get("input")
    data = input_.get("data") if isinstance(input_, dict) else None
    out: dict[str, Any] = {"input": {"bounds": {"geometry": dict(geometry), "properties": {"crs": crs}},
                                     "data": data},
                           "aggregation": body.get("aggregation")}
    if body.get("calculations") is not None:
        out["calculations"] = body["calculations"]
    return out


def public_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The request as a client sees it again: the locations without their secret keys."""
    out = dict(body)
    input_ = out.get("input")
    if isinstance(input_, dict) and isinstance(input_.get("features"), dict):
        out["input"] = {**input_, "features": public_location(input_["features"])}
    if isinstance(out.get("output"), dict):
        out["output"] = public_location(out["output"])
    return out


def output_location(request: BatchStatisticalRequest, request_id: str, feature_id: int,
                    identifier: str | None) -> Location:
    """Where the output of a feature goes: ``<folder>/<request id>/<id>.json``, or the template filled in."""
    if not request.template:
        return request.output.child(f"{request_id}/{feature_id}.json")
    return request.output.substituted({"<REQUEST_ID>": request_id, "<ID>": str(feature_id),
                                       "<IDENTIFIER>": "" if identifier is None else identifier})


# ---- features ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Feature:
    """One feature of the GeoPackage: its id, identifier and geometry (GeoJSON, None when it has none or it is
    not a polygon: ``problem`` then says why)."""

    id: int
    identifier: str | None
    geometry: dict[str, Any] | None
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The feature as kept in the job's folder."""
        return {"id": self.id, "identifier": self.identifier, "geometry": self.geometry, "problem": self.problem}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Feature:
        """A feature kept by :meth:`to_json`."""
        return cls(int(value["id"]), value["identifier"], value["geometry"], value.get("problem"))


def read_features(path: Path, given: str, max_features: int) -> tuple[str, list[Feature]]:
    """The CRS (``EPSG:<code>``, else WKT) and the features of the GeoPackage at ``path`` (``given`` names it
    in messages), in feature-id order.

    :raises InvalidRequestError: when it is not a GeoPackage of one CRS, holds no feature or more than
        ``max_features``.
    """
    import pyogrio
    import shapely
    from pyogrio.errors import DataSourceError

    try:
        info = pyogrio.read_info(path)
        if info["features"] > max_features:
            raise InvalidRequestError(f"input.features: {given} holds {info['features']} features, more than the "
                                      f"limit of {max_features} per request; split it")
        frame = pyogrio.read_dataframe(path, fid_as_index=True)
    except (DataSourceError, OSError, ValueError, RuntimeError) as exc:
        if isinstance(exc, InvalidRequestError):
            raise
        raise InvalidRequestError(f"input.features: {given} is not a GeoPackage that can be read") from exc
    if info.get("driver") != "GPKG":
        raise InvalidRequestError(f"input.features: {given} is a {info.get('driver')} file; expected a GeoPackage")
    if frame.crs is None:
        raise InvalidRequestError(f"input.features: the layer of {given} has no CRS; expected polygons in one CRS")
    if len(frame) == 0:
        raise InvalidRequestError(f"input.features: {given} holds no feature; expected at least one polygon")
    epsg = frame.crs.to_epsg()
    crs = f"EPSG:{epsg}" if epsg else frame.crs.to_wkt()
    identifiers = frame[IDENTIFIER_COLUMN] if IDENTIFIER_COLUMN in frame.columns else None
    features = []
    for position, (fid, geometry) in enumerate(zip(frame.index, frame.geometry)):
        identifier = None
        if identifiers is not None and identifiers.iloc[position] is not None:
            value = identifiers.iloc[position]
            identifier = None if value != value else str(value)  # NaN of an empty cell
        problem = None
        if geometry is None or geometry.is_empty:
            problem = "the feature has no geometry"
        elif geometry.geom_type not in ("Polygon", "MultiPolygon"):
            problem = f"the feature's geometry is a {geometry.geom_type}; expected a Polygon or MultiPolygon"
        features.append(Feature(int(fid), identifier, None if problem else json.loads(shapely.to_geojson(geometry)),
                                problem))
    return crs, sorted(features, key=lambda f: f.id)


def check_with_feature(request: BatchStatisticalRequest, crs: str, features: list[Feature],
                       limits: Limits | None) -> None:
    """Check the request over its first polygon, in the features' CRS (the resolution in its units).

    :raises InvalidRequestError: naming the field.
    """
    first = next((f for f in features if f.geometry is not None), None)
    if first is None:
        raise InvalidRequestError("input.features: no feature is a Polygon or MultiPolygon")
    try:
        parse_request(statistical_body(request.body, first.geometry or {}, crs), limits)
    except InvalidRequestError as exc:
        if str(exc).startswith(("input.bounds", "crs")):
            raise InvalidRequestError(f"input.features: feature {first.id}: {exc}") from exc
        raise


def feature_output(request: BatchStatisticalRequest, crs: str, feature: Feature, archive: Archive,
                   limits: Limits | None) -> dict[str, Any]:
    """The output document of one feature: its Statistical API answer, or the error that stopped it."""
    head: dict[str, Any] = {"id": feature.id, "identifier": feature.identifier}
    if feature.geometry is None:
        return {**head, "error": {"type": "BAD_REQUEST", "message": feature.problem or "no geometry"}}
    try:
        response = run_statistics(statistical_body(request.body, feature.geometry, crs), archive, limits=limits)
    except InvalidRequestError as exc:
        return {**head, "error": {"type": "BAD_REQUEST", "message": str(exc)}}
    except StatsError as exc:
        log.warning("batch statistical feature %s: %s", feature.id, exc)
        return {**head, "error": {"type": "EXECUTION_ERROR", "message": "the feature's imagery could not be read"}}
    return {**head, "response": response}
