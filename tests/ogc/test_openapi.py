"""`/api`: the OpenAPI 3.0 document that QGIS, GDAL and the OGC test suite read."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import morecantile
import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from geo_service.settings import Settings

from .conftest import SMALL_DEFAULT_LIMIT, SMALL_MAX_LIMIT

OPENAPI_30 = "application/vnd.oai.openapi+json;version=3.0"
QGIS_ACCEPT = (
    "application/vnd.oai.openapi+json;version=3.0, application/openapi+json;version=3.0, application/json"
)


@pytest.fixture(scope="module")
def api_doc(client: TestClient) -> dict[str, Any]:
    """The OpenAPI document as QGIS asks for it."""
    response = client.get("/api", headers={"Accept": QGIS_ACCEPT})
    assert response.status_code == 200
    return response.json()


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    """Follow a local `$ref` (JSON pointer) if `node` is one."""
    if isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(target, dict) and part in target, f"unresolved $ref {ref}"
            target = target[part]
        return target
    return node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _items_parameters(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    operation = doc["paths"]["/collections/{collectionId}/items"]["get"]
    params = [_resolve(doc, p) for p in operation["parameters"]]
    return {p["name"]: p for p in params}


def test_document_is_valid_openapi_30(api_doc: dict[str, Any]) -> None:
    """The document validates as OpenAPI 3.0."""
    assert api_doc["openapi"].startswith("3.0.")
    validate(api_doc)


def test_served_with_openapi_media_type_for_qgis(client: TestClient) -> None:
    """QGIS's exact Accept header gets `application/vnd.oai.openapi+json;version=3.0`."""
    response = client.get("/api", headers={"Accept": QGIS_ACCEPT})
    assert response.headers["content-type"].replace(" ", "") == OPENAPI_30


def test_served_for_plain_json_accept(client: TestClient) -> None:
    """A client that only accepts application/json still gets the document as JSON."""
    response = client.get("/api", headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] in (
        "application/json",
        "application/vnd.oai.openapi+json",
    )
    assert response.json()["openapi"].startswith("3.0.")


def test_service_desc_link_gives_the_document(client: TestClient, api_doc: dict[str, Any]) -> None:
    """The landing page's service-desc link returns this document."""
    link = next(x for x in client.get("/").json()["links"] if x["rel"] == "service-desc")
    assert client.get(link["href"], headers={"Accept": link["type"]}).json() == api_doc


def test_limit_declaration(api_doc: dict[str, Any], settings: Settings) -> None:
    """`limit`: in query, form style, not exploded, integer from 1 with the configured maximum and default."""
    limit = api_doc["components"]["parameters"]["limit"]
    assert limit["name"] == "limit"
    assert limit["in"] == "query"
    assert limit["style"] == "form"
    assert limit["explode"] is False
    schema = limit["schema"]
    assert schema["type"] == "integer"
    assert schema["minimum"] == 1
    assert schema["maximum"] == settings.max_limit
    assert schema["default"] == settings.default_limit


def test_limit_declaration_follows_settings(small_client: TestClient) -> None:
    """Other page-size settings show in the document (QGIS sizes its pages from it)."""
    schema = small_client.get("/api").json()["components"]["parameters"]["limit"]["schema"]
    assert schema["maximum"] == SMALL_MAX_LIMIT
    assert schema["default"] == SMALL_DEFAULT_LIMIT


def test_bbox_declaration(api_doc: dict[str, Any]) -> None:
    """`bbox`: an array of 4 to 6 numbers, in query, form style, not exploded."""
    bbox = api_doc["components"]["parameters"]["bbox"]
    assert (bbox["name"], bbox["in"], bbox["style"], bbox["explode"]) == ("bbox", "query", "form", False)
    schema = bbox["schema"]
    assert schema["type"] == "array"
    assert schema["minItems"] == 4
    assert schema["maxItems"] == 6
    assert schema["items"]["type"] == "number"


def test_datetime_declaration(api_doc: dict[str, Any]) -> None:
    """`datetime`: a string query parameter."""
    param = api_doc["components"]["parameters"]["datetime"]
    assert (param["name"], param["in"]) == ("datetime", "query")
    assert param["schema"]["type"] == "string"


def test_items_operation_uses_the_parameters(api_doc: dict[str, Any]) -> None:
    """The items operation declares limit, bbox and datetime (by reference to the components)."""
    params = _items_parameters(api_doc)
    assert {"limit", "bbox", "datetime"} <= set(params)
    assert params["limit"] == api_doc["components"]["parameters"]["limit"]
    assert params["collectionId"]["in"] == "path"


def test_every_ref_resolves(api_doc: dict[str, Any]) -> None:
    """Every `$ref` in the document points at something that exists."""
    refs = list(_refs(api_doc))
    assert refs
    for ref in refs:
        assert _resolve(api_doc, {"$ref": ref}) is not None


def test_collection_ids_match_the_collections(client: TestClient, api_doc: dict[str, Any]) -> None:
    """The collectionId values the document allows are exactly the collections served."""
    served = [c["id"] for c in client.get("/collections").json()["collections"]]
    declared = api_doc["components"]["parameters"]["collectionId"]["schema"].get("enum")
    if declared is not None:
        assert sorted(declared) == sorted(served)


