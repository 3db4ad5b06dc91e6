"""The open-dataset pool and the window cache: bounded, least recently used first, never stale."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from stats.archive.catalog import write_band_cog
from stats.datasets import DatasetPool, WindowCache, map_threads

TRANSFORM = Affine(10, 0, 500000, 0, -10, 5000120)


def write(path: Path, value: int) -> Path:
    write_band_cog(path, np.full((8, 8), value, dtype=np.uint16), "EPSG:32633", TRANSFORM)
    return path


def test_pool_keeps_datasets_open_and_closes_the_least_recently_used(tmp_path: Path) -> None:
    a, b, c = (write(tmp_path / f"{name}.tif", i + 1) for i, name in enumerate("abc"))
    pool = DatasetPool(size=2)
    with pool.open(str(a)) as src_a:
        first = src_a
    with pool.open(str(a)) as again:
        assert again is first and not again.closed
    with pool.open(str(b)):
        pass
    with pool.open(str(a)):  # a is now the most recently used
        pass
    with pool.open(str(c)):
        pass
    assert len(pool) == 2 and not first.closed  # b went, not a
    pool.clear()
    assert len(pool) == 0 and first.closed


def test_pool_opens_a_rewritten_file_afresh_and_does_not_keep_failed_checks(tmp_path: Path) -> None:
    path = write(tmp_path / "band.tif", 5)
    pool = DatasetPool(size=4)
    with pool.open(str(path)) as src:
        assert src.read(1)[0, 0] == 5
    write(path, 9)
    stamp = path.stat().st_mtime + 5
    os.utime(path, (stamp, stamp))
    with pool.open(str(path)) as src:
        assert src.read(1)[0, 0] == 9

    def reject(src: rasterio.io.DatasetReader) -> None:
        raise ValueError("wrong CRS")

    other = write(tmp_path / "other.tif", 1)
    try:
        with pool.open(str(other), reject):
            raise AssertionError("the check should have raised")
    except ValueError:
        pass
    assert len(pool) == 2  # the two versions of band.tif (the old one goes when evicted), not other.tif


def test_pool_of_size_zero_closes_after_use(tmp_path: Path) -> None:
    path = write(tmp_path / "band.tif", 3)
    pool = DatasetPool(size=0)
    with pool.open(str(path)) as src:
        kept = src
    assert kept.closed and len(pool) == 0


def test_window_cache_is_bounded_in_bytes_and_read_only() -> None:
    cache = WindowCache(max_bytes=1000)
    big = np.zeros(2000, dtype=np.uint8)
    cache.put("big", big)
    assert cache.get("big") is None  # larger than the budget: not kept
    for i in range(5):
        cache.put(i, np.full(100, i, dtype=np.float32))  # 400 bytes each
    assert cache.nbytes == 800 and cache.get(0) is None and cache.get(4) is not None
    kept = cache.get(4)
    assert not kept.flags.writeable


def test_map_threads_keeps_order_and_raises_the_first_error() -> None:
    assert map_threads(lambda x: x * 2, range(10)) == [2 * x for x in range(10)]

    def fail(x: int) -> int:
        if x == 3:
            raise KeyError(x)
        return x

    try:
        map_threads(fail, range(6))
    except KeyError as exc:
        assert exc.args == (3,)
    else:
        raise AssertionError("expected the KeyError of item 3")
