"""The window folder shared by the workers of a server: a window one process read serves the others, versions
of a file never mix, and the folder stays within its bound."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from conftest import CRS_UTM, band_array, utm_box

from stats import Archive, TimeSeriesRequest, query_timeseries
from stats.datasets import WindowCache, dataset_key, window_cache
from stats.settings import Settings, configure
from stats.shared_windows import SharedWindows

BODY = {"geometry": {"type": "Polygon", "coordinates": [utm_box(2, 2, 9, 8)]}, "crs": CRS_UTM,
        "time": {"from": "2023-01-01", "to": "2023-12-31"}, "bands": ["B04", "B08"], "indices": ["NDVI"]}


@pytest.fixture(autouse=True)
def _settings_restored() -> Any:
    yield
    configure(None)


def run(archive: Path) -> dict[str, Any]:
    return query_timeseries(TimeSeriesRequest.from_dict(BODY), Archive.open(archive)).to_dict()


def test_a_window_read_by_one_process_serves_another_without_opening_the_band(
        simple_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "windows"
    configure(Settings.from_env({"POLYFIS_WINDOW_CACHE_DIR": str(folder), "POLYFIS_WINDOW_CACHE_MB": "64"}))
    first = run(simple_archive)
    assert any(folder.glob("*.npy"))
    # another process: its own empty memory, the same folder, and no band file it can open
    configure(Settings.from_env({"POLYFIS_WINDOW_CACHE_DIR": str(folder), "POLYFIS_WINDOW_CACHE_MB": "65"}))
    assert window_cache().nbytes == 0

    def no_open(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a band was opened: {args[:1]}")

    monkeypatch.setattr(rasterio, "open", no_open)
    second = run(simple_archive)
    assert second == first
    assert [d["bands"]["B04"]["mean"] for d in second["series"]] == [d["bands"]["B04"]["mean"]
                                                                   for d in first["series"]]


def test_without_a_folder_nothing_is_shared(simple_archive: Path, tmp_path: Path) -> None:
    configure(Settings.from_env({"POLYFIS_WINDOW_CACHE_MB": "64"}))
    run(simple_archive)
    assert window_cache().shared is None


def test_a_rewritten_band_file_is_read_again_not_taken_from_the_folder(tmp_path: Path) -> None:
    band = tmp_path / "B04.tif"
    profile = {"driver": "GTiff", "width": 12, "height": 12, "count": 1, "dtype": "uint16", "crs": CRS_UTM,
               "transform": rasterio.transform.from_origin(500000, 5000120, 10, 10)}
    with rasterio.open(band, "w", **profile) as dst:
        dst.write(band_array("B04"), 1)
    store = SharedWindows(tmp_path / "windows", max_bytes=2**20)
    old_key = (dataset_key(str(band)), "grid")
    store.put(old_key, np.ones(3, dtype=np.float32))
    with rasterio.open(band, "w", **profile) as dst:
        dst.write(band_array("B04")[::-1].copy(), 1)
    os.utime(band, ns=(1, 1))  # a new version: another mtime
    assert (dataset_key(str(band)), "grid") != old_key
    assert store.get((dataset_key(str(band)), "grid")) is None
    assert store.get(old_key).tolist() == [1.0, 1.0, 1.0]


def test_the_folder_stays_within_its_bound(tmp_path: Path) -> None:
    store = SharedWindows(tmp_path, max_bytes=100_000)
    for i in range(300):
        store.put(("window", i), np.full(1000, i, dtype=np.float32))  # 4 kB each, 1.2 MB in all
    total = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert total <= 100_000 + 64 * 4_200  # trimmed every 64 writes
    assert store.get(("window", 299)).tolist() == [299.0] * 1000  # the newest are kept
    assert store.get(("window", 0)) is None


def test_a_file_cut_short_is_a_miss_not_an_error(tmp_path: Path) -> None:
    store = SharedWindows(tmp_path, max_bytes=2**20)
    store.put("key", np.arange(100, dtype=np.float32))
    path = store.path("key")
    path.write_bytes(path.read_bytes()[:60])
    assert store.get("key") is None
    cache = WindowCache(2**20, store)
    assert cache.get("key") is None
