"""The STAC archive writer and reader."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pystac
import pytest
from conftest import band_array, band_transform
from shapely.geometry import box

from stats.archive.catalog import Archive, ArchiveWriter, acquisition_from_dict, acquisition_from_item
from stats.errors import ArchiveError

UTC = dt.UTC


def test_archive_in_a_folder_with_a_dot_in_its_name(tmp_path: Path) -> None:
    """A folder named like a file (archive.v1) still gets collection.json, items/ and the items.parquet index
    inside it."""
    root = tmp_path / "archive.v1"
    with ArchiveWriter(root) as writer:
        writer.add("a", dt.datetime(2023, 1, 1, 10, tzinfo=UTC), "EPSG:32633",
                   {"B04": (band_array("B04"), band_transform("B04"))})
    assert sorted(p.name for p in root.iterdir()) == ["collection.json", "items", "items.parquet"]
    (acq,) = Archive.open(root).acquisitions
    assert Path(acq.assets["B04"]).is_file()


def test_item_properties_and_relative_hrefs(tmp_path: Path) -> None:
    """Items carry datetime, eo:cloud_cover, s2:processing_baseline, proj:epsg; asset hrefs are relative."""
    root = tmp_path / "archive"
    with ArchiveWriter(root) as writer:
        writer.add("a", dt.datetime(2023, 7, 1, 10, tzinfo=UTC), "EPSG:32633",
                   {"B04": (band_array("B04"), band_transform("B04"))}, cloud_cover=12.5, processing_baseline="04.00")
    item = json.loads((root / "items" / "a" / "a.json").read_text())
    assert item["properties"]["eo:cloud_cover"] == 12.5
    assert item["properties"]["s2:processing_baseline"] == "04.00"
    assert item["properties"]["proj:epsg"] == 32633
    assert item["properties"]["datetime"] == "2023-07-01T10:00:00Z"
    assert item["assets"]["B04"]["href"] == "./B04.tif"
    assert item["assets"]["B04"]["proj:shape"] == [12, 12]
    acq = Archive.open(root).acquisitions[0]
    assert (acq.cloud_cover, acq.dn_offset) == (12.5, 1000)


def test_appending_replaces_an_item_with_the_same_id(tmp_path: Path) -> None:
    """Writing into an existing archive appends; an existing id is replaced, not duplicated."""
    root = tmp_path / "archive"
    for day in (1, 2, 2):
        with ArchiveWriter(root) as writer:
            writer.add(f"d{day}", dt.datetime(2023, 1, day, tzinfo=UTC), "EPSG:32633",
                       {"B04": (band_array("B04"), band_transform("B04"))})
    assert [a.id for a in Archive.open(root).acquisitions] == ["d1", "d2"]


def test_search_by_time_footprint_and_cloud_cover(simple_archive: Path) -> None:
    """Search keeps acquisitions in the time range, intersecting the polygon, under the cloud cover limit."""
    archive = Archive.open(simple_archive)
    here = archive.acquisitions[0].footprint
    start, end = dt.datetime(2023, 1, 1, tzinfo=UTC), dt.datetime(2023, 7, 31, tzinfo=UTC)
    assert [a.id for a in archive.search(here, start, end)] == ["T1_20230105", "T1_20230704"]
    assert archive.search(box(0, 0, 1, 1), start, end) == []
    assert archive.search(here, start, end, max_cloud_cover=-1) == []


def test_opening_a_missing_archive_names_the_path(tmp_path: Path) -> None:
    """A folder without collection.json raises ArchiveError naming it."""
    with pytest.raises(ArchiveError, match=r"No archive at .*nothing-here"):
        Archive.open(tmp_path / "nothing-here")


def test_writer_refuses_unknown_band_names(tmp_path: Path) -> None:
    """Only Sentinel-2 band names are asset keys."""
    with pytest.raises(ArchiveError, match=r"unknown band names \['B13'\]"):
        ArchiveWriter(tmp_path / "a").add("x", dt.datetime(2023, 1, 1, tzinfo=UTC), "EPSG:32633",
                                          {"B13": (np.ones((2, 2), np.uint16), band_transform("B04"))})


def _earth_search_item() -> dict:
    """An Earth Search style L2A item: common-name asset keys with ``raster:bands`` scale and offset, an SCL
    asset, polyfis's stored cloud layers, relative hrefs and mean solar angles."""
    band = {"type": "image/tiff", "raster:bands": [{"scale": 0.0001, "offset": -0.1, "nodata": 0}]}
    return {
        "type": "Feature", "stac_version": "1.1.0", "id": "S2B_33TWN_20230615_0_L2A",
        "geometry": {"type": "Polygon", "coordinates": [[[14.0, 45.0], [15.0, 45.0], [15.0, 46.0], [14.0, 46.0],
                                                         [14.0, 45.0]]]},
        "bbox": [14.0, 45.0, 15.0, 46.0],
        "properties": {"datetime": "2023-06-15T10:00:31.024000Z", "proj:code": "EPSG:32633",
                       "s2:product_type": "S2MSI2A", "s2:processing_baseline": "05.09", "eo:cloud_cover": 12.5,
                       "grid:code": "MGRS-33TWN", "s2:mean_solar_azimuth": 150.0, "s2:mean_solar_zenith": 30.5,
                       "polyfis:clouds": {"resolution": 160, "cell_pixels": 16, "threshold": 0.4,
                                          "average_over": 4, "dilation_size": 2}},
        "links": [],
        "assets": {"blue": {"href": "./blue.tif", **band}, "red": {"href": "red.tif", **band},
                   "scl": {"href": "./scl.tif", "type": "image/tiff"},
                   "CLP": {"href": "./CLP.tif"},
                   "CLM": {"href": "./CLM.tif", "proj:transform": [160, 0, 500000, 0, -160, 5100000],
                           "proj:shape": [10, 12]},
                   "thumbnail": {"href": "https://example.com/thumb.jpg", "type": "image/jpeg"}},
    }


