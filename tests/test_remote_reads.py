"""Reads of an archive served over HTTP by a range-capable server (bench/remote_server.py, started here on
127.0.0.1 in a process of its own): the same answers as the local folder, the I/O concurrency setting, the
bounded pool of open remote headers, and a missing or stalled band file giving a per-date error."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stats import Archive, TimeSeriesRequest, query_timeseries
from stats.archive.synthetic.recipe import demo_polygons
from stats.datasets import remote_pool, window_cache
from stats.settings import Settings, configure

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from remote_server import ServerProcess, serve_process  # noqa: E402

FIELD = next(f["geometry"] for f in demo_polygons()["features"] if f["properties"]["name"] == "field_small")
#: Six dates of the demo archive.
SPRING = {"from": "2023-04-01", "to": "2023-05-31"}


def _request(**options: Any) -> TimeSeriesRequest:
    return TimeSeriesRequest.from_dict({"geometry": FIELD, "time": SPRING, "bands": ["B03", "B04", "B08"],
                                        "indices": ["NDVI"], **options})


def _series(result: Any) -> list[dict[str, Any]]:
    return [entry.to_dict() for entry in result.series]


@pytest.fixture
def settings() -> Iterator[Any]:
    """Set the process's settings for one test (read from the environment again afterwards); the caches of
    windows and open remote datasets start empty."""

    def apply(**values: Any) -> Settings:
        chosen = Settings.from_env(**values)
        configure(chosen)
        window_cache().clear()
        remote_pool().clear()
        return chosen

    apply()
    yield apply
    configure(None)
    window_cache().clear()
    remote_pool().clear()


@pytest.fixture
def server(demo_root: Path) -> Iterator[ServerProcess]:
    with serve_process(demo_root) as running:
        yield running


def _band_path(archive: Archive, root: Path, index: int, band: str) -> str:
    """The served path of one band of the ``index``-th date of the spring range."""
    found = [a for a in archive.acquisitions if "2023-04-01" <= str(a.date) <= "2023-05-31"]
    return "/" + Path(found[index].assets[band]).relative_to(root).as_posix()


def test_a_remote_archive_answers_value_for_value_as_the_local_folder(demo_root: Path, server: ServerProcess,
                                                                      settings: Any) -> None:
    local_archive = Archive.open(demo_root)
    local = query_timeseries(_request(), local_archive)
    remote_archive = Archive.open(f"{server.url}/collection.json")
    assert all(href.startswith(server.url) for acq in remote_archive.acquisitions for href in acq.assets.values())
    before = server.snapshot()
    remote = query_timeseries(_request(), remote_archive)
    traffic = server.snapshot().since(before)
    assert len(local.series) == 6 and all(entry.error is None for entry in local.series)
    assert _series(remote) == _series(local)
    # 6 dates x 11 bands read: each band file's header and data, no directory listing or sidecar probe
    assert set(traffic.by_path) == {_band_path(local_archive, demo_root, i, b)
                                    for i in range(6) for b in ("B01", "B02", "B03", "B04", "B05", "B08", "B8A",
                                                                "B09", "B10", "B11", "B12")}
    assert not any(path.endswith((".aux.xml", ".msk", "/")) for path in traffic.by_path)


def test_reads_in_flight_never_exceed_the_io_threads_setting(demo_root: Path, settings: Any) -> None:
    settings(io_threads=3)
    with serve_process(demo_root, delay_s=0.1) as slow:
        archive = Archive.open(f"{slow.url}/collection.json")
        slow.snapshot(reset_peak=True)
        result = query_timeseries(_request(), archive)
        traffic = slow.snapshot()
    assert all(entry.error is None for entry in result.series)
    assert 1 < traffic.peak_in_flight <= 3


def test_a_repeated_remote_query_is_computed_one_date_after_the_other_from_the_window_cache(
        demo_root: Path, server: ServerProcess, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first query reads its dates several at once (they wait for the network); once the first date's windows
    are cached, the repeat computes the dates in this thread, with the same answer and no request."""
    from stats import pipeline
    from stats.archive.catalog import group_by_date
    from stats.raster import date_is_cached

    archive = Archive.open(f"{server.url}/collection.json")
    request = _request()
    first = group_by_date(archive.search(request.area.wgs84, request.time.start, request.time.end))[0]
    read_bands = request.options.read_bands

    def probe() -> bool:
        return date_is_cached(first, request.area.geometry, request.area.crs, read_bands)

    assert not probe()
    executors: list[int] = []
    real = pipeline.ThreadPoolExecutor

    def counted(*args: Any, **kwargs: Any) -> Any:
        executors.append(kwargs.get("max_workers", 0))
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "ThreadPoolExecutor", counted)
    cold = query_timeseries(request, archive)
    assert executors and executors[0] > 1 and probe()
    before = server.snapshot()
    warm = query_timeseries(request, archive)
    assert len(executors) == 1 and server.snapshot().since(before).requests == 0
    assert _series(warm) == _series(cold)
    window_cache().clear()  # a window no longer cached: the dates are read several at once again
    assert not probe()


def test_open_remote_headers_are_kept_between_queries_within_the_pool_size(demo_root: Path, server: ServerProcess,
                                                                           settings: Any) -> None:
    settings(window_cache_mb=0, remote_open_datasets=1000)
    archive = Archive.open(f"{server.url}/collection.json")
    query_timeseries(_request(), archive)
    assert len(remote_pool()) == 6 * 11
    before = server.snapshot()
    query_timeseries(_request(), archive)
    again = server.snapshot().since(before)
    assert not any(kind.startswith("HEAD") for _, kind in again.ranges)  # no header read again

    settings(window_cache_mb=0, remote_open_datasets=5)
    query_timeseries(_request(), archive)
    assert len(remote_pool()) == 5


@pytest.mark.parametrize("fault", ["missing", "stall"])
def test_a_missing_or_stalled_band_file_gives_that_date_an_error_and_the_rest_of_the_answer(
        demo_root: Path, settings: Any, fault: str) -> None:
    settings(remote_timeout_s=2)
    local_archive = Archive.open(demo_root)
    broken = _band_path(local_archive, demo_root, 2, "B04")
    local = query_timeseries(_request(), local_archive)
    faults = {"missing": (broken,)} if fault == "missing" else {"stall": (broken,), "stall_s": 10.0}
    with serve_process(demo_root, **faults) as faulty:  # type: ignore[arg-type]
        remote = query_timeseries(_request(), Archive.open(f"{faulty.url}/collection.json"))
    assert len(remote.series) == 6
    failed = remote.series[2]
    assert failed.error is not None and "band B04 (asset 'B04') cannot be opened" in failed.error
    assert f"{faulty.url}/items/" in failed.error  # it names the file
    assert failed.date == local.series[2].date
    others = [entry.to_dict() for i, entry in enumerate(remote.series) if i != 2]
    assert others == [entry.to_dict() for i, entry in enumerate(local.series) if i != 2]
