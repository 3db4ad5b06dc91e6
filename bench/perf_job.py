"""What the benchmark's parent hands a contender process, and what it gets back.

A :class:`Job` is one contender on one case, saved as JSON for the child (``bench/perf.py --child``). The
child answers with timings and, for the contenders that are compared, the :data:`Values` of the sampled
polygons. The contenders themselves are in :mod:`perf_tools` (rasterstats and the other reference tools)
and :mod:`perf_polyfis`; this module names them, per case and for the report.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: The statistics every contender computes, in the order of a :data:`Values` list.
STATS: tuple[str, ...] = ("mean", "min", "max", "std", "p10", "p50", "p90")

#: Values of one polygon: date -> band -> the STATS in order (reflectance).
Values = dict[str, dict[str, list[float]]]

#: The contenders of the single-polygon cases and of the batch, in the order of the report.
REFERENCE: tuple[str, ...] = ("io_floor", "rasterio_numpy", "rasterstats", "exactextract")
SINGLE: tuple[str, ...] = (*REFERENCE, "polyfis_engine", "polyfis_http")
BATCH: tuple[str, ...] = (*REFERENCE, "polyfis_compute_batch", "polyfis_run_batch")
LABELS: dict[str, str] = {
    "io_floor": "I/O floor",
    "rasterio_numpy": "rasterio window + numpy",
    "rasterstats": "rasterstats",
    "exactextract": "exactextract",
    "polyfis_engine": "polyfis engine",
    "polyfis_http": "polyfis HTTP",
    "polyfis_compute_batch": "polyfis compute_batch",
    "polyfis_run_batch": "polyfis run_batch (LocalCluster, 2 workers)",
}


def contenders(case: str) -> tuple[str, ...]:
    """The contenders of a case."""
    return BATCH if case == "batch" else SINGLE


class NotAvailable(Exception):
    """A contender that cannot run in this checkout."""


@dataclass
class Job:
    """What a child process runs: one contender on one case."""

    contender: str
    case: str
    data_dir: str
    polygons: str  # GeoJSON path
    files: list[tuple[str, str, str]]  # (date, band, path), date-major
    start: str
    end: str
    sample_ids: list[str]
    cap_seconds: float
    repeats: int
    out: str  # where the child writes its result (JSON)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> Job:
        job = cls(**json.loads(path.read_text()))
        job.files = [(date, band, file) for date, band, file in job.files]
        return job

    def features(self) -> list[dict[str, Any]]:
        """The GeoJSON features of the job's polygons."""
        return list(json.loads(Path(self.polygons).read_text())["features"])

    def sample_index(self, features: Sequence[dict[str, Any]]) -> list[int]:
        """Positions in ``features`` of the polygons whose values are compared."""
        wanted = set(self.sample_ids)
        return [i for i, f in enumerate(features) if str(f["properties"]["id"]) in wanted]
