"""A static STAC catalog held in memory: read once (its item files fetched concurrently, local or http(s)),
searched through an STRtree of the footprints and the sorted acquisition times."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import numpy as np
import pystac
import shapely
from shapely.geometry.base import BaseGeometry

from ...errors import ArchiveError
from ..catalog import COLLECTION_FILE, Acquisition, acquisition_from_item
from . import ArchiveSource, missing_ids

#: Item files fetched at once from an http(s) catalog (I/O bound: tens in flight).
FETCH_THREADS = 32


def _utc_us(when: dt.datetime) -> int:
    """Microseconds since the epoch of an aware datetime, clamped to int64 (``datetime.min``/``max`` work)."""
    delta = when.astimezone(dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class MemorySource(ArchiveSource):
    """Acquisitions in memory, sorted by (datetime, id), with an R-tree of their footprints."""

    def __init__(self, acquisitions: Iterable[Acquisition], *, id: str = "sentinel-2-l1c",
                 title: str = "Sentinel-2 L1C", href: str | None = None,
                 metadata: dict[str, Any] | None = None, kind: str | None = None) -> None:
        self.acquisitions = sorted(acquisitions, key=lambda a: (a.datetime, a.id))
        self.id, self.title, self.href = id, title, href or ""
        self.metadata = dict(metadata or {})
        self.kind = kind or (f"static catalog {href!r}" if href else f"archive {id!r}")
        self._times = np.array([_utc_us(a.datetime) for a in self.acquisitions], dtype=np.int64)
        self._covers = np.array([np.nan if a.cloud_cover is None else float(a.cloud_cover)
                                 for a in self.acquisitions], dtype=np.float64)
        self._tree = shapely.STRtree([a.footprint for a in self.acquisitions])
        self._by_id = {a.id: a for a in self.acquisitions}

    def search(self, geometry_wgs84: BaseGeometry, start: dt.datetime, end: dt.datetime, *,
               max_cloud_cover: float | None = None) -> list[Acquisition]:
        """See :meth:`ArchiveSource.search`: the R-tree's hits, kept when in time and under the cloud cover."""
        hits = np.asarray(self._tree.query(geometry_wgs84, predicate="intersects"), dtype=np.int64)
        times = self._times[hits]
        keep = (times >= _utc_us(start)) & (times <= _utc_us(end))
        if max_cloud_cover is not None:
            covers = self._covers[hits]
            keep &= np.isnan(covers) | (covers <= max_cloud_cover)
        return [self.acquisitions[i] for i in np.sort(hits[keep])]

    def get(self, ids: Sequence[str]) -> list[Acquisition]:
        """See :meth:`ArchiveSource.get`."""
        if any(i not in self._by_id for i in ids):
            raise missing_ids(ids, self._by_id, self.kind)
        return [self._by_id[i] for i in ids]

    def all(self) -> list[Acquisition]:
        """Every acquisition, sorted by (datetime, id)."""
        return list(self.acquisitions)

    def covers(self, geometry_wgs84: BaseGeometry) -> bool:
        """Whether any footprint intersects the geometry."""
        return len(self._tree.query(geometry_wgs84, predicate="intersects")) > 0

    @property
    def count(self) -> int:
        """How many acquisitions there are."""
        return len(self.acquisitions)

    @property
    def spatial_extent(self) -> tuple[float, float, float, float] | None:
        """Union of all footprints' bounds in EPSG:4326, or None for an empty archive."""
        if not self.acquisitions:
            return None
        bounds = np.array([a.bbox for a in self.acquisitions])
        return (float(bounds[:, 0].min()), float(bounds[:, 1].min()), float(bounds[:, 2].max()),
                float(bounds[:, 3].max()))

    @property
    def temporal_extent(self) -> tuple[dt.datetime, dt.datetime] | None:
        """First and last acquisition times, or None for an empty archive."""
        if not self.acquisitions:
            return None
        return self.acquisitions[0].datetime, self.acquisitions[-1].datetime


