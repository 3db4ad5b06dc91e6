"""polyfis HTTP service: a Flask app that parses requests, calls the :mod:`stats` engine and renders.

Views never touch arrays: they parse, call and render. Create the app with :func:`create_app`.

Batch jobs (``/api/v1/batch``) run on a background thread of each process (:class:`stats.batch.jobs.runner.JobRunner`),
started when a job is submitted, or on the first request (or by :func:`resume_jobs`) when the jobs folder
holds jobs left pending by a previous run.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flask import Flask, current_app

from stats.archive.catalog import Archive
from stats.batch.jobs import JobRunner, JobStore
from stats.sentinelhub.batch_statistical_jobs import StatisticalJobStore
from stats.sentinelhub.fis import Layer, load_layers
from stats.settings import Settings, configure

from . import auth, errors, security

log = logging.getLogger(__name__)


class ArchiveHolder:
    """Opens the configured archive (or builds the demo one) on first use, once per process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._archive: Archive | None = None
        self._lock = threading.Lock()

    def get(self) -> Archive:
        """The archive, opened on first call."""
        if self._archive is None:
            with self._lock:
                if self._archive is None:
                    self._archive = self._open()
        return self._archive

    def _open(self) -> Archive:
        if self.settings.archive:
            return Archive.open(self.settings.archive)
        from stats.archive.synthetic import demo_archive_of

        root = demo_archive_of(self.settings)
        log.info("serving the demo archive at %s", root)
        return Archive.open(root)


def create_app(config: Settings | dict[str, Any] | None = None) -> Flask:
    """Build the Flask app.

    :param config: a :class:`Settings`, or a dict of setting overrides applied on top of the
        ``POLYFIS_*`` environment; None reads the environment only.
    """
    settings = config if isinstance(config, Settings) else Settings.from_env(**(config or {}))
    configure(settings)  # the engine's readers and caches follow the app's settings
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = settings.max_body_bytes  # a multipart evalscript may use the whole body
    app.json.sort_keys = False  # type: ignore[attr-defined]
    holder = ArchiveHolder(settings)
    app.extensions["polyfis.settings"] = settings
    app.extensions["polyfis.archive"] = holder
    app.extensions["polyfis.layers"] = None
    app.extensions["polyfis.jobs"] = JobRunner(JobStore(settings.jobs_path), holder.get,
                                               workers=settings.batch_workers, scheduler=settings.dask_scheduler,
                                               limits=settings.limits)
    app.extensions["polyfis.statistical_jobs"] = JobRunner(
        StatisticalJobStore(settings.jobs_path / "statistical", files_root=settings.batch_statistical_path,
                            server_buckets=settings.batch_statistical_bucket_set,
                            max_features=settings.batch_max_polygons), holder.get, limits=settings.limits)

    from .routes import batch, batch_statistical, catalog, fis, imagery, meta, page, process, statistical, timeseries

    app.register_blueprint(meta.bp)
    app.register_blueprint(timeseries.bp)
    app.register_blueprint(fis.bp)
    app.register_blueprint(statistical.bp)
    app.register_blueprint(process.bp)
    app.register_blueprint(batch.bp)
    app.register_blueprint(batch_statistical.bp)
    app.register_blueprint(imagery.bp)
    app.register_blueprint(page.bp)
    app.register_blueprint(catalog.bp)
    security.register(app, settings)
    auth.register(app)
    errors.register(app)

    @app.before_request
    def _resume_jobs() -> None:
        resume_jobs(app)  # a cheap check after the first request

    return app


def resume_jobs(app: Flask) -> bool:
    """Start ``app``'s batch runner if the jobs folder holds pending jobs (once; later calls do nothing).

    Not done by :func:`create_app` itself, which may run in a process that forks afterwards (gunicorn's
    arbiter): the first request, or the gunicorn worker after the fork, calls it.
    """
    runners: list[JobRunner] = [app.extensions["polyfis.jobs"], app.extensions["polyfis.statistical_jobs"]]
    resumed = [runner.resume() for runner in runners]  # every runner, not only up to the first that resumes
    return any(resumed)


def stop_jobs(app: Flask, timeout: float = 5.0) -> None:
    """Stop ``app``'s batch runners, for the process's exit: a job running stays pending (not FAILED), for
    the next server to resume. Waits up to ``timeout`` seconds in all."""
    deadline = time.monotonic() + timeout
    for name in ("polyfis.jobs", "polyfis.statistical_jobs"):
        app.extensions[name].stop(max(0.0, deadline - time.monotonic()))


def settings() -> Settings:
    """Settings of the current app."""
    value: Settings = current_app.extensions["polyfis.settings"]
    return value


def layers() -> dict[str, Layer]:
    """FIS layers of the current app, read from ``settings().layers`` on first use."""
    if current_app.extensions["polyfis.layers"] is None:
        current_app.extensions["polyfis.layers"] = load_layers(settings().layers_path)
    value: dict[str, Layer] = current_app.extensions["polyfis.layers"]
    return value


def jobs() -> JobRunner:
    """Batch job runner (and its store) of the current app."""
    value: JobRunner = current_app.extensions["polyfis.jobs"]
    return value


def statistical_jobs() -> JobRunner:
    """Batch Statistical job runner (and its :class:`StatisticalJobStore`) of the current app."""
    value: JobRunner = current_app.extensions["polyfis.statistical_jobs"]
    return value


def archive() -> Archive:
    """Archive of the current app (opened on first use)."""
    holder: ArchiveHolder = current_app.extensions["polyfis.archive"]
    return holder.get()
