"""Band datasets and the windows read from them, kept between queries; the engine's reader threads.

GDAL caches decoded blocks per open dataset: closing a COG after each read throws its decoded tiles away.
:class:`DatasetPool` can keep up to ``size`` datasets open (least recently used closed first) and hands each
out to one thread at a time, since a rasterio dataset must not be read from two threads at once. A
local file is keyed by its path, size and modification time, so a file rewritten in place is opened afresh.

The pool used by the engine is :func:`default_pool`; the settings (:mod:`stats.settings`)
``POLYFIS_OPEN_DATASETS`` set its size and ``POLYFIS_READ_THREADS`` the threads reading the bands of one
date in parallel (default: the number of CPUs). The pool is off by default (size 0): measured on COGs of
1024-pixel tiles, every open COG holds about 1.6 MiB in GDAL (a one-year, 13-band query keeps 312 open: 1.2
GiB resident instead of 0.18 GiB), while a repeated query is answered from the window cache below without
opening anything, and a query over a neighbouring polygon was not measurably faster with the datasets open.

Remote bands (http(s) URLs, read through ``/vsicurl/``, and GDAL's other network file systems) are read
differently, since there every request costs a round trip:

* GDAL is configured for remote COGs (:data:`REMOTE_GDAL_OPTIONS`, set per thread around each open and read
  of a remote band only, so local reads are untouched): no directory listing or sidecar probes on open, the
  header read in one request, adjacent ranges merged, HTTP/2 multiplexing over TLS, kept-alive connections;
* they are always kept open in :func:`remote_pool` (``POLYFIS_REMOTE_OPEN_DATASETS``, default 512), so a
  header is read once per process;
* they are read on :func:`map_threads`' I/O threads (``io=True``: ``POLYFIS_IO_THREADS``, default 64 reads in
  flight), so that a query's reads wait for the network together rather than one after the other; GDAL
  decodes each window in the thread that read it, the statistics run in the caller's threads.

GDAL's block cache holds whole decoded tiles: a 4 km² lake on COGs of 1024-pixel tiles touches up to four
2 MiB tiles per band and date, more than the default cache (5 % of RAM) holds for a year of 13 bands. So
the engine also keeps the windows it read (:class:`WindowCache`, ``POLYFIS_WINDOW_CACHE_MB``, default 256,
0 disables): a repeated query over the same polygon and grid reads nothing at all.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import rasterio
from rasterio.io import DatasetReader

from . import settings
from .shared_windows import SharedWindows, shared_windows

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_OPEN_DATASETS = 0

#: GDAL configuration of every open and read of a remote band.
REMOTE_GDAL_OPTIONS: dict[str, str] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # no listing of the folder, no probes for sidecar files
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF,.jp2,.JP2",
    "GDAL_INGESTED_BYTES_AT_OPEN": "16384",  # a COG's header (IFDs and tile offsets) in the first request
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "GDAL_HTTP_VERSION": "2TLS",  # HTTP/2 where the server offers it over TLS, else HTTP/1.1
    "GDAL_HTTP_TCP_KEEPALIVE": "YES",
    "VSI_CACHE": "TRUE",
    "VSI_CACHE_SIZE": str(1 << 20),  # per open file: 512 open remote bands hold at most 512 MiB here
}
_REMOTE_PREFIXES = ("/vsicurl", "/vsis3", "/vsigs", "/vsiaz", "/vsiadls", "/vsioss", "/vsiswift", "/vsiwebhdfs",
                    "http://", "https://", "s3://", "gs://", "az://")


def is_remote(href: str) -> bool:
    """Whether ``href`` is read over the network (an http(s) or object storage URL, or a GDAL network path).

    >>> is_remote("/vsicurl/https://example.com/B04.tif"), is_remote("/data/B04.tif")
    (True, False)
    """
    return href.startswith(_REMOTE_PREFIXES)


@contextmanager
def gdal_env(href: str) -> Iterator[None]:
    """:data:`REMOTE_GDAL_OPTIONS` (and ``POLYFIS_REMOTE_TIMEOUT_S``) around an open or read of a remote
    ``href``; nothing for a local file."""
    if not is_remote(href):
        yield
        return
    timeout = str(settings.current().remote_timeout_s)
    with rasterio.Env(**REMOTE_GDAL_OPTIONS, GDAL_HTTP_TIMEOUT=timeout, GDAL_HTTP_CONNECTTIMEOUT=timeout):
        yield


@dataclass
class _Entry:
    dataset: DatasetReader
    lock: threading.Lock = field(default_factory=threading.Lock)


def dataset_key(href: str) -> tuple[str, int, int]:
    """What identifies one version of a file: ``href`` with the size and mtime of a local file (0, 0 for
    remote or missing files)."""
    if href.startswith("/vsi") or "://" in href:
        return href, 0, 0
    try:
        st = os.stat(href)
    except OSError:
        return href, 0, 0
    return href, st.st_size, st.st_mtime_ns


class DatasetPool:
    """A bounded, thread-safe set of open rasterio datasets.

    ``check`` is called on each newly opened dataset (and may raise, in which case the dataset is closed
    and not kept).

    >>> pool = DatasetPool(size=0)  # opens and closes every dataset
    >>> pool.size, len(pool)
    (0, 0)
    """

    def __init__(self, size: int = DEFAULT_OPEN_DATASETS) -> None:
        self.size = max(0, int(size))
        self._entries: OrderedDict[tuple[str, int, int], _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @contextmanager
    def open(self, href: str, check: Callable[[DatasetReader], None] | None = None) -> Iterator[DatasetReader]:
        """Yield an open dataset for ``href``, for the exclusive use of the calling thread.

        :raises rasterio.errors.RasterioIOError: when the file cannot be opened.
        """
        if self.size == 0:
            with rasterio.open(href) as src:
                if check is not None:
                    check(src)
                yield src
            return
        key = dataset_key(href)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is None:
            entry = self._new(key, href, check)
        with entry.lock:
            yield entry.dataset

    def _new(self, key: tuple[str, int, int], href: str, check: Callable[[DatasetReader], None] | None) -> _Entry:
        src = rasterio.open(href)
        try:
            if check is not None:
                check(src)
        except BaseException:
            src.close()
            raise
        entry = _Entry(src)
        with self._lock:
            current = self._entries.get(key)
            if current is not None:  # another thread opened it meanwhile: keep theirs
                src.close()
                return current
            self._entries[key] = entry
            self._evict()
        return entry

    def _evict(self) -> None:
        """Close the least recently used datasets beyond ``size`` that no thread is reading."""
        excess = len(self._entries) - self.size
        if excess <= 0:
            return
        for key in list(self._entries):
            if excess <= 0:
                break
            entry = self._entries[key]
            if entry.lock.acquire(blocking=False):
                try:
                    entry.dataset.close()
                finally:
                    entry.lock.release()
                del self._entries[key]
                excess -= 1

    def resize(self, size: int) -> None:
        """Keep at most ``size`` datasets open from now on, closing the least recently used beyond it."""
        with self._lock:
            self.size = max(0, int(size))
            self._evict()

    def clear(self) -> None:
        """Close every dataset that no thread is reading (all of them when the pool is idle)."""
        with self._lock:
            size, self.size = self.size, 0
            try:
                self._evict()
            finally:
                self.size = size


class WindowCache:
    """A least-recently-used map of read windows (numpy arrays, made read-only), bounded in bytes.

    >>> import numpy as np
    >>> cache = WindowCache(max_bytes=100)
    >>> cache.put("a", np.zeros(10, dtype=np.float32))
    >>> cache.put("b", np.zeros(20, dtype=np.float32))  # 120 bytes in all: "a" goes
    >>> cache.get("a") is None, cache.get("b").size, cache.nbytes
    (True, 20, 80)
    """

    def __init__(self, max_bytes: int, shared: SharedWindows | None = None) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self.nbytes = 0
        self.shared = shared
        self._entries: OrderedDict[object, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: object) -> Any:
        """The array kept under ``key`` (in memory, else in the shared folder), or None."""
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
                return value
        if self.shared is None:
            return None
        value = self.shared.get(key)
        if value is not None:
            self._keep(key, value)
        return value

    def put(self, key: object, array: Any) -> None:
        """Keep ``array`` (read-only from now on) unless it alone exceeds the budget, and write it to the
        shared folder when there is one."""
        if self.shared is not None:
            self.shared.put(key, array)
        self._keep(key, array)

    def _keep(self, key: object, array: Any) -> None:
        if array.nbytes > self.max_bytes:
            return
        array.flags.writeable = False
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.nbytes -= old.nbytes
            self._entries[key] = array
            self.nbytes += array.nbytes
            while self.nbytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self.nbytes -= dropped.nbytes

    def clear(self) -> None:
        """Forget every window."""
        with self._lock:
            self._entries.clear()
            self.nbytes = 0


_POOLS: dict[str, DatasetPool] = {}
_WINDOWS: WindowCache | None = None
_WINDOWS_DIR: str | None = None
_INIT = threading.Lock()


def _sized_pool(name: str, size: int) -> DatasetPool:
    """The process-wide pool ``name``, made on first use with ``size`` datasets and resized when ``size``
    (a setting) changes."""
    with _INIT:
        pool = _POOLS.get(name)
        if pool is None:
            pool = _POOLS[name] = DatasetPool(size)
        elif pool.size != size:
            pool.resize(size)
        return pool


def default_pool() -> DatasetPool:
    """The process-wide pool (``POLYFIS_OPEN_DATASETS`` datasets; resized when the settings change)."""
    return _sized_pool("local", settings.current().open_datasets)


def remote_pool() -> DatasetPool:
    """The process-wide pool of remote band datasets (``POLYFIS_REMOTE_OPEN_DATASETS`` datasets; resized when the
    settings change)."""
    return _sized_pool("remote", settings.current().remote_open_datasets)


def pool_for(href: str, pool: DatasetPool | None = None) -> DatasetPool:
    """Where ``href`` is opened: the remote pool for a remote band (whatever ``pool`` says: reading a header
    again costs round trips), else ``pool`` or :func:`default_pool`."""
    if is_remote(href):
        return remote_pool()
    return pool or default_pool()


def window_cache() -> WindowCache:
    """The process-wide cache of read windows (``POLYFIS_WINDOW_CACHE_MB`` MiB, over the folder
    ``POLYFIS_WINDOW_CACHE_DIR`` shared with other processes when it is set; a new, empty cache when the
    settings change)."""
    global _WINDOWS, _WINDOWS_DIR
    current = settings.current()
    max_bytes = current.window_cache_mb * 2**20
    folder = current.window_cache_dir
    with _INIT:
        if _WINDOWS is None or _WINDOWS.max_bytes != max_bytes or folder != _WINDOWS_DIR:
            _WINDOWS = WindowCache(max_bytes, shared_windows(folder, current.window_disk_mb * 2**20))
            _WINDOWS_DIR = folder
        return _WINDOWS


def read_threads() -> int:
    """Threads reading the bands of one date (``POLYFIS_READ_THREADS``, default the CPU count)."""
    return settings.current().threads


def io_threads() -> int:
    """Reads of remote bands in flight at once (``POLYFIS_IO_THREADS``)."""
    return settings.current().io_threads


def map_threads(fn: Callable[[T], R], items: Iterable[T], *, io: bool = False) -> list[R]:
    """``[fn(x) for x in items]``, run on the shared reader threads (``io``: on the I/O threads, for remote
    reads); the first exception is raised. ``fn`` must not wait for other work on these threads (a call from
    one of them runs inline).

    >>> map_threads(lambda x: x * x, [1, 2, 3])
    [1, 4, 9]
    """
    items = list(items)
    threads = io_threads() if io else read_threads()
    if threads == 1 or len(items) < 2 or threading.current_thread().name.startswith(("polyfis-read", "polyfis-io")):
        return [fn(x) for x in items]
    return list(_executor("polyfis-io" if io else "polyfis-read", threads).map(fn, items))


_EXECUTORS: dict[str, tuple[int, ThreadPoolExecutor]] = {}


def _executor(name: str, threads: int) -> ThreadPoolExecutor:
    """The shared executor of that name, with ``threads`` threads (a new one when the settings changed it)."""
    with _INIT:
        size, executor = _EXECUTORS.get(name, (0, None))
        if executor is None or size != threads:
            if executor is not None:
                executor.shutdown(wait=False)  # the settings changed the thread count
            executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
            _EXECUTORS[name] = (threads, executor)
        return executor


def _reset_after_fork() -> None:
    """A forked child must not reuse the parent's GDAL handles or reader threads."""
    global _WINDOWS, _INIT
    _WINDOWS, _INIT = None, threading.Lock()
    _POOLS.clear()
    _EXECUTORS.clear()


os.register_at_fork(after_in_child=_reset_after_fork)
