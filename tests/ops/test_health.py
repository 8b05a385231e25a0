"""`/health` answers without the database; `/ready` only when the database answers (within two seconds, also
when it hangs) and is at the migrations' head, otherwise a 503 problem that says what to do."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from geo_service.app import create_app
from geo_service.catalog import Catalog
from geo_service.db import migrate
from geo_service.db.migrate import head_revisions
from geo_service.settings import Settings
from tests.conftest import check_problem, private_database


def _client(settings: Settings, catalog: Catalog, url: str) -> TestClient:
    return TestClient(
        create_app(settings.model_copy(update={"database_url": url}), catalog), raise_server_exceptions=False
    )


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP port on 127.0.0.1 that takes connections and never answers: a hung database server."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock
    sock.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_health_without_database_and_ready_says_unreachable(settings: Settings, catalog: Catalog) -> None:
    """With nothing listening at the database's address `/health` still answers 200 at once, and `/ready`
    answers 503 with Retry-After, saying the database is not reachable and how to start it."""
    url = f"postgresql+psycopg://jxplan:secret@127.0.0.1:{_closed_port()}/jxplan"
    with _client(settings, catalog, url) as client:
        started = time.monotonic()
        health = client.get("/health")
        assert time.monotonic() - started < 0.5
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert health.headers["cache-control"] == "private, no-store"
        ready = client.get("/ready")
        body = check_problem(ready, 503, "not reachable", "PostgreSQL", "jxplan db start")
        assert ready.headers["retry-after"] == "5"
        assert body["requestId"] == ready.headers["x-request-id"]


def test_ready_is_bounded_when_the_database_hangs(
    settings: Settings, catalog: Catalog, listener: socket.socket
) -> None:
    """A database that accepts the connection and never answers: `/ready` gives 503 within 2 s (plus a
    margin), and the abandoned check holds nothing up: `/health` answers at once."""
    url = f"postgresql+psycopg://jxplan:secret@127.0.0.1:{listener.getsockname()[1]}/jxplan"
    with _client(settings, catalog, url) as client:
        started = time.monotonic()
        response = client.get("/ready")
        assert time.monotonic() - started < 2.6
        check_problem(response, 503, "database", "not reachable within 2 s")
        started = time.monotonic()
        assert client.get("/health").status_code == 200
        assert time.monotonic() - started < 0.5
        listener.close()  # connection attempts end now, so the pool closes at once


def test_ready_when_at_head(client: TestClient) -> None:
    """On a migrated database `/ready` is 200 and names the revision it is at, the migrations' head."""
    response = client.get("/ready")
    assert response.status_code == 200, response.text
    (head,) = head_revisions()
    assert response.json() == {"status": "ready", "database": "reachable", "migration": head}
    assert response.headers["cache-control"] == "private, no-store"


def test_ready_names_the_migration_to_apply(
    server_url: str, settings: Settings, catalog: Catalog, tmp_path: Path
) -> None:
    """A database one migration behind: 503 naming both revisions and `jxplan db upgrade`; with none
    applied: 503 too; once upgraded the same running service is ready, without a restart."""
    (head,) = head_revisions()
    with private_database(server_url, "ready") as url, _client(settings, catalog, url) as client:
        assert client.get("/ready").status_code == 200
        migrate.downgrade(url, "-1")
        behind = migrate.current_revision(url)
        assert behind and behind != head
        check_problem(client.get("/ready"), 503, behind, head, "jxplan db upgrade")
        migrate.downgrade(url, "base")
        check_problem(client.get("/ready"), 503, "no migration", "jxplan db upgrade")
        migrate.upgrade(url)
        assert client.get("/ready").status_code == 200


def test_openapi_lists_health_and_ready(client: TestClient) -> None:
    """The API document declares `/health`, `/ready` (200, 503 problem) and `/metrics`."""
    paths = client.get("/api", params={"f": "json"}).json()["paths"]
    assert set(paths["/health"]["get"]["responses"]) == {"200"}
    assert set(paths["/ready"]["get"]["responses"]) == {"200", "503"}
    assert "application/problem+json" in paths["/ready"]["get"]["responses"]["503"]["content"]
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
