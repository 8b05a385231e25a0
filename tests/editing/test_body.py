"""Write bodies nested absurdly deep (POST, PUT, PATCH of items): a 400 saying how deep a body may nest,
never a RecursionError or a 500, and nothing written."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from geo_service.editing.keys import add_key
from geo_service.validation import MAX_JSON_DEPTH
from tests.conftest import Writable, check_problem, database_state

LAYER = "rail_stations"


@pytest.fixture(scope="module")
def auth(writable: Writable) -> dict[str, str]:
    """An editor's Authorization header on the module's private database."""
    return {"Authorization": f"Bearer {add_key(writable.engine, '深度测试 nesting', 'editor')}"}


def _feature_body(nested: str) -> str:
    return (
        '{"type": "Feature", "geometry": {"type": "Point", "coordinates": [120.8, 30.7]}, '
        f'"properties": {{"code": "deep_body", "note": {nested}}}}}'
    )


@pytest.mark.parametrize("depth", [10_000, 990, MAX_JSON_DEPTH])
def test_deeply_nested_bodies_are_refused(writable: Writable, auth: dict[str, str], depth: int) -> None:
    """A Feature whose `note` nests lists `depth` deep (past Python's recursion limit, just under it, and
    just past the bound) is refused by POST, PUT and PATCH with a 400 naming the bound; nothing changes."""
    with writable.engine.connect() as conn:
        fid = conn.execute(text("SELECT id FROM features WHERE layer_id = :l LIMIT 1"), {"l": LAYER}).scalar()
    nested = "[" * depth + "1" + "]" * depth
    patch = f'{{"properties": {{"note": {nested}}}}}'
    items = f"/collections/{LAYER}/items"
    geojson = auth | {"Content-Type": "application/geo+json"}
    merge = auth | {"Content-Type": "application/merge-patch+json"}
    before = database_state(writable.engine)
    for response in (
        writable.client.post(items, content=_feature_body(nested), headers=geojson),
        writable.client.put(f"{items}/{fid}", content=_feature_body(nested), headers=geojson),
        writable.client.patch(f"{items}/{fid}", content=patch, headers=merge),
    ):
        check_problem(response, 400, f"more than {MAX_JSON_DEPTH} levels", "flatten")
    assert database_state(writable.engine) == before


def test_nesting_within_the_bound_reaches_the_schema(writable: Writable, auth: dict[str, str]) -> None:
    """A body nested exactly to the bound passes the depth check: the layer's schema answers instead (a
    list is not a valid `note`), naming the property."""
    nested = "[" * (MAX_JSON_DEPTH - 2) + "1" + "]" * (MAX_JSON_DEPTH - 2)  # inside the Feature's two objects
    response = writable.client.post(
        f"/collections/{LAYER}/items",
        content=_feature_body(nested),
        headers=auth | {"Content-Type": "application/geo+json"},
    )
    body = check_problem(response, 400, "note")
    assert "levels" not in body["detail"]
