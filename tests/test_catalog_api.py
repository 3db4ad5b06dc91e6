"""The Catalog API (``/api/v1/catalog/1.0.0``) driven by the real clients: sentinelhub-py's
``SentinelHubCatalog`` and ``get_available_timestamps`` (what eo-learn calls) and pystac-client, against a live
``polyfis serve``. Their results are compared with the archive's STAC Items read with pystac from the catalog
files and filtered by hand."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pystac
import pytest
import requests
from affine import Affine
from shapely.geometry import Point, box, shape

from service import create_app
from stats.archive.catalog import ArchiveWriter
from stats.sentinelhub.catalog import FieldSelection, parse_bbox

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from common import polyfis_server  # noqa: E402

ROOT = "/api/v1/catalog/1.0.0"
CLIENT, SECRET = "catalog-client", "catalog-secret"
ARCHIVE_ID = "my-archive"
#: Tile origins (UTM 33N) of the three places of the test archive, 10 km apart.
ORIGINS = ((500000.0, 5000120.0), (510000.0, 5000120.0), (520000.0, 5000120.0))


def tile_specs() -> list[tuple[str, dt.datetime, int, float]]:
    """(id, datetime, place, cloud cover) of the 14 acquisitions: every 9 days from 3 January 2023, the places in
    turn, cloud cover (37 i) mod 100 percent."""
    specs = []
    for i in range(14):
        when = dt.datetime(2023, 1, 3, 10, 0, i, tzinfo=dt.UTC) + dt.timedelta(days=9 * i)
        specs.append((f"P{i % 3}_{when:%Y%m%d}", when, i % 3, float((37 * i) % 100)))
    return specs


@pytest.fixture(scope="module", name="archive_root")
def fixture_archive_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test archive (one small B04 band per acquisition)."""
    root = tmp_path_factory.mktemp("catalog") / "archive"
    with ArchiveWriter(root, collection_id=ARCHIVE_ID) as writer:
        for item_id, when, place, cloud in tile_specs():
            x0, y0 = ORIGINS[place]
            band = np.full((12, 12), 500 + place, np.uint16)
            writer.add(item_id, when, "EPSG:32633", {"B04": (band, Affine(10, 0, x0, 0, -10, y0))},
                       cloud_cover=cloud, processing_baseline="04.00")
    return root


def reference_items(root: Path) -> list[pystac.Item]:
    """The archive's Items as pystac reads them from the catalog files, by datetime then id."""
    items = list(pystac.read_file(str(root / "collection.json")).get_items(recursive=True))  # type: ignore[attr-defined]
    return sorted(items, key=lambda item: (item.datetime, item.id))


def select(items: list[pystac.Item], area=None, start=None, end=None, below=None) -> list[pystac.Item]:
    """Items filtered by hand: footprint intersecting ``area``, datetime in [start, end], cloud cover < below."""
    return [item for item in items
            if (area is None or shape(item.geometry).intersects(area))
            and (start is None or item.datetime >= start) and (end is None or item.datetime <= end)
            and (below is None or item.properties["eo:cloud_cover"] < below)]


def places_box(root: Path, places: tuple[int, ...]) -> tuple[float, float, float, float]:
    """A WGS84 box around the footprints of ``places`` only (from the Items' own bboxes)."""
    boxes = [item.bbox for item in reference_items(root) if int(item.id[1]) in places]
    west, south = min(b[0] for b in boxes), min(b[1] for b in boxes)
    east, north = max(b[2] for b in boxes), max(b[3] for b in boxes)
    return west - 1e-4, south - 1e-4, east + 1e-4, north + 1e-4


@pytest.fixture(scope="module", name="server")
def fixture_server(archive_root: Path) -> Iterator[str]:
    """A live ``polyfis serve`` of the test archive with OAuth on; its base URL."""
    env = {"POLYFIS_ARCHIVE": str(archive_root), "POLYFIS_AUTH_CLIENTS": f"{CLIENT}:{SECRET}",
           "POLYFIS_AUTH_KEY": "catalog-test-key-of-32-bytes-or-more", "POLYFIS_TOKEN_TTL": "1800"}
    with polyfis_server(1, env) as running:
        yield running.base


