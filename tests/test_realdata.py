"""Real Sentinel-2 L1C from ../shared/data: ingest, query, and compare with numpy and s2cloudless."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from s2cloudless import S2PixelCloudDetector

from stats import Archive, TimeSeriesRequest, query_timeseries
from stats.archive.ingest import ingest
from stats.bands import MODEL_BANDS, S2_BANDS

MODEL_IDX = [S2_BANDS.index(b) for b in MODEL_BANDS]


@pytest.fixture(name="eolearn_archive", scope="module")
def fixture_eolearn_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import EOLEARN

    if not (EOLEARN / "l1c_5dates.npz").is_file():
        pytest.skip(f"real data not found at {EOLEARN} (the shared data folder beside the project)")
    root = tmp_path_factory.mktemp("eolearn") / "archive"
    ingest(sorted(EOLEARN.glob("l1c_*.tif")), root)
    return root


def _query(archive: Path, geometry, **extra):
    body = {"geometry": geometry, "crs": "EPSG:32633", "time": {"from": "2015-07-01", "to": "2015-09-30"}, **extra}
    return query_timeseries(TimeSeriesRequest.from_dict(body), Archive.open(archive))


def test_ingest_reads_five_dates_with_acquisition_times(eolearn_archive: Path) -> None:
    """The five GeoTIFFs become five acquisitions, timed from their ACQUISITION tag."""
    archive = Archive.open(eolearn_archive)
    assert [a.datetime.strftime("%Y-%m-%dT%H:%M:%S") for a in archive.acquisitions] == [
        "2015-07-11T10:00:08", "2015-07-31T10:00:09", "2015-08-20T10:07:28", "2015-08-30T10:05:47",
        "2015-09-09T10:00:17",
    ]
    assert all(set(a.assets) == set(S2_BANDS) for a in archive.acquisitions)


def test_whole_patch_is_cloudy_on_the_two_cloudy_dates(eolearn_archive: Path, eolearn_dir: Path) -> None:
    """The whole patch reads cloudy on 2015-07-31 and 2015-08-20 and clear on the three other dates."""
    z = np.load(eolearn_dir / "l1c_5dates.npz")
    minx, miny, maxx, maxy = (float(v) for v in z["bbox"])
    wkt = f"POLYGON (({minx} {miny}, {maxx} {miny}, {maxx} {maxy}, {minx} {maxy}, {minx} {miny}))"
    result = _query(eolearn_archive, wkt, statistics=["mean"])
    assert [(d.date.isoformat(), d.cloudy) for d in result.series] == [
        ("2015-07-11", False), ("2015-07-31", True), ("2015-08-20", True), ("2015-08-30", False),
        ("2015-09-09", False),
    ]
    dn = z["dn"].astype(np.float64) / 10000
    for i, entry in enumerate(result.series):
        assert entry.valid_pixels == 101 * 100
        for k, band in enumerate(S2_BANDS):
            assert entry.bands[band]["mean"] == pytest.approx(dn[i, :, :, k].mean(), abs=1e-9)
    # the probability is s2cloudless on the numpy means of the model bands
    means = dn[..., MODEL_IDX].mean(axis=(1, 2))
    reference = S2PixelCloudDetector(all_bands=False).get_cloud_probability_maps(means[None, :, None, :])[0, :, 0]
    np.testing.assert_allclose([d.cloud_probability for d in result.series], reference, atol=1e-6)


def test_landuse_polygon_means_equal_numpy_over_pixel_centres(eolearn_archive: Path, eolearn_dir: Path) -> None:
    """For every land-use polygon, band means equal numpy means of dn/10000 over the pixels whose centre
    lies inside it (the ``poly_id`` raster, checked against eo-learn's own rasterisation)."""
    z = np.load(eolearn_dir / "l1c_5dates.npz")
    ids = z["poly_id"]
    features = json.loads((eolearn_dir / "lulc_polygons_epsg32633.geojson").read_text())["features"]
    dn = z["dn"].astype(np.float64) / 10000
    checked = 0
    for feature in features:
        pid = feature["properties"]["poly_id"]
        mask = ids == pid
        if mask.sum() < 2:
            continue  # sub-pixel polygons fall back to the touched pixels (tested elsewhere)
        result = _query(eolearn_archive, feature["geometry"], bands=["B02", "B04", "B08", "B11"],
                        statistics=["count", "mean", "std"], time={"from": "2015-07-11", "to": "2015-07-11"})
        (entry,) = result.series
        assert entry.valid_pixels == int(mask.sum()), pid
        for band in ("B02", "B04", "B08", "B11"):
            k = S2_BANDS.index(band)
            assert entry.bands[band]["mean"] == pytest.approx(dn[0, :, :, k][mask].mean(), abs=1e-9)
            assert entry.bands[band]["std"] == pytest.approx(dn[0, :, :, k][mask].std(), abs=1e-9)
        checked += 1
    assert checked >= 50
