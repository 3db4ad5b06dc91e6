"""Tests of the deterministic synthetic Sentinel-2 L1C demo archive (stats/archive/synthetic/).

The archive is built once per session in a temporary folder; the s2cloudless checks run the real model on
the archive's own COG pixels (20/60 m bands repeated onto the 10 m grid, baseline offset removed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import rasterio.features
import shapely
from affine import Affine
from pyproj import Transformer
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from stats.archive import synthetic
from stats.archive.catalog import Acquisition, Archive
from stats.archive.synthetic import (
    build_demo_archive,
    default_demo_dir,
    demo_polygons,
    fixtures_dir,
    lake_level,
    load_ground_truth,
    load_truth_masks,
)
from stats.bands import BASELINE_04_OFFSET, MODEL_BANDS, NATIVE_RESOLUTION, S2_BANDS
from stats.errors import ArchiveError

SCENE_PX = 504          # 5040 m at 10 m
THRESHOLD = 0.4         # s2cloudless default cloud threshold
GRID_10M = Affine(10.0, 0.0, 500040.0, 0.0, -10.0, 5100000.0)
TO_UTM = Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True)


def to_utm(geojson: dict[str, Any]) -> BaseGeometry:
    """A lon/lat GeoJSON geometry in EPSG:32633."""
    return shapely.transform(shape(geojson), lambda xy: np.column_stack(TO_UTM.transform(xy[:, 0], xy[:, 1])))


# --------------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def archive(demo_root: Path) -> Archive:
    return Archive.open(demo_root)


@pytest.fixture(scope="session")
def truth(demo_root: Path) -> dict[str, Any]:
    return load_ground_truth(demo_root)


@pytest.fixture(scope="session")
def recipe() -> dict[str, Any]:
    with (fixtures_dir() / "demo_recipe.json").open() as fh:
        data: dict[str, Any] = json.load(fh)
    return data


@pytest.fixture(scope="session")
def polygon_masks() -> dict[str, np.ndarray]:
    """10 m masks of the demo polygons, computed here independently of the generator."""
    masks = {}
    for feature in demo_polygons()["features"]:
        masks[feature["properties"]["name"]] = rasterio.features.geometry_mask(
            [mapping(to_utm(feature["geometry"]))], out_shape=(SCENE_PX, SCENE_PX), transform=GRID_10M,
            all_touched=False, invert=True,
        )
    return masks


def read_band(acq: Acquisition, band: str) -> np.ndarray:
    with rasterio.open(acq.assets[band]) as src:
        return src.read(1)


def model_input(acq: Acquisition) -> np.ndarray:
    """(504, 504, 10) float32 reflectance in MODEL_BANDS order, 20/60 m bands repeated to 10 m."""
    layers = []
    for band in MODEL_BANDS:
        dn = read_band(acq, band)
        factor = SCENE_PX // dn.shape[0]
        layers.append(np.repeat(np.repeat(dn, factor, axis=0), factor, axis=1))
    dn = np.stack(layers, axis=-1).astype(np.float32)
    return np.clip(dn - acq.dn_offset, 0, None) / np.float32(10000)


def block_all(mask: np.ndarray, k: int = 6) -> np.ndarray:
    """True where the whole k x k block (the 60 m pixel) is True, on the 10 m grid."""
    n = mask.shape[0] // k
    blocks = mask.reshape(n, k, n, k).all(axis=(1, 3))
    return np.repeat(np.repeat(blocks, k, axis=0), k, axis=1)


@pytest.fixture(scope="session")
def model_samples(demo_root: Path, archive: Archive) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Per date: s2cloudless probabilities on every 4th pixel, and the truth masks at those pixels.

    ``clear`` / ``thick`` / ``cloud`` hold where the whole 60 m block is cloud-free / thick / cloud, so the
    20 m and 60 m bands of the pixel see the same sky as its 10 m bands.
    """
    from s2cloudless import S2PixelCloudDetector

    detector = S2PixelCloudDetector(all_bands=False)
    sample = (slice(1, None, 4), slice(2, None, 4))
    out = {}
    for acq in archive.acquisitions:
        masks = load_truth_masks(demo_root, acq.date)
        valid = block_all(~masks["nodata"])
        derived = {
            "clear": block_all(~masks["haze"]) & valid,
            "thick": block_all(masks["thick"]) & valid,
            "cloud": block_all(masks["cloud"]) & valid,
            "valid": valid,
            "water": masks["water"],
            "shadow": masks["shadow"],
        }
        prob = detector.get_cloud_probability_maps(model_input(acq)[sample][np.newaxis])[0]
        out[acq.date.isoformat()] = (prob, {k: v[sample] for k, v in derived.items()})
    return out