@pytest.fixture(name="config")
def fixture_config(server: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """sentinelhub-py's configuration for the live server (plain http needs OAUTHLIB_INSECURE_TRANSPORT)."""
    from sentinelhub import SHConfig

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    return SHConfig(sh_base_url=server, sh_token_url=f"{server}/oauth/token", sh_client_id=CLIENT,
                    sh_client_secret=SECRET)


def bearer(server: str) -> dict[str, str]:
    """The Authorization header of a fresh token."""
    answer = requests.post(f"{server}/oauth/token", data={"grant_type": "client_credentials", "client_id": CLIENT,
                                                           "client_secret": SECRET}, timeout=30).json()
    return {"Authorization": f"Bearer {answer['access_token']}"}


# ------------------------------------------------------------------------------------------------------------
# sentinelhub-py
# ------------------------------------------------------------------------------------------------------------


def test_sentinelhub_catalog_search_with_bbox_time_cloud_filter_and_fields(config, archive_root: Path) -> None:
    """SentinelHubCatalog.search over pages of 2 returns the items a hand filter of the Items finds, each once,
    with only the fields asked for."""
    from sentinelhub import CRS, BBox, DataCollection, SentinelHubCatalog

    west, south, east, north = places_box(archive_root, (0, 1))
    catalog = SentinelHubCatalog(config=config)
    found = list(catalog.search(
        DataCollection.SENTINEL2_L1C, bbox=BBox((west, south, east, north), crs=CRS.WGS84),
        time=("2023-02-01", "2023-10-31"), filter="eo:cloud_cover < 60",
        fields={"include": ["id", "properties.datetime", "properties.eo:cloud_cover"], "exclude": []}, limit=2))
    expected = select(reference_items(archive_root), box(west, south, east, north),
                      dt.datetime(2023, 2, 1, tzinfo=dt.UTC), dt.datetime(2023, 10, 31, 23, 59, 59, tzinfo=dt.UTC),
                      below=60)
    assert len(expected) >= 3  # several pages
    assert [f["id"] for f in found] == [item.id for item in expected]
    for feature, item in zip(found, expected):
        assert set(feature) == {"type", "id", "properties"}
        assert feature["properties"] == {"datetime": item.datetime.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                         "eo:cloud_cover": item.properties["eo:cloud_cover"]}


def test_sentinelhub_catalog_search_with_a_utm_geometry(config, archive_root: Path) -> None:
    """A search geometry in UTM (the client sends it in WGS84 as intersects) finds the items of the place it
    covers, as the Items' footprints intersected by hand with the polygon reprojected by pyproj."""
    from pyproj import Transformer
    from sentinelhub import CRS, DataCollection, Geometry, SentinelHubCatalog
    from shapely import transform
    from shapely.geometry import Polygon

    x0, y0 = ORIGINS[1]
    polygon = Polygon([(x0 + 20, y0 - 100), (x0 + 60, y0 - 100), (x0 + 60, y0 - 20), (x0 + 20, y0 - 20)])
    found = SentinelHubCatalog(config=config).search(
        DataCollection.SENTINEL2_L1C, geometry=Geometry(polygon, crs=CRS.UTM_33N), time=("2023-01-01", "2023-12-31"))
    to_wgs84 = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    wgs84 = transform(polygon, lambda xy: np.column_stack(to_wgs84.transform(xy[:, 0], xy[:, 1])))
    expected = select(reference_items(archive_root), wgs84)
    assert expected and {item.id[:2] for item in expected} == {"P1"}
    assert found.get_ids() == [item.id for item in expected]


def test_sentinelhub_catalog_reads_the_collection_and_full_items(config, archive_root: Path) -> None:
    """get_info, get_conformance, get_collections, get_collection and get_feature; full items keep geometry,
    bbox and properties of the archive's Items."""
    from sentinelhub import DataCollection, SentinelHubCatalog

    catalog = SentinelHubCatalog(config=config)
    assert "https://api.stacspec.org/v1.0.0/item-search" in catalog.get_info()["conformsTo"]
    assert "https://api.stacspec.org/v1.0.0/core" in catalog.get_conformance()["conformsTo"]
    assert [c["id"] for c in catalog.get_collections()] == ["sentinel-2-l1c"]
    items = reference_items(archive_root)
    collection = catalog.get_collection(DataCollection.SENTINEL2_L1C)
    first, last = collection["extent"]["temporal"]["interval"][0]
    assert (first, last) == tuple(i.datetime.strftime("%Y-%m-%dT%H:%M:%SZ") for i in (items[0], items[-1]))
    item = items[4]
    feature = catalog.get_feature(DataCollection.SENTINEL2_L1C, item.id)
    assert feature["id"] == item.id and feature["collection"] == "sentinel-2-l1c"
    assert shape(feature["geometry"]).equals_exact(shape(item.geometry), 1e-9)
    assert feature["bbox"] == pytest.approx(item.bbox)
    assert feature["properties"]["eo:cloud_cover"] == item.properties["eo:cloud_cover"]
    # pystac reads the Item's proj:epsg as the projection extension v2's proj:code
    assert f"EPSG:{feature['properties']['proj:epsg']}" == item.properties["proj:code"] == "EPSG:32633"
    assert feature["properties"]["s2:processing_baseline"] == "04.00"
    assert feature["assets"] == {}  # local band files are not shown to clients
    assert pystac.Item.from_dict(feature).id == item.id


def test_define_from_collection_and_get_available_timestamps(config, server: str, archive_root: Path) -> None:
    """eo-learn's date search (sentinelhub-py's get_available_timestamps, with maxcc) on a collection made with
    define_from gives the dates of the hand-filtered Items."""
    from sentinelhub import CRS, BBox, DataCollection
    from sentinelhub.api.catalog import get_available_timestamps

    collection = DataCollection.SENTINEL2_L1C.define_from("POLYFIS_CATALOG_TEST", service_url=server)
    assert collection.catalog_id == "sentinel-2-l1c"
    west, south, east, north = places_box(archive_root, (2,))
    stamps = get_available_timestamps(BBox((west, south, east, north), crs=CRS.WGS84), ("2023-01-01", "2023-12-31"),
                                      collection, maxcc=0.5, config=config)
    expected = select(reference_items(archive_root), box(west, south, east, north), below=50)
    assert expected and stamps == [item.datetime.replace(tzinfo=None) for item in expected]


def test_byoc_collection_named_after_the_archive(config, archive_root: Path) -> None:
    """DataCollection.define_byoc(<archive id>) (catalog id byoc-<archive id>) searches the same collection."""
    from sentinelhub import DataCollection, SentinelHubCatalog

    byoc = DataCollection.define_byoc(ARCHIVE_ID)
    assert byoc.catalog_id == f"byoc-{ARCHIVE_ID}"
    catalog = SentinelHubCatalog(config=config)
    ids = catalog.search(byoc, time=("2023-03-01", "2023-05-31")).get_ids()
    expected = select(reference_items(archive_root), start=dt.datetime(2023, 3, 1, tzinfo=dt.UTC),
                      end=dt.datetime(2023, 5, 31, 23, 59, 59, tzinfo=dt.UTC))
    assert ids == [item.id for item in expected] and ids
    assert catalog.get_collection(byoc)["id"] == "sentinel-2-l1c"


def test_sentinelhub_catalog_distinct_dates(config, archive_root: Path) -> None:
    """search(distinct="date") through the client, over pages of 4, lists each acquisition date once."""
    from sentinelhub import DataCollection, SentinelHubCatalog

    dates = list(SentinelHubCatalog(config=config).search(DataCollection.SENTINEL2_L1C, time=("2023-01-01", "2023-12-31"),
                                                          distinct="date", limit=4))
    assert dates == sorted({item.datetime.date().isoformat() for item in reference_items(archive_root)})


def test_session_info_decodes_the_jwt(config) -> None:
    """SentinelHubSession.info() decodes the token: sub and azp are the client id, exp is iat + the TTL; the
    session can be cached (which reads azp) and the token verifies with the server's key."""
    import jwt
    from sentinelhub import SentinelHubDownloadClient, SentinelHubSession

    session = SentinelHubSession(config=config)
    info = session.info()
    assert info["sub"] == info["azp"] == CLIENT
    assert info["exp"] - info["iat"] == 1800 and abs(info["iat"] - dt.datetime.now(dt.UTC).timestamp()) < 120
    claims = jwt.decode(session.token["access_token"], "catalog-test-key-of-32-bytes-or-more", algorithms=["HS256"])
    assert claims == info
    SentinelHubDownloadClient.cache_session(session)
    assert SentinelHubDownloadClient(config=config).get_session() is session


# ------------------------------------------------------------------------------------------------------------
# paging, by hand
# ------------------------------------------------------------------------------------------------------------


def test_post_pages_follow_context_next_and_links(server: str, archive_root: Path) -> None:
    """POST pages of 3 followed by context.next, and by the rel=next link (its body merged), each give every
    item once, in datetime order; the last page has no next."""
    headers = bearer(server)
    expected = [item.id for item in reference_items(archive_root)]
    by_context, by_link, body = [], [], {"collections": ["sentinel-2-l1c"], "limit": 3}
    page = requests.post(f"{server}{ROOT}/search", json=body, headers=headers, timeout=30).json()
    while True:
        by_context += [f["id"] for f in page["features"]]
        if "next" not in page["context"]:
            break
        page = requests.post(f"{server}{ROOT}/search", json={**body, "next": page["context"]["next"]},
                             headers=headers, timeout=30).json()
    assert by_context == expected
    page = requests.post(f"{server}{ROOT}/search", json=body, headers=headers, timeout=30).json()
    pages = 1
    while True:
        by_link += [f["id"] for f in page["features"]]
        link = next((li for li in page["links"] if li["rel"] == "next"), None)
        if link is None:
            break
        assert link["method"] == "POST" and link["merge"] is True
        page = requests.post(link["href"], json={**body, **link["body"]}, headers=headers, timeout=30).json()
        pages += 1
    assert by_link == expected and pages == 5  # 14 items, 3 a page


def test_get_pages_of_collection_items_follow_links(server: str, archive_root: Path) -> None:
    """GET /collections/{id}/items and GET /search pages of 4, followed by their next hrefs, give every item
    of the time range once."""
    headers = bearer(server)
    expected = [item.id for item in select(reference_items(archive_root),
                                           start=dt.datetime(2023, 2, 1, tzinfo=dt.UTC))]
    for url in (f"{server}{ROOT}/collections/sentinel-2-l1c/items?limit=4&datetime=2023-02-01T00:00:00Z/..",
                f"{server}{ROOT}/search?limit=4&datetime=2023-02-01T00:00:00Z/..&collections=sentinel-2-l1c"):
        seen: list[str] = []
        while url:
            page = requests.get(url, headers=headers, timeout=30).json()
            assert page["context"]["limit"] == 4 and page["context"]["returned"] == len(page["features"])
            seen += [f["id"] for f in page["features"]]
            url = next((li["href"] for li in page["links"] if li["rel"] == "next"), "")
        assert seen == expected


# ------------------------------------------------------------------------------------------------------------
# pystac-client
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_pystac_client_searches_the_catalog(server: str, archive_root: Path, method: str) -> None:
    """pystac-client opens the catalog as a STAC API and its search (bbox, datetime, CQL2 filter, pages of 2)
    yields the hand-filtered Items as pystac Items."""
    from pystac_client import Client

    client = Client.open(f"{server}{ROOT}", headers=bearer(server))
    assert client.get_collection("sentinel-2-l1c").id == "sentinel-2-l1c"
    west, south, east, north = places_box(archive_root, (1, 2))
    search = client.search(method=method, collections=["sentinel-2-l1c"], bbox=[west, south, east, north],
                           datetime="2023-01-15/2023-11-30", filter="eo:cloud_cover >= 20", limit=2)
    found = list(search.items())
    expected = select(reference_items(archive_root), box(west, south, east, north),
                      dt.datetime(2023, 1, 15, tzinfo=dt.UTC), dt.datetime(2023, 11, 30, 23, 59, 59, 999999,
                                                                              tzinfo=dt.UTC))
    expected = [item for item in expected if item.properties["eo:cloud_cover"] >= 20]
    assert len(expected) >= 3
    assert [item.id for item in found] == [item.id for item in expected]
    assert [item.datetime for item in found] == [item.datetime for item in expected]
    assert search.matched() == len(expected)


def test_pystac_client_cql2_json_filter_and_intersects(server: str, archive_root: Path) -> None:
    """A CQL2 JSON filter and an intersects point give the items of that place below the cloud cover."""
    from pystac_client import Client

    client = Client.open(f"{server}{ROOT}", headers=bearer(server))
    item0 = next(item for item in reference_items(archive_root) if item.id.startswith("P0"))
    centre = shape(item0.geometry).centroid
    search = client.search(intersects={"type": "Point", "coordinates": [centre.x, centre.y]},
                           filter={"op": "<=", "args": [{"property": "eo:cloud_cover"}, 50]}, filter_lang="cql2-json")
    expected = select(reference_items(archive_root), Point(centre.x, centre.y))
    expected = [item.id for item in expected if item.properties["eo:cloud_cover"] <= 50]
    assert expected and [item.id for item in search.items()] == expected


# ------------------------------------------------------------------------------------------------------------
# the rest, in-process
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(name="client")
def fixture_client(archive_root: Path):  # type: ignore[no-untyped-def]
    """A test client of the test archive, auth off."""
    return create_app({"archive": str(archive_root)}).test_client()


def test_catalog_needs_a_token_but_its_landing_page_does_not(archive_root: Path) -> None:
    """With auth on, the landing page and conformance are public (sentinelhub-py reads them without a token);
    collections, items and search are 401 without one."""
    client = create_app({"archive": str(archive_root), "auth_clients": "a:b"}).test_client()
    assert client.get(f"{ROOT}/").status_code == 200 and client.get(f"{ROOT}/conformance").status_code == 200
    for path in ("/collections", "/collections/sentinel-2-l1c", "/collections/sentinel-2-l1c/items", "/search"):
        response = client.get(ROOT + path)
        assert response.status_code == 401 and "bearer token" in response.json["error"]["message"]
    assert client.post(f"{ROOT}/search", json={}).status_code == 401


def test_distinct_dates(client, archive_root: Path) -> None:
    """distinct: date lists each acquisition date once, filtered like the items."""
    answer = client.post(f"{ROOT}/search", json={"distinct": "date", "filter": "eo:cloud_cover < 50",
                                                 "limit": 100}).json
    expected = sorted({item.datetime.date().isoformat() for item in select(reference_items(archive_root), below=50)})
    assert answer["features"] == expected


def test_ids_and_aliases_and_missing_things(client, archive_root: Path) -> None:
    """ids selects items; the archive id names the collection; an unknown collection or item is a JSON 404,
    and a search of an unknown collection finds nothing."""
    ids = [item.id for item in reference_items(archive_root)][2:5]
    answer = client.post(f"{ROOT}/search", json={"ids": ids[::-1], "collections": [ARCHIVE_ID]}).json
    assert [f["id"] for f in answer["features"]] == ids
    assert client.get(f"{ROOT}/collections/{ARCHIVE_ID}").json["id"] == "sentinel-2-l1c"
    for path, what in ((f"{ROOT}/collections/sentinel-1-grd", "collection 'sentinel-1-grd'"),
                       (f"{ROOT}/collections/sentinel-2-l1c/items/nope", "item 'nope'"),
                       (f"{ROOT}/collections/other/items/{ids[0]}", "collection 'other'")):
        response = client.get(path)
        assert response.status_code == 404 and what in response.json["error"]["message"]
    assert client.post(f"{ROOT}/search", json={"collections": ["sentinel-1-grd"]}).json["features"] == []


@pytest.mark.parametrize(("body", "message"), [
    ({"bbox": [1, 2, 3]}, "bbox: expected [west, south, east, north]"),
    ({"bbox": [10, 50, 11, 40]}, "with south <= north"),
    ({"bbox": [10, 40, 11, 50], "intersects": {"type": "Point", "coordinates": [0, 0]}}, "expected at most one"),
    ({"intersects": {"type": "Point", "coordinates": [0, 100]}}, "latitudes from -90 to 90"),
    ({"intersects": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]}}, "intersects:"),
    ({"intersects": "POINT (1 2)"}, "intersects: expected a GeoJSON geometry"),
    ({"datetime": "2023-05-01T00:00:00Z/2023-01-01T00:00:00Z"}, "whose start is after its end"),
    ({"datetime": "../.."}, "open at both ends"),
    ({"datetime": "yesterday"}, "cannot parse 'yesterday'"),
    ({"filter": "eo:cloud_cover <"}, "filter: cannot parse 'eo:cloud_cover <' as cql2-text (at line:column 1:17"),
    ({"filter": "frobnicate(eo:cloud_cover) = 1"}, "filter: unknown operators ['frobnicate']"),
    ({"filter": {"op": "<"}, "filter-lang": "cql2-text"}, "expected CQL2 text with filter-lang cql2-text"),
    ({"filter": {"op": "<", "args": "x"}}, "filter: cannot parse {'op': '<', 'args': 'x'} as cql2-json"),
    # the parser recurses natively: thousands of levels would overflow its stack, and are refused before it
    ({"filter": "eo:cloud_cover = " + "-" * 4000 + "1"}, "filter: nested more than 100 levels deep"),
    ({"filter": "(" * 3000 + "eo:cloud_cover = 1" + ")" * 3000}, "filter: nested more than 100 levels deep"),
    ({"filter": "NOT " * 200 + "eo:cloud_cover = 1"}, "filter: nested more than 100 levels deep"),
    ({"filter": "eo:cloud_cover = 1 OR " * 2000 + "true"}, "filter: 44004 characters; expected at most 20000"),
    ({"filter": "eo:cloud_cover < 1", "filter-lang": "ecql"}, "filter-lang: got 'ecql'"),
    ({"filter": "eo:cloud_cover < 1", "filter-crs": "EPSG:3857"}, "filter-crs: got 'EPSG:3857'"),
    ({"fields": {"include": "id"}}, "fields.include: expected a list of field names"),
    ({"fields": {"only": ["id"]}}, "fields: unknown fields ['only']"),
    ({"limit": 0}, "limit: expected a positive integer"),
    ({"limit": "ten"}, "limit: expected a positive integer"),
    ({"next": -3}, "next: expected 0 or a positive integer"),
    ({"distinct": "tile"}, "distinct: got 'tile'; expected 'date'"),
    ({"query": {"eo:cloud_cover": {"lt": 10}}}, "search: unknown fields ['query']"),
    ({"collections": "sentinel-2-l1c"}, "collections: expected a list of strings"),
])
def test_bad_search_parameters_are_400(client, body: dict, message: str) -> None:
    """Each bad parameter is a JSON 400 naming it, what was received and what was expected."""
    response = client.post(f"{ROOT}/search", json=body)
    assert response.status_code == 400, response.json
    assert message in response.json["error"]["message"]


