"""FIS details: long TIME ranges, UPSAMPLING/DOWNSAMPLING, resolutions under 10 m, the data-mask channel, and
sentinelhub-py's own FisRequest (the last release that has it) against a live server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import CRS_UTM, X0, Y0, at_10m, band_array, utm_box
from rasterio.enums import Resampling
from rasterio.warp import reproject

from service import create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from common import polyfis_server  # noqa: E402

#: sentinelhub-py removed FisRequest in 3.11.4; the README's test command installs 3.11.3 here, beside the environment.
FIS_CLIENT = Path(sys.prefix) / "sentinelhub-fis"
FIRST = "T1_20230105"  # the full, baseline 02.09 date of simple_archive


def wkt(ring) -> str:
    return "POLYGON ((" + ", ".join(f"{x!r} {y!r}" for x, y in ring) + "))"


def warped(root: Path, band: str, transform: Affine, shape: tuple[int, int], method: Resampling) -> np.ndarray:
    """The band of the first date warped by rasterio onto a grid, as reflectance."""
    out = np.zeros(shape, dtype=np.float32)
    with rasterio.open(root / "items" / FIRST / f"{band}.tif") as src:
        reproject(rasterio.band(src, 1), out, src_nodata=0, dst_nodata=0, dst_transform=transform,
                  dst_crs=CRS_UTM, resampling=method)
    return out.astype(np.float64).ravel() / 10000


def basic(values: np.ndarray) -> dict[str, float]:
    return {"min": values.min(), "max": values.max(), "mean": values.mean(), "stDev": values.std()}


def assert_stats(got: dict, values: np.ndarray) -> None:
    expected = basic(values)
    for key in expected:
        assert got[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), (key, got, expected)


@pytest.fixture(name="client")
def fixture_client(simple_archive: Path):
    return create_app({"archive": str(simple_archive), "max_days": 30}).test_client()


def params(**extra) -> dict:
    return {"LAYER": "BANDS-S2-L1C", "CRS": CRS_UTM, "TIME": "2023-01-05", "GEOMETRY": wkt(utm_box(6, 1, 10, 5)),
            **extra}


def test_time_wider_than_the_archive_is_clipped_and_the_limit_counts_acquisitions(simple_archive: Path,
                                                                                   client) -> None:
    """TIME=2000-01-01/2050-01-01 answers the archive's three dates although the range limit is 30 days; the
    acquisitions limit counts the three matched."""
    response = client.get("/ogc/fis", query_string=params(TIME="2000-01-01/2050-01-01", LAYER="NDVI"))
    assert response.status_code == 200, response.json
    assert [e["date"] for e in response.json["C0"]] == ["2023-08-10", "2023-07-04", "2023-01-05"]
    strict = create_app({"archive": str(simple_archive), "max_acquisitions": 2}).test_client()
    refused = strict.get("/ogc/fis", query_string=params(TIME="2000-01-01/2050-01-01", LAYER="NDVI"))
    assert refused.status_code == 400
    assert "match 3 acquisitions, more than the limit of 2" in refused.json["error"]["message"]
    before = client.get("/ogc/fis", query_string=params(TIME="1990-01-01/1999-12-31", LAYER="NDVI"))
    assert before.status_code == 200 and before.json == {"C0": []}


@pytest.mark.parametrize(("name", "method"), [("BILINEAR", Resampling.bilinear), ("bicubic", Resampling.cubic)])
def test_upsampling_of_20m_and_60m_bands_equals_rasterio(simple_archive: Path, client, name, method) -> None:
    """UPSAMPLING=BILINEAR/BICUBIC: B05 (20 m) and B01 (60 m) on the 10 m grid equal rasterio's reproject of the
    band files with that method; B04 (10 m) is unchanged."""
    data = client.get("/ogc/fis", query_string=params(UPSAMPLING=name)).json
    grid = Affine(10, 0, X0 + 60, 0, -10, Y0 - 10)
    assert_stats(data["C4"][0]["basicStats"], warped(simple_archive, "B05", grid, (4, 4), method))
    assert_stats(data["C0"][0]["basicStats"], warped(simple_archive, "B01", grid, (4, 4), method))
    assert_stats(data["C3"][0]["basicStats"], at_10m("B04", band_array("B04"))[1:5, 6:10].ravel() / 10000)
    nearest = client.get("/ogc/fis", query_string=params()).json
    assert nearest["C4"][0]["basicStats"] != data["C4"][0]["basicStats"]


@pytest.mark.parametrize(("name", "method"), [("BICUBIC", Resampling.cubic), ("BOX", Resampling.average),
                                              ("BILINEAR", Resampling.bilinear)])
def test_downsampling_onto_a_30m_grid_equals_rasterio(simple_archive: Path, client, name, method) -> None:
    """RESOLUTION=30 with DOWNSAMPLING: the 10 m and 20 m bands on the tile's 30 m grid equal rasterio's reproject."""
    data = client.get("/ogc/fis", query_string=params(
        RESOLUTION="30", DOWNSAMPLING=name, GEOMETRY=wkt(utm_box(0, 0, 12, 12)))).json
    grid = Affine(30, 0, X0, 0, -30, Y0)
    assert_stats(data["C3"][0]["basicStats"], warped(simple_archive, "B04", grid, (4, 4), method))
    assert_stats(data["C4"][0]["basicStats"], warped(simple_archive, "B05", grid, (4, 4), method))


def test_five_metre_resolution_is_upsampled(client) -> None:
    """RESOLUTION=5m is no longer a 400: each 10 m pixel counts four times (the same statistics), and the
    histogram counts 64 pixels."""
    fine = client.get("/ogc/fis", query_string=params(RESOLUTION="5m", BINS="4", LAYER="TRUE_COLOR")).json
    red = np.repeat(np.repeat(at_10m("B04", band_array("B04"))[1:5, 6:10], 2, axis=0), 2, axis=1).ravel() / 10000
    assert_stats(fine["C0"][0]["basicStats"], red)
    assert sum(b["count"] for b in fine["C0"][0]["histogram"]["bins"]) == 64.0
    assert sum(b["count"] for b in fine["C3"][0]["histogram"]["bins"]) == 64.0
    tiny = client.get("/ogc/fis", query_string=params(RESOLUTION="0.5m"))
    assert tiny.status_code == 400 and "expected 1 to 10000 metres" in tiny.json["error"]["message"]


def test_standard_layers_end_with_the_data_mask_channel(client) -> None:
    """BANDS-S2-L1C answers C0..C13 and TRUE_COLOR C0..C3, the last being the data mask (1 at every pixel
    used, so min = max = mean = 1, stDev 0), for every date; NDVI has no mask channel."""
    bands = client.get("/ogc/fis", query_string=params(TIME="2023-01-01/2023-12-31")).json
    assert list(bands) == [f"C{i}" for i in range(14)]
    assert [e["date"] for e in bands["C13"]] == [e["date"] for e in bands["C0"]]
    assert all(e["basicStats"] == {"min": 1.0, "max": 1.0, "mean": 1.0, "stDev": 0.0} for e in bands["C13"])
    true_color = client.get("/ogc/fis", query_string=params(LAYER="TRUE_COLOR", BINS="3", TYPE="EQUIDISTANT")).json
    assert list(true_color) == ["C0", "C1", "C2", "C3"]
    counts = [b["count"] for b in true_color["C3"][0]["histogram"]["bins"]]
    assert sum(counts) == max(counts) == 16.0
    assert list(client.get("/ogc/fis", query_string=params(LAYER="NDVI")).json) == ["C0"]


@pytest.mark.parametrize(("extra", "match"), [
    ({"UPSAMPLING": "LANCZOS"}, r"UPSAMPLING: got 'LANCZOS'; expected one of \['NEAREST', 'BILINEAR', 'BICUBIC'\]"),
    ({"DOWNSAMPLING": "MODE"}, r"DOWNSAMPLING: got 'MODE'; expected one of \['NEAREST', 'BILINEAR', 'BICUBIC', 'BOX'\]")])
def test_unknown_resampling_methods_are_400(client, extra, match) -> None:
    """An unknown method names the parameter and the accepted methods."""
    import re

    response = client.get("/ogc/fis", query_string=params(**extra))
    assert response.status_code == 400 and re.search(match, response.json["error"]["message"]), response.json


FIS_SCRIPT = """
import json, sys
from shapely.geometry import Polygon
from sentinelhub import CRS, CustomUrlParam, DataCollection, FisRequest, Geometry, HistogramType, ResamplingType, SHConfig

