"""Stored CLP/CLM layers (``polyfis clouds``): equal to s2cloudless on the tile's cells, read by every consumer
with the values of the on-the-fly recipe, custom masks built from CLP, and a run that is idempotent,
resumable and safe to run twice at once."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.features import geometry_mask
from s2cloudless import S2PixelCloudDetector
from s2cloudless.utils import cv2_disk
from shapely.geometry import mapping, shape
from skimage import morphology

from stats import Archive, TimeSeriesRequest, query_timeseries
from stats.archive.catalog import group_by_date
from stats.archive.synthetic import build_demo_archive, demo_polygons
from stats.bands import MODEL_BANDS
from stats.batch import batch_options, batch_time, plan_batch, run_plan
from stats.batch.inputs import BatchPolygon
from stats.batch.task import vectorised
from stats.clouds.cells import ProbabilityCache, pixel_clouds, resolve_probabilities
from stats.clouds.layers import cloud_cells
from stats.clouds.model import default_model
from stats.clouds.store import store_cloud_layers
from stats.geometry import WGS84, reproject
from stats.raster import read_date
from stats.request import MaskParameters

CUMULUS_DATES = ("2023-03-16", "2023-04-25", "2023-06-04", "2023-07-24", "2023-10-02", "2023-11-11")


@pytest.fixture(scope="module", name="layered")
def fixture_layered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo archive with its cloud layers stored."""
    root = tmp_path_factory.mktemp("layered") / "demo"
    shutil.copytree(build_demo_archive(), root)
    summary = store_cloud_layers(root)
    assert summary.done == summary.items == 37 and not summary.failed
    return root


def _items(root: Path) -> list[Path]:
    return sorted((root / "items").glob("*/*.json"))