@pytest.mark.parametrize(("query", "message"), [
    ("bbox=1,2,x,4", "bbox: got 'x'"),
    ("limit=-1", "limit: expected a positive integer"),
    ("next=abc", "next: expected 0 or a positive integer"),
    ("intersects={", "intersects: expected a GeoJSON geometry, got invalid JSON"),
    ("filter-lang=cql2-json&filter=[", "filter: expected CQL2 JSON, got invalid JSON"),
    ("sortby=datetime", "query parameters: unknown ['sortby']"),
])
def test_bad_query_parameters_are_400(client, query: str, message: str) -> None:
    """GET searches check their query string the same way."""
    response = client.get(f"{ROOT}/search?{query}")
    assert response.status_code == 400 and message in response.json["error"]["message"]
    assert client.get(f"{ROOT}/collections/sentinel-2-l1c/items?collections=x").status_code == 400


def test_limit_above_the_maximum_gives_the_maximum(client) -> None:
    """A limit above 100 gives pages of 100, as the STAC API says (the archive has 14 items)."""
    answer = client.post(f"{ROOT}/search", json={"limit": 1000}).json
    assert answer["context"] == {"limit": 100, "returned": 14, "matched": 14}


# ------------------------------------------------------------------------------------------------------------
# fields and bbox rules, worked by hand
# ------------------------------------------------------------------------------------------------------------