def _root_href(text: str) -> str:
    """The catalog file of a reference: an URL as given, a folder's ``collection.json``, or the file."""
    if text.startswith(("http://", "https://")):
        return text
    path = Path(text)
    if path.is_dir():
        path = path / COLLECTION_FILE
    if not path.is_file():
        raise ArchiveError(f"No archive at {text!r}: expected a folder with {COLLECTION_FILE} or a STAC JSON file")
    return str(path.resolve())


def _join(base: str, href: str) -> str:
    """``href`` resolved against the file or URL ``base``."""
    if href.startswith(("http://", "https://", "/")) or base.startswith(("http://", "https://")):
        return urljoin(base, href)
    return os.path.normpath(os.path.join(os.path.dirname(base), href))


def _links(data: dict[str, Any], rel: str, base: str) -> list[str]:
    return [_join(base, link["href"]) for link in data.get("links", [])
            if link.get("rel") == rel and isinstance(link.get("href"), str)]


def read_item_dicts(href: str | os.PathLike[str]) -> tuple[str, dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """The catalog file, its JSON and the (href, JSON) of every item of a static STAC Collection or Catalog,
    local or http(s): the root, then its child catalogs level by level and all item files, each level's files
    fetched concurrently.

    :raises ArchiveError: when the catalog is missing or malformed, naming it.
    """
    text = os.fspath(href)
    root_href = _root_href(text)
    try:
        root = pystac.StacIO.default().read_json(root_href)
    except Exception as exc:  # pystac/urllib raise many types for unreadable JSON
        raise ArchiveError(f"Cannot read STAC catalog {root_href!r}: {exc}") from exc
    if root.get("type") not in ("Collection", "Catalog"):
        conforms = " ".join(root.get("conformsTo", []))
        hint = (f"; it is a STAC API landing page: name it as stac+{text}#<collection>"
                if "item-search" in conforms else "")
        raise ArchiveError(f"{root_href!r} is a STAC {root.get('type', 'document')}, expected a Collection or "
                           f"Catalog{hint}")
    catalogs, item_hrefs = [(root_href, root)], []
    with ThreadPoolExecutor(FETCH_THREADS) as pool:
        while catalogs:
            children: list[str] = []
            for base, data in catalogs:
                item_hrefs += _links(data, "item", base)
                children += _links(data, "child", base)
            catalogs = list(zip(children, pool.map(_read_json, children)))
        items = list(zip(item_hrefs, pool.map(_read_json, item_hrefs)))
    return root_href, root, items


def read_static_catalog(href: str | os.PathLike[str]) -> MemorySource:
    """A static STAC Collection or Catalog (local or http(s); see :func:`read_item_dicts`) in memory.

    :raises ArchiveError: when the catalog or an item is missing or malformed, naming it.
    """
    root_href, root, items = read_item_dicts(href)
    acquisitions = []
    for item_href, data in items:
        try:
            item = pystac.Item.from_dict(data, href=item_href, preserve_dict=False)
        except Exception as exc:  # a malformed item: pystac raises many types
            raise ArchiveError(f"Cannot read STAC Item {item_href!r}: {exc}") from exc
        acquisitions.append(acquisition_from_item(item))
    name = str(root.get("id", "archive"))
    return MemorySource(acquisitions, id=name, title=str(root.get("title") or name), href=root_href,
                        metadata=dict(root.get("polyfis:metadata", {})))


def _read_json(href: str) -> dict[str, Any]:
    try:
        data = pystac.StacIO.default().read_json(href)
    except Exception as exc:  # pystac/urllib raise many types for unreadable JSON
        raise ArchiveError(f"Cannot read STAC file {href!r}: {exc}") from exc
    if not isinstance(data, dict):
        raise ArchiveError(f"STAC file {href!r} is not a JSON object")
    return data
