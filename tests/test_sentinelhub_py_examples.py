"""sentinelhub-py's SentinelHubStatistical running sentinelhub-py's own two example evalscripts, unchanged,
against a live `polyfis serve` on the demo archive (only the base URL, the credentials and the collection's
``define_from`` differ from the examples); the answers are checked against numpy over rasterio reads of the
archive and against the native /api/v1/timeseries of the same server."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from sentinelhub_py_evalscripts import NDVI_EVALSCRIPT, STATAPI_EVALSCRIPT
from test_evalscript_mosaicking import archive_reads, polygon_utm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from common import polyfis_server  # noqa: E402

TIME = ("2023-06-01", "2023-07-31")
CLIENT = ("client-id", "client-secret")


@pytest.fixture(name="base", scope="module")
def fixture_base(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {"POLYFIS_ARCHIVE": str(demo_root), "POLYFIS_JOBS_DIR": str(tmp_path_factory.mktemp("jobs")),
           "POLYFIS_AUTH_CLIENTS": ":".join(CLIENT)}
    with polyfis_server(workers=1, env=env, timeout_s=120) as server:
        yield server.base


@pytest.fixture(name="collection", scope="module")
def fixture_collection(base: str):  # type: ignore[no-untyped-def]
    """Sentinel-2 L1C at polyfis, as the README says (the client allows one definition per service URL)."""
    from sentinelhub import DataCollection

    return DataCollection.SENTINEL2_L1C.define_from("POLYFIS_EXAMPLES_L1C", service_url=base)


def statistical(base: str, collection, evalscript: str, calculations: dict,  # type: ignore[no-untyped-def]
                monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The notebook's request: P1D intervals at 10 m over the polygon, through the real client."""
    from sentinelhub import CRS, Geometry, SentinelHubStatistical, SHConfig
    from shapely.geometry import shape

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # plain http on 127.0.0.1
    config = SHConfig(sh_base_url=base, sh_token_url=f"{base}/oauth/token", sh_client_id=CLIENT[0],
                      sh_client_secret=CLIENT[1])
    aggregation = SentinelHubStatistical.aggregation(
        evalscript=evalscript, time_interval=TIME, aggregation_interval="P1D", resolution=(10, 10))
    request = SentinelHubStatistical(
        aggregation=aggregation, input_data=[SentinelHubStatistical.input_data(collection)],
        geometry=Geometry(shape(polygon_utm()), crs=CRS.UTM_33N), calculations=calculations, config=config)
    (answer,) = request.get_data()
    assert answer["status"] == "OK", answer
    return answer["data"]


def native(base: str, **options) -> dict[str, dict]:
    """/api/v1/timeseries of the same polygon and dates, per date."""
    token = requests.post(f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=CLIENT,
                          timeout=30).json()["access_token"]
    body = {"geometry": polygon_utm(), "crs": "EPSG:32633", "time": {"from": TIME[0], "to": TIME[1]},
            "statistics": ["mean", "min", "max"], **options}
    answer = requests.post(f"{base}/api/v1/timeseries", json=body, headers={"Authorization": f"Bearer {token}"},
                           timeout=300).json()
    return {entry["date"]: entry for entry in answer["series"]}


