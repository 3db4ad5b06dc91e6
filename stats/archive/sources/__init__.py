"""Where an archive's acquisitions come from: one interface, three sources.

* :class:`~.static.MemorySource`: a static STAC catalog (local or http(s)), read once, its items fetched
  concurrently, searched through an R-tree of footprints and a sorted time axis;
* :class:`~.geoparquet.GeoparquetSource`: a stac-geoparquet index (``items.parquet`` beside
  ``collection.json``, written by every polyfis archive writer), read with pyarrow: only the row groups whose
  bbox and time statistics can hold a match, for local archives of millions of items;
* :class:`~.stac_api.StacApiSource`: a STAC API searched through pystac-client (``/search`` with
  ``intersects``, ``datetime``, the collection, a cloud cover filter, paging), its answers cached.

:func:`open_source` reads an archive reference (``POLYFIS_ARCHIVE``, ``--archive``):

* ``stac+https://host/path#collection`` (or ``stac+http://``): a STAC API and one of its collections;
* a folder holding ``collection.json`` (and ``items.parquet`` when indexed), a ``collection.json`` file, or a
  static catalog's URL;
* a ``.parquet`` file: a stac-geoparquet index alone.

Every source converts items with :func:`stats.archive.catalog.acquisition_from_dict` (through
:func:`~stats.archive.catalog.acquisition_from_item` for a pystac Item), the one conversion point.
"""

from __future__ import annotations

import datetime as dt
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

from shapely.geometry.base import BaseGeometry

from ...errors import MissingAcquisitionError
from ..catalog import Acquisition

#: The scheme prefix that names a STAC API in an archive reference.
STAC_API_PREFIX = "stac+"
#: The stac-geoparquet index of a local archive folder, beside its ``collection.json``.
INDEX_FILE = "items.parquet"


class ArchiveSource(ABC):
    """A searchable set of acquisitions, with the metadata of its collection."""

    #: the reference the source was opened from (opens it again, e.g. in a Dask worker)
    href: str
    id: str
    title: str
    metadata: dict[str, Any]
    #: what the source is, for messages ("STAC API https://... collection x", "static catalog ...")
    kind: str

    @abstractmethod
    def search(self, geometry_wgs84: BaseGeometry, start: dt.datetime, end: dt.datetime, *,
               max_cloud_cover: float | None = None) -> list[Acquisition]:
        """Acquisitions whose footprint intersects the geometry with ``start <= datetime <= end`` and, when
        ``max_cloud_cover`` is given, whose ``eo:cloud_cover`` is not above it; sorted by (datetime, id)."""

    @abstractmethod
    def get(self, ids: Sequence[str]) -> list[Acquisition]:
        """The acquisitions of these ids, in the order given.

        :raises MissingAcquisitionError: naming the ids the source does not hold.
        """

    @abstractmethod
    def all(self) -> list[Acquisition]:
        """Every acquisition, sorted by (datetime, id).

        :raises ArchiveError: for a source that is searched, not listed (a STAC API).
        """

    @property
    @abstractmethod
    def count(self) -> int | None:
        """How many acquisitions the source holds (None when it cannot say)."""

    @property
    @abstractmethod
    def spatial_extent(self) -> tuple[float, float, float, float] | None:
        """Bounds of every footprint in EPSG:4326 (minx, miny, maxx, maxy), None when empty."""

    @property
    @abstractmethod
    def temporal_extent(self) -> tuple[dt.datetime, dt.datetime] | None:
        """First and last acquisition times (UTC), None when empty."""

    def covers(self, geometry_wgs84: BaseGeometry) -> bool:
        """Whether any acquisition's footprint intersects the geometry, at any time."""
        return bool(self.search(geometry_wgs84, dt.datetime.min.replace(tzinfo=dt.UTC),
                                dt.datetime.max.replace(tzinfo=dt.UTC)))

    def bands(self) -> list[str]:
        """The band asset names that some acquisition has."""
        names: set[str] = set()
        for acq in self.all():
            names.update(acq.assets)
        return sorted(names)

    def dates(self) -> list[tuple[dt.date, float | None]]:
        """Every UTC date with an acquisition, oldest first, with the mean ``eo:cloud_cover`` of its tiles
        (None when none has one); empty for a source that is not listed."""
        return date_summary((a.date, a.cloud_cover) for a in self.all())


def date_summary(dates: Iterable[tuple[dt.date, float | None]]) -> list[tuple[dt.date, float | None]]:
    """(date, mean cloud cover or None) of each date of the (UTC date, cloud cover) pairs, oldest first."""
    covers: dict[dt.date, list[float]] = {}
    for day, cover in dates:
        found = covers.setdefault(day, [])
        if cover is not None:
            found.append(float(cover))
    return [(day, sum(c) / len(c) if c else None) for day, c in sorted(covers.items())]


def missing_ids(ids: Sequence[str], found: Iterable[str], kind: str) -> MissingAcquisitionError:
    """The error for ids a source does not hold."""
    absent = sorted(set(ids) - set(found))
    return MissingAcquisitionError(f"{kind}: no acquisition with id {absent[:5]}{' ...' if len(absent) > 5 else ''}; "
                        "the archive changed since the request was planned")


def open_source(href: str | os.PathLike[str]) -> ArchiveSource:
    """The source an archive reference names (see the module docstring).

    :raises ArchiveError: when it cannot be opened, naming the reference and what to set.
    """
    text = os.fspath(href)
    if text.startswith(STAC_API_PREFIX):
        from .stac_api import StacApiSource

        return StacApiSource.open(text)
    if text.startswith(("http://", "https://")):
        from .static import read_static_catalog

        return read_static_catalog(text)
    from .geoparquet import GeoparquetSource, index_of

    index = index_of(text)
    if index is not None:
        return GeoparquetSource.open(index)
    from .static import read_static_catalog

    return read_static_catalog(text)
