"""Running a batch: in this process (:func:`compute_batch`) or on Dask distributed (:func:`run_batch`).

:func:`run_batch` plans the batch (:mod:`.plan`), runs its tasks (:mod:`.task`) on a LocalCluster, an
existing scheduler or in this process, writes each finished task to a part file so that a rerun resumes,
and assembles the output (:mod:`.output`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..archive.catalog import Archive
from ..clouds.model import CloudModel
from ..datasets import io_threads
from ..errors import InvalidRequestError
from ..progress import progress_reporter
from ..raster import remote
from ..request import Limits
from .inputs import BatchPolygon, read_polygons
from .output import error_table, failed_task_table, finish_table, output_format, write_table
from .plan import BatchPlan, BatchTask, batch_options, batch_time, plan_batch
from .task import BATCH_GDAL_CACHE_MB, run_task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchSummary:
    """What :func:`run_batch` did."""

    out: Path
    polygons: int
    tasks: int
    skipped_tasks: int
    rows: int
    failed_polygons: int
    error_rows: int
    empty_polygons: int  # usable polygons without any dated row (each has a row saying why)
    repaired_polygons: int  # invalid polygons answered after shapely.make_valid repaired them
    seconds: float


def compute_batch(archive: Archive | str | os.PathLike[str], polygons: str | os.PathLike[str] | Sequence[BatchPolygon],
                  start: str | dt.datetime, end: str | dt.datetime, *, options: Mapping[str, Any] | None = None,
                  model: CloudModel | None = None, limits: Limits | None = None) -> pa.Table:
    """Run a batch in this process and return its rows (``id``, then the time-series columns), ordered
    by polygon (input order) and date."""
    arch = archive if isinstance(archive, Archive) else Archive.open(archive)
    polys = read_polygons(polygons) if isinstance(polygons, (str, os.PathLike)) else list(polygons)
    plan = plan_batch(arch, polys, batch_time(start, end), batch_options(options), limits=limits)
    return run_plan(plan, arch, model=model)[0]


def run_plan(plan: BatchPlan, archive: Archive, *,
             model: CloudModel | None = None) -> tuple[pa.Table, dict[str, pa.Table]]:
    """Run a planned batch in this process: its rows (``id``, then the time-series columns), ordered by
    polygon (input order) and date, and its analytics tables by name (those the options ask for)."""
    run = partial(_run_one, plan, model=model, archive=archive)
    in_flight = tasks_in_flight(plan, archive)
    if in_flight <= 1:
        tables = [run(task) for task in plan.tasks]
    else:  # a remote archive: the tasks' reads wait for the network together
        with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="polyfis-task") as executor:
            tables = list(executor.map(run, plan.tasks))
    return finish_table(plan, [error_table(plan), *tables])


def _run_one(plan: BatchPlan, task: BatchTask, *, model: CloudModel | None, archive: Archive) -> pa.Table:
    return run_task(plan, task, model=model, archive=archive)


def tasks_in_flight(plan: BatchPlan, archive: Archive) -> int:
    """Tasks run at once in this process: one for a local archive, enough to keep ``POLYFIS_IO_THREADS`` band
    reads in flight for a remote one."""
    if not plan.tasks or not any(remote(acq) for acq in archive.acquisitions[:1]):
        return 1
    return min(len(plan.tasks), max(1, io_threads() // max(1, len(plan.options.read_bands))))


def _run_remote(plan: BatchPlan, task: BatchTask) -> pa.Table:
    return run_task(plan, task)


def _digest(plan: BatchPlan, start: Any, end: Any, options: Mapping[str, Any] | None) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"archive": plan.archive_href, "start": str(start), "end": str(end),
                         "options": options or {}}, sort_keys=True, default=str).encode())
    h.update(plan.key.encode())
    return h.hexdigest()


def run_batch(
    archive: Archive | str | os.PathLike[str],
    polygons: str | os.PathLike[str] | Sequence[BatchPolygon],
    start: str | dt.datetime,
    end: str | dt.datetime,
    out: str | os.PathLike[str],
    *,
    options: Mapping[str, Any] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool | Callable[[int, int], None] = True,
    id_field: str | None = None,
    wkt_field: str | None = None,
    crs: str | None = None,
    limits: Limits | None = None,
) -> BatchSummary:
    """Run a batch on Dask distributed and write ``out`` (.csv, .parquet or .gpkg).

    Finished tasks are kept as Parquet parts in ``<out>.parts/``; a rerun of the same batch (same archive,
    polygons, range and options) skips them, and a changed batch starts afresh. ``scheduler`` is the
    address of a running Dask scheduler (its workers must reach the archive); without it a LocalCluster of
    ``workers`` processes (default: the CPU count) runs here, and ``workers=0`` runs the tasks in this
    process without Dask. ``progress`` shows a progress bar (True) or is called with (done, total) tasks.
    ``limits`` bound the vertices of a polygon and the reads of the polygons answered one by one.
    """
    began = time.monotonic()
    out = Path(out)
    output_format(out)
    arch = archive if isinstance(archive, Archive) else Archive.open(archive)
    if not arch.href:
        raise InvalidRequestError("archive: a batch needs an archive opened from a folder or URL")
    polys = (read_polygons(polygons, id_field=id_field, wkt_field=wkt_field, crs=crs)
             if isinstance(polygons, (str, os.PathLike)) else list(polygons))
    plan = plan_batch(arch, polys, batch_time(start, end), batch_options(options), limits=limits)
    for i, message in sorted(plan.invalid.items()):
        log.warning("polygon %r: %s", plan.polygons[i].id, message)
    for poly, area in zip(plan.polygons, plan.areas):
        if area is not None and area.repaired:
            log.warning("polygon %r: invalid (%s), answered after repair", poly.id, area.repaired)
    parts = out.with_name(out.name + ".parts")
    digest = _digest(plan, start, end, options)
    manifest = parts / "manifest.json"
    if parts.is_dir() and (not manifest.is_file() or json.loads(manifest.read_text()).get("digest") != digest):
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"digest": digest, "tasks": len(plan.tasks)}))
    todo = [t for t in plan.tasks if not (parts / f"{t.key}.parquet").is_file()]
    skipped = len(plan.tasks) - len(todo)
    report = progress_reporter(progress, len(plan.tasks), skipped, unit="task", desc="batch")
    failed: dict[str, pa.Table] = {}
    if todo and workers == 0 and not scheduler:
        for task in todo:
            _write_part(parts, task, run_task(plan, task, archive=arch))
            report(1)
    elif todo:
        _run_on_dask(plan, todo, parts, scheduler, workers, report, failed)
    report(None)
    tables = [error_table(plan)] + [failed[t.key] if t.key in failed else pq.read_table(parts / f"{t.key}.parquet")
                                     for t in plan.tasks]
    table, extra = finish_table(plan, tables)
    write_table(table, out, plan, extra)
    if not failed:
        shutil.rmtree(parts)
    errors = table.column("error").drop_null()
    dated = {i for i, d in zip(table.column("id").to_pylist(), table.column("date").to_pylist()) if d is not None}
    empty = sum(1 for poly, area in zip(plan.polygons, plan.areas) if area is not None and poly.id not in dated)
    return BatchSummary(out=out, polygons=len(plan.polygons), tasks=len(plan.tasks), skipped_tasks=skipped,
                        rows=table.num_rows, failed_polygons=len(plan.invalid), error_rows=len(errors),
                        empty_polygons=empty, repaired_polygons=sum(1 for a in plan.areas if a and a.repaired),
                        seconds=time.monotonic() - began)


def _run_on_dask(plan: BatchPlan, todo: list[BatchTask], parts: Path, scheduler: str | None,
                 workers: int | None, report: Callable[[int | None], None], failed: dict[str, pa.Table]) -> None:
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        n = workers or os.cpu_count() or 1
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               env={"GDAL_CACHEMAX": os.environ.get("GDAL_CACHEMAX", str(BATCH_GDAL_CACHE_MB))})
        client = Client(cluster)
    try:
        futures = {client.submit(_run_remote, plan.for_task(task), task, pure=False, key=f"polyfis-{task.key}"):
                   task for task in todo}
        for future in as_completed(futures):
            task = futures[future]
            try:
                table = future.result()
            except Exception as exc:  # a worker died or the task failed: its rows say so, the batch goes on
                log.error("task %s (%s, %d polygons) failed: %s", task.key, task.date, len(task.polygons), exc)
                failed[task.key] = failed_task_table(plan, task, exc)  # not kept: a rerun retries it
                report(1)
                continue
            _write_part(parts, task, table)
            report(1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _write_part(parts: Path, task: BatchTask, table: pa.Table) -> None:
    tmp = parts / f"{task.key}.parquet.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, parts / f"{task.key}.parquet")
