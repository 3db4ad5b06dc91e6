"""eo-learn's SentinelHubInputTask against a live polyfis server, as its land-cover example configures it.

The task asks the Process API for the bands with ``dataMask``, ``CLM`` and ``CLP`` (one tar per date); its
arrays are compared with the band COGs warped by rasterio onto the same grid and with the s2cloudless
package on the tile's 160 m cells. Without ``single_scene`` the task finds its dates with the Catalog API.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from rasterio.enums import Resampling
from sh_reference import grid_transform, independent_clouds, item_dir, warped

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from common import polyfis_server  # noqa: E402

pytest.importorskip("eolearn.io", reason="eo-learn is in the test extra: pip install -e '.[test]'")

CLIENT = ("client-id", "client-secret")
BANDS = ["B02", "B03", "B04", "B08", "B11", "B12"]
#: A 1.2 x 1 km box of the demo tile (EPSG:32633), on its 10 m grid: tile pixels rows 240..340, columns 160..280,
#: under the edge of a cumulus on 2023-07-24.
BOX = (501640.0, 5096600.0, 502840.0, 5097600.0)
ADDITIONAL = "additional_data"
@pytest.fixture(scope="module", name="server")
def fixture_server(demo_root: Path):
    env = {"POLYFIS_ARCHIVE": str(demo_root), "POLYFIS_AUTH_CLIENTS": ":".join(CLIENT)}
    with polyfis_server(workers=1, env=env, timeout_s=120) as server:
        yield server


def land_cover_task(server, **overrides):
    """SentinelHubInputTask as eo-learn's land-cover example builds it, pointed at the live server."""
    from eolearn.core import FeatureType
    from eolearn.io import SentinelHubInputTask
    from sentinelhub import DataCollection, SHConfig

    config = SHConfig(sh_base_url=server.base, sh_token_url=f"{server.base}/oauth/token", sh_client_id=CLIENT[0],
                      sh_client_secret=CLIENT[1])
    collection = DataCollection.SENTINEL2_L1C.define_from("POLYFIS_EOLEARN", service_url=server.base)
    args = {"bands_feature": (FeatureType.DATA, "BANDS"), "bands": BANDS, "resolution": 10, "maxcc": 0.8,
            "time_difference": dt.timedelta(minutes=120), "data_collection": collection, "max_threads": 2,
            ADDITIONAL: [(FeatureType.MASK, "dataMask", "IS_DATA"), (FeatureType.MASK, "CLM"),
                         (FeatureType.DATA, "CLP")], "config": config}
    return SentinelHubInputTask(**{**args, **overrides})


