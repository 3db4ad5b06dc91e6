"""polyfis HTTP service: a Flask app that parses requests, calls the :mod:`stats` engine and renders.

Views never touch arrays: they parse, call and render. Create the app with :func:`create_app`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from flask import Flask, current_app

from stats.archive.catalog import Archive
from stats.fis import Layer, load_layers

from . import auth, errors, security
from .config import Settings

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
        from stats.archive.synthetic import build_demo_archive

        root = build_demo_archive(Path(self.settings.demo_dir) if self.settings.demo_dir else None)
        log.info("serving the demo archive at %s", root)
        return Archive.open(root)


def create_app(config: Settings | dict[str, Any] | None = None) -> Flask:
    """Build the Flask app.

    :param config: a :class:`Settings`, or a dict of setting overrides applied on top of the
        ``POLYFIS_*`` environment; None reads the environment only.
    """
    if isinstance(config, Settings):
        settings = config
    else:
        settings = Settings.from_env(**(config or {}))
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["polyfis.settings"] = settings
    app.extensions["polyfis.archive"] = ArchiveHolder(settings)
    app.extensions["polyfis.layers"] = None

    from .routes import fis, meta, statistical, timeseries

    app.register_blueprint(meta.bp)
    app.register_blueprint(timeseries.bp)
    app.register_blueprint(fis.bp)
    app.register_blueprint(statistical.bp)
    security.register(app, settings)
    auth.register(app)
    errors.register(app)
    return app


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


def archive() -> Archive:
    """Archive of the current app (opened on first use)."""
    holder: ArchiveHolder = current_app.extensions["polyfis.archive"]
    return holder.get()
