"""Evalscript ``units`` per input band and the sun-angle inputs, as sentinelhub-py's generated evalscripts write
them: the runtime's reading of ``setup().input``, and the values the Process API hands ``evaluatePixel``,
compared with the band COGs read by rasterio and with the items' sun angles."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from sh_reference import grid_transform, item_dir, warped

from service import create_app
from stats.errors import EvalscriptError
from stats.sentinelhub.evalscript import compile_evalscript

CUMULUS = "2023-07-24"  # a demo date of baseline 04.00 (+1000 DN)
BOX_WGS84 = (15.02, 46.028, 15.036, 46.04)
SHAPE = (30, 40)


def setup_script(inputs: str) -> str:
    """An evalscript whose ``setup().input`` is ``inputs`` (JavaScript) and that returns nothing of note."""
    return f"""//VERSION=3
function setup() {{ return {{input: {inputs}, output: {{bands: 1}}}}; }}
function evaluatePixel(s) {{ return [0]; }}"""


@pytest.mark.parametrize(("inputs", "expected"), [
    ('[{bands: ["B02", "B03", "dataMask", "CLM"], units: ["REFLECTANCE", "DN", "DN", "DN"]}]',
     {"B02": "REFLECTANCE", "B03": "DN", "dataMask": "DN", "CLM": "DN"}),
    ('{bands: ["B04", "sunZenithAngles"], units: ["DN", "DEGREES"]}', {"B04": "DN", "sunZenithAngles": "DEGREES"}),
    # one value for all: the masks, cloud layers and angles keep the only unit they have
    ('[{bands: ["B04", "CLP", "dataMask", "sunAzimuthAngles"], units: "DN"}]',
     {"B04": "DN", "CLP": "DN", "dataMask": "DN", "sunAzimuthAngles": "DEGREES"}),
    ('[{bands: ["B04", "dataMask"]}]', {"B04": "REFLECTANCE", "dataMask": "DN"}),
    ('["B08", "B8A"]', {"B08": "REFLECTANCE", "B8A": "REFLECTANCE"}),
])
def test_units_are_read_per_input_band(inputs: str, expected: dict[str, str]) -> None:
    """``units`` given per band (as sentinelhub-py writes them), as one value, or not at all (REFLECTANCE for
    the bands) give each input its own unit, in the script's order."""
    script = compile_evalscript(setup_script(inputs))
    assert script.units == expected
    assert script.inputs == tuple(expected)


@pytest.mark.parametrize(("inputs", "message"), [
    ('[{bands: ["B02", "B03"], units: ["DN"]}]', "has 2 bands and 1 units; expected one unit per band"),
    ('[{bands: ["B02", "CLP"], units: ["DN", "REFLECTANCE"]}]', "input CLP in units 'REFLECTANCE' is not available; "
                                                               "expected DN"),
    ('[{bands: ["B02"], units: ["DEGREES"]}]', "input B02 in units 'DEGREES' is not available; expected "
                                              "REFLECTANCE or DN"),
    ('[{bands: ["sunZenithAngles"], units: ["DN"]}]', "input sunZenithAngles in units 'DN' is not available; "
                                                     "expected DEGREES"),
    ('[{bands: ["B02"], units: "KELVIN"}]', "units 'KELVIN' are not supported"),
    ('[{bands: ["B02"], units: 3}]', "units 3; expected a unit name or a list"),
    ('[{bands: ["B02", "viewZenithMean"], units: ["DN", "DEGREES"]}]', "input viewZenithMean: polyfis's archive has "
                                                                      "no viewing angles"),
    ('["viewAzimuthMean"]', "input viewAzimuthMean: polyfis's archive has no viewing angles"),
    ('["B13"]', "unknown input bands ['B13']"),
])
def test_bad_units_and_inputs_are_refused_naming_them(inputs: str, message: str) -> None:
    """A unit an input does not have, a list of the wrong length, or the view angles: an error naming them."""
    with pytest.raises(EvalscriptError) as info:
        compile_evalscript(setup_script(inputs))
    assert message in str(info.value)


MIXED = """//VERSION=3
function setup() {
  return {input: [{bands: ["B04", "B08", "sunZenithAngles", "sunAzimuthAngles", "dataMask"],
                   units: ["REFLECTANCE", "DN", "DEGREES", "DEGREES", "DN"]}],
          output: {bands: 5, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) { return [s.B04, s.B08, s.sunZenithAngles, s.sunAzimuthAngles, s.dataMask]; }"""


def process_body(evalscript: str, date: str, bounds: dict | None = None, size: tuple[int, int] = SHAPE) -> dict:
    """A Process API request for one date over ``bounds`` (default the WGS84 box), one TIFF."""
    return {"input": {"bounds": bounds or {"bbox": list(BOX_WGS84)},
                      "data": [{"type": "sentinel-2-l1c",
                                "dataFilter": {"timeRange": {"from": f"{date}T00:00:00Z", "to": f"{date}T23:59:59Z"}}}]},
            "evalscript": evalscript,
            "output": {"width": size[1], "height": size[0],
                       "responses": [{"identifier": "default", "format": {"type": "image/tiff"}}]}}


