"""Sentinel Hub Feature Info Service (FIS) on the polyfis engine: layers, parameters and the response.

A FIS request names a layer (from a YAML configuration, see ``stats/fixtures/layers.yaml``) whose output channels
``C0 … Cn`` are expressions over the bands (or the per-pixel cloud layers CLP/CLM), a CRS, a time range, a
WKT geometry or a bbox, a resolution, and optionally BINS, TYPE, MAXCC and UPSAMPLING/DOWNSAMPLING. The
answer is one list per channel of ``{"date", "basicStats": {"min", "max", "mean", "stDev"}, "histogram":
{"bins": [...]}}``, newest date first, with dates whose polygon has no valid pixel left out, as FIS does. A
layer with ``data_mask: true`` (like Sentinel Hub's standard layers) ends with one more channel, the data
mask, which is 1 at every pixel the statistics use.

The statistics grid is the tile's grid at RESOLUTION metres (whole metres; under 10 m the bands are
upsampled), read with the UPSAMPLING/DOWNSAMPLING methods (:mod:`stats.sampling`). TIME may be wider than the
archive (``2000-01-01/2050-01-01``): it is clipped to the archive's dates, and the acquisitions matched are
what the limits count.

Axis order follows FIS: with ``EPSG:4326`` coordinates (of GEOMETRY and BBOX) are (lat, lon); with
``CRS:84`` and every projected CRS they are (x, y) / (lon, lat).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from shapely.geometry import box

from ..clouds.options import CloudOptions, MaskParameters
from ..errors import InvalidRequestError, LayerConfigError, StatsError
from ..fields import integer, is_finite_number, optional_percent
from ..geometry import OGC_CRS84, parse_crs
from ..indices import IndexSpec, compile_index
from ..request import Area, HistogramOptions, Limits, QueryOptions, TimeRange, TimeSeriesRequest
from ..results import DateResult, TimeSeriesResult
from ..sampling import FIS_DOWNSAMPLING, Sampling
from ..zonal import MAX_BINS
from ..zonal import histogram as values_histogram

#: FIS histogram TYPE values and the polyfis histogram kind of each.
TYPES = {"EQUALFREQUENCY": "equalfrequency", "EQUIDISTANT": "equidistant", "STREAMING": "streaming"}
#: Smallest and largest RESOLUTION accepted, metres.
MIN_RESOLUTION_M = 1
MAX_RESOLUTION_M = 10_000
_FIS_STATS = ("min", "max", "mean", "std")
#: Generic OGC parameters that do not change the answer.
IGNORED = {"service", "request", "version", "warnings", "style", "preview", "showlogo", "format", "srs"}
#: Parameters whose other values polyfis does not support (value -> accepted values).
ONLY = {"priority": {"mostrecent"}}
#: FIS parameters polyfis does not support at all.
UNSUPPORTED = {"evalscript", "evalscripturl", "evalsource", "temporal", "geometry_crs"}
_KNOWN = ({"layer", "crs", "time", "geometry", "bbox", "resolution", "bins", "type", "maxcc", "upsampling",
           "downsampling"} | IGNORED | set(ONLY))


@dataclass(frozen=True)
class Layer:
    """A FIS layer: its channels (C0 … Cn) as index expressions, or the averaged-pixel probability;
    ``data_mask`` adds the data-mask channel after them."""

    name: str
    title: str
    channels: tuple[IndexSpec, ...] = ()
    kind: str = "channels"
    mask: MaskParameters = field(default_factory=MaskParameters)
    data_mask: bool = False


def load_layers(path: str | os.PathLike[str]) -> dict[str, Layer]:
    """Read a layer configuration (YAML, see ``stats/fixtures/layers.yaml``).

    :raises LayerConfigError: naming the file and the bad entry.
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LayerConfigError(f"cannot read FIS layer configuration {str(path)!r}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("layers"), dict) or not data["layers"]:
        raise LayerConfigError(f"{str(path)!r}: expected a mapping 'layers: {{NAME: {{channels: [...]}}}}'")
    layers = {}
    for name, spec in data["layers"].items():
        if not isinstance(spec, dict):
            raise LayerConfigError(f"{str(path)!r}: layer {name!r} must be a mapping")
        kind = spec.get("kind", "channels")
        cloud = spec.get("cloud") or {}
        try:
            mask = MaskParameters(**cloud)
            channels = () if kind == "cloud_probability" else tuple(
                compile_index(f"C{i}", str(expr)) for i, expr in enumerate(spec.get("channels") or []))
        except (TypeError, StatsError) as exc:
            raise LayerConfigError(f"{str(path)!r}: layer {name!r}: {exc}") from exc
        if kind not in ("channels", "cloud_probability") or (kind == "channels" and not channels):
            raise LayerConfigError(
                f"{str(path)!r}: layer {name!r} needs 'channels' (a list of expressions) or kind: cloud_probability")
        data_mask = spec.get("data_mask", False)
        if not isinstance(data_mask, bool) or (data_mask and kind != "channels"):
            raise LayerConfigError(f"{str(path)!r}: layer {name!r}: data_mask must be true or false (and only "
                                   f"for a layer of channels), got {data_mask!r}")
        layers[str(name)] = Layer(name=str(name), title=str(spec.get("title", name)), channels=channels,
                                  kind=kind, mask=mask, data_mask=data_mask)
    return layers


def _parse_resolution(value: str, geographic: bool) -> int:
    """RESOLUTION: ``10m`` (metres) or a plain number in CRS units (metres for projected CRSs), rounded to
    whole metres."""
    text = value.strip().lower()
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*(m?)", text)
    if match is None:
        raise InvalidRequestError(f"RESOLUTION: got {value!r}; expected metres such as '10m' or '20'")
    if geographic and not match.group(2):
        raise InvalidRequestError(
            f"RESOLUTION: got {value!r} with a geographic CRS; expected metres with an 'm' suffix such as '10m'")
    metres = float(match.group(1))
    if not MIN_RESOLUTION_M <= metres <= MAX_RESOLUTION_M:
        raise InvalidRequestError(
            f"RESOLUTION: got {value!r}; expected {MIN_RESOLUTION_M} to {MAX_RESOLUTION_M} metres")
    return max(MIN_RESOLUTION_M, round(metres))


def build_request(params: Mapping[str, str], layers: Mapping[str, Layer], *,
                  limits: Limits | None = None) -> tuple[TimeSeriesRequest, Layer]:
    """Turn FIS parameters (keys in any case) into an engine request and the layer it answers; ``limits``
    bound the vertices.

    :raises InvalidRequestError: naming the parameter, what was received and what was expected.
    """
    p = {k.lower(): v for k, v in params.items()}
    for name in sorted(set(p) & UNSUPPORTED):
        raise InvalidRequestError(
            f"{name.upper()}: not supported by polyfis; layers are configured server-side (POLYFIS_LAYERS)")
    unknown = sorted(set(p) - _KNOWN - UNSUPPORTED)
    if unknown:
        shown = [u.upper()[:40] for u in unknown[:10]]
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise InvalidRequestError(f"unknown FIS parameters {shown}{more}; expected among "
                                  f"{sorted(n.upper() for n in _KNOWN - IGNORED)}")
    for name, accepted in ONLY.items():
        if p.get(name) and str(p[name]).lower() not in accepted:
            raise InvalidRequestError(f"{name.upper()}: got {p[name]!r}; polyfis supports only {sorted(accepted)}")
    missing = [name.upper() for name in ("layer", "crs", "time") if not p.get(name)]
    if missing:
        raise InvalidRequestError(f"missing FIS parameters {missing}; expected LAYER, CRS, TIME, GEOMETRY or BBOX")
    layer = layers.get(str(p["layer"]))
    if layer is None:
        raise InvalidRequestError(f"LAYER: unknown layer {p['layer']!r}; expected one of {sorted(layers)}")
    limits = limits or Limits()
    crs_text = str(p["crs"])
    crs = parse_crs(crs_text)
    lat_lon = crs.to_epsg() == 4326 and crs_text.strip().upper() not in OGC_CRS84
    geom: Any
    if p.get("geometry"):
        geom = str(p["geometry"])
    elif p.get("bbox"):
        parts = str(p["bbox"]).split(",")
        try:
            numbers = [float(v) for v in parts]
        except ValueError:
            numbers = []
        if len(numbers) != 4 or not all(is_finite_number(v) for v in numbers):
            raise InvalidRequestError(f"BBOX: got {p['bbox']!r}; expected four numbers 'minx,miny,maxx,maxy'")
        if numbers[0] >= numbers[2] or numbers[1] >= numbers[3]:
            raise InvalidRequestError(f"BBOX: got {p['bbox']!r}; expected min values below max values")
        geom = box(*numbers)
    else:
        raise InvalidRequestError(
            "missing FIS parameter GEOMETRY or BBOX; expected a WKT polygon or 'minx,miny,maxx,maxy'")
    area = Area.parse(geom, crs, max_vertices=limits.max_vertices, swap_axes=lat_lon)
    resolution = _parse_resolution(str(p.get("resolution") or "10m"), crs.is_geographic)
    sampling = Sampling.parse(p.get("upsampling") or None, p.get("downsampling") or None,
                              ("UPSAMPLING", "DOWNSAMPLING"), down_accepted=FIS_DOWNSAMPLING)
    time_range = TimeRange.parse(str(p["time"]), "TIME", single=True)
    histogram = None
    if p.get("bins"):
        bins = integer(str(p["bins"]), "BINS", 1, MAX_BINS, text=True, got_first=True)
        kind = str(p.get("type") or "EQUALFREQUENCY").upper()
        if kind not in TYPES:
            raise InvalidRequestError(f"TYPE: got {p.get('type')!r}; expected one of {sorted(TYPES)}")
        histogram = HistogramOptions(bins=bins, kind=TYPES[kind])  # type: ignore[arg-type]
    elif p.get("type") and str(p["type"]).upper() not in TYPES:
        raise InvalidRequestError(f"TYPE: got {p.get('type')!r}; expected one of {sorted(TYPES)}")
    raw_maxcc = p.get("maxcc")
    maxcc = optional_percent(None if raw_maxcc is None else str(raw_maxcc), "MAXCC", text=True, got_first=True)
    mask = layer.mask
    cloud = CloudOptions(mode="averaged", resolution=mask.resolution, threshold=mask.threshold,
                         average_over=mask.average_over, dilation_size=mask.dilation_size)
    options = QueryOptions(bands=(), indices=layer.channels, statistics=_FIS_STATS, resolution=resolution,
                           cloud=cloud, max_cloud_cover=maxcc, histogram=histogram, sampling=sampling)
    request = TimeSeriesRequest(area, time_range, options)
    return request, layer


def fis_response(result: TimeSeriesResult, layer: Layer,
                 histogram: bool | HistogramOptions) -> dict[str, list[dict[str, Any]]]:
    """The FIS answer: ``{"C0": [{date, basicStats, histogram?}, ...], ...}``, newest date first; ``histogram``
    is the request's histogram options (or True/False: whether to give the histograms the series holds)."""
    entries = sorted((d for d in result.series if d.error is None and d.valid_pixels > 0),
                     key=lambda d: d.date, reverse=True)
    out: dict[str, list[dict[str, Any]]] = {}
    if layer.kind == "cloud_probability":
        rows = []
        for d in entries:
            p = d.cloud_probability
            row: dict[str, Any] = {"date": d.date.isoformat(),
                                   "basicStats": {"min": p, "max": p, "mean": p, "stDev": 0.0}}
            if histogram:
                row["histogram"] = {"bins": [{"value": p, "count": 1.0}]}
            rows.append(row)
        return {"C0": rows}
    for spec in layer.channels:
        rows = []
        for d in entries:
            stats = d.indices.get(spec.name, {})
            if not stats or stats.get("mean") is None:
                continue
            row = {"date": d.date.isoformat(),
                   "basicStats": {"min": stats["min"], "max": stats["max"], "mean": stats["mean"],
                                  "stDev": stats["std"]}}
            if histogram:
                row["histogram"] = {"bins": list(d.histograms.get(spec.name, []))}
            rows.append(row)
        out[spec.name] = rows
    if layer.data_mask:
        bins = histogram if isinstance(histogram, HistogramOptions) else HistogramOptions() if histogram else None
        out[f"C{len(layer.channels)}"] = [_mask_row(d, bins) for d in entries]
    return out


def _mask_row(entry: DateResult, bins: HistogramOptions | None) -> dict[str, Any]:
    """The data-mask channel of one date: 1 at each of the date's valid pixels (those the statistics use)."""
    row: dict[str, Any] = {"date": entry.date.isoformat(),
                           "basicStats": {"min": 1.0, "max": 1.0, "mean": 1.0, "stDev": 0.0}}
    if bins is not None:
        row["histogram"] = {"bins": values_histogram(np.ones(entry.valid_pixels), bins.bins, bins.kind)}
    return row
