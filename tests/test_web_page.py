"""The web page at / in a real browser: Chromium (the Debian package) driven headless by Playwright against a
live `polyfis serve` on a free 127.0.0.1 port, on the demo archive. Screenshots are saved in a pytest temporary
folder (printed with -s)."""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely.geometry
import shapely.wkt
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Request, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from common import polyfis_server  # noqa: E402
from rendering import (
    LAYERED_DATES,
    assert_close,
    expected_clm_rgba,
    expected_rgba,
    item_of,
    layered_demo,
    png_pixels,
    session_demo,
)

from stats.archive.synthetic.files import POLYGONS_FILE, fixtures_dir

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAYLOAD = '<img src=x onerror="window.__xss=1">'


@contextlib.contextmanager
def serve(env: dict[str, str]) -> Iterator[str]:
    """`polyfis serve` (one worker) on a free 127.0.0.1 port with ``env`` (and none of the user's POLYFIS_*
    variables); its base URL until the block ends, then it is stopped."""
    mine = {k: v for k, v in os.environ.items() if k.startswith("POLYFIS_") and k not in env}
    for key in mine:
        del os.environ[key]
    try:
        with polyfis_server(workers=1, env=env, timeout_s=120) as server:
            yield server.base
    finally:
        os.environ.update(mine)


@pytest.fixture(scope="module", name="demo")
def fixture_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo archive with the cloud layers of July and August stored (the other dates have none)."""
    return layered_demo(session_demo(tmp_path_factory), tmp_path_factory.mktemp("web-demo") / "archive")


@pytest.fixture(scope="module", name="base")
def fixture_base(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("web-server")
    with serve({"POLYFIS_ARCHIVE": str(demo), "POLYFIS_JOBS_DIR": str(folder / "jobs")}) as base:
        yield base


@pytest.fixture(scope="module", name="auth_base")
def fixture_auth_base(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("web-auth-server")
    env = {"POLYFIS_ARCHIVE": str(demo), "POLYFIS_JOBS_DIR": str(folder / "jobs"),
           "POLYFIS_AUTH_CLIENTS": "pageuser:pagesecret"}
    with serve(env) as base:
        yield base


@pytest.fixture(scope="module", name="broken_base")
def fixture_broken_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server on a copy of the demo archive whose B04 of 2023-03-06 is not a readable GeoTIFF."""
    folder = tmp_path_factory.mktemp("web-broken-server")
    root = folder / "archive"
    shutil.copytree(session_demo(tmp_path_factory), root)
    band = next(root.glob("items/*_20230306T*/B04.tif"))
    band.write_bytes(b"not a GeoTIFF")
    with serve({"POLYFIS_ARCHIVE": str(root), "POLYFIS_JOBS_DIR": str(folder / "jobs")}) as base:
        yield base


@pytest.fixture(scope="session", name="playwright")
def fixture_playwright() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        with tempfile.TemporaryDirectory() as profile:
            try:
                context = playwright.chromium.launch_persistent_context(
                    profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
                context.close()
            except PlaywrightError as exc:
                pytest.skip(f"Chromium at {CHROMIUM} cannot run: {str(exc)[:300]}")
        yield playwright


@pytest.fixture(scope="module", name="screenshots")
def fixture_screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("web-page-screenshots")
    print(f"screenshots in {folder}")
    return folder


@dataclass
class Browser:
    """A page in a fresh Chromium profile, with every request it made and every script error it raised."""

    page: Page
    requests: list[Request] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture(name="open_page")
def fixture_open_page(playwright: Any, tmp_path: Path, screenshots: Path,
                      request: pytest.FixtureRequest) -> Iterator[Callable[..., Browser]]:
    """Open the page of a server at a viewport size in a fresh profile; a screenshot is saved at the end."""
    contexts = []
    opened: list[Browser] = []

    def open_page(base: str, width: int = 1280, height: int = 900, wait: bool = True) -> Browser:
        profile = tmp_path / f"profile-{len(contexts)}"
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height}, accept_downloads=True)
        contexts.append(context)
        page = context.pages[0] if context.pages else context.new_page()
        browser = Browser(page)
        page.on("request", lambda r: browser.requests.append(r))
        page.on("pageerror", lambda exc: browser.errors.append(str(exc)))
        page.goto(f"{base}/")
        if wait:
            page.wait_for_selector("body[data-ready=true]", timeout=30000)
        opened.append(browser)
        return browser

    yield open_page
    for i, browser in enumerate(opened):
        with contextlib.suppress(PlaywrightError):
            browser.page.screenshot(path=str(screenshots / f"{request.node.name}-{i}.png"), full_page=True)
    for context in contexts:
        context.close()
    assert not [e for b in opened for e in b.errors], [e for b in opened for e in b.errors]


