"""End-to-end engine behaviour on hand-made tiles (see conftest for the known DN)."""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import multiprocessing
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import BASE_DN, CRS_UTM, at_10m, band_array, band_transform, utm_box
from s2cloudless import S2PixelCloudDetector

from stats import Archive, InvalidRequestError, TimeSeriesRequest, query_timeseries
from stats.bands import MODEL_BANDS, S2_BANDS

YEAR = {"from": "2023-01-01", "to": "2023-12-31"}


def run(archive: Path, **fields):
    body = {"crs": CRS_UTM, "time": YEAR, **fields}
    return query_timeseries(TimeSeriesRequest.from_dict(body), Archive.open(archive))


def polygon(*rings) -> dict:
    return {"type": "Polygon", "coordinates": list(rings)}


def expected_mean(band: str, mask10: np.ndarray, offset: int = 0) -> float:
    """Mean reflectance of ``band`` over a 10 m pixel mask, from the known arrays with numpy only."""
    values = at_10m(band, band_array(band)).astype(np.float64)[mask10]
    return float(((values - offset) / 10000).mean())


def square_mask(col0: int, row0: int, col1: int, row1: int) -> np.ndarray:
    mask = np.zeros((12, 12), dtype=bool)
    mask[row0:row1, col0:col1] = True
    return mask


def test_band_mean_over_square_equals_hand_value(simple_archive: Path) -> None:
    """A 4 x 4 px square: B04 mean is base + 12 * 2.5 + 2.5 + 1 DN, the 16 px counted."""
    result = run(simple_archive, geometry=polygon(utm_box(1, 1, 5, 5)), bands=["B04"],
                 statistics=["count", "mean", "min", "max"], time={"from": "2023-01-05", "to": "2023-01-05"})
    (entry,) = result.series
    stats = entry.bands["B04"]
    assert stats["count"] == 16 and entry.valid_pixels == 16 and entry.nodata_pixels == 0
    assert stats["mean"] == pytest.approx((BASE_DN["B04"] + 12 * 2.5 + 2.5 + 1) / 10000, abs=1e-12)
    assert stats["min"] == pytest.approx((BASE_DN["B04"] + 12 + 1 + 1) / 10000)
    assert stats["max"] == pytest.approx((BASE_DN["B04"] + 12 * 4 + 4 + 1) / 10000)


def test_polygon_with_hole_excludes_the_hole(simple_archive: Path) -> None:
    """The 2 x 2 px hole in a 4 x 4 px square leaves 12 pixels, and the mean over those."""
    geom = polygon(utm_box(1, 1, 5, 5), utm_box(2, 2, 4, 4)[::-1])
    result = run(simple_archive, geometry=geom, statistics=["count", "mean"],
                 time={"from": "2023-01-05", "to": "2023-01-05"})
    (entry,) = result.series
    mask = square_mask(1, 1, 5, 5) & ~square_mask(2, 2, 4, 4)
    assert entry.valid_pixels == 12
    for band in S2_BANDS:
        assert entry.bands[band]["mean"] == pytest.approx(expected_mean(band, mask), abs=1e-12), band


def test_multipolygon_counts_both_parts(simple_archive: Path) -> None:
    """Two disjoint squares (4 + 9 px) give one set of statistics over 13 pixels."""
    geom = {"type": "MultiPolygon", "coordinates": [[utm_box(0, 0, 2, 2)], [utm_box(8, 8, 11, 11)]]}
    result = run(simple_archive, geometry=geom, bands=["B8A", "B01"], statistics=["count", "mean"],
                 time={"from": "2023-01-05", "to": "2023-01-05"})
    mask = square_mask(0, 0, 2, 2) | square_mask(8, 8, 11, 11)
    (entry,) = result.series
    assert entry.valid_pixels == 13
    assert entry.bands["B8A"]["mean"] == pytest.approx(expected_mean("B8A", mask), abs=1e-12)
    assert entry.bands["B01"]["mean"] == pytest.approx(expected_mean("B01", mask), abs=1e-12)


def test_baseline_04_offset_is_removed(simple_archive: Path) -> None:
    """The 04.00 date stores DN + 1000; harmonised, it equals the 02.09 date; not harmonised, it does not."""
    geom = polygon(utm_box(1, 1, 5, 5))
    result = run(simple_archive, geometry=geom, statistics=["mean"], time={"from": "2023-01-01", "to": "2023-07-31"})
    old, new = result.series
    assert new.date == dt.date(2023, 7, 4)
    for band in S2_BANDS:
        assert new.bands[band]["mean"] == pytest.approx(old.bands[band]["mean"], abs=1e-12)
    raw = run(simple_archive, geometry=geom, statistics=["mean"], harmonize=False,
              time={"from": "2023-07-04", "to": "2023-07-04"})
    assert raw.series[0].bands["B04"]["mean"] == pytest.approx(old.bands["B04"]["mean"] + 0.1, abs=1e-12)


