"""Every request has a memory budget, checked before the work, and a breach is a 400 naming the limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import utm_box
from test_statistical import NDVI_SCRIPT, body

from service import create_app
from stats import Archive, TimeSeriesRequest, query_timeseries
from stats.archive.synthetic import demo_polygons
from stats.errors import InvalidRequestError
from stats.raster import BAND_PIXEL_BYTES
from stats.request import Limits

LAKE = next(f["geometry"] for f in demo_polygons()["features"] if f["properties"]["name"] == "lake")


def test_a_time_series_over_the_memory_budget_is_refused_before_reading(simple_archive: Path) -> None:
    """4 x 4 pixels x 13 bands x 48 bytes = 9,984 bytes: a budget of 9,000 refuses it, 10,000 answers it."""
    request = TimeSeriesRequest.from_dict({"geometry": {"type": "Polygon", "coordinates": [utm_box(2, 2, 6, 6)]},
                                           "crs": "EPSG:32633", "time": {"from": "2023-01-01", "to": "2023-12-31"}})
    assert 4 * 4 * 13 * BAND_PIXEL_BYTES == 9984
    with pytest.raises(InvalidRequestError, match=r"request memory limit of 0 MiB \(POLYFIS_MAX_REQUEST_MB\)"):
        query_timeseries(request, Archive.open(simple_archive), limits=Limits(max_bytes=9000))
    answer = query_timeseries(request, Archive.open(simple_archive), limits=Limits(max_bytes=10000))
    assert answer.series and all(d.error is None for d in answer.series)


def test_the_http_routes_name_the_limit(demo_root: Path) -> None:
    client = create_app({"archive": str(demo_root), "max_request_mb": 1}).test_client()
    response = client.post("/api/v1/timeseries", json={"geometry": LAKE, "time": {"from": "2023-06-01",
                                                                                   "to": "2023-06-30"}})
    assert response.status_code == 400
    message = response.get_json()["error"]["message"]
    assert "13 bands" in message and "limit of 1 MiB (POLYFIS_MAX_REQUEST_MB)" in message
    small = client.post("/api/v1/timeseries", json={"geometry": LAKE, "bands": ["B04"],
                                                    "time": {"from": "2023-06-01", "to": "2023-06-30"}})
    assert small.status_code == 400  # the 10 model bands are read too: still over 1 MiB for the lake


def test_an_evalscript_over_the_memory_budget_is_refused_before_it_runs(simple_archive: Path) -> None:
    """The box is 4 x 4 = 16 pixels with 3 inputs and 2 outputs: 16 x 5 x 80 = 6,400 bytes for the script."""
    from stats.sentinelhub.statistical import run_statistics

    limits = Limits(max_bytes=6000)
    with pytest.raises(InvalidRequestError, match="running the evalscript on 16 pixels x 5 inputs and outputs"):
        run_statistics(body(NDVI_SCRIPT), Archive.open(simple_archive), limits=limits)
    answer = run_statistics(body(NDVI_SCRIPT), Archive.open(simple_archive), limits=Limits(max_bytes=7000))
    assert answer["status"] == "OK"


def test_an_evalscript_too_large_for_its_engine_is_refused_before_any_band_is_read(
        simple_archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the request memory budget raised, a 1900 x 1900 pixel grid (the 38 m box at 2 cm) with 3 inputs and
    2 outputs needs at least 3,610,000 x 5 x 32 bytes = 551 MiB inside the engine, over its 512 MiB: a 400
    naming the engine's limit, before any band is read (an engine run out of memory mid-call could take the
    worker with it)."""
    from stats.sentinelhub import statistical

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("bands were read before the engine's limit was checked")

    monkeypatch.setattr(statistical, "read_grid", no_reading)
    request = body(NDVI_SCRIPT, resx=0.02, resy=0.02)
    with pytest.raises(InvalidRequestError, match=r"3,610,000 pixels x 5 input and output values need at least "
                                                  r"551 MiB inside the evalscript engine, over its limit of 512 MiB"):
        statistical.run_statistics(request, Archive.open(simple_archive), limits=Limits(max_bytes=2**34))
