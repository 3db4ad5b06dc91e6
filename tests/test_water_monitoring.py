"""Water monitoring as BlueDot does it: an outline grown by a buffer, Otsu along Canny edges, per-date status,
the extent polygon and the level, checked against the demo lake's true extent and images worked out by hand."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from conftest import CRS_UTM, utm_box
from pyproj import CRS, Transformer
from rasterio.features import geometry_mask
from shapely.geometry import box, mapping, shape
from test_batch_http import wait_until_finished

from polyfis.cli import main
from service import create_app
from stats import Archive, TimeSeriesRequest, query_timeseries
from stats.archive.synthetic import demo_polygons, load_ground_truth, load_truth_masks
from stats.batch import run_batch
from stats.errors import InvalidRequestError
from stats.indices import BUILTIN_INDICES, resolve_index
from stats.water import WaterOptions, canny_otsu
from stats.water.outline import analysed_region
from stats.water.threshold import MIN_EDGE_PIXELS, region_otsu

YEAR = {"from": "2023-01-01", "to": "2023-12-31"}
BUFFER_M = 100.0


def _polygon(name: str) -> dict:
    return next(f["geometry"] for f in demo_polygons()["features"] if f["properties"]["name"] == name)


class TruthGrid:
    """The demo's 10 m truth grid, and geometries projected onto it with pyproj alone."""

    def __init__(self, root: Path) -> None:
        with rasterio.open(root / "truth" / "landcover.tif") as src:
            self.transform, self.shape, self.crs = src.transform, src.shape, src.crs
        self._to_grid = Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)

    def project(self, lonlat: shapely.Geometry) -> shapely.Geometry:
        return shapely.transform(lonlat, lambda xy: np.column_stack(self._to_grid.transform(xy[:, 0], xy[:, 1])))

    def mask(self, geom: shapely.Geometry) -> np.ndarray:
        """Pixels whose centre lies inside ``geom`` (in the grid's CRS)."""
        return geometry_mask([geom], out_shape=self.shape, transform=self.transform, invert=True)


@pytest.fixture(name="truth_grid", scope="module")
def fixture_truth_grid(demo_root: Path) -> TruthGrid:
    return TruthGrid(demo_root)


@pytest.fixture(name="lake_series", scope="module")
def fixture_lake_series(demo_root: Path) -> list[dict]:
    """A year of the lake monitored as BlueDot does: the lake polygon as the outline, grown by 100 m."""
    body = {"geometry": _polygon("lake"), "time": YEAR, "bands": ["B03"], "statistics": ["mean"],
            "water": {"buffer_m": BUFFER_M}}
    return query_timeseries(TimeSeriesRequest.from_dict(body), Archive.open(demo_root)).to_dict()["series"]


def _region_truth(demo_root: Path, grid: TruthGrid, day: str) -> dict[str, float | np.ndarray]:
    """The truth over the lake's region (outline + 100 m): water pixels, no-data and cloud shares."""
    region = grid.mask(grid.project(shape(_polygon("lake"))).buffer(BUFFER_M))
    masks = load_truth_masks(demo_root, day)
    valid = region & ~masks["nodata"]
    return {"water": masks["water"] & region, "nodata": float((masks["nodata"] & region).sum() / region.sum()),
            "cloud": float((masks["cloud"] & valid).sum() / max(valid.sum(), 1))}


