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
Over HTTP (``/vsicurl/``), where an open costs round trips, a pool of a few hundred datasets pays off.

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

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_OPEN_DATASETS = 0


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

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self.nbytes = 0
        self._entries: OrderedDict[object, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: object) -> Any:
        """The array kept under ``key``, or None."""
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: object, array: Any) -> None:
        """Keep ``array`` (read-only from now on) unless it alone exceeds the budget."""
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


_POOL: DatasetPool | None = None
_WINDOWS: WindowCache | None = None
_EXECUTOR: ThreadPoolExecutor | None = None
_EXECUTOR_THREADS = 0
_INIT = threading.Lock()


def default_pool() -> DatasetPool:
    """The process-wide pool (``POLYFIS_OPEN_DATASETS`` datasets; resized when the settings change)."""
    global _POOL
    size = settings.current().open_datasets
    with _INIT:
        if _POOL is None:
            _POOL = DatasetPool(size)
        elif _POOL.size != size:
            _POOL.resize(size)
        return _POOL


def window_cache() -> WindowCache:
    """The process-wide cache of read windows (``POLYFIS_WINDOW_CACHE_MB`` MiB; a new, empty cache when
    the settings change its size)."""
    global _WINDOWS
    max_bytes = settings.current().window_cache_mb * 2**20
    with _INIT:
        if _WINDOWS is None or _WINDOWS.max_bytes != max_bytes:
            _WINDOWS = WindowCache(max_bytes)
        return _WINDOWS


def read_threads() -> int:
    """Threads reading the bands of one date (``POLYFIS_READ_THREADS``, default the CPU count)."""
    return settings.current().threads


def map_threads(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(x) for x in items]``, run on the shared reader threads; the first exception is raised.

    >>> map_threads(lambda x: x * x, [1, 2, 3])
    [1, 4, 9]
    """
    global _EXECUTOR, _EXECUTOR_THREADS
    items = list(items)
    threads = read_threads()
    if threads == 1 or len(items) < 2 or threading.current_thread().name.startswith("polyfis-read"):
        return [fn(x) for x in items]
    with _INIT:
        if _EXECUTOR is None or threads != _EXECUTOR_THREADS:
            if _EXECUTOR is not None:
                _EXECUTOR.shutdown(wait=False)  # the settings changed the thread count
            _EXECUTOR = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="polyfis-read")
            _EXECUTOR_THREADS = threads
        executor = _EXECUTOR
    return list(executor.map(fn, items))


def _reset_after_fork() -> None:
    """A forked child must not reuse the parent's GDAL handles or reader threads."""
    global _POOL, _WINDOWS, _EXECUTOR, _EXECUTOR_THREADS, _INIT
    _POOL, _WINDOWS, _EXECUTOR, _EXECUTOR_THREADS, _INIT = None, None, None, 0, threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)