@pytest.fixture
def small_recipe(tmp_path: Path, recipe: dict[str, Any]) -> Path:
    """A copy of the demo recipe with only its first two acquisitions (fast to build)."""
    folder = tmp_path / "fixtures"
    folder.mkdir()
    small = dict(recipe, acquisitions=recipe["acquisitions"][:2])
    (folder / "demo_recipe.json").write_text(json.dumps(small))
    (folder / "demo_polygons.geojson").write_bytes((fixtures_dir() / "demo_polygons.geojson").read_bytes())
    return folder / "demo_recipe.json"


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*")) if path.is_file()
    }


# --------------------------------------------------------------------------------------------------
# Archive structure
# --------------------------------------------------------------------------------------------------

def test_archive_holds_at_least_36_acquisitions_over_2023(archive: Archive) -> None:
    """The demo archive has >= 36 uniquely named acquisitions in 2023, each around 10:00 UTC."""
    acqs = archive.acquisitions
    assert len(acqs) >= 36
    assert len({a.id for a in acqs}) == len(acqs)
    assert len({a.date for a in acqs}) == len(acqs)
    for acq in acqs:
        assert acq.datetime.year == 2023
        assert 9 <= acq.datetime.hour <= 11
        assert acq.id.startswith(f"S2A_MSIL1C_{acq.date:%Y%m%d}T")
        assert acq.tile == "33TWL"
        assert acq.crs == "EPSG:32633"


