"""Sentinel Hub's documented evalscript helpers, each against values worked out by hand (or the reference's own
examples, re-derived here), and the version-3 lifecycle: mosaicking ORBIT/TILE, preProcessScenes,
updateOutput and updateOutputMetadata."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest

from stats.errors import EvalscriptError
from stats.sentinelhub.evalscript import Evalscript, SceneTile

T0 = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
T1 = dt.datetime(2023, 2, 1, tzinfo=dt.UTC)


def js(expression: str, prefix: str = "") -> Any:
    """The value of ``expression`` in an evalscript's engine, as JSON (through outputMetadata.userData, so
    in full float64 precision)."""
    script = Evalscript(f"""//VERSION=3
{prefix}
function setup() {{ return {{input: ["B04"], output: {{bands: 1}}}}; }}
function evaluatePixel(s) {{ return [0]; }}
function updateOutputMetadata(scenes, inputMetadata, outputMetadata) {{
  outputMetadata.userData = {{value: {expression}}};
}}""")
    return script.run(script.plan([], T0, T1), [{"B04": np.zeros(1)}]).user_data["value"]


@pytest.mark.parametrize(("expression", "expected"), [
    ("index(0.6, 0.4)", (0.6 - 0.4) / (0.6 + 0.4)),
    ("index(0.5, -0.5)", 0.0),  # the sum is 0
    ("index(0, 0)", 0.0),
    ("inverse(2.0)", 0.5),
    ("inverse(5.0)", 0.2),
    ("inverse(0)", 1.7976931348623157e308),
    ("JAVA_DOUBLE_MAX_VAL", 1.7976931348623157e308),
])
def test_index_and_inverse(expression: str, expected: float) -> None:
    assert js(expression) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize(("value", "expected"), [(5, 500), (1, 100), (2, 300), (12, 900), (0, 100), (7, 700),
                                                 (7.5, 900)])
def test_value_map_takes_the_value_of_the_interval_from_exclusive_to_inclusive(value: float, expected: float) -> None:
    """(-inf, 1] -> 100, (1, 3] -> 300, (3, 5] -> 500, (5, 7] -> 700, (7, +inf) -> 900."""
    assert js(f"valueMap({value}, [1, 3, 5, 7, 10], [100, 300, 500, 700, 900])") == expected


def test_value_map_and_value_interpolate_without_intervals_return_the_value() -> None:
    assert js("[valueMap(50), valueInterpolate(50), colorBlend(50)]") == [50, 50, 50]


@pytest.mark.parametrize(("value", "expected"), [
    (0, 0), (-10, -1000), (-20, -1000), (20, 1000),
    (9, 50 + (1000 - 50) * (9 - 5) / (10 - 5)),  # 810
    (-7.5, -1000 + (-50 + 1000) * 0.5),  # halfway between -10 and -5
])
def test_value_interpolate_is_linear_between_bounds_and_clamped_outside(value: float, expected: float) -> None:
    got = js(f"valueInterpolate({value}, [-10, -5, 0, 5, 10], [-1000, -50, 0, 50, 1000])")
    assert got == pytest.approx(expected, rel=1e-12)


def test_value_interpolate_and_color_blend_interpolate_arrays_component_by_component() -> None:
    table = "[0, 0.2, 0.4], [[0, 0, 0], [0.1, 0.2, 0.5], [0.25, 0.4, 0.5]]"
    # 0.1 is halfway from 0 to 0.2: half of [0.1, 0.2, 0.5]; 0.3 is halfway from 0.2 to 0.4
    assert js(f"valueInterpolate(0.1, {table})") == pytest.approx([0.05, 0.1, 0.25])
    assert js(f"colorBlend(0.3, {table})") == pytest.approx([0.175, 0.3, 0.5])
    # the table itself is left as it was
    colours = "[[0, 0, 0], [0.1, 0.2, 0.5], [0.25, 0.4, 0.5]]"
    assert js(f"(function () {{ const t = {colours}; colorBlend(0.3, [0, 0.2, 0.4], t); return t; }})()") == [
        [0, 0, 0], [0.1, 0.2, 0.5], [0.25, 0.4, 0.5]]


def test_int2rgb_rgb2int_and_normalize_rgb() -> None:
    assert js("[int2rgb(255), int2rgb(256), int2rgb(65537), int2rgb(0xAE6E10)]") == [
        [0, 0, 255], [0, 1, 0], [1, 0, 1], [0xAE, 0x6E, 0x10]]
    assert js("[rgb2int([0, 0, 255]), rgb2int([0, 1, 0]), rgb2int([1, 0, 1])]") == [255, 256, 65537]
    assert js("normalizeRGB([255, 51, 0])") == [1.0, 0.2, 0.0]
    assert js("(function () { const a = [255, 0, 0]; normalizeRGB(a); return a; })()") == [255, 0, 0]


def test_combine_mixes_two_colours() -> None:
    assert js("[combine([100, 0, 0], [0, 100, 0], 1), combine([100, 0, 0], [0, 100, 0], 0), "
              "combine([100, 0, 0], [0, 100, 0], 0.5), combine([100, 0, 0], [0, 100, 0], 0.25)]") == [
        [100, 0, 0], [0, 100, 0], [50, 50, 0], [25, 75, 0]]


def test_color_map_visualizer_takes_the_colour_of_the_last_value_reached() -> None:
    got = js("(function () { const v = new ColorMapVisualizer([[200, 0xff0000], [300, 0x0000ff]]);"
             " return [199, 200, 250, 299, 300, 1000].map((x) => v.process(x)); })()")
    red, blue = [1, 0, 0], [0, 0, 1]
    assert got == [red, red, red, red, blue, blue]
    default = js("[-2, -0.15, 0.05, 0.95].map((x) => ColorMapVisualizer.createDefaultColorMap().process(x))")
    assert default == [[0, 0, 0], [1, 0, 0], [0x66 / 255, 0, 0], [0, 0x66 / 255, 0]]


def test_color_ramp_visualizer_interpolates_and_rounds_down() -> None:
    """Between 200 (red) and 300 (blue): at 250 each channel is 127.5 -> 127; at 299 red is 2.55 -> 2 and
    blue 252.45 -> 252; hex and normalised colours give the same ramp."""
    for ramps in ("[[200, 0xFF0000], [300, 0x0000FF]]", "[[200, [1, 0, 0]], [300, [0, 0, 1]]]"):
        got = js(f"(function () {{ const v = new ColorRampVisualizer({ramps});"
                 " return [199, 200, 250, 299, 300, 301].map((x) => v.process(x)); })()")
        assert got == [[1, 0, 0], [1, 0, 0], [127 / 255, 0, 127 / 255], [2 / 255, 0, 252 / 255], [0, 0, 1],
                       [0, 0, 1]]


def test_color_ramp_min_and_max_override_and_inverse() -> None:
    """minVal/maxVal move the ramp's ends (values between move linearly); inverse() runs the colours the other
    way over the same values."""
    ramp = "[[0, 0x000000], [0.5, 0xFF0000], [1, 0xFFFFFF]]"
    moved = js(f"(function () {{ const v = new ColorRampVisualizer({ramp}, 10, 20);"
               " return [10, 15, 17.5, 20].map((x) => v.process(x)); })()")
    # 15 is the old 0.5 (red); 17.5 is halfway from red to white: 255, 127.5 -> 127, 127
    assert moved == [[0, 0, 0], [1, 0, 0], [1, 127 / 255, 127 / 255], [1, 1, 1]]
    inverse = js(f"(function () {{ const v = new ColorRampVisualizer({ramp}).inverse();"
                 " return [0, 0.25, 0.5, 1].map((x) => v.process(x)); })()")
    # white at 0, red at 0.5, black at 1; 0.25 is halfway from white to red: 255, 127, 127
    assert inverse == [[1, 1, 1], [1, 127 / 255, 127 / 255], [1, 0, 0], [0, 0, 0]]


@pytest.mark.parametrize(("factory", "expected"), [
    # redTemperature as a ramp over [0, 1]: black 0, AE0000 0.25, FF6E00 0.3, FF8600 0.525, white 1
    ("createRedTemperature", [[0, 0, 0], [255, 0x6E, 0], [255, 110 + 24 * (0.2 / 0.225), 0],
                              [255, 134 + 121 * (0.275 / 0.475), 255 * (0.275 / 0.475)], [255, 255, 255]]),
    # greenWhite: black 0, 006600 0.3, 80B300 0.6, white 1
    ("createWhiteGreen", [[0, 0, 0], [0, 0x66, 0], [128 * 2 / 3, 102 + 77 * 2 / 3, 0],
                          [128 + 127 * 0.5, 179 + 76 * 0.5, 127.5], [255, 255, 255]]),
    # blueRed: 000080 0, 0000FF 0.125, 00FFFF 0.375, FFFF00 0.625, FF0000 0.875, 800000 1
    ("createBlueRed", [[0, 0, 128], [0, 255 * 0.7, 255], [127.5, 255, 127.5], [255, 255 * 0.3, 0], [128, 0, 0]]),
])
def test_color_ramp_factories(factory: str, expected: list[list[float]]) -> None:
    """At 0, 0.3, 0.5, 0.8 and 1, each channel rounded down to a whole 0..255 value, then normalised."""
    got = js(f"[0, 0.3, 0.5, 0.8, 1].map((x) => ColorRampVisualizer.{factory}(0, 1).process(x))")
    want = [[np.floor(c + 1e-9) / 255 for c in rgb] for rgb in expected]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_ocean_color_ramp_runs_from_purple_to_dark_red() -> None:
    assert js("[0, 1].map((x) => ColorRampVisualizer.createOceanColor(0, 1).process(x))") == [
        [147 / 255, 0, 108 / 255], [105 / 255, 0, 0]]


@pytest.mark.parametrize(("factory", "expected"), [
    # pair value v stands at 1 - v: redTemperature black 0, AE0000 0.475, FF6E00 0.7, FF8600 0.75, white 1
    ("createRedTemperature", [[0, 0, 0], [174 * 0.3 / 0.475, 0, 0], [174 + 81 * 0.025 / 0.225, 110 * 0.025 / 0.225, 0],
                              [255, 134 + 121 * 0.2, 255 * 0.2], [255, 255, 255]]),
    # greenWhite: black 0, 006600 0.4, 80B300 0.7, white 1
    ("createWhiteGreen", [[0, 0, 0], [0, 102 * 0.75, 0], [128 / 3, 102 + 77 / 3, 0],
                          [128 + 127 / 3, 179 + 76 / 3, 255 / 3], [255, 255, 255]]),
])
def test_color_gradient_visualizer_rounds_to_the_nearest(factory: str, expected: list[list[float]]) -> None:
    got = js(f"[0, 0.3, 0.5, 0.8, 1].map((x) => ColorGradientVisualizer.{factory}(0, 1).process(x))")
    want = [[np.round(c - 1e-9) / 255 for c in rgb] for rgb in expected]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_highlight_compress_visualizer() -> None:
    """(0.1, 0.4): linear from 0.1 -> 0 to 0.4 -> 1, then above 0.92 compressed by (1 - 0.92) / (2 - 0.92)."""
    got = js("(function () { const v = new HighlightCompressVisualizer(0.1, 0.4);"
             " return [0, 0.1, 0.25, 0.376, 0.4, 0.7, 1.1].map((x) => v.process(x)); })()")
    factor = 0.08 / 1.08
    assert got == pytest.approx([0, 0, 0.5, 0.92, 0.92 + 0.08 * factor, 1.0, 1.0], abs=1e-12)
    # maxValue 1 keeps it linear; gain, offset and gamma
    assert js("new HighlightCompressVisualizer(0, 1).process(0.95)") == pytest.approx(0.95)
    assert js("new HighlightCompressVisualizer(0, 2, 1, 0.1, 2).process(1)") == pytest.approx(0.6 ** 2)
    assert js("new HighlightCompressVisualizerSingle(0.1, 0.4).process(0.25)") == [pytest.approx(0.5)]


def test_default_visualizer_and_identity() -> None:
    assert js("[0, 0.2, 0.5].map((x) => new DefaultVisualizer(0, 0.4).process(x))") == pytest.approx([0, 0.5, 1])
    assert js("[new Identity().process(3), new Identity().process([1, 2])]") == [[3], [1, 2]]


def test_quality_flag_decoders() -> None:
    """55052 = bits 2, 3, 8, 9, 10, 12, 14, 15 of a Landsat 8 QA_PIXEL; OLCI bit 31 is land, bit 20 saturation of
    Oa01 and bit 0 of Oa21."""
    assert js("decodeL8C2Qa(55052)") == {
        "fill": 0, "dilatedCloud": 0, "cirrus": 1, "cloud": 1, "cloudShadow": 0, "snow": 0, "clear": 0, "water": 0,
        "cloudConfidence": 3, "cloudShadowConfidence": 1, "snowIceConfidence": 1, "cirrusConfidence": 3}
    flags = js(f"decodeS3OLCIQualityFlags({2**31 + 2**25 + 2**20 + 1})")
    assert flags["land"] == flags["invalid"] == flags["saturatedB01"] == flags["saturatedB21"] == 1
    assert flags["coastline"] == flags["bright"] == flags["saturatedB02"] == 0 and len(flags) == 11 + 21


def test_mosaicking_and_sample_type_constants() -> None:
    assert js("[Mosaicking.ORBIT, Mosaicking.TILE, Mosaicking.SIMPLE, SampleType.UINT16, SampleType.AUTO]") == [
        "ORBIT", "TILE", "SIMPLE", "UINT16", "AUTO"]


@pytest.mark.parametrize("declaration", [
    "const index = (a, b) => a - b;",
    "let index = (a, b) => a - b;",
    "function index(a, b) { return a - b; }",
    "var index = function (a, b) { return a - b; };",
    "class ColorRampVisualizer {}\nfunction index(a, b) { return a - b; }",
])
def test_a_script_may_declare_its_own_helpers(declaration: str) -> None:
    """Older scripts carry their own copies of the helpers; any declaration replaces polyfis's."""
    assert js("index(0.6, 0.4)", prefix=declaration) == pytest.approx(0.2)


