"""Batch planning: polygons parsed once, then grouped into tasks by acquisition date and tiles.

A task is one acquisition date and set of tiles, holding every polygon those tiles cover (split into
tasks of at most :data:`MAX_TASK_POLYGONS` polygons, in spatial order, so that neighbours share a task).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from pyproj import CRS

from ..archive.catalog import Archive, group_by_date
from ..errors import InvalidRequestError, StatsError
from ..geometry import parse_crs
from ..request import Area, Limits, QueryOptions, TimeRange
from ..results import TimeSeriesResult
from .inputs import BatchPolygon

#: Most polygons in one task (one date).
MAX_TASK_POLYGONS = 5000
#: Column before the time-series columns: the polygon's id, kept as given.
ID_COLUMN = "id"


@dataclass(frozen=True)
class BatchTask:
    """The polygons (indices into the batch) to compute on one date's tiles."""

    key: str
    date: dt.date
    tiles: tuple[str, ...]
    polygons: tuple[int, ...]


@dataclass
class BatchPlan:
    """What a batch will compute: the input polygons, each one's parsed :class:`Area` (None when it
    cannot be used, with the reason in ``invalid``), the time range, the options and the tasks."""

    polygons: list[BatchPolygon]
    areas: list[Area | None]
    time: TimeRange
    options: QueryOptions
    tasks: list[BatchTask]
    invalid: dict[int, str] = field(default_factory=dict)  # polygon index -> error
    archive_href: str = ""
    key: str = ""  # identifies the polygons (digest of ids, geometries and CRSs)
    limits: Limits = field(default_factory=Limits)

    def columns(self) -> list[str]:
        """Output columns: ``id``, then the time-series CSV columns."""
        return [ID_COLUMN] + TimeSeriesResult.empty(self.options).columns()

    def area(self, index: int) -> Area:
        """The parsed area of a valid polygon."""
        area = self.areas[index]
        if area is None:
            raise ValueError(f"polygon {index} has no usable geometry: {self.invalid.get(index)}")
        return area

    def for_task(self, task: BatchTask) -> BatchPlan:
        """A plan holding only this task's polygons (what a worker needs), so that tasks ship small."""
        keep = set(task.polygons)
        polygons = [p if i in keep else BatchPolygon(p.id, None, p.crs) for i, p in enumerate(self.polygons)]
        areas = [a if i in keep else None for i, a in enumerate(self.areas)]
        return BatchPlan(polygons, areas, self.time, self.options, [task], {}, self.archive_href, self.key,
                         self.limits)


def batch_time(start: str | dt.datetime, end: str | dt.datetime) -> TimeRange:
    """The batch's time range from its two ends (ISO text or date-times)."""
    iso = [t.isoformat() if isinstance(t, dt.datetime) else t for t in (start, end)]
    return TimeRange.parse({"from": iso[0], "to": iso[1]})


def batch_options(options: Mapping[str, Any] | None) -> QueryOptions:
    """The options every polygon is answered with: time-series request fields but geometry, time and crs."""
    body = dict(options or {})
    for key in ("geometry", "time", "crs"):
        if key in body:
            raise InvalidRequestError(f"options: {key!r} is set per batch, not in the options")
    water = body.get("water")
    if isinstance(water, dict) and water.get("outline") is not None:
        raise InvalidRequestError(
            "water.outline: a batch monitors each polygon as its own outline; expected water.buffer_m alone "
            "(every polygon grown by it), or one time-series request per water body with its outline")
    return QueryOptions.from_dict(body)


def plan_batch(archive: Archive, polygons: Sequence[BatchPolygon], time_range: TimeRange, options: QueryOptions,
               *, limits: Limits | None = None) -> BatchPlan:
    """Parse the polygons (each once, within ``limits.max_vertices``) and group them into tasks by date and
    tiles; the tasks answered polygon by polygon keep to ``limits`` too."""
    limits = limits or Limits()
    invalid: dict[int, str] = {}
    areas: list[Area | None] = []
    crs_of: dict[str, CRS | StatsError] = {}  # each CRS text parsed once: a batch's polygons share one or a few
    for i, poly in enumerate(polygons):
        area = None
        if poly.geometry is None:
            invalid[i] = poly.error or "geometry: missing"
        else:
            try:
                area = Area.parse(poly.geometry, _parsed_crs(crs_of, poly.crs), max_vertices=limits.max_vertices)
            except StatsError as exc:
                invalid[i] = str(exc)
        areas.append(area)
    ok = [i for i, a in enumerate(areas) if a is not None]
    wgs84 = [a.wgs84 if a is not None else None for a in areas]
    shapes = np.array([wgs84[i] for i in ok], dtype=object)
    found = archive.search(shapely.box(*shapely.total_bounds(shapes)), time_range.start, time_range.end,
                           max_cloud_cover=options.max_cloud_cover) if ok else []
    tasks: list[BatchTask] = []
    for tiles in group_by_date(found):
        day = tiles[0].date
        hits = np.array([shapely.intersects(t.footprint, shapes) for t in tiles]).reshape(len(tiles), len(ok))
        groups: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for col, i in enumerate(ok):
            ids = tuple(t.id for t, hit in zip(tiles, hits[:, col]) if hit)
            if ids:
                groups[ids].append(i)
        for ids, members in groups.items():
            members = _spatial_order(members, wgs84)
            for start in range(0, len(members), MAX_TASK_POLYGONS):
                part = tuple(members[start:start + MAX_TASK_POLYGONS])
                digest = hashlib.sha1(json.dumps([list(ids), list(part)]).encode()).hexdigest()[:12]
                tasks.append(BatchTask(f"{day.isoformat()}_{digest}", day, ids, part))
    return BatchPlan(list(polygons), areas, time_range, options, tasks, invalid, archive.href or "",
                     _polygons_key(polygons, areas), limits)


def _parsed_crs(known: dict[str, CRS | StatsError], text: str) -> CRS:
    """The CRS of ``text``, parsed on its first use in the batch (its error too, raised again each time)."""
    if text not in known:
        try:
            known[text] = parse_crs(text)
        except StatsError as exc:
            known[text] = exc
    found = known[text]
    if isinstance(found, StatsError):
        raise found
    return found


def _polygons_key(polygons: Sequence[BatchPolygon], areas: Sequence[Area | None]) -> str:
    h = hashlib.sha256()
    names: dict[int, str] = {}  # CRS object id -> its name: naming a CRS without EPSG code costs about 0.2 s
    for poly, area in zip(polygons, areas):
        h.update(repr(poly.id).encode())
        h.update(shapely.to_wkb(area.geometry) if area is not None else b"-")
        if area is None:
            h.update(poly.crs.encode())
            continue
        if id(area.crs) not in names:
            names[id(area.crs)] = area.crs_name
        h.update(names[id(area.crs)].encode())
    return h.hexdigest()


def _spatial_order(members: list[int], wgs84: Sequence[object]) -> list[int]:
    """Polygons sorted by the centre of their bounds, in rows of about 0.1 degree (so that a task split in
    parts keeps neighbours together)."""
    def key(i: int) -> tuple[int, float]:
        minx, miny, maxx, maxy = shapely.bounds(wgs84[i]).tolist()
        return (-math.floor((miny + maxy) * 5), (minx + maxx) / 2)
    return sorted(members, key=key)
