"""Read replicas for real: the embedded test cluster with a streaming replica started as `jxplan db replica
start` starts one; reads go to the replica, a write's JXPlan-Read-After makes the next read see it, and a
replica killed mid-test costs no error."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.engine import make_url

from geo_service.app import create_app
from geo_service.catalog import Catalog
from geo_service.db.embedded import EmbeddedCluster
from geo_service.db.engine import libpq_url, sync_engine
from geo_service.db.replicas import READ_AFTER_COOKIE, READ_AFTER_HEADER, format_lsn, parse_lsn
from geo_service.db.standby import Standby
from geo_service.editing.keys import add_key
from geo_service.loader import load
from geo_service.settings import PROJECT_ROOT, Settings
from tests.conftest import check_problem, private_database

LAYER = "rail_stations"
MERGE = "application/merge-patch+json"


@dataclass
class Setup:
    client: TestClient
    standby: Standby
    replica_url: str
    primary_url: str
    auth: dict[str, str]
    fid: int = 0

    @property
    def replica(self) -> str:
        return f"127.0.0.1:{make_url(self.replica_url).port}"


def _until(check: Any, what: str, within_s: float = 20.0) -> Any:
    """Wait for `check()` to give something true (a wait, not a timed assertion: it only bounds a hang)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def _metric(client: TestClient, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in client.get("/metrics").text.splitlines():
        key, _, value = line.rpartition(" ")
        if key == (f"{name}{{{want}}}" if want else name):
            return float(value)
    return 0.0


def _replica_state(client: TestClient) -> str:
    body = client.get("/ready").json()
    return str(body["replicas"][0]["state"])


@pytest.fixture(scope="module")
def setup(server_url: str, catalog: Catalog, settings: Settings) -> Iterator[Setup]:
    cluster = EmbeddedCluster(PROJECT_ROOT / ".data")
    with private_database(server_url, "replicas") as url:
        engine = sync_engine(url)
        load(engine, catalog)
        auth = {"Authorization": f"Bearer {add_key(engine, '副本测试 replicas', 'editor')}"}
        engine.dispose()
        standby = Standby(cluster, f"test{os.getpid()}")
        standby.start()
        try:
            replica_url = make_url(standby.url()).set(database=make_url(url).database)
            replica = replica_url.render_as_string(hide_password=False)
            private = settings.model_copy(
                update={
                    "database_url": url,
                    "read_database_urls": [replica],
                    "replica_check_ms": 100,
                    "replica_retry_ms": 300,
                }
            )
            with TestClient(create_app(private, catalog), raise_server_exceptions=False) as client:
                _until(lambda: _replica_state(client) == "up", "the replica is used")
                first = client.get(f"/collections/{LAYER}/items", params={"limit": 1}).json()
                yield Setup(client, standby, replica, url, auth, int(first["features"][0]["id"]))
        finally:
            standby.remove()


def _feature(setup: Setup, token: str | None = None) -> dict[str, Any]:
    setup.client.cookies.clear()
    headers = {} if token is None else {READ_AFTER_HEADER: token}
    response = setup.client.get(f"/collections/{LAYER}/items/{setup.fid}", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_reads_go_to_the_replica(setup: Setup) -> None:
    before = _metric(setup.client, "jxplan_reads_total", target=setup.replica)
    for path in (f"/collections/{LAYER}/items", f"/collections/{LAYER}/items/{setup.fid}"):
        assert setup.client.get(path).status_code == 200
    assert _metric(setup.client, "jxplan_reads_total", target=setup.replica) == before + 2
    assert _metric(setup.client, "jxplan_replica_up", replica=setup.replica) == 1


def test_a_write_is_read_back_from_the_primary_while_the_replica_lags(setup: Setup) -> None:
    with psycopg.connect(libpq_url(setup.replica_url), autocommit=True) as replica:
        replica.execute("SELECT pg_wal_replay_pause()")
        try:
            old = _feature(setup)["properties"]["name_zh"]
            setup.client.cookies.clear()
            changed = setup.client.patch(
                f"/collections/{LAYER}/items/{setup.fid}",
                content=json.dumps({"properties": {"name_zh": old + "(副本)"}}, ensure_ascii=False),
                headers=setup.auth | {"Content-Type": MERGE},
            )
            assert changed.status_code == 204, changed.text
            token = changed.headers[READ_AFTER_HEADER]
            assert parse_lsn(token) > 0
            cookie = changed.headers["set-cookie"]
            assert f"{READ_AFTER_COOKIE}={token}" in cookie and "HttpOnly" in cookie and "Path=/" in cookie
            primary_reads = _metric(setup.client, "jxplan_reads_total", target="primary")
            # with the token (header, or the cookie a browser sends back): the write, from the primary
            assert _feature(setup, token)["properties"]["name_zh"] == old + "(副本)"
            setup.client.cookies.set(READ_AFTER_COOKIE, token)
            response = setup.client.get(f"/collections/{LAYER}/items/{setup.fid}")
            assert response.json()["properties"]["name_zh"] == old + "(副本)"
            assert _metric(setup.client, "jxplan_reads_total", target="primary") == primary_reads + 2
            # without: the paused replica, which has not replayed the write
            assert _feature(setup)["properties"]["name_zh"] == old
        finally:
            replica.execute("SELECT pg_wal_replay_resume()")
    _until(
        lambda: _feature(setup)["properties"]["name_zh"] == old + "(副本)", "the replica replays the write"
    )


def test_a_bad_read_after_token_is_a_400_and_changes_nothing(setup: Setup) -> None:
    before = _feature(setup)
    for bad in ("yesterday", "0/ZZ", "1/2/3", "123456789/0"):
        response = setup.client.get(
            f"/collections/{LAYER}/items/{setup.fid}", headers={READ_AFTER_HEADER: bad}
        )
        check_problem(response, 400, READ_AFTER_HEADER)
    setup.client.cookies.set(READ_AFTER_COOKIE, "not-an-lsn")
    check_problem(setup.client.get(f"/collections/{LAYER}/items"), 400, READ_AFTER_COOKIE)
    assert _feature(setup) == before


def test_a_killed_replica_costs_no_error_and_is_used_again_when_back(setup: Setup) -> None:
    setup.standby.stop(immediate=True)
    try:
        statuses = set()
        for _ in range(10):
            setup.client.cookies.clear()
            for path in (
                f"/collections/{LAYER}/items",
                f"/collections/{LAYER}/items/{setup.fid}",
                "/tiles/WebMercatorQuad/8/107/213",
            ):
                statuses.add(setup.client.get(path).status_code)
        assert statuses <= {200, 204}, statuses  # 204: an empty tile
        assert setup.client.get(f"/collections/{LAYER}/items").status_code == 200
        _until(lambda: _replica_state(setup.client) == "down", "/ready says the replica is down")
        ready = setup.client.get("/ready")
        assert ready.status_code == 200
        assert _metric(setup.client, "jxplan_replica_up", replica=setup.replica) == 0
    finally:
        setup.standby.start()
    _until(lambda: _replica_state(setup.client) == "up", "the restarted replica is used again")
    before = _metric(setup.client, "jxplan_reads_total", target=setup.replica)
    assert setup.client.get(f"/collections/{LAYER}/items").status_code == 200
    assert _metric(setup.client, "jxplan_reads_total", target=setup.replica) == before + 1


def _on_replica(setup: Setup, sql: str) -> Any:
    with psycopg.connect(libpq_url(setup.replica_url), autocommit=True) as conn:
        return conn.execute(sql).fetchone()


def test_a_read_running_on_a_replica_that_dies_is_answered_from_the_primary(setup: Setup) -> None:
    """A read waiting on the replica when the replica is killed is read again from the primary: 200.

    An exclusive lock taken on the primary is replayed on the replica, so a read there waits until the
    replica is killed; the lock is then released on the primary, where the read is retried."""
    primary = sync_engine(setup.primary_url)
    answer: dict[str, Any] = {}
    reader = threading.Thread(
        target=lambda: answer.update(response=setup.client.get(f"/collections/{LAYER}/items/{setup.fid}"))
    )
    try:
        with primary.connect() as locker:
            locker.execute(text("LOCK TABLE features IN ACCESS EXCLUSIVE MODE"))
            with primary.begin() as other:  # a commit sends the lock's WAL record on to the replica
                other.execute(text("SELECT pg_current_xact_id()"))
            _until(
                lambda: _on_replica(
                    setup,
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                    " WHERE c.relname = 'features' AND l.mode = 'AccessExclusiveLock' AND l.granted",
                )[0],
                "the primary's lock is replayed on the replica",
            )
            setup.client.cookies.clear()
            reader.start()
            _until(
                lambda: _on_replica(
                    setup, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                )[0],
                "the read waits on the replica",
            )
            setup.standby.stop(immediate=True)
            locker.rollback()
        reader.join(timeout=30)
        assert answer["response"].status_code == 200, answer["response"].text
        assert answer["response"].json()["id"] == setup.fid
    finally:
        primary.dispose()
        setup.standby.start()
    _until(lambda: _replica_state(setup.client) == "up", "the restarted replica is used again")


def test_the_replica_really_is_a_replica(setup: Setup) -> None:
    engine = sync_engine(setup.replica_url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT pg_is_in_recovery()")) is True
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("postgresql://u:secret@h/db,,postgresql://u@h2/db", "empty"),
        ("mysql://u:secret@h/db", "not a PostgreSQL URL"),
        ("h:5432/db", "not a PostgreSQL URL"),
        ("postgresql://u@h/db,postgresql://u@h/db", "twice"),
    ],
)
def test_bad_replica_url_lists_are_refused_clearly(value: str, words: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(read_database_urls=value)
    message = raised.value.errors()[0]["msg"]
    assert words in message and "secret" not in message


def test_replica_urls_are_read_comma_separated() -> None:
    settings = Settings(read_database_urls=" postgresql://u@a/db , postgres://u@b:5433/db ")
    assert settings.read_database_urls == ["postgresql://u@a/db", "postgres://u@b:5433/db"]
    assert Settings(read_database_urls="").read_database_urls == []


def test_lsn_text_round_trips() -> None:
    for lsn in ("0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF"):
        assert format_lsn(parse_lsn(lsn)) == lsn
    assert parse_lsn("1/0") > parse_lsn("0/FFFFFFFF")