# --- the version-3 lifecycle -------------------------------------------------------------------------------

def tile(day: int, hour: int, name: str, cloud: float = 10.0) -> SceneTile:
    return SceneTile(date=dt.datetime(2023, 1, day, hour, tzinfo=dt.UTC), sh_id=day * 100 + hour, data_path=name,
                     cloud_coverage=cloud)


#: Newest first, as mostRecent orders them: two tiles on 20 January, one on 10 January.
TILES = [tile(20, 10, "a"), tile(20, 9, "b"), tile(10, 10, "c", 55.5)]


def multi_temporal(mosaicking: str, body: str, extra: str = "", bands: int = 1) -> Evalscript:
    return Evalscript(f"""//VERSION=3
function setup() {{
  return {{input: [{{bands: ["B04", "dataMask"]}}], mosaicking: Mosaicking.{mosaicking},
          output: [{{id: "data", bands: {bands}, sampleType: "FLOAT32"}}, {{id: "dataMask", bands: 1}}]}};
}}
function evaluatePixel(samples, scenes, inputMetadata, customData, outputMetadata) {{ {body} }}
{extra}""")


def test_orbit_samples_are_an_array_per_pixel_with_the_orbits_metadata() -> None:
    """ORBIT groups tiles by UTC day, newest first as given; evaluatePixel gets one sample per orbit and
    scenes.orbits with dateFrom/dateTo and the orbit's tiles."""
    script = multi_temporal("ORBIT", """
      outputMetadata.userData = scenes;
      let best = -1;
      for (let i = 0; i < samples.length; i++) if (samples[i].dataMask == 1) best = Math.max(best, samples[i].B04);
      return {data: [best], dataMask: [samples.length]};""",
                            "function updateOutputMetadata(s, i, o) { o.userData = {scenes: s, meta: i}; }")
    plan = script.plan(TILES, T0, T1)
    assert plan.groups == ((0, 1), (2,))
    day20 = {"B04": np.array([0.1, 0.5, 0.0]), "dataMask": np.array([1.0, 0.0, 0.0])}
    day10 = {"B04": np.array([0.3, 0.2, 0.9]), "dataMask": np.array([1.0, 1.0, 0.0])}
    result = script.run(plan, [day20, day10])
    assert result.outputs["data"][:, 0].tolist() == pytest.approx([0.3, 0.2, -1])
    assert result.outputs["dataMask"][:, 0].tolist() == [2, 2, 2]
    orbits = result.user_data["scenes"]["orbits"]
    assert [(o["dateFrom"], o["dateTo"]) for o in orbits] == [("2023-01-20T00:00:00Z", "2023-01-20T23:59:59Z"),
                                                              ("2023-01-10T00:00:00Z", "2023-01-10T23:59:59Z")]
    assert orbits[0]["tiles"] == [
        {"date": "2023-01-20T10:00:00Z", "shId": 2010, "dataPath": "a", "cloudCoverage": 10.0},
        {"date": "2023-01-20T09:00:00Z", "shId": 2009, "dataPath": "b", "cloudCoverage": 10.0}]
    assert result.user_data["meta"]["normalizationFactor"] == 1e-4


