"""History, old versions, revert and restore: nothing an edit replaces or deletes is lost."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pyproj import Geod
from sqlalchemy import text

from geo_service.editing.keys import add_key
from tests.conftest import Writable

LAYER = "rail_stations"
MERGE = "application/merge-patch+json"


@pytest.fixture(scope="module")
def auth(writable: Writable) -> dict[str, str]:
    """An editor's Authorization header on the module's private database."""
    return {"Authorization": f"Bearer {add_key(writable.engine, '历史测试 historian', 'editor')}"}


def _station(writable: Writable, index: int) -> tuple[str, dict[str, Any]]:
    page = writable.client.get(f"/collections/{LAYER}/items", params={"limit": 40}).json()
    feature = page["features"][index]
    return f"/collections/{LAYER}/items/{feature['id']}", feature


def _patch(
    writable: Writable, path: str, auth: dict[str, str], body: dict[str, Any], comment: str = ""
) -> None:
    headers = auth | {"Content-Type": MERGE, "X-Edit-Comment": comment}
    response = writable.client.patch(
        path, content=json.dumps(body, ensure_ascii=False).encode(), headers=headers
    )
    assert response.status_code == 204, response.text


def test_history_describes_each_change(writable: Writable, auth: dict[str, str]) -> None:
    """After a property edit and a move of 嘉兴南站-like station by ~1 km, history lists versions 1–3: who
    changed what, the comment, the properties changed, and how far the point moved (EPSG:4549, within 1 m
    of the geodesic distance)."""
    path, feature = _station(writable, 3)
    lon, lat = feature["geometry"]["coordinates"]
    _patch(writable, path, auth, {"properties": {"status": "completed"}}, "opened")
    _patch(
        writable, path, auth, {"geometry": {"type": "Point", "coordinates": [lon + 0.01, lat]}}, "surveyed"
    )
    history = writable.client.get(f"{path}/history").json()
    assert [v["version"] for v in history["versions"]] == [1, 2, 3] and not history["deleted"]
    first, second, current = history["versions"]
    assert first["change"]["properties_changed"] == ["status"] and first["change"]["comment"] == "opened"
    assert first["change"]["geometry_moved_m"] == 0
    assert second["change"]["properties_changed"] == [] and second["change"]["by"] == "历史测试 historian"
    _, _, metres = Geod(ellps="GRS80").inv(lon, lat, lon + 0.01, lat)
    assert second["change"]["geometry_moved_m"] == pytest.approx(metres, abs=1.0)
    assert current["state"] == "current"
    old = writable.client.get(first["href"].replace("http://testserver", ""))
    assert old.status_code == 200 and old.json()["properties"] == feature["properties"]


def test_revert_makes_an_old_version_current(writable: Writable, auth: dict[str, str]) -> None:
    """Reverting to version 1 restores its properties and geometry as a new version 3; history keeps 2."""
    path, feature = _station(writable, 4)
    _patch(writable, path, auth, {"properties": {"name_zh": "改错的名字"}})
    response = writable.client.post(f"{path}/revert", params={"to": 1}, headers=auth)
    assert response.status_code == 204 and "v3-" in response.headers["etag"]
    now = writable.client.get(path).json()
    assert now["properties"] == feature["properties"] and now["geometry"] == feature["geometry"]
    versions = writable.client.get(f"{path}/history").json()["versions"]
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert versions[1]["change"]["comment"] == "revert to version 1"


def test_deleted_feature_is_listed_and_restored(writable: Writable, auth: dict[str, str]) -> None:
    """A deleted feature appears in …/deleted with who deleted it; its last version can still be read; the
    restore link brings it back under the same id, as a new version; then it is no longer listed."""
    path, feature = _station(writable, 6)
    assert writable.client.delete(path, headers=auth | {"X-Edit-Comment": "mistake"}).status_code == 204
    listed = writable.client.get(f"/collections/{LAYER}/deleted").json()["deleted"]
    [entry] = [d for d in listed if d["id"] == feature["id"]]
    assert entry["deleted_by"] == "历史测试 historian" and entry["comment"] == "mistake"
    assert writable.client.get(entry["last_version"]).json()["properties"] == feature["properties"]
    assert writable.client.get(f"{path}/history").json()["deleted"] is True
    restored = writable.client.post(entry["restore"].replace("http://testserver", ""), headers=auth)
    assert restored.status_code == 204, restored.text
    back = writable.client.get(path).json()
    assert back["id"] == feature["id"] and back["properties"] == feature["properties"]
    assert feature["id"] not in [
        d["id"] for d in writable.client.get(f"/collections/{LAYER}/deleted").json()["deleted"]
    ]


def test_bad_history_requests(writable: Writable, auth: dict[str, str], problem: Any) -> None:
    """Unknown versions and features are 404; a revert without a valid `to`, to the current version, or
    without a key is refused; nothing changes."""
    path, _ = _station(writable, 7)
    with writable.engine.connect() as conn:
        before = conn.execute(text("SELECT count(*), sum(version) FROM features")).one()
    problem(writable.client.get(path, params={"version": 99}), 404, "history")
    problem(writable.client.get(path, params={"version": "x"}), 400, "version")
    for odd in ("²", "9" * 25):  # a digit int() refuses, and one beyond PostgreSQL's integer: were 500s
        problem(writable.client.get(path, params={"version": odd}), 400, "version")
        problem(writable.client.post(f"{path}/revert", params={"to": odd}, headers=auth), 400, "to")
    problem(writable.client.get(f"/collections/{LAYER}/items/999999999/history"), 404, "never existed")
    problem(writable.client.post(f"{path}/revert", headers=auth), 400, "to=")
    problem(writable.client.post(f"{path}/revert", params={"to": 1}, headers=auth), 400, "current")
    problem(writable.client.post(f"{path}/revert", params={"to": 1}), 401, "Bearer")
    with writable.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*), sum(version) FROM features")).one() == before


def test_revert_to_a_code_now_taken_is_409(writable: Writable, auth: dict[str, str], problem: Any) -> None:
    """Reverting to a version whose code another feature now uses is a 409 naming the code; nothing changes.
    A revert honours If-Match like any write."""
    path_a, a = _station(writable, 8)
    path_b, _ = _station(writable, 9)
    old_code = a["properties"]["code"]
    _patch(writable, path_a, auth, {"properties": {"code": "renamed_for_test"}})
    _patch(writable, path_b, auth, {"properties": {"code": old_code}})
    before = writable.client.get(path_a).json()
    problem(writable.client.post(f"{path_a}/revert", params={"to": 1}, headers=auth), 409, old_code)
    stale = auth | {"If-Match": '"f1v1-x"'.replace("f1", f"f{a['id']}")}
    problem(writable.client.post(f"{path_a}/revert", params={"to": 1}, headers=stale), 412, "version")
    assert writable.client.get(path_a).json() == before
