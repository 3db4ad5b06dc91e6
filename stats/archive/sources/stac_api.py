"""A STAC API, searched through pystac-client: ``/search`` with the collection, ``intersects`` (the polygon),
``datetime`` (the range), a cloud cover filter (CQL2 ``filter`` where the API conforms to it, else the
``query`` extension, else applied here), paged through the API's ``next`` links.

An archive reference names the API and the collection: ``stac+https://host/path#collection``. Answers are
cached in memory between queries (bounded in entries, each for :data:`CACHE_SECONDS`), and so are the
acquisitions by id (what a Dask batch task asks for again).
"""

from __future__ import annotations

import datetime as dt
import threading
import warnings
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import pystac
import requests
from cachetools import TTLCache
from pystac_client import Client
from pystac_client.conformance import ConformanceClasses
from pystac_client.exceptions import APIError
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from ...errors import ArchiveError, ArchiveUnreachableError, InvalidRequestError
from ..catalog import Acquisition, acquisition_from_item
from . import STAC_API_PREFIX, ArchiveSource, missing_ids

#: Seconds to wait for the API (connect, read).
TIMEOUT_S = (10.0, 60.0)
#: Items per page asked of the API.
PAGE_SIZE = 200
#: Most items one search may return: a search over more is refused (narrow the polygon or the range).
MAX_ITEMS = 10_000
#: Searches cached (their answers), acquisitions cached by id, and for how long (new items arrive).
CACHED_SEARCHES, CACHED_ITEMS, CACHE_SECONDS = 512, 50_000, 600.0
#: The archive setting, for messages.
SETTING = "POLYFIS_ARCHIVE (or --archive)"


def parse_reference(text: str) -> tuple[str, str]:
    """(API URL, collection) of ``stac+https://host/path#collection``.

    :raises ArchiveError: naming the reference and the expected form.
    """
    url, _, collection = text.removeprefix(STAC_API_PREFIX).partition("#")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or not collection.strip():
        raise ArchiveError(f"{SETTING}: got {text!r}; expected a STAC API and one of its collections as "
                           "stac+https://host/path#collection, e.g. "
                           "stac+https://earth-search.aws.element84.com/v1#sentinel-2-l1c")
    return url.rstrip("/"), collection.strip()


def _bound(when: dt.datetime, low: bool) -> dt.datetime | None:
    """A datetime bound for the API, None (open) for the far ends ``datetime.min``/``max`` stand for."""
    if (low and when.year <= 1) or (not low and when.year >= 9999):
        return None
    return when.astimezone(dt.UTC)


