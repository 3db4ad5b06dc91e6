"""Read windows shared by the processes of one server through a folder (``POLYFIS_WINDOW_CACHE_DIR``).

Each worker of ``polyfis serve`` keeps the windows it has read in its own memory (:class:`stats.datasets.
WindowCache`); a window one worker read is otherwise read and decoded again by the next worker that needs it.
With a shared folder, a window is also written there once, as a ``.npy`` file named by a digest of its key (the
file version, the grid and the sampling), and a worker that misses in memory loads it from there before it
opens the band. Files are written whole under a temporary name and renamed, so a reader sees a complete file
or none. The folder is bounded in bytes: past ``max_bytes`` the least recently written files are removed.

>>> import tempfile, numpy as np
>>> store = SharedWindows(tempfile.mkdtemp(), max_bytes=2**20)
>>> store.put(("band.tif", 1, 2), np.arange(4, dtype=np.float32))
>>> store.get(("band.tif", 1, 2)).tolist(), store.get(("other.tif", 1, 2))
([0.0, 1.0, 2.0, 3.0], None)
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: Writes between two checks of the folder's size.
CHECK_EVERY = 64
#: What is left after a trim, as a share of the bound.
TRIM_TO = 0.8


class SharedWindows:
    """A folder of read windows, bounded in bytes, that several processes read and write."""

    def __init__(self, folder: str | os.PathLike[str], max_bytes: int) -> None:
        self.folder = Path(folder)
        self.max_bytes = max(0, int(max_bytes))
        self._writes = 0
        self._lock = threading.Lock()
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, key: object) -> Path:
        """Where the window of ``key`` is kept: a digest of the key's text (the same in every process)."""
        return self.folder / (hashlib.blake2b(repr(key).encode(), digest_size=20).hexdigest() + ".npy")

    def get(self, key: object) -> np.ndarray | None:
        """The window kept under ``key``, or None (also when its file went away or cannot be read)."""
        try:
            return np.load(self.path(key), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None

    def put(self, key: object, array: np.ndarray) -> None:
        """Write ``array`` under ``key`` unless it alone exceeds the bound; a failed write only logs."""
        if array.nbytes > self.max_bytes:
            return
        target = self.path(key)
        try:
            with tempfile.NamedTemporaryFile(dir=self.folder, suffix=".part", delete=False) as out:
                np.save(out, np.ascontiguousarray(array), allow_pickle=False)
            os.replace(out.name, target)
        except OSError as exc:
            log.warning("shared windows: cannot write %s: %s", target.name, exc)
            return
        with self._lock:
            self._writes += 1
            check = self._writes % CHECK_EVERY == 0
        if check:
            self.trim()

    def trim(self) -> None:
        """Remove the least recently written files while the folder holds more than the bound."""
        entries: list[tuple[int, int, str]] = []
        total = 0
        with os.scandir(self.folder) as scan:
            for entry in scan:
                try:
                    st = entry.stat()
                except OSError:
                    continue
                entries.append((st.st_mtime_ns, st.st_size, entry.path))
                total += st.st_size
        if total <= self.max_bytes:
            return
        for _, size, path in sorted(entries):
            if total <= self.max_bytes * TRIM_TO:
                break
            try:
                os.unlink(path)
            except OSError:
                continue
            total -= size


def shared_windows(folder: str | None, max_bytes: int) -> SharedWindows | None:
    """A :class:`SharedWindows` over ``folder``, or None when no folder is set or it cannot be made."""
    if not folder or max_bytes <= 0:
        return None
    try:
        return SharedWindows(folder, max_bytes)
    except OSError as exc:
        log.warning("shared windows: folder %s cannot be used: %s", folder, exc)
        return None