def test_clear_dates_match_the_true_lake_extent(demo_root: Path, lake_series: list[dict],
                                                truth_grid: TruthGrid) -> None:
    """On every clear date the area is within 5 % of the true water area and the extent polygon overlaps the
    true water pixels with IoU >= 0.9; level is area over the outline's area, computed here with pyproj."""
    dates = load_ground_truth(demo_root)["dates"]
    nominal = truth_grid.project(shape(_polygon("lake"))).area
    checked = 0
    for entry in lake_series:
        truth = _region_truth(demo_root, truth_grid, entry["date"])
        if dates[entry["date"]]["sky"] != "clear" or truth["nodata"] > 0:
            continue
        water = entry["water"]
        true_water = truth["water"]
        assert isinstance(true_water, np.ndarray)
        true_area = 100.0 * true_water.sum()
        assert water["status"] == "OK" and water["threshold_method"] == "canny_otsu", entry["date"]
        assert water["area_m2"] == pytest.approx(true_area, rel=0.05), entry["date"]
        extent = shape(water["extent"])
        assert extent.geom_type in ("Polygon", "MultiPolygon") and extent.is_valid
        drawn = truth_grid.mask(truth_grid.project(extent))
        iou = (drawn & true_water).sum() / (drawn | true_water).sum()
        assert iou >= 0.9, (entry["date"], iou)
        assert water["nominal_area_m2"] == pytest.approx(nominal, rel=1e-6)
        assert water["level"] == pytest.approx(water["area_m2"] / nominal, rel=1e-6)
        checked += 1
    assert checked >= 15
    levels = [e["water"]["level"] for e in lake_series if e["water"]["status"] == "OK"]
    assert max(levels) > 1.5 * min(levels)  # the lake drops in late summer


def test_extent_is_lon_lat_with_counter_clockwise_exteriors(lake_series: list[dict]) -> None:
    """RFC 7946: the extent is in EPSG:4326 (lon, lat) around the demo lake (46.0 N 15.0 E), exteriors CCW."""
    entry = next(e for e in lake_series if e["water"]["status"] == "OK")
    extent = shape(entry["water"]["extent"])
    lon0, lat0, lon1, lat1 = extent.bounds
    assert 14.9 < lon0 < lon1 < 15.1 and 45.9 < lat0 < lat1 < 46.1
    parts = list(extent.geoms) if extent.geom_type == "MultiPolygon" else [extent]
    assert all(part.exterior.is_ccw for part in parts)


def test_cloudy_dates_are_refused_with_status(demo_root: Path, lake_series: list[dict],
                                              truth_grid: TruthGrid) -> None:
    """A date whose region is more than 30 % cloud by the truth is CLOUDY with every value null and no
    extent; no date whose region is cloud-free by the truth is refused."""
    refused = 0
    for entry in lake_series:
        truth = _region_truth(demo_root, truth_grid, entry["date"])
        water = entry["water"]
        if truth["cloud"] > 0.3:
            assert water["status"] == "CLOUDY", entry["date"]
            assert water["cloud_fraction"] > 0.2
            assert all(water[k] is None for k in ("fraction", "area_m2", "level", "threshold", "threshold_method"))
            assert "extent" not in water
            refused += 1
        elif truth["cloud"] == 0 and truth["nodata"] == 0:
            assert water["status"] == "OK", entry["date"]
    assert refused >= 7  # 5 overcast dates, thick cirrus on 04-05 and the cumulus of 08-23 (51 % of the region)


def test_a_region_short_of_min_valid_is_nodata_and_min_valid_lowers_the_bar(simple_archive: Path) -> None:
    """2023-08-10 has data on half of tile T1: with the default min_valid (0.98) the whole tile is NODATA;
    with min_valid 0.5 it is measured (no pixel of the vegetated tile is water)."""
    def water(**options: float) -> dict:
        request = TimeSeriesRequest.from_dict({
            "geometry": {"type": "Polygon", "coordinates": [utm_box(0, 0, 12, 12)]}, "crs": CRS_UTM,
            "time": {"from": "2023-08-10", "to": "2023-08-10"}, "bands": ["B04"],
            "water": {"buffer_m": 0, **options}})
        (entry,) = query_timeseries(request, Archive.open(simple_archive)).to_dict()["series"]
        return entry["water"]

    refused = water()
    assert refused["status"] == "NODATA" and refused["valid_fraction"] == 0.5 and refused["area_m2"] is None
    measured = water(min_valid=0.5)
    assert measured["status"] == "OK" and measured["fraction"] == 0.0 and measured["level"] == 0.0
    assert measured["nominal_area_m2"] == 118.0 * 118.0  # utm_box shrinks the 120 m tile by 1 m a side