FEATURE = {"type": "Feature", "stac_version": "1.0.0", "id": "x", "geometry": {"type": "Point"}, "bbox": [0, 0, 1, 1],
           "links": [], "assets": {"B04": {}}, "collection": "c",
           "properties": {"datetime": "2023-01-01T00:00:00Z", "eo:cloud_cover": 5.0, "platform": "s2"}}


@pytest.mark.parametrize(("fields", "expected"), [
    (None, {"type", "stac_version", "id", "geometry", "bbox", "links", "assets", "properties.datetime"}),
    ({}, {"type", "stac_version", "id", "geometry", "bbox", "links", "assets", "properties.datetime"}),
    ({"include": ["properties.datetime"]}, {"type", "id", "properties.datetime"}),
    ({"include": ["properties.datetime"], "exclude": []}, {"type", "id", "properties.datetime"}),
    ({"exclude": ["geometry", "properties.platform"]},
     {"type", "stac_version", "id", "bbox", "links", "assets", "collection", "properties.datetime",
      "properties.eo:cloud_cover"}),
    ({"include": [], "exclude": ["geometry"]},
     {"type", "stac_version", "id", "bbox", "links", "assets", "properties.datetime"}),
    ({"include": ["properties"], "exclude": ["properties.datetime"]},
     {"type", "id", "properties.eo:cloud_cover", "properties.platform"}),
    ({"include": ["properties.eo:cloud_cover"], "exclude": ["properties"]}, {"type", "id", "properties.eo:cloud_cover"}),
    ({"include": ["bbox"], "exclude": ["bbox"]}, {"type", "id", "bbox"}),
])
def test_fields_include_exclude_semantics(fields, expected: set[str]) -> None:
    """The STAC fields extension's table: default set, include only, exclude only, nested paths, include wins."""
    kept = FieldSelection.from_json(fields).apply(FEATURE)
    paths = {f"properties.{k}" for k in kept.get("properties", {})} | {k for k in kept if k != "properties"}
    assert paths == expected


