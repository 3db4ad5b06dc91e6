"""Shared fixtures: tiny archives whose answers can be worked out by hand, and the real-data folder.

The hand-made tile ``T1`` is 12 x 12 pixels of 10 m in EPSG:32633 with its top-left corner at
(500000, 5000120). Its bands hold known DN:

* 10 m bands: ``base + 12 * row + col + 1`` (row, col in 0..11);
* 20 m bands: ``base + 6 * row20 + col20 + 1`` on the 6 x 6 grid;
* 60 m bands: ``base + 2 * row60 + col60 + 1`` on the 2 x 2 grid.

``base`` differs per band (:data:`BASE_DN`) and gives a plausible clear-sky vegetation spectrum.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from stats.archive.catalog import ArchiveWriter
from stats.bands import NATIVE_RESOLUTION, S2_BANDS

X0, Y0 = 500000.0, 5000120.0
CRS_UTM = "EPSG:32633"
SIZE_10M = 12

#: Base DN per band: a clear vegetated spectrum (B04 red low, B08 NIR high).
BASE_DN = {
    "B01": 1200, "B02": 900, "B03": 800, "B04": 500, "B05": 900, "B06": 1800, "B07": 2100,
    "B08": 2500, "B8A": 2600, "B09": 800, "B10": 20, "B11": 1600, "B12": 900,
}

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
EOLEARN = SHARED_DATA / "eolearn_testpatch"
BETSIBOKA = SHARED_DATA / "s2cloudless_betsiboka"


def band_array(band: str, base: int | None = None) -> np.ndarray:
    """The known DN array of ``band`` at its native resolution (see module docstring)."""
    n = SIZE_10M * 10 // NATIVE_RESOLUTION[band]
    base = BASE_DN[band] if base is None else base
    return (base + np.arange(n * n).reshape(n, n) + 1).astype(np.uint16)


def band_transform(band: str, x0: float = X0, y0: float = Y0) -> Affine:
    """Transform of ``band`` at its native resolution."""
    res = NATIVE_RESOLUTION[band]
    return Affine(res, 0, x0, 0, -res, y0)


def at_10m(band: str, array: np.ndarray) -> np.ndarray:
    """Upsample a native-resolution array to the 10 m grid by repetition (independent of rasterio)."""
    k = NATIVE_RESOLUTION[band] // 10
    return np.repeat(np.repeat(array, k, axis=0), k, axis=1)


def utm_box(col0: int, row0: int, col1: int, row1: int) -> list[list[float]]:
    """A closed ring around 10 m pixels [col0, col1) x [row0, row1) of tile T1, shrunk by 1 m."""
    x_min, x_max = X0 + col0 * 10 + 1, X0 + col1 * 10 - 1
    y_max, y_min = Y0 - row0 * 10 - 1, Y0 - row1 * 10 + 1
    return [[x_min, y_min], [x_max, y_min], [x_max, y_max], [x_min, y_max], [x_min, y_min]]


ArchiveFactory = Callable[..., Path]


@pytest.fixture(name="make_archive")
def fixture_make_archive(tmp_path: Path) -> ArchiveFactory:
    """Build an archive of hand-made tiles.

    Call with a list of dicts: ``id``, ``when`` (datetime), optional ``bands`` (band -> (array, transform)),
    ``baseline``, ``crs``, ``cloud_cover``; missing bands take :func:`band_array`.
    """

    def make(tiles: list[dict], name: str = "archive") -> Path:
        root = tmp_path / name
        with ArchiveWriter(root) as writer:
            for tile in tiles:
                bands = {b: (band_array(b), band_transform(b)) for b in S2_BANDS}
                bands.update(tile.get("bands", {}))
                writer.add(tile["id"], tile["when"], tile.get("crs", CRS_UTM), bands,
                           processing_baseline=tile.get("baseline", "02.09"),
                           cloud_cover=tile.get("cloud_cover", 0.0))
        return root

    return make


@pytest.fixture(name="simple_archive")
def fixture_simple_archive(make_archive: ArchiveFactory) -> Path:
    """Three dates of tile T1: baseline 02.09, 04.00 (+1000 DN), and one with the left half no data."""
    shifted = {b: ((band_array(b).astype(np.int32) + 1000).astype(np.uint16), band_transform(b)) for b in S2_BANDS}
    half = {}
    for b in S2_BANDS:
        arr = band_array(b)
        arr[:, : arr.shape[1] // 2] = 0
        half[b] = (arr, band_transform(b))
    return make_archive([
        {"id": "T1_20230105", "when": dt.datetime(2023, 1, 5, 10, 0, 31, tzinfo=dt.UTC)},
        {"id": "T1_20230704", "when": dt.datetime(2023, 7, 4, 10, 0, 31, tzinfo=dt.UTC),
         "baseline": "04.00", "bands": shifted},
        {"id": "T1_20230810", "when": dt.datetime(2023, 8, 10, 10, 0, 31, tzinfo=dt.UTC), "bands": half},
    ])


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo archive, built once per test session into a temporary folder."""
    from stats.archive.synthetic import build_demo_archive

    return build_demo_archive(tmp_path_factory.mktemp("demo") / "archive")


@pytest.fixture(name="eolearn_dir")
def fixture_eolearn_dir() -> Path:
    """The real eo-learn test patch in ../shared/data (skips when absent)."""
    if not (EOLEARN / "l1c_5dates.npz").is_file():
        pytest.skip(f"real data not found at {EOLEARN} (the shared data folder beside the project)")
    return EOLEARN


@pytest.fixture(name="betsiboka_dir")
def fixture_betsiboka_dir() -> Path:
    """The real Betsiboka scene in ../shared/data (skips when absent)."""
    if not (BETSIBOKA / "betsiboka_l1c.npz").is_file():
        pytest.skip(f"real data not found at {BETSIBOKA} (the shared data folder beside the project)")
    return BETSIBOKA


#: A demo archive folder the user chose for the tests, else each session builds its own.
_DEMO_DIR = os.environ.get("POLYFIS_DEMO_DIR")


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep tests away from the user's POLYFIS_* settings (and their batch jobs folder), and from their demo
    archive cache (which `polyfis clouds` may have given stored cloud layers) unless POLYFIS_DEMO_DIR names one."""
    for key in list(os.environ):
        if key.startswith("POLYFIS_") and key not in ("POLYFIS_DEMO_DIR",):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("POLYFIS_DEMO_DIR", _DEMO_DIR or str(tmp_path_factory.getbasetemp() / "demo-archive"))
    monkeypatch.setenv("POLYFIS_JOBS_DIR", str(tmp_path_factory.getbasetemp() / f"jobs-{os.urandom(8).hex()}"))
