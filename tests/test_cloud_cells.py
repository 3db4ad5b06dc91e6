"""Per-pixel cloud probability and mask: identical to s2cloudless and eo-learn on real scenes."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from conftest import CRS_UTM, band_array, band_transform, utm_box

from stats import Archive, TimeSeriesRequest, query_timeseries
from stats.archive.ingest import ingest
from stats.archive.synthetic import demo_polygons
from stats.bands import MODEL_BANDS, S2_BANDS
from stats.clouds.cells import ProbabilityCache, cell_means, to_clm, to_clp
from stats.clouds.masks import mask_from_probability
from stats.clouds.model import default_model
from stats.clouds.options import MaskParameters

MODEL_IDX = [S2_BANDS.index(b) for b in MODEL_BANDS]


def _probabilities(dn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CLP of a (rows, cols, 13) DN scene through polyfis's 1 x 1 cells, and the cell validity."""
    bands = {b: dn[..., S2_BANDS.index(b)].astype(np.float32) for b in MODEL_BANDS}
    valid = np.ones(dn.shape[:2], dtype=bool)
    means, cell_valid = cell_means(bands, valid, 1)
    probs = default_model().probability(means.reshape(-1, len(MODEL_BANDS))).reshape(dn.shape[:2])
    return probs, cell_valid


def test_betsiboka_probabilities_and_mask_equal_s2cloudless(betsiboka_dir: Path) -> None:
    """Per-pixel probabilities equal cl_probs within 1e-6; the mask with s2cloudless's defaults equals cl_mask."""
    z = np.load(betsiboka_dir / "betsiboka_l1c.npz")
    probs, cell_valid = _probabilities(z["dn"])
    assert np.abs(probs - z["cl_probs"]).max() < 1e-6
    mask = mask_from_probability(probs, cell_valid, MaskParameters(resolution=10, threshold=0.4, average_over=1,
                                                                   dilation_size=1))
    assert (mask == z["cl_mask"]).mean() == 1.0


def test_eolearn_probabilities_and_mask_equal_clp_s2c_and_clm_s2c(eolearn_dir: Path) -> None:
    """On the 5 real dates: probabilities equal CLP_S2C within 1e-6 and the eo-learn mask (radius 4, 0.4,
    radius 2, at 10 m) equals CLM_S2C on every pixel."""
    dn = np.load(eolearn_dir / "l1c_5dates.npz")["dn"]
    refs = np.load(eolearn_dir / "refs_68dates.npz")
    params = MaskParameters(resolution=10, threshold=0.4, average_over=4, dilation_size=2)
    for i in range(5):
        probs, cell_valid = _probabilities(dn[i])
        assert np.abs(probs - refs["CLP_S2C"][i]).max() < 1e-6, i
        assert np.array_equal(mask_from_probability(probs, cell_valid, params), refs["CLM_S2C"][i]), i


def test_eolearn_pixel_mode_through_the_engine(eolearn_dir: Path, tmp_path: Path) -> None:
    """Querying the whole ingested patch in pixel mode at 10 m gives the reference cloud fraction and mean CLP."""
    ingest(sorted(eolearn_dir.glob("l1c_*.tif")), tmp_path / "archive")
    z = np.load(eolearn_dir / "l1c_5dates.npz")
    refs = np.load(eolearn_dir / "refs_68dates.npz")
    minx, miny, maxx, maxy = (float(v) for v in z["bbox"])
    wkt = f"POLYGON (({minx} {miny}, {maxx} {miny}, {maxx} {maxy}, {minx} {maxy}, {minx} {miny}))"
    body = {"geometry": wkt, "crs": "EPSG:32633", "time": {"from": "2015-07-01", "to": "2015-09-30"},
            "bands": ["B04"], "cloud": {"mode": "both", "resolution": 10, "average_over": 4, "dilation_size": 2}}
    result = query_timeseries(TimeSeriesRequest.from_dict(body), Archive.open(tmp_path / "archive"),
                              cache=ProbabilityCache())
    for i, entry in enumerate(result.series):
        pc = entry.pixel_cloud
        assert pc is not None
        assert pc.fraction == pytest.approx(refs["CLM_S2C"][i].mean(), abs=1e-12)
        assert pc.probability_mean == pytest.approx(refs["CLP_S2C"][i].astype(np.float64).mean(), abs=1e-6)
        assert pc.clear_pixels + pc.cloudy_pixels == entry.valid_pixels == 10100


