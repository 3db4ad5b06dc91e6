"""The polyfis contenders of the benchmark: the engine in-process, over HTTP, and the batch.

* ``polyfis_engine``: ``query_timeseries`` in the child process, the cold (first) call then warm repeats,
  with ``stats.clouds.model.CloudModel.probability`` wrapped by a timer to report the model's share;
* ``polyfis_http``: ``polyfis serve`` with one worker, POST ``/api/v1/timeseries`` cold then warm;
* ``polyfis_compute_batch`` and ``polyfis_run_batch``: ``stats.batch.compute_batch`` in-process and
  ``stats.batch.run_batch`` on a Dask LocalCluster of 2 workers.

polyfis is imported inside the runners only, so that the engine's import time can be measured.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from common import polyfis_server
from perf_archive import BANDS, EPSG
from perf_job import STATS, Job, NotAvailable, Values


def _series_values(series: Sequence[dict[str, Any]]) -> Values:
    """Values from a time-series JSON ``series`` list."""
    out: Values = {}
    for entry in series:
        if entry.get("error"):
            raise RuntimeError(f"date {entry['date']}: {entry['error']}")
        out[entry["date"]] = {b: [s[k] for k in STATS] for b, s in entry["bands"].items() if s.get("mean") is not None}
    return out


def _body(job: Job) -> dict[str, Any]:
    """The time-series request of a single-polygon job: every date, the :data:`perf_job.STATS`."""
    geometry = job.features()[0]["geometry"]
    return {"geometry": geometry, "crs": EPSG, "time": {"from": job.start, "to": job.end},
            "statistics": list(STATS), "include_empty": True}


def _check_answer(job: Job, data: dict[str, Any]) -> None:
    if data["status"] != "OK" or len(data["series"]) != len(job.files) // len(BANDS):
        raise RuntimeError(f"unexpected answer: status {data['status']}, {len(data['series'])} dates")


def run_polyfis_engine(job: Job) -> dict[str, Any]:
    """``query_timeseries`` in-process: archive open, model load, the cold call, then warm repeats."""
    t0 = time.perf_counter()
    import stats.clouds.model
    from stats import Archive, TimeSeriesRequest, query_timeseries
    from stats.clouds.model import default_model

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    default_model().probability(np.full((1, 10), 0.1))
    model_load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    archive = Archive.open(Path(job.data_dir) / "archive")
    archive_open_s = time.perf_counter() - t0

    model_calls: list[tuple[float, int]] = []
    original = stats.clouds.model.CloudModel.probability

    def timed(self: Any, pixels: np.ndarray) -> np.ndarray:
        t = time.perf_counter()
        try:
            return original(self, pixels)
        finally:
            model_calls.append((time.perf_counter() - t, int(np.asarray(pixels).shape[0])))

    stats.clouds.model.CloudModel.probability = timed  # type: ignore[method-assign]
    body = _body(job)
    calls: list[dict[str, Any]] = []
    values: Values = {}
    for k in range(1 + job.repeats):
        model_calls.clear()
        t0 = time.perf_counter()
        result = query_timeseries(TimeSeriesRequest.from_dict(body), archive)
        seconds = time.perf_counter() - t0
        data = result.to_dict()
        _check_answer(job, data)
        if k == 0:
            values = _series_values(data["series"])
        calls.append({"seconds": seconds, "model_s": sum(c[0] for c in model_calls),
                      "model_calls": len(model_calls), "model_rows": sum(c[1] for c in model_calls)})
        print(f"    polyfis engine call {k + 1}: {seconds:.2f} s (model {calls[-1]['model_s'] * 1000:.1f} ms)",
              flush=True)
    warm = [c["seconds"] for c in calls[1:]]
    return {"wall_s": calls[0]["seconds"], "cold_s": calls[0]["seconds"], "warm_s": statistics.median(warm),
            "warm_all_s": warm, "calls": calls, "import_s": import_s, "model_load_s": model_load_s,
            "archive_open_s": archive_open_s, "values": {job.sample_ids[0]: values}}


def run_polyfis_http(job: Job) -> dict[str, Any]:
    """``polyfis serve`` (1 gunicorn worker) on a free port; POST /api/v1/timeseries cold, then warm."""
    env = {"POLYFIS_ARCHIVE": str(Path(job.data_dir) / "archive"), "POLYFIS_TIME_BUDGET_S": "3600"}
    payload = json.dumps(_body(job)).encode()
    calls: list[float] = []
    values: Values = {}
    with polyfis_server(workers=1, env=env) as server:
        for k in range(1 + job.repeats):
            request = urllib.request.Request(f"{server.base}/api/v1/timeseries", data=payload,
                                             headers={"Content-Type": "application/json"}, method="POST")
            t0 = time.perf_counter()
            with urllib.request.urlopen(request, timeout=3600) as response:
                data = json.loads(response.read())
            calls.append(time.perf_counter() - t0)
            _check_answer(job, data)
            if k == 0:
                values = _series_values(data["series"])
            print(f"    polyfis http call {k + 1}: {calls[-1]:.2f} s", flush=True)
    return {"wall_s": calls[0], "cold_s": calls[0], "warm_s": statistics.median(calls[1:]), "warm_all_s": calls[1:],
            "server_start_s": server.start_s, "values": {job.sample_ids[0]: values}}


def _batch_values(table: Any, ids: Sequence[str]) -> dict[str, Values]:
    """Values of the sample polygons from a batch table (``id``, ``date``, ``<band>_<stat>``)."""
    wanted = set(ids)
    values: dict[str, Values] = {}
    for row in table.to_pylist():
        fid = str(row["id"])
        if fid not in wanted:
            continue
        date = str(row["date"])[:10]
        for band in BANDS:
            cells = [row.get(f"{band}_{s}") for s in STATS]
            if all(c is not None for c in cells):
                values.setdefault(fid, {}).setdefault(date, {})[band] = [float(c) for c in cells]
    return values


def _batch_module() -> Any:
    """``stats.batch`` (its ``compute_batch`` and ``run_batch``), or :class:`NotAvailable`."""
    try:
        from stats import batch
    except ImportError as exc:
        raise NotAvailable(f"stats.batch is not importable ({exc})") from exc
    return batch


def run_polyfis_compute_batch(job: Job) -> dict[str, Any]:
    """``stats.batch.compute_batch`` in-process, returning a pyarrow Table."""
    batch = _batch_module()
    from stats import Archive
    from stats.clouds.model import default_model

    t0 = time.perf_counter()
    default_model().probability(np.full((1, 10), 0.1))
    model_load_s = time.perf_counter() - t0
    archive = Archive.open(Path(job.data_dir) / "archive")
    t0 = time.perf_counter()
    table = batch.compute_batch(archive, job.polygons, job.start, job.end, options={"statistics": list(STATS)})
    seconds = time.perf_counter() - t0
    return {"wall_s": seconds, "rows": table.num_rows, "model_load_s": model_load_s,
            "values": _batch_values(table, job.sample_ids)}


def run_polyfis_run_batch(job: Job) -> dict[str, Any]:
    """``stats.batch.run_batch`` on a Dask LocalCluster of 2 workers, writing Parquet."""
    batch = _batch_module()
    import pyarrow.parquet as pq

    from stats import Archive

    archive = Archive.open(Path(job.data_dir) / "archive")
    with tempfile.TemporaryDirectory(prefix="polyfis-perf-") as tmp:
        out = Path(tmp) / "batch.parquet"
        t0 = time.perf_counter()
        batch.run_batch(archive, job.polygons, job.start, job.end, out, options={"statistics": list(STATS)},
                        workers=2, progress=False)
        seconds = time.perf_counter() - t0
        table = pq.read_table(out)
    return {"wall_s": seconds, "rows": table.num_rows, "values": _batch_values(table, job.sample_ids)}


RUNNERS: dict[str, Callable[[Job], dict[str, Any]]] = {
    "polyfis_engine": run_polyfis_engine,
    "polyfis_http": run_polyfis_http,
    "polyfis_compute_batch": run_polyfis_compute_batch,
    "polyfis_run_batch": run_polyfis_run_batch,
}
