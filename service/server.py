"""Production serving: the app under gunicorn with N worker processes.

Each worker builds its own app (``create_app``) after the fork, so the archive index and the s2cloudless
model are loaded once per worker, on first use. Each worker also starts its batch job runner right away, so
jobs left pending by a previous run are resumed without waiting for a request.
"""

from __future__ import annotations

import socket
from typing import Any

from gunicorn.app.base import BaseApplication

from stats.settings import Settings


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from . import create_app, resume_jobs
        from .security import configure_logging

        configure_logging()
        app = create_app(self.settings)
        resume_jobs(app)
        return app


def port_in_use(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be served on (in use, or not an address of this machine), or None."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 2,
          timeout: int | None = None) -> None:
    """Run the service under gunicorn (blocks). ``timeout`` defaults to the time budget plus 30 s."""
    worker_timeout = timeout or int(settings.time_budget_s) + 30
    _Gunicorn(settings, {"bind": f"{host}:{port}", "workers": workers, "threads": 2,
                         "timeout": worker_timeout, "graceful_timeout": 10, "accesslog": None}).run()