def test_cells_average_the_valid_pixels_by_area() -> None:
    """A 2 x 2 cell of DN 100, 200, 300 and a no-data pixel averages to 200 DN = 0.02."""
    dn = {b: np.array([[100, 200], [300, 0]], dtype=np.float32) for b in MODEL_BANDS}
    valid = np.array([[True, True], [True, False]])
    means, cell_valid = cell_means(dn, valid, 2)
    assert means.shape == (1, 1, 10) and cell_valid.tolist() == [[True]]
    assert means[0, 0, 0] == np.float32(200) / np.float32(10000)


def test_clp_and_clm_layers_encode_no_data_as_255() -> None:
    """CLP is round(255 p), CLM 0/1, both 255 where no data."""
    prob = np.array([[0.0, 0.5], [1.0, 0.7]], dtype=np.float32)
    valid = np.array([[True, True], [True, False]])
    assert to_clp(prob, valid).tolist() == [[0, 128], [255, 0]]
    assert to_clm(np.array([[0, 1], [1, 1]]), valid).tolist() == [[0, 1], [1, 255]]


def _half_cloud_archive(make_archive) -> Path:
    """Tile T1 with the right half a bright cloud and the left half clear vegetation."""
    bands = {}
    for b in S2_BANDS:
        arr = band_array(b)
        k = arr.shape[1] // 2
        arr[:, k:] = 150 if b == "B10" else 6000
        bands[b] = (arr, band_transform(b))
    return make_archive([{"id": "half", "when": dt.datetime(2023, 3, 1, 10, tzinfo=dt.UTC), "bands": bands}])


def test_cloud_mask_statistics_use_clear_pixels_only(make_archive) -> None:
    """With cloud.mask the statistics cover the clear half; cloud fraction is the cloudy share."""
    root = _half_cloud_archive(make_archive)
    body = {"geometry": {"type": "Polygon", "coordinates": [utm_box(2, 2, 10, 6)]}, "crs": CRS_UTM,
            "time": {"from": "2023-03-01", "to": "2023-03-01"}, "bands": ["B04"], "statistics": ["count", "max"],
            "cloud": {"mode": "both", "resolution": 10, "average_over": 0, "dilation_size": 0, "mask": True}}
    (entry,) = query_timeseries(TimeSeriesRequest.from_dict(body), Archive.open(root), cache=ProbabilityCache()).series
    assert entry.pixel_cloud.fraction == pytest.approx(0.5)
    assert (entry.pixel_cloud.clear_pixels, entry.pixel_cloud.cloudy_pixels) == (16, 16)
    assert entry.bands["B04"]["count"] == 16
    assert entry.bands["B04"]["max"] < 0.1  # no cloud pixel (DN 6000) among them
    assert entry.warning in ("mixed", "disagree")


def test_second_query_costs_no_model_time(make_archive) -> None:
    """Cell probabilities are cached: the same query again finds every cell in the cache."""
    root = _half_cloud_archive(make_archive)
    cache = ProbabilityCache()
    body = {"geometry": {"type": "Polygon", "coordinates": [utm_box(2, 2, 10, 6)]}, "crs": CRS_UTM,
            "time": {"from": "2023-03-01", "to": "2023-03-01"}, "cloud": {"mode": "pixel", "resolution": 20}}
    first = query_timeseries(TimeSeriesRequest.from_dict(body), Archive.open(root), cache=cache)
    misses = cache.misses
    assert misses > 0 and cache.hits == 0
    second = query_timeseries(TimeSeriesRequest.from_dict(body), Archive.open(root), cache=cache)
    assert cache.misses == misses and cache.hits == misses
    assert first.to_dict() == second.to_dict()


def test_clp_and_clm_as_indices_give_per_pixel_layer_statistics(make_archive) -> None:
    """indices CLP and CLM give statistics of the 0..255 probability and the 0/1 mask over the polygon."""
    root = _half_cloud_archive(make_archive)
    body = {"geometry": {"type": "Polygon", "coordinates": [utm_box(2, 2, 10, 6)]}, "crs": CRS_UTM,
            "time": {"from": "2023-03-01", "to": "2023-03-01"}, "bands": ["B04"], "indices": ["CLP", "CLM"],
            "statistics": ["mean", "min", "max"], "cloud": {"resolution": 10, "average_over": 0, "dilation_size": 0}}
    (entry,) = query_timeseries(TimeSeriesRequest.from_dict(body), Archive.open(root), cache=ProbabilityCache()).series
    assert entry.indices["CLM"] == {"mean": 0.5, "min": 0.0, "max": 1.0}
    assert entry.indices["CLP"]["max"] >= 0.4 * 255 > entry.indices["CLP"]["min"]
    assert entry.pixel_cloud is not None and entry.pixel_cloud.fraction == 0.5