def test_tile_samples_have_one_sample_per_tile() -> None:
    script = multi_temporal("TILE", """
      return {data: [samples.length ? scenes.tiles[samples.length - 1].cloudCoverage : -1], dataMask: [1]};""")
    plan = script.plan(TILES, T0, T1)
    assert plan.groups == ((0,), (1,), (2,))
    column = {"B04": np.zeros(2), "dataMask": np.ones(2)}
    result = script.run(plan, [column] * 3)
    assert result.outputs["data"][:, 0].tolist() == [55.5, 55.5]
    assert [t["date"] for t in plan.scenes["tiles"]] == ["2023-01-20T10:00:00Z", "2023-01-20T09:00:00Z",
                                                         "2023-01-10T10:00:00Z"]


def test_pre_process_scenes_filters_and_orders_the_scenes() -> None:
    """The documentation's own filters: by day (ORBIT) and by time (TILE); from/to are Dates."""
    orbit = multi_temporal("ORBIT", "return {data: [0], dataMask: [1]};", """
function preProcessScenes(collections) {
  if (!(collections.from instanceof Date) || collections.to.getTime() !== Date.parse("2023-02-01T00:00:00Z"))
    throw new Error("from/to are not the interval's Dates");
  collections.scenes.orbits = collections.scenes.orbits.filter(function (orbit) {
    return ["2023-01-10"].includes(orbit.dateFrom.split("T")[0]);
  });
  return collections;
}""")
    assert orbit.plan(TILES, T0, T1).groups == ((2,),)
    tiles = multi_temporal("TILE", "return {data: [0], dataMask: [1]};", """
function preProcessScenes(collections) {
  collections.scenes.tiles.sort((a, b) => new Date(a.date) - new Date(b.date));
  collections.scenes.tiles = collections.scenes.tiles.filter((t) => new Date(t.date) >= new Date("2023-01-15"));
  return collections;
}""")
    plan = tiles.plan(TILES, T0, T1)
    assert plan.groups == ((1,), (0,)) and [t["dataPath"] for t in plan.scenes["tiles"]] == ["b", "a"]