def test_outline_is_measured_apart_from_the_posted_polygon(demo_root: Path, truth_grid: TruthGrid) -> None:
    """Posting the small lake_centre polygon with the lake as the outline: the band statistics are those of
    lake_centre alone, the water those of the whole lake region (the truth's, within 5 %)."""
    archive = Archive.open(demo_root)
    day = {"from": "2023-03-06", "to": "2023-03-06"}
    plain = {"geometry": _polygon("lake_centre"), "time": day, "bands": ["B03", "B08"], "statistics": ["mean", "count"]}
    alone = query_timeseries(TimeSeriesRequest.from_dict(plain), archive).to_dict()["series"][0]
    outline = json.dumps(_polygon("lake"))  # GeoJSON text is accepted as well as objects and WKT
    monitored = query_timeseries(TimeSeriesRequest.from_dict({**plain, "water": {"outline": outline}}),
                                 archive).to_dict()["series"][0]
    assert monitored["bands"] == alone["bands"]
    water = monitored["water"]
    truth = _region_truth(demo_root, truth_grid, "2023-03-06")["water"]
    assert isinstance(truth, np.ndarray)
    assert water["status"] == "OK" and water["area_m2"] == pytest.approx(100.0 * truth.sum(), rel=0.05)
    assert water["nominal_area_m2"] == pytest.approx(truth_grid.project(shape(_polygon("lake"))).area, rel=1e-6)
    assert water["area_m2"] > 10 * alone["bands"]["B03"]["count"] * 100.0  # far more than lake_centre holds


@pytest.mark.parametrize("tile_crs", [CRS.from_epsg(32633), CRS.from_epsg(4326)])
def test_buffer_is_metres_on_the_ground(tile_crs: CRS) -> None:
    """A 200 m square given in lon/lat, grown by 50 m: 200² + 4·200·50 + π·50² m² whether the tile is in UTM
    or (for want of a projected CRS) the square's own UTM zone is used."""
    utm = Transformer.from_crs(CRS_UTM, "EPSG:4326", always_xy=True)
    square = shapely.transform(box(500000, 5095000, 500200, 5095200),
                               lambda xy: np.column_stack(utm.transform(xy[:, 0], xy[:, 1])))
    region = analysed_region(WaterOptions(buffer_m=50.0, monitoring=True), square, CRS.from_epsg(4326), tile_crs)
    assert region.crs.to_epsg() == 32633
    assert region.nominal_area_m2 == pytest.approx(200.0 * 200.0, rel=1e-6)
    assert region.region.area == pytest.approx(200 * 200 + 4 * 200 * 50 + math.pi * 50 ** 2, rel=2e-3)


def _disk(shape_: tuple[int, int], centre: tuple[int, int], radius: float) -> np.ndarray:
    rows, cols = np.indices(shape_)
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius ** 2


def test_canny_otsu_splits_a_step_between_its_two_values() -> None:
    """Land -0.4 on the left 20 columns, water 0.6 on the right 20: the edges lie on the step, their Otsu
    threshold is between the two values, and the water is exactly the right half."""
    image = np.full((20, 40), -0.4)
    image[:, 20:] = 0.6
    usable = np.ones(image.shape, dtype=bool)
    found = canny_otsu(image, usable, fixed=0.0)
    assert found.method == "canny_otsu" and found.edge_pixels >= MIN_EDGE_PIXELS
    assert -0.4 <= found.value < 0.6
    assert ((image > found.value) == (np.indices(image.shape)[1] >= 20)).all()