def test_every_declared_path_answers(client: TestClient, api_doc: dict[str, Any], seeds: Any) -> None:
    """Each readable path of the document open to anyone, filled with a real collection, feature, tile
    (the tile of 嘉兴南站 at zoom 12) and finished job, answers 200."""
    job = client.post(
        "/processes/county-summary/execution", json={"inputs": {}}, headers={"Prefer": "respond-async"}
    ).json()["jobID"]
    deadline = time.monotonic() + 30
    while client.get(f"/jobs/{job}").json()["status"] != "successful" and time.monotonic() < deadline:
        time.sleep(0.1)
    page = client.get("/collections/rail_stations/items", params={"limit": 1}).json()
    feature_id = page["features"][0]["id"]
    lon, lat = seeds["rail_stations"]["c01_jiaxing_south_stn"]["geometry"]["coordinates"]
    tile = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, 12)
    assert api_doc["paths"]
    for path, operations in api_doc["paths"].items():
        if "get" not in operations or operations["get"].get("security"):  # needs a key: tests/ops
            continue
        real = path.replace("{collectionId}", "rail_stations").replace("{featureId}", str(feature_id))
        real = real.replace("{jobId}", job)
        real = (
            real.replace("{tileMatrix}", "12")
            .replace("{tileRow}", str(tile.y))
            .replace("{tileCol}", str(tile.x))
        )
        assert client.get(real).status_code == 200, path


def test_declared_query_parameters_are_accepted(client: TestClient, api_doc: dict[str, Any]) -> None:
    """No query parameter the document declares for items is refused as unknown."""
    examples = {"f": "json", "limit": "2", "bbox": "120,30,121,31", "datetime": "2021-01-01", "cursor": None}
    for name, param in _items_parameters(api_doc).items():
        if param["in"] != "query" or examples.get(name) is None:
            continue
        response = client.get("/collections/rail_stations/items", params={name: examples[name]})
        assert response.status_code == 200, (name, response.text)


def test_api_html(client: TestClient) -> None:
    """`f=html` gives a readable page of the operations."""
    response = client.get("/api", params={"f": "html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/collections/{collectionId}/items" in response.text


def test_api_rejects_unknown_parameter(client: TestClient, problem: Callable[..., dict[str, Any]]) -> None:
    """An unknown parameter on /api is a 400 naming it."""
    problem(client.get("/api", params={"version": "3.1"}), 400, "version")


def test_operations_needing_a_key_declare_their_refusals(api_doc: dict[str, Any]) -> None:
    """Every write and GET /audit needs a key and declares 401 (with WWW-Authenticate), 403 and 429 (with
    Retry-After); /audit declares since and limit."""
    secured = [
        (path, method, op)
        for path, operations in api_doc["paths"].items()
        for method, op in operations.items()
        if op.get("security")
    ]
    assert {m for _, m, _ in secured} == {"get", "post", "put", "patch", "delete"}
    for path, method, op in secured:
        for code in ("401", "403", "429"):
            assert code in op["responses"], (path, method, code)
    responses = api_doc["components"]["responses"]
    assert "WWW-Authenticate" in responses["Unauthorized"]["headers"]
    assert "Retry-After" in responses["TooManyAttempts"]["headers"]
    audit = api_doc["paths"]["/audit"]["get"]
    assert [p["name"] for p in audit["parameters"]] == ["since", "limit"]


def test_operations_that_ask_the_database_declare_503(api_doc: dict[str, Any]) -> None:
    """Every operation that reads or writes the database may answer 503 with Retry-After (stopped, busy, too
    slow: tests/db/test_faults.py); the landing page, conformance, the document and /health never do."""
    unavailable = api_doc["components"]["responses"]["Unavailable"]
    assert "Retry-After" in unavailable["headers"]
    free = {"/", "/conformance", "/api", "/health", "/ready", "/metrics"}
    for path, operations in api_doc["paths"].items():
        for method, operation in operations.items():
            declared = "503" in operation["responses"]
            if path == "/ready":  # its own 503: not ready yet
                assert declared, path
            else:
                assert declared == (path not in free), (method, path)


def test_writes_declare_their_read_after_position(api_doc: dict[str, Any]) -> None:
    """Every write's success declares the JXPlan-Read-After header it answers (read your writes with
    replicas), in the form PostgreSQL writes a WAL position; the process executions, which write no
    feature, do not."""
    writes = 0
    for path, operations in api_doc["paths"].items():
        for method, operation in operations.items():
            if operation.get("tags") != ["Editing"] or method == "get":
                continue
            for status, response in operation["responses"].items():
                if status.startswith("2"):
                    header = response["headers"]["JXPlan-Read-After"]
                    assert re.fullmatch(header["schema"]["pattern"], "16/B374D848"), path
                    writes += 1
    assert writes >= 6
    execution = api_doc["paths"]["/processes/site-check/execution"]["post"]["responses"]["200"]
    assert "JXPlan-Read-After" not in execution.get("headers", {})