class StacApiSource(ArchiveSource):
    """One collection of a STAC API."""

    def __init__(self, reference: str, client: Client, collection: pystac.Collection) -> None:
        self.href = reference
        self.url, self.collection_id = parse_reference(reference)
        self.kind = f"STAC API {self.url} collection {self.collection_id!r}"
        self.client = client
        self.collection = collection
        self.id = collection.id
        self.title = collection.title or collection.id
        self.metadata: dict[str, Any] = {}
        self.cql2 = client.conforms_to(ConformanceClasses.FILTER)
        self.query_extension = client.conforms_to(ConformanceClasses.QUERY)
        self._searches: TTLCache[Any, list[Acquisition]] = TTLCache(CACHED_SEARCHES, CACHE_SECONDS)
        self._by_id: TTLCache[str, Acquisition] = TTLCache(CACHED_ITEMS, CACHE_SECONDS)
        self._lock = threading.Lock()
        self._count: tuple[int | None] | None = None

    @classmethod
    def open(cls, reference: str) -> StacApiSource:
        """Open the API's landing page and the collection.

        :raises ArchiveUnreachableError: when the API cannot be reached or does not answer as a STAC API.
        :raises ArchiveError: when the API has no such collection (naming those it has).
        """
        url, collection_id = parse_reference(reference)
        try:
            client = Client.open(url, timeout=TIMEOUT_S)
            collection = client.get_collection(collection_id)
        except (requests.RequestException, APIError, pystac.STACError, ValueError, KeyError) as exc:
            raise ArchiveUnreachableError(
                f"STAC API {url}: cannot be reached or is not a STAC API ({_short(exc)}); check the URL of "
                f"{SETTING}, stac+https://host/path#collection, and that the API is up") from exc
        if collection is None:
            raise ArchiveError(f"STAC API {url}: no collection {collection_id!r}; it has "
                               f"{_collection_ids(client)}: name one of them after the '#' of {SETTING}")
        return cls(reference, client, collection)

    def _parameters(self, max_cloud_cover: float | None) -> dict[str, Any]:
        if max_cloud_cover is None:
            return {}
        if self.cql2:
            return {"filter_lang": "cql2-json", "filter": {
                "op": "<=", "args": [{"property": "eo:cloud_cover"}, float(max_cloud_cover)]}}
        if self.query_extension:
            return {"query": {"eo:cloud_cover": {"lte": float(max_cloud_cover)}}}
        return {}

    def _fetch(self, **parameters: Any) -> list[pystac.Item]:
        """Every item of one search of this collection, paged; at most :data:`MAX_ITEMS`."""
        try:
            search = self.client.search(collections=[self.collection_id], limit=PAGE_SIZE, max_items=MAX_ITEMS + 1,
                                        **parameters)
            items = list(search.items())
        except (requests.RequestException, APIError, pystac.STACError, ValueError) as exc:
            raise ArchiveUnreachableError(f"{self.kind}: the search failed ({_short(exc)}); check that the API is "
                                          f"up and {SETTING}") from exc
        if len(items) > MAX_ITEMS:
            raise InvalidRequestError(f"{self.kind}: the search matches more than {MAX_ITEMS} items; expected a "
                                      "smaller polygon or a shorter time range")
        return items

    def _convert(self, items: Iterable[pystac.Item]) -> list[Acquisition]:
        out = []
        for item in items:
            # An API's asset hrefs are absolute: URLs, or the paths of a self-hosted API on this machine, which
            # pystac would read against the item's own http URL if the item kept its self link.
            item.remove_links(pystac.RelType.SELF)
            out.append(acquisition_from_item(item))
        with self._lock:
            for acq in out:
                self._by_id[acq.id] = acq
        return sorted(out, key=lambda a: (a.datetime, a.id))

    def search(self, geometry_wgs84: BaseGeometry, start: dt.datetime, end: dt.datetime, *,
               max_cloud_cover: float | None = None) -> list[Acquisition]:
        """See :meth:`ArchiveSource.search` (answers cached for :data:`CACHE_SECONDS`)."""
        key = (geometry_wgs84.wkb, start, end, max_cloud_cover)
        with self._lock:
            cached = self._searches.get(key)
        if cached is not None:
            return list(cached)
        found = self._convert(self._fetch(intersects=mapping(geometry_wgs84),
                                          datetime=[_bound(start, True), _bound(end, False)],
                                          **self._parameters(max_cloud_cover)))
        found = [a for a in found if start <= a.datetime <= end and a.footprint.intersects(geometry_wgs84)
                 and (max_cloud_cover is None or a.cloud_cover is None or a.cloud_cover <= max_cloud_cover)]
        with self._lock:
            self._searches[key] = found
        return list(found)

    def get(self, ids: Sequence[str]) -> list[Acquisition]:
        """See :meth:`ArchiveSource.get`: from the cache, else one search by ``ids``."""
        with self._lock:
            known = {i: self._by_id[i] for i in ids if i in self._by_id}
        wanted = [i for i in ids if i not in known]
        if wanted:
            known.update((a.id, a) for a in self._convert(self._fetch(ids=wanted)))
        if any(i not in known for i in ids):
            raise missing_ids(ids, known, self.kind)
        return [known[i] for i in ids]

    def all(self) -> list[Acquisition]:
        """A STAC API is searched, not listed."""
        raise ArchiveError(f"{self.kind}: a STAC API is searched by polygon and time, not listed whole; this needs "
                           "a local archive (a folder with collection.json)")

    def covers(self, geometry_wgs84: BaseGeometry) -> bool:
        """Whether one item of the collection meets the geometry, at any time."""
        try:
            search = self.client.search(collections=[self.collection_id], intersects=mapping(geometry_wgs84),
                                        limit=1, max_items=1)
            return next(iter(search.items()), None) is not None
        except (requests.RequestException, APIError, pystac.STACError, ValueError) as exc:
            raise ArchiveUnreachableError(f"{self.kind}: the search failed ({_short(exc)})") from exc

    def bands(self) -> list[str]:
        """The band assets of one item of the collection."""
        try:
            search = self.client.search(collections=[self.collection_id], limit=1, max_items=1)
            items = list(search.items())
        except (requests.RequestException, APIError, pystac.STACError, ValueError) as exc:
            raise ArchiveUnreachableError(f"{self.kind}: the search failed ({_short(exc)})") from exc
        return sorted(acquisition_from_item(items[0]).assets) if items else []

    def dates(self) -> list[tuple[dt.date, float | None]]:
        """Not listed: empty."""
        return []

    @property
    def count(self) -> int | None:
        """The API's ``numberMatched`` for the collection, when it gives one."""
        if self._count is None:
            try:
                with warnings.catch_warnings():  # pystac-client warns when the API leaves numberMatched out
                    warnings.simplefilter("ignore", UserWarning)
                    matched = self.client.search(collections=[self.collection_id], limit=1, max_items=1).matched()
            except (requests.RequestException, APIError, pystac.STACError, ValueError, NotImplementedError):
                matched = None
            self._count = (matched,)
        return self._count[0]

    @property
    def spatial_extent(self) -> tuple[float, float, float, float] | None:
        """The collection's spatial extent."""
        boxes = self.collection.extent.spatial.bboxes
        return tuple(float(v) for v in boxes[0][:4]) if boxes else None  # type: ignore[return-value]

    @property
    def temporal_extent(self) -> tuple[dt.datetime, dt.datetime] | None:
        """The collection's temporal extent (an open end is now)."""
        intervals = self.collection.extent.temporal.intervals
        if not intervals:
            return None
        first, last = intervals[0]
        now = dt.datetime.now(dt.UTC)
        first = first or dt.datetime(2015, 6, 23, tzinfo=dt.UTC)  # Sentinel-2A's launch
        return first.astimezone(dt.UTC), (last or now).astimezone(dt.UTC)


def _short(exc: BaseException) -> str:
    """An exception as a short line (the class and the first 200 characters)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _collection_ids(client: Client) -> str:
    """Up to 20 of the API's collection ids, as text."""
    try:
        ids = []
        for collection in client.get_collections():
            ids.append(collection.id)
            if len(ids) == 20:
                ids.append("...")
                break
    except (requests.RequestException, APIError, pystac.STACError, ValueError):
        return "collections it did not list"
    return f"the collections {ids}" if ids else "no collection"
