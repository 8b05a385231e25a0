"""`/collections` and `/collections/{id}`: every layer's metadata, the same in both places."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from shapely import union_all
from shapely.geometry import shape
from sqlalchemy import Engine, text

from geo_service.catalog import Catalog, load_catalog
from geo_service.ogc.query import layer_states_statement
from geo_service.settings import PROJECT_ROOT

LAYER_IDS = list(load_catalog(PROJECT_ROOT / "layers", PROJECT_ROOT / "maps").layers)
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
COMPARED = ("id", "title", "description", "extent", "links", "itemType")


@pytest.fixture(scope="module")
def listed(client: TestClient) -> dict[str, dict[str, Any]]:
    """The collections of `/collections`, keyed by id."""
    response = client.get("/collections")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == "application/json"
    return {c["id"]: c for c in response.json()["collections"]}


def test_every_catalogue_layer_is_listed(client: TestClient, catalog: Catalog) -> None:
    """`/collections` lists each layer of layers/catalog.yaml once, in catalogue order."""
    ids = [c["id"] for c in client.get("/collections").json()["collections"]]
    assert ids == list(catalog.layers)


def test_collections_links(client: TestClient) -> None:
    """`/collections` has a JSON self link and an HTML alternate."""
    links = client.get("/collections").json()["links"]
    assert {(link["rel"], link["type"]) for link in links} == {
        ("self", "application/json"),
        ("alternate", "text/html"),
    }


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_metadata_identical_in_both_places(
    client: TestClient, listed: dict[str, dict[str, Any]], layer_id: str
) -> None:
    """id, title, description and extent are the same in `/collections` and `/collections/{id}`."""
    response = client.get(f"/collections/{layer_id}")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == "application/json"
    single = response.json()
    for key in COMPARED:
        assert single.get(key) == listed[layer_id].get(key), key
    assert single["extent"] is not None


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_title_and_description_are_bilingual(
    listed: dict[str, dict[str, Any]], catalog: Catalog, layer_id: str
) -> None:
    """The title and description carry both the Chinese and the English text of the catalogue."""
    layer = catalog.layers[layer_id]
    doc = listed[layer_id]
    assert layer.title.zh in doc["title"] and layer.title.en in doc["title"]
    assert layer.description.zh in doc["description"] and layer.description.en in doc["description"]


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_extent_fits_the_seed_features(
    listed: dict[str, dict[str, Any]], seeds: dict[str, dict[str, dict[str, Any]]], layer_id: str
) -> None:
    """The extent bbox contains every seed feature and is no larger than their bounds (to 1e-6°)."""
    extent = listed[layer_id]["extent"]["spatial"]
    assert extent.get("crs", CRS84) == CRS84
    [bbox] = extent["bbox"]
    west, south, east, north = bbox
    geoms = [shape(f["geometry"]) for f in seeds[layer_id].values() if f["geometry"] is not None]
    for geom in geoms:
        gw, gs, ge, gn = geom.bounds
        assert west <= gw and south <= gs and ge <= east and gn <= north, (bbox, geom.bounds)
    expected = union_all(geoms).bounds
    assert bbox == pytest.approx(list(expected), abs=1e-6)


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_collection_links(client: TestClient, layer_id: str) -> None:
    """self (JSON), alternate (HTML) and items links in GeoJSON and HTML, each answering with its type."""
    links = client.get(f"/collections/{layer_id}").json()["links"]
    pairs = {(link["rel"], link["type"]) for link in links}
    assert {
        ("self", "application/json"),
        ("alternate", "text/html"),
        ("items", "application/geo+json"),
        ("items", "text/html"),
    } <= pairs
    for link in links:
        response = client.get(link["href"])
        assert response.status_code == 200, link
        assert response.headers["content-type"].split(";")[0] == link["type"], link
    items = next(x for x in links if x["rel"] == "items" and x["type"] == "application/geo+json")
    assert f"/collections/{layer_id}/items" in items["href"]


def test_unknown_collection_is_404(client: TestClient, problem: Callable[..., dict[str, Any]]) -> None:
    """An unknown collection is a 404 problem that names it."""
    problem(client.get("/collections/airports"), 404, "airports")
    problem(client.get("/collections/airports/items"), 404, "airports")


def test_collection_rejects_unknown_parameter(
    client: TestClient, problem: Callable[..., dict[str, Any]]
) -> None:
    """Unknown parameters on both endpoints are 400 naming them."""
    problem(client.get("/collections", params={"bbox": "120,30,121,31"}), 400, "bbox")
    problem(client.get("/collections/rail_stations", params={"limit": "5"}), 400, "limit")


@pytest.mark.parametrize("path", ["/collections", "/collections/rail_stations"])
def test_conditional_get(client: TestClient, path: str) -> None:
    """An ETag is sent; If-None-Match with it gives 304 without a body, with another tag 200."""
    first = client.get(path)
    etag = first.headers.get("etag")
    assert etag
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers.get("etag") == etag
    other = client.get(path, headers={"If-None-Match": '"not-the-current-one"'})
    assert other.status_code == 200
    assert other.json() == first.json()


def test_etag_differs_by_format(client: TestClient) -> None:
    """The JSON and HTML representations carry different ETags."""
    json_tag = client.get("/collections/rail_stations").headers["etag"]
    html_tag = client.get("/collections/rail_stations", params={"f": "html"}).headers["etag"]
    assert json_tag != html_tag


def test_collections_html(client: TestClient, catalog: Catalog) -> None:
    """The HTML list names every layer."""
    response = client.get("/collections", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    text = html.unescape(response.text)
    for layer in catalog.layers.values():
        assert layer.title.zh in text


def test_collection_html(client: TestClient, catalog: Catalog) -> None:
    """The HTML page of one collection shows its title and links to its items."""
    response = client.get("/collections/rail_stations", params={"f": "html"})
    assert response.status_code == 200
    text = html.unescape(response.text)
    assert catalog.layers["rail_stations"].title.zh in text
    assert "/collections/rail_stations/items" in text


def test_a_stale_extent_is_computed_once_per_layer(engine: Engine) -> None:
    """After an edit a layer's stored extent is stale (NULL) and the layers' state computes it from the
    features: once per layer, not once for each of ST_XMin, ST_YMin, ST_XMax and ST_YMax (with a 100,000-row
    layer that was ~180 ms per /collections request). Checked on the plan, in a transaction rolled back."""
    with engine.connect() as conn, conn.begin() as transaction:
        conn.execute(text("UPDATE layers SET extent = NULL"))
        plan = "\n".join(conn.execute(text("EXPLAIN (COSTS OFF) " + layer_states_statement().text)).scalars())
        stale = conn.execute(layer_states_statement()).all()
        transaction.rollback()
    assert plan.count("Aggregate") == 1, plan
    assert all(row.xmin is not None for row in stale if row.feature_count)
