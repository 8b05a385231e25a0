"""`/collections/{id}/items/{featureId}`: one feature, its links, its HTML page, 404s and caching."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from geo_service.catalog import load_catalog
from geo_service.settings import PROJECT_ROOT
from tests.conftest import Writable

LAYER_IDS = list(load_catalog(PROJECT_ROOT / "layers", PROJECT_ROOT / "maps").layers)
GEOJSON = "application/geo+json"

ProblemCheck = Callable[..., dict[str, Any]]


def _page(client: TestClient, layer_id: str) -> list[dict[str, Any]]:
    return client.get(f"/collections/{layer_id}/items", params={"limit": 10000}).json()["features"]


@pytest.fixture(scope="module")
def station(client: TestClient) -> dict[str, Any]:
    """The first rail station as the items page shows it."""
    return _page(client, "rail_stations")[0]


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_feature_equals_the_one_in_the_page(client: TestClient, layer_id: str) -> None:
    """Each feature fetched alone equals the same feature inside the collection page."""
    for in_page in _page(client, layer_id):
        response = client.get(f"/collections/{layer_id}/items/{in_page['id']}")
        assert response.status_code == 200
        assert response.headers["content-type"] == GEOJSON
        alone = response.json()
        assert {k: v for k, v in alone.items() if k != "links"} == {
            k: v for k, v in in_page.items() if k != "links"
        }


def test_feature_links(client: TestClient, station: dict[str, Any]) -> None:
    """self (GeoJSON), alternate (HTML) and collection links, all answering."""
    feature = client.get(f"/collections/rail_stations/items/{station['id']}").json()
    pairs = {(link["rel"], link["type"]) for link in feature["links"]}
    assert {("self", GEOJSON), ("alternate", "text/html"), ("collection", "application/json")} <= pairs
    assert len([link for link in feature["links"] if link["rel"] == "self"]) == 1
    for link in feature["links"]:
        response = client.get(link["href"])
        assert response.status_code == 200, link
        assert response.headers["content-type"].split(";")[0] == link["type"], link
    self_href = next(link["href"] for link in feature["links"] if link["rel"] == "self")
    assert f"/collections/rail_stations/items/{station['id']}" in self_href
    collection = next(link["href"] for link in feature["links"] if link["rel"] == "collection")
    assert client.get(collection).json()["id"] == "rail_stations"


@pytest.mark.parametrize(
    "feature_id",
    [
        "abc",
        "0",
        "-1",
        "00",
        "1.5",
        "1e3",
        "99999999999999999999999",
        "999999999999999999",
        "9223372036854775807",
    ],
)
def test_bad_or_missing_id_is_404(client: TestClient, problem: ProblemCheck, feature_id: str) -> None:
    """Non-numeric, zero, negative, huge or absent ids are a 404 problem naming the id, never a 500."""
    problem(client.get(f"/collections/rail_stations/items/{feature_id}"), 404, feature_id)


def test_id_of_another_collection_is_404(
    client: TestClient, problem: ProblemCheck, station: dict[str, Any]
) -> None:
    """A feature id is looked up in its own collection only."""
    assert client.get(f"/collections/rail_stations/items/{station['id']}").status_code == 200
    problem(client.get(f"/collections/rail_lines/items/{station['id']}"), 404, str(station["id"]))


def test_feature_in_unknown_collection_is_404(
    client: TestClient, problem: ProblemCheck, station: dict[str, Any]
) -> None:
    """An unknown collection is a 404 even with a valid feature id."""
    problem(client.get(f"/collections/airports/items/{station['id']}"), 404, "airports")


def test_feature_rejects_unknown_parameter(
    client: TestClient, problem: ProblemCheck, station: dict[str, Any]
) -> None:
    """Query parameters other than f are a 400."""
    problem(
        client.get(f"/collections/rail_stations/items/{station['id']}", params={"crs": "EPSG:4490"}),
        400,
        "crs",
    )


@pytest.mark.parametrize("request_kwargs", [{"params": {"f": "html"}}, {"headers": {"Accept": "text/html"}}])
def test_feature_html(client: TestClient, station: dict[str, Any], request_kwargs: dict[str, Any]) -> None:
    """The HTML page shows the Chinese and English names and links back to the collection."""
    response = client.get(f"/collections/rail_stations/items/{station['id']}", **request_kwargs)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    text = html.unescape(response.text)
    assert station["properties"]["name_zh"] in text
    assert station["properties"]["name_en"] in text
    assert "/collections/rail_stations" in text


def test_feature_html_without_geometry(client: TestClient) -> None:
    """A feature without location still has an HTML page."""
    unlocated = next(f for f in _page(client, "demonstration_zone") if f["geometry"] is None)
    response = client.get(f"/collections/demonstration_zone/items/{unlocated['id']}", params={"f": "html"})
    assert response.status_code == 200
    assert unlocated["properties"]["name_zh"] in html.unescape(response.text)


def test_feature_conditional_get(client: TestClient, station: dict[str, Any]) -> None:
    """The ETag gives 304 on If-None-Match; other features and formats have other ETags."""
    url = f"/collections/rail_stations/items/{station['id']}"
    etag = client.get(url).headers.get("etag")
    assert etag
    cached = client.get(url, headers={"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert client.get(url, headers={"If-None-Match": '"stale"'}).status_code == 200
    other_feature = _page(client, "rail_stations")[1]["id"]
    assert client.get(f"/collections/rail_stations/items/{other_feature}").headers["etag"] != etag
    assert client.get(url, params={"f": "html"}).headers["etag"] != etag


def test_feature_html_escapes_markup(writable: Writable) -> None:
    """Markup in a feature's texts is shown as text on its HTML page, never run as HTML."""
    hostile = "<script>window.pwned = 1</script>探针"
    page = writable.client.get("/collections/rail_stations/items", params={"limit": 1}).json()
    feature = page["features"][0]
    with writable.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE features SET properties = properties"
            " || jsonb_build_object('name_zh', CAST(%(n)s AS text), 'note', CAST(%(n)s AS text),"
            " 'plan_text', CAST(%(n)s AS text)) WHERE id = %(id)s",
            {"n": hostile, "id": feature["id"]},
        )
    response = writable.client.get(f"/collections/rail_stations/items/{feature['id']}", params={"f": "html"})
    assert response.status_code == 200
    assert "<script>window.pwned" not in response.text
    assert "&lt;script&gt;window.pwned" in response.text
