"""`/collections/{id}/queryables` (Part 3), `/sortables` and `/schema` (Part 5) for every layer.

Expectations come from the catalogue (`layers/catalog.yaml` as loaded by `load_catalog`) and from the
seed features under `layers/`: the served schema must describe the data actually served.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from geo_service.catalog import Catalog, load_catalog
from geo_service.settings import PROJECT_ROOT

LAYER_IDS = list(load_catalog(PROJECT_ROOT / "layers", PROJECT_ROOT / "maps").layers)
KINDS = ["queryables", "sortables", "schema"]
SCHEMA_JSON = "application/schema+json"
JSON_SCHEMA_2020 = "https://json-schema.org/draft/2020-12/schema"
REL = "http://www.opengis.net/def/rel/ogc/1.0/"
QGIS_ACCEPT = (
    "application/vnd.oai.openapi+json;version=3.0, application/openapi+json;version=3.0, application/json"
)

Seeds = dict[str, dict[str, dict[str, Any]]]
ProblemCheck = Callable[..., dict[str, Any]]


def _get(client: TestClient, layer_id: str, kind: str) -> dict[str, Any]:
    response = client.get(f"/collections/{layer_id}/{kind}")
    assert response.status_code == 200, response.text
    return response.json()


def _media(response: Any) -> str:
    return str(response.headers["content-type"]).split(";")[0].strip()


def _without_ogc_keys(node: Any) -> Any:
    """A copy of a schema without the `x-ogc-*` annotations."""
    if isinstance(node, dict):
        return {k: _without_ogc_keys(v) for k, v in node.items() if not k.startswith("x-ogc-")}
    if isinstance(node, list):
        return [_without_ogc_keys(v) for v in node]
    return node


def _property_validator(doc: dict[str, Any]) -> Draft202012Validator:
    """A validator of a feature's `properties` member built from the served Part 5 schema: its
    properties without `id` and `geometry` (members of the feature, not of its properties)."""
    properties = {k: v for k, v in doc["properties"].items() if k not in ("id", "geometry")}
    schema = {
        "$schema": doc["$schema"],
        "type": "object",
        "properties": _without_ogc_keys(properties),
        "required": doc["required"],
        "additionalProperties": doc["additionalProperties"],
    }
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


# -- media types, parameters, errors


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layer_id", LAYER_IDS)
@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("", {}),
        ("", {"Accept": SCHEMA_JSON}),
        ("", {"Accept": "application/json"}),
        ("", {"Accept": "*/*"}),
        ("?f=json", {}),
        ("?f=json", {"Accept": "text/html"}),
    ],
    ids=["plain", "accept-schema", "accept-json", "accept-any", "f=json", "f=json-over-accept-html"],
)
def test_served_as_schema_json(
    client: TestClient, layer_id: str, kind: str, query: str, headers: dict[str, str]
) -> None:
    """Each document is `application/schema+json` (what Part 3/5 prescribe) for plain, schema, JSON and
    wildcard Accept headers and for f=json, and its $id is its own URL."""
    response = client.get(f"/collections/{layer_id}/{kind}{query}", headers=headers)
    assert response.status_code == 200, response.text
    assert _media(response) == SCHEMA_JSON
    doc = response.json()
    assert doc["$id"] == f"http://testserver/collections/{layer_id}/{kind}"


@pytest.mark.parametrize("kind", KINDS)
def test_html_is_not_offered(client: TestClient, problem: ProblemCheck, kind: str) -> None:
    """f=html is a 400 that names the format (the schemas exist only as JSON)."""
    body = problem(client.get(f"/collections/rail_stations/{kind}", params={"f": "html"}), 400, "html")
    assert body["instance"] == f"/collections/rail_stations/{kind}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("colour=red", ["colour"]),
        ("limit=5", ["limit"]),
        ("sortby=name_zh", ["sortby"]),
        ("f=json&f=json", ["f", "more than once"]),
        ("f=xml", ["xml"]),
    ],
)
def test_bad_parameters_are_400(
    client: TestClient, problem: ProblemCheck, kind: str, query: str, words: list[str]
) -> None:
    """An unknown, repeated or unsupported parameter is a 400 problem naming it."""
    problem(client.get(f"/collections/rail_stations/{kind}?{query}"), 400, *words)


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_collection_is_404(client: TestClient, problem: ProblemCheck, kind: str) -> None:
    """A schema of a collection that does not exist is a 404 problem naming the collection."""
    problem(client.get(f"/collections/no_such_layer/{kind}"), 404, "no_such_layer")


# -- queryables


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_queryables(client: TestClient, catalog: Catalog, layer_id: str) -> None:
    """Queryables: a closed 2020-12 object schema listing the geometry (a GeoJSON `$ref` of the layer's
    geometry type) and exactly the layer's declared properties, each with one string `type` (QGIS reads
    no list) and enums without null."""
    layer = catalog.layers[layer_id]
    doc = _get(client, layer_id, "queryables")
    assert doc["$schema"] == JSON_SCHEMA_2020
    assert doc["type"] == "object"
    assert doc["additionalProperties"] is False
    properties = doc["properties"]
    geometry = properties["geometry"]
    assert geometry["$ref"].startswith("https://geojson.org/schema/")
    assert geometry["$ref"] == f"https://geojson.org/schema/{layer.geometry_type}.json"
    others = [name for name in properties if name != "geometry"]
    assert others == layer.property_names, "not the declared properties, or not in declaration order"
    for name in others:
        declared = layer.json_schema["properties"][name]
        prop = properties[name]
        assert isinstance(prop["type"], str), (name, prop["type"])
        declared_types = declared["type"] if isinstance(declared["type"], list) else [declared["type"]]
        assert prop["type"] in declared_types and prop["type"] != "null", name
        if "enum" in prop:
            assert None not in prop["enum"], name
            assert prop["enum"] == [v for v in declared["enum"] if v is not None]
        if prop["type"] == "array":
            assert isinstance(prop["items"]["type"], str)


def test_queryables_drop_null_from_enums(client: TestClient, catalog: Catalog) -> None:
    """A nullable enum in the catalogue (gazetteer_confidence lists null) is served without the null."""
    declared = catalog.layers["rail_stations"].json_schema["properties"]["gazetteer_confidence"]
    assert None in declared["enum"], "the catalogue no longer has a nullable enum to test with"
    served = _get(client, "rail_stations", "queryables")["properties"]["gazetteer_confidence"]
    assert served["type"] == "string"
    assert served["enum"] == [v for v in declared["enum"] if v is not None]


# -- sortables


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_sortables_are_the_scalar_queryables(client: TestClient, layer_id: str) -> None:
    """Sortables: exactly the queryables that are not arrays, described alike, and no geometry."""
    queryables = _get(client, layer_id, "queryables")
    sortables = _get(client, layer_id, "sortables")
    assert sortables["$schema"] == JSON_SCHEMA_2020
    assert sortables["type"] == "object"
    assert sortables["additionalProperties"] is False
    expected = {
        name: prop
        for name, prop in queryables["properties"].items()
        if name != "geometry" and prop["type"] != "array"
    }
    assert sortables["properties"] == expected
    assert "geometry" not in sortables["properties"]
    assert {"county", "aliases"}.isdisjoint(sortables["properties"])


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_every_sortable_sorts_and_nothing_else(client: TestClient, catalog: Catalog, layer_id: str) -> None:
    """Each sortable is accepted by `sortby` (both directions); each other declared property is refused."""
    sortables = set(_get(client, layer_id, "sortables")["properties"])
    url = f"/collections/{layer_id}/items"
    for name in catalog.layers[layer_id].property_names:
        for sortby in (name, f"-{name}"):
            status = client.get(url, params={"sortby": sortby, "limit": 2}).status_code
            assert status == (200 if name in sortables else 400), (sortby, status)


# -- schema (Part 5)


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_feature_schema_roles_and_order(client: TestClient, catalog: Catalog, layer_id: str) -> None:
    """Schema: `id` is the read-only id role, the geometry the primary geometry with its Part 5 format,
    the properties numbered 1..n in declaration order, `required` the catalogue's."""
    layer = catalog.layers[layer_id]
    doc = _get(client, layer_id, "schema")
    assert doc["$schema"] == JSON_SCHEMA_2020
    assert doc["type"] == "object"
    properties = doc["properties"]
    assert properties["id"]["x-ogc-role"] == "id"
    assert properties["id"]["readOnly"] is True
    geometry = properties["geometry"]
    assert geometry["x-ogc-role"] == "primary-geometry"
    assert geometry["format"] == f"geometry-{layer.geometry_type.lower()}"
    assert geometry["$ref"] == f"https://geojson.org/schema/{layer.geometry_type}.json"
    roles = [p.get("x-ogc-role") for p in properties.values()]
    assert roles.count("id") == 1
    assert roles.count("primary-geometry") == 1
    sequenced = {name: p["x-ogc-propertySeq"] for name, p in properties.items() if "x-ogc-propertySeq" in p}
    assert list(sequenced) == layer.property_names
    assert list(sequenced.values()) == list(range(1, len(layer.property_names) + 1))
    for name in layer.property_names:
        assert isinstance(properties[name]["type"], str), name
    assert doc["required"] == layer.json_schema["required"]
    assert set(doc["required"]) <= set(sequenced)


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_seed_features_validate_against_the_schema(
    client: TestClient, seeds: Seeds, catalog: Catalog, layer_id: str
) -> None:
    """Every seed feature's properties validate against the served schema (x-ogc-* annotations dropped).

    The served schema writes one JSON type per property (QGIS reads only a string `type`) and expresses
    "may be null or absent" by leaving the property out of `required`. So before validating, the
    None-valued properties that are not required are removed: they stand for "no value", which the
    schema allows by not requiring them. A required property is never stripped, so a null there fails.
    """
    doc = _get(client, layer_id, "schema")
    validator = _property_validator(doc)
    required = set(doc["required"])
    for code, feature in seeds[layer_id].items():
        properties = {k: v for k, v in feature["properties"].items() if v is not None or k in required}
        errors = [e.message for e in validator.iter_errors(properties)]
        assert not errors, (code, errors)