def test_csv_says_whether_the_averaged_pixel_is_trusted_as_the_json_does(demo_root: Path) -> None:
    """In both mode the CSV's cloud_trusted column is the JSON's cloud.trusted, date by date."""
    lake = next(f for f in demo_polygons()["features"] if f["properties"]["name"] == "mixed_lake_field")
    body = {"geometry": lake["geometry"], "time": {"from": "2023-01-01", "to": "2023-12-31"}, "bands": ["B04"],
            "statistics": ["mean"], "cloud": {"mode": "both"}}
    result = query_timeseries(TimeSeriesRequest.from_dict(body), Archive.open(demo_root), cache=ProbabilityCache())
    rows = list(csv.DictReader(io.StringIO(result.to_csv())))
    trusted = [e["cloud"]["trusted"] for e in result.to_dict()["series"]]
    assert [r["cloud_trusted"] == "true" for r in rows] == trusted
    assert False in trusted and True in trusted


def _betsiboka_archive(betsiboka_dir: Path, tmp_path: Path) -> tuple[Archive, np.ndarray, Affine]:
    """The Betsiboka scene (EPSG:4326, about 73 m pixels) written as a 13-band GeoTIFF and ingested."""
    import rasterio

    z = np.load(betsiboka_dir / "betsiboka_l1c.npz")
    transform = Affine(*(float(v) for v in z["transform"]))
    path = tmp_path / "betsiboka_20171215T071203.tif"
    dn = z["dn"]
    with rasterio.open(path, "w", driver="GTiff", width=dn.shape[1], height=dn.shape[0], count=13, dtype="uint16",
                       crs="EPSG:4326", transform=transform) as dst:
        dst.write(np.moveaxis(dn, -1, 0))
        for i, name in enumerate(z["band_names"], start=1):
            dst.set_band_description(i, str(name))
    ingest([path], tmp_path / "archive", processing_baseline="02.06")
    return Archive.open(tmp_path / "archive"), dn, transform