def check_patch(patch, demo_root: Path, dates: list[str], reflectance: bool = False) -> None:
    """The patch's bands, masks and cloud layers equal the archive's on the patch's grid, one image per date
    (the acquisition each image shows); the bands in harmonised DN, or with ``reflectance`` as float32
    reflectance (harmonised DN / 10000), which the task asks for when it has no integer ``bands_dtype``."""
    shape = (100, 120)
    assert patch.data["BANDS"].shape == (len(dates), *shape, len(BANDS))
    transform = grid_transform(BOX, shape[1], shape[0])
    for t, date in enumerate(dates):
        folder = item_dir(demo_root, date)
        item = json.loads(next(folder.glob("*.json")).read_text())
        offset = 1000 if item["properties"]["s2:processing_baseline"] >= "04.00" else 0
        for i, band in enumerate(BANDS):
            dn = warped(folder / f"{band}.tif", "EPSG:32633", transform, shape, Resampling.nearest)
            assert (dn > 0).all(), (date, band)
            expected = np.maximum(dn.astype(np.float64) - offset, 0)
            if reflectance:
                expected = (expected / 10000).astype(np.float32)
                assert patch.data["BANDS"].dtype == np.float32
            assert np.array_equal(patch.data["BANDS"][t, ..., i], expected), (date, band)
        assert patch.mask["IS_DATA"][t, ..., 0].all()
        clp, clm = independent_clouds(folder)
        rows, cols = np.indices(shape)
        cells = ((rows + 240) // 16, (cols + 160) // 16)
        assert np.array_equal(patch.data["CLP"][t, ..., 0], clp[cells]), date
        assert np.array_equal(patch.mask["CLM"][t, ..., 0], clm[cells]), date


def one_units_script() -> str:
    """The evalscript SentinelHubInputTask generates for BANDS and the additional data (DN, UINT16 bands), with
    one ``units`` value for all its inputs."""
    outputs = ", ".join(f'{{id: "{b}", bands: 1, sampleType: "UINT16"}}' for b in BANDS)
    return f"""//VERSION=3
function setup() {{
  return {{input: [{{bands: {json.dumps(BANDS + ["dataMask", "CLM", "CLP"])}, units: "DN"}}],
          output: [{outputs}, {{id: "dataMask", bands: 1, sampleType: "UINT8"}},
                   {{id: "CLM", bands: 1, sampleType: "UINT8"}}, {{id: "CLP", bands: 1, sampleType: "UINT8"}}]}};
}}
function evaluatePixel(s) {{
  return {{{", ".join(f"{b}: [s.{b}]" for b in BANDS)}, dataMask: [s.dataMask], CLM: [s.CLM], CLP: [s.CLP]}};
}}"""


def test_single_scene_mosaics_the_interval(server, demo_root: Path, monkeypatch) -> None:
    """With single_scene=True the task asks for one image of the interval: the most recent acquisition under
    80 % cloud cover of 2023-07-20..07-30 (2023-07-24), bands (REFLECTANCE, float32), dataMask, CLM and CLP,
    through the evalscript sentinelhub-py generates (units given per band)."""
    from sentinelhub import CRS, BBox

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    task = land_cover_task(server, single_scene=True)
    patch = task.execute(bbox=BBox(BOX, crs=CRS.UTM_33N), time_interval=("2023-07-20", "2023-07-30"))
    assert patch.timestamps == [dt.datetime(2023, 7, 20)]  # single_scene stamps the interval's start
    check_patch(patch, demo_root, ["2023-07-24"], reflectance=True)
    assert 0 < patch.mask["CLM"].mean() < 1  # the box holds cloud and clear ground


def test_single_scene_with_integer_bands_reads_dn(server, demo_root: Path, monkeypatch) -> None:
    """With ``bands_dtype=np.uint16`` the generated evalscript asks for every band in DN (units per band, all
    "DN"), and the bands arrive as the harmonised DN of the archive."""
    from sentinelhub import CRS, BBox

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    task = land_cover_task(server, single_scene=True, bands_dtype=np.uint16)
    patch = task.execute(bbox=BBox(BOX, crs=CRS.UTM_33N), time_interval=("2023-07-20", "2023-07-30"))
    assert patch.data["BANDS"].dtype == np.uint16
    check_patch(patch, demo_root, ["2023-07-24"])


def test_single_scene_with_an_evalscript_of_one_units_value(server, demo_root: Path, monkeypatch) -> None:
    """The same task with its own evalscript (one ``units`` value, DN, for all inputs, masks included)
    runs the whole download: one tar per request, every array equal to the archive's."""
    from sentinelhub import CRS, BBox

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    task = land_cover_task(server, single_scene=True, evalscript=one_units_script())
    patch = task.execute(bbox=BBox(BOX, crs=CRS.UTM_33N), time_interval=("2023-07-20", "2023-07-30"))
    assert patch.timestamps == [dt.datetime(2023, 7, 20)]
    check_patch(patch, demo_root, ["2023-07-24"])
    assert 0 < patch.mask["CLM"].mean() < 1  # the box holds cloud and clear ground


def test_land_cover_task_downloads_every_date(server, demo_root: Path, monkeypatch) -> None:
    """Over August 2023 the task finds the dates under 80 % cloud cover through the Catalog API and downloads
    each one's bands (REFLECTANCE), dataMask, CLM and CLP with the evalscript sentinelhub-py generates."""
    from sentinelhub import CRS, BBox

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    patch = land_cover_task(server).execute(bbox=BBox(BOX, crs=CRS.UTM_33N), time_interval=("2023-08-01", "2023-08-31"))
    dates = ["2023-08-03", "2023-08-13", "2023-08-23"]
    assert [t.date().isoformat() for t in patch.timestamps] == dates
    check_patch(patch, demo_root, dates, reflectance=True)


def test_land_cover_task_with_an_evalscript_of_one_units_value_downloads_every_date(server, demo_root: Path,
                                                                                    monkeypatch) -> None:
    """The catalog-driven task with its evalscript given (one ``units`` value) finds August's dates under 80 %
    cloud cover and downloads each one's arrays, equal to the archive's."""
    from sentinelhub import CRS, BBox

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    task = land_cover_task(server, evalscript=one_units_script())
    patch = task.execute(bbox=BBox(BOX, crs=CRS.UTM_33N), time_interval=("2023-08-01", "2023-08-31"))
    dates = ["2023-08-03", "2023-08-13", "2023-08-23"]
    assert [t.date().isoformat() for t in patch.timestamps] == dates
    check_patch(patch, demo_root, dates)