def test_canny_otsu_ignores_smooth_land_gradients_that_fool_a_region_wide_otsu() -> None:
    """Forest fading smoothly into wet soil (-0.45 to 0.05 over 50 columns, 0.01 a pixel: no Canny edge) and a
    water disk (0.55, radius 8) in the soil (0.05). The edges see only soil and water, so the threshold is
    in [0.05, 0.55) and the water is the disk. Worked by hand, a region-wide Otsu peaks near -0.12 (between-
    class variance 0.034 there against 0.025 for the water/land split; upper class mean 0.07) and calls the
    soil water, as the fixed threshold 0 would."""
    image = np.full((40, 100), 0.05)
    image[:, :50] = np.linspace(-0.45, 0.05, 50)
    disk = _disk(image.shape, (20, 75), 8)
    image[disk] = 0.55
    usable = np.ones(image.shape, dtype=bool)
    found = canny_otsu(image, usable, fixed=0.0)
    assert found.method == "canny_otsu"
    assert 0.05 <= found.value < 0.55
    assert ((image > found.value) == disk).all()
    region_wide = region_otsu(image[usable], 0.0)
    assert region_wide.method == "otsu" and -0.2 < region_wide.value < -0.05


def test_canny_otsu_falls_back_to_otsu_when_edges_are_too_few() -> None:
    """A one-pixel checkerboard of -0.4 and 0.6 smooths to a flat 0.1 (no Canny edge), but its values split
    in two: Otsu over the region, and the water is the 0.6 squares."""
    rows, cols = np.indices((40, 40))
    water = (rows + cols) % 2 == 0  # 800 pixels of each
    image = np.where(water, 0.6, -0.4)
    found = canny_otsu(image, np.ones(image.shape, dtype=bool), fixed=0.0)
    assert found.method == "otsu" and found.edge_pixels < MIN_EDGE_PIXELS
    assert ((image > found.value) == water).all()


def test_canny_otsu_falls_back_to_the_fixed_threshold_on_one_class() -> None:
    """All water (0.30 and 0.31 in a checkerboard): no edge, and Otsu's two halves are 0.01 apart (less than
    0.2), so the fixed threshold is used and every pixel is water."""
    rows, cols = np.indices((30, 30))
    image = np.where((rows + cols) % 2 == 0, 0.30, 0.31)
    found = canny_otsu(image, np.ones(image.shape, dtype=bool), fixed=0.05)
    assert found.method == "fixed" and found.value == 0.05
    assert (image > found.value).all()


def test_canny_otsu_finds_no_water_between_two_land_covers() -> None:
    """A meadow (-0.6) beside a field (-0.3): a strong edge, classes 0.3 apart, but both below the fixed
    threshold 0; neither Otsu is taken, the fixed threshold is, and there is no water."""
    image = np.full((30, 40), -0.6)
    image[:, 20:] = -0.3
    found = canny_otsu(image, np.ones(image.shape, dtype=bool), fixed=0.0)
    assert found.method == "fixed" and found.edge_pixels >= MIN_EDGE_PIXELS
    assert not (image > found.value).any()


def test_mndwi_is_a_built_in_index_and_ndsi_stays() -> None:
    """MNDWI = (B03 - B11) / (B03 + B11): 0.5 for B03 0.3 and B11 0.1; NDSI keeps the same formula."""
    spec = resolve_index("MNDWI")
    assert spec.bands == ("B03", "B11")
    assert spec.evaluate({"B03": np.array([0.3]), "B11": np.array([0.1])})[0] == pytest.approx(0.5)
    assert BUILTIN_INDICES["NDSI"] == BUILTIN_INDICES["MNDWI"]


