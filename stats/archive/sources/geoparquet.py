"""A stac-geoparquet index of an archive, searched through DuckDB.

:func:`write_index` writes ``items.parquet`` (stac-geoparquet) beside a local archive's ``collection.json``:
one row per item, sorted by datetime and written in small row groups, so that a search's time range and bbox
are answered from the row groups' statistics (DuckDB pushes both filters down into the Parquet scan) and only
the rows that match are turned back into STAC Items. Asset hrefs are stored relative to the index's folder, so
the archive can be moved or copied whole.

:class:`GeoparquetSource` answers searches from it; every polyfis writer (``ArchiveWriter.save``,
``polyfis ingest``, ``polyfis clouds``) rewrites it, and ``polyfis index`` builds it for a catalog written by
something else.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pystac
import stac_geoparquet.arrow as sga
from shapely.geometry.base import BaseGeometry

from ...errors import ArchiveError
from ..catalog import COLLECTION_FILE, Acquisition, acquisition_from_item
from . import INDEX_FILE, ArchiveSource, date_summary, missing_ids

#: Rows per Parquet row group: the unit the time and bbox statistics skip.
ROW_GROUP_ROWS = 1024
#: The column holding each item's whole JSON (hrefs relative to the index): a search reads it for the rows
#: that match only, which is much faster than rebuilding items from the stac-geoparquet columns.
ITEM_COLUMN = "polyfis:item"
#: The column of the 1-degree cell of each item's bbox centre: rows are sorted by it, then by datetime, so that
#: an area's items lie in a few row groups whose bbox statistics the search reads.
CELL_COLUMN = "polyfis:cell"
#: Cell size, degrees.
CELL_DEGREES = 1.0
#: The Parquet metadata key of stac-geoparquet, whose ``collections`` hold the collection's id and title.
GEOPARQUET_KEY = b"stac-geoparquet"
#: The collection property holding polyfis's own archive metadata (as in ``collection.json``).
METADATA_PROPERTY = "polyfis:metadata"


def index_of(text: str) -> Path | None:
    """The stac-geoparquet index an archive reference names: a ``.parquet`` file, or the ``items.parquet``
    beside a folder's (or a ``collection.json``'s) catalog; None when there is none."""
    path = Path(text)
    if path.suffix == ".parquet":
        return path
    folder = path if path.is_dir() else path.parent if path.name == COLLECTION_FILE else None
    if folder is not None and (folder / INDEX_FILE).is_file():
        return folder / INDEX_FILE
    return None


def _cells(table: pa.Table) -> pa.Array:
    """The cell number of each row's bbox centre (row-major 1-degree cells from (-180, -90))."""
    bbox = table.column("bbox").combine_chunks()
    x = (bbox.field("xmin").to_numpy(zero_copy_only=False) + bbox.field("xmax").to_numpy(zero_copy_only=False)) / 2
    y = (bbox.field("ymin").to_numpy(zero_copy_only=False) + bbox.field("ymax").to_numpy(zero_copy_only=False)) / 2
    return pa.array(cell_numbers(x, y))


def cell_numbers(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-major cell numbers of :data:`CELL_DEGREES` cells of points (lon, lat), as int32."""
    columns = int(round(360 / CELL_DEGREES))
    col = np.clip(np.floor((x + 180) / CELL_DEGREES), 0, columns - 1)
    row = np.clip(np.floor((y + 90) / CELL_DEGREES), 0, int(round(180 / CELL_DEGREES)) - 1)
    return (row * columns + col).astype(np.int32)


def _relative(href: str, folder: Path) -> str:
    if href.startswith(("http://", "https://", "s3://", "gs://", "/vsi")) or not os.path.isabs(href):
        return href
    return os.path.relpath(href, folder)


def _absolute(href: str, folder: str) -> str:
    if href.startswith("/") or "://" in href:
        return href
    return f"{folder}/{href[2:] if href.startswith('./') else href}"


def index_dict(item: pystac.Item, folder: Path, collection_id: str) -> dict[str, Any]:
    """The item as an index row's dict: asset hrefs made absolute (against the item's own file), then relative
    to the index's ``folder``; no links."""
    data = item.to_dict(include_self_link=False, transform_hrefs=False)
    for key, asset in data.get("assets", {}).items():
        asset["href"] = _relative(item.assets[key].get_absolute_href() or asset["href"], folder)
    data["links"] = []
    data["collection"] = collection_id
    return data


def index_table(dicts: Sequence[dict[str, Any]]) -> pa.Table:
    """The index rows of item dicts: stac-geoparquet columns plus :data:`ITEM_COLUMN` and :data:`CELL_COLUMN`,
    sorted by cell, datetime and id."""
    table = sga.parse_stac_items_to_arrow(dicts).read_all()
    table = table.append_column(ITEM_COLUMN, pa.array([json.dumps(d, separators=(",", ":")) for d in dicts]))
    table = table.append_column(CELL_COLUMN, _cells(table))
    order = [(CELL_COLUMN, "ascending"), ("datetime", "ascending"), ("id", "ascending")]
    return table.take(pc.sort_indices(table, sort_keys=order))