def test_process_converts_each_band_in_its_own_unit_and_gives_the_sun_angles(demo_root: Path) -> None:
    """B04 in REFLECTANCE is (stored DN - 1000) / 10000, B08 in DN the harmonised DN, and the sun angles the
    item's mean angles (zenith = 90 - view:sun_elevation), in one request."""
    client = create_app({"archive": str(demo_root)}).test_client()
    response = client.post("/api/v1/process", json=process_body(MIXED, CUMULUS))
    assert response.status_code == 200, response.json
    with rasterio.MemoryFile(response.data) as memfile, memfile.open() as src:
        image = np.moveaxis(src.read(), 0, -1)
    folder = item_dir(demo_root, CUMULUS)
    transform = grid_transform(BOX_WGS84, SHAPE[1], SHAPE[0])
    b04 = warped(folder / "B04.tif", "EPSG:4326", transform, SHAPE, Resampling.nearest).astype(np.float64)
    b08 = warped(folder / "B08.tif", "EPSG:4326", transform, SHAPE, Resampling.nearest).astype(np.float64)
    assert (b04 > 1000).all() and (b08 > 1000).all()
    assert np.array_equal(image[..., 0], ((b04 - 1000) / 10000).astype(np.float32))
    assert np.array_equal(image[..., 1], (b08 - 1000).astype(np.float32))
    properties = json.loads(next(folder.glob("*.json")).read_text())["properties"]
    assert np.all(image[..., 2] == np.float32(90 - properties["view:sun_elevation"]))
    assert np.all(image[..., 3] == np.float32(properties["view:sun_azimuth"]))
    assert np.all(image[..., 4] == 1)


def test_sun_angles_of_an_archive_without_them_are_a_400_naming_the_input(make_archive) -> None:
    """Items without ``view:sun_*`` angles: asking for sunZenithAngles is a 400 that names it and the scene."""
    from conftest import CRS_UTM, X0, Y0

    root = make_archive([{"id": "plain", "when": dt.datetime(2023, 1, 5, 10, tzinfo=dt.UTC)}])
    client = create_app({"archive": str(root)}).test_client()
    script = setup_script('[{bands: ["B04", "sunZenithAngles"], units: ["DN", "DEGREES"]}]')
    bounds = {"bbox": [X0, Y0 - 120, X0 + 120, Y0],
              "properties": {"crs": f"http://www.opengis.net/def/crs/EPSG/0/{CRS_UTM[5:]}"}}
    response = client.post("/api/v1/process", json=process_body(script, "2023-01-05", bounds, (12, 12)))
    assert response.status_code == 400, response.data[:300]
    message = response.json["error"]["message"]
    assert "sunZenithAngles" in message and "plain" in message and "no sun angles" in message


def test_view_angles_are_a_400_on_the_process_api(demo_root: Path) -> None:
    """viewZenithMean, which the archive has not, is a 400 saying so."""
    client = create_app({"archive": str(demo_root)}).test_client()
    script = setup_script('[{bands: ["B04", "viewZenithMean"], units: ["DN", "DEGREES"]}]')
    response = client.post("/api/v1/process", json=process_body(script, CUMULUS))
    assert response.status_code == 400
    assert "viewZenithMean: polyfis's archive has no viewing angles" in response.json["error"]["message"]


def test_the_statistical_api_refuses_the_sun_angles_naming_them(demo_root: Path) -> None:
    """The Statistical API does not read the sun angles: a 400 naming the input and the Process API."""
    client = create_app({"archive": str(demo_root)}).test_client()
    script = """//VERSION=3
function setup() { return {input: [{bands: ["B04", "sunAzimuthAngles", "dataMask"]}],
                           output: [{id: "a", bands: 1}, {id: "dataMask", bands: 1}]}; }
function evaluatePixel(s) { return {a: [s.sunAzimuthAngles], dataMask: [s.dataMask]}; }"""
    request = {"input": {"bounds": {"bbox": list(BOX_WGS84)}, "data": [{"type": "sentinel-2-l1c"}]},
               "aggregation": {"timeRange": {"from": "2023-07-01T00:00:00Z", "to": "2023-08-01T00:00:00Z"},
                               "aggregationInterval": {"of": "P1M"}, "width": 20, "height": 20, "evalscript": script}}
    response = client.post("/api/v1/statistics", json=request)
    assert response.status_code == 400, response.data[:300]
    assert "input sunAzimuthAngles is not read by polyfis's Statistical API" in response.json["error"]["message"]
