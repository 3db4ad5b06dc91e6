"""Batch input: polygons read from GeoJSON, GeoPackage (any vector format GDAL reads) or CSV with WKT.

A row whose geometry cannot be read is kept with its error, so that the output names it; geometries are
parsed into :class:`stats.request.Area` objects once, when the batch is planned (:mod:`.plan`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from ..errors import InvalidRequestError


@dataclass(frozen=True)
class BatchPolygon:
    """One input polygon: its ``id`` (kept as given), a shapely geometry and the geometry's CRS."""

    id: Any
    geometry: BaseGeometry | None
    crs: str = "EPSG:4326"
    error: str | None = None  # why the input row has no usable geometry


def read_polygons(path: str | os.PathLike[str], *, id_field: str | None = None, wkt_field: str | None = None,
                  crs: str | None = None) -> list[BatchPolygon]:
    """Read polygons from GeoJSON, GeoPackage (or any vector format GDAL reads) or CSV with a WKT column.

    The id is the ``id_field`` attribute (default ``id`` when present), else the feature's position
    (0-based). A CSV's WKT column is ``wkt_field`` (default: ``wkt``, ``WKT``, ``geometry`` or ``geom``)
    and its CRS ``crs`` (default EPSG:4326); a vector file's CRS comes from the file (``crs`` overrides).
    A row whose geometry cannot be read is kept with ``error`` set, so the output says why.

    :raises InvalidRequestError: when the file cannot be read or has no such column.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidRequestError(f"polygons: {str(path)!r} is not a file; expected GeoJSON, GeoPackage or CSV")
    if path.suffix.lower() in (".csv", ".txt"):
        return _read_csv(path, id_field=id_field, wkt_field=wkt_field, crs=crs or "EPSG:4326")
    return _read_vector(path, id_field=id_field, crs=crs)


def _read_csv(path: Path, *, id_field: str | None, wkt_field: str | None, crs: str) -> list[BatchPolygon]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        wkt_col = wkt_field or next((c for c in ("wkt", "WKT", "geometry", "geom") if c in header), None)
        if wkt_col is None or wkt_col not in header:
            raise InvalidRequestError(
                f"polygons: CSV columns {header} have no WKT column {wkt_field or ''!r}; expected one named "
                "wkt, geometry or geom, or --wkt-column NAME")
        id_col = _id_column(header, id_field)
        out = []
        for i, row in enumerate(reader):
            pid: Any = row[id_col] if id_col else i
            text = (row.get(wkt_col) or "").strip()
            try:
                geom = shapely.from_wkt(text)
            except shapely.errors.GEOSException:
                out.append(BatchPolygon(pid, None, crs, f"geometry: not valid WKT ({text[:40]!r}); expected e.g. "
                                        "'POLYGON ((x y, x y, x y, x y))'"))
                continue
            out.append(BatchPolygon(pid, geom, crs))
    return out


def _id_column(header: Sequence[str], id_field: str | None) -> str | None:
    if id_field is not None and id_field not in header:
        raise InvalidRequestError(f"polygons: no id column {id_field!r}; the columns are {list(header)}")
    return id_field or ("id" if "id" in header else None)


def _read_vector(path: Path, *, id_field: str | None, crs: str | None) -> list[BatchPolygon]:
    import pyogrio.raw
    from pyogrio.errors import DataSourceError

    try:
        meta, _, geometries, columns = pyogrio.raw.read(path)
    except (DataSourceError, OSError, ValueError) as exc:
        raise InvalidRequestError(f"polygons: cannot read {path.name!r} as a vector file ({exc})") from exc
    fields = [str(f) for f in meta["fields"]]
    id_col = _id_column(fields, id_field)
    ids = list(columns[fields.index(id_col)]) if id_col else list(range(len(geometries)))
    file_crs = crs or meta.get("crs") or "EPSG:4326"
    out = []
    for pid, wkb in zip(ids, geometries):
        pid = pid.item() if isinstance(pid, np.generic) else pid
        if wkb is None:
            out.append(BatchPolygon(pid, None, file_crs, "geometry: missing"))
            continue
        out.append(BatchPolygon(pid, shapely.from_wkb(wkb), file_crs))
    return out
