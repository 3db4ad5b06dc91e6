"""The STAC archive writer and reader."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import band_array, band_transform
from shapely.geometry import box

from stats.archive.catalog import Archive, ArchiveWriter
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