def test_an_item_dict_and_its_pystac_item_give_the_same_acquisition() -> None:
    """The one conversion rule reads an item's dict (hrefs absolute) as it reads the pystac Item of the same
    JSON (hrefs resolved against the item's file): layout, level, DN offset from raster:bands, sun angles and
    stored cloud layers, worked out by hand."""
    folder = "/data/archive/items/S2B_33TWN_20230615_0_L2A"
    item = pystac.Item.from_dict(_earth_search_item(), href=f"{folder}/item.json")
    data = _earth_search_item()
    for asset in data["assets"].values():
        if "://" not in asset["href"]:
            asset["href"] = f"{folder}/{asset['href'].removeprefix('./')}"
    acq = acquisition_from_dict(data)
    assert acq == acquisition_from_item(item)
    assert acq.datetime == dt.datetime(2023, 6, 15, 10, 0, 31, 24000, tzinfo=dt.UTC)
    assert dict(acq.assets) == {"B02": f"{folder}/blue.tif", "B04": f"{folder}/red.tif", "SCL": f"{folder}/scl.tif"}
    assert (acq.layout, acq.level, acq.offset, acq.crs, acq.tile) == ("earth-search", "L2A", 1000, "EPSG:32633",
                                                                      "MGRS-33TWN")
    assert (acq.sun_azimuth, acq.sun_elevation) == (150.0, 59.5)
    assert acq.footprint.equals(box(14.0, 45.0, 15.0, 46.0))
    assert acq.cloud_layers is not None and acq.cloud_layers.clm == f"{folder}/CLM.tif"
    assert acq.cloud_layers.shape == (10, 12) and acq.cloud_layers.transform == (160, 0, 500000, 0, -160, 5100000)


def test_an_item_dict_without_datetime_or_projection_names_what_it_lacks() -> None:
    """A dict without a datetime, or with neither proj:epsg nor proj:code, is an ArchiveError naming the item."""
    data = _earth_search_item()
    data["properties"]["datetime"] = None
    with pytest.raises(ArchiveError, match=r"'S2B_33TWN_20230615_0_L2A' has no datetime"):
        acquisition_from_dict(data)
    data = _earth_search_item()
    del data["properties"]["proj:code"]
    with pytest.raises(ArchiveError, match="neither proj:epsg nor proj:code"):
        acquisition_from_dict(data)