def test_every_item_has_13_uint16_cogs_at_native_resolution(archive: Archive) -> None:
    """Each item has all 13 band assets as uint16 COGs, nodata 0, on the 10/20/60 m grids of one scene."""
    for acq in archive.acquisitions:
        assert set(acq.assets) == set(S2_BANDS)
        for band in S2_BANDS:
            res = NATIVE_RESOLUTION[band]
            with rasterio.open(acq.assets[band]) as src:
                assert src.dtypes == ("uint16",)
                assert src.nodata == 0
                assert src.res == (res, res)
                assert src.shape == (5040 // res, 5040 // res)
                assert src.bounds == (500040.0, 5094960.0, 505080.0, 5100000.0)
                assert src.crs.to_epsg() == 32633
                assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
                assert src.profile["tiled"]


def test_footprint_lies_near_46n_15e(archive: Archive) -> None:
    """The scene is in UTM 33N around 46.0 N, 15.0 E."""
    minx, miny, maxx, maxy = archive.spatial_extent or (0, 0, 0, 0)
    assert 15.0 < minx < maxx < 15.1
    assert 45.9 < miny < maxy < 46.1


def test_sky_types_cover_all_kinds_with_a_clear_majority(truth: dict[str, Any]) -> None:
    """Clear dates are the majority; thin and thick cirrus, cumulus and overcast all occur."""
    skies = [d["sky"] for d in truth["dates"].values()]
    assert skies.count("clear") > len(skies) / 2
    assert {"clear", "cirrus", "cumulus", "overcast"} <= set(skies)
    cirrus = [d for d in truth["dates"].values() if d["sky"] == "cirrus"]
    assert any(d["cloud_cover"] == 0 for d in cirrus), "expected a thin-cirrus (clear by rule) date"
    assert any(d["cloud_cover"] > 0 for d in cirrus), "expected a thick-cirrus (cloud by rule) date"


# --------------------------------------------------------------------------------------------------
# Determinism, cache, atomic install
# --------------------------------------------------------------------------------------------------

def test_two_builds_produce_identical_bytes(demo_root: Path, tmp_path: Path) -> None:
    """A second build of the same recipe writes byte-identical COGs, truth rasters and ground truth."""
    other = build_demo_archive(tmp_path / "again")
    assert tree_digest(other) == tree_digest(demo_root)


def test_second_call_returns_cached_archive_without_rewriting(demo_root: Path) -> None:
    """Building again into a finished archive returns at once and writes nothing."""
    watched = [demo_root / "collection.json", demo_root / synthetic.STAMP_FILE, demo_root / "ground_truth.json"]
    before = [p.stat().st_mtime_ns for p in watched]
    assert build_demo_archive(demo_root) == demo_root
    assert [p.stat().st_mtime_ns for p in watched] == before


def test_changed_recipe_rebuilds_the_cache(small_recipe: Path, tmp_path: Path) -> None:
    """A different recipe (new seed) invalidates the stamp and regenerates the archive in place."""
    root = tmp_path / "cache"
    build_demo_archive(root, recipe=small_recipe)
    stamp = json.loads((root / synthetic.STAMP_FILE).read_text())
    first = read_band(Archive.open(root).acquisitions[1], "B02")
    spec = json.loads(small_recipe.read_text())
    spec["seed"] += 1
    small_recipe.write_text(json.dumps(spec))
    build_demo_archive(root, recipe=small_recipe)
    assert json.loads((root / synthetic.STAMP_FILE).read_text())["digest"] != stamp["digest"]
    assert not np.array_equal(read_band(Archive.open(root).acquisitions[1], "B02"), first)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_force_regenerates_an_up_to_date_archive(small_recipe: Path, tmp_path: Path) -> None:
    """force=True rewrites even when the stamp matches."""
    root = build_demo_archive(tmp_path / "forced", recipe=small_recipe)
    before = (root / "collection.json").stat().st_mtime_ns
    time.sleep(0.01)
    build_demo_archive(root, recipe=small_recipe, force=True)
    assert (root / "collection.json").stat().st_mtime_ns != before
    assert len(Archive.open(root).acquisitions) == 2


def test_interrupted_build_leaves_no_partial_archive(small_recipe: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A build that fails midway leaves neither the target folder nor a temporary sibling behind."""
    def explode(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic.build, "polygon_truth", explode)
    with pytest.raises(KeyboardInterrupt):
        build_demo_archive(tmp_path / "partial", recipe=small_recipe)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fixtures"]


def test_refuses_to_overwrite_a_folder_that_is_not_a_demo_archive(small_recipe: Path, tmp_path: Path) -> None:
    """A non-empty folder without the demo stamp is left alone."""
    root = tmp_path / "precious"
    root.mkdir()
    (root / "notes.txt").write_text("keep me")
    with pytest.raises(ArchiveError, match="neither empty nor a polyfis demo archive"):
        build_demo_archive(root, recipe=small_recipe)
    assert (root / "notes.txt").read_text() == "keep me"


def test_default_locations_honour_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """POLYFIS_DEMO_DIR, XDG_CACHE_HOME and POLYFIS_FIXTURES steer the default folders."""
    monkeypatch.delenv("POLYFIS_DEMO_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_demo_dir() == tmp_path / "xdg" / "polyfis" / "demo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_demo_dir() == Path.home() / ".cache" / "polyfis" / "demo"
    monkeypatch.setenv("POLYFIS_DEMO_DIR", str(tmp_path / "demo"))
    assert default_demo_dir() == tmp_path / "demo"
    monkeypatch.delenv("POLYFIS_FIXTURES", raising=False)
    assert fixtures_dir() == Path(synthetic.__file__).resolve().parents[2] / "fixtures"
    monkeypatch.setenv("POLYFIS_FIXTURES", str(tmp_path))
    assert fixtures_dir() == tmp_path


def test_missing_recipe_is_reported_with_its_path(tmp_path: Path) -> None:
    """A recipe that does not exist raises ArchiveError naming it."""
    with pytest.raises(ArchiveError, match="Cannot read the demo recipe .*nope.json"):
        build_demo_archive(tmp_path / "x", recipe=tmp_path / "nope.json")


# --------------------------------------------------------------------------------------------------
# Pixels: baseline, no data
# --------------------------------------------------------------------------------------------------

def test_baseline_switches_mid_year_with_the_dn_offset(archive: Archive, truth: dict[str, Any],
                                                        polygon_masks: dict[str, np.ndarray]) -> None:
    """Baseline 02.09 before the switch date, 04.00 after; raw DN of the stable gravel pit jump by 1000."""
    switch = dt.date.fromisoformat(truth["scene"]["baseline_switch_date"])
    for acq in archive.acquisitions:
        assert acq.processing_baseline == ("04.00" if acq.date >= switch else "02.09")
        assert acq.dn_offset == (BASELINE_04_OFFSET if acq.date >= switch else 0)
    clear = [a for a in archive.acquisitions if truth["dates"][a.date.isoformat()]["sky"] == "clear"
             and truth["dates"][a.date.isoformat()]["nodata_cover"] == 0]
    before = max((a for a in clear if a.date < switch), key=lambda a: a.date)
    after = min((a for a in clear if a.date >= switch), key=lambda a: a.date)
    assert (after.date - before.date).days <= 20
    mask = polygon_masks["bare_soil"]
    for band in ("B02", "B04", "B08"):
        raw_before = read_band(before, band)[mask].mean()
        raw_after = read_band(after, band)[mask].mean()
        assert raw_after - raw_before == pytest.approx(1000, abs=25), band
        # one stable pixel shows the offset too
        row, col = np.argwhere(mask)[len(np.argwhere(mask)) // 2]
        assert 800 < int(read_band(after, band)[row, col]) - int(read_band(before, band)[row, col]) < 1200


def test_nodata_swath_is_zero_in_all_bands_exactly_where_the_truth_says(demo_root: Path, archive: Archive,
                                                                       truth: dict[str, Any]) -> None:
    """On swath-edge dates every band is 0 over a diagonal strip, and valid pixels are never 0."""
    swath_dates = [iso for iso, d in truth["dates"].items() if d["nodata_cover"] > 0]
    assert len(swath_dates) >= 3
    by_date = {a.date.isoformat(): a for a in archive.acquisitions}
    for iso, acq in by_date.items():
        nodata = load_truth_masks(demo_root, iso)["nodata"]
        for band in S2_BANDS:
            dn = read_band(acq, band)
            step = NATIVE_RESOLUTION[band] // 10
            assert np.array_equal(dn == 0, nodata[::step, ::step]), (iso, band)
        if iso in swath_dates:
            first_col = [int(np.argmax(row)) for row in nodata if row.any()]
            assert len(set(first_col)) > 5, "the strip should be diagonal, not a straight column"


# --------------------------------------------------------------------------------------------------
# The real s2cloudless model on the archive's pixels
# --------------------------------------------------------------------------------------------------

def test_s2cloudless_scores_thick_cloud_pixels_as_cloud(model_samples: dict[str, Any]) -> None:
    """>= 99 % of thick-cloud pixels (tau >= 5 over the 60 m block) get probability >= 0.4."""
    probs = np.concatenate([p[m["thick"]] for p, m in model_samples.values()])
    assert probs.size > 10000
    assert np.mean(probs >= THRESHOLD) >= 0.99


def test_s2cloudless_scores_cloud_free_land_as_clear(model_samples: dict[str, Any]) -> None:
    """>= 99 % of cloud-free land pixels (shadows included) get probability < 0.4, on every date."""
    pooled = []
    for iso, (prob, m) in model_samples.items():
        sel = m["clear"] & ~m["water"]
        if sel.sum() > 500:
            assert np.mean(prob[sel] < THRESHOLD) >= 0.98, iso
        pooled.append(prob[sel])
    probs = np.concatenate(pooled)
    assert probs.size > 100000
    assert np.mean(probs < THRESHOLD) >= 0.99


def test_s2cloudless_scores_cloud_free_water_as_clear(model_samples: dict[str, Any]) -> None:
    """>= 99 % of cloud-free lake pixels get probability < 0.4."""
    probs = np.concatenate([p[m["clear"] & m["water"]] for p, m in model_samples.values()])
    assert probs.size > 5000
    assert np.mean(probs < THRESHOLD) >= 0.99


def test_s2cloudless_leaves_cloud_shadows_clear(model_samples: dict[str, Any]) -> None:
    """Cloud shadows (clear by the rule) are not mistaken for cloud."""
    probs = np.concatenate([p[m["clear"] & m["shadow"]] for p, m in model_samples.values()])
    assert probs.size > 1000
    assert np.mean(probs < THRESHOLD) >= 0.99


def test_thin_cirrus_is_clear_by_the_rule_and_for_the_model(demo_root: Path, truth: dict[str, Any],
                                                          model_samples: dict[str, Any]) -> None:
    """Cirrus thinner than tau 1 counts as clear in the truth, and s2cloudless agrees."""
    thin = [iso for iso, d in truth["dates"].items() if d["sky"] == "cirrus" and d["max_optical_thickness"] < 1]
    assert len(thin) >= 2
    for iso in thin:
        assert truth["dates"][iso]["cloud_cover"] == 0
        cirrus = load_truth_masks(demo_root, iso)["cirrus"]
        assert cirrus[~load_truth_masks(demo_root, iso)["nodata"]].all()
        prob, m = model_samples[iso]
        assert np.mean(prob[m["valid"]] < THRESHOLD) >= 0.97, iso


def test_thick_cirrus_is_cloud_by_the_rule_and_for_the_model(truth: dict[str, Any],
                                                           model_samples: dict[str, Any]) -> None:
    """Cirrus with tau >= 1 counts as cloud in the truth, and s2cloudless flags it."""
    thick = [iso for iso, d in truth["dates"].items() if d["sky"] == "cirrus" and d["cloud_cover"] > 0]
    assert thick
    for iso in thick:
        prob, m = model_samples[iso]
        assert m["cloud"].sum() > 1000
        assert np.mean(prob[m["cloud"]] >= THRESHOLD) >= 0.98, iso


# --------------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------------

def test_ground_truth_has_every_polygon_and_date(truth: dict[str, Any], archive: Archive) -> None:
    """ground_truth.json has each demo polygon for each acquisition date, with consistent fields."""
    names = {f["properties"]["name"] for f in demo_polygons()["features"]}
    dates = {a.date.isoformat() for a in archive.acquisitions}
    assert set(truth["polygons"]) == names
    assert set(truth["dates"]) == dates
    for name, poly in truth["polygons"].items():
        assert set(poly["dates"]) == dates, name
        for iso, rec in poly["dates"].items():
            assert {"cloud_fraction", "cloudy", "shadow_fraction", "nodata_fraction", "sky",
                    "water_area_m2", "water_fraction"} <= set(rec)
            assert rec["sky"] == truth["dates"][iso]["sky"]
            assert 0 <= rec["nodata_fraction"] <= 1
            if rec["cloud_fraction"] is None:
                assert rec["nodata_fraction"] == 1 and rec["cloudy"] is None
            else:
                assert 0 <= rec["cloud_fraction"] <= 1
                assert rec["cloudy"] == (rec["cloud_fraction"] >= 0.5)
                assert 0 <= rec["shadow_fraction"] <= 1 - rec["cloud_fraction"] + 1e-9


def test_item_cloud_cover_is_the_true_cloud_percentage(demo_root: Path, archive: Archive,
                                                       truth: dict[str, Any]) -> None:
    """eo:cloud_cover equals the percentage of valid pixels that are cloud by the rule."""
    for acq in archive.acquisitions:
        masks = load_truth_masks(demo_root, acq.date)
        valid = ~masks["nodata"]
        expected = 100.0 * np.count_nonzero(masks["cloud"] & valid) / np.count_nonzero(valid)
        assert acq.cloud_cover == pytest.approx(expected, abs=1e-3)
        assert truth["dates"][acq.date.isoformat()]["cloud_cover"] == pytest.approx(expected, abs=1e-3)


def test_polygon_fractions_match_the_truth_rasters(demo_root: Path, truth: dict[str, Any],
                                                   polygon_masks: dict[str, np.ndarray]) -> None:
    """Polygon fractions count 10 m pixel centres inside the polygon in the truth rasters."""
    for iso in truth["dates"]:
        masks = load_truth_masks(demo_root, iso)
        for name, inside in polygon_masks.items():
            rec = truth["polygons"][name]["dates"][iso]
            n = np.count_nonzero(inside)
            assert truth["polygons"][name]["n_pixels"] == n
            valid = inside & ~masks["nodata"]
            assert rec["nodata_fraction"] == pytest.approx(1 - np.count_nonzero(valid) / n, abs=1e-6)
            if valid.any():
                cloud = np.count_nonzero(masks["cloud"] & valid) / np.count_nonzero(valid)
                shadow = np.count_nonzero(masks["shadow"] & valid) / np.count_nonzero(valid)
                assert rec["cloud_fraction"] == pytest.approx(cloud, abs=1e-6)
                assert rec["shadow_fraction"] == pytest.approx(shadow, abs=1e-6)
            assert rec["water_area_m2"] == 100.0 * np.count_nonzero(masks["water"] & inside)


def test_lake_water_area_shrinks_by_the_known_amount(demo_root: Path, truth: dict[str, Any],
                                                     recipe: dict[str, Any]) -> None:
    """The lake's water area follows its level: the late-summer loss matches the analytic shore area."""
    lake = recipe["layout"]["lake"]
    a, b = lake["semi_axes_m"]
    theta = np.linspace(0, 2 * math.pi, 20000, endpoint=False)
    factor = np.ones_like(theta)
    for k, amp, phase in lake["shore_harmonics"]:
        factor += amp * np.cos(k * theta + math.radians(phase))
    # area inside the normalised radius L is a * b * L**2 / 2 * integral of factor**-2 over theta
    unit_area = a * b * 0.5 * np.mean(factor ** -2.0) * 2 * math.pi
    island = math.pi * np.prod(lake["island"]["semi_axes_m"])
    dates = [dt.date.fromisoformat(iso) for iso in truth["dates"]]
    levels = {d: lake_level(lake, d) for d in dates}
    high, low = max(dates, key=levels.__getitem__), min(dates, key=levels.__getitem__)
    scene = {d: truth["dates"][d.isoformat()]["lake_water_area_m2"] for d in (high, low)}
    for d in (high, low):
        counted = 100.0 * np.count_nonzero(load_truth_masks(demo_root, d)["water"])
        assert scene[d] == counted
        assert counted == pytest.approx(unit_area * levels[d] ** 2 - island, rel=0.01)
    loss = scene[high] - scene[low]
    assert loss == pytest.approx(unit_area * (levels[high] ** 2 - levels[low] ** 2), rel=0.02)
    assert loss > 500000  # more than 50 ha
    fractions = [rec["water_fraction"] for rec in truth["polygons"]["lake"]["dates"].values()]
    assert max(fractions) > 0.99 and min(fractions) < 0.7
    assert all(rec["water_fraction"] == 1.0 for rec in truth["polygons"]["lake_centre"]["dates"].values())


def test_cumulus_covers_some_polygons_fully_and_others_not_at_all(truth: dict[str, Any]) -> None:
    """On cumulus dates clouds cover some polygons completely and leave others untouched."""
    cumulus = [iso for iso, d in truth["dates"].items() if d["sky"] == "cumulus"]
    assert len(cumulus) >= 4
    both = 0
    for iso in cumulus:
        fractions = [p["dates"][iso]["cloud_fraction"] for p in truth["polygons"].values()]
        if any(f == 1.0 for f in fractions) and any(f == 0.0 for f in fractions):
            both += 1
    assert both >= 4


def test_cumulus_partially_covers_the_mixed_polygons(truth: dict[str, Any]) -> None:
    """On several dates a cumulus covers part of a mixed polygon (where the averaged pixel can be wrong)."""
    mixed = [n for n, p in truth["polygons"].items() if p["kind"] == "mixed"]
    assert len(mixed) >= 2
    partial = {
        (iso, name)
        for name in mixed
        for iso, rec in truth["polygons"][name]["dates"].items()
        if rec["cloud_fraction"] is not None and 0.2 <= rec["cloud_fraction"] <= 0.8
    }
    assert len({iso for iso, _ in partial}) >= 3
    assert {name for _, name in partial} == set(mixed)


def test_cloud_shadows_are_displaced_away_from_the_sun(demo_root: Path, truth: dict[str, Any]) -> None:
    """Shadows lie where the cloud mask lands after shifting it away from the sun (north-west at 10 UTC)."""
    for iso, d in truth["dates"].items():
        if d["sky"] != "cumulus":
            continue
        de, ds = d["shadow_offset_m"]
        assert de < 0 and ds < 0  # shadows fall to the north-west of their clouds
        masks = load_truth_masks(demo_root, iso)
        shift_r, shift_c = round(ds / 10), round(de / 10)
        shifted = np.zeros_like(masks["cloud"])
        src = masks["cloud"][max(0, -shift_r):SCENE_PX - max(0, shift_r), max(0, -shift_c):SCENE_PX - max(0, shift_c)]
        shifted[max(0, shift_r):max(0, shift_r) + src.shape[0], max(0, shift_c):max(0, shift_c) + src.shape[1]] = src
        shadow = masks["shadow"]
        if shadow.sum() > 200:
            assert np.mean(shifted[shadow]) > 0.9, iso


def test_homogeneous_polygons_lie_well_inside_one_cover(demo_root: Path) -> None:
    """Every homogeneous polygon, grown by 20 m, covers a single land-cover class (one field, forest …)."""
    landcover = load_truth_masks(demo_root, "2023-01-05")["landcover"]
    for feature in demo_polygons()["features"]:
        props = feature["properties"]
        grown = to_utm(feature["geometry"]).buffer(20)
        inside = rasterio.features.geometry_mask([mapping(grown)], out_shape=landcover.shape,
                                                 transform=GRID_10M, invert=True)
        classes = set(np.unique(landcover[inside]).tolist())
        if props["homogeneous"]:
            assert len(classes) == 1, (props["name"], classes)
        if props["kind"] == "mixed":
            assert len(classes) >= 2, (props["name"], classes)


def test_demo_polygons_are_a_lonlat_feature_collection() -> None:
    """The fixture polygons are EPSG:4326 features with name/kind/homogeneous/description; the lake has a hole."""
    fc = demo_polygons()
    features = {f["properties"]["name"]: f for f in fc["features"]}
    kinds = [f["properties"]["kind"] for f in features.values()]
    assert kinds.count("field") >= 3 and kinds.count("mixed") >= 2
    assert {"water", "forest", "urban", "bare"} <= set(kinds)
    for feature in features.values():
        assert {"name", "kind", "homogeneous", "description"} <= set(feature["properties"])
        assert isinstance(feature["properties"]["homogeneous"], bool)
        geom = shape(feature["geometry"])
        assert geom.is_valid
        assert 15.0 < geom.bounds[0] < geom.bounds[2] < 15.1 and 45.9 < geom.bounds[1] < geom.bounds[3] < 46.1
    assert len(shape(features["lake"]["geometry"]).interiors) == 1


def test_small_field_is_about_five_hectares(truth: dict[str, Any]) -> None:
    """The small field polygon holds about 500 pixels (5 ha) at 10 m."""
    assert 450 <= truth["polygons"]["field_small"]["n_pixels"] <= 550


def test_fields_follow_their_crop_phenology(truth: dict[str, Any]) -> None:
    """Clear-sky NDVI: winter wheat peaks in May, maize in August; both are low in winter."""
    def ndvi(name: str, iso: str) -> float:
        value: float = truth["polygons"][name]["dates"][iso]["clear_sky_ndvi"]
        return value

    assert ndvi("field_wheat", "2023-05-25") > 0.65 > 0.35 > ndvi("field_wheat", "2023-01-25")
    assert ndvi("field_wheat", "2023-08-13") < 0.3  # harvested
    assert ndvi("field_maize", "2023-08-13") > 0.65 > 0.3 > ndvi("field_maize", "2023-05-05")
    assert ndvi("forest", "2023-07-14") > ndvi("forest", "2023-01-25") + 0.15
    assert ndvi("lake_centre", "2023-07-14") < 0


def test_archive_pixels_reproduce_the_clear_sky_ndvi(archive: Archive, truth: dict[str, Any],
                                                     polygon_masks: dict[str, np.ndarray]) -> None:
    """On clear dates the polygon-mean NDVI of the COG pixels matches the ground truth's clear-sky NDVI."""
    checked = 0
    for acq in archive.acquisitions:
        iso = acq.date.isoformat()
        if truth["dates"][iso]["sky"] != "clear" or truth["dates"][iso]["nodata_cover"] > 0:
            continue
        red = read_band(acq, "B04").astype(np.float64) - acq.dn_offset
        nir = read_band(acq, "B08").astype(np.float64) - acq.dn_offset
        for name in ("field_wheat", "field_small", "forest", "lake_centre"):
            mask = polygon_masks[name]
            r, n = red[mask].mean(), nir[mask].mean()
            assert (n - r) / (n + r) == pytest.approx(truth["polygons"][name]["dates"][iso]["clear_sky_ndvi"],
                                                      abs=0.01), (name, iso)
            checked += 1
    assert checked >= 40


def test_field_pixels_are_spectrally_homogeneous(archive: Archive, truth: dict[str, Any],
                                                 polygon_masks: dict[str, np.ndarray]) -> None:
    """Inside a field on a clear date the NIR varies by only a few percent, but it is not constant."""
    acq = next(a for a in archive.acquisitions if a.date.isoformat() == "2023-07-14")
    nir = read_band(acq, "B08").astype(np.float64) - acq.dn_offset
    for name in ("field_wheat", "field_maize", "field_sunflower", "field_small"):
        values = nir[polygon_masks[name]]
        assert 0.003 < values.std() / values.mean() < 0.05, name


def test_load_truth_masks_rejects_an_unknown_date(demo_root: Path) -> None:
    """Asking for a date without acquisition raises ArchiveError naming the date."""
    with pytest.raises(ArchiveError, match="No truth raster for '2023-01-06'"):
        load_truth_masks(demo_root, dt.date(2023, 1, 6))


def test_a_new_build_reports_its_progress_and_a_cached_one_does_not(small_recipe: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    build_demo_archive(tmp_path / "archive", recipe=small_recipe, progress=lambda d, t: calls.append((d, t)))
    total = len(json.loads(small_recipe.read_text())["acquisitions"])
    assert calls == [(i, total) for i in range(1, total + 1)]
    build_demo_archive(tmp_path / "archive", recipe=small_recipe, progress=lambda d, t: calls.append((d, t)))
    assert len(calls) == total  # the second call found the archive built
