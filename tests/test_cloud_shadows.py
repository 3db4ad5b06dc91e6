"""Cloud shadows: the detector's geometry, its rules, the demo truth, and the cloud.shadows option of a query."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import rasterio.features
import shapely
import yaml
from affine import Affine
from click.testing import CliRunner
from conftest import CRS_UTM, utm_box
from openapi_schema_validator import OAS30Validator
from pyproj import CRS
from rasterio.windows import from_bounds
from shapely.geometry import box, mapping, shape

from polyfis.cli import main
from service import create_app
from stats import Archive, TimeSeriesRequest, query_timeseries
from stats.archive.catalog import acquisition_from_item, group_by_date, sun_angles
from stats.archive.ingest import ingest
from stats.archive.synthetic import demo_polygons, load_ground_truth, load_truth_masks
from stats.bands import S2_BANDS
from stats.batch import BatchPolygon, compute_batch
from stats.clouds.cells import ProbabilityCache
from stats.clouds.model import default_model
from stats.clouds.shadow_masks import date_masks
from stats.clouds.shadows import (
    ShadowParameters,
    cast_shadows,
    detect_shadows,
    shadow_margin_m,
    shadow_offsets,
    sun_reach,
    water_mask,
)
from stats.clouds.store import store_cloud_layers
from stats.errors import IngestError, InvalidRequestError
from stats.geometry import reproject
from stats.request import Area, MaskParameters

#: The 40 m cloud mask the demo target is reached with (the default 160 m one is reported in bench/results),
#: scored by the model (stored layers would be 160 m cells).
MASK_40 = MaskParameters(40, 0.4, 2, 1, source="model")
CLOUD_40 = {"resolution": 40, "average_over": 2, "dilation_size": 1, "source": "model"}


def square(shape_: tuple[int, int], rows: slice, cols: slice) -> np.ndarray:
    out = np.zeros(shape_, dtype=bool)
    out[rows, cols] = True
    return out


# --- geometry -----------------------------------------------------------------------------------------


def test_a_square_cloud_casts_a_square_where_trigonometry_puts_it() -> None:
    """Sun in the south-east at 45 degrees, a cloud at 100 * sqrt(2) m: the shadow is 10 px north, 10 px west."""
    cloud = square((60, 60), slice(40, 45), slice(30, 35))
    height = 100 * math.sqrt(2)  # shadow length = height / tan(45) = 141.4 m = 10 px north + 10 px west
    params = ShadowParameters(height, height)
    offsets = shadow_offsets(params, azimuth=135.0, elevation=45.0, pixel_size=10.0)
    assert offsets.tolist() == [[-10, -10]]
    expected = square((60, 60), slice(30, 35), slice(20, 25))
    np.testing.assert_array_equal(cast_shadows(cloud, offsets), expected)

    nir = np.full((60, 60), 0.3)
    nir[30:35, 20:25] = 0.1  # the shade
    nir[0:5, 0:5] = 0.1  # dark ground far from any cloud's shadow: not shadow
    found = detect_shadows(cloud, nir, np.zeros_like(cloud), np.ones_like(cloud), pixel_size=10.0, azimuth=135.0,
                           elevation=45.0, params=params)
    np.testing.assert_array_equal(found, expected)


def test_a_range_of_heights_sweeps_the_shadow_along_the_sun_line() -> None:
    """Sun due south at 60 degrees, heights 100..300 m: the shadow runs from 57.7 to 173.2 m north of the cloud."""
    cloud = square((40, 10), slice(30, 31), slice(5, 6))
    params = ShadowParameters(100.0, 300.0)
    cast = cast_shadows(cloud, shadow_offsets(params, azimuth=180.0, elevation=60.0, pixel_size=10.0))
    near, far = 100 / math.tan(math.radians(60)) / 10, 300 / math.tan(math.radians(60)) / 10
    assert (round(near), round(far)) == (6, 17)
    rows = sorted(np.nonzero(cast[:, 5])[0].tolist())
    assert rows == list(range(30 - round(far), 30 - round(near) + 1))
    assert not cast[:, :5].any() and not cast[:, 6:].any()


def test_the_margin_reaches_towards_the_sun_as_far_as_the_highest_shadow() -> None:
    params = ShadowParameters(200.0, 4000.0)
    assert shadow_margin_m(params, 45.0) == pytest.approx(4000.0)
    assert shadow_margin_m(params, 30.0) == pytest.approx(4000.0 * math.sqrt(3))
    # sun in the south-east: the clouds shading a polygon are south-east of it, 4000 m away at 45 degrees
    left, top, right, bottom = sun_reach(params, 135.0, 45.0, 10.0)
    side = math.ceil(400 * math.sqrt(0.5))
    assert (left, top, right, bottom) == (1, 1, side + 1, side + 1)
    # sun due north-west (a southern summer morning... or any): the window grows left and up
    left, top, right, bottom = sun_reach(params, 315.0, 45.0, 10.0)
    assert (left, top, right, bottom) == (side + 1, side + 1, 1, 1)


def test_water_is_never_shadow() -> None:
    """A lake in the cast of a cloud is dark in B08 but has NDWI > 0.3: it is not flagged; the land beside is."""
    cloud = square((40, 40), slice(30, 35), slice(10, 20))
    params = ShadowParameters(100.0, 100.0)  # 100 m at 45 degrees, sun due south: 10 px north
    nir = np.full((40, 40), 0.3)
    green = np.full((40, 40), 0.08)
    nir[20:25, 10:20] = 0.08  # shade over land and lake
    nir[20:25, 10:15] = 0.02  # the lake: dark in B08, brighter in B03
    green[20:25, 10:15] = 0.06
    water = water_mask(green, nir)
    np.testing.assert_array_equal(water, square((40, 40), slice(20, 25), slice(10, 15)))
    found = detect_shadows(cloud, nir, water, np.ones_like(cloud), pixel_size=10.0, azimuth=180.0, elevation=45.0,
                           params=params)
    np.testing.assert_array_equal(found, square((40, 40), slice(20, 25), slice(15, 20)))


def test_shaded_land_is_not_taken_for_water() -> None:
    """In the shade the path radiance, strongest in green, lifts a field's NDWI above 0, but not above 0.3."""
    green, nir = np.array([0.075, 0.06]), np.array([0.06, 0.02])  # shaded field, lake
    assert ((green - nir) / (green + nir))[0] > 0
    assert water_mask(green, nir).tolist() == [False, True]