def test_update_output_sizes_an_output_by_the_number_of_scenes() -> None:
    """The documentation's example: one band per available scene."""
    script = multi_temporal("ORBIT", """
      const out = [];
      for (let i = 0; i < samples.length; i++) out.push(samples[i].B04);
      return {data: out, dataMask: [1]};""", """
function updateOutput(outputs, collection) { outputs.data.bands = collection.scenes.length; }""")
    plan = script.plan(TILES, T0, T1)
    assert [len(o.bands) for o in plan.outputs] == [2, 1]
    result = script.run(plan, [{"B04": np.array([0.25]), "dataMask": np.ones(1)},
                               {"B04": np.array([0.5]), "dataMask": np.ones(1)}])
    assert result.outputs["data"].tolist() == [[0.25, 0.5]]


@pytest.mark.parametrize(("extra", "match"), [
    ("function preProcessScenes(c) { return 5; }", "must return its collections"),
    ("function preProcessScenes(c) { c.scenes.orbits = [{dateFrom: 'x'}]; return c; }", "not one of those"),
    ("function preProcessScenes(c) { c.scenes.orbits.push(c.scenes.orbits[0]); return c; }", "or one twice"),
    ("function updateOutput(o, c) { o.data.bands = 0; }", "expected 1 to 100"),
    ("function updateOutput(o, c) { o.data.bands = 1e9; }", "expected 1 to 100"),
])
def test_bad_pre_process_or_update_output_is_an_evalscript_error(extra: str, match: str) -> None:
    script = multi_temporal("ORBIT", "return {data: [0], dataMask: [1]};", extra)
    with pytest.raises(EvalscriptError, match=match):
        script.plan(TILES, T0, T1)


