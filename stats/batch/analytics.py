"""The analytics of a batch: the intervals, curves and season of every polygon, as tables beside its rows.

Each usable polygon's dated rows (the batch table, ordered by polygon and date) become its
:class:`~stats.analytics.series.Observations`, and :func:`stats.analytics.compute.analyse` computes what the
options ask for, exactly as for one time series. Each table has the polygon's ``id`` first, then the
columns of :meth:`stats.results.TimeSeriesResult.table` of the same name.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa

from ..analytics.compute import analyse
from ..analytics.series import Observations
from ..results import TimeSeriesResult
from .plan import ID_COLUMN, BatchPlan

#: Columns of the analytics tables that are not floats.
_DATES = {"date", "start", "peak", "end"}
_TEXT = {"from", "to", "status", "dates", "reason", "index", "warnings"}
_INTEGERS = {"acquisitions", "length_days"}


def analytics_tables(plan: BatchPlan, table: pa.Table, order_column: str) -> dict[str, pa.Table]:
    """The analytics tables (``intervals``, ``curves``, ``season``: those asked for) of a batch table that
    still has its ``order_column`` (each row's polygon position) and is sorted by it."""
    options = plan.options
    if not options.analytics.requested:
        return {}
    order = np.asarray(table.column(order_column).to_numpy(zero_copy_only=False))
    wanted = {"date", "cloud_probability", "cloud_fraction", "valid_pixels", "error"}
    wanted |= {f"{n}_{s}" for n in options.bands + options.index_names for s in options.statistics}
    data = {name: table.column(name).to_pylist() for name in table.column_names if name in wanted}
    starts = {int(i): int(np.searchsorted(order, i, "left")) for i in np.unique(order)}
    names: tuple[str, ...] = ()
    rows: dict[str, list[list[Any]]] = {}
    headers: dict[str, list[str]] = {}
    template = TimeSeriesResult.empty(options)
    for index, polygon in enumerate(plan.polygons):
        if plan.areas[index] is None:
            continue
        a = starts.get(index, 0)
        b = int(np.searchsorted(order, index, "right")) if index in starts else 0
        obs = Observations.from_rows({k: v[a:b] for k, v in data.items()}, options)
        result = replace(template, analytics=analyse(obs, options, plan.time))
        names = result.tables[1:]
        for name in names:
            header, body = result.table(name)
            headers[name] = [ID_COLUMN] + header
            rows.setdefault(name, []).extend([polygon.id] + row for row in body)
    id_type = table.schema.field(ID_COLUMN).type
    return {name: _typed(headers[name], rows.get(name, []), id_type) for name in names if name in headers}


def _typed(header: list[str], rows: list[list[Any]], id_type: pa.DataType) -> pa.Table:
    columns = list(zip(*rows)) if rows else [() for _ in header]
    arrays = []
    for name, values in zip(header, columns):
        if name == ID_COLUMN:
            kind = id_type
            values = tuple(None if v is None else (v if id_type != pa.string() else str(v)) for v in values)
        elif name in _DATES:
            kind = pa.date32()
            values = tuple(None if v is None else dt.date.fromisoformat(v) for v in values)
        elif name in _TEXT:
            kind = pa.string()
        elif name in _INTEGERS:
            kind = pa.int64()
        elif name.endswith("_interpolated"):
            kind = pa.bool_()
        else:
            kind = pa.float64()
        arrays.append(pa.array(list(values), type=kind))
    return pa.Table.from_arrays(arrays, names=header)
