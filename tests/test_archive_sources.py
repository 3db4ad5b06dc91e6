"""Archive sources: a real STAC API (stac-fastapi-pgstac on PostgreSQL + PostGIS, started here on 127.0.0.1),
the stac-geoparquet index and a static catalog over HTTP all answer as the local catalog does.

The API is loaded with the demo archive's items (asset hrefs made absolute with pystac) through pypgstac, and
searched through pystac-client; the expected answers are worked out from the item files with pystac and shapely.
"""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pystac
import pytest
from shapely.geometry import box, shape

from stats import TimeSeriesRequest, query_timeseries
from stats.archive.catalog import Archive
from stats.archive.sources import stac_api
from stats.archive.sources.geoparquet import GeoparquetSource
from stats.archive.sources.static import read_static_catalog
from stats.archive.synthetic import demo_polygons
from stats.errors import ArchiveError, ArchiveUnreachableError

UTC = dt.UTC
COLLECTION = "sentinel-2-l1c"
YEAR = (dt.datetime(2023, 1, 1, tzinfo=UTC), dt.datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _polygon(name: str) -> dict[str, Any]:
    return next(f["geometry"] for f in demo_polygons()["features"] if f["properties"]["name"] == name)


def _demo_items(root: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The demo collection and its items as dicts, asset hrefs absolute (read with pystac alone)."""
    collection = pystac.read_file(str(root / "collection.json"))
    assert isinstance(collection, pystac.Collection)
    items = []
    for item in collection.get_items(recursive=True):
        item.make_asset_hrefs_absolute()
        data = item.to_dict(include_self_link=False, transform_hrefs=False)
        data["links"], data["collection"] = [], collection.id
        items.append(data)
    info = collection.to_dict(include_self_link=False, transform_hrefs=False)
    info["links"] = []
    return info, items


def _expected_ids(items: list[dict[str, Any]], geometry: Any, start: dt.datetime, end: dt.datetime,
                  max_cloud_cover: float | None = None) -> list[str]:
    """The ids a search must find, from the item dicts (datetime, geometry, eo:cloud_cover), by (time, id)."""
    found = []
    for item in items:
        when = dt.datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))
        cover = item["properties"].get("eo:cloud_cover")
        if start <= when <= end and shape(item["geometry"]).intersects(geometry) and (
                max_cloud_cover is None or cover is None or cover <= max_cloud_cover):
            found.append((when, item["id"]))
    return [i for _, i in sorted(found)]


# --------------------------------------------------------------------------------------------------------
# the STAC API server: PostgreSQL + PostGIS (OS packages), pgstac (pypgstac), stac-fastapi-pgstac (uvicorn)
# --------------------------------------------------------------------------------------------------------


def _pg_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (initdb, pg_ctl), or None."""
    found = shutil.which("pg_ctl")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return next((c for c in candidates if (c / "initdb").exists() and (c / "pg_ctl").exists()), None)


def _why_no_pgstac() -> tuple[Path | None, str]:
    """(PostgreSQL bin folder, "") when a pgstac server can be started here, else (None, the reason)."""
    try:
        import pypgstac.load  # noqa: F401
        import stac_fastapi.pgstac.app  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        return None, f"the STAC API server packages are not installed ({exc}); pip install '.[test]'"
    pg = _pg_bin()
    if pg is None:
        return None, "PostgreSQL's server programs (initdb, pg_ctl) are not installed (Debian: postgresql)"
    share = subprocess.run([str(pg / "pg_config"), "--sharedir"], capture_output=True, text=True, check=False)
    sharedir = Path(share.stdout.strip()) if share.returncode == 0 else pg.parent / "share"
    if not any((d / "extension" / "postgis.control").is_file() for d in (sharedir, Path(
            f"/usr/share/postgresql/{pg.parent.name}"))):
        return None, f"PostGIS is not installed for PostgreSQL {pg.parent.name} (Debian: postgresql-postgis)"
    if os.geteuid() == 0 and (shutil.which("runuser") is None or subprocess.run(
            ["id", "-u", "postgres"], capture_output=True, check=False).returncode != 0):
        return None, "running as root without a 'postgres' user and runuser: initdb refuses to run as root"
    return pg, ""


def _as_db_user(args: list[str]) -> list[str]:
    """The command run as the database's OS user (initdb and postgres refuse root)."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="module")
def demo_items(demo_root: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The demo archive's collection and items as dicts."""
    return _demo_items(demo_root)


@pytest.fixture(scope="module")
def stac_api_url(demo_items: tuple[dict[str, Any], list[dict[str, Any]]]) -> Iterator[str]:
    """A stac-fastapi-pgstac server on 127.0.0.1, on a PostgreSQL cluster of its own, holding the demo items."""
    pg, reason = _why_no_pgstac()
    if pg is None:
        pytest.skip(reason)
    work = Path(tempfile.mkdtemp(prefix="polyfis-pgstac-"))
    if os.geteuid() == 0:
        shutil.chown(work, "postgres")
    data, log = work / "data", work / "postgres.log"
    db_port, api_port = _free_port(), _free_port()
    server: subprocess.Popen[bytes] | None = None
    started = False
    try:
        init = subprocess.run(_as_db_user([str(pg / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                           "-E", "UTF8"]), capture_output=True, text=True, check=False)
        if init.returncode != 0:
            pytest.skip(f"initdb cannot create a PostgreSQL cluster here: {init.stderr.strip()[-300:]}")
        start = subprocess.run(_as_db_user([str(pg / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o",
                                            f"-h 127.0.0.1 -p {db_port} -k {work}", "start"]),
                               capture_output=True, text=True, check=False)
        if start.returncode != 0:
            pytest.skip(f"PostgreSQL does not start here: {start.stderr.strip()[-300:]}")
        started = True
        import psycopg
        from pypgstac.db import PgstacDB
        from pypgstac.load import Loader, Methods
        from pypgstac.migrate import Migrate

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{db_port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE stac")
        dsn = f"postgresql://postgres@127.0.0.1:{db_port}/stac"
        db = PgstacDB(dsn=dsn)
        Migrate(db).run_migration()
        collection, items = demo_items
        loader = Loader(db)
        loader.load_collections(iter([collection]), Methods.insert)
        loader.load_items(iter(items), Methods.insert)
        db.close()
        env = {**os.environ, "PGUSER": "postgres", "PGPASSWORD": "", "PGHOST": "127.0.0.1", "PGPORT": str(db_port),
               "PGDATABASE": "stac"}
        server = subprocess.Popen([sys.executable, "-m", "uvicorn", "stac_fastapi.pgstac.app:create_app", "--factory",
                                   "--host", "127.0.0.1", "--port", str(api_port), "--log-level", "warning"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{api_port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url + "/", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                error = server.stderr.read().decode(errors="replace")[-400:] if server.stderr else ""
                pytest.fail(f"stac-fastapi-pgstac did not start on {url}: {error}")
            time.sleep(0.3)
        yield url
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if started:
            subprocess.run(_as_db_user([str(pg / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                           capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(name="api_reference")
def fixture_api_reference(stac_api_url: str) -> str:
    """The archive reference of the demo collection on the STAC API."""
    return f"stac+{stac_api_url}#{COLLECTION}"


def _series(archive: Archive, polygon: str = "field_small", **extra: Any) -> dict[str, Any]:
    body = {"geometry": _polygon(polygon), "time": {"from": "2023-01-01", "to": "2023-12-31"},
            "bands": ["B04", "B08"], "indices": ["NDVI"], "statistics": ["mean", "std", "p50"], **extra}
    result = query_timeseries(TimeSeriesRequest.from_dict(body), archive).to_dict()
    return result


@pytest.fixture(scope="module")
def local_series(demo_root: Path) -> dict[str, Any]:
    """The demo field's series from the static catalog in memory (the reference)."""
    return _series(Archive(source=read_static_catalog(demo_root)))


def test_stac_api_time_series_equals_the_local_archive(api_reference: str, local_series: dict[str, Any]) -> None:
    """The time series searched through the STAC API (pystac-client) is the local archive's, value for value."""
    archive = Archive.open(api_reference)
    assert archive.kind == f"STAC API {api_reference[5:].split('#')[0]} collection '{COLLECTION}'"
    series = _series(archive)
    assert len(series["series"]) > 20 and series == local_series


def test_stac_api_search_finds_the_items_of_the_polygon_time_and_cloud_cover(
        api_reference: str, demo_items: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    """Search by polygon, time range and cloud cover answers the items those three select, oldest first."""
    _, items = demo_items
    source = Archive.open(api_reference)
    field = shape(_polygon("field_wheat"))
    spring = (dt.datetime(2023, 3, 1, tzinfo=UTC), dt.datetime(2023, 6, 30, tzinfo=UTC))
    for geometry, (start, end), cover in [(field, YEAR, None), (field, spring, None), (field, YEAR, 20.0),
                                          (box(0, 0, 1, 1), YEAR, None)]:
        expected = _expected_ids(items, geometry, start, end, cover)
        assert [a.id for a in source.search(geometry, start, end, max_cloud_cover=cover)] == expected
    assert _expected_ids(items, field, *YEAR, 20.0) != _expected_ids(items, field, *YEAR)  # the filter bites


def test_stac_api_pages_through_the_answer(api_reference: str, monkeypatch: pytest.MonkeyPatch,
                                           demo_items: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    """With pages of 4 items, a year's search follows the API's next links to every item."""
    monkeypatch.setattr(stac_api, "PAGE_SIZE", 4)
    field = shape(_polygon("field_small"))
    expected = _expected_ids(demo_items[1], field, *YEAR)
    assert len(expected) > 8
    assert [a.id for a in Archive.open(api_reference).search(field, *YEAR)] == expected


def test_stac_api_answers_a_repeated_search_from_its_cache(api_reference: str) -> None:
    """The second identical search is answered without asking the API, and so is a lookup of its ids."""
    archive = Archive.open(api_reference)
    field = shape(_polygon("field_small"))
    first = archive.search(field, *YEAR)
    source = archive.source
    assert isinstance(source, stac_api.StacApiSource)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the API was asked again")

    source.client.search = refuse  # type: ignore[method-assign]
    assert archive.search(field, *YEAR) == first
    assert archive.get([first[2].id, first[0].id]) == [first[2], first[0]]


def test_stac_api_extents_count_and_bands(api_reference: str, demo_root: Path) -> None:
    """The API source's extents come from its collection, its count from the API's numberMatched (None when the
    API leaves it out, as pgstac does by default), its bands from an item."""
    local = Archive(source=read_static_catalog(demo_root))
    archive = Archive.open(api_reference)
    extent, interval = archive.spatial_extent, archive.temporal_extent
    assert extent is not None and interval is not None and local.spatial_extent is not None
    assert extent == pytest.approx(local.spatial_extent, abs=1e-6)
    assert interval == local.temporal_extent
    page = json.loads(urllib.request.urlopen(api_reference[5:].split("#")[0] + f"/search?collections={COLLECTION}"
                                             "&limit=1", timeout=30).read())
    assert archive.count == page.get("numberMatched", page.get("context", {}).get("matched"))
    assert archive.bands() == local.bands()
    assert archive.covers(shape(_polygon("field_small"))) and not archive.covers(box(0, 0, 1, 1))


def test_an_unknown_collection_is_a_503_naming_the_collections_there(stac_api_url: str) -> None:
    """An unknown collection: the error names it, the API and the collections it has; the service answers 503."""
    reference = f"stac+{stac_api_url}#sentinel-2-l2a"
    with pytest.raises(ArchiveError, match=rf"STAC API {stac_api_url}: no collection 'sentinel-2-l2a'; it has the "
                                           rf"collections \['{COLLECTION}'\].*POLYFIS_ARCHIVE"):
        Archive.open(reference)
    from service import create_app

    answer = create_app({"archive": reference}).test_client().get("/health")
    assert answer.status_code == 503
    assert answer.json["error"]["code"] == "Archive"
    assert "no collection 'sentinel-2-l2a'" in answer.json["error"]["message"]


def test_an_unreachable_api_is_a_502_naming_the_url_and_the_setting() -> None:
    """No server at the URL: a 502 JSON answer naming the API and POLYFIS_ARCHIVE, no library traceback."""
    url = f"http://127.0.0.1:{_free_port()}/v1"
    with pytest.raises(ArchiveUnreachableError, match=rf"STAC API {url}: cannot be reached"):
        Archive.open(f"stac+{url}#{COLLECTION}")
    from service import create_app

    answer = create_app({"archive": f"stac+{url}#{COLLECTION}"}).test_client().get("/collections")
    assert answer.status_code == 502
    body = answer.json["error"]
    assert body["code"] == "ArchiveUnreachable" and url in body["message"] and "POLYFIS_ARCHIVE" in body["message"]
    assert "Traceback" not in body["message"]


@pytest.mark.parametrize("reference", ["stac+https://earth-search.aws.element84.com/v1",
                                       "stac+ftp://host/v1#x", "stac+https:///v1#x"])
def test_a_malformed_api_reference_names_the_expected_form(reference: str) -> None:
    """A reference without a collection, or not http(s), says the form to use."""
    with pytest.raises(ArchiveError, match=r"expected a STAC API and one of its collections as "
                                           r"stac\+https://host/path#collection"):
        Archive.open(reference)


def test_the_service_answers_time_series_from_the_stac_api(api_reference: str, local_series: dict[str, Any]) -> None:
    """POLYFIS_ARCHIVE naming the API: /api/v1/timeseries answers what the local archive gives."""
    from service import create_app

    client = create_app({"archive": api_reference}).test_client()
    body = {"geometry": _polygon("field_small"), "time": {"from": "2023-01-01", "to": "2023-12-31"},
            "bands": ["B04", "B08"], "indices": ["NDVI"], "statistics": ["mean", "std", "p50"]}
    answer = client.post("/api/v1/timeseries", json=body)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.json["series"] == json.loads(json.dumps(local_series["series"]))


# --------------------------------------------------------------------------------------------------------
# the stac-geoparquet index
# --------------------------------------------------------------------------------------------------------


def test_the_demo_archive_is_opened_through_its_index(demo_root: Path) -> None:
    """The archive writer leaves items.parquet beside collection.json, and opening the folder uses it."""
    assert (demo_root / "items.parquet").is_file()
    archive = Archive.open(demo_root)
    assert isinstance(archive.source, GeoparquetSource)
    assert archive.count == len(list((demo_root / "items").glob("*/*.json")))


def test_index_time_series_equals_the_local_archive(demo_root: Path, local_series: dict[str, Any]) -> None:
    """The series answered through the stac-geoparquet index is the static catalog's, value for value."""
    assert _series(Archive.open(demo_root / "items.parquet")) == local_series


def test_index_search_equals_the_item_files(demo_root: Path,
                                            demo_items: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    """Index searches by polygon, time and cloud cover find the items the item files select; extents, dates and
    lookups by id agree with the static catalog."""
    _, items = demo_items
    index = Archive.open(demo_root)
    local = Archive(source=read_static_catalog(demo_root))
    for name in ("field_small", "field_wheat", "lake"):
        geometry = shape(_polygon(name))
        for start, end in (YEAR, (dt.datetime(2023, 5, 1, tzinfo=UTC), dt.datetime(2023, 5, 31, tzinfo=UTC))):
            for cover in (None, 10.0, 50.0):
                expected = _expected_ids(items, geometry, start, end, cover)
                assert [a.id for a in index.search(geometry, start, end, max_cloud_cover=cover)] == expected
                assert index.search(geometry, start, end, max_cloud_cover=cover) == \
                    local.search(geometry, start, end, max_cloud_cover=cover)
    assert index.spatial_extent == pytest.approx(local.spatial_extent)
    assert index.temporal_extent == local.temporal_extent
    assert index.dates() == local.dates() and index.bands() == local.bands()
    ids = [items[5]["id"], items[0]["id"]]
    assert [a.id for a in index.get(ids)] == ids
    with pytest.raises(ArchiveError, match=r"no acquisition with id \['nope'\]"):
        index.get(["nope"])


def test_index_acquisitions_equal_the_static_catalogs_field_for_field(demo_root: Path) -> None:
    """Every acquisition read from the index's item JSON (no pystac Item built) equals the one the static
    catalog builds from the item files through pystac: hrefs, footprint, layout, offsets, cloud layers."""
    index = Archive.open(demo_root)
    assert isinstance(index.source, GeoparquetSource)
    local = Archive(source=read_static_catalog(demo_root)).acquisitions
    assert len(local) > 0 and index.acquisitions == local
    assert index.get([a.id for a in local[::-1]]) == local[::-1]


def test_polyfis_index_rebuilds_the_index_of_a_moved_archive(demo_root: Path, tmp_path: Path,
                                                             local_series: dict[str, Any]) -> None:
    """A copied archive (relative hrefs) answers the same; `polyfis index` rewrites a deleted index."""
    from click.testing import CliRunner

    from polyfis.cli import main

    copy = tmp_path / "copy"
    shutil.copytree(demo_root, copy)
    (copy / "items.parquet").unlink()
    assert not isinstance(Archive.open(copy).source, GeoparquetSource)
    run = CliRunner().invoke(main, ["index", "--archive", str(copy)])
    assert run.exit_code == 0, run.output
    archive = Archive.open(copy)
    assert isinstance(archive.source, GeoparquetSource)
    assert all(str(copy) in href for a in archive.acquisitions for href in a.assets.values())
    assert _series(archive) == local_series


# --------------------------------------------------------------------------------------------------------
# a static catalog over HTTP
# --------------------------------------------------------------------------------------------------------


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files slowly (20 ms each), counting the requests in flight at once."""

    in_flight = 0
    most = 0
    lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        cls = type(self)
        with cls.lock:
            cls.in_flight += 1
            cls.most = max(cls.most, cls.in_flight)
        try:
            time.sleep(0.02)
            super().do_GET()
        finally:
            with cls.lock:
                cls.in_flight -= 1

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the http.server API)
        """Quiet."""


def test_a_static_catalog_over_http_is_read_concurrently(demo_root: Path) -> None:
    """Over HTTP the item files are fetched several at once, and give the local catalog's acquisitions (with
    URL hrefs)."""
    handler = functools.partial(_CountingHandler, directory=str(demo_root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/collection.json"
        remote = Archive.open(url)
    finally:
        server.shutdown()
        server.server_close()
    local = Archive(source=read_static_catalog(demo_root))
    assert _CountingHandler.most > 1
    assert [a.id for a in remote.acquisitions] == [a.id for a in local.acquisitions]
    first = remote.acquisitions[0]
    assert first.assets["B04"] == url.replace("collection.json", f"items/{first.id}/B04.tif")
