"""OWSLib's OGC API – Features client reading the live service."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from openapi_spec_validator import validate
from owslib.ogcapi.features import Features

from geo_service.catalog import Catalog, load_catalog
from geo_service.settings import PROJECT_ROOT

LAYER_IDS = list(load_catalog(PROJECT_ROOT / "layers", PROJECT_ROOT / "maps").layers)
CORE = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"
Seeds = dict[str, dict[str, dict[str, Any]]]


@pytest.fixture(scope="module")
def features_api(live_server: str) -> Features:
    """An OWSLib client opened on the landing page."""
    return Features(live_server)


def test_landing_page(features_api: Features) -> None:
    """OWSLib reads the landing page and its links."""
    rels = {link["rel"] for link in features_api.links}
    assert {"service-desc", "conformance", "data"} <= rels


def test_api_document(features_api: Features) -> None:
    """OWSLib finds the OpenAPI document through the service-desc link; it is valid OpenAPI 3.0."""
    doc = features_api.api()
    assert doc["openapi"].startswith("3.0.")
    validate(doc)


def test_conformance(features_api: Features) -> None:
    """OWSLib reads the conformance classes."""
    assert CORE in features_api.conformance()["conformsTo"]


def test_collections(features_api: Features, catalog: Catalog) -> None:
    """OWSLib lists the collections, all of them feature collections."""
    ids = [c["id"] for c in features_api.collections()["collections"]]
    assert ids == list(catalog.layers)
    assert features_api.feature_collections() == list(catalog.layers)
    assert features_api.collection("rail_lines")["id"] == "rail_lines"


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_collection_items_pages_add_up(features_api: Features, seeds: Seeds, layer_id: str) -> None:
    """Pages of `collection_items(limit=…)`, followed by cursor, add up to numberMatched and the seeds."""
    codes: list[str] = []
    params: dict[str, Any] = {"limit": 4}
    matched = None
    for _ in range(100):
        page = features_api.collection_items(layer_id, **params)
        assert page["numberReturned"] == len(page["features"]) <= 4
        matched = page["numberMatched"]
        codes += [f["properties"]["code"] for f in page["features"]]
        nxt = [link for link in page["links"] if link["rel"] == "next"]
        if not nxt:
            break
        params = {"limit": 4, "cursor": parse_qs(urlsplit(nxt[0]["href"]).query)["cursor"][0]}
    assert len(codes) == len(set(codes)) == matched == len(seeds[layer_id])
    assert set(codes) == set(seeds[layer_id])


def test_collection_items_bbox(features_api: Features) -> None:
    """A bbox given as a list is honoured (a box in the sea off 海盐 holds nothing)."""
    page = features_api.collection_items("rail_stations", bbox=[121.15, 30.30, 121.30, 30.45])
    assert page["numberReturned"] == 0
    assert page["features"] == []


def test_collection_item(features_api: Features, seeds: Seeds) -> None:
    """A single feature read by id equals the seed's properties."""
    first = features_api.collection_items("rail_stations", limit=1)["features"][0]
    feature = features_api.collection_item("rail_stations", str(first["id"]))
    code = feature["properties"]["code"]
    assert feature["properties"] == seeds["rail_stations"][code]["properties"]


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_queryables_and_schema(features_api: Features, catalog: Catalog, layer_id: str) -> None:
    """OWSLib reads each collection's queryables and Part 5 schema: the layer's declared properties, and the
    geometry as a GeoJSON `$ref` of the layer's type."""
    layer = catalog.layers[layer_id]
    queryables = features_api.collection_queryables(layer_id)
    assert set(queryables["properties"]) == {"geometry", *layer.property_names}
    assert queryables["properties"]["geometry"]["$ref"].endswith(f"/{layer.geometry_type}.json")
    schema = features_api.collection_schema(layer_id)
    assert schema["properties"]["geometry"]["x-ogc-role"] == "primary-geometry"
    assert set(schema["properties"]) == {"id", "geometry", *layer.property_names}


def test_filter_and_sortby_through_owslib(features_api: Features, seeds: Seeds) -> None:
    """OWSLib passes `filter` and its `sortby` tuple (sent as `-accuracy_m`) through: the planned rail lines,
    largest error first, as the seeds say (ties keep id order, so only the error sequence is compared)."""
    page = features_api.collection_items(
        "rail_lines", filter="status = 'planned'", sortby=("accuracy_m", "desc"), limit=100
    )
    got = [f["properties"] for f in page["features"]]
    planned = [
        f["properties"] for f in seeds["rail_lines"].values() if f["properties"]["status"] == "planned"
    ]
    assert {p["code"] for p in got} == {p["code"] for p in planned}
    assert [p["accuracy_m"] for p in got] == sorted((p["accuracy_m"] for p in planned), reverse=True)
    assert page["numberMatched"] == len(planned)
