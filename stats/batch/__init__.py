"""Statistics for many polygons at once, grouped by acquisition so each tile is read once for all of them.

The batch wing over the shared core: :mod:`.inputs` reads polygons, :mod:`.plan` parses them and groups
them into tasks by date and tiles, :mod:`.task` computes one task (:mod:`.gather` reads its pixels),
:mod:`.output` writes the rows, :mod:`.runner` runs the tasks in this process or on Dask, and
:mod:`.jobs` keeps batch jobs submitted over HTTP on disk. The answers equal those of
:func:`stats.pipeline.query_timeseries` for each polygon: same pixels (pixel centres, 20/60 m bands by
nearest), same harmonisation, same statistics.
"""

from .inputs import BatchPolygon, read_polygons
from .output import FORMATS, output_format, write_table
from .plan import ID_COLUMN, MAX_TASK_POLYGONS, BatchPlan, BatchTask, batch_options, batch_time, plan_batch
from .runner import BatchSummary, compute_batch, run_batch, run_plan
from .task import run_task

__all__ = [
    "FORMATS",
    "ID_COLUMN",
    "MAX_TASK_POLYGONS",
    "BatchPlan",
    "BatchPolygon",
    "BatchSummary",
    "BatchTask",
    "batch_options",
    "batch_time",
    "compute_batch",
    "output_format",
    "plan_batch",
    "read_polygons",
    "run_batch",
    "run_plan",
    "run_task",
    "write_table",
]
