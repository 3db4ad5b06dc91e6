"""Sentinel-2 collections as they are published: Earth Search L1C (JP2 keyed by common name), the Copernicus
Data Space (per-band JP2 keyed by band and resolution), Earth Search L2A (COGs with an SCL asset) and band
files behind ``s3://`` hrefs in a real S3-compatible server (moto's, started here on 127.0.0.1).

Each archive is the demo archive rewritten into the layout; its time series must be the demo's, value for
value. The L2A archive's scene classification is made of stripes set here, so that its cloud, shadow, snow
and water shares are worked out from the stripes and the polygon's pixels.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from pyproj import Transformer
from rasterio.features import geometry_mask
from shapely.geometry import box, mapping

from stats import Archive, TimeSeriesRequest, query_timeseries
from stats.archive.layouts import EARTH_SEARCH_KEYS, detect_layout, expected_key
from stats.archive.storage import endpoint_options
from stats.bands import NATIVE_RESOLUTION, S2_BANDS
from stats.clouds.cells import ProbabilityCache

#: Demo acquisitions used: clear, cumulus and cirrus days of both processing baselines (02.09 and 04.00).
IDS = (
    "S2A_MSIL1C_20230115T100031_N0209_R122_T33TWL",
    "S2A_MSIL1C_20230316T100031_N0209_R122_T33TWL",
    "S2A_MSIL1C_20230624T100031_N0400_R122_T33TWL",
    "S2A_MSIL1C_20230724T100031_N0400_R122_T33TWL",
    "S2A_MSIL1C_20231111T100031_N0400_R122_T33TWL",
)
TIME = {"from": "2023-01-01", "to": "2023-12-31"}
#: A field across the demo tile's middle column (x = 502560 m), where the L2A archive splits a date in two tiles.
UTM_FIELD = box(502000.0, 5097010.0, 503100.0, 5097990.0)
SPLIT_X = 502560.0
L2A_BANDS = [b for b in S2_BANDS if b != "B10"]
#: SCL classes of the L2A archive, in stripes two SCL pixels (40 m) wide, left to right, repeating.
STRIPES = (4, 8, 9, 10, 3, 6, 11, 5, 7, 2, 1)


def _field_wgs84() -> dict[str, Any]:
    to_wgs84 = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    xs, ys = UTM_FIELD.exterior.coords.xy
    lon, lat = to_wgs84.transform(np.asarray(xs), np.asarray(ys))
    return {"type": "Polygon", "coordinates": [[[x, y] for x, y in zip(lon.tolist(), lat.tolist())]]}


FIELD = _field_wgs84()


def query(archive: Archive, **options: Any) -> dict[str, Any]:
    """The time series of FIELD from ``archive``, with a fresh cloud cache (so that no answer comes from
    cells another archive scored)."""
    request = TimeSeriesRequest.from_dict({"geometry": FIELD, "time": TIME, **options})
    return query_timeseries(request, archive, cache=ProbabilityCache()).to_dict()


# --- rewriting the demo archive into published layouts -------------------------------------------------


def demo_items(demo_root: Path) -> list[pystac.Item]:
    collection = pystac.read_file(str((demo_root / "collection.json").resolve()))
    assert isinstance(collection, pystac.Catalog)
    items = {item.id: item for item in collection.get_items(recursive=True)}
    return [items[i] for i in IDS]


def copy_band(source: str, target: Path, driver: str, *, add: int = 0, columns: slice | None = None) -> None:
    """Copy one band file: as a lossless JP2 (GDAL's JP2OpenJPEG) or a COG; ``add`` is added to the DN with
    data, ``columns`` keeps a range of the tile's columns (a tile cut in two)."""
    with rasterio.open(source) as src:
        data = src.read(1)
        transform = src.transform
        crs = src.crs
    if columns is not None:
        data = data[:, columns]
        transform = transform @ rasterio.Affine.translation(columns.start or 0, 0)
    if add:
        data = np.where(data > 0, data.astype(np.int64) + add, 0).astype(np.uint16)
    options: dict[str, Any] = ({"QUALITY": 100, "REVERSIBLE": "YES"} if driver == "JP2OpenJPEG"
                               else {"blocksize": 256, "compress": "DEFLATE"})
    with rasterio.open(target, "w", driver=driver, width=data.shape[1], height=data.shape[0], count=1,
                       dtype="uint16", crs=crs, transform=transform, nodata=0, **options) as dst:
        dst.write(data, 1)


def write_collection(root: Path, items: list[pystac.Item], collection_id: str) -> Path:
    collection = pystac.Collection(
        id=collection_id, description=f"{collection_id} rewritten from the demo archive",
        extent=pystac.Extent.from_items(items), license="proprietary")
    collection.add_items(items)
    collection.normalize_hrefs(str(root.resolve()))
    collection.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return root / "collection.json"


def new_item(source: pystac.Item, item_id: str, properties: dict[str, Any],
             geometry: dict[str, Any] | None = None) -> pystac.Item:
    props = {k: v for k, v in source.properties.items() if k != "datetime"}
    props.update(properties)
    return pystac.Item(id=item_id, geometry=geometry or source.geometry, bbox=None, datetime=source.datetime,
                       properties=props)


def add_asset(item: pystac.Item, key: str, href: str, driver: str, offset: float | None = None) -> None:
    media = "image/jp2" if driver == "JP2OpenJPEG" else pystac.MediaType.COG
    extra = {} if offset is None else {"raster:bands": [{"nodata": 0, "data_type": "uint16", "scale": 0.0001,
                                                         "offset": offset}]}
    item.add_asset(key, pystac.Asset(href=href, media_type=media, roles=["data"], extra_fields=extra))


def reflectance_offset(item: pystac.Item) -> float:
    """The ``raster:bands`` offset Earth Search publishes: -0.1 from baseline 04.00 on, else 0."""
    return -0.1 if item.properties["s2:processing_baseline"] >= "04.00" else 0.0


def build_earth_search_l1c(demo_root: Path, root: Path, *, drop: tuple[str, str] | None = None,
                           href: Callable[[Path], str] | None = None) -> Path:
    """Earth Search ``sentinel-2-l1c``: lossless JP2 per band, keyed by common name, with ``raster:bands``
    offset and scale. ``drop`` = (item id, asset key) leaves that asset out; ``href`` maps a file to its href."""
    items = []
    for source in demo_items(demo_root):
        folder = root / "data" / source.id
        folder.mkdir(parents=True)
        item = new_item(source, source.id, {"s2:product_type": "S2MSI1C"})
        for band in S2_BANDS:
            key = EARTH_SEARCH_KEYS[band]
            if drop == (source.id, key):
                continue
            target = folder / f"{band}.jp2"
            copy_band(source.assets[band].get_absolute_href() or "", target, "JP2OpenJPEG")
            add_asset(item, key, href(target) if href else str(target.resolve()), "JP2OpenJPEG",
                      reflectance_offset(source))
        items.append(item)
    return write_collection(root, items, "sentinel-2-l1c")


def build_cdse_l1c(demo_root: Path, root: Path) -> Path:
    """Copernicus Data Space SAFE granules: per-band JP2 keyed ``B01_60m``, ``B02_10m``, …; harmonised by
    ``s2:processing_baseline`` alone (no ``raster:bands``)."""
    items = []
    for source in demo_items(demo_root):
        folder = root / "data" / source.id / "IMG_DATA"
        folder.mkdir(parents=True)
        item = new_item(source, source.id, {"s2:product_type": "S2MSI1C"})
        for band in S2_BANDS:
            key = f"{band}_{NATIVE_RESOLUTION[band]}m"
            target = folder / f"T33TWL_{source.id[11:26]}_{key}.jp2"
            copy_band(source.assets[band].get_absolute_href() or "", target, "JP2OpenJPEG")
            add_asset(item, key, str(target.resolve()), "JP2OpenJPEG")
        items.append(item)
    return write_collection(root, items, "sentinel-2-l1c")


def scl_array(shape: tuple[int, int], shift: int = 0) -> np.ndarray:
    """The SCL of the L2A archive: :data:`STRIPES` two SCL columns wide, starting ``shift`` stripes on."""
    cols = np.arange(shape[1])
    row = np.asarray(STRIPES)[((cols // 2) + shift) % len(STRIPES)]
    return np.broadcast_to(row, shape).astype(np.uint8)


def build_earth_search_l2a(demo_root: Path, root: Path) -> Path:
    """Earth Search ``sentinel-2-c1-l2a``: COGs keyed by common name (no ``cirrus``), an ``scl`` asset, and
    the first date (baseline 02.09) cut into two tiles at x = 502560 m, the right one stored as baseline 04.00
    (DN + 1000, ``raster:bands`` offset -0.1), so that one date mixes tiles and baselines."""
    items = []
    for n, source in enumerate(demo_items(demo_root)):
        with rasterio.open(source.assets["B05"].get_absolute_href() or "") as src:
            scl_shape, scl_transform, crs = (src.height, src.width), src.transform, src.crs
        scl = scl_array(scl_shape, shift=n)
        parts: list[tuple[str, int, float, str, int | None]] = [(source.id, 0, reflectance_offset(source),
                                                                 source.properties["s2:processing_baseline"], None)]
        if n == 0:
            parts = [(f"{source.id}_A", 0, 0.0, "02.09", 0), (f"{source.id}_B", 1000, -0.1, "04.00", 1)]
        for item_id, add, offset, baseline, half in parts:
            folder = root / "data" / item_id
            folder.mkdir(parents=True)
            geometry = None
            if half is not None:
                west, south, east, north = rasterio.coords.BoundingBox(500040.0, 5094960.0, 505080.0, 5100000.0)
                part = box(west, south, SPLIT_X, north) if half == 0 else box(SPLIT_X, south, east, north)
                to_wgs84 = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
                xs, ys = part.exterior.coords.xy
                lon, lat = to_wgs84.transform(np.asarray(xs), np.asarray(ys))
                geometry = mapping(box(min(lon), min(lat), max(lon), max(lat)))
            item = new_item(source, item_id, {"s2:product_type": "S2MSI2A", "s2:processing_baseline": baseline},
                            geometry)
            for band in L2A_BANDS:
                res = NATIVE_RESOLUTION[band]
                cut = None if half is None else (slice(0, int((SPLIT_X - 500040.0) / res)) if half == 0
                                                 else slice(int((SPLIT_X - 500040.0) / res), None))
                target = folder / f"{EARTH_SEARCH_KEYS[band]}.tif"
                copy_band(source.assets[band].get_absolute_href() or "", target, "COG", add=add, columns=cut)
                add_asset(item, EARTH_SEARCH_KEYS[band], str(target.resolve()), "COG", offset)
            scl_part, transform = scl, scl_transform
            if half is not None:
                at = int((SPLIT_X - 500040.0) / 20)
                scl_part = scl[:, :at] if half == 0 else scl[:, at:]
                transform = scl_transform @ rasterio.Affine.translation(0 if half == 0 else at, 0)
            with rasterio.open(folder / "scl.tif", "w", driver="COG", width=scl_part.shape[1],
                               height=scl_part.shape[0], count=1, dtype="uint8", crs=crs, transform=transform,
                               nodata=0) as dst:
                dst.write(np.ascontiguousarray(scl_part), 1)
            item.add_asset("scl", pystac.Asset(href=str((folder / "scl.tif").resolve()),
                                               media_type=pystac.MediaType.COG, roles=["data"]))
            items.append(item)
    return write_collection(root, items, "sentinel-2-c1-l2a")


@pytest.fixture(scope="module", name="local")
def fixture_local(demo_root: Path) -> Archive:
    """The demo archive, restricted to :data:`IDS`."""
    demo = Archive.open(demo_root)
    return Archive([a for a in demo.acquisitions if a.id in IDS], id=demo.id)


@pytest.fixture(scope="module", name="earth_search_l1c")
def fixture_earth_search_l1c(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_earth_search_l1c(demo_root, tmp_path_factory.mktemp("earth-search-l1c"))


@pytest.fixture(scope="module", name="earth_search_l2a")
def fixture_earth_search_l2a(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_earth_search_l2a(demo_root, tmp_path_factory.mktemp("earth-search-l2a"))


L1C_OPTIONS: dict[str, Any] = {"indices": ["NDVI"], "statistics": ["mean", "min", "max", "std", "p50"],
                               "cloud": {"mode": "both"}}


# --- layouts and JP2 ----------------------------------------------------------------------------------


def test_the_layout_of_an_item_is_told_from_its_asset_keys() -> None:
    assert detect_layout({"coastal": 0, "blue": 0, "cirrus": 0, "scl": 0}) == "earth-search"
    assert detect_layout({"B01_60m": 0, "B02_10m": 0, "SCL_20m": 0}) == "cdse"
    assert detect_layout({"B01": 0, "B02": 0, "CLP": 0}) == "polyfis"
    assert [expected_key("earth-search", b) for b in ("B05", "B06", "B07", "B8A", "B10")] == [
        "rededge1", "rededge2", "rededge3", "nir08", "cirrus"]


def test_jp2_bands_written_by_openjpeg_hold_the_demo_pixels(demo_root: Path, earth_search_l1c: Path) -> None:
    source = demo_items(demo_root)[2]
    for band in ("B02", "B05", "B09"):
        with rasterio.open(source.assets[band].get_absolute_href() or "") as tif, \
                rasterio.open(earth_search_l1c.parent / "data" / source.id / f"{band}.jp2") as jp2:
            assert jp2.driver == "JP2OpenJPEG"
            assert jp2.transform == tif.transform and jp2.crs == tif.crs
            np.testing.assert_array_equal(jp2.read(1), tif.read(1))


def test_earth_search_l1c_jp2_gives_the_local_time_series(local: Archive, earth_search_l1c: Path) -> None:
    archive = Archive.open(earth_search_l1c)
    assert {a.layout for a in archive.acquisitions} == {"earth-search"}
    assert {a.id: a.dn_offset for a in archive.acquisitions} == {a.id: a.dn_offset for a in local.acquisitions}
    want = query(local, **L1C_OPTIONS)
    assert len(want["series"]) == len(IDS) and want["summary"]["errors"] == 0
    assert query(archive, **L1C_OPTIONS) == want


def test_copernicus_data_space_granules_give_the_local_time_series(
        demo_root: Path, local: Archive, tmp_path: Path) -> None:
    archive = Archive.open(build_cdse_l1c(demo_root, tmp_path / "cdse"))
    assert {a.layout for a in archive.acquisitions} == {"cdse"}
    assert query(archive, **L1C_OPTIONS) == query(local, **L1C_OPTIONS)


def test_a_missing_asset_is_a_date_error_naming_the_asset(demo_root: Path, local: Archive, tmp_path: Path) -> None:
    broken = IDS[3]
    archive = Archive.open(build_earth_search_l1c(demo_root, tmp_path / "es", drop=(broken, "red")))
    got = query(archive, **L1C_OPTIONS)
    want = query(local, **L1C_OPTIONS)
    assert got["status"] == "PARTIAL" and got["summary"]["errors"] == 1
    errors = [entry for entry in got["series"] if "error" in entry]
    assert [e["scenes"] for e in errors] == [[broken]]
    assert "band B04" in errors[0]["error"] and "'red'" in errors[0]["error"]
    assert [e for e in got["series"] if "error" not in e] == [e for e in want["series"] if e["scenes"] != [broken]]


# --- L2A with a scene classification -----------------------------------------------------------------


def expected_l2a(demo_root: Path) -> list[dict[str, Any]]:
    """Per date, from the demo files and the stripes alone: the polygon's 10 m pixels (centres inside), the
    SCL class of each (the 20 m pixel holding it: same origin, two 10 m pixels per SCL pixel), and the mean
    harmonised B04 reflectance of the pixels left by the cloud mask."""
    out = []
    for n, source in enumerate(demo_items(demo_root)):
        with rasterio.open(source.assets["B04"].get_absolute_href() or "") as src:
            window = rasterio.windows.from_bounds(*UTM_FIELD.bounds, transform=src.transform)
            window = window.round_offsets().round_lengths()
            b04 = src.read(1, window=window).astype(np.float64)
            transform = src.window_transform(window)
        inside = geometry_mask([UTM_FIELD], out_shape=b04.shape, transform=transform, invert=True)
        rows, cols = np.nonzero(inside)
        row0, col0 = int(window.row_off), int(window.col_off)
        classes = scl_array((252, 252), shift=n)[(rows + row0) // 2, (cols + col0) // 2]
        cloud = np.isin(classes, (8, 9, 10))
        offset = 1000 if source.properties["s2:processing_baseline"] >= "04.00" else 0
        reflectance = (b04[rows, cols] - offset) / 10000
        out.append({"pixels": int(inside.sum()), "cloud": float(cloud.mean()),
                    "cloud_shadow": float((classes == 3).mean()), "snow": float((classes == 11).mean()),
                    "water": float((classes == 6).mean()), "clear_b04": float(reflectance[~cloud].mean())})
    return out


def test_l2a_band_and_index_statistics_are_the_local_ones_across_mixed_tiles_and_baselines(
        local: Archive, earth_search_l2a: Path) -> None:
    archive = Archive.open(earth_search_l2a)
    assert {a.level for a in archive.acquisitions} == {"L2A"}
    first_date = [a for a in archive.acquisitions if a.date == dt.date(2023, 1, 15)]
    assert [(a.processing_baseline, a.dn_offset) for a in first_date] == [("02.09", 0), ("04.00", 1000)]
    options = {"bands": L2A_BANDS, "indices": ["NDVI", "NDWI"], "statistics": ["mean", "min", "max", "std", "p50"]}
    got, want = query(archive, **options), query(local, **options)
    assert got["summary"]["errors"] == 0
    assert got["series"][0]["scenes"] == [f"{IDS[0]}_A", f"{IDS[0]}_B"]
    for ours, theirs in zip(got["series"], want["series"], strict=True):
        assert ours["date"] == theirs["date"]
        assert ours["pixels"] == theirs["pixels"]
        assert ours["bands"] == theirs["bands"] and ours["indices"] == theirs["indices"]


def test_l2a_gives_no_probability_and_says_its_clouds_come_from_the_scl(
        demo_root: Path, earth_search_l2a: Path) -> None:
    archive = Archive.open(earth_search_l2a)
    got = query(archive, bands=["B04"], statistics=["mean"], cloud={"mode": "both", "shadows": True})
    for entry, want in zip(got["series"], expected_l2a(demo_root), strict=True):
        cloud = entry["cloud"]
        assert cloud["probability"] is None and cloud["probability_mean"] is None and cloud["cloudy"] is None
        assert cloud["source"] == "scl" and "B10" in cloud["note"]
        assert entry["pixels"]["valid"] == want["pixels"]
        assert cloud["fraction"] == pytest.approx(want["cloud"], abs=1e-12)
        assert cloud["scl"] == pytest.approx({k: want[k] for k in ("cloud", "cloud_shadow", "snow", "water")},
                                             abs=1e-12)
        assert cloud["shadow_fraction"] == pytest.approx(want["cloud_shadow"], abs=1e-12)
        assert cloud["cloudy_pixels"] == round(want["cloud"] * want["pixels"])


def test_l2a_cloud_mask_leaves_out_the_scl_cloud_classes(demo_root: Path, earth_search_l2a: Path) -> None:
    archive = Archive.open(earth_search_l2a)
    got = query(archive, bands=["B04"], statistics=["mean"], cloud={"mode": "pixel", "mask": True})
    for entry, want in zip(got["series"], expected_l2a(demo_root), strict=True):
        assert entry["bands"]["B04"]["mean"] == pytest.approx(want["clear_b04"], rel=1e-12)


def test_l2a_note_and_source_are_csv_columns(earth_search_l2a: Path) -> None:
    request = TimeSeriesRequest.from_dict({"geometry": FIELD, "time": TIME, "bands": ["B04"],
                                           "statistics": ["mean"], "cloud": {"mode": "pixel"}})
    result = query_timeseries(request, Archive.open(earth_search_l2a), cache=ProbabilityCache())
    header, rows = result.table()
    first = dict(zip(header, rows[0]))
    assert first["cloud_source"] == "scl" and "B10" in first["cloud_note"]
    assert first["cloud_probability"] is None and first["cloud_probability_mean"] is None


def test_an_l2a_item_without_scl_is_a_date_error_naming_the_asset(earth_search_l2a: Path, tmp_path: Path) -> None:
    root = tmp_path / "l2a"
    shutil.copytree(earth_search_l2a.parent, root)
    target = next(p for p in root.rglob(f"{IDS[2]}.json"))
    item = json.loads(target.read_text())
    del item["assets"]["scl"]
    target.write_text(json.dumps(item))
    got = query(Archive.open(root), bands=["B04"], statistics=["mean"])
    errors = [e for e in got["series"] if "error" in e]
    assert [e["scenes"] for e in errors] == [[IDS[2]]]
    assert "scene classification" in errors[0]["error"] and "'scl'" in errors[0]["error"]
    assert len(got["series"]) == len(IDS)


# --- s3:// hrefs in a real S3-compatible server --------------------------------------------------------


def test_aws_endpoint_url_gives_gdal_its_endpoint() -> None:
    assert endpoint_options({"AWS_ENDPOINT_URL": "https://eodata.dataspace.copernicus.eu"}) == {
        "AWS_S3_ENDPOINT": "eodata.dataspace.copernicus.eu", "AWS_HTTPS": "YES", "AWS_VIRTUAL_HOSTING": "FALSE"}
    assert endpoint_options({}) == {}


@pytest.fixture(scope="module", name="s3")
def fixture_s3() -> Iterator[dict[str, Any]]:
    """moto's S3 server on 127.0.0.1 with authentication on: bucket ``open`` readable by the test user, and
    bucket ``paid`` whose objects the user's policy denies (as a requester-pays bucket answers a request
    without the requester-pays header: 403). GDAL finds it through ``AWS_ENDPOINT_URL``."""
    boto3 = pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server")
    requests = pytest.importorskip("requests")
    botocore_config = pytest.importorskip("botocore.config")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    try:
        server.start()
    except OSError as exc:
        pytest.skip(f"moto's S3 server cannot start on 127.0.0.1: {exc}")
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "setup")
        env.setenv("AWS_SECRET_ACCESS_KEY", "setup")
        env.setenv("AWS_REGION", "us-east-1")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        for name in ("AWS_PROFILE", "AWS_S3_ENDPOINT", "AWS_REQUEST_PAYER", "AWS_NO_SIGN_REQUEST", "AWS_SESSION_TOKEN"):
            env.delenv(name, raising=False)
        iam = boto3.client("iam", endpoint_url=endpoint)
        iam.create_user(UserName="reader")
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::paid/*"}]}
        iam.put_user_policy(UserName="reader", PolicyName="read-open", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="open")
        client.create_bucket(Bucket="paid")
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=10)  # every request signed from now
        env.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        env.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        try:
            # plain signed uploads (no streamed checksums, which moto's signature check does not follow)
            config = botocore_config.Config(request_checksum_calculation="when_required",
                                            response_checksum_validation="when_required")
            client = boto3.client("s3", endpoint_url=endpoint, config=config, aws_access_key_id=key["AccessKeyId"],
                                  aws_secret_access_key=key["SecretAccessKey"])
            yield {"client": client, "endpoint": endpoint}
        finally:
            requests.post(f"{endpoint}/moto-api/reset-auth", data=b"1000000000", timeout=10)
            server.stop()


def s3_archive(demo_root: Path, root: Path, s3: dict[str, Any], bucket_of: Callable[[str], str]) -> Path:
    """The Earth Search L1C archive with its JP2 uploaded to S3 (``bucket_of(item id)``), hrefs ``s3://``."""
    def href(path: Path) -> str:
        item_id, name = path.parent.name, path.name
        key = f"{root.name}/tiles/{item_id}/{name}"
        s3["client"].upload_file(str(path), bucket_of(item_id), key)
        return f"s3://{bucket_of(item_id)}/{key}"

    collection = build_earth_search_l1c(demo_root, root, href=href)
    shutil.rmtree(root / "data")  # the band files are in S3 only
    return collection


def test_s3_hrefs_give_the_local_time_series(demo_root: Path, local: Archive, s3: dict[str, Any],
                                             tmp_path: Path) -> None:
    archive = Archive.open(s3_archive(demo_root, tmp_path / "s3", s3, lambda _: "open"))
    assert all(href.startswith("s3://open/") for a in archive.acquisitions for href in a.assets.values())
    assert query(archive, **L1C_OPTIONS) == query(local, **L1C_OPTIONS)


def test_a_403_from_s3_is_a_date_error_naming_what_to_set(demo_root: Path, local: Archive, s3: dict[str, Any],
                                                          tmp_path: Path) -> None:
    denied = IDS[1]
    archive = Archive.open(s3_archive(demo_root, tmp_path / "s3-paid", s3,
                                      lambda item_id: "paid" if item_id == denied else "open"))
    got = query(archive, **L1C_OPTIONS)
    errors = [e for e in got["series"] if "error" in e]
    assert [e["scenes"] for e in errors] == [[denied]]
    message = errors[0]["error"]
    assert "HTTP 403" in message and "AWS_REQUEST_PAYER=requester" in message and "AWS_ACCESS_KEY_ID" in message
    assert f"s3://paid/s3-paid/tiles/{denied}/" in message
    want = query(local, **L1C_OPTIONS)
    assert [e for e in got["series"] if "error" not in e] == [e for e in want["series"] if e["scenes"] != [denied]]


def test_a_missing_s3_object_is_a_date_error_saying_not_found(demo_root: Path, s3: dict[str, Any],
                                                              tmp_path: Path) -> None:
    archive = Archive.open(s3_archive(demo_root, tmp_path / "s3-gone", s3, lambda _: "open"))
    gone = archive.acquisitions[0]
    s3["client"].delete_object(Bucket="open", Key=gone.assets["B04"].removeprefix("s3://open/"))
    got = query(archive, bands=["B04"], statistics=["mean"], cloud={"mode": "pixel"})
    errors = [e for e in got["series"] if "error" in e]
    assert [e["scenes"] for e in errors] == [[gone.id]]
    assert f"{gone.assets['B04']}: not found" in errors[0]["error"] and "'red'" in errors[0]["error"]


def test_a_batch_over_l2a_gives_the_time_series_rows(earth_search_l2a: Path) -> None:
    from polyfis.api import batch

    archive = Archive.open(earth_search_l2a)
    options = {"bands": ["B04", "B08"], "indices": ["NDVI"], "statistics": ["mean", "p50"], "cloud": {"mode": "pixel"}}
    polygons = {"type": "FeatureCollection",
                "features": [{"type": "Feature", "properties": {"id": "field"}, "geometry": FIELD}]}
    rows = batch(polygons, TIME["from"], TIME["to"], archive=archive, **options).table.to_pylist()
    request = TimeSeriesRequest.from_dict({"geometry": FIELD, "time": TIME, **options})
    header, want = query_timeseries(request, archive, cache=ProbabilityCache()).table()
    assert len(rows) == len(want) == len(IDS)
    for row, expected in zip(rows, want, strict=True):
        assert row["cloud_source"] == "scl" and row["error"] is None
        for column, value in zip(header, expected, strict=True):
            if column != "date":
                assert row[column] == value, column


def test_the_statistical_api_on_l2a_refuses_clp_the_model_cannot_give(earth_search_l2a: Path) -> None:
    from stats.sentinelhub.statistical import run_statistics

    archive = Archive.open(earth_search_l2a)

    def body(output: str) -> dict[str, Any]:
        script = ("//VERSION=3\nfunction setup() { return {input: [{bands: ['B04', 'CLP', 'CLM', 'dataMask']}], "
                  "output: [{id: 'o', bands: 1, sampleType: 'FLOAT32'}, {id: 'dataMask', bands: 1}]}; }\n"
                  f"function evaluatePixel(s) {{ return {{o: [{output}], dataMask: [s.dataMask]}}; }}")
        return {"input": {"bounds": {"geometry": FIELD}, "data": [{"type": "sentinel-2-l1c"}]},
                "aggregation": {"timeRange": {"from": "2023-06-24T00:00:00Z", "to": "2023-06-25T00:00:00Z"},
                                "aggregationInterval": {"of": "P1D"}, "evalscript": script,
                                "width": 80, "height": 80},
                "calculations": {"default": {}}}

    refused = run_statistics(body("s.CLP"), archive)["data"]
    assert len(refused) == 1 and "B10" in refused[0]["error"]["message"]