def wait_until(page: Page, script: str, timeout: float = 60.0) -> Any:
    """Poll ``script`` (an expression) in the page until it is truthy; its value. (Playwright's
    wait_for_function evaluates strings, which the page's Content-Security-Policy forbids.)"""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(script)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {script}")
        time.sleep(0.1)


def api(base: str, path: str, body: str | None = None) -> bytes:
    """An answer of the API, fetched by the test itself (not by the page)."""
    data = body.encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    with urllib.request.urlopen(urllib.request.Request(f"{base}{path}", data=data, headers=headers), timeout=120) as r:
        return bytes(r.read())


def api_error(base: str, path: str, body: str) -> dict[str, Any]:
    try:
        api(base, path, body)
    except urllib.error.HTTPError as exc:
        error: dict[str, Any] = json.loads(exc.read())["error"]
        return error
    raise AssertionError("the API accepted the request")


def run_query(page: Page) -> Request:
    """Press Run and wait for the answer; the time-series request the page sent."""
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/api/v1/timeseries")) as sent:
        page.get_by_role("button", name="Run the query").click()
    wait_until(page, "document.getElementById('run').disabled === false && "
                     "document.getElementById('query-status').textContent !== 'Running the query…'")
    return sent.value


def demo_feature(name: str) -> dict[str, Any]:
    collection = json.loads((fixtures_dir() / POLYGONS_FILE).read_text())
    return next(f for f in collection["features"] if f["properties"]["name"] == name)


def only_bands(page: Page, bands: list[str]) -> None:
    for box in page.locator("input[name=band]").all():
        box.set_checked(box.get_attribute("value") in bands)