def test_nodata_pixels_are_excluded_and_counted(simple_archive: Path) -> None:
    """On the half-no-data date a square across the edge keeps only its right half."""
    geom = polygon(utm_box(4, 2, 8, 6))
    result = run(simple_archive, geometry=geom, statistics=["count", "mean"],
                 time={"from": "2023-08-10", "to": "2023-08-10"})
    (entry,) = result.series
    assert (entry.valid_pixels, entry.nodata_pixels) == (8, 8)
    assert entry.bands["B04"]["mean"] == pytest.approx(expected_mean("B04", square_mask(6, 2, 8, 6)), abs=1e-12)


def test_date_without_valid_pixels_is_dropped_or_kept_empty(simple_archive: Path) -> None:
    """A polygon wholly in the no-data half is dropped by default and reported with nulls on request."""
    geom = polygon(utm_box(0, 0, 3, 3))
    window = {"from": "2023-08-10", "to": "2023-08-10"}
    assert run(simple_archive, geometry=geom, time=window).series == ()
    kept = run(simple_archive, geometry=geom, time=window, include_empty=True, statistics=["count", "mean"])
    (entry,) = kept.series
    assert entry.valid_pixels == 0 and entry.nodata_pixels == 9
    assert entry.cloud_probability is None and entry.cloudy is None
    assert entry.bands["B04"] == {"count": 0, "mean": None}
    assert kept.to_dict()["summary"]["dropped_empty"] == 0


def test_averaged_pixel_probability_equals_s2cloudless_on_numpy_means(simple_archive: Path) -> None:
    """The cloud probability is s2cloudless applied to band means computed here with numpy."""
    mask = square_mask(1, 1, 5, 5) & ~square_mask(2, 2, 4, 4)
    geom = polygon(utm_box(1, 1, 5, 5), utm_box(2, 2, 4, 4)[::-1])
    result = run(simple_archive, geometry=geom, time={"from": "2023-01-05", "to": "2023-01-05"})
    means = np.array([expected_mean(b, mask) for b in MODEL_BANDS])
    reference = S2PixelCloudDetector(all_bands=False).get_cloud_probability_maps(means[None, None, None, :])
    assert result.series[0].cloud_probability == float(reference[0, 0, 0])
    assert result.series[0].cloudy is (float(reference[0, 0, 0]) >= 0.4)


def test_resolution_60_averages_the_10m_bands(simple_archive: Path) -> None:
    """At 60 m a 10 m band is averaged over 6 x 6 blocks; the 60 m bands are read as stored."""
    geom = polygon(utm_box(0, 0, 12, 12))
    result = run(simple_archive, geometry=geom, resolution=60, statistics=["count", "min", "max"],
                 bands=["B04", "B09"], time={"from": "2023-01-05", "to": "2023-01-05"})
    (entry,) = result.series
    b04 = band_array("B04").astype(np.float64)
    blocks = b04.reshape(2, 6, 2, 6).mean(axis=(1, 3)) / 10000
    assert entry.valid_pixels == 4
    assert entry.bands["B04"]["min"] == pytest.approx(blocks.min(), abs=1e-9)
    assert entry.bands["B04"]["max"] == pytest.approx(blocks.max(), abs=1e-9)
    assert entry.bands["B09"]["max"] == pytest.approx((BASE_DN["B09"] + 4) / 10000, abs=1e-12)


