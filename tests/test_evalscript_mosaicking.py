"""Multi-temporal evalscripts (mosaicking ORBIT and TILE) through the Statistical API on the demo archive,
checked against numpy over the archive's own COGs read with rasterio (not through polyfis's readers)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.features import geometry_mask
from shapely.geometry import mapping, shape
from shapely.ops import transform

from service import create_app
from stats.archive.synthetic import demo_polygons

#: The documentation's "maximum monthly NDVI" script, without the L2A-only SCL test.
MONTHLY_MAX_NDVI = """//VERSION=3
function setup() {
  return {
    input: [{bands: ["B04", "B08", "dataMask"]}],
    mosaicking: "ORBIT",
    output: [{id: "data", bands: ["monthly_max_ndvi"]}, {id: "dataMask", bands: 1}]
  };
}
function evaluatePixel(samples) {
  var max = 0;
  var hasData = 0;
  for (var i = 0; i < samples.length; i++) {
    if (samples[i].dataMask == 1 && samples[i].B04 + samples[i].B08 != 0) {
      hasData = 1;
      var ndvi = index(samples[i].B08, samples[i].B04);
      max = ndvi > max ? ndvi : max;
    }
  }
  return {data: [max], dataMask: [hasData]};
}
"""

#: Per tile: how many tiles saw the pixel, the mean red reflectance over them, and the red of the newest one.
TILE_COUNTS = """//VERSION=3
function setup() {
  return {input: [{bands: ["B04", "dataMask"]}], mosaicking: Mosaicking.TILE,
          output: [{id: "obs", bands: ["count", "mean_red", "newest_red"]}, {id: "dataMask", bands: 1}]};
}
function evaluatePixel(samples, scenes) {
  if (samples.length !== scenes.tiles.length) throw new Error("samples and scenes.tiles differ");
  let n = 0, sum = 0, newest = -1;
  for (let i = 0; i < samples.length; i++) {
    if (samples[i].dataMask === 1) {
      n += 1;
      sum += samples[i].B04;
      if (newest < 0) newest = samples[i].B04;
    }
  }
  return {obs: [n, n ? sum / n : 0, newest], dataMask: [n > 0 ? 1 : 0]};
}
"""

POLYGON = "field_wheat"


def polygon_wgs84() -> dict:
    (feature,) = [f for f in demo_polygons()["features"] if f["properties"]["name"] == POLYGON]
    return feature["geometry"]


def polygon_utm() -> dict:
    """The polygon in the tile's UTM zone, so that resx/resy are metres."""
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True).transform
    return mapping(transform(to_utm, shape(polygon_wgs84())))


def statistical_body(script: str, start: str, end: str, interval: str, order: str = "mostRecent") -> dict:
    return {"input": {"bounds": {"geometry": polygon_utm(),
                                 "properties": {"crs": "http://www.opengis.net/def/crs/EPSG/0/32633"}},
                      "data": [{"type": "sentinel-2-l1c", "dataFilter": {"mosaickingOrder": order}}]},
            "aggregation": {"timeRange": {"from": start, "to": end}, "aggregationInterval": {"of": interval},
                            "resx": 10, "resy": 10, "evalscript": script}}


def archive_reads(root: Path, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, dict[str, np.ndarray]]]:
    """Per item in [start, end), oldest first: harmonised B04/B08 reflectance and validity of the pixels whose
    centre is inside the polygon, read from the item's COGs with rasterio."""
    out = []
    for path in sorted((root / "items").glob("*/*.json")):
        item = json.loads(path.read_text())
        when = dt.datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))
        if not start <= when < end:
            continue
        offset = 1000 if item["properties"]["s2:processing_baseline"] >= "04.00" else 0
        stored = {}
        for band in ("B04", "B08"):
            with rasterio.open(path.parent / item["assets"][band]["href"]) as src:
                stored[band] = src.read(1).astype(np.float64)
                to_utm = Transformer.from_crs("EPSG:4326", src.crs, always_xy=True).transform
                inside = geometry_mask([mapping(transform(to_utm, shape(polygon_wgs84())))], out_shape=src.shape,
                                       transform=src.transform, invert=True)
        valid = (stored["B04"] > 0) & (stored["B08"] > 0)
        out.append((when, {"valid": valid[inside],
                           **{b: np.maximum(v - offset, 0)[inside] / 10000 for b, v in stored.items()}}))
    return out


