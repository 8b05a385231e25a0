"""Keys that expire: refused with 401 saying when they expired, nothing written; use is recorded cheaply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from geo_service.editing.keys import KeyProblem, add_key
from tests.conftest import Writable, check_problem, database_state

MERGE = {"Content-Type": "application/merge-patch+json"}


def _first(writable: Writable, layer: str = "rail_stations") -> int:
    with writable.engine.connect() as conn:
        fid: int = conn.execute(
            text("SELECT min(id) FROM features WHERE layer_id = :l"), {"l": layer}
        ).scalar_one()
    return fid


def test_an_expired_key_is_refused_and_writes_nothing(writable: Writable) -> None:
    """A key works until its expiry; after it every write is 401 naming the key and when it expired, and
    the data is unchanged."""
    token = add_key(
        writable.engine, "过期 expiring", "editor", expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    path = f"/collections/rail_stations/items/{_first(writable)}"
    auth = {"Authorization": f"Bearer {token}"} | MERGE
    assert (
        writable.client.patch(path, headers=auth, json={"properties": {"name_en": "before"}}).status_code
        == 204
    )
    with writable.engine.begin() as conn:  # the hour passes
        conn.execute(
            text("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE name = '过期 expiring'")
        )
        expired_at = conn.execute(
            text("SELECT expires_at FROM api_keys WHERE name = '过期 expiring'")
        ).scalar_one()
    before = database_state(writable.engine)
    for response in (
        writable.client.patch(path, headers=auth, json={"properties": {"name_en": "after"}}),
        writable.client.delete(path, headers=auth),
        writable.client.get("/auth/key", headers=auth),
    ):
        body = check_problem(
            response, 401, "expired", "过期 expiring", expired_at.isoformat(timespec="seconds")
        )
        assert body["expired_at"] == expired_at.isoformat(timespec="seconds")
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert database_state(writable.engine) == before


def test_an_expiry_in_the_past_is_refused(writable: Writable) -> None:
    """A key cannot be made already expired."""
    try:
        add_key(writable.engine, "昨天 yesterday", "editor", expires_at=datetime.now(UTC) - timedelta(days=1))
    except KeyProblem as exc:
        assert "already passed" in str(exc)
    else:
        raise AssertionError("a key expiring yesterday was added")
    with writable.engine.connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM api_keys WHERE name = '昨天 yesterday'")).scalar_one()
            == 0
        )


def test_last_use_is_recorded_at_most_once_a_minute(writable: Writable) -> None:
    """The first authenticated request sets last_used_at; more within the minute do not write the row again
    (its xmin stays), a request a minute later does."""
    token = add_key(writable.engine, "使用 user", "editor")
    auth = {"Authorization": f"Bearer {token}"}

    def stamp() -> tuple[datetime | None, str]:
        with writable.engine.connect() as conn:
            row = conn.execute(
                text("SELECT last_used_at, xmin::text FROM api_keys WHERE name = '使用 user'")
            ).one()
        return row.last_used_at, row.xmin

    assert stamp()[0] is None
    assert writable.client.get("/auth/key", headers=auth).json()["name"] == "使用 user"
    first = stamp()
    assert first[0] is not None and datetime.now(UTC) - first[0] < timedelta(minutes=1)
    for _ in range(3):
        writable.client.get("/auth/key", headers=auth)
    assert stamp() == first
    with writable.engine.begin() as conn:
        conn.execute(
            text("UPDATE api_keys SET last_used_at = now() - interval '2 minutes' WHERE name = '使用 user'")
        )
    writable.client.get("/auth/key", headers=auth)
    later = stamp()[0]
    assert later is not None and datetime.now(UTC) - later < timedelta(minutes=1)