def test_unknown_mosaicking_is_refused() -> None:
    with pytest.raises(EvalscriptError, match="mosaicking is 'DAILY'"):
        Evalscript('function setup() { return {input: ["B04"], output: {bands: 1}, mosaicking: "DAILY"}; }\n'
                   "function evaluatePixel(s) { return [0]; }")


@pytest.mark.parametrize("tamper", [
    "globalThis.__polyfisPlan = () => JSON.stringify({kept: [0, 1], outputs: {data: 1, dataMask: 1}});",
    "Date = function () { return {getTime: () => 0}; };",
    "JSON.parse = () => ({mosaicking: 'SIMPLE', scenes: [], outputs: {}});",
])
def test_the_planning_entry_point_cannot_be_replaced(tamper: str) -> None:
    """__polyfisPlan is read-only and holds its own JSON and Date, like the other entry points."""
    script = multi_temporal("ORBIT", "return {data: [0], dataMask: [1]};", tamper + """
function preProcessScenes(collections) {
  collections.scenes.orbits = collections.scenes.orbits.filter((o) => o.dateFrom < "2023-01-15");
  return collections;
}""")
    assert script.plan(TILES, T0, T1).groups == ((2,),)


def test_with_no_scene_left_evaluate_pixel_gets_empty_arrays() -> None:
    script = multi_temporal("TILE", "return {data: [samples.length - 1], dataMask: [0]};",
                            "function preProcessScenes(c) { c.scenes.tiles = []; return c; }")
    plan = script.plan(TILES, T0, T1)
    assert plan.groups == () and plan.scenes == {"tiles": []}
    assert script.run(plan, [], pixels=3).outputs["data"][:, 0].tolist() == [-1, -1, -1]
