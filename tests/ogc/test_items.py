"""`/collections/{id}/items`: paging, bbox and datetime filters, parameter checks, links and representations.

Every expectation is derived from the seed files under `layers/` with shapely, not from the service.
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from geo_service.catalog import load_catalog
from geo_service.ogc import query as ogc_query
from geo_service.settings import PROJECT_ROOT, Settings
from tests.conftest import Writable

from .conftest import SMALL_DEFAULT_LIMIT, SMALL_MAX_LIMIT

LAYER_IDS = list(load_catalog(PROJECT_ROOT / "layers", PROJECT_ROOT / "maps").layers)
GEOJSON = "application/geo+json"

Seeds = dict[str, dict[str, dict[str, Any]]]
Walk = Callable[..., list[dict[str, Any]]]
ProblemCheck = Callable[..., dict[str, Any]]

# minLon, minLat, maxLon, maxLat
BBOXES = {
    "jiashan": (120.85, 30.80, 121.00, 30.95),  # 嘉善 town and the pilot area
    "jiaxing_south_station": (120.78, 30.685, 120.805, 30.705),  # 嘉兴南站 and 高铁新城
    "thin": (120.30, 30.7500, 121.40, 30.7501),  # a 10 m strip across the whole city
    "everything": (-180.0, -90.0, 180.0, 90.0),
    "sea_off_haiyan": (121.15, 30.30, 121.30, 30.45),  # 杭州湾, east of 海盐: no land, no plan item
}


def _url(layer_id: str, **params: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items() if v is not None)
    return f"/collections/{layer_id}/items" + (f"?{query}" if query else "")


def _bbox_text(bbox: tuple[float, ...]) -> str:
    return ",".join(str(n) for n in bbox)


def _intersecting(features: dict[str, dict[str, Any]], area: BaseGeometry) -> set[str]:
    """Codes of the seed features whose geometry intersects `area` (features without geometry never do)."""
    return {
        code
        for code, f in features.items()
        if f["geometry"] is not None and shape(f["geometry"]).intersects(area)
    }


def _coordinates(node: Any) -> Iterator[tuple[float, float]]:
    if isinstance(node, list) and node and isinstance(node[0], (int, float)):
        yield node[0], node[1]
    elif isinstance(node, list):
        for child in node:
            yield from _coordinates(child)


def _links(page: dict[str, Any], rel: str) -> list[dict[str, str]]:
    return [link for link in page["links"] if link["rel"] == rel]


def _cursor_of(page: dict[str, Any]) -> str:
    [nxt] = _links(page, "next")
    return parse_qs(urlsplit(nxt["href"]).query)["cursor"][0]


def _all_features(client: TestClient, layer_id: str) -> list[dict[str, Any]]:
    page = client.get(_url(layer_id, limit=10000)).json()
    assert not _links(page, "next")
    return page["features"]


# -- paging -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 7, None], ids=["limit=1", "limit=7", "default-limit"])
@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_next_links_return_every_feature_once(
    client: TestClient, seeds: Seeds, settings: Settings, walk: Walk, layer_id: str, limit: int | None
) -> None:
    """Following `next` yields each seed feature exactly once, in increasing id order, in full pages."""
    expected = seeds[layer_id]
    page_size = limit or settings.default_limit
    pages = walk(client, _url(layer_id, limit=limit))
    features = [f for page in pages for f in page["features"]]
    codes = [f["properties"]["code"] for f in features]
    assert len(codes) == len(set(codes)), "a feature came twice"
    assert set(codes) == set(expected)
    ids = [f["id"] for f in features]
    assert all(isinstance(i, int) for i in ids)
    assert all(a < b for a, b in itertools.pairwise(ids)), "ids are not strictly increasing"
    assert len(pages) == math.ceil(len(expected) / page_size)
    for index, page in enumerate(pages):
        assert page["type"] == "FeatureCollection"
        assert page["numberReturned"] == len(page["features"])
        assert page["numberMatched"] == len(expected)
        if index < len(pages) - 1:
            assert len(page["features"]) == page_size
            assert [link["type"] for link in _links(page, "next")] == [GEOJSON]
        else:
            assert not _links(page, "next")


def test_limit_one_gives_number_matched_cheaply(client: TestClient, seeds: Seeds) -> None:
    """`limit=1` (what QGIS asks to learn the count) returns one feature and the full numberMatched."""
    for layer_id, features in seeds.items():
        page = client.get(_url(layer_id, limit=1)).json()
        assert page["numberReturned"] == 1
        assert page["numberMatched"] == len(features)


def test_default_limit_applies(small_client: TestClient) -> None:
    """Without `limit` a page holds the configured default number of features."""
    page = small_client.get(_url("rail_stations")).json()
    assert page["numberReturned"] == len(page["features"]) == SMALL_DEFAULT_LIMIT
    assert _links(page, "next")


@pytest.mark.parametrize("limit", [SMALL_MAX_LIMIT + 1, 1000, 10**15])
def test_limit_above_maximum_is_capped(small_client: TestClient, seeds: Seeds, limit: int) -> None:
    """A limit above the maximum is not an error: the page holds the maximum and links to the next."""
    response = small_client.get(_url("rail_stations", limit=limit))
    assert response.status_code == 200, response.text
    page = response.json()
    assert len(page["features"]) == page["numberReturned"] == SMALL_MAX_LIMIT
    assert page["numberMatched"] == len(seeds["rail_stations"])
    assert _links(page, "next")


def test_large_limit_on_default_settings(client: TestClient, seeds: Seeds) -> None:
    """A limit beyond the default maximum returns the whole small layer in one page."""
    page = client.get(_url("rail_stations", limit=1_000_000)).json()
    assert page["numberReturned"] == len(seeds["rail_stations"])
    assert not _links(page, "next")


# -- bbox -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("box_name", list(BBOXES))
@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_bbox_returns_exactly_the_intersecting_features(
    client: TestClient, seeds: Seeds, walk: Walk, layer_id: str, box_name: str
) -> None:
    """Every feature intersecting the box is returned (across pages), nothing else; numberMatched agrees."""
    bbox = BBOXES[box_name]
    area = box(*bbox)
    expected = _intersecting(seeds[layer_id], area)
    pages = walk(client, _url(layer_id, limit=3, bbox=_bbox_text(bbox)))
    features = [f for page in pages for f in page["features"]]
    codes = [f["properties"]["code"] for f in features]
    assert len(codes) == len(set(codes))
    assert set(codes) == expected
    for feature in features:
        assert feature["geometry"] is not None
        assert shape(feature["geometry"]).intersects(area.buffer(1e-6))
    for page in pages:
        assert page["numberMatched"] == len(expected)
        assert page["numberReturned"] == len(page["features"])


def test_bbox_in_the_sea_is_empty(client: TestClient, seeds: Seeds) -> None:
    """A box in Hangzhou Bay off 海盐, where no seed feature lies, gives 200 and no feature in any layer."""
    area = box(*BBOXES["sea_off_haiyan"])
    for layer_id, features in seeds.items():
        assert not _intersecting(features, area), "the sea box is meant to be empty"
        response = client.get(_url(layer_id, bbox=_bbox_text(BBOXES["sea_off_haiyan"])))
        assert response.status_code == 200
        page = response.json()
        assert page["features"] == []
        assert page["numberReturned"] == 0
        assert page["numberMatched"] == 0
        assert not _links(page, "next")


def test_bbox_finds_the_station_by_name(client: TestClient) -> None:
    """The box around 嘉兴南站 returns the station itself."""
    page = client.get(_url("rail_stations", bbox=_bbox_text(BBOXES["jiaxing_south_station"]))).json()
    assert any(f["properties"]["name_zh"].startswith("嘉兴南站") for f in page["features"])


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_six_number_bbox_ignores_heights(client: TestClient, seeds: Seeds, layer_id: str) -> None:
    """A bbox with min/max heights selects like the same 2D box."""
    west, south, east, north = BBOXES["jiashan"]
    expected = _intersecting(seeds[layer_id], box(west, south, east, north))
    response = client.get(_url(layer_id, bbox=f"{west},{south},-100,{east},{north},500", limit=1000))
    assert response.status_code == 200, response.text
    page = response.json()
    assert {f["properties"]["code"] for f in page["features"]} == expected
    assert page["numberMatched"] == len(expected)


@pytest.mark.parametrize("bbox", ["177,65,-177,70", "-180,85,180,90", "-180,-90,180,-85"])
@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_antimeridian_and_polar_boxes(client: TestClient, layer_id: str, bbox: str) -> None:
    """Boxes across the antimeridian or at the poles are answered with 200 and no feature here."""
    response = client.get(_url(layer_id, bbox=bbox))
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["features"] == []
    assert page["numberReturned"] == 0
    assert page.get("numberMatched", 0) == 0


def test_antimeridian_box_covering_jiaxing(client: TestClient, seeds: Seeds) -> None:
    """A box from 120°E eastwards across the antimeridian to 10°W still finds the features east of 120°E."""
    page = client.get(_url("rail_stations", bbox="120,29,-10,32", limit=1000)).json()
    assert {f["properties"]["code"] for f in page["features"]} == set(seeds["rail_stations"])


# -- datetime ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2018-02-12T23:20:50Z",
        "2018-02-12",
        "2018-02-12T00:00:00Z/2018-03-18T12:31:12Z",
        "2018-02-12/2018-03-18",
        "../2018-03-18T12:31:12Z",
        "2018-02-12T00:00:00Z/..",
        "/2018-03-18",
        "2018-02-12/",
        "2018-02-12/P2D",
        "P1Y2M/2021-06-30T00:00:00Z",
        "2018-02-12T23:20:50+08:00",
        "0000-01-01T00:00:00Z/9999-12-31T00:00:00Z",
    ],
)
def test_valid_datetime_is_accepted(client: TestClient, seeds: Seeds, walk: Walk, value: str) -> None:
    """Instants, intervals, open intervals, durations and QGIS's dummy bounds are answered with 200."""
    response = client.get("/collections/rail_stations/items", params={"datetime": value, "limit": 20})
    assert response.status_code == 200, response.text
    # plan features carry no time stamp: a valid datetime keeps every feature
    assert response.json()["numberMatched"] == len(seeds["rail_stations"])
    # the next link carries the datetime intact (a `+` must not turn into a space)
    [nxt] = _links(response.json(), "next")
    assert parse_qs(urlsplit(nxt["href"]).query)["datetime"] == [value]
    pages = walk(client, nxt["href"])
    assert len(response.json()["features"]) + sum(len(p["features"]) for p in pages) == len(
        seeds["rail_stations"]
    )