def test_the_schema_validation_can_fail(client: TestClient, seeds: Seeds) -> None:
    """The validator built from the served schema rejects bad properties (an unknown member, a value of
    another type, a value outside the enum, a missing or null required member), so the validation test
    above is not vacuous."""
    validator = _property_validator(_get(client, "rail_stations", "schema"))
    good = {
        k: v for k, v in next(iter(seeds["rail_stations"].values()))["properties"].items() if v is not None
    }
    assert validator.is_valid(good)
    bad = [
        good | {"colour": "red"},
        good | {"accuracy_m": "3000"},
        good | {"status": "demolished"},
        good | {"county": "330402"},
        good | {"name_zh": None},
        {k: v for k, v in good.items() if k != "name_zh"},
    ]
    for properties in bad:
        assert not validator.is_valid(properties), properties


# -- links from the collection


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_collection_links_to_the_schemas(client: TestClient, layer_id: str) -> None:
    """The collection document links to queryables, sortables and schema (and `describedby` the schema),
    each typed `application/schema+json`, and each link resolves to that document."""
    collection = client.get(f"/collections/{layer_id}").json()
    targets = {
        REL + "queryables": "queryables",
        REL + "sortables": "sortables",
        REL + "schema": "schema",
        "describedby": "schema",
    }
    for rel, kind in targets.items():
        links = [link for link in collection["links"] if link["rel"] == rel]
        assert len(links) == 1, rel
        [found] = links
        assert found["type"] == SCHEMA_JSON
        response = client.get(found["href"], headers={"Accept": found["type"]})
        assert response.status_code == 200, rel
        assert _media(response) == SCHEMA_JSON
        assert response.json()["$id"] == f"http://testserver/collections/{layer_id}/{kind}"


