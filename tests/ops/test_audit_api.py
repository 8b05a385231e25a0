"""`GET /audit`: the newest entries for an admin key; 401 without a key, 403 for any other role."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import text

from geo_service.editing.keys import add_key
from tests.conftest import Writable, check_problem


@pytest.fixture(scope="module")
def admin(writable: Writable) -> dict[str, str]:
    """The headers of an admin key, after a few audited requests."""
    token = add_key(writable.engine, "管理员 admin", "admin")
    for n in range(3):
        writable.client.delete("/collections/rail_stations/items/1", headers={"X-Request-Id": f"probe-{n}"})
    with writable.engine.begin() as conn:  # an old entry, outside the default day
        conn.execute(
            text(
                "INSERT INTO audit_log (at, action, outcome, status, detail)"
                " VALUES (now() - interval '3 days', 'delete', 'success', 204, 'old')"
            )
        )
    return {"Authorization": f"Bearer {token}"}


def test_admin_reads_the_newest_entries(writable: Writable, admin: dict[str, str]) -> None:
    """Entries of the last day, newest first; `limit` bounds them, `since` reaches further back."""
    response = writable.client.get("/audit", headers=admin)
    assert response.status_code == 200 and response.headers["cache-control"] == "private, no-store"
    body = response.json()
    ids = [e["request_id"] for e in body["entries"]]
    assert ids[:3] == ["probe-2", "probe-1", "probe-0"]
    assert "old" not in [e["detail"] for e in body["entries"]]
    times = [datetime.fromisoformat(e["at"]) for e in body["entries"]]
    assert times == sorted(times, reverse=True) and body["numberReturned"] == len(times)
    assert writable.client.get("/audit?limit=1", headers=admin).json()["numberReturned"] == 1
    week = writable.client.get("/audit?since=7d&limit=1000", headers=admin).json()["entries"]
    assert "old" in [e["detail"] for e in week]
    assert not any(key.startswith("key_hash") for e in week for key in e)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("since=lately", ["since", "90d"]),
        ("limit=0", ["limit", "1000"]),
        ("limit=x", ["limit"]),
        ("who=me", ["who"]),
    ],
)
def test_bad_parameters_are_400(
    writable: Writable, admin: dict[str, str], query: str, words: list[str]
) -> None:
    """A since that is not a time, a limit out of range or an unknown parameter: 400 naming it."""
    check_problem(writable.client.get(f"/audit?{query}", headers=admin), 400, *words)


def test_only_admin_keys_read_it(writable: Writable) -> None:
    """No key: 401; an editor's key: 403 naming the role needed."""
    editor = add_key(writable.engine, "编辑 not admin", "editor")
    check_problem(writable.client.get("/audit"), 401, "Bearer")
    check_problem(writable.client.get("/audit", headers={"Authorization": f"Bearer {editor}"}), 403, "admin")