# -- bad input --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("limit=0", ["limit"]),
        ("limit=-1", ["limit"]),
        ("limit=abc", ["limit", "abc"]),
        ("limit=unlimited", ["limit", "unlimited"]),
        ("limit=2.5", ["limit"]),
        ("limit=", ["limit"]),
        ("bbox=120,30,121", ["bbox", "3"]),
        ("bbox=120,30,121,31,5", ["bbox", "5"]),
        ("bbox=a,b,c,d", ["bbox"]),
        ("bbox=120,30,east,31", ["bbox"]),
        ("bbox=120,30,121,nan", ["bbox"]),
        ("bbox=120,30,121,95", ["bbox", "latitude"]),
        ("bbox=120,-95,121,31", ["bbox", "latitude"]),
        ("bbox=190,30,191,31", ["bbox", "longitude"]),
        ("bbox=120,31,121,30", ["bbox", "minLat"]),
        ("bbox=", ["bbox"]),
        ("datetime=yesterday", ["datetime", "yesterday"]),
        ("datetime=2020-13-01", ["datetime"]),
        ("datetime=2020-01-02/2020-01-01", ["datetime"]),
        ("datetime=../..", ["datetime"]),
        ("datetime=2020-01-01/2020-02-01/2020-03-01", ["datetime"]),
        ("datetime=2018-02-12/P2X", ["datetime"]),
        ("datetime=P1D/P2D", ["datetime"]),
        ("colour=red", ["colour"]),
        ("filter=name_zh='嘉兴站'&filter=status='planned'", ["filter", "once"]),
        ("limit=1&limit=2", ["limit"]),
        ("bbox=120,30,121,31&bbox=120,30,121,31", ["bbox"]),
        ("cursor=not-a-cursor", ["cursor"]),
        ("f=xml", ["xml"]),
    ],
)
def test_bad_parameter_is_400(
    client: TestClient, problem: ProblemCheck, query: str, words: list[str]
) -> None:
    """Each malformed, out-of-range, unknown or repeated parameter is a 400 problem explaining it."""
    body = problem(client.get(f"/collections/rail_stations/items?{query}"), 400, *words)
    assert body["instance"] == "/collections/rail_stations/items"


