"""``input.data[0]`` of a Sentinel Hub request: the one data source the Process and Statistical APIs read.

A request names one collection (``type``; no data fusion), filters its acquisitions (``dataFilter``:
``timeRange``, ``maxCloudCoverage``, ``mosaickingOrder``) and says how its bands are brought onto the output
grid (``processing``: ``upsampling``, ``downsampling``, ``harmonizeValues``). :func:`data_source` checks all
of it once; every error names the field, what it got and what it expects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidRequestError
from ..fields import flag, obj, optional_percent
from ..request import Limits, TimeRange
from ..sampling import Sampling

#: The ``type`` values naming the Sentinel-2 L1C archive (compared without case).
COLLECTIONS = ("sentinel-2-l1c", "s2l1c")
MOSAICKING_ORDERS = ("mostRecent", "leastRecent", "leastCC")


@dataclass(frozen=True)
class DataSource:
    """A checked ``input.data[0]``: its ``dataFilter`` and ``processing``."""

    time_range: TimeRange | None
    max_cloud_cover: float | None
    mosaicking_order: str
    sampling: Sampling
    harmonize: bool


def data_source(input_: Mapping[str, Any], collections: Sequence[str] = COLLECTIONS, *, strict: bool = False,
                limits: Limits | None = None) -> DataSource:
    """Check ``input.data`` (a list of one data source object) of the request's ``input`` and read it.

    :param collections: the ``type`` values that name the archive (compared without case).
    :param strict: ``dataFilter.timeRange`` must have ``from < to`` (else ``from <= to``, see
        :meth:`stats.request.TimeRange.parse`).
    :param limits: when given, bound the days of ``dataFilter.timeRange``.
    """
    data = input_.get("data")
    if not isinstance(data, list) or len(data) != 1 or not isinstance(data[0], dict):
        raise InvalidRequestError(f"input.data: expected a list with one data source object, got {data!r:.80}")
    source = data[0]
    if str(source.get("type", "")).lower() not in {c.lower() for c in collections}:
        raise InvalidRequestError(f"input.data[0].type: got {source.get('type')!r:.60}; polyfis serves "
                                  f"'sentinel-2-l1c' (also named {sorted(set(collections) - {'sentinel-2-l1c'})})")
    data_filter = obj(source.get("dataFilter"), "input.data[0].dataFilter")
    order = data_filter.get("mosaickingOrder", "mostRecent")
    if order not in MOSAICKING_ORDERS:
        raise InvalidRequestError(f"input.data[0].dataFilter.mosaickingOrder: got {order!r:.40}; expected one of "
                                  f"{list(MOSAICKING_ORDERS)}")
    max_cc = optional_percent(data_filter.get("maxCloudCoverage"), "input.data[0].dataFilter.maxCloudCoverage",
                              got_first=True)
    filter_range = None
    if data_filter.get("timeRange") is not None:
        filter_range = time_range(data_filter["timeRange"], "input.data[0].dataFilter.timeRange", strict=strict)
        if limits is not None:
            limits.check_range(filter_range, "input.data[0].dataFilter.timeRange")
    processing = obj(source.get("processing"), "input.data[0].processing")
    sampling = Sampling.parse(processing.get("upsampling"), processing.get("downsampling"),
                              ("input.data[0].processing.upsampling", "input.data[0].processing.downsampling"))
    harmonize = flag(processing.get("harmonizeValues"), "input.data[0].processing.harmonizeValues", True)
    return DataSource(time_range=filter_range, max_cloud_cover=max_cc, mosaicking_order=order, sampling=sampling,
                      harmonize=harmonize)


def time_range(value: Any, name: str, *, strict: bool = False) -> TimeRange:
    """A Sentinel Hub ``timeRange`` object (``{"from": ..., "to": ...}``) named ``name``; members other than
    ``from`` and ``to`` are ignored, as Sentinel Hub does. ``strict`` as in :meth:`stats.request.TimeRange.parse`."""
    value = obj(value, name)
    return TimeRange.parse({k: value[k] for k in ("from", "to") if k in value}, name, strict=strict)
