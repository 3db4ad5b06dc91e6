"""Cell probabilities on disk, shared by every process of a server (``POLYFIS_CLOUD_CACHE_DIR``).

Where an archive has no stored CLP/CLM layers, cells are scored on the fly; this store keeps their
probabilities in one SQLite database (``cells.sqlite`` in the folder, WAL journal), so that the workers of a
server and its restarts score each cell once. A cell's key is its group (tile CRS, scenes, cell size) and the
corner of the cell in the tile CRS (see :func:`stats.clouds.cells.cell_keys`); a request's cells are looked up
with one range query per group.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError

DATABASE = "cells.sqlite"
_SCHEMA = ("CREATE TABLE IF NOT EXISTS cells (grp TEXT NOT NULL, x REAL NOT NULL, y REAL NOT NULL, p REAL NOT NULL, "
           "PRIMARY KEY (grp, x, y)) WITHOUT ROWID")


class DiskCells:
    """Cell probabilities in ``folder/cells.sqlite``, safe to share between processes and threads."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.path = Path(folder) / DATABASE
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"POLYFIS_CLOUD_CACHE_DIR: cannot use {str(folder)!r} for the cloud cell cache: "
                              f"{exc}") from exc
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._pid = -1

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _connection(self) -> sqlite3.Connection:
        if self._db is None or self._pid != os.getpid():  # a forked worker opens its own
            self._db, self._pid = self._connect(), os.getpid()
        return self._db

    def lookup(self, keys: Sequence[Hashable], missing: np.ndarray, values: np.ndarray) -> None:
        """Fill ``values`` (float32) at the ``missing`` positions whose key is stored, and clear them in
        ``missing``."""
        groups: dict[str, list[int]] = {}
        for i in np.flatnonzero(missing).tolist():
            groups.setdefault(_group(keys[i]), []).append(i)
        with self._lock:
            db = self._connection()
            for group, positions in groups.items():
                xs = [keys[i][-2] for i in positions]  # type: ignore[index]
                ys = [keys[i][-1] for i in positions]  # type: ignore[index]
                rows = db.execute("SELECT x, y, p FROM cells WHERE grp = ? AND x BETWEEN ? AND ? AND y BETWEEN ? AND ?",
                                  (group, min(xs), max(xs), min(ys), max(ys))).fetchall()
                found = {(x, y): p for x, y, p in rows}
                for i, x, y in zip(positions, xs, ys):
                    p = found.get((x, y))
                    if p is not None:
                        values[i] = p
                        missing[i] = False

    def store(self, keys: Sequence[Hashable], values: np.ndarray) -> None:
        """Remember ``values`` for ``keys`` (a cell already stored keeps its value)."""
        rows = [(_group(k), k[-2], k[-1], float(v)) for k, v in zip(keys, values.tolist())]  # type: ignore[index]
        if not rows:
            return
        with self._lock:
            db = self._connection()
            db.execute("BEGIN")
            db.executemany("INSERT OR IGNORE INTO cells VALUES (?, ?, ?, ?)", rows)
            db.execute("COMMIT")


def _group(key: Hashable) -> str:
    """The group of a cell key: everything but the cell's corner."""
    return repr(key[:-2])  # type: ignore[index]
