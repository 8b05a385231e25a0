"""`/conformance`: the classes declared, and that each declared class is really backed by the service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

PART1 = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/"
CORE = PART1 + "core"
GEOJSON = PART1 + "geojson"
HTML = PART1 + "html"
OAS30 = PART1 + "oas30"
PART2_CRS = "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs"


@pytest.fixture(scope="module")
def conforms_to(client: TestClient) -> list[str]:
    """The declared conformance classes."""
    response = client.get("/conformance")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == "application/json"
    return response.json()["conformsTo"]


def test_declares_part1_classes(conforms_to: list[str]) -> None:
    """Core, GeoJSON, HTML and OpenAPI 3.0 of Part 1 are declared."""
    assert {CORE, GEOJSON, HTML, OAS30} <= set(conforms_to)


def test_declares_part2_crs(conforms_to: list[str]) -> None:
    """Part 2 (CRS by reference) is declared: QGIS only sends `crs`/`bbox-crs` when it is."""
    assert PART2_CRS in conforms_to


PART3 = "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/"
CQL2 = "http://www.opengis.net/spec/cql2/1.0/conf/"
PART5 = "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/"
# what QGIS needs before it sends any filter (../CLIENTS.md, Filtering)
QGIS_FILTER_CLASSES = {PART3 + "filter", PART3 + "features-filter", CQL2 + "cql2-text", CQL2 + "basic-cql2"}


def test_declares_filtering_classes_qgis_checks(conforms_to: list[str]) -> None:
    """All four classes QGIS checks before sending `filter`, plus the optional ones it uses."""
    assert set(conforms_to) >= QGIS_FILTER_CLASSES
    for optional in (
        "advanced-comparison-operators",
        "case-insensitive-comparison",
        "basic-spatial-functions",
    ):
        assert CQL2 + optional in conforms_to
    assert PART3 + "queryables" in conforms_to


def test_declares_schemas(conforms_to: list[str]) -> None:
    """Part 5 schemas is declared: QGIS 3.44+ reads field types from /schema only when it is."""
    assert PART5 + "schemas" in conforms_to


def test_declares_exactly_what_is_implemented(conforms_to: list[str]) -> None:
    """Nothing beyond what the tests back (Tiles: tests/ogc/test_tiles.py; Part 4: tests/editing;
    Processes: tests/analysis): no temporal or accent-insensitive CQL2, no Processes html or callback."""
    assert len(conforms_to) == len(set(conforms_to))
    expected = {CORE, GEOJSON, HTML, OAS30, PART2_CRS} | QGIS_FILTER_CLASSES
    expected |= {PART3 + "queryables", PART5 + "schemas", PART5 + "queryables", PART5 + "sortables"}
    expected |= {
        CQL2 + name
        for name in (
            "cql2-json",
            "advanced-comparison-operators",
            "case-insensitive-comparison",
            "basic-spatial-functions",
            "basic-spatial-functions-plus",
            "spatial-functions",
            "array-functions",
            "property-property",
            "arithmetic",
        )
    }
    tiles = "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/"
    expected |= {
        tiles + n for n in ("core", "tileset", "tilesets-list", "geodata-tilesets", "dataset-tilesets", "mvt")
    }
    part4 = "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/"
    expected |= {part4 + n for n in ("create-replace-delete", "update", "features")}
    processes = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"  # tests/analysis
    expected |= {
        processes + n for n in ("core", "ogc-process-description", "json", "oas30", "job-list", "dismiss")
    }
    assert set(conforms_to) == expected
    assert not [u for u in conforms_to if "temporal" in u or "accent" in u]


def test_conformance_links(client: TestClient) -> None:
    """The conformance document links to itself (JSON) and its HTML alternate."""
    links = client.get("/conformance").json()["links"]
    assert {(link["rel"], link["type"]) for link in links} == {
        ("self", "application/json"),
        ("alternate", "text/html"),
    }


def test_conformance_html(client: TestClient) -> None:
    """The HTML conformance page lists every declared class."""
    declared = client.get("/conformance").json()["conformsTo"]
    response = client.get("/conformance", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    for uri in declared:
        assert uri in response.text


def test_html_class_is_backed(client: TestClient, conforms_to: list[str]) -> None:
    """Every Part 1 resource has an HTML representation, as the HTML class promises."""
    assert HTML in conforms_to
    page = client.get("/collections/rail_stations/items", params={"limit": 1}).json()
    feature_id = page["features"][0]["id"]
    for path in (
        "/",
        "/conformance",
        "/api",
        "/collections",
        "/collections/rail_stations",
        "/collections/rail_stations/items",
        f"/collections/rail_stations/items/{feature_id}",
    ):
        response = client.get(path, params={"f": "html"})
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html"), path


def test_geojson_class_is_backed(client: TestClient, conforms_to: list[str]) -> None:
    """Items and single features are served as `application/geo+json`, as the GeoJSON class promises."""
    assert GEOJSON in conforms_to
    response = client.get("/collections/rail_stations/items", params={"limit": 1})
    assert response.headers["content-type"] == "application/geo+json"
    assert response.json()["type"] == "FeatureCollection"
    feature_id = response.json()["features"][0]["id"]
    single = client.get(f"/collections/rail_stations/items/{feature_id}")
    assert single.headers["content-type"] == "application/geo+json"
    assert single.json()["type"] == "Feature"


def test_oas30_class_is_backed(client: TestClient, conforms_to: list[str]) -> None:
    """The service-desc is a valid OpenAPI 3.0 document, as the OAS30 class promises."""
    assert OAS30 in conforms_to
    doc = client.get("/api").json()
    assert doc["openapi"].startswith("3.0.")
    validate(doc)


def test_conformance_rejects_unknown_parameter(
    client: TestClient, problem: Callable[..., dict[str, Any]]
) -> None:
    """An unknown parameter on /conformance is a 400 naming it."""
    problem(client.get("/conformance", params={"lang": "zh"}), 400, "lang")


def test_conformance_rejects_unknown_format(
    client: TestClient, problem: Callable[..., dict[str, Any]]
) -> None:
    """`f=xml` on /conformance is a 400."""
    problem(client.get("/conformance", params={"f": "xml"}), 400, "xml")
