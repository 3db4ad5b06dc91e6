"""A stac-geoparquet index of an archive, searched through pyarrow.

:func:`write_index` writes ``items.parquet`` (stac-geoparquet) beside a local archive's ``collection.json``:
one row per item, sorted by a 1-degree cell of the bbox centre then by datetime, in small row groups, so that a
search's bbox and time range are answered from the row groups' statistics (only the groups that can hold a
match are read, first their bbox, time and cloud cover columns, then the item JSON of the groups that hold a
match) and only the rows that match become acquisitions, straight from their item JSON
(:func:`~stats.archive.catalog.acquisition_from_dict`, no pystac Item built). Asset hrefs are stored relative to
the index's folder, so the archive can be moved or copied whole.

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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pystac
import stac_geoparquet.arrow as sga
from cachetools import LRUCache
from shapely.geometry.base import BaseGeometry

from ...errors import ArchiveError
from ..catalog import COLLECTION_FILE, Acquisition, acquisition_from_dict
from . import INDEX_FILE, ArchiveSource, date_summary, missing_ids

#: Rows per Parquet row group: the unit the time and bbox statistics skip.
ROW_GROUP_ROWS = 1024
#: Acquisitions kept converted between searches (keyed by the hash of their item's JSON: a changed item is read
#: anew).
CACHED_ITEMS = 20_000
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


#: The columns a search filters on, and the statistics of each row group it prunes with.
_BOUNDS = ("bbox.xmin", "bbox.ymin", "bbox.xmax", "bbox.ymax")
_FILTER_COLUMNS = ["id", "datetime", "bbox", "eo:cloud_cover"]


def _us(when: dt.datetime) -> int:
    """Microseconds since the epoch (UTC), the unit of the index's timestamps."""
    delta = when.astimezone(dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _statistic(value: Any) -> float:
    if isinstance(value, dt.datetime):
        return float(_us(value if value.tzinfo else value.replace(tzinfo=dt.UTC)))
    return float(value)


class GeoparquetSource(ArchiveSource):
    """A stac-geoparquet file searched with pyarrow: the row groups whose bbox and time statistics (read once,
    from the footer) can hold a match are read, first their filter columns, then the item JSON of the rows that
    match."""

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self.folder = self.path.parent
        self._folder_text = str(self.folder)
        self.href = str(self.folder if self.path.name == INDEX_FILE else self.path)
        self.kind = f"stac-geoparquet index {str(self.path)!r}"
        try:
            self._file = pq.ParquetFile(self.path)
        except (OSError, pa.ArrowException) as exc:
            raise ArchiveError(f"Cannot read the {self.kind}: {exc}; rebuild it with `polyfis index`") from exc
        schema = self._file.schema_arrow
        stored = json.loads((schema.metadata or {}).get(GEOPARQUET_KEY, b"{}"))
        info: dict[str, Any] = next(iter((stored.get("collections") or {}).values()), {})
        self.id = str(info.get("id", self.path.stem))
        self.title = str(info.get("title", self.id))
        self.metadata = dict(info.get(METADATA_PROPERTY, {}))
        self._columns = set(schema.names)
        self._rows = self._file.metadata.num_rows
        self._lock = threading.Lock()
        self._converted: LRUCache[int, Acquisition] = LRUCache(CACHED_ITEMS)
        self._stats, self._sizes = self._row_group_statistics()

    def _row_group_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """Per row group: xmin, ymin, xmax, ymax (degrees) and the first and last datetime (microseconds),
        unknown bounds open (-inf/inf) so that such a group is always read; and its number of rows."""
        meta = self._file.metadata
        paths = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
        wanted = [*_BOUNDS, "datetime", "datetime"]
        out = np.tile(np.array([-np.inf, -np.inf, np.inf, np.inf, -np.inf, np.inf]), (meta.num_row_groups, 1))
        sizes = np.zeros(meta.num_row_groups, dtype=np.int64)
        for group in range(meta.num_row_groups):
            row_group = meta.row_group(group)
            sizes[group] = row_group.num_rows
            for k, name in enumerate(wanted):
                column = paths.get(name)
                stats = row_group.column(column).statistics if column is not None else None
                if stats is None or not stats.has_min_max:
                    continue
                # a box overlaps the query when its min corner is below the query's max and its max above its min
                out[group, k] = _statistic(stats.min if k in (0, 1, 4) else stats.max)
        return out, sizes

    @classmethod
    def open(cls, path: Path) -> GeoparquetSource:
        """The index at ``path``."""
        if not path.is_file():
            raise ArchiveError(f"No stac-geoparquet index at {str(path)!r}; expected a .parquet file")
        return cls(path)

    def _read(self, groups: Sequence[int], columns: list[str]) -> pa.Table:
        try:
            with self._lock:
                return self._file.read_row_groups(list(groups), columns=columns, use_threads=False)
        except (OSError, pa.ArrowException, KeyError) as exc:
            raise ArchiveError(f"Cannot read the {self.kind}: {exc}; rebuild it with `polyfis index`") from exc

    def _group_rows(self, groups: Sequence[int]) -> np.ndarray:
        """Where each of ``groups`` starts in the rows of one read of them, and where the last ends."""
        return np.concatenate([[0], np.cumsum(self._sizes[list(groups)])])

    def _items_of(self, groups: Sequence[int], keep: np.ndarray | None, table: pa.Table | None = None
                  ) -> list[Acquisition]:
        """The acquisitions of the rows ``keep`` (indices into the groups' rows; None: all), by datetime and id;
        ``table``: those groups' rows already read with their ``datetime`` and ``id``. Only the groups holding a
        kept row have their item JSON read."""
        if not groups:
            return []
        if table is None:
            table = self._read(groups, ["datetime", "id"])
        if keep is None:
            keep = np.arange(table.num_rows)
        if len(keep) == 0:
            return []
        order = pc.sort_indices(pa.table({"datetime": table.column("datetime").take(keep),
                                          "id": table.column("id").take(keep)}),
                                sort_keys=[("datetime", "ascending"), ("id", "ascending")])
        keep = np.asarray(keep, dtype=np.int64)[order.to_numpy()]
        # the item JSON of the groups that hold a kept row only, the kept rows renumbered into their read
        starts = self._group_rows(groups)
        position = np.searchsorted(starts, keep, side="right") - 1
        holding = np.unique(position)
        wanted = [groups[i] for i in holding.tolist()]
        renumber = np.zeros(len(groups), dtype=np.int64)
        renumber[holding] = self._group_rows(wanted)[:-1] - starts[holding]
        rows = pa.array(keep + renumber[position])
        if ITEM_COLUMN in self._columns:
            texts = self._read(wanted, [ITEM_COLUMN]).column(ITEM_COLUMN).take(rows).to_pylist()
            return self._acquisitions(texts)
        # an index written by another tool: the items rebuilt from the stac-geoparquet columns
        chosen = self._read(wanted, self._file.schema_arrow.names).take(rows)
        return self._acquisitions(json.dumps(d) for d in sga.stac_table_to_items(chosen))

    def _acquisitions(self, texts: Iterable[str]) -> list[Acquisition]:
        """The acquisitions of item JSON texts (hrefs relative to the index), each converted once while it stays
        in the bounded cache."""
        out = []
        for text in texts:
            key = hash(text)
            with self._lock:
                cached = self._converted.get(key)
            if cached is None:
                data = json.loads(text)
                for asset in data.get("assets", {}).values():
                    asset["href"] = _absolute(asset["href"], self._folder_text)
                cached = acquisition_from_dict(data)
                with self._lock:
                    self._converted[key] = cached
            out.append(cached)
        return out

    def search(self, geometry_wgs84: BaseGeometry, start: dt.datetime, end: dt.datetime, *,
               max_cloud_cover: float | None = None) -> list[Acquisition]:
        """See :meth:`ArchiveSource.search`: the row groups pruned by their statistics, their rows by bbox, time
        and cloud cover (from those columns only), then the exact footprint test on the few rows left."""
        if self._rows == 0:
            return []
        minx, miny, maxx, maxy = geometry_wgs84.bounds
        lo, hi = _us(start), _us(end)
        st = self._stats
        groups = np.nonzero((st[:, 0] <= maxx) & (st[:, 2] >= minx) & (st[:, 1] <= maxy) & (st[:, 3] >= miny)
                            & (st[:, 4] <= hi) & (st[:, 5] >= lo))[0].tolist()
        if not groups:
            return []
        table = self._read(groups, [c for c in _FILTER_COLUMNS if c in self._columns])
        bbox = table.column("bbox")
        when = pc.cast(table.column("datetime"), pa.int64())
        mask = pc.and_(pc.and_(pc.less_equal(pc.struct_field(bbox, "xmin"), maxx),
                               pc.greater_equal(pc.struct_field(bbox, "xmax"), minx)),
                       pc.and_(pc.less_equal(pc.struct_field(bbox, "ymin"), maxy),
                               pc.greater_equal(pc.struct_field(bbox, "ymax"), miny)))
        mask = pc.and_(mask, pc.and_(pc.greater_equal(when, lo), pc.less_equal(when, hi)))
        if max_cloud_cover is not None and "eo:cloud_cover" in self._columns:
            cover = table.column("eo:cloud_cover")
            mask = pc.and_(mask, pc.or_kleene(pc.is_null(cover), pc.less_equal(cover, float(max_cloud_cover))))
        keep = pc.indices_nonzero(pc.fill_null(mask, False)).to_numpy()
        found = self._items_of(groups, keep, table)
        return [a for a in found if a.footprint.intersects(geometry_wgs84)]

    def get(self, ids: Sequence[str]) -> list[Acquisition]:
        """See :meth:`ArchiveSource.get`."""
        if not ids:
            return []
        groups = list(range(self._file.metadata.num_row_groups))
        table = self._read(groups, ["datetime", "id"])
        asked = pa.array(list(ids), pa.string())
        keep = pc.indices_nonzero(pc.is_in(table.column("id"), value_set=asked)).to_numpy()
        found = {a.id: a for a in self._items_of(groups, keep, table)}
        if any(i not in found for i in ids):
            raise missing_ids(ids, found, self.kind)
        return [found[i] for i in ids]

    def all(self) -> list[Acquisition]:
        """Every acquisition (reads the whole index: for small archives and tools)."""
        return self._items_of(list(range(self._file.metadata.num_row_groups)), None) if self._rows else []

    def covers(self, geometry_wgs84: BaseGeometry) -> bool:
        """Whether any footprint intersects the geometry."""
        return bool(self.search(geometry_wgs84, dt.datetime.min.replace(tzinfo=dt.UTC),
                                dt.datetime.max.replace(tzinfo=dt.UTC)))

    def bands(self) -> list[str]:
        """The band assets of the first row group's items (polyfis writes every item with the same bands)."""
        if self._rows == 0:
            return []
        names: set[str] = set()
        for acq in self._items_of([0], None):
            names.update(acq.assets)
        return sorted(names)

    def dates(self) -> list[tuple[dt.date, float | None]]:
        """Every UTC date with its mean cloud cover, from the datetime and cloud cover columns only."""
        if self._rows == 0:
            return []
        columns = ["datetime"] + (["eo:cloud_cover"] if "eo:cloud_cover" in self._columns else [])
        table = self._read(list(range(self._file.metadata.num_row_groups)), columns)
        days = pc.cast(pc.cast(table.column("datetime"), pa.timestamp("us", tz="UTC")), pa.date32()).to_pylist()
        covers = table.column("eo:cloud_cover").to_pylist() if len(columns) > 1 else [None] * len(days)
        return date_summary(zip(days, covers))

    @property
    def count(self) -> int:
        """Rows of the index."""
        return self._rows

    @property
    def spatial_extent(self) -> tuple[float, float, float, float] | None:
        """Bounds of every item's bbox (from the row groups' statistics)."""
        if self._rows == 0:
            return None
        st = self._stats
        return (float(st[:, 0].min()), float(st[:, 1].min()), float(st[:, 2].max()), float(st[:, 3].max()))

    @property
    def temporal_extent(self) -> tuple[dt.datetime, dt.datetime] | None:
        """First and last datetime (from the row groups' statistics)."""
        if self._rows == 0:
            return None
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return (epoch + dt.timedelta(microseconds=int(self._stats[:, 4].min())),
                epoch + dt.timedelta(microseconds=int(self._stats[:, 5].max())))