def test_collections_list_links_to_the_schemas(client: TestClient) -> None:
    """`/collections` shows the same schema links for each collection as `/collections/{id}`."""
    listed = {c["id"]: c for c in client.get("/collections").json()["collections"]}
    assert list(listed) == LAYER_IDS
    for layer_id in LAYER_IDS:
        single = client.get(f"/collections/{layer_id}").json()
        schema_rels = {REL + k for k in KINDS} | {"describedby"}

        def schema_links(doc: dict[str, Any], rels: set[str] = schema_rels) -> list[tuple[str, str]]:
            return sorted((link["rel"], link["href"]) for link in doc["links"] if link["rel"] in rels)

        assert schema_links(listed[layer_id]) == schema_links(single)
        assert len(schema_links(single)) == 4


# -- caching


@pytest.mark.parametrize("kind", KINDS)
def test_conditional_get(client: TestClient, kind: str) -> None:
    """A document's ETag gives 304 with an empty body on If-None-Match; another layer's or another
    document's ETag differs; a stale tag gets the document again."""
    url = f"/collections/rail_stations/{kind}"
    first = client.get(url)
    etag = first.headers.get("etag")
    assert etag
    cached = client.get(url, headers={"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag
    assert client.get(url, headers={"If-None-Match": '"stale"'}).status_code == 200
    others = {client.get(f"/collections/rail_lines/{kind}").headers["etag"]}
    others |= {client.get(f"/collections/rail_stations/{k}").headers["etag"] for k in KINDS if k != kind}
    assert etag not in others


# -- OpenAPI


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    """Follow a local `$ref` (JSON pointer) if `node` is one."""
    if isinstance(node, dict) and "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        return target
    return node


@pytest.mark.parametrize(
    ("path", "names"),
    [
        (
            "/collections/{collectionId}/items",
            ["filter", "filter-lang", "filter-crs", "sortby", "properties"],
        ),
        ("/collections/{collectionId}/items/{featureId}", ["properties"]),
    ],
)
def test_openapi_declares_the_parameters(client: TestClient, path: str, names: list[str]) -> None:
    """The OpenAPI document lists filter, filter-lang, filter-crs, sortby and properties for the items
    operation (and properties for the feature operation) as form-style, unexploded query parameters."""
    response = client.get("/api", headers={"Accept": QGIS_ACCEPT})
    assert response.status_code == 200
    doc = response.json()
    operation = doc["paths"][path]["get"]
    params = {p["name"]: p for p in (_resolve(doc, p) for p in operation["parameters"])}
    for name in names:
        assert name in params, name
        assert params[name]["in"] == "query"
        assert params[name]["style"] == "form"
        assert params[name]["explode"] is False
    items = _resolve(doc, {"$ref": "#/components/parameters/filter-lang"})
    assert set(items["schema"]["enum"]) == {"cql2-text", "cql2-json"}