def stats_of(values: np.ndarray) -> dict[str, float]:
    return {"min": values.min(), "max": values.max(), "mean": values.mean(), "stDev": values.std()}


@pytest.fixture(name="client", scope="module")
def fixture_client(demo_root: Path):
    return create_app({"archive": str(demo_root)}).test_client()


def test_monthly_maximum_ndvi_with_orbit_mosaicking(client, demo_root: Path) -> None:
    """Each month's statistics are those of the per-pixel maximum NDVI over the month's acquisitions."""
    answer = client.post("/api/v1/statistics", json=statistical_body(
        MONTHLY_MAX_NDVI, "2023-04-01T00:00:00Z", "2023-08-01T00:00:00Z", "P1M")).json
    assert answer["status"] == "OK", answer
    assert [d["interval"]["from"][:7] for d in answer["data"]] == ["2023-04", "2023-05", "2023-06", "2023-07"]
    for entry in answer["data"]:
        start = dt.datetime.fromisoformat(entry["interval"]["from"].replace("Z", "+00:00"))
        end = dt.datetime.fromisoformat(entry["interval"]["to"].replace("Z", "+00:00"))
        reads = archive_reads(demo_root, start, end)
        assert len(reads) >= 2  # a true multi-temporal interval
        best = np.zeros_like(reads[0][1]["B04"])
        seen = np.zeros(best.shape, dtype=bool)
        for _, r in reads:
            ndvi = np.where(r["valid"], (r["B08"] - r["B04"]) / np.where(r["valid"], r["B08"] + r["B04"], 1), 0)
            best = np.where(r["valid"] & (ndvi > best), ndvi, best)
            seen |= r["valid"]
        expected = stats_of(best[seen].astype(np.float32).astype(np.float64))
        stats = entry["outputs"]["data"]["bands"]["monthly_max_ndvi"]["stats"]
        assert stats["sampleCount"] - stats["noDataCount"] == int(seen.sum())
        for key, value in expected.items():
            assert stats[key] == pytest.approx(value, abs=1e-7), (entry["interval"], key)


@pytest.mark.parametrize("order", ["mostRecent", "leastRecent"])
def test_tile_mosaicking_gives_every_tile_and_follows_the_mosaicking_order(client, demo_root: Path,
                                                                          order: str) -> None:
    """Over a quarter: the number of tiles that saw each pixel, their mean red, and the red of the first tile
    in mosaicking order (the newest for mostRecent, the oldest for leastRecent)."""
    answer = client.post("/api/v1/statistics", json=statistical_body(
        TILE_COUNTS, "2023-04-01T00:00:00Z", "2023-07-01T00:00:00Z", "P3M", order)).json
    assert answer["status"] == "OK", answer
    (entry,) = answer["data"]
    reads = archive_reads(demo_root, dt.datetime(2023, 4, 1, tzinfo=dt.UTC), dt.datetime(2023, 7, 1, tzinfo=dt.UTC))
    if order == "mostRecent":
        reads = reads[::-1]
    valid = np.array([r["valid"] for _, r in reads])
    red = np.array([r["B04"] for _, r in reads])
    count = valid.sum(axis=0)
    seen = count > 0
    first = np.argmax(valid, axis=0)
    columns = {"count": count.astype(np.float64),
               "mean_red": np.where(valid, red, 0).sum(axis=0) / np.maximum(count, 1),
               "newest_red": red[first, np.arange(red.shape[1])]}
    bands = entry["outputs"]["obs"]["bands"]
    for name, values in columns.items():
        expected = stats_of(values[seen].astype(np.float32).astype(np.float64))
        for key, value in expected.items():
            assert bands[name]["stats"][key] == pytest.approx(value, abs=1e-7), (name, key)
    assert bands["count"]["stats"]["max"] == len(reads) >= 5


def test_pre_process_scenes_keeps_one_date_which_then_equals_that_date_alone(client) -> None:
    """An ORBIT script that keeps only 2023-05-05 gives, for the whole quarter, the statistics of that day's
    SIMPLE interval."""
    keep = MONTHLY_MAX_NDVI + """
function preProcessScenes(collections) {
  collections.scenes.orbits = collections.scenes.orbits.filter((o) => o.dateFrom.startsWith("2023-05-05"));
  return collections;
}"""
    (quarter,) = client.post("/api/v1/statistics", json=statistical_body(
        keep, "2023-04-01T00:00:00Z", "2023-07-01T00:00:00Z", "P3M")).json["data"]
    simple = MONTHLY_MAX_NDVI.replace('mosaicking: "ORBIT",', "").replace(
        "for (var i = 0; i < samples.length; i++)", "samples = [samples];\n  for (var i = 0; i < 1; i++)")
    days = client.post("/api/v1/statistics", json=statistical_body(
        simple, "2023-05-05T00:00:00Z", "2023-05-06T00:00:00Z", "P1D")).json["data"]
    assert [d["interval"]["from"] for d in days] == ["2023-05-05T00:00:00Z"]
    assert quarter["outputs"] == days[0]["outputs"]