def write_index_tables(tables: Iterable[pa.Table], path: str | os.PathLike[str], *, collection_id: str,
                       title: str | None = None, metadata: dict[str, Any] | None = None) -> Path:
    """Write index tables of one schema (:func:`index_table`, in cell order across tables) as one
    stac-geoparquet file at ``path``, in row groups of :data:`ROW_GROUP_ROWS` (a temporary file renamed
    into place)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    collection = {"id": collection_id, "title": title or collection_id, METADATA_PROPERTY: metadata or {}}
    chunks = iter(tables)
    first = next(chunks, None)
    if first is None:
        empty = pa.table({"id": pa.array([], pa.string())})
        pq.write_table(empty.replace_schema_metadata({GEOPARQUET_KEY: json.dumps(
            {"collections": {collection_id: collection}})}), tmp)
    else:
        def batches() -> Iterator[pa.RecordBatch]:
            for table in (first, *chunks):
                yield from table.to_batches(max_chunksize=ROW_GROUP_ROWS)

        reader = pa.RecordBatchReader.from_batches(first.schema, batches())
        sga.to_parquet(reader, tmp, collections={collection_id: collection}, compression="zstd")
    os.replace(tmp, target)
    return target


def write_index(items: Iterable[pystac.Item], path: str | os.PathLike[str], *, collection_id: str,
                title: str | None = None, metadata: dict[str, Any] | None = None) -> Path:
    """Write the stac-geoparquet index of ``items`` at ``path``."""
    target = Path(path)
    dicts = [index_dict(item, target.parent.resolve(), collection_id) for item in items]
    return write_index_tables([index_table(dicts)] if dicts else [], target, collection_id=collection_id,
                              title=title, metadata=metadata)


def index_catalog(root: str | os.PathLike[str]) -> Path:
    """Build (or rebuild) the index of the local archive folder ``root`` from its catalog's items."""
    from .static import read_item_dicts

    folder = Path(root)
    root_href, catalog, entries = read_item_dicts(str(folder))
    items = [pystac.Item.from_dict(data, href=href, preserve_dict=False) for href, data in entries]
    return write_index(items, Path(root_href).parent / INDEX_FILE, collection_id=str(catalog.get("id", "archive")),
                       title=catalog.get("title"), metadata=dict(catalog.get(METADATA_PROPERTY, {})))


def _us(when: dt.datetime) -> dt.datetime:
    """A bound DuckDB can compare with the index's timestamps (``datetime.min``/``max`` clamped)."""
    low, high = dt.datetime(1, 1, 2, tzinfo=dt.UTC), dt.datetime(9999, 12, 30, tzinfo=dt.UTC)
    return min(max(when.astimezone(dt.UTC), low), high)