def test_a_drawn_polygon_is_queried_and_charted_point_for_point(open_page, base: str) -> None:
    """Draw a polygon with the mouse, run the query: the charts and the table have one point per date of the
    API's own answer to the same body, and the cloudy dates marked are the API's cloudy dates."""
    page = open_page(base).page
    page.get_by_role("button", name="Draw a polygon").click()
    box = page.locator("#map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    corners = [(cx - 40, cy - 30), (cx + 40, cy - 30), (cx + 45, cy + 30), (cx - 40, cy + 25)]
    for x, y in [*corners, corners[0]]:
        page.mouse.click(x, y)
        page.wait_for_timeout(150)
    wait_until(page, "document.getElementById('area-status').textContent.includes('drawn on the map')")
    body = run_query(page).post_data
    sent = json.loads(body)
    assert sent["geometry"]["type"] == "Polygon" and len(sent["geometry"]["coordinates"][0]) == 5
    answer = json.loads(api(base, "/api/v1/timeseries", body))
    count = len(answer["series"])
    assert count > 10
    assert page.get_attribute("#cloud-chart", "data-points") == str(count)
    assert page.get_attribute("#index-chart", "data-points") == str(count)
    cloudy = sum(1 for e in answer["series"] if e["cloud"]["cloudy"])
    assert 0 < cloudy < count and page.get_attribute("#cloud-chart", "data-cloudy") == str(cloudy)
    assert page.locator("#series-table tbody tr").count() == count
    assert page.locator("#cloud-chart canvas").count() == 1
    assert f"{count} dates" in page.text_content("#query-status")


def test_the_downloaded_csv_is_the_apis_csv_byte_for_byte(open_page, base: str, tmp_path: Path) -> None:
    """Upload a GeoJSON Feature, ask for B04, B08 and NDVI: the CSV download is the bytes the API answers to the
    same body with ?format=csv, the JSON download the bytes of its JSON answer."""
    page = open_page(base).page
    upload = tmp_path / "wheat.geojson"
    upload.write_text(json.dumps(demo_feature("field_wheat")))
    page.set_input_files("#upload", str(upload))
    wait_until(page, "document.getElementById('area-status').textContent.includes('field_wheat')")
    only_bands(page, ["B04", "B08"])
    page.get_by_label("NDVI", exact=True).check()
    body = run_query(page).post_data
    sent = json.loads(body)
    assert sent["bands"] == ["B04", "B08"] and sent["indices"] == ["NDVI"]
    assert sent["geometry"] == demo_feature("field_wheat")["geometry"]
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    got = Path(download.value.path()).read_bytes()
    expected = api(base, "/api/v1/timeseries?format=csv", body)
    assert got == expected
    rows = list(csv.DictReader(io.StringIO(expected.decode())))
    assert len(rows) == page.locator("#series-table tbody tr").count() and "NDVI_mean" in rows[0]
    with page.expect_download() as download:
        page.get_by_role("button", name="Download JSON").click()
    assert Path(download.value.path()).read_bytes() == api(base, "/api/v1/timeseries", body)
    assert page.text_content("#index-chart-title") == "NDVI"


def test_a_wkt_file_is_read_as_its_polygon(open_page, base: str, tmp_path: Path) -> None:
    """An uploaded WKT POLYGON is sent as the same polygon (read independently with shapely) and answered."""
    text = ("POLYGON ((15.02733 46.03805, 15.02733 46.03616, 15.03056 46.03615, 15.03056 46.03804, "
            "15.02733 46.03805))")
    upload = tmp_path / "field.wkt"
    upload.write_text(text + "\n")
    page = open_page(base).page
    page.set_input_files("#upload", str(upload))
    wait_until(page, "document.getElementById('area-status').textContent.includes('field.wkt')")
    only_bands(page, ["B04"])
    sent = json.loads(run_query(page).post_data)
    assert shapely.geometry.shape(sent["geometry"]).equals_exact(shapely.wkt.loads(text), 1e-12)
    assert page.locator("#series-table tbody tr").count() == len(json.loads(
        api(base, "/api/v1/timeseries", json.dumps({**sent, "geometry": text})))["series"])


def shown_pixels(page: Page, element_id: str) -> Any:
    """The RGBA pixels an <img> of the page shows (drawn on a canvas in the page), decoded here."""
    data_url = page.evaluate("""id => {
        const img = document.getElementById(id);
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        canvas.getContext('2d').drawImage(img, 0, 0);
        return canvas.toDataURL('image/png');
    }""", element_id)
    return png_pixels(base64.b64decode(data_url.split(",", 1)[1]))


def choose_date(page: Page, date: str) -> tuple[float, ...]:
    """Click ``date`` in the table and wait for its quicklook and cloud mask message; the image's bbox."""
    page.get_by_role("button", name=date, exact=True).click()
    wait_until(page, f"document.getElementById('quicklook-image').dataset.date === '{date}' && "
                     "document.getElementById('quicklook-image').naturalWidth > 0 && "
                     "!['', 'Loading…'].includes(document.getElementById('quicklook-message').textContent)")
    return tuple(float(v) for v in page.get_attribute("#quicklook-image", "data-bbox").split(","))


def test_clicking_a_date_shows_its_true_colour_and_cloud_mask_as_rasterio_reads_them(open_page, base: str,
                                                                                      demo: Path) -> None:
    """Choose a date in the table: the quicklook loads, and the pixels the page shows equal the true colour of
    that date read independently with rasterio on the same box and size, within rounding; the cloud mask over it
    is the stored CLM read the same way. A date without stored layers says they are absent and to run
    `polyfis clouds`."""
    page = open_page(base).page
    page.get_by_label("Demo polygon").select_option(label="field_wheat")  # partly under cloud on 2023-07-24
    only_bands(page, ["B04"])
    body = run_query(page).post_data
    answer = json.loads(api(base, "/api/v1/timeseries", body))
    clear = next(e for e in answer["series"] if e["cloud"]["cloudy"] is False and e["date"] > "2023-06-15")
    bbox = choose_date(page, clear["date"])
    assert page.get_attribute("#quicklook-image", "data-bands") == "B04,B03,B02"
    pixels = shown_pixels(page, "quicklook-image")
    height, width = pixels.shape[1:]
    assert_close(pixels, expected_rgba(item_of(demo, clear["date"]), bbox, width, height, ["B04", "B03", "B02"]))
    assert width > 100 and pixels[3].min() == 255
    assert clear["date"] in page.text_content("#quicklook-caption")
    assert page.locator(".leaflet-quicklook-pane img").count() == 1  # the same image on the map, over the polygon
    cloudy_pixels = 0
    for date in LAYERED_DATES:
        bbox = choose_date(page, date)
        assert page.text_content("#quicklook-message") == "Cloud mask (CLM) drawn in magenta."
        mask = shown_pixels(page, "quicklook-clouds")
        expected = expected_clm_rgba(item_of(demo, date), bbox, mask.shape[2], mask.shape[1])
        opaque = expected[3] > 0
        assert np.array_equal(mask[3], expected[3]) and np.array_equal(mask[:3, opaque], expected[:3, opaque]), date
        cloudy_pixels += int(opaque.sum())
        assert page.locator(".leaflet-clouds-pane img").count() == 1
    assert cloudy_pixels > 0
    without = next(e["date"] for e in answer["series"] if e["date"] < "2023-07-01")
    choose_date(page, without)
    message = page.text_content("#quicklook-message")
    assert "the cloud layer CLM is absent" in message and "run `polyfis clouds`" in message
    assert page.is_hidden("#quicklook-clouds") and page.locator(".leaflet-clouds-pane img").count() == 0


def test_a_batch_runs_from_the_page_to_done(open_page, base: str) -> None:
    """Upload the demo polygons as a batch (ids from their name), watch it to DONE and download its CSV (the
    bytes the job's result route serves) and Parquet (the same rows)."""
    page = open_page(base).page
    page.fill("#time-from", "2023-01-01")
    page.fill("#time-to", "2023-02-28")
    only_bands(page, ["B04", "B08"])
    page.set_input_files("#batch-file", str(fixtures_dir() / POLYGONS_FILE))
    page.get_by_label("Id property (empty: properties.id, else the position)").fill("name")
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/api/v1/batch")) as sent:
        page.get_by_role("button", name="Run the batch").click()
    assert json.loads(sent.value.post_data)["time"] == {"from": "2023-01-01", "to": "2023-02-28"}
    status = wait_until(page, "(t => /DONE|FAILED|refused/.test(t) && t)(document.getElementById('batch-status')"
                              ".textContent)", timeout=180)
    assert "DONE" in status, status
    job_id = status.split()[1].rstrip(":")
    progress = page.evaluate("[document.getElementById('batch-progress').value, "
                             "document.getElementById('batch-progress').max]")
    job = json.loads(api(base, f"/api/v1/batch/{job_id}"))
    assert job["status"] == "DONE" and progress == [job["progress"]["done"], job["progress"]["total"]]
    with page.expect_download() as download:
        page.get_by_role("button", name="Download batch CSV").click()
    got = Path(download.value.path()).read_bytes()
    assert got == api(base, f"/api/v1/batch/{job_id}/results?format=csv")
    rows = list(csv.DictReader(io.StringIO(got.decode())))
    names = {f["properties"]["name"] for f in json.loads((fixtures_dir() / POLYGONS_FILE).read_text())["features"]}
    assert {r["id"] for r in rows} == names and len(rows) == job["rows"]
    with page.expect_download() as download:
        page.get_by_role("button", name="Download batch Parquet").click()
    table = pq.read_table(download.value.path())
    assert table.num_rows == len(rows) and set(table.column("id").to_pylist()) == names


def test_offline_the_page_asks_nothing_of_another_server(open_page, base: str) -> None:
    """From opening to a query and a quicklook, every request goes to this server (or is a blob: of its
    answers), the archive's own imagery is the base layer; only turning OpenStreetMap on asks its tile server
    (answered here by the test, never by the network)."""
    browser = open_page(base)
    page = browser.page
    wait_until(page, "[...document.querySelectorAll('.leaflet-base-pane img')].some(i => i.naturalWidth > 0)")
    # the map opens on the archive: its extent (outlined) and imagery fill the map in one direction
    assert page.locator(".leaflet-overlay-pane path").count() == 1
    map_box, image_box = page.locator("#map").bounding_box(), page.locator(".leaflet-base-pane img").bounding_box()
    assert image_box["x"] >= map_box["x"] - 2 and image_box["x"] + image_box["width"] <= map_box["x"] + map_box["width"] + 2
    assert image_box["y"] >= map_box["y"] - 2 and image_box["y"] + image_box["height"] <= map_box["y"] + map_box["height"] + 2
    assert max(image_box["width"] / map_box["width"], image_box["height"] / map_box["height"]) > 0.8
    page.get_by_label("Demo polygon").select_option(label="lake")
    run_query(page)
    page.locator("#series-table tbody button").nth(2).click()
    wait_until(page, "document.getElementById('quicklook-image').naturalWidth > 0")
    urls = [r.url for r in browser.requests]
    outside = [u for u in urls if not u.startswith((f"{base}/", "blob:", "data:"))]
    assert not outside
    assert any("/api/v1/render/" in u for u in urls) and any(u.endswith("/api/v1/timeseries") for u in urls)
    tile = resources.files("service") / "static" / "vendor" / "leaflet" / "images" / "layers.png"
    page.route("https://tile.openstreetmap.org/**", lambda route: route.fulfill(body=tile.read_bytes(),
                                                                               content_type="image/png"))
    page.get_by_label("OpenStreetMap base layer (goes online)").check()
    wait_until(page, "document.querySelectorAll('.leaflet-tile-pane img').length > 0")
    later = [r.url for r in browser.requests[len(urls):]]
    assert later and all(u.startswith(("https://tile.openstreetmap.org/", f"{base}/")) for u in later)


def test_the_page_fits_a_phone(open_page, base: str) -> None:
    """At 390 px wide every main control is visible within the screen's width and nothing scrolls sideways,
    before and after a query (the wide table scrolls inside its own frame)."""
    page = open_page(base, width=390, height=844).page
    overflow = "document.documentElement.scrollWidth - window.innerWidth"
    assert page.evaluate(overflow) <= 0
    for selector in ["#draw", "#upload", "#demo-polygon", "#time-from", "#time-to", "#statistics", "#cloud-mode",
                     "#run", "#batch-file", "#batch-run", "#map"]:
        control = page.locator(selector)
        control.scroll_into_view_if_needed()
        assert control.is_visible(), selector
        box = control.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390 + 0.5, (selector, box)
    page.get_by_label("Demo polygon").select_option(label="forest")
    run_query(page)
    assert page.is_visible("#cloud-chart canvas")
    assert page.evaluate(overflow) <= 0
    chart = page.locator("#cloud-chart").bounding_box()
    assert chart["x"] + chart["width"] <= 390 + 0.5


FORM_LABELS = {
    "Draw a polygon": "draw", "Upload GeoJSON or WKT": "upload", "Demo polygon": "demo-polygon",
    "Archive imagery (base layer)": "base-date", "OpenStreetMap base layer (goes online)": "osm",
    "From": "time-from", "To": "time-to", "Statistics (comma-separated)": "statistics",
    "Resolution (m)": "resolution", "Cloud mode": "cloud-mode", "Cloud threshold": "cloud-threshold",
    "Statistics over clear pixels only (cloud mask)": "cloud-mask", "Measure water area": "water",
    "Water index": "water-index", "Water method": "water-method", "Water threshold": "water-threshold",
    "Run the query": "run", "Polygons (GeoJSON FeatureCollection)": "batch-file", "Run the batch": "batch-run",
}


def test_every_control_has_a_label_and_is_reached_with_tab(open_page, base: str) -> None:
    """Each form control is found by its accessible name, none lacks one, Tab reaches them all, and a query
    runs from the keyboard (Enter on the focused Run button)."""
    page = open_page(base).page
    for name, element_id in FORM_LABELS.items():
        control = page.get_by_role("button", name=name, exact=True) if element_id in ("draw", "run", "batch-run") \
            else page.get_by_label(name, exact=True)
        assert control.get_attribute("id") == element_id, name
    unlabelled = page.evaluate("""[...document.querySelectorAll('main input, main select')]
        .filter(e => !e.labels.length && !e.getAttribute('aria-label')).map(e => e.id || e.name)""")
    assert unlabelled == []
    assert page.get_by_label("B08", exact=True).is_checked() and page.get_by_label("NDVI", exact=True).count() == 1
    page.evaluate("document.activeElement.blur()")
    reached = []
    for _ in range(150):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id"))
    assert set(FORM_LABELS.values()) <= set(reached), set(FORM_LABELS.values()) - set(reached)
    page.get_by_label("Demo polygon").select_option(label="town")
    page.get_by_label("Cloud threshold").focus()
    for _ in range(40):
        if page.evaluate("document.activeElement.id") == "run":
            break
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    wait_until(page, "!document.getElementById('results').hidden && "
                     "document.getElementById('series-table').tBodies[0].rows.length > 0")


def test_the_form_starts_from_the_apis_defaults(open_page, base: str) -> None:
    """The form's initial values are the defaults the contract gives (and the archive's time range)."""
    page = open_page(base).page
    spec = json.loads(api(base, "/openapi.json"))["components"]["schemas"]["TimeSeriesRequest"]["properties"]
    bands = page.evaluate("[...document.querySelectorAll('input[name=band]:checked')].map(e => e.value)")
    assert bands == spec["bands"]["default"]
    statistics = [s.strip() for s in page.input_value("#statistics").split(",")]
    assert statistics == spec["statistics"]["default"]
    cloud = spec["cloud"]["properties"]
    assert page.input_value("#cloud-mode") == cloud["mode"]["default"]
    assert float(page.input_value("#cloud-threshold")) == cloud["threshold"]["default"]
    assert page.is_checked("#cloud-mask") is cloud["mask"]["default"]
    assert int(page.input_value("#resolution")) == spec["resolution"]["default"]
    interval = json.loads(api(base, "/collections"))["collections"][0]["extent"]["temporal"]["interval"][0]
    assert [page.input_value("#time-from"), page.input_value("#time-to")] == [interval[0][:10], interval[1][:10]]


def test_an_api_error_is_shown_with_its_message(open_page, base: str) -> None:
    """A range ending before it starts: the page shows the API's own message for that body."""
    page = open_page(base).page
    page.get_by_label("Demo polygon").select_option(label="lake")
    page.fill("#time-from", "2023-06-01")
    page.fill("#time-to", "2023-05-01")
    body = run_query(page).post_data
    error = api_error(base, "/api/v1/timeseries", body)
    assert error["status"] == 400
    status = page.locator("#query-status")
    assert error["message"] in status.text_content() and status.get_attribute("class") == "error"


def test_the_water_area_is_charted_when_asked(open_page, base: str) -> None:
    """With water measured over the lake (100 m buffer: monitoring), the water chart has every date and a value
    on each date the API measured (status OK), and the table has the API's water status per date."""
    page = open_page(base).page
    page.get_by_label("Demo polygon").select_option(label="lake")
    page.fill("#time-from", "2023-07-01")
    page.fill("#time-to", "2023-09-30")
    only_bands(page, ["B03"])
    page.get_by_label("Measure water area").check()
    page.get_by_label("Buffer around the polygon, m (monitoring; empty: the polygon itself)").fill("100")
    body = run_query(page).post_data
    assert json.loads(body)["water"]["buffer_m"] == 100
    series = json.loads(api(base, "/api/v1/timeseries", body))["series"]
    measured = [e for e in series if e["water"]["status"] == "OK"]
    assert page.is_visible("#water-chart canvas")
    assert page.get_attribute("#water-chart", "data-points") == str(len(series))
    assert page.get_attribute("#water-chart", "data-measured") == str(len(measured)) and 0 < len(measured) < len(series)
    column = page.evaluate("[...document.querySelectorAll('#series-table thead th')].map(t => t.textContent)"
                           ".indexOf('water_status')")
    statuses = page.evaluate(f"[...document.querySelectorAll('#series-table tbody tr')].map(r => r.children[{column}]"
                             ".textContent)")
    assert statuses == [e["water"]["status"] for e in series]


def test_per_date_errors_and_warnings_are_listed(open_page, broken_base: str, tmp_path: Path) -> None:
    """A date whose imagery cannot be read is listed with the API's error for it (the answer is PARTIAL, the
    other dates charted); a polygon outside the archive gets the API's warnings listed."""
    page = open_page(broken_base).page
    page.get_by_label("Demo polygon").select_option(label="lake")
    only_bands(page, ["B03", "B04"])
    body = run_query(page).post_data
    answer = json.loads(api(broken_base, "/api/v1/timeseries", body))
    errors = [e for e in answer["series"] if "error" in e]
    assert answer["status"] == "PARTIAL" and [e["date"] for e in errors] == ["2023-03-06"]
    items = page.locator("#messages li.error").all_text_contents()
    assert items == [f"2023-03-06: {errors[0]['error']}"]
    assert page.get_attribute("#cloud-chart", "data-points") == str(len(answer["series"]))
    assert "status PARTIAL" in page.text_content("#messages")
    outside = {"type": "Polygon", "coordinates": [[[2.0, 40.0], [2.01, 40.0], [2.01, 40.01], [2.0, 40.0]]]}
    upload = tmp_path / "far.geojson"
    upload.write_text(json.dumps(outside))
    page.set_input_files("#upload", str(upload))
    body = run_query(page).post_data
    warnings = json.loads(api(broken_base, "/api/v1/timeseries", body))["warnings"]
    assert warnings and page.locator("#messages li.warning").all_text_contents() == [f"Warning: {w}" for w in warnings]


def test_text_from_requests_is_never_inserted_as_html(open_page, base: str, tmp_path: Path) -> None:
    """A polygon named with an <img onerror> and a statistic holding one (echoed by the API's error message):
    both are shown as text, and no element is created from them."""
    page = open_page(base).page
    feature = {**demo_feature("field_small"), "properties": {"name": PAYLOAD}}
    upload = tmp_path / "evil.geojson"
    upload.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    page.set_input_files("#upload", str(upload))
    wait_until(page, "document.getElementById('area-status').textContent.includes('<img')")
    assert PAYLOAD in page.text_content("#area-status")
    page.fill("#statistics", f"mean, {PAYLOAD}")
    body = run_query(page).post_data
    message = api_error(base, "/api/v1/timeseries", body)["message"]
    assert "<img src=x" in message and message in page.text_content("#query-status")
    batch = tmp_path / "evil-batch.geojson"
    batch.write_text(json.dumps({"type": "FeatureCollection", "features": [{**feature, "properties": {"id": PAYLOAD}}]}))
    page.fill("#statistics", "mean")
    page.fill("#time-from", "2023-01-01")
    page.fill("#time-to", "2023-01-20")
    page.set_input_files("#batch-file", str(batch))
    page.get_by_role("button", name="Run the batch").click()
    wait_until(page, "/DONE|FAILED|refused/.test(document.getElementById('batch-status').textContent)", timeout=120)
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
    assert page.evaluate("window.__xss === undefined")


def test_with_auth_on_the_page_signs_in_and_sends_the_token(open_page, auth_base: str) -> None:
    """With clients configured the page asks for a client id and secret, shows the token route's refusal of a
    wrong secret, and once signed in sends the bearer token with its queries and images."""
    browser = open_page(auth_base)
    page = browser.page
    assert page.is_visible("#signin")
    page.get_by_label("Client id").fill("pageuser")
    page.get_by_label("Client secret").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    wait_until(page, "document.getElementById('signin-message').textContent.length > 0")
    assert page.text_content("#signin-message") == "invalid client credentials"
    page.get_by_label("Client secret").fill("pagesecret")
    page.get_by_role("button", name="Sign in").click()
    wait_until(page, "document.getElementById('signin-message').textContent === 'Signed in.'")
    page.get_by_label("Demo polygon").select_option(label="lake")
    sent = run_query(page)
    assert sent.headers["authorization"].startswith("Bearer ")
    assert page.locator("#series-table tbody tr").count() > 10
    renders = [r for r in browser.requests if "/api/v1/render/" in r.url]
    assert renders and all(r.headers.get("authorization", "").startswith("Bearer ") for r in renders)
