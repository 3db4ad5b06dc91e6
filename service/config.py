"""Service settings, read once from ``POLYFIS_*`` environment variables and validated.

================================  ===========================================================  ====================
variable                          meaning                                                      default
================================  ===========================================================  ====================
``POLYFIS_ARCHIVE``               archive to serve: folder, ``collection.json`` path or URL    the demo
``POLYFIS_DEMO_DIR``              where the demo archive is generated and cached               user cache
``POLYFIS_MAX_BODY_BYTES``        largest accepted request body                                1000000
``POLYFIS_MAX_VERTICES``          most vertices in one query geometry                          100000
``POLYFIS_MAX_PIXELS``            most pixels in one query window (bbox at the resolution)     6250000
``POLYFIS_LAYERS``                FIS layer configuration (YAML)                               fixtures/layers.yaml
``POLYFIS_AUTH_CLIENTS``          OAuth2 clients ``id:secret,id2:secret2``; auth is on if set  (off)
``POLYFIS_AUTH_KEY``              token signing key, shared by all workers                     random
``POLYFIS_TOKEN_TTL``             token lifetime, seconds                                      3600
``POLYFIS_FIS_INSTANCES``         FIS instance ids accepted as keys, comma-separated           (none)
``POLYFIS_MAX_ACQUISITIONS``      most acquisitions one request may read                       1000
``POLYFIS_MAX_DAYS``              longest time range of one request, days                      1098
``POLYFIS_TIME_BUDGET_S``         seconds of work per request, then PARTIAL                    60
``POLYFIS_CORS_ORIGINS``          CORS allowed origins, comma-separated or ``*``               (no CORS)
``POLYFIS_RATE_LIMIT``            per-address rate limit, e.g. ``100/minute``                  (none)
``POLYFIS_JOBS_DIR``              folder of the batch jobs (shared by all workers)             user cache
``POLYFIS_BATCH_MAX_POLYGONS``    most polygons of one batch job                               100000
``POLYFIS_BATCH_MAX_BODY_BYTES``  largest accepted batch job request body                      50000000
``POLYFIS_BATCH_WORKERS``         Dask LocalCluster processes per job; 0 runs it in-process    0
``POLYFIS_DASK_SCHEDULER``        address of a running Dask scheduler that runs batch jobs     (none)
================================  ===========================================================  ====================
"""

from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Mapping
import secrets
from dataclasses import dataclass, field, fields, replace
from typing import Any

PREFIX = "POLYFIS_"
#: The layer configuration shipped with polyfis.
DEFAULT_LAYERS = Path(__file__).resolve().parents[1] / "fixtures" / "layers.yaml"


class ConfigError(ValueError):
    """Raised when a setting has a value of the wrong type or range."""


@dataclass(frozen=True)
class Settings:
    """Validated service settings."""

    #: Archive folder, STAC file or URL; None serves the embedded demo archive.
    archive: str | None = None
    #: Folder of the demo archive cache; None uses the default cache folder.
    demo_dir: str | None = None
    #: Largest request body in bytes (413 above it).
    max_body_bytes: int = 1_000_000
    #: Most vertices in one geometry (400 above it).
    max_vertices: int = 100_000
    #: Most pixels in one query window (400 above it).
    max_pixels: int = 2500 * 2500
    #: Most acquisitions (tiles) one request may read (400 above it).
    max_acquisitions: int = 1000
    #: Longest time range of one request, days (400 above it).
    max_days: int = 3 * 366
    #: Seconds of work one request may take; dates not started by then are reported as not computed.
    time_budget_s: float = 60.0
    #: Origins allowed by CORS, comma-separated ("*" for any); None sends no CORS headers.
    cors_origins: str | None = None
    #: Rate limit per client address, in flask-limiter notation ("100/minute"); None for no limit.
    rate_limit: str | None = None
    #: FIS layer configuration file; None uses fixtures/layers.yaml.
    layers: str | None = None
    #: Folder of the batch jobs; None uses ``$XDG_CACHE_HOME/polyfis/jobs`` (``~/.cache/polyfis/jobs``).
    jobs_dir: str | None = None
    #: Most polygons of one batch job (400 above it).
    batch_max_polygons: int = 100_000
    #: Largest batch job request body in bytes (413 above it).
    batch_max_body_bytes: int = 50_000_000
    #: Dask LocalCluster worker processes per batch job; 0 runs jobs in the server process without Dask.
    batch_workers: int = 0
    #: Address of a running Dask scheduler for batch jobs (its workers must reach the archive); None for none.
    dask_scheduler: str | None = None

    #: OAuth2 clients "id:secret,..."; auth is on when any is set.
    auth_clients: str | None = None
    #: Token signing key; a random one per process when unset (set it when running several workers).
    auth_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    #: Token lifetime in seconds.
    token_ttl: int = 3600
    #: FIS instance ids accepted as keys, comma-separated.
    fis_instances_text: str | None = None

    @property
    def clients(self) -> dict[str, str]:
        """Client id -> secret."""
        out = {}
        for item in (self.auth_clients or "").split(","):
            if item.strip():
                client_id, sep, secret = item.strip().partition(":")
                if not sep or not client_id or not secret:
                    raise ConfigError(f"{PREFIX}AUTH_CLIENTS: entry {item!r} is not 'id:secret'")
                out[client_id] = secret
        return out

    @property
    def fis_instances(self) -> tuple[str, ...]:
        """FIS instance ids accepted as keys."""
        return tuple(i.strip() for i in (self.fis_instances_text or "").split(",") if i.strip())

    @property
    def jobs_path(self) -> Path:
        """The batch jobs folder in force (not created here)."""
        if self.jobs_dir:
            return Path(self.jobs_dir).expanduser()
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(cache).expanduser() / "polyfis" / "jobs"

    @property
    def layers_path(self) -> Path:
        """The FIS layer configuration file in force."""
        return Path(self.layers) if self.layers else DEFAULT_LAYERS

    def __post_init__(self) -> None:
        self.clients  # validates the client list
        for name in ("max_body_bytes", "max_vertices", "max_pixels", "token_ttl", "max_acquisitions", "max_days",
                     "batch_max_polygons", "batch_max_body_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{PREFIX}{name.upper()}: expected a positive integer, got {value!r}")
        if isinstance(self.time_budget_s, bool) or not isinstance(self.time_budget_s, (int, float)) \
                or not self.time_budget_s > 0:
            raise ConfigError(f"{PREFIX}TIME_BUDGET_S: expected a positive number of seconds, got {self.time_budget_s!r}")
        if isinstance(self.batch_workers, bool) or not isinstance(self.batch_workers, int) or self.batch_workers < 0:
            raise ConfigError(f"{PREFIX}BATCH_WORKERS: expected 0 (in-process) or a positive number of worker "
                              f"processes, got {self.batch_workers!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``POLYFIS_*`` variables, then apply ``overrides``."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(PREFIX + f.name.upper().removesuffix("_TEXT"))
            if raw is None or raw == "":
                continue
            if f.type in ("int", "float"):
                try:
                    values[f.name] = int(raw) if f.type == "int" else float(raw)
                except ValueError as exc:
                    raise ConfigError(f"{PREFIX}{f.name.upper()}: expected a number, got {raw!r}") from exc
            else:
                values[f.name] = raw
        return replace(cls(**values), **overrides)
