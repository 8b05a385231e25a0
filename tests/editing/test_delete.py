"""DELETE of a feature (Part 4) with API keys: who may, If-Match, history; and OPTIONS on the item paths.

Every refused request is checked to have changed nothing."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from openapi_spec_validator import validate
from sqlalchemy import text

from geo_service.editing.keys import add_key, list_keys, revoke_key
from tests.conftest import Writable, database_state

LAYER = "rail_stations"


@pytest.fixture(scope="module")
def tokens(writable: Writable) -> dict[str, str]:
    """One key per role, and one revoked editor key, on the module's private database."""
    made = {role: add_key(writable.engine, f"test {role}", role) for role in ("reader", "editor", "admin")}
    made["revoked"] = add_key(writable.engine, "test revoked", "editor")
    revoke_key(writable.engine, "test revoked")
    return made


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _layer_and_history(writable: Writable) -> tuple[Any, ...]:
    with writable.engine.connect() as conn:
        return (
            conn.execute(text("SELECT version, feature_count FROM layers WHERE id = :l"), {"l": LAYER}).one(),
            conn.execute(text("SELECT count(*) FROM feature_history")).scalar_one(),
        )


def _some_feature(writable: Writable, index: int = 0) -> dict[str, Any]:
    page = writable.client.get(f"/collections/{LAYER}/items", params={"limit": 50}).json()
    feature: dict[str, Any] = page["features"][index]
    return feature


@pytest.mark.parametrize(
    ("headers", "status", "words"),
    [
        ({}, 401, ["Bearer", "jxplan keys add"]),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, ["Bearer"]),
        ({"Authorization": "Bearer not-a-key"}, 401, ["not valid"]),
        ("revoked", 401, ["revoked"]),
        ("reader", 403, ["reader", "editor"]),
    ],
)
def test_delete_needs_an_editor_key(
    writable: Writable, tokens: dict[str, str], problem: Any, headers: Any, status: int, words: list[str]
) -> None:
    """Without a key, with a bad or revoked one (401, with WWW-Authenticate) or a reader's (403), a DELETE is
    refused with a message saying what to do, and nothing changes."""
    feature = _some_feature(writable)
    before = database_state(writable.engine)
    sent = _auth(tokens[headers]) if isinstance(headers, str) else headers
    response = writable.client.delete(f"/collections/{LAYER}/items/{feature['id']}", headers=sent)
    problem(response, status, *words)
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert database_state(writable.engine) == before
    assert writable.client.get(f"/collections/{LAYER}/items/{feature['id']}").status_code == 200


def test_stale_if_match_is_412(writable: Writable, tokens: dict[str, str], problem: Any) -> None:
    """An If-Match naming another version is a 412 giving the current version; nothing changes."""
    feature = _some_feature(writable, 1)
    etag = writable.client.get(f"/collections/{LAYER}/items/{feature['id']}").headers["etag"]
    stale = etag.replace("v1-", "v0-", 1)
    assert stale != etag
    before = database_state(writable.engine)
    body = problem(
        writable.client.delete(
            f"/collections/{LAYER}/items/{feature['id']}",
            headers=_auth(tokens["editor"]) | {"If-Match": stale},
        ),
        412,
        "version",
    )
    assert body["current_version"] == 1
    assert database_state(writable.engine) == before


@pytest.mark.parametrize("if_match", [None, "current", "*"])
def test_delete_records_history(writable: Writable, tokens: dict[str, str], if_match: str | None) -> None:
    """An editor's DELETE (without If-Match, with the current ETag — gzip or not — or `*`) answers 204; the
    feature is gone, the layer's count and version move, and history holds its last state, who deleted it
    and the comment."""
    feature = _some_feature(writable, 2)
    path = f"/collections/{LAYER}/items/{feature['id']}"
    headers = _auth(tokens["editor"]) | {"X-Edit-Comment": quote("重复的车站 duplicate station")}
    if if_match == "current":
        headers["If-Match"] = writable.client.get(path).headers["etag"]
    elif if_match == "*":
        headers["If-Match"] = "*"
    (version, count), history = _layer_and_history(writable)
    response = writable.client.delete(path, headers=headers)
    assert response.status_code == 204 and response.content == b""
    assert writable.client.get(path).status_code == 404
    (new_version, new_count), new_history = _layer_and_history(writable)
    assert new_count == count - 1 and new_version > version and new_history == history + 1
    with writable.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT operation, changed_by, comment, properties FROM feature_history WHERE feature_id = :i"
            ),
            {"i": feature["id"]},
        ).one()
    assert row.operation == "delete" and row.changed_by == "test editor"
    assert row.comment == "重复的车站 duplicate station"
    assert row.properties == feature["properties"]
    assert writable.client.delete(path, headers=_auth(tokens["editor"])).status_code == 404