def _independent_cells(item_json: Path, k: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Cell means of the model bands over the valid 10 m pixels, computed here from the band files with
    rasterio (20/60 m bands upsampled by nearest neighbour), and the cells with data."""
    item = json.loads(item_json.read_text())
    offset = 1000 if item["properties"].get("s2:processing_baseline", "00.00") >= "04.00" else 0
    with rasterio.open(item_json.parent / "B02.tif") as ref:
        shape10 = (ref.height, ref.width)
    stack = []
    for band in MODEL_BANDS:
        with rasterio.open(item_json.parent / f"{band}.tif") as src:
            stack.append(src.read(1, out_shape=shape10, resampling=Resampling.nearest).astype(np.float64))
    dn = np.stack(stack, axis=-1)
    valid = (dn > 0).all(axis=-1)
    dn = np.clip(dn - offset, 0, None)
    rows, cols = shape10
    crows, ccols = -(-rows // k), -(-cols // k)
    pad = ((0, crows * k - rows), (0, ccols * k - cols))
    w = np.pad(valid, pad).reshape(crows, k, ccols, k)
    counts = w.sum(axis=(1, 3))
    means = np.zeros((crows, ccols, len(MODEL_BANDS)), np.float32)
    for i in range(len(MODEL_BANDS)):
        values = np.pad(np.where(valid, dn[..., i], 0), pad).reshape(crows, k, ccols, k).sum(axis=(1, 3))
        means[..., i] = (values / np.maximum(counts, 1)).astype(np.float32) / np.float32(10000)
    return means, counts > 0


def test_stored_layers_equal_s2cloudless_on_the_tile_cells(layered: Path) -> None:
    """Every item's CLP is round(255 p) of s2cloudless on the 160 m cells, and CLM is s2cloudless's own mask
    (Sentinel Hub's radii 4 and 2, threshold 0.4), bit for bit; no-data cells are CLM 255 and CLP 0."""
    detector = S2PixelCloudDetector(threshold=0.4, average_over=4, dilation_size=2, all_bands=False)
    for item_json in _items(layered):
        means, valid = _independent_cells(item_json)
        probs = detector.get_cloud_probability_maps(means[np.newaxis].astype(np.float64))[0]
        probs = np.where(valid, probs, 0).astype(np.float32)
        mask = detector.get_mask_from_prob(probs[np.newaxis])[0]
        with rasterio.open(item_json.parent / "CLP.tif") as clp_src, rasterio.open(item_json.parent / "CLM.tif") as clm:
            clp, clm_values = clp_src.read(1), clm.read(1)
            assert clp_src.transform.a == 160 and clm.nodata == 255 and clp_src.nodata is None
        assert np.array_equal(clp, np.where(valid, np.round(probs.astype(np.float64) * 255), 0)), item_json.name
        assert np.array_equal(clm_values, np.where(valid, mask, 255)), item_json.name


def test_layers_and_the_model_give_the_same_pixel_clouds(layered: Path) -> None:
    """For every demo polygon on the cumulus dates, the pixels' mask read from the layers equals the mask scored
    on the fly, and their probability is within 1/255."""
    archive = Archive.open(layered)
    model, cache = default_model(), ProbabilityCache()
    params = MaskParameters()
    compared = 0
    for feature in demo_polygons()["features"]:
        geom = shape(feature["geometry"])
        for tiles in group_by_date(a for a in archive.acquisitions if a.date.isoformat() in CUMULUS_DATES):
            if not tiles[0].footprint.intersects(geom):
                continue
            fly = cloud_cells(tiles, geom, WGS84, ["B04"], replace(params, source="model")).cells
            stored = cloud_cells(tiles, geom, WGS84, ["B04"], replace(params, source="layers")).cells
            assert fly.source == "model" and stored.source == "layers"
            resolve_probabilities([fly, stored], model, cache)
            block = read_date(tiles, geom, WGS84, ["B04"])
            a = pixel_clouds(fly, params, block.grid, block.valid)
            b = pixel_clouds(stored, params, block.grid, block.valid)
            assert np.array_equal(a.cloudy, b.cloudy), (feature["properties"]["name"], tiles[0].date)
            assert np.abs(a.probability - b.probability).max(initial=0) <= 0.5 / 255 + 1e-7
            compared += int(a.cloudy.size)
    assert compared > 100_000


def _body(polygon: dict, **cloud: object) -> dict:
    return {"geometry": polygon, "time": {"from": "2023-03-01", "to": "2023-11-30"}, "bands": ["B04", "B08"],
            "indices": ["NDVI"], "statistics": ["mean", "count", "p50"], "cloud": {"mode": "both", **cloud}}


def _lake() -> dict:
    return next(f["geometry"] for f in demo_polygons()["features"] if f["properties"]["name"] == "lake")


def test_a_query_reads_the_layers_and_says_so(layered: Path) -> None:
    """cloud.source auto reads the stored layers (source: layers) and gives the model's fraction, counts and
    masked statistics; the probability mean is within 1/255."""
    archive = Archive.open(layered)
    stored = query_timeseries(TimeSeriesRequest.from_dict(_body(_lake(), mask=True)), archive).to_dict()
    fly = query_timeseries(TimeSeriesRequest.from_dict(_body(_lake(), mask=True, source="model")), archive).to_dict()
    assert len(stored["series"]) == len(fly["series"]) > 20
    for a, b in zip(stored["series"], fly["series"]):
        assert a["cloud"]["source"] == "layers" and b["cloud"]["source"] == "model"
        assert a["cloud"]["fraction"] == b["cloud"]["fraction"]
        assert a["cloud"]["cloudy_pixels"] == b["cloud"]["cloudy_pixels"]
        assert abs(a["cloud"]["probability_mean"] - b["cloud"]["probability_mean"]) <= 0.5 / 255 + 1e-6
        assert a["bands"] == b["bands"] and a["indices"] == b["indices"]


def test_source_layers_without_layers_is_an_error_per_date() -> None:
    """cloud.source 'layers' on an archive without layers: every date says so and names polyfis clouds."""
    result = query_timeseries(TimeSeriesRequest.from_dict(_body(_lake(), source="layers")),
                              Archive.open(build_demo_archive()))
    assert result.series and all(d.error and "polyfis clouds" in d.error for d in result.series)


def _tile_pixels_cells(item_json: Path, polygon: dict, k: int) -> np.ndarray:
    """Flat index, on the tile's cells of k x k 10 m pixels, of the cell holding each pixel centre inside the
    polygon (pixel-centre rule), computed with rasterio's rasteriser."""
    with rasterio.open(item_json.parent / "B02.tif") as ref:
        transform, rows, cols = ref.transform, ref.height, ref.width
        crs = ref.crs
    geom = reproject(shape(polygon), WGS84, crs)
    inside = geometry_mask([mapping(geom)], (rows, cols), transform, invert=True)
    r, c = np.nonzero(inside)
    return (r // k) * -(-cols // k) + c // k


def _item_of(root: Path, date: str) -> Path:
    return next(p for p in _items(root) if f"_{date.replace('-', '')}T" in p.name)


def test_a_custom_mask_is_built_from_clp(layered: Path) -> None:
    """Threshold 0.3, opening 1, minimum size 3 cells, radii 2 and 1: the fraction equals the mask built here
    from the CLP file with s2cloudless's averaging, scikit-image's morphology and s2cloudless's dilation."""
    cloud = {"threshold": 0.3, "average_over": 2, "dilation_size": 1, "opening_size": 1, "min_cloud_size": 3,
             "source": "layers"}
    archive = Archive.open(layered)
    lake = _lake()
    result = query_timeseries(TimeSeriesRequest.from_dict(_body(lake, **cloud)), archive).to_dict()
    checked = 0
    for entry in result["series"]:
        item_json = _item_of(layered, entry["date"])
        with rasterio.open(item_json.parent / "CLP.tif") as src, rasterio.open(item_json.parent / "CLM.tif") as m:
            p, valid = src.read(1).astype(np.float32) / np.float32(255), m.read(1) != 255
        detector = S2PixelCloudDetector(threshold=0.3, average_over=2, dilation_size=None, all_bands=False)
        mask = detector.get_mask_from_prob(np.where(valid, p, 0)[np.newaxis])[0].astype(bool)
        mask = morphology.opening(mask, morphology.disk(1))
        mask = morphology.remove_small_objects(mask, max_size=2, connectivity=2)
        mask = cv2.dilate(mask.astype(np.uint8), cv2_disk(1)).astype(bool) & valid
        cells = _tile_pixels_cells(item_json, lake, 16)
        assert entry["cloud"]["cloudy_pixels"] == int(mask.ravel()[cells].sum()), entry["date"]
        checked += int(mask.ravel()[cells].sum() > 0)
    assert checked >= 3  # dates where the custom mask covers part of the lake


def test_another_cell_size_resamples_the_stored_clp(layered: Path) -> None:
    """cloud.resolution 80 from the layers: each 80 m cell takes the 160 m cell holding its centre, then the
    mask is made on the 80 m cells."""
    archive = Archive.open(layered)
    lake = _lake()
    result = query_timeseries(TimeSeriesRequest.from_dict(_body(lake, resolution=80, source="layers")),
                              archive).to_dict()
    detector = S2PixelCloudDetector(threshold=0.4, average_over=4, dilation_size=2, all_bands=False)
    for entry in result["series"]:
        item_json = _item_of(layered, entry["date"])
        with rasterio.open(item_json.parent / "CLP.tif") as src, rasterio.open(item_json.parent / "CLM.tif") as m:
            p = np.repeat(np.repeat(src.read(1).astype(np.float32) / np.float32(255), 2, 0), 2, 1)
            valid = np.repeat(np.repeat(m.read(1) != 255, 2, 0), 2, 1)
        # the tile's 504 px make 63 cells of 80 m: drop the 64th row and column the 160 m cells cover
        p, valid = p[:63, :63], valid[:63, :63]
        mask = detector.get_mask_from_prob(np.where(valid, p, 0)[np.newaxis])[0].astype(bool) & valid
        assert entry["cloud"]["cloudy_pixels"] == int(mask.ravel()[_tile_pixels_cells(item_json, lake, 8)].sum())


def test_a_batch_in_pixel_mode_reads_the_layers_vectorised(layered: Path, tmp_path: Path) -> None:
    """With stored layers a pixel-mode batch takes the vectorised path and gives each polygon's time series."""
    archive = Archive.open(layered)
    features = demo_polygons()["features"]
    polygons = [BatchPolygon(f["properties"]["name"], shape(f["geometry"])) for f in features]
    options = {"bands": ["B04"], "indices": ["NDVI"], "statistics": ["mean", "count"],
               "cloud": {"mode": "both", "mask": True}}
    plan = plan_batch(archive, polygons, batch_time("2023-03-01", "2023-08-31"), batch_options(options))
    by_id = {a.id: a for a in archive.acquisitions}
    assert all(vectorised(plan.options, [by_id[t] for t in task.tiles]) for task in plan.tasks)
    table, _ = run_plan(plan, archive=archive)
    rows = table.to_pylist()
    for feature in features:
        name = feature["properties"]["name"]
        body = {"geometry": feature["geometry"], "time": {"from": "2023-03-01", "to": "2023-08-31"}, **options}
        series = query_timeseries(TimeSeriesRequest.from_dict(body), archive).to_dict()["series"]
        mine = [r for r in rows if r["id"] == name]
        assert [r["date"].isoformat() for r in mine] == [d["date"] for d in series], name
        for row, entry in zip(mine, series):
            assert row["cloud_fraction"] == pytest.approx(entry["cloud"]["fraction"], abs=1e-12)
            assert row["cloudy_pixels"] == entry["cloud"]["cloudy_pixels"]
            assert row["cloud_source"] == "layers"
            expected = entry["bands"]["B04"]["mean"]  # None where every pixel is masked
            assert row["B04_mean"] == (None if expected is None else pytest.approx(expected, rel=1e-9))
            assert row["B04_count"] == entry["bands"]["B04"]["count"]


def test_the_run_is_idempotent_resumable_and_incremental(layered: Path, tmp_path: Path) -> None:
    """A second run stores nothing; a removed layer and a new item are computed by the next run only."""
    root = tmp_path / "archive"
    shutil.copytree(layered, root)
    again = store_cloud_layers(root)
    assert (again.done, again.skipped) == (0, 37)
    first = _items(root)[0]
    before = (first.parent / "CLP.tif").read_bytes()
    (first.parent / "CLM.tif").unlink()
    resumed = store_cloud_layers(root)
    assert (resumed.done, resumed.skipped) == (1, 36)
    assert (first.parent / "CLP.tif").read_bytes() == before
    forced = store_cloud_layers(root, start="2023-06-01", end="2023-06-30", force=True)
    assert forced.items == forced.done == 3


def test_two_runs_at_once_compute_each_item_once(tmp_path: Path) -> None:
    """Two `polyfis clouds` processes on one archive: every item is computed by exactly one of them."""
    root = tmp_path / "archive"
    shutil.copytree(build_demo_archive(), root)
    cmd = [sys.executable, "-m", "polyfis", "clouds", "--archive", str(root), "--no-progress"]
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    done = [int(line.split(" items computed")[0].split()[-1]) for out in outputs for line in out.splitlines()
            if " items computed" in line]
    assert sum(done) == 37, outputs
    assert all((p.parent / "CLM.tif").is_file() for p in _items(root))


def test_a_broken_item_fails_alone(tmp_path: Path) -> None:
    """A corrupt band file: that item is reported failed with its reason, the others are stored, exit code 1."""
    root = tmp_path / "archive"
    shutil.copytree(build_demo_archive(), root)
    broken = _items(root)[3]
    (broken.parent / "B08.tif").write_bytes(b"not a tiff")
    proc = subprocess.run([sys.executable, "-m", "polyfis", "clouds", "--archive", str(root), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "36 items computed" in proc.stderr and "1 failed" in proc.stderr
    assert f"failed: {broken.parent.name}: " in proc.stderr and "B08" in proc.stderr
    assert not (broken.parent / "CLP.tif").exists()


def test_the_cli_refuses_a_remote_archive() -> None:
    proc = subprocess.run([sys.executable, "-m", "polyfis", "clouds", "--archive", "http://127.0.0.1:9/collection.json",
                           "--no-progress"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "local archive folder" in proc.stderr


CLOUD_SCRIPT = """//VERSION=3
function setup() {
  return {input: [{bands: ["CLP", "CLM", "dataMask"]}],
          output: [{id: "clouds", bands: 2}, {id: "dataMask", bands: 1}]};
}
function evaluatePixel(samples) {
  return {clouds: [samples.CLP, samples.CLM], dataMask: [samples.dataMask]};
}
"""


def _statistical(lake: dict) -> dict:
    utm = mapping(reproject(shape(lake), WGS84, CRS.from_epsg(32633)))
    return {"input": {"bounds": {"geometry": utm, "properties": {"crs": "http://www.opengis.net/def/crs/EPSG/0/32633"}},
                      "data": [{"type": "sentinel-2-l1c"}]},
            "aggregation": {"timeRange": {"from": "2023-03-01T00:00:00Z", "to": "2023-07-31T23:59:59Z"},
                            "aggregationInterval": {"of": "P1D"}, "resx": 10, "resy": 10, "evalscript": CLOUD_SCRIPT},
            "calculations": {"default": {"statistics": {"default": {"percentiles": {"k": [50, 90]}}}}}}


def test_fis_and_the_statistical_api_read_the_layers(layered: Path) -> None:
    """FIS's CLP/CLM layers and the Statistical API's CLP/CLM inputs answer the same from the stored layers as
    from the model: CLP is round(255 p) either way, so the numbers are identical."""
    from service import create_app

    lake = _lake()
    stored = create_app({"archive": str(layered)}).test_client()
    fly = create_app({"archive": str(build_demo_archive())}).test_client()
    wkt = shape(lake).wkt
    for layer in ("CLP", "CLM"):
        params = {"LAYER": layer, "CRS": "CRS:84", "TIME": "2023-03-01/2023-11-30", "GEOMETRY": wkt}
        a, b = stored.get("/ogc/fis", query_string=params), fly.get("/ogc/fis", query_string=params)
        assert a.status_code == b.status_code == 200
        assert a.json == b.json and len(a.json["C0"]) > 10
    a = stored.post("/api/v1/statistics", json=_statistical(lake))
    b = fly.post("/api/v1/statistics", json=_statistical(lake))
    assert a.status_code == b.status_code == 200
    assert a.json == b.json and len(a.json["data"]) > 5
    means = [m for d in a.json["data"] if isinstance(m := d["outputs"]["clouds"]["bands"]["B0"]["stats"]["mean"], float)]
    assert max(means) > 100 and min(means) < 20  # cloudy and clear dates among them


def test_a_dask_run_stores_the_same_layers_and_reports_progress(layered: Path, tmp_path: Path) -> None:
    """Two Dask worker processes store byte-identical layers to the in-process run, and the progress callback
    counts every item."""
    root = tmp_path / "archive"
    shutil.copytree(build_demo_archive(), root)
    seen: list[tuple[int, int]] = []
    summary = store_cloud_layers(root, workers=2, progress=lambda done, total: seen.append((done, total)))
    assert summary.done == 37 and not summary.failed
    assert seen[0] == (0, 37) and seen[-1] == (37, 37) and len(seen) == 38
    for item_json in _items(root):
        for name in ("CLP.tif", "CLM.tif"):
            with rasterio.open(item_json.parent / name) as a, \
                    rasterio.open(layered / "items" / item_json.parent.name / name) as b:
                assert np.array_equal(a.read(1), b.read(1)) and a.transform == b.transform