# --- the demo truth ------------------------------------------------------------------------------------


def scene_area(root: Path) -> Area:
    scene = load_ground_truth(root)["scene"]
    _, _, x0, _, _, y0 = scene["transform"]
    rows, cols = scene["shape"]
    return Area.parse(box(x0, y0 - rows * 10, x0 + cols * 10, y0), scene["crs"])


def test_the_demo_items_carry_the_truth_sun_angles(demo_root: Path) -> None:
    truth = load_ground_truth(demo_root)["dates"]
    archive = Archive.open(demo_root)
    assert len(archive.acquisitions) == len(truth)
    for acq in archive.acquisitions:
        day = truth[acq.date.isoformat()]
        assert acq.sun_azimuth == pytest.approx(day["sun_azimuth_deg"])
        assert acq.sun_elevation == pytest.approx(day["sun_elevation_deg"])
    item = json.loads(next((demo_root / "items").glob("*/*.json")).read_text())
    assert "https://stac-extensions.github.io/view/v1.0.0/schema.json" in item["stac_extensions"]


def test_the_shadow_mask_finds_the_demo_shadows_under_the_s2cloudless_mask(demo_root: Path) -> None:
    """Cumulus dates, the s2cloudless mask at 40 m as a query computes it: >= 85 % of the truth shadow (not
    water) found, <= 3 % of the truth-clear pixels flagged."""
    truth_dates = load_ground_truth(demo_root)["dates"]
    cumulus = {d for d, v in truth_dates.items() if v["sky"] == "cumulus" and v["shadow_cover"] > 0}
    assert len(cumulus) == 7
    area = scene_area(demo_root)
    model, cache = default_model(), ProbabilityCache()
    bands = ["B01", "B02", "B03", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12"]
    found = shadow = flagged = clear = 0
    for tiles in group_by_date(Archive.open(demo_root).acquisitions):
        day = tiles[0].date.isoformat()
        if day not in cumulus:
            continue
        truth = load_truth_masks(demo_root, day)
        masks = date_masks(tiles, area, bands, MASK_40, ShadowParameters(), model, cache)
        assert masks.shadow is not None and masks.shadow.shape == truth["shadow"].shape
        target = truth["shadow"] & ~truth["water"]
        truly_clear = ~truth["cloud"] & ~truth["shadow"] & ~truth["nodata"]
        assert not (masks.shadow & truth["water"]).any()
        found += int((masks.shadow & target).sum())
        shadow += int(target.sum())
        flagged += int((masks.shadow & truly_clear).sum())
        clear += int(truly_clear.sum())
    assert found / shadow >= 0.85
    assert flagged / clear <= 0.03


# --- queries -------------------------------------------------------------------------------------------


def polygon(name: str) -> dict:
    return next(f["geometry"] for f in demo_polygons()["features"] if f["properties"]["name"] == name)


def test_cloud_mask_with_shadows_leaves_the_shadow_pixels_out_of_the_statistics(demo_root: Path) -> None:
    """The wheat field on 2023-12-21 (41 % shadow in the truth): the query's B04 mean equals the mean of the
    B04 file over the field's pixels outside the date's cloud and shadow masks."""
    geometry = polygon("field_wheat")
    request = TimeSeriesRequest.from_dict({
        "geometry": geometry, "time": {"from": "2023-12-21", "to": "2023-12-21"}, "bands": ["B04"],
        "statistics": ["mean", "count"], "cloud": {"mode": "pixel", "mask": True, "shadows": True, **CLOUD_40}})
    archive = Archive.open(demo_root)
    result = query_timeseries(request, archive, cache=ProbabilityCache())
    (entry,) = result.to_dict()["series"]

    tiles = group_by_date(archive.search(request.area.wgs84, request.time.start, request.time.end))[0]
    masks = date_masks(tiles, request.area, ["B01", "B02", "B03", "B04", "B05", "B08", "B8A", "B09", "B10", "B11",
                                             "B12"], MASK_40, ShadowParameters(), default_model())
    assert masks.shadow is not None
    grid = masks.grid
    field = reproject(shape(geometry), CRS.from_epsg(4326), grid.crs)
    inside = rasterio.features.geometry_mask([mapping(field)], out_shape=grid.shape, transform=grid.transform,
                                             invert=True)
    keep = inside & masks.valid & ~masks.cloud & ~masks.shadow
    bounds = rasterio.transform.array_bounds(*grid.shape, grid.transform)
    with rasterio.open(Path(tiles[0].assets["B04"])) as src:
        dn = src.read(1, window=from_bounds(*bounds, transform=src.transform)).astype(np.float64)
    offset = tiles[0].dn_offset
    shaded = inside & masks.valid & masks.shadow
    assert shaded.sum() > 0.2 * inside.sum()  # the date is a real test: a fifth of the field or more in shadow
    assert entry["cloud"]["shadow_pixels"] == int(shaded.sum())
    assert entry["cloud"]["shadow_fraction"] == pytest.approx(shaded.sum() / (inside & masks.valid).sum(), abs=1e-4)
    assert entry["bands"]["B04"]["count"] == int(keep.sum())
    assert entry["bands"]["B04"]["mean"] == pytest.approx(((dn[keep] - offset) / 10000).mean(), abs=1e-4)
    # without the mask the mean is the field's whole: different, so the test can tell
    whole = ((dn[inside & masks.valid] - offset) / 10000).mean()
    assert abs(whole - entry["bands"]["B04"]["mean"]) > 1e-3


def test_a_shadow_cast_from_outside_the_polygon_is_found(demo_root: Path) -> None:
    """A polygon on the shadow of a cloud that lies outside it: the window reaches the cloud."""
    archive = Archive.open(demo_root)
    truth = load_ground_truth(demo_root)["polygons"]["field_wheat"]["dates"]["2023-12-21"]
    assert truth["cloud_fraction"] == 0 and truth["shadow_fraction"] > 0.3  # the clouds are all outside
    result = query_timeseries(TimeSeriesRequest.from_dict({
        "geometry": polygon("field_wheat"), "time": {"from": "2023-12-21", "to": "2023-12-21"}, "bands": ["B04"],
        "cloud": {"mode": "pixel", "shadows": True, **CLOUD_40}}), archive, cache=ProbabilityCache())
    (entry,) = result.to_dict()["series"]
    assert entry["cloud"]["fraction"] == 0
    assert entry["cloud"]["shadow_fraction"] == pytest.approx(truth["shadow_fraction"], abs=0.05)


def test_the_csv_has_the_shadow_columns(demo_root: Path) -> None:
    result = query_timeseries(TimeSeriesRequest.from_dict({
        "geometry": polygon("field_wheat"), "time": {"from": "2023-12-11", "to": "2023-12-21"}, "bands": ["B04"],
        "cloud": {"shadows": True}}), Archive.open(demo_root), cache=ProbabilityCache())
    rows = list(csv.DictReader(io.StringIO(result.to_csv())))
    series = result.to_dict()["series"]
    assert [r["date"] for r in rows] == [e["date"] for e in series] and len(rows) >= 2
    for row, entry in zip(rows, series):
        assert float(row["shadow_fraction"]) == pytest.approx(entry["cloud"]["shadow_fraction"])
        assert int(row["shadow_pixels"]) == entry["cloud"]["shadow_pixels"]
        assert row["shadow_warning"] == ""
    assert any(float(r["shadow_fraction"]) > 0.1 for r in rows)
    plain = query_timeseries(TimeSeriesRequest.from_dict({
        "geometry": polygon("field_wheat"), "time": {"from": "2023-12-21", "to": "2023-12-21"}, "bands": ["B04"]}),
        Archive.open(demo_root), cache=ProbabilityCache())
    assert "shadow_fraction" not in plain.columns()


def test_a_date_without_sun_angles_warns_and_gives_no_fraction(simple_archive: Path) -> None:
    request = TimeSeriesRequest.from_dict({
        "geometry": {"type": "Polygon", "coordinates": [utm_box(2, 2, 10, 10)]}, "crs": CRS_UTM,
        "time": {"from": "2023-01-01", "to": "2023-01-31"}, "bands": ["B04"],
        "cloud": {"mode": "pixel", "shadows": True, "resolution": 20}})
    (entry,) = query_timeseries(request, Archive.open(simple_archive), cache=ProbabilityCache()).to_dict()["series"]
    cloud = entry["cloud"]
    assert cloud["shadow_fraction"] is None and cloud["shadow_pixels"] is None
    assert "view:sun_azimuth" in cloud["shadow_warning"] and "view:sun_elevation" in cloud["shadow_warning"]
    assert "s2:mean_solar_zenith" in cloud["shadow_warning"]
    assert cloud["fraction"] is not None  # the cloud mask itself is still given


@pytest.mark.parametrize(("cloud", "expected"), [
    ({"shadows": "yes"}, "cloud.shadows: expected true or false, got 'yes'"),
    ({"shadow_heights_m": [200, 4000]}, "cloud.shadow_heights_m: sets the heights"),
    ({"shadows": True, "shadow_heights_m": 3000}, "cloud.shadow_heights_m: expected [min, max]"),
    ({"shadows": True, "shadow_heights_m": [4000, 200]}, "whose min is above its max"),
    ({"shadows": True, "shadow_heights_m": [-5, 200]}, "expected a number between 0 and 15000 (m)"),
])
def test_bad_shadow_options_are_rejected_naming_the_field(cloud: dict, expected: str) -> None:
    body = {"geometry": polygon("field_wheat"), "time": {"from": "2023-01-01", "to": "2023-01-31"}, "cloud": cloud}
    with pytest.raises(InvalidRequestError) as info:
        TimeSeriesRequest.from_dict(body)
    assert expected in str(info.value)


def test_shadows_imply_the_per_pixel_mask_and_their_heights_are_parsed() -> None:
    body = {"geometry": polygon("field_wheat"), "time": {"from": "2023-01-01", "to": "2023-01-31"},
            "cloud": {"shadows": True, "shadow_heights_m": [500, 2500]}}
    options = TimeSeriesRequest.from_dict(body).options
    assert options.pixel_clouds and options.cloud.pixel
    assert options.cloud.shadow_parameters == ShadowParameters(500.0, 2500.0)
    assert "B03" in options.read_bands


# --- sun angles in metadata ----------------------------------------------------------------------------


def test_earth_search_mean_solar_angles_are_read() -> None:
    assert sun_angles({"s2:mean_solar_azimuth": 160.0, "s2:mean_solar_zenith": 35.5}) == (160.0, 54.5)
    assert sun_angles({"view:sun_azimuth": 150.0, "view:sun_elevation": 40.0,
                       "s2:mean_solar_zenith": 10.0}) == (150.0, 40.0)
    assert sun_angles({"view:sun_azimuth": "south"}) == (None, None)


MTD_TL = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-1C_Tile_ID xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-1C_Tile_Metadata.xsd">
  <n1:General_Info><TILE_ID>S2A_OPER_MSI_L1C_TL_TEST_20230105T100031_A000001_T33TWM_N04.00</TILE_ID></n1:General_Info>
  <n1:Geometric_Info>
    <Tile_Angles>
      <Mean_Sun_Angle>
        <ZENITH_ANGLE unit="deg">67.25</ZENITH_ANGLE>
        <AZIMUTH_ANGLE unit="deg">161.5</AZIMUTH_ANGLE>
      </Mean_Sun_Angle>
    </Tile_Angles>
  </n1:Geometric_Info>
</n1:Level-1C_Tile_ID>
"""


def write_band(path: Path, tags: dict[str, str] | None = None) -> None:
    profile = {"driver": "GTiff", "width": 4, "height": 4, "count": 1, "dtype": "uint16", "crs": "EPSG:32633",
               "transform": Affine(10, 0, 500000, 0, -10, 5000040)}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((1, 4, 4), 1234, dtype=np.uint16))
        if tags:
            dst.update_tags(**tags)


def item_properties(archive: Path) -> dict:
    (item,) = (archive / "items").glob("*/*.json")
    return dict(json.loads(item.read_text())["properties"])


def test_ingest_reads_the_mean_sun_angles_of_a_safe_granule(tmp_path: Path) -> None:
    granule = tmp_path / "S2A_MSIL1C_20230105T100031_N0400_R122_T33TWM.SAFE" / "GRANULE" / "L1C_T33TWM_A000001"
    (granule / "IMG_DATA").mkdir(parents=True)
    (granule / "MTD_TL.xml").write_text(MTD_TL)
    for band in ("B04", "B08"):
        write_band(granule / "IMG_DATA" / f"T33TWM_20230105T100031_{band}.tif")
    ingest([tmp_path / "S2A_MSIL1C_20230105T100031_N0400_R122_T33TWM.SAFE"], tmp_path / "archive")
    props = item_properties(tmp_path / "archive")
    assert props["view:sun_azimuth"] == 161.5
    assert props["view:sun_elevation"] == pytest.approx(90 - 67.25)
    (acq,) = Archive.open(tmp_path / "archive").acquisitions
    assert (acq.sun_azimuth, acq.sun_elevation) == (161.5, pytest.approx(22.75))


def test_ingest_reads_sun_angle_tags(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for band in ("B04", "B08"):
        write_band(source / f"scene_20230105T100031_{band}.tif", {"SUN_AZIMUTH": "150.25", "SUN_ELEVATION": "41"})
    ingest([source], tmp_path / "archive")
    props = item_properties(tmp_path / "archive")
    assert (props["view:sun_azimuth"], props["view:sun_elevation"]) == (150.25, 41.0)


def test_ingest_without_sun_angles_writes_none(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    write_band(source / "scene_20230105T100031_B04.tif")
    ingest([source], tmp_path / "archive")
    assert not any(k.startswith("view:") for k in item_properties(tmp_path / "archive"))


def test_a_granule_metadata_without_mean_sun_angles_is_an_ingest_error(tmp_path: Path) -> None:
    granule = tmp_path / "GRANULE" / "L1C_T33TWM"
    (granule / "IMG_DATA").mkdir(parents=True)
    (granule / "MTD_TL.xml").write_text("<Level-1C_Tile_ID><Geometric_Info/></Level-1C_Tile_ID>")
    write_band(granule / "IMG_DATA" / "T33TWM_20230105T100031_B04.tif")
    with pytest.raises(IngestError, match="Mean_Sun_Angle"):
        ingest([tmp_path / "GRANULE"], tmp_path / "archive")


def test_acquisition_from_an_item_without_angles_has_none(simple_archive: Path) -> None:
    root = pystac.read_file(str(simple_archive / "collection.json"))
    item = next(iter(root.get_items(recursive=True)))
    acq = acquisition_from_item(item)
    assert acq.sun_azimuth is None and acq.sun_elevation is None
    assert acq.datetime.tzinfo is not None and set(acq.assets) == set(S2_BANDS)
    assert dt.date(2023, 1, 1) <= acq.date


# --- the routes and the command line -------------------------------------------------------------------


def test_the_native_route_answers_cloud_shadows_as_its_contract_says(demo_root: Path) -> None:
    spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "service" / "openapi.yaml").read_text())
    client = create_app({"archive": str(demo_root)}).test_client()
    body = {"geometry": polygon("field_wheat"), "time": {"from": "2023-12-21", "to": "2023-12-21"}, "bands": ["B04"],
            "cloud": {"shadows": True, "shadow_heights_m": [200, 3000], **CLOUD_40}}
    response = client.post("/api/v1/timeseries", json=body)
    assert response.status_code == 200, response.json
    OAS30Validator({"$ref": "#/components/schemas/TimeSeriesResponse", "components": spec["components"]}).validate(
        response.json)
    (entry,) = response.json["series"]
    truth = load_ground_truth(demo_root)["polygons"]["field_wheat"]["dates"]["2023-12-21"]
    assert entry["cloud"]["shadow_fraction"] == pytest.approx(truth["shadow_fraction"], abs=0.05)
    bad = client.post("/api/v1/timeseries", json={**body, "cloud": {"shadows": True, "shadow_heights_m": [1]}})
    assert bad.status_code == 400
    assert "cloud.shadow_heights_m: expected [min, max]" in bad.json["error"]["message"]
    assert "[1]" in bad.json["error"]["message"]


def test_the_command_line_takes_the_shadow_options(demo_root: Path) -> None:
    result = CliRunner().invoke(main, [
        "query", "--archive", str(demo_root), "--geometry", json.dumps(polygon("field_wheat")), "--from",
        "2023-12-21", "--to", "2023-12-21", "--bands", "B04", "--shadows", "--shadow-heights", "200,3000",
        "--cloud-resolution", "40", "--average-over", "2", "--dilation-size", "1", "--cloud-source", "model"])
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.output)["series"]
    truth = load_ground_truth(demo_root)["polygons"]["field_wheat"]["dates"]["2023-12-21"]
    assert entry["cloud"]["shadow_fraction"] == pytest.approx(truth["shadow_fraction"], abs=0.05)
    bad = CliRunner().invoke(main, [
        "query", "--archive", str(demo_root), "--geometry", json.dumps(polygon("field_wheat")), "--from",
        "2023-12-21", "--to", "2023-12-21", "--shadows", "--shadow-heights", "low,high"])
    assert bad.exit_code == 1 and "cloud.shadow_heights_m" in bad.output and "'low,high'" in bad.output


def test_shadows_from_the_stored_cloud_layers_equal_those_of_the_model(demo_root: Path, tmp_path: Path) -> None:
    """With the CLP/CLM layers stored (160 m, Sentinel Hub's post-processing), the shadows found from them equal
    the shadows found from cells scored on the fly, pixel for pixel in count."""
    copy = tmp_path / "archive"
    shutil.copytree(demo_root, copy)
    summary = store_cloud_layers(copy, start="2023-12-21", end="2023-12-21")
    assert summary.done == 1 and not summary.failed
    answers = {}
    for source in ("layers", "model"):
        result = query_timeseries(TimeSeriesRequest.from_dict({
            "geometry": polygon("field_wheat"), "time": {"from": "2023-12-21", "to": "2023-12-21"}, "bands": ["B04"],
            "statistics": ["mean"], "cloud": {"mode": "pixel", "mask": True, "shadows": True, "source": source}}),
            Archive.open(copy), cache=ProbabilityCache())
        (entry,) = result.to_dict()["series"]
        answers[source] = entry
    assert answers["layers"]["cloud"]["source"] == "layers" and answers["model"]["cloud"]["source"] == "model"
    assert answers["layers"]["cloud"]["shadow_pixels"] == answers["model"]["cloud"]["shadow_pixels"] > 0
    assert answers["layers"]["bands"]["B04"]["mean"] == pytest.approx(answers["model"]["bands"]["B04"]["mean"])


def test_a_batch_gives_each_polygon_its_time_series_shadow_columns(demo_root: Path, simple_archive: Path) -> None:
    """Typed columns (shadow_pixels an integer, shadow_warning text) equal to the polygon's own time series."""
    wheat = shape(polygon("field_wheat"))
    options = {"bands": ["B04"], "statistics": ["mean"], "cloud": {"shadows": True, **CLOUD_40}}
    table = compute_batch(demo_root, [BatchPolygon("wheat", wheat, "EPSG:4326")], "2023-12-21", "2023-12-21",
                          options=options)
    assert str(table.schema.field("shadow_pixels").type) == "int64"
    assert str(table.schema.field("shadow_warning").type) == "string"
    (row,) = table.to_pylist()
    alone = query_timeseries(TimeSeriesRequest.from_dict({
        "geometry": polygon("field_wheat"), "time": {"from": "2023-12-21", "to": "2023-12-21"}, **options}),
        Archive.open(demo_root), cache=ProbabilityCache())
    (entry,) = alone.to_dict()["series"]
    assert row["shadow_pixels"] == entry["cloud"]["shadow_pixels"] > 0
    assert row["shadow_fraction"] == pytest.approx(entry["cloud"]["shadow_fraction"])
    unlit = compute_batch(simple_archive, [BatchPolygon(1, shapely.Polygon(utm_box(0, 0, 12, 12)), CRS_UTM)],
                          "2023-01-01", "2023-01-31", options={"bands": ["B04"], "cloud": {"shadows": True}})
    (row,) = unlit.to_pylist()
    assert row["shadow_fraction"] is None and "view:sun_elevation" in row["shadow_warning"]