class GeoparquetSource(ArchiveSource):
    """A stac-geoparquet file searched through DuckDB (one connection, a cursor per thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self.folder = self.path.parent
        self._folder_text = str(self.folder)
        self.href = str(self.folder if self.path.name == INDEX_FILE else self.path)
        self.kind = f"stac-geoparquet index {str(self.path)!r}"
        try:
            parquet = pq.ParquetFile(self.path)
        except (OSError, pa.ArrowException) as exc:
            raise ArchiveError(f"Cannot read the {self.kind}: {exc}; rebuild it with `polyfis index`") from exc
        stored = json.loads((parquet.schema_arrow.metadata or {}).get(GEOPARQUET_KEY, b"{}"))
        info: dict[str, Any] = next(iter((stored.get("collections") or {}).values()), {})
        self.id = str(info.get("id", self.path.stem))
        self.title = str(info.get("title", self.id))
        self.metadata = dict(info.get(METADATA_PROPERTY, {}))
        self._rows = parquet.metadata.num_rows
        self._columns = set(parquet.schema_arrow.names)
        self._db = duckdb.connect()
        # the footer (statistics of every row group) is parsed once, not on every search
        self._db.execute("SET parquet_metadata_cache = true")
        self._local = threading.local()
        self._extents: tuple[Any, Any] | None = None

    @classmethod
    def open(cls, path: Path) -> GeoparquetSource:
        """The index at ``path``."""
        if not path.is_file():
            raise ArchiveError(f"No stac-geoparquet index at {str(path)!r}; expected a .parquet file")
        return cls(path)

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = self._db.cursor()
        return cursor

    def _rows_where(self, where: str, params: list[Any]) -> list[Acquisition]:
        if self._rows == 0:
            return []
        own = ITEM_COLUMN in self._columns
        column = f'"{ITEM_COLUMN}"' if own else "*"
        sql = f"SELECT {column} FROM read_parquet(?) WHERE {where} ORDER BY datetime, id"
        try:
            result = self._cursor().execute(sql, [str(self.path), *params])
            if own:
                return self._acquisitions(row[0] for row in result.fetchall())
            table = result.to_arrow_table()
        except duckdb.Error as exc:
            raise ArchiveError(f"Cannot search the {self.kind}: {exc}; rebuild it with `polyfis index`") from exc
        # an index written by another tool: the items rebuilt from the stac-geoparquet columns
        return self._acquisitions(json.dumps(d) for d in sga.stac_table_to_items(table))

    def _acquisitions(self, texts: Iterable[str]) -> list[Acquisition]:
        out = []
        for text in texts:
            data = json.loads(text)
            for asset in data.get("assets", {}).values():
                asset["href"] = _absolute(asset["href"], self._folder_text)
            out.append(acquisition_from_item(pystac.Item.from_dict(data, preserve_dict=False, migrate=False)))
        return out

    def search(self, geometry_wgs84: BaseGeometry, start: dt.datetime, end: dt.datetime, *,
               max_cloud_cover: float | None = None) -> list[Acquisition]:
        """See :meth:`ArchiveSource.search`: time and bbox filtered in the Parquet scan, then the exact
        footprint test on the few rows left."""
        minx, miny, maxx, maxy = geometry_wgs84.bounds
        where = ("datetime >= ? AND datetime <= ? AND bbox.xmin <= ? AND bbox.xmax >= ? AND bbox.ymin <= ? "
                 "AND bbox.ymax >= ?")
        params: list[Any] = [_us(start), _us(end), maxx, minx, maxy, miny]
        if max_cloud_cover is not None and "eo:cloud_cover" in self._columns:
            where += ' AND ("eo:cloud_cover" IS NULL OR "eo:cloud_cover" <= ?)'
            params.append(float(max_cloud_cover))
        found = self._rows_where(where, params)
        return [a for a in found if a.footprint.intersects(geometry_wgs84)]

    def get(self, ids: Sequence[str]) -> list[Acquisition]:
        """See :meth:`ArchiveSource.get`."""
        found = {a.id: a for a in self._rows_where("list_contains(?, id)", [list(ids)])} if ids else {}
        if any(i not in found for i in ids):
            raise missing_ids(ids, found, self.kind)
        return [found[i] for i in ids]

    def all(self) -> list[Acquisition]:
        """Every acquisition (reads the whole index: for small archives and tools)."""
        return self._rows_where("TRUE", [])

    def covers(self, geometry_wgs84: BaseGeometry) -> bool:
        """Whether any footprint intersects the geometry."""
        return bool(self.search(geometry_wgs84, dt.datetime.min.replace(tzinfo=dt.UTC),
                                dt.datetime.max.replace(tzinfo=dt.UTC)))

    def bands(self) -> list[str]:
        """The band assets some item has (from one row: polyfis writes every item with the same bands)."""
        if self._rows == 0:
            return []
        rows = self._cursor().execute(f'SELECT "{ITEM_COLUMN}" FROM read_parquet(?) LIMIT 64',
                                      [str(self.path)]).fetchall()
        names: set[str] = set()
        for acq in self._acquisitions(row[0] for row in rows):
            names.update(acq.assets)
        return sorted(names)

    def dates(self) -> list[tuple[dt.date, float | None]]:
        """Every UTC date with its mean cloud cover, from the datetime and cloud cover columns only."""
        if self._rows == 0:
            return []
        cover = '"eo:cloud_cover"' if "eo:cloud_cover" in self._columns else "NULL::DOUBLE"
        rows = self._cursor().execute(f"SELECT id, datetime, {cover} FROM read_parquet(?)",
                                      [str(self.path)]).fetchall()
        return date_summary((when.astimezone(dt.UTC).date(), cover) for _, when, cover in rows)

    def _extent(self) -> tuple[Any, Any]:
        if self._extents is None:
            row = self._cursor().execute(
                "SELECT min(bbox.xmin), min(bbox.ymin), max(bbox.xmax), max(bbox.ymax), min(datetime), max(datetime) "
                "FROM read_parquet(?)", [str(self.path)]).fetchone()
            assert row is not None
            self._extents = (tuple(float(v) for v in row[:4]), (row[4].astimezone(dt.UTC), row[5].astimezone(dt.UTC)))
        return self._extents

    @property
    def count(self) -> int:
        """Rows of the index."""
        return self._rows

    @property
    def spatial_extent(self) -> tuple[float, float, float, float] | None:
        """Bounds of every item's bbox."""
        return self._extent()[0] if self._rows else None

    @property
    def temporal_extent(self) -> tuple[dt.datetime, dt.datetime] | None:
        """First and last datetime."""
        return self._extent()[1] if self._rows else None