def test_fields_text_form() -> None:
    """GET ``fields=id,-geometry``: the default fields plus id, less geometry."""
    kept = FieldSelection.from_text("-geometry,properties.eo:cloud_cover").apply(FEATURE)
    assert kept == {"type": "Feature", "id": "x", "properties": {"eo:cloud_cover": 5.0}}
    kept = FieldSelection.from_text("-geometry").apply(FEATURE)
    assert set(kept) == {"type", "stac_version", "id", "bbox", "links", "assets", "properties"}


def test_bbox_across_the_antimeridian() -> None:
    """West > east is a box across the antimeridian."""
    area = parse_bbox([170, -10, -170, 10])
    assert area.contains(Point(175, 0)) and area.contains(Point(-175, 0)) and not area.contains(Point(0, 0))


def test_search_answer_is_geojson_with_stac_items(client, archive_root: Path) -> None:
    """Items are valid STAC Items (pystac reads them) in a FeatureCollection served as application/geo+json."""
    response = client.get(f"{ROOT}/collections/sentinel-2-l1c/items?limit=2")
    assert response.mimetype == "application/geo+json"
    for feature in response.json["features"]:
        item = pystac.Item.from_dict(feature)
        assert item.collection_id == "sentinel-2-l1c" and item.datetime is not None
    assert json.loads(response.data)["numberReturned"] == 2