def _forged(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_tampered_cursor_is_400(client: TestClient, problem: ProblemCheck) -> None:
    """A damaged or altered cursor is a 400 that says to follow the next link, never a 500."""
    cursor = _cursor_of(client.get(_url("rail_stations", limit=2)).json())
    decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    middle = len(cursor) // 2
    variants = [
        cursor[:-6],
        cursor[:middle] + ("A" if cursor[middle] != "A" else "B") + cursor[middle + 1 :],
        cursor + "x",
        "%%%%",
        _forged({**decoded, "q": "0" * len(str(decoded["q"]))}),
        _forged({**decoded, "p": [str(decoded["p"][0])]}),
        _forged({**decoded, "p": [None]}),
        _forged({**decoded, "p": []}),
        _forged({**decoded, "p": [True]}),
        _forged({**decoded, "p": ["x", decoded["p"][0]]}),
        _forged({**decoded, "p": decoded["p"][0]}),
        _forged(decoded["p"]),
        _forged("just a string"),
    ]
    # found by fuzzing (tests/ogc/test_fuzz.py): a lone surrogate in a text sort key was a 500
    sorted_cursor = _cursor_of(client.get(_url("rail_stations", limit=2, sortby="name_zh")).json())
    by_name = json.loads(base64.urlsafe_b64decode(sorted_cursor + "=" * (-len(sorted_cursor) % 4)))
    for text in ("\ud800", "a\x00"):
        problem(
            client.get(
                "/collections/rail_stations/items",
                params={"limit": 2, "sortby": "name_zh", "cursor": _forged({**by_name, "p": [text, 1]})},
            ),
            400,
            "cursor",
        )
    for variant in variants:
        problem(
            client.get("/collections/rail_stations/items", params={"limit": 2, "cursor": variant}),
            400,
            "cursor",
        )


def test_cursor_from_another_bbox_is_400(client: TestClient, problem: ProblemCheck) -> None:
    """A cursor reused with a different bbox is refused: it would skip or repeat features."""
    first = client.get(_url("rail_stations", limit=2, bbox="120.3,30.3,121.3,31.1")).json()
    cursor = _cursor_of(first)
    problem(
        client.get(
            "/collections/rail_stations/items",
            params={"limit": 2, "bbox": "120.3,30.3,121.3,31.0", "cursor": cursor},
        ),
        400,
        "cursor",
    )
    problem(
        client.get("/collections/rail_stations/items", params={"limit": 2, "cursor": cursor}), 400, "cursor"
    )


def test_cursor_from_another_collection_is_400(client: TestClient, problem: ProblemCheck) -> None:
    """A cursor of one collection is refused on another."""
    cursor = _cursor_of(client.get(_url("rail_stations", limit=2)).json())
    problem(client.get("/collections/rail_lines/items", params={"limit": 2, "cursor": cursor}), 400, "cursor")


def test_cursor_with_its_own_bbox_works(client: TestClient, seeds: Seeds) -> None:
    """The next link of a bbox query keeps the bbox, so its cursor is accepted and the pages continue."""
    bbox = BBOXES["jiashan"]
    first = client.get(_url("rail_stations", limit=2, bbox=_bbox_text(bbox))).json()
    [nxt] = _links(first, "next")
    assert parse_qs(urlsplit(nxt["href"]).query)["bbox"] == [_bbox_text(bbox)]
    second = client.get(nxt["href"])
    assert second.status_code == 200
    assert second.json()["features"][0]["id"] > first["features"][-1]["id"]


# -- links ------------------------------------------------------------------------------------------------


def test_page_links(client: TestClient) -> None:
    """A page has self (GeoJSON), one alternate per other media type (HTML and the download formats), next
    (GeoJSON) and collection links that work."""
    response = client.get(_url("rail_stations", limit=5))
    page = response.json()
    assert [link["type"] for link in _links(page, "self")] == [GEOJSON]
    assert [link["type"] for link in _links(page, "alternate")] == [
        "text/html",
        "application/geopackage+sqlite3",
        "application/flatgeobuf",
        "text/csv",
        "application/vnd.google-earth.kml+xml",
    ]
    assert [link["type"] for link in _links(page, "next")] == [GEOJSON]
    [collection] = _links(page, "collection")
    assert collection["type"] == "application/json"
    for link in page["links"]:
        assert link["href"].startswith("http://testserver/collections/rail_stations"), link
    assert client.get(collection["href"]).json()["id"] == "rail_stations"
    again = client.get(_links(page, "self")[0]["href"]).json()
    assert [f["id"] for f in again["features"]] == [f["id"] for f in page["features"]]
    for alternate in _links(page, "alternate"):
        answer = client.get(alternate["href"])
        assert answer.status_code == 200
        assert answer.headers["content-type"].split(";")[0] == alternate["type"]
    assert parse_qs(urlsplit(_links(page, "next")[0]["href"]).query)["limit"] == ["5"]


def test_self_link_of_a_later_page_gives_that_page(client: TestClient) -> None:
    """The self link of the second page returns the second page, not the first."""
    first = client.get(_url("rail_stations", limit=5)).json()
    second = client.get(_links(first, "next")[0]["href"]).json()
    again = client.get(_links(second, "self")[0]["href"]).json()
    assert [f["id"] for f in again["features"]] == [f["id"] for f in second["features"]]
    assert again["features"][0]["id"] > first["features"][-1]["id"]


def test_html_pages_link_to_html_next_pages(client: TestClient) -> None:
    """An HTML page's next link stays in HTML."""
    response = client.get(_url("rail_stations", limit=5, f="html"))
    assert response.headers["content-type"].startswith("text/html")
    hrefs = [html.unescape(h) for h in re.findall(r'href="([^"]*cursor=[^"]*)"', response.text)]
    assert hrefs, "no link to the next page"
    for href in hrefs:
        assert parse_qs(urlsplit(href).query)["f"] == ["html"], href
        assert client.get(href).headers["content-type"].startswith("text/html")


# -- content ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_features_match_the_seed_file(client: TestClient, seeds: Seeds, layer_id: str) -> None:
    """Properties equal the seed's exactly (Chinese included), geometries match, null stays null."""
    features = _all_features(client, layer_id)
    assert len(features) == len(seeds[layer_id])
    for feature in features:
        assert feature["type"] == "Feature"
        assert "geometry" in feature
        seed = seeds[layer_id][feature["properties"]["code"]]
        assert feature["properties"] == seed["properties"]
        assert feature["properties"]["name_zh"] == seed["properties"]["name_zh"]
        if seed["geometry"] is None:
            assert feature["geometry"] is None
        else:
            assert feature["geometry"]["type"] == seed["geometry"]["type"]
            assert shape(feature["geometry"]).equals_exact(shape(seed["geometry"]), tolerance=1e-7)


def test_null_geometries_are_null(client: TestClient, seeds: Seeds) -> None:
    """Features without a location are served with `"geometry": null`."""
    unlocated = [code for code, f in seeds["demonstration_zone"].items() if f["geometry"] is None]
    assert unlocated
    by_code = {f["properties"]["code"]: f for f in _all_features(client, "demonstration_zone")}
    for code in unlocated:
        assert by_code[code]["geometry"] is None


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_coordinates_within_crs84(client: TestClient, layer_id: str) -> None:
    """Every coordinate is a longitude in -180…180 and a latitude in -90…90 (and inside Zhejiang/Shanghai)."""
    for feature in _all_features(client, layer_id):
        for lon, lat in _coordinates((feature["geometry"] or {}).get("coordinates", [])):
            assert -180 <= lon <= 180 and -90 <= lat <= 90
            assert 118 < lon < 123 and 27 < lat < 32, "longitude and latitude swapped?"


def test_chinese_text_round_trips(client: TestClient, seeds: Seeds) -> None:
    """Chinese names and plan text come back identical to the seed file."""
    by_code = {f["properties"]["code"]: f for f in _all_features(client, "rail_stations")}
    for code, seed in seeds["rail_stations"].items():
        assert by_code[code]["properties"]["name_zh"] == seed["properties"]["name_zh"]
        assert by_code[code]["properties"].get("plan_text") == seed["properties"].get("plan_text")


@pytest.mark.parametrize("accept", [None, "application/geo+json", "application/json", "*/*"])
def test_media_type_is_geojson(client: TestClient, accept: str | None) -> None:
    """Items are `application/geo+json` for GeoJSON, JSON and any-type Accept headers."""
    headers = {"Accept": accept} if accept else {}
    response = client.get(_url("rail_stations", limit=2), headers=headers)
    assert response.headers["content-type"] == GEOJSON


def test_gzip_when_asked(client: TestClient) -> None:
    """A big page is gzip-compressed for a client that accepts gzip, and plain for one that does not."""
    zipped = client.get(_url("admin_boundaries"), headers={"Accept-Encoding": "gzip"})
    assert zipped.status_code == 200
    assert zipped.headers.get("content-encoding") == "gzip"
    plain = client.get(_url("admin_boundaries"), headers={"Accept-Encoding": "identity"})
    assert plain.headers.get("content-encoding") in (None, "identity")
    assert len(plain.content) > 10_000
    assert zipped.json()["features"] == plain.json()["features"]
    # another representation: its own ETag, marked for caches; If-None-Match with it gives 304
    assert "accept-encoding" in zipped.headers["vary"].lower()
    assert zipped.headers["etag"] == plain.headers["etag"][:-1] + '-gzip"'
    again = client.get(
        _url("admin_boundaries"), headers={"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.headers["etag"] == zipped.headers["etag"]


def test_head_answers_like_get_without_a_body(client: TestClient) -> None:
    """HEAD on a page, a feature and a tile: the status and validators of GET, no body."""
    first = client.get(_url("rail_stations", limit=1)).json()["features"][0]["id"]
    for path in (
        _url("rail_stations", limit=2),
        f"/collections/rail_stations/items/{first}",
        "/collections/admin_boundaries/tiles/WebMercatorQuad/8/105/213",
    ):
        got, head = client.get(path), client.head(path)
        assert got.status_code == head.status_code == 200, path
        assert head.content == b"" and got.content
        assert head.headers["etag"] == got.headers["etag"]
        assert head.headers["content-type"] == got.headers["content-type"]


def test_conditional_get(client: TestClient) -> None:
    """The ETag of a page gives 304 on If-None-Match; another query or format has another ETag."""
    url = _url("rail_stations", limit=2)
    first = client.get(url)
    etag = first.headers.get("etag")
    assert etag
    cached = client.get(url, headers={"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert client.get(url, headers={"If-None-Match": '"something-else"'}).status_code == 200
    others = {
        client.get(_url("rail_stations", limit=3)).headers["etag"],
        client.get(_url("rail_stations", limit=2, bbox="120,30,121,31")).headers["etag"],
        client.get(_url("rail_stations", limit=2, f="html")).headers["etag"],
        client.get(_url("rail_lines", limit=2)).headers["etag"],
    }
    assert etag not in others
    assert len(others) == 4


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_html_page_renders_the_names(client: TestClient, seeds: Seeds, layer_id: str) -> None:
    """The HTML page lists every feature's Chinese name."""
    response = client.get(f"/collections/{layer_id}/items", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    text = html.unescape(response.text)
    for seed in seeds[layer_id].values():
        assert seed["properties"]["name_zh"] in text


# -- writes and caching (on a private database) ------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_write_methods_are_refused(
    client: TestClient, problem: ProblemCheck, seeds: Seeds, method: str
) -> None:
    """Replacing, patching or deleting a whole collection is a 405 problem, and nothing changes. (Writes
    to features are tested in tests/editing.)"""
    before = client.get(_url("rail_stations", limit=10000))
    body = {"type": "Feature", "geometry": None, "properties": {"name_zh": "伪造"}}
    path = "/collections/rail_stations/items"
    response = client.request(method, path, json=body, headers={"Content-Type": "application/geo+json"})
    problem(response, 405, method)
    assert method not in response.headers.get("allow", "GET")
    after = client.get(_url("rail_stations", limit=10000))
    assert after.headers["etag"] == before.headers["etag"]
    assert after.json()["features"] == before.json()["features"]
    assert after.json()["numberMatched"] == len(seeds["rail_stations"])


def test_change_invalidates_the_etag(writable: Writable) -> None:
    """After a feature changes in the database the old ETag gives no 304, and the page shows the change."""
    http = writable.client
    url = _url("rail_stations", limit=3)
    first = http.get(url)
    etag = first.headers["etag"]
    target = first.json()["features"][0]
    with writable.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE features SET properties = jsonb_set(properties, '{name_zh}', '\"改名测试站\"'),"
            " version = version + 1, updated_by = 'tester' WHERE id = %(id)s",
            {"id": target["id"]},
        )
    response = http.get(url, headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert response.headers["etag"] != etag
    assert response.json()["features"][0]["properties"]["name_zh"] == "改名测试站"
    single = http.get(f"/collections/rail_stations/items/{target['id']}")
    assert single.json()["properties"]["name_zh"] == "改名测试站"


def test_counts_and_extent_follow_deletions(writable: Writable, seeds: Seeds, walk: Walk) -> None:
    """After a deletion, numberMatched, the pages and the collection extent describe what remains."""
    http = writable.client
    collections_etag = http.get("/collections").headers["etag"]
    expected = dict(seeds["g60_platforms"])
    # delete the feature that reaches furthest east, so the extent must shrink
    drawn = [c for c in expected if expected[c]["geometry"] is not None]
    east_code = max(drawn, key=lambda c: shape(expected[c]["geometry"]).bounds[2])
    with writable.engine.begin() as conn:
        conn.exec_driver_sql(
            "DELETE FROM features WHERE layer_id = 'g60_platforms' AND code = %(code)s", {"code": east_code}
        )
    del expected[east_code]
    pages = walk(http, _url("g60_platforms", limit=2))
    assert {f["properties"]["code"] for p in pages for f in p["features"]} == set(expected)
    assert all(p["numberMatched"] == len(expected) for p in pages)
    response = http.get("/collections/g60_platforms")
    [bbox] = response.json()["extent"]["spatial"]["bbox"]
    remaining_east = max(shape(f["geometry"]).bounds[2] for f in expected.values() if f["geometry"])
    assert bbox[2] == pytest.approx(remaining_east, abs=1e-6)
    assert http.get("/collections", headers={"If-None-Match": collections_etag}).status_code == 200


def test_html_page_escapes_names(writable: Writable) -> None:
    """A name containing markup is shown as text on the HTML items page, never run as HTML."""
    hostile = '<img src="x" onerror="alert(1)">探针'
    target = writable.client.get(_url("rail_lines", limit=2)).json()["features"][1]
    with writable.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE features SET properties ="
            " jsonb_set(properties, '{name_zh}', to_jsonb(CAST(%(n)s AS text))) WHERE id = %(id)s",
            {"n": hostile, "id": target["id"]},
        )
    page = writable.client.get(_url("rail_lines", f="html")).text
    assert hostile not in page
    assert "&lt;img" in page
    assert "探针" in page


@pytest.mark.parametrize(
    "params", [{"limit": 50}, {"limit": 7, "sortby": "-name_zh"}, {"limit": 5, "f": "html"}]
)
def test_pages_stream_in_chunks(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, params: dict[str, Any]
) -> None:
    """A page assembled from many small chunks (2 features each) is byte-for-byte the page assembled from
    one chunk, apart from its time stamp: chunk boundaries never drop, repeat or reorder features."""

    def fetch() -> str:
        body = client.get("/collections/rail_stations/items", params=params).text
        return re.sub(r'"timeStamp":"[^"]+"', "", body)

    whole = fetch()
    monkeypatch.setattr(ogc_query, "CHUNK", 2)
    assert fetch() == whole