def test_mndwi_finds_the_lake_too(demo_root: Path, truth_grid: TruthGrid) -> None:
    """With MNDWI (B11 at 20 m) the clear 2023-09-22 lake is within 5 % of its true area."""
    body = {"geometry": _polygon("lake"), "time": {"from": "2023-09-22", "to": "2023-09-22"}, "bands": ["B03"],
            "water": {"buffer_m": BUFFER_M, "index": "MNDWI", "extent": False}}
    (entry,) = query_timeseries(TimeSeriesRequest.from_dict(body), Archive.open(demo_root)).to_dict()["series"]
    truth = _region_truth(demo_root, truth_grid, "2023-09-22")["water"]
    assert isinstance(truth, np.ndarray)
    assert entry["water"]["area_m2"] == pytest.approx(100.0 * truth.sum(), rel=0.05)


@pytest.fixture(name="demo_client", scope="module")
def fixture_demo_client(demo_root: Path):
    return create_app({"archive": str(demo_root)}).test_client()


def test_csv_has_the_water_columns_and_json_alone_the_extent(demo_client) -> None:
    """The CSV holds status, level and nominal area but no extent; extent false leaves it out of the JSON."""
    body = {"geometry": _polygon("lake"), "time": {"from": "2023-09-01", "to": "2023-09-03"}, "bands": ["B03"],
            "statistics": ["mean"], "water": {"buffer_m": BUFFER_M}}
    text = demo_client.post("/api/v1/timeseries?format=csv", json=body).get_data(as_text=True)
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert row["water_status"] == "OK" and row["water_threshold_method"] == "canny_otsu"
    assert float(row["water_level"]) == pytest.approx(float(row["water_area_m2"]) / float(row["water_nominal_area_m2"]))
    assert not any("extent" in column for column in row)
    with_extent = demo_client.post("/api/v1/timeseries", json=body).json["series"][0]["water"]
    without = demo_client.post("/api/v1/timeseries", json={**body, "water": {"buffer_m": BUFFER_M, "extent": False}})
    assert with_extent["extent"]["type"] in ("Polygon", "MultiPolygon")
    assert "extent" not in without.json["series"][0]["water"]
    assert without.json["series"][0]["water"]["area_m2"] == with_extent["area_m2"]


BAD_WATER = [
    ({"outline": {"type": "Point", "coordinates": [500060, 5000060]}}, r"water.outline: GeoJSON type 'Point' is not supported"),
    ({"outline": "LINESTRING (500000 5000000, 500100 5000100)"}, r"water.outline: a LineString has no area; expected a Polygon"),
    ({"outline": "POLYGON ((500000 5000000, 500100 5000100, 500100 5000000, 500000 5000100, 500000 5000000))"},
     r"water.outline: invalid polygon \(Self-intersection"),
    ({"outline": 12}, r"water.outline: expected a GeoJSON object or a WKT string, got int 12"),
    ({"buffer_m": -5}, r"water.buffer_m: expected a number between 0 and 10000 \(m\), got -5"),
    ({"buffer_m": "100"}, r"water.buffer_m: expected a number between 0 and 10000 \(m\), got '100'"),
    ({"min_valid": 1.5}, r"water.min_valid: expected a number between 0 and 1, got 1.5"),
    ({"min_valid": "high"}, r"water.min_valid: expected a number between 0 and 1, got 'high'"),
    ({"max_cloud_fraction": -0.1}, r"water.max_cloud_fraction: expected a number between 0 and 1"),
    ({"extent": "yes"}, r"water.extent: expected true or false, got 'yes'"),
    ({"method": "canny"}, r"water.method: expected one of \['threshold', 'otsu', 'canny_otsu'\], got 'canny'"),
    ({"index": "NDVX"}, r"water.index: expected a built-in index name such as 'NDWI' or 'MNDWI'"),
    ({"buffer": 100}, r"water: unknown fields \['buffer'\]"),
]