def test_sentinelhub_py_runs_unchanged_with_auth_off(archive_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With auth off, sentinelhub-py still fetches a token (for any client id) and its search works."""
    import threading

    from sentinelhub import DataCollection, SentinelHubCatalog, SentinelHubSession, SHConfig
    from werkzeug.serving import make_server

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    server = make_server("127.0.0.1", 0, create_app({"archive": str(archive_root)}), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        config = SHConfig(sh_base_url=base, sh_token_url=f"{base}/oauth/token", sh_client_id="anyone",
                          sh_client_secret="anything")
        assert SentinelHubSession(config=config).info()["sub"] == "anyone"
        ids = SentinelHubCatalog(config=config).search(DataCollection.SENTINEL2_L1C, time=("2023-01-01", "2023-12-31"),
                                                       limit=5).get_ids()
    finally:
        server.shutdown()
        server.server_close()
    assert ids == [item.id for item in reference_items(archive_root)]


def test_an_item_is_read_by_its_id_not_by_a_search_of_the_archive(client, archive_root: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """GET /collections/{id}/items/{item} looks the item up by id (the archive is not searched), and answers
    the item the catalog files hold; an absent id is still a JSON 404."""
    from stats.archive.catalog import Archive

    def no_search(*args: object, **kwargs: object) -> None:
        raise AssertionError("the item route searched the archive")

    monkeypatch.setattr(Archive, "search", no_search)
    expected = reference_items(archive_root)[3]
    response = client.get(f"{ROOT}/collections/sentinel-2-l1c/items/{expected.id}")
    assert response.status_code == 200
    item = pystac.Item.from_dict(response.json)
    assert item.id == expected.id and item.datetime == expected.datetime
    assert item.bbox == pytest.approx(expected.bbox)
    assert item.properties["eo:cloud_cover"] == expected.properties["eo:cloud_cover"]
    missing = client.get(f"{ROOT}/collections/sentinel-2-l1c/items/{expected.id}x")
    assert missing.status_code == 404 and f"item '{expected.id}x'" in missing.json["error"]["message"]