def test_cloud_cells_are_metres_on_the_ground_in_a_geographic_archive(betsiboka_dir: Path, tmp_path: Path) -> None:
    """In EPSG:4326 with 73 m pixels, 160 m cells are 2 x 2 pixels (146 m), not 16 x 16 (1.2 km): the cloud
    fraction of a mixed 32 x 32 px block equals s2cloudless run here on the 2 x 2 cell means of the whole scene."""
    from s2cloudless import S2PixelCloudDetector

    archive, dn, transform = _betsiboka_archive(betsiboka_dir, tmp_path)
    valid = (dn > 0).all(axis=-1)
    rows, cols = valid.shape
    k = 2  # round(160 m / 73.4 m)
    crows, ccols = -(-rows // k), -(-cols // k)
    pad = ((0, crows * k - rows), (0, ccols * k - cols))
    counts = np.pad(valid, pad).reshape(crows, k, ccols, k).sum(axis=(1, 3))
    means = np.zeros((crows, ccols, len(MODEL_BANDS)), np.float32)
    for i, band in enumerate(MODEL_BANDS):
        values = np.where(valid, dn[..., S2_BANDS.index(band)], 0).astype(np.float64)
        sums = np.pad(values, pad).reshape(crows, k, ccols, k).sum(axis=(1, 3))
        means[..., i] = (sums / np.maximum(counts, 1)).astype(np.float32) / np.float32(10000)
    detector = S2PixelCloudDetector(threshold=0.4, average_over=4, dilation_size=2, all_bands=False)
    probs = np.where(counts > 0, detector.get_cloud_probability_maps(means[np.newaxis].astype(np.float64))[0], 0)
    mask = detector.get_mask_from_prob(probs[np.newaxis].astype(np.float32))[0]
    r0, c0 = 608, 384  # a block the s2cloudless reference calls 56 % cloudy at 10 m
    block_mask = mask[np.arange(r0, r0 + 32)[:, None] // k, np.arange(c0, c0 + 32)[None, :] // k]
    expected = float(block_mask[valid[r0:r0 + 32, c0:c0 + 32]].mean())
    x0, y0 = transform @ (c0, r0)
    x1, y1 = transform @ (c0 + 32, r0 + 32)
    wkt = f"POLYGON (({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"
    body = {"geometry": wkt, "time": {"from": "2017-12-15", "to": "2017-12-15"}, "bands": ["B04"],
            "cloud": {"mode": "pixel"}}
    result = query_timeseries(TimeSeriesRequest.from_dict(body), archive, cache=ProbabilityCache())
    (entry,) = result.series
    assert entry.valid_pixels == 32 * 32
    assert entry.pixel_cloud is not None
    assert entry.pixel_cloud.fraction == pytest.approx(expected, abs=1e-12)
    assert 0.3 < expected < 0.8  # mixed, as the 10 m reference says


def test_a_cloud_resolution_finer_than_the_pixels_is_refused(betsiboka_dir: Path, tmp_path: Path) -> None:
    """cloud.resolution 10 m on 73 m pixels is a 400 naming the pixels' size on the ground."""
    from stats.errors import InvalidRequestError

    archive, _, _ = _betsiboka_archive(betsiboka_dir, tmp_path)
    body = {"geometry": "POLYGON ((46.3 -15.9, 46.32 -15.9, 46.32 -15.92, 46.3 -15.92, 46.3 -15.9))",
            "time": {"from": "2017-12-15", "to": "2017-12-15"}, "bands": ["B04"],
            "cloud": {"mode": "pixel", "resolution": 10}}
    with pytest.raises(InvalidRequestError, match=r"about 73 m on the ground; expected at least 74"):
        query_timeseries(TimeSeriesRequest.from_dict(body), archive)


def test_the_cell_cache_on_disk_is_shared_between_processes(tmp_path: Path) -> None:
    """With POLYFIS_CLOUD_CACHE_DIR, cells scored in another process are read back from the disk: a second
    process scores no cell and gets the same cloud answer."""
    import json
    import os
    import sqlite3
    import subprocess
    import sys

    from stats.archive.synthetic import build_demo_archive
    from stats.clouds.disk import DiskCells

    lake = next(f["geometry"] for f in demo_polygons()["features"] if f["properties"]["name"] == "lake")
    body = {"geometry": lake, "time": {"from": "2023-04-01", "to": "2023-06-30"}, "bands": ["B04"],
            "cloud": {"mode": "pixel", "source": "model"}}
    script = ("import json, sys\nfrom stats import Archive, TimeSeriesRequest, query_timeseries\n"
              "from stats.pipeline import default_cache\n"
              "r = query_timeseries(TimeSeriesRequest.from_dict(json.loads(sys.argv[1])), Archive.open(sys.argv[2]))\n"
              "print(json.dumps({'misses': default_cache().misses, 'series': r.to_dict()['series']}))\n")
    env = {**os.environ, "POLYFIS_CLOUD_CACHE_DIR": str(tmp_path / "cells")}
    runs = [json.loads(subprocess.run([sys.executable, "-c", script, json.dumps(body), str(build_demo_archive())],
                                      env=env, capture_output=True, text=True, check=True).stdout)
            for _ in range(2)]
    assert runs[0]["misses"] > 1000 and runs[1]["misses"] == 0
    assert runs[0]["series"] == runs[1]["series"]
    with sqlite3.connect(DiskCells(tmp_path / "cells").path) as db:  # every scored cell is stored once
        assert db.execute("SELECT count(*) FROM cells").fetchone()[0] == runs[0]["misses"]


def test_stored_layers_of_a_geographic_archive_give_the_models_answer(betsiboka_dir: Path, tmp_path: Path) -> None:
    """`polyfis clouds` on the EPSG:4326 scene stores 2 x 2 pixel cells; a query reads from them the fraction
    the model gives on the fly."""
    from stats.clouds.store import store_cloud_layers

    archive, _, _ = _betsiboka_archive(betsiboka_dir, tmp_path)
    assert store_cloud_layers(tmp_path / "archive").done == 1
    archive = Archive.open(tmp_path / "archive")
    layers = archive.acquisitions[0].cloud_layers
    assert layers is not None and layers.cell_pixels == 2
    body = {"geometry": "POLYGON ((46.3 -15.85, 46.4 -15.85, 46.4 -15.95, 46.3 -15.95, 46.3 -15.85))",
            "time": {"from": "2017-12-15", "to": "2017-12-15"}, "bands": ["B04"], "cloud": {"mode": "pixel"}}
    answers = {}
    for source in ("layers", "model"):
        body["cloud"]["source"] = source  # type: ignore[index]
        (entry,) = query_timeseries(TimeSeriesRequest.from_dict(body), archive, cache=ProbabilityCache()).series
        answers[source] = entry.pixel_cloud
    assert answers["layers"].source == "layers" and answers["model"].source == "model"
    assert answers["layers"].cloudy_pixels == answers["model"].cloudy_pixels > 0
    assert abs(answers["layers"].probability_mean - answers["model"].probability_mean) <= 0.5 / 255 + 1e-9