def test_the_ndvi_notebook_evalscript(base: str, collection, demo_root: Path,  # type: ignore[no-untyped-def]
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """ndvi_evalscript (index(B08, B04)) with the notebook's 20-bin histogram: per day, the mean equals the
    native NDVI mean and the histogram equals numpy's over the rasterio reads."""
    calculations = {"ndvi": {"histograms": {"default": {"nBins": 20, "lowEdge": -1.0, "highEdge": 1.0}}}}
    data = statistical(base, collection, NDVI_EVALSCRIPT, calculations, monkeypatch)
    theirs = native(base, indices=["NDVI"])
    reads = {when.date().isoformat(): r for when, r in archive_reads(
        demo_root, dt.datetime(2023, 6, 1, tzinfo=dt.UTC), dt.datetime(2023, 8, 1, tzinfo=dt.UTC))}
    assert [d["interval"]["from"][:10] for d in data] == sorted(theirs) == sorted(reads)
    assert len(data) >= 4
    for entry in data:
        day = entry["interval"]["from"][:10]
        band = entry["outputs"]["ndvi"]["bands"]["B0"]
        assert band["stats"]["mean"] == pytest.approx(theirs[day]["indices"]["NDVI"]["mean"], abs=1e-6)
        r = reads[day]
        ndvi = ((r["B08"] - r["B04"]) / (r["B08"] + r["B04"]))[r["valid"]].astype(np.float32).astype(np.float64)
        counts, _ = np.histogram(ndvi, bins=np.linspace(-1.0, 1.0, 21))
        assert [b["count"] for b in band["histogram"]["bins"]] == counts.tolist()
        assert band["stats"]["sampleCount"] - band["stats"]["noDataCount"] == int(r["valid"].sum())


def test_the_statapi_example_evalscript(base: str, collection,  # type: ignore[no-untyped-def]
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """statapi_evalscript.js: DN bands, CLM, CLP and three indices as UINT16, cloudy pixels (CLM) left out,
    percentiles 5/50/95. Per day, the bands' and NDVI's statistics equal the native route's over its clear
    pixels (per-pixel cloud mask at the same 160 m defaults)."""
    calculations = {"default": {"statistics": {"default": {"percentiles": {"k": [5, 50, 95]}}}}}
    data = statistical(base, collection, STATAPI_EVALSCRIPT, calculations, monkeypatch)
    theirs = native(base, bands=["B02", "B04", "B08", "B11"], indices=["NDVI"], cloud={"mode": "pixel", "mask": True})
    assert [d["interval"]["from"][:10] for d in data] == sorted(theirs)
    compared = 0
    for entry in data:
        day = entry["interval"]["from"][:10]
        outputs = entry["outputs"]
        assert set(outputs) == {"bands", "masks", "indices"}
        clear = theirs[day]["cloud"]["clear_pixels"]
        red = outputs["bands"]["bands"]["B04"]["stats"]
        assert red["sampleCount"] - red["noDataCount"] == clear
        if clear == 0:
            assert red["mean"] == "NaN"
            continue
        compared += 1
        assert outputs["masks"]["bands"]["CLM"]["stats"]["max"] == 0  # only clear pixels are counted
        for name in ("B02", "B04", "B08", "B11"):
            stats = outputs["bands"]["bands"][name]["stats"]
            for key in ("mean", "min", "max"):
                assert stats[key] == pytest.approx(theirs[day]["bands"][name][key] * 10000, rel=1e-9), (day, name)
            p = stats["percentiles"]
            assert stats["min"] <= p["5.0"] <= p["50.0"] <= p["95.0"] <= stats["max"]
        ndvi = outputs["indices"]["bands"]["NDVI"]["stats"]
        assert (ndvi["mean"] - 5000) / 5000 == pytest.approx(theirs[day]["indices"]["NDVI"]["mean"], abs=1e-4)
        clp = outputs["indices"]["bands"]["CLP"]["stats"]
        assert 5000 <= clp["min"] <= clp["max"] <= 10000  # CLP / 255 in [0, 1], encoded as 5000 * (1 + x)
    assert compared >= 2


def test_an_orbit_script_through_the_client(base: str, collection, demo_root: Path,  # type: ignore[no-untyped-def]
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The documentation's monthly maximum NDVI (mosaicking ORBIT) through the real client, with P1M intervals,
    answers what the in-process route answers (which test_evalscript_mosaicking checks against numpy)."""
    from sentinelhub import CRS, Geometry, SentinelHubStatistical, SHConfig
    from shapely.geometry import shape
    from test_evalscript_mosaicking import MONTHLY_MAX_NDVI, statistical_body

    from service import create_app

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    config = SHConfig(sh_base_url=base, sh_token_url=f"{base}/oauth/token", sh_client_id=CLIENT[0],
                      sh_client_secret=CLIENT[1])
    request = SentinelHubStatistical(
        aggregation=SentinelHubStatistical.aggregation(
            evalscript=MONTHLY_MAX_NDVI, time_interval=("2023-06-01", "2023-08-01"), aggregation_interval="P1M",
            resolution=(10, 10)),
        input_data=[SentinelHubStatistical.input_data(collection)],
        geometry=Geometry(shape(polygon_utm()), crs=CRS.UTM_33N), config=config)
    (answer,) = request.get_data()
    local = create_app({"archive": str(demo_root)}).test_client().post("/api/v1/statistics", json=statistical_body(
        MONTHLY_MAX_NDVI, "2023-06-01T00:00:00Z", "2023-08-01T00:00:00Z", "P1M")).json
    assert answer["status"] == "OK" and len(answer["data"]) == 2
    assert [d["outputs"] for d in answer["data"]] == [d["outputs"] for d in local["data"]]
