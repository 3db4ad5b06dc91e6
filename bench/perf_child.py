"""A contender's process (``bench/perf.py --child JOB.json``): run the job, write its result as JSON.

A contender that fails or is not available becomes a result with that status rather than a crash, so the
run goes on. The result also carries the process's own peak RSS and the bytes it read from storage.
"""

from __future__ import annotations

import json
import resource
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import perf_polyfis
import perf_tools
from perf_job import Job, NotAvailable

RUNNERS: dict[str, Callable[[Job], dict[str, Any]]] = {**perf_tools.RUNNERS, **perf_polyfis.RUNNERS}


def main(spec_path: str) -> None:
    """Entry point of a contender subprocess: run the job, write its JSON result to ``job.out``."""
    job = Job.load(Path(spec_path))
    try:
        result = {"status": "ok", **RUNNERS[job.contender](job)}
    except NotAvailable as exc:
        result = {"status": "not available", "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - any failure is reported as a row, the run goes on
        traceback.print_exc()
        result = {"status": "error", "message": f"{type(exc).__name__}: {exc}"}
    usage_self = resource.getrusage(resource.RUSAGE_SELF)
    usage_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    result.update(maxrss_self_bytes=usage_self.ru_maxrss * 1024, maxrss_children_bytes=usage_children.ru_maxrss * 1024,
                  disk_read_bytes=(usage_self.ru_inblock + usage_children.ru_inblock) * 512)
    Path(job.out).write_text(json.dumps(result))