def test_reference_layers_cannot_be_deleted_from(
    writable: Writable, tokens: dict[str, str], problem: Any
) -> None:
    """Administrative boundaries are reference data: DELETE is 405 with an Allow header, even for an admin."""
    page = writable.client.get("/collections/admin_boundaries/items", params={"limit": 1}).json()
    path = f"/collections/admin_boundaries/items/{page['features'][0]['id']}"
    before = database_state(writable.engine)
    response = writable.client.delete(path, headers=_auth(tokens["admin"]))
    problem(response, 405, "reference")
    assert "DELETE" not in response.headers["allow"]
    assert database_state(writable.engine) == before


def test_options_says_what_is_allowed(writable: Writable) -> None:
    """OPTIONS answers with Allow: an editable layer's items path allows POST (QGIS then offers editing) and
    its features PUT, PATCH and DELETE; reference data allows none of them."""
    items = writable.client.options(f"/collections/{LAYER}/items")
    assert items.status_code == 204 and "POST" in items.headers["allow"]
    assert "POST" not in writable.client.options("/collections/admin_boundaries/items").headers["allow"]
    feature = _some_feature(writable)
    one = writable.client.options(f"/collections/{LAYER}/items/{feature['id']}")
    assert set(one.headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"}
    boundary = writable.client.options("/collections/admin_boundaries/items/1")
    assert "DELETE" not in boundary.headers["allow"]


def test_keys_are_stored_hashed_and_listed(writable: Writable, tokens: dict[str, str]) -> None:
    """No token is stored: the table holds hashes; listings show names, roles, the first characters only,
    and that a used key was used."""
    with writable.engine.connect() as conn:
        stored = " ".join(str(v) for row in conn.execute(text("SELECT * FROM api_keys")) for v in row)
    for token in tokens.values():
        assert token not in stored and token.startswith("jxp_") and len(token) > 40
    listed = {k.name: k for k in list_keys(writable.engine)}
    assert listed["test revoked"].revoked_at is not None
    assert listed["test reader"].prefix == tokens["reader"][:8]


def test_openapi_declares_the_writes(writable: Writable) -> None:
    """The API document lists POST on items, PUT/PATCH/DELETE on a feature, history and revert, each write
    behind the bearer key, with If-Match optional; and it is still valid OpenAPI 3.0."""
    doc = writable.client.get("/api").json()
    validate(doc)
    item = doc["paths"]["/collections/{collectionId}/items/{featureId}"]
    assert {"get", "put", "patch", "delete"} <= set(item)
    assert "post" in doc["paths"]["/collections/{collectionId}/items"]
    assert "post" in doc["paths"]["/collections/{collectionId}/items/{featureId}/revert"]
    for operation in (item["put"], item["patch"], item["delete"]):
        assert operation["security"] == [{"apiKey": []}]
        [if_match] = [p for p in operation["parameters"] if p.get("name") == "If-Match"]
        assert if_match["required"] is False
    assert doc["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"


def test_a_key_tells_whose_it_is(writable: Writable, tokens: dict[str, str], problem: Any) -> None:
    """`GET /auth/key` (what the editor page asks) names the key and its role; without a key, or with a
    revoked one, it is 401 like a write."""
    for role in ("reader", "editor", "admin"):
        answer = writable.client.get("/auth/key", headers=_auth(tokens[role]))
        assert answer.status_code == 200 and answer.json() == {"name": f"test {role}", "role": role}
    problem(writable.client.get("/auth/key"), 401, "key")
    problem(writable.client.get("/auth/key", headers=_auth(tokens["revoked"])), 401, "not valid")