def test_a_script_filtering_out_every_scene_leaves_its_interval_out(client) -> None:
    none = MONTHLY_MAX_NDVI + "\nfunction preProcessScenes(c) { c.scenes.orbits = []; return c; }"
    answer = client.post("/api/v1/statistics", json=statistical_body(
        none, "2023-04-01T00:00:00Z", "2023-07-01T00:00:00Z", "P1M")).json
    assert answer == {"status": "OK", "data": []}


def test_a_failing_pre_process_scenes_is_that_interval_s_error(client) -> None:
    broken = MONTHLY_MAX_NDVI + "\nfunction preProcessScenes(c) { throw new Error('no scenes today'); }"
    answer = client.post("/api/v1/statistics", json=statistical_body(
        broken, "2023-04-01T00:00:00Z", "2023-06-01T00:00:00Z", "P1M")).json
    assert answer["status"] == "FAILED"
    assert all("no scenes today" in d["error"]["message"] for d in answer["data"])


def test_tiles_on_other_grids_are_read_on_the_first_tile_s_grid(make_archive) -> None:
    """Two hand-made tiles holding the same DN, the newer one's grid 4 m east of the older one's. With
    mostRecent the newer tile's grid is the interval's: 3 x 4 pixel centres fall inside the polygon there (4 x 4
    on the older grid), and the older tile is sampled at those same centres, where it holds the same DN."""
    from conftest import S2_BANDS, X0, Y0, band_array, band_transform

    east = {b: (band_array(b), band_transform(b, x0=X0 + 4)) for b in S2_BANDS}
    root = make_archive([{"id": "old", "when": dt.datetime(2023, 3, 1, 10, tzinfo=dt.UTC)},
                         {"id": "new", "when": dt.datetime(2023, 3, 11, 10, tzinfo=dt.UTC), "bands": east}])
    script = """//VERSION=3
function setup() {
  return {input: [{bands: ["B04", "dataMask"], units: "DN"}], mosaicking: "TILE",
          output: [{id: "red", bands: ["newest", "oldest", "difference"]}, {id: "dataMask", bands: 1}]};
}
function evaluatePixel(samples) {
  return {red: [samples[0].B04, samples[1].B04, samples[0].B04 - samples[1].B04],
          dataMask: [samples[0].dataMask * samples[1].dataMask]};
}"""
    x0, x1, y0, y1 = X0 + 61, X0 + 97, Y0 - 49, Y0 - 11  # rows 1..4; columns 6..9 of the old grid
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    request = {"input": {"bounds": {"geometry": {"type": "Polygon", "coordinates": [ring]},
                                    "properties": {"crs": "http://www.opengis.net/def/crs/EPSG/0/32633"}},
                         "data": [{"type": "sentinel-2-l1c"}]},
               "aggregation": {"timeRange": {"from": "2023-03-01T00:00:00Z", "to": "2023-04-01T00:00:00Z"},
                               "aggregationInterval": {"of": "P1M"}, "resx": 10, "resy": 10, "evalscript": script}}
    answer = create_app({"archive": str(root)}).test_client().post("/api/v1/statistics", json=request).json
    assert answer["status"] == "OK", answer
    bands = answer["data"][0]["outputs"]["red"]["bands"]
    # the polygon spans x 61..97 m from the old origin: the old grid's centres at 65..95 m would give 4 columns,
    # the new grid's at 69, 79, 89 m give 3 (new and old columns 6..8)
    red = band_array("B04").astype(np.float64)[1:5, 6:9]
    for name in ("newest", "oldest"):
        stats = bands[name]["stats"]
        assert stats["sampleCount"] - stats["noDataCount"] == 12
        assert (stats["mean"], stats["min"], stats["max"]) == pytest.approx((red.mean(), red.min(), red.max()))
    assert bands["difference"]["stats"]["min"] == bands["difference"]["stats"]["max"] == 0