def test_tiles_of_one_date_are_mosaicked(make_archive) -> None:
    """Tile A has no data on its left half; tile B (same date, same grid, +50 DN) fills it."""
    when = dt.datetime(2023, 5, 1, 10, tzinfo=dt.UTC)
    half = {}
    plus = {}
    for b in S2_BANDS:
        arr = band_array(b)
        arr[:, : arr.shape[1] // 2] = 0
        half[b] = (arr, band_transform(b))
        plus[b] = (band_array(b, BASE_DN[b] + 50), band_transform(b))
    root = make_archive([{"id": "A", "when": when, "bands": half},
                         {"id": "B", "when": when + dt.timedelta(seconds=5), "bands": plus}])
    result = run(root, geometry=polygon(utm_box(4, 2, 8, 6)), bands=["B04"], statistics=["count", "mean"])
    (entry,) = result.series
    assert entry.scenes == ("A", "B")
    assert entry.valid_pixels == 16
    left, right = square_mask(4, 2, 6, 6), square_mask(6, 2, 8, 6)
    expected = (expected_mean("B04", left) * 8 + 0.005 * 8 + expected_mean("B04", right) * 8) / 16
    assert entry.bands["B04"]["mean"] == pytest.approx(expected, abs=1e-12)


def test_tile_on_another_grid_is_warped_by_nearest(make_archive) -> None:
    """A second tile shifted by 3 m is resampled to the first tile's grid by nearest neighbour."""
    when = dt.datetime(2023, 5, 1, 10, tzinfo=dt.UTC)
    empty = {b: (np.zeros_like(band_array(b)), band_transform(b)) for b in S2_BANDS}
    empty["B04"] = (band_array("B04"), band_transform("B04"))  # A: only B04 has data -> no valid pixel
    shifted = {b: (band_array(b), band_transform(b, x0=500003.0)) for b in S2_BANDS}
    root = make_archive([{"id": "A", "when": when, "bands": empty},
                         {"id": "B", "when": when, "bands": shifted}])
    result = run(root, geometry=polygon(utm_box(2, 2, 6, 6)), bands=["B04"], statistics=["count", "mean"])
    (entry,) = result.series
    assert entry.scenes == ("B",)
    # grid pixel centre x = 500005 + 10 c lies in B's column floor((500005 + 10 c - 500003) / 10) = c
    assert entry.bands["B04"]["mean"] == pytest.approx(expected_mean("B04", square_mask(2, 2, 6, 6)), abs=1e-12)


def test_missing_asset_gives_a_date_error_and_partial_status(simple_archive: Path) -> None:
    """Deleting one COG of one date leaves an error entry for that date and answers the others."""
    (simple_archive / "items" / "T1_20230704" / "B08.tif").unlink()
    result = run(simple_archive, geometry=polygon(utm_box(6, 6, 10, 10)), bands=["B08"])
    assert result.status == "PARTIAL"
    errors = [d for d in result.series if d.error]
    assert [d.date for d in errors] == [dt.date(2023, 7, 4)]
    assert "B08" in errors[0].error and "T1_20230704" in errors[0].error
    assert sum(1 for d in result.series if not d.error) == 2


def test_corrupt_asset_gives_a_date_error(simple_archive: Path) -> None:
    """A truncated COG is reported per date, not raised."""
    path = simple_archive / "items" / "T1_20230105" / "B02.tif"
    path.write_bytes(path.read_bytes()[:300])
    result = run(simple_archive, geometry=polygon(utm_box(6, 6, 10, 10)), bands=["B02"])
    assert result.status == "PARTIAL"
    assert result.series[0].error is not None and "T1_20230105" in result.series[0].error


def test_max_probability_drops_cloudy_dates(make_archive) -> None:
    """A bright flat spectrum (a cloud) is dropped by max_probability; the clear date stays."""
    cloud = {b: (np.full_like(band_array(b), 6000 if b != "B10" else 150), band_transform(b)) for b in S2_BANDS}
    root = make_archive([
        {"id": "clear", "when": dt.datetime(2023, 3, 1, 10, tzinfo=dt.UTC)},
        {"id": "cloud", "when": dt.datetime(2023, 3, 11, 10, tzinfo=dt.UTC), "bands": cloud},
    ])
    geom = polygon(utm_box(1, 1, 5, 5))
    both = run(root, geometry=geom)
    assert [d.cloudy for d in both.series] == [False, True]
    kept = run(root, geometry=geom, cloud={"max_probability": 0.4})
    assert [d.scenes for d in kept.series] == [("clear",)]
    assert kept.dropped_cloudy == 1


def test_indices_are_computed_per_pixel(simple_archive: Path) -> None:
    """NDVI statistics are over per-pixel NDVI, not the NDVI of the means."""
    mask = square_mask(1, 1, 5, 5)
    result = run(simple_archive, geometry=polygon(utm_box(1, 1, 5, 5)), indices=["NDVI", {"name": "RATIO", "expression": "B08 / B04"}],
                 statistics=["mean", "max"], time={"from": "2023-01-05", "to": "2023-01-05"})
    red = at_10m("B04", band_array("B04"))[mask] / 10000
    nir = at_10m("B08", band_array("B08"))[mask] / 10000
    ndvi = (nir - red) / (nir + red)
    stats = result.series[0].indices
    assert stats["NDVI"]["mean"] == pytest.approx(ndvi.mean(), abs=1e-12)
    assert stats["RATIO"]["max"] == pytest.approx((nir / red).max(), abs=1e-12)


def test_polygon_in_wgs84_is_reprojected(simple_archive: Path) -> None:
    """The same square given in lon/lat selects the same 16 pixels."""
    from pyproj import Transformer

    to_wgs = Transformer.from_crs(CRS_UTM, "EPSG:4326", always_xy=True)
    ring = [list(to_wgs.transform(x, y)) for x, y in utm_box(1, 1, 5, 5)]
    result = query_timeseries(
        TimeSeriesRequest.from_dict({"geometry": polygon(ring), "time": {"from": "2023-01-05", "to": "2023-01-05"},
                                     "statistics": ["count"]}),
        Archive.open(simple_archive),
    )
    assert result.series[0].valid_pixels == 16


def test_polygon_outside_the_archive_gives_an_empty_series(simple_archive: Path) -> None:
    """No acquisition intersects a polygon far away: an empty OK series, not an error."""
    result = run(simple_archive, geometry=polygon([[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]))
    assert result.series == () and result.status == "OK" and result.acquisitions == 0


def test_window_over_the_pixel_limit_is_rejected(simple_archive: Path) -> None:
    """A bbox larger than max_pixels is a 4xx-class error naming the size and the limit."""
    from stats import Limits

    request = TimeSeriesRequest.from_dict({"geometry": polygon(utm_box(0, 0, 12, 12)), "crs": CRS_UTM, "time": YEAR})
    with pytest.raises(InvalidRequestError, match=r"12 x 12 = 144 pixels.*limit of 100"):
        query_timeseries(request, Archive.open(simple_archive), limits=Limits(max_pixels=100))


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """A static file handler that honours ``Range: bytes=a-b``, as object stores and web servers do."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        match = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if match is None or not path.is_file():
            super().do_GET()
            return
        data = path.read_bytes()
        start = int(match.group(1))
        end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self.wfile.write(data[start:end + 1])


def _serve(directory: str, port_queue) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_RangeHandler, directory=directory))
    port_queue.put(server.server_address[1])
    server.serve_forever()


def test_archive_served_over_http_gives_the_same_answer(simple_archive: Path) -> None:
    """A static catalog on a web server (a local one, in its own process) is read with range requests,
    with the same result as the folder."""
    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    server = context.Process(target=_serve, args=(str(simple_archive), ports), daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{ports.get(timeout=30)}/collection.json"
        body = {"geometry": polygon(utm_box(6, 1, 10, 5)), "crs": CRS_UTM, "time": YEAR, "indices": ["NDVI"]}
        remote = query_timeseries(TimeSeriesRequest.from_dict(body), Archive.open(url))
        local = query_timeseries(TimeSeriesRequest.from_dict(body), Archive.open(simple_archive))
    finally:
        server.terminate()
        server.join(10)
    assert remote.to_dict() == local.to_dict()
    assert len(remote.series) == 3


def test_harmonize_false_changes_the_statistics_not_the_cloud_model(simple_archive: Path) -> None:
    """Without harmonisation the 04.00 date reports stored DN, but s2cloudless still sees harmonised values."""
    geom = polygon(utm_box(6, 1, 10, 5))
    window = {"from": "2023-07-04", "to": "2023-07-04"}
    on = run(simple_archive, geometry=geom, time=window, cloud={"mode": "both", "resolution": 20})
    off = run(simple_archive, geometry=geom, time=window, harmonize=False, cloud={"mode": "both", "resolution": 20})
    assert off.series[0].bands["B04"]["mean"] == pytest.approx(on.series[0].bands["B04"]["mean"] + 0.1, abs=1e-12)
    assert off.series[0].cloud_probability == on.series[0].cloud_probability
    assert off.series[0].pixel_cloud == on.series[0].pixel_cloud


def test_band_in_another_crs_than_its_item_is_a_date_error(simple_archive: Path) -> None:
    """A COG whose CRS disagrees with the item's proj:epsg gives that date an error, not wrong numbers."""
    import rasterio

    path = simple_archive / "items" / "T1_20230704" / "B04.tif"
    with rasterio.open(path) as src:
        data, profile = src.read(), src.profile
    profile.update(driver="GTiff", crs="EPSG:32634")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    result = run(simple_archive, geometry=polygon(utm_box(6, 6, 10, 10)), bands=["B04"])
    assert result.status == "PARTIAL"
    (bad,) = [d for d in result.series if d.error]
    assert bad.date == dt.date(2023, 7, 4) and "EPSG:32634" in bad.error and "EPSG:32633" in bad.error


def test_time_budget_gives_partial_instead_of_late(simple_archive: Path) -> None:
    """With no time budget left, every date is reported as not computed and the status is PARTIAL."""
    from stats import Limits

    request = TimeSeriesRequest.from_dict({"geometry": polygon(utm_box(6, 1, 10, 5)), "crs": CRS_UTM, "time": YEAR})
    result = query_timeseries(request, Archive.open(simple_archive), limits=Limits(time_budget_s=1e-9))
    assert result.status == "PARTIAL" and len(result.series) == 3
    assert all("time budget" in d.error for d in result.series)


def test_acquisition_and_range_limits(simple_archive: Path) -> None:
    """More acquisitions or days than allowed is a 400-class error naming the numbers."""
    from stats import Limits

    request = TimeSeriesRequest.from_dict({"geometry": polygon(utm_box(6, 1, 10, 5)), "crs": CRS_UTM, "time": YEAR})
    with pytest.raises(InvalidRequestError, match=r"match 3 acquisitions, more than the limit of 2"):
        query_timeseries(request, Archive.open(simple_archive), limits=Limits(max_acquisitions=2))
    with pytest.raises(InvalidRequestError, match=r"covers 365 days, more than the limit of 100"):
        query_timeseries(request, Archive.open(simple_archive), limits=Limits(max_days=100))


def test_repeated_query_reads_nothing_and_a_rewritten_file_is_read_again(simple_archive: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The second identical query comes from the window cache; a band file rewritten meanwhile is not."""
    import os

    from stats import raster
    from stats.archive.catalog import write_band_cog

    query = {"geometry": polygon(utm_box(1, 1, 5, 5)), "bands": ["B04"], "statistics": ["mean"],
             "time": {"from": "2023-01-05", "to": "2023-01-05"}}
    first = run(simple_archive, **query).series[0].bands["B04"]["mean"]
    reads: list[str] = []
    real_read = raster._read_aligned

    def counting_read(src, grid):  # type: ignore[no-untyped-def]
        reads.append(Path(src.name).stem)
        return real_read(src, grid)

    monkeypatch.setattr(raster, "_read_aligned", counting_read)
    assert run(simple_archive, **query).series[0].bands["B04"]["mean"] == first
    assert reads == []
    path = simple_archive / "items" / "T1_20230105" / "B04.tif"
    write_band_cog(path, band_array("B04") + 100, CRS_UTM, band_transform("B04"))
    stamp = path.stat().st_mtime + 5
    os.utime(path, (stamp, stamp))
    assert run(simple_archive, **query).series[0].bands["B04"]["mean"] == pytest.approx(first + 0.01, abs=1e-12)
    assert reads == ["B04"]


def test_water_on_a_half_empty_clear_date_says_no_data_not_cloudy(simple_archive: Path) -> None:
    """2023-08-10 has no data on the left half of the tile and no cloud: too little is clear, and the reason
    given is the missing data."""
    request = TimeSeriesRequest.from_dict({"geometry": polygon(utm_box(0, 0, 12, 12)), "crs": CRS_UTM,
                                           "time": {"from": "2023-08-10", "to": "2023-08-10"}, "bands": ["B04"],
                                           "water": {"method": "threshold"}, "cloud": {"mode": "pixel"}})
    (entry,) = query_timeseries(request, Archive.open(simple_archive)).to_dict()["series"]
    assert entry["pixels"]["nodata"] == entry["pixels"]["valid"] == 72  # half of the 12 x 12 pixels
    assert entry["cloud"]["fraction"] == 0
    assert entry["water"] == {"status": "NODATA", "fraction": None, "area_m2": None, "level": None,
                              "nominal_area_m2": 118.0 * 118.0, "threshold": None, "threshold_method": None,
                              "valid_fraction": 0.5, "cloud_fraction": 0.0}


def test_a_polygon_mask_remembered_for_a_grid_is_a_fresh_copy_of_that_grid_only() -> None:
    from affine import Affine
    from pyproj import CRS
    from rasterio.features import geometry_mask
    from shapely.geometry import box

    from stats.grid import Grid, polygon_mask

    grid = Grid(CRS.from_epsg(32633), Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5000100.0), (10, 10))
    other = Grid(grid.crs, Affine(10.0, 0.0, 500010.0, 0.0, -10.0, 5000100.0), (10, 10))
    field = box(500020.0, 5000020.0, 500065.0, 5000075.0)
    first = polygon_mask(field, grid)
    first[:] = False  # a caller's own array: the next call is not affected
    for g in (grid, other, grid):
        expected = geometry_mask([field], out_shape=g.shape, transform=g.transform, invert=True)
        assert np.array_equal(polygon_mask(field, g), expected)