base, ring, wide = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
config = SHConfig(sh_base_url=base, instance_id="polyfis-instance")
common = dict(time=("2000-01-01", "2050-01-01"), config=config,
              data_collection=DataCollection.SENTINEL2_L1C.define_from("POLYFIS_FIS_L1C", service_url=base))
up = FisRequest(layer="BANDS-S2-L1C", geometry_list=[Geometry(Polygon(ring), CRS.UTM_33N)], resolution="10m",
                custom_url_params={CustomUrlParam.UPSAMPLING: ResamplingType.BILINEAR,
                                   CustomUrlParam.DOWNSAMPLING: "bicubic"}, **common)
down = FisRequest(layer="TRUE_COLOR", geometry_list=[Geometry(Polygon(wide), CRS.UTM_33N)], resolution="30m",
                  bins=4, histogram_type=HistogramType.EQUALFREQUENCY,
                  custom_url_params={CustomUrlParam.DOWNSAMPLING: ResamplingType.BICUBIC}, **common)
print(json.dumps({"up": up.get_data(), "down": down.get_data()}))
"""


def test_sentinelhub_py_fis_request_with_bilinear_bicubic_and_a_long_time_range(simple_archive: Path) -> None:
    """sentinelhub-py's FisRequest (3.11.3, the last release with FIS) with UPSAMPLING BILINEAR, DOWNSAMPLING
    BICUBIC and TIME 2000-01-01/2050-01-01 against `polyfis serve`: every date of the archive, values equal to
    rasterio's reproject with those methods, and the data-mask channel last."""
    if not (FIS_CLIENT / "sentinelhub" / "api" / "fis.py").is_file():
        pytest.skip(f"sentinelhub-py 3.11.3 (FisRequest) is not installed at {FIS_CLIENT}: "
                    f"pip install --no-deps --target {FIS_CLIENT} 'sentinelhub==3.11.3'")
    env = {"POLYFIS_ARCHIVE": str(simple_archive), "POLYFIS_JOBS_DIR": str(simple_archive.parent / "jobs"),
           "POLYFIS_MAX_DAYS": "30"}
    with polyfis_server(workers=1, env=env, timeout_s=120) as server:
        run = subprocess.run(
            [sys.executable, "-c", FIS_SCRIPT, server.base, json.dumps(utm_box(6, 1, 10, 5)),
             json.dumps(utm_box(0, 0, 12, 12))],
            env={**os.environ, "PYTHONPATH": str(FIS_CLIENT)}, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    answer = json.loads(run.stdout)
    (up,), (down,) = answer["up"], answer["down"]
    assert list(up) == [f"C{i}" for i in range(14)]
    assert [e["date"] for e in up["C4"]] == ["2023-08-10", "2023-07-04", "2023-01-05"]
    assert all(e["basicStats"]["mean"] == 1.0 for e in up["C13"])
    assert_stats(up["C4"][-1]["basicStats"],
                 warped(simple_archive, "B05", Affine(10, 0, X0 + 60, 0, -10, Y0 - 10), (4, 4), Resampling.bilinear))
    assert list(down) == ["C0", "C1", "C2", "C3"]
    assert_stats(down["C0"][-1]["basicStats"],
                 warped(simple_archive, "B04", Affine(30, 0, X0, 0, -30, Y0), (4, 4), Resampling.cubic))
    bins = down["C0"][-1]["histogram"]["bins"]
    assert len(bins) == 4 and sum(b["count"] for b in bins) == 16.0
