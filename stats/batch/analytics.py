"""The analytics of a batch: the intervals, curves and season of every polygon, as tables beside its rows.

The batch table (ordered by polygon and date) becomes one :class:`~stats.analytics.series.Observations` of
all polygons, read column by column from Arrow, and :func:`stats.analytics.compute.analyse` computes what
the options ask for over all of them at once, with the rules of a single time series. Each table has the
polygon's ``id`` first, then the columns of :meth:`stats.results.TimeSeriesResult.table` of the same name;
polygons that could not be used have no rows there (their error is in the batch's rows).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from ..analytics.compute import analyse
from ..analytics.series import Observations
from .plan import ID_COLUMN, BatchPlan

#: Columns of the analytics tables that are not floats.
_DATES = {"date", "start", "peak", "end"}
_TEXT = {"from", "to", "status", "dates", "reason", "index", "warnings"}
_INTEGERS = {"acquisitions", "length_days"}


def analytics_tables(plan: BatchPlan, table: pa.Table, order_column: str) -> dict[str, pa.Table]:
    """The analytics tables (``intervals``, ``curves``, ``season``: those asked for) of a batch table that
    still has its ``order_column`` (each row's polygon position) and is sorted by it and by date."""
    options = plan.options
    if not options.analytics.requested:
        return {}
    obs = Observations.from_table(table, order_column, len(plan.polygons), options)
    analytics = analyse(obs, options, plan.time)
    if analytics is None:
        return {}
    usable = np.array([area is not None for area in plan.areas], dtype=bool)
    id_type = table.schema.field(ID_COLUMN).type
    ids = pa.array([p.id if id_type != pa.string() else str(p.id) for p in plan.polygons], type=id_type)
    out = {}
    for name, part in analytics.tables().items():
        rows = np.flatnonzero(usable[part.row_polygons()])
        columns = part.table()
        arrays = [ids.take(pa.array(part.row_polygons()[rows]))]
        arrays += [_typed(column, values, rows) for column, values in columns.items()]
        out[name] = pa.Table.from_arrays(arrays, names=[ID_COLUMN, *columns])
    return out


def _typed(name: str, values: np.ndarray | list[Any], rows: np.ndarray) -> pa.Array:
    """One column of an analytics table (an array, or a list of Python values), typed by its name, at ``rows``."""
    if isinstance(values, np.ndarray):
        picked = values[rows]
        if picked.dtype.kind != "f":
            return pa.array(picked)
        if name in _INTEGERS:
            return pa.array(np.nan_to_num(picked).astype(np.int64), mask=np.isnan(picked), type=pa.int64())
        return pa.array(picked, mask=np.isnan(picked), type=pa.float64())
    listed = values if len(values) == rows.size else [values[i] for i in rows.tolist()]
    if name in _DATES:
        return pa.array(listed, type=pa.string()).cast(pa.date32())
    if name in _TEXT:
        return pa.array(listed, type=pa.string())
    if name in _INTEGERS:
        return pa.array(listed, type=pa.int64())
    return pa.array([np.nan if v is None else v for v in listed], type=pa.float64(), from_pandas=True)