@pytest.mark.parametrize(("water", "match"), BAD_WATER, ids=[m.split(":")[0] + f"-{i}" for i, (_, m) in enumerate(BAD_WATER)])
def test_bad_water_input_gets_a_clear_400(simple_archive: Path, water: dict, match: str) -> None:
    client = create_app({"archive": str(simple_archive)}).test_client()
    response = client.post("/api/v1/timeseries", json={
        "geometry": {"type": "Polygon", "coordinates": [utm_box(2, 2, 10, 10)]}, "crs": CRS_UTM,
        "time": {"from": "2023-01-01", "to": "2023-12-31"}, "water": water})
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    error = response.json["error"]
    assert error["status"] == 400 and re.search(match, error["message"]), error
    assert "Traceback" not in response.get_data(as_text=True)


def test_an_outline_over_the_vertex_limit_is_refused() -> None:
    """The outline has the posted polygon's vertex limit."""
    ring = [[15 + 0.001 * math.cos(t), 46 + 0.001 * math.sin(t)] for t in np.linspace(0, 2 * math.pi, 60)[:-1]]
    body = {"geometry": mapping(box(15, 46, 15.001, 46.001)), "time": YEAR,
            "water": {"outline": {"type": "Polygon", "coordinates": [ring + [ring[0]]]}}}
    from stats.request import Limits

    with pytest.raises(InvalidRequestError, match=r"water.outline: 60 vertices is more than the limit of 50"):
        TimeSeriesRequest.from_dict(body, limits=Limits(max_vertices=50))


def test_batch_writes_the_extent_as_a_layer_and_beside_parquet(demo_root: Path, tmp_path: Path) -> None:
    """A batch with water.buffer_m goes polygon by polygon through the time-series engine: the GeoPackage has
    a water_extent layer and the Parquet output a GeoParquet file beside it, one row per polygon and measured
    date, with the time series' own areas."""
    polygons = tmp_path / "lakes.geojson"
    polygons.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": name}, "geometry": _polygon(name)} for name in ("lake", "lake_centre")]}))
    options = {"bands": ["B03"], "statistics": ["mean"], "water": {"buffer_m": BUFFER_M}}
    span = ("2023-08-10", "2023-08-25")  # 08-13 clear, 08-23 cumulus over the lake
    for out in (tmp_path / "out.gpkg", tmp_path / "out.parquet"):
        run_batch(demo_root, polygons, *span, out, options=options, workers=0, progress=False, id_field="id")
    layers = dict(pyogrio.list_layers(tmp_path / "out.gpkg"))
    assert set(layers) == {"statistics", "water_extent"}
    stats = gpd.read_file(tmp_path / "out.gpkg", layer="statistics")
    assert "water_extent" not in stats.columns
    extents = gpd.read_file(tmp_path / "out.gpkg", layer="water_extent")
    beside = gpd.read_parquet(tmp_path / "out.water_extent.parquet")
    measured = stats[stats["water_status"] == "OK"]
    assert len(extents) == len(beside) == len(measured) >= 2
    assert set(stats["water_status"]) >= {"OK", "CLOUDY"}
    assert extents.crs.to_epsg() == beside.crs.to_epsg() == 4326
    series = query_timeseries(TimeSeriesRequest.from_dict({"geometry": _polygon("lake"), "bands": ["B03"],
                                                           "time": {"from": span[0], "to": span[1]},
                                                           "water": options["water"]}), Archive.open(demo_root))
    ok = [d for d in series.series if d.water is not None and d.water.status == "OK"]
    lake = beside[beside["id"] == "lake"].sort_values("date")
    assert lake["water_area_m2"].tolist() == [d.water.area_m2 for d in ok if d.water is not None]
    assert all(shape(d.water.extent).equals(g) for d, g in zip(ok, lake.geometry) if d.water and d.water.extent)


def test_batch_refuses_one_outline_for_every_polygon(demo_root: Path, tmp_path: Path) -> None:
    polygons = tmp_path / "one.geojson"
    polygons.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": _polygon("lake_centre")}))
    with pytest.raises(InvalidRequestError, match=r"water.outline: a batch monitors each polygon as its own outline"):
        run_batch(demo_root, polygons, "2023-08-10", "2023-08-15", tmp_path / "o.csv",
                  options={"water": {"outline": _polygon("lake")}}, workers=0, progress=False)


