"""The one settings object of polyfis, for the engine and the service, read from ``POLYFIS_*`` variables.

:meth:`Settings.from_env` reads every variable once and validates it: a bad value raises
:class:`~stats.errors.ConfigError` naming the variable, what was received and what was expected, so that
``polyfis serve`` and the Flask app refuse to start instead of running with a value silently ignored.
:func:`current` gives the process's settings (read on first use, or set by :func:`configure` at start-up);
the engine's reader threads, dataset pool and window cache size themselves from it.

The variables, their meaning and default are the fields of :class:`Settings` (``POLYFIS_`` + the field
name in capitals); the README's settings table lists them.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .request import Limits

PREFIX = "POLYFIS_"
#: The fixtures shipped in the package: the demo archive's recipe and polygons, the FIS layers.
FIXTURES = Path(str(resources.files("stats") / "fixtures"))
#: The FIS layer configuration shipped with polyfis.
DEFAULT_LAYERS = FIXTURES / "layers.yaml"

#: The engine's default limits, which the settings' defaults are.
_LIMITS = Limits()
#: Field metadata: the smallest value an integer or number setting takes, and how to say it.
_POSITIVE = {"min": 1, "expected": "a positive integer"}
_COUNT = {"min": 0, "expected": "0 or a positive integer"}


@dataclass(frozen=True)
class Settings:
    """Validated settings (each field is the variable ``POLYFIS_<FIELD>``)."""

    #: Archive folder, STAC file or URL, .parquet index, or a STAC API as ``stac+https://host/path#collection``;
    #: None serves the embedded demo archive.
    archive: str | None = None
    #: Folder of the demo archive cache; None uses ``$XDG_CACHE_HOME/polyfis/demo`` (``~/.cache/polyfis/demo``).
    demo_dir: str | None = None
    #: Folder of the demo archive's recipe and polygons; None uses the ``stats/fixtures/`` shipped with polyfis.
    fixtures: str | None = None
    #: Largest request body in bytes (413 above it).
    max_body_bytes: int = field(default=1_000_000, metadata=_POSITIVE)
    #: Most vertices in one geometry (400 above it).
    max_vertices: int = field(default=_LIMITS.max_vertices, metadata=_POSITIVE)
    #: Most pixels in one query window (400 above it).
    max_pixels: int = field(default=_LIMITS.max_pixels, metadata=_POSITIVE)
    #: Memory budget of one request's arrays, MiB, checked before the work (400 above it).
    max_request_mb: int = field(default=_LIMITS.max_bytes // 2**20, metadata=_POSITIVE)
    #: Most acquisitions (tiles) one request may read (400 above it).
    max_acquisitions: int = field(default=_LIMITS.max_acquisitions, metadata=_POSITIVE)
    #: Longest time range of one request, days (400 above it).
    max_days: int = field(default=_LIMITS.max_days, metadata=_POSITIVE)
    #: Seconds of work one request may take; dates not started by then are reported as not computed.
    time_budget_s: float = field(default=_LIMITS.time_budget_s, metadata={"min": 0, "exclusive": True,
                                                         "expected": "a positive number of seconds"})
    #: Origins allowed by CORS, comma-separated ("*" for any); None sends no CORS headers.
    cors_origins: str | None = None
    #: Rate limit per client address, in flask-limiter notation ("100/minute"); None for no limit.
    rate_limit: str | None = None
    #: Where the rate limit counts (a limits storage URI): ``memory://`` counts in each process (per gunicorn
    #: worker), ``redis://host:6379`` or ``memcached://host:11211`` counts once for every worker sharing it.
    rate_limit_storage: str = "memory://"
    #: FIS layer configuration file; None uses the shipped stats/fixtures/layers.yaml.
    layers: str | None = None
    #: Folder of the batch jobs; None uses ``$XDG_CACHE_HOME/polyfis/jobs`` (``~/.cache/polyfis/jobs``).
    jobs_dir: str | None = None
    #: Most polygons of one batch job (400 above it).
    batch_max_polygons: int = field(default=100_000, metadata=_POSITIVE)
    #: Largest batch job request body in bytes (413 above it).
    batch_max_body_bytes: int = field(default=50_000_000, metadata=_POSITIVE)
    #: Dask LocalCluster worker processes per batch job; 0 runs jobs in the server process without Dask.
    batch_workers: int = field(default=0, metadata={"min": 0, "expected": "0 (in-process) or a positive number "
                                                                           "of worker processes"})
    #: The one local folder Batch Statistical requests may read GeoPackages from and write outputs to (paths
    #: relative to it); None allows S3 locations only.
    batch_statistical_root: str | None = None
    #: Buckets for which a Batch Statistical location without keys uses the server's own S3 credentials,
    #: comma-separated; None lends them to none (every S3 location must carry its keys).
    batch_statistical_buckets: str | None = None
    #: Address of a running Dask scheduler for batch jobs (its workers must reach the archive); None for none.
    dask_scheduler: str | None = None
    #: Band datasets kept open between queries (each costs about 1.6 MiB inside GDAL); 0 opens per read.
    open_datasets: int = field(default=0, metadata=_COUNT)
    #: Memory for the windows already read, MiB; 0 keeps none.
    window_cache_mb: int = field(default=256, metadata=_COUNT)
    #: Folder of read windows shared by every process using it (``polyfis serve`` with several workers makes
    #: one for its run when none is set); None shares none.
    window_cache_dir: str | None = None
    #: Bytes kept in that folder, MiB (the least recently written windows go first).
    window_disk_mb: int = field(default=1024, metadata=_COUNT)
    #: Folder of the on-the-fly cloud cells' probabilities, shared by every worker and kept across restarts
    #: (a SQLite database); None keeps them in each process's memory only.
    cloud_cache_dir: str | None = None
    #: The HTTP front of ``polyfis serve`` (per worker process): request threads, seconds for a request's
    #: headers to arrive, for its body after them (plus one second per ``POLYFIS_BODY_MIN_RATE`` bytes), for an
    #: idle kept-alive connection; the longest request line (414 above) and headers (431 above), in bytes; and
    #: the open connections a worker holds before it stops accepting.
    server_threads: int = field(default=4, metadata=_POSITIVE)
    header_timeout_s: float = field(default=10.0, metadata={"min": 0, "exclusive": True,
                                                            "expected": "a positive number of seconds"})
    body_timeout_s: float = field(default=20.0, metadata={"min": 0, "exclusive": True,
                                                          "expected": "a positive number of seconds"})
    body_min_rate: int = field(default=50_000, metadata=_POSITIVE)
    idle_timeout_s: float = field(default=15.0, metadata={"min": 1, "expected": "a number of seconds, at least 1"})
    max_request_line: int = field(default=16_384, metadata={"min": 256, "expected": "a number of bytes, at least 256"})
    max_header_bytes: int = field(default=65_536, metadata={"min": 1024,
                                                            "expected": "a number of bytes, at least 1024"})
    max_connections: int = field(default=1_000, metadata=_POSITIVE)
    #: Threads reading the bands of one date; None uses the CPU count.
    read_threads: int | None = field(default=None, metadata=_POSITIVE)
    #: Band reads in flight at once from remote (http(s), object storage) archives, across dates and bands
    #: (more threads overlap more round trips, but GDAL's opens then contend for the cores: see
    #: ``bench/results/remote.md``).
    io_threads: int = field(default=32, metadata=_POSITIVE)
    #: Remote band datasets kept open between queries (their headers cost round trips to read again).
    remote_open_datasets: int = field(default=512, metadata=_COUNT)
    #: Seconds a remote band's request may take (connecting included) before its date gets an error.
    remote_timeout_s: int = field(default=30, metadata=_POSITIVE)

    #: OAuth2 clients "id:secret,..."; auth is on when any is set.
    auth_clients: str | None = None
    #: Token signing key; a random one per process when unset (set it when running several workers).
    auth_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    #: Token lifetime in seconds.
    token_ttl: int = field(default=3600, metadata=_POSITIVE)
    #: FIS instance ids accepted as keys, comma-separated (``POLYFIS_FIS_INSTANCES``).
    fis_instances_text: str | None = None

    def __post_init__(self) -> None:
        _ = self.clients  # validates the client list
        _check_rate_limit(self.rate_limit, self.rate_limit_storage)
        for f in fields(self):
            if "min" not in f.metadata:
                continue
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue
            kinds = (int,) if f.type in ("int", "int | None") else (int, float)
            low = f.metadata["min"]
            if isinstance(value, bool) or not isinstance(value, kinds) or value < low or (
                    f.metadata.get("exclusive") and value == low):
                raise ConfigError(f"{_variable(f.name)}: expected {f.metadata['expected']}, got {value!r}")

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
        return cache_home() / "polyfis" / "jobs"

    @property
    def batch_statistical_path(self) -> Path | None:
        """The Batch Statistical local folder in force (resolved), or None when local paths are refused."""
        return Path(self.batch_statistical_root).expanduser().resolve() if self.batch_statistical_root else None

    @property
    def batch_statistical_bucket_set(self) -> frozenset[str]:
        """The buckets of ``POLYFIS_BATCH_STATISTICAL_BUCKETS``."""
        return frozenset(b.strip() for b in (self.batch_statistical_buckets or "").split(",") if b.strip())

    @property
    def demo_path(self) -> Path:
        """The demo archive folder in force (not created here)."""
        if self.demo_dir:
            return Path(self.demo_dir).expanduser()
        return cache_home() / "polyfis" / "demo"

    @property
    def fixtures_path(self) -> Path:
        """The folder of the demo recipe and polygons in force."""
        return Path(self.fixtures).expanduser() if self.fixtures else FIXTURES

    @property
    def layers_path(self) -> Path:
        """The FIS layer configuration file in force."""
        return Path(self.layers) if self.layers else DEFAULT_LAYERS

    @property
    def limits(self) -> Limits:
        """The per-request limits these settings set."""
        return Limits(max_vertices=self.max_vertices, max_pixels=self.max_pixels,
                      max_acquisitions=self.max_acquisitions, max_days=self.max_days,
                      time_budget_s=self.time_budget_s, max_bytes=self.max_request_mb * 2**20)

    @property
    def threads(self) -> int:
        """Reader threads in force."""
        return self.read_threads or os.cpu_count() or 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``POLYFIS_*`` variables, then apply ``overrides``.

        :raises ConfigError: naming the variable whose value is not of its type or range.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(_variable(f.name))
            if raw is None or raw.strip() == "":
                continue
            if f.type in ("int", "float", "int | None"):
                try:
                    values[f.name] = float(raw) if f.type == "float" else int(raw)
                except ValueError as exc:
                    whole = "" if f.type == "float" else "; it must be a whole number"
                    raise ConfigError(f"{_variable(f.name)}: expected a number, got {raw!r}{whole}") from exc
            else:
                values[f.name] = raw
        return replace(cls(**values), **overrides)


def _check_rate_limit(limit: str | None, storage: str) -> None:
    """A rate limit flask-limiter reads and a storage URI of a scheme the limits library knows."""
    from limits import parse_many
    from limits.storage import SCHEMES

    if limit is not None:
        try:
            parse_many(limit)
        except ValueError as exc:
            raise ConfigError(f"{PREFIX}RATE_LIMIT: expected a rate such as '100/minute' or '10/second;500/hour', "
                              f"got {limit!r}") from exc
    scheme, sep, _ = storage.partition("://")
    if not sep or scheme not in SCHEMES or scheme.startswith("async+"):
        known = sorted(s for s in SCHEMES if not s.startswith("async+"))
        raise ConfigError(f"{PREFIX}RATE_LIMIT_STORAGE: expected a storage URI such as 'memory://' or "
                          f"'redis://127.0.0.1:6379' (schemes {known}), got "  # never the rest: it may hold a password
                          + (f"the scheme {scheme!r:.40}" if sep else "no scheme"))


def _variable(name: str) -> str:
    return PREFIX + name.upper().removesuffix("_TEXT")


def cache_home() -> Path:
    """The user's cache folder: ``$XDG_CACHE_HOME``, else ``~/.cache``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")).expanduser()


_CURRENT: Settings | None = None
_LOCK = threading.Lock()


def current() -> Settings:
    """The settings of this process: those given to :func:`configure`, else read from the environment once.

    :raises ConfigError: when a ``POLYFIS_*`` variable has a bad value.
    """
    global _CURRENT
    with _LOCK:
        if _CURRENT is None:
            _CURRENT = Settings.from_env()
        return _CURRENT


def configure(settings: Settings | None) -> None:
    """Make ``settings`` this process's settings (None: read the environment again on next use)."""
    global _CURRENT
    with _LOCK:
        _CURRENT = settings
