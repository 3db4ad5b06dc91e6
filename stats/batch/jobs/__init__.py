"""Batch jobs submitted over HTTP: checked up front (:mod:`.request`), kept on disk and claimed by one
process (:mod:`.store`), run in the background of each server process (:mod:`.runner`)."""

from .request import DEFAULT_MAX_POLYGONS, REQUEST_FIELDS, BatchJobRequest, batch_polygons
from .runner import JobRunner
from .store import PENDING, RESULT_FILES, STATUSES, JobStore, is_job_id

__all__ = [
    "DEFAULT_MAX_POLYGONS",
    "PENDING",
    "REQUEST_FIELDS",
    "RESULT_FILES",
    "STATUSES",
    "BatchJobRequest",
    "JobRunner",
    "JobStore",
    "batch_polygons",
    "is_job_id",
]