def test_the_command_line_reads_the_outline_from_a_file(demo_root: Path, tmp_path: Path) -> None:
    """--water-outline FILE --water-buffer 100 gives the same CSV as the HTTP request with the outline."""
    outline = tmp_path / "lake.wkt"
    outline.write_text(shape(_polygon("lake")).wkt)
    centre = shape(_polygon("lake_centre")).wkt
    result = CliRunner().invoke(main, ["query", "--archive", str(demo_root), "--geometry", centre, "--bands", "B03",
                                       "--from", "2023-09-01", "--to", "2023-09-03", "--format", "csv",
                                       "--water-outline", str(outline), "--water-buffer", "100"])
    assert result.exit_code == 0, result.output
    http = create_app({"archive": str(demo_root)}).test_client().post("/api/v1/timeseries?format=csv", json={
        "geometry": centre, "time": {"from": "2023-09-01", "to": "2023-09-03"}, "bands": ["B03"],
        "water": {"outline": shape(_polygon("lake")).wkt, "buffer_m": 100}})
    assert result.stdout == http.get_data(as_text=True)
    (row,) = list(csv.DictReader(io.StringIO(result.stdout)))
    assert row["water_status"] == "OK" and float(row["water_level"]) > 0.5


def test_the_library_batch_gives_the_extents_as_a_geodataframe(demo_root: Path) -> None:
    """polyfis.batch: to_pandas() holds the statistics, water_extents() one polygon per measured date."""
    import polyfis

    polygons = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "lake"}, "geometry": _polygon("lake")}]}
    result = polyfis.batch(polygons, "2023-08-10", "2023-08-25", archive=demo_root, bands=["B03"],
                           statistics=["mean"], water={"buffer_m": BUFFER_M})
    frame = result.to_pandas()
    assert "water_extent" not in frame.columns and list(frame["water_status"]) == ["OK", "CLOUDY"]
    extents = result.water_extents()
    assert list(extents["id"]) == ["lake"] and extents.crs.to_epsg() == 4326
    assert extents.geometry.iloc[0].geom_type in ("Polygon", "MultiPolygon")


def test_a_batch_job_serves_its_water_extents(demo_client) -> None:
    """A job with water monitoring serves its extents as GeoParquet and as CSV with WKT, one row per measured
    date, each polygon the one its time series gives."""
    collection = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "lake"}, "geometry": _polygon("lake")}]}
    water = {"buffer_m": BUFFER_M}
    time = {"from": "2023-08-10", "to": "2023-08-25"}
    job = demo_client.post("/api/v1/batch", json={"polygons": collection, "time": time,
                                                   "options": {"bands": ["B03"], "water": water}}).get_json()["id"]
    assert wait_until_finished(demo_client, job, timeout=120)["status"] == "DONE"
    text = demo_client.get(f"/api/v1/batch/{job}/results?table=water_extent&format=csv").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    series = demo_client.post("/api/v1/timeseries", json={"geometry": _polygon("lake"), "time": time,
                                                          "bands": ["B03"], "water": water}).get_json()["series"]
    measured = [e for e in series if e["water"]["status"] == "OK"]
    assert [r["date"] for r in rows] == [e["date"] for e in measured] and rows
    for row, entry in zip(rows, measured):
        # the JSON writes coordinates to 1e-7 degrees (about 1 cm), the CSV in full
        assert shapely.from_wkt(row["geometry"]).equals_exact(shape(entry["water"]["extent"]), tolerance=1e-7)
    parquet = demo_client.get(f"/api/v1/batch/{job}/results?table=water_extent&format=parquet")
    assert parquet.status_code == 200 and parquet.data[:4] == b"PAR1"
