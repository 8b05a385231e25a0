"""No token and no database password in any log line: every record of every logger (root at DEBUG: uvicorn,
SQLAlchemy, psycopg included) and everything a `jxplan serve` process writes, while writing with a valid key,
sending invalid ones, putting keys in the query string and pointing the service at a wrong password."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from geo_service.app import create_app
from geo_service.catalog import Catalog
from geo_service.editing.keys import add_key
from geo_service.settings import Settings
from tests.conftest import Served, Writable, start_jxplan, wait_until_up
from tests.editing.test_create import _feature
from tests.ops.conftest import Records, kept_records

ITEMS = "/collections/rail_stations/items"
CLIENT_LOGGERS = ("httpx", "httpcore")  # the test's HTTP client, which logs the URLs it requests


def _texts(records: list[logging.LogRecord]) -> list[str]:
    """Every record as any handler could render it: message, arguments, `extra=` fields, traceback."""
    plain = logging.Formatter()
    texts = []
    for record in records:
        if not record.name.startswith(CLIENT_LOGGERS):
            texts.append(f"{record.getMessage()} {record.args!r} {record.__dict__!r}")
            if record.exc_info:
                texts.append(plain.formatException(record.exc_info))
    return texts


@pytest.fixture
def every_record() -> Iterator[Records]:
    """The root logger at DEBUG with a handler that keeps everything, for the duration of a test."""
    with kept_records(None, logging.DEBUG) as handler:
        yield handler


@pytest.fixture(scope="module")
def token(writable: Writable) -> str:
    """An editor's key on the module's private database."""
    return add_key(writable.engine, "日志测试 logs", "editor")


def _password(url: str) -> str:
    password = make_url(url).password
    assert password and len(password) >= 8
    return str(password)


def _wrong_url(writable: Writable, wrong: str) -> str:
    """The private database's URL with another password: the server refuses it."""
    return make_url(writable.engine.url).set(password=wrong).render_as_string(hide_password=False)


def _exercise(client: httpx.Client | TestClient, token: str) -> list[int]:
    """Writes with the valid key, refusals of invalid ones, keys in query strings; the statuses."""
    auth = {"Authorization": f"Bearer {token}"}
    created = client.post(ITEMS, json=_feature(f"logs_{secrets.token_hex(3)}"), headers=auth)
    statuses = [created.status_code]
    if created.status_code == 201:
        feature = created.headers["location"]
        patch = {**auth, "Content-Type": "application/merge-patch+json"}
        statuses.append(
            client.patch(feature, content=b'{"properties":{"status":"completed"}}', headers=patch).status_code
        )
        statuses.append(client.delete(feature, headers=auth).status_code)
    for header in (f"Bearer {token}x", f"Bearer {token[:-4]}", f"Basic {token}", token):
        statuses.append(
            client.post(ITEMS, json=_feature("logs_refused"), headers={"Authorization": header}).status_code
        )
    statuses.append(client.get(ITEMS, params={"token": token, "api_key": token, "limit": 1}).status_code)
    statuses.append(client.get(f"/collections?access_token={token}&key={token}").status_code)
    statuses.append(client.get("/ready").status_code)
    return statuses


def _assert_absent(texts: list[str] | str, *secrets_: str) -> None:
    text = "\n".join(texts) if isinstance(texts, list) else texts
    for secret in secrets_:
        assert secret not in text, f"a secret is logged: …{text[max(0, text.find(secret) - 200) :][:400]}…"


def test_no_secret_in_any_record(
    writable: Writable, token: str, settings: Settings, catalog: Catalog, every_record: Records
) -> None:
    """In-process, every logger at DEBUG: valid writes, invalid keys, keys in URLs, then a service whose
    database URL has a wrong password (readiness, a write): neither token nor password is logged —
    while the requests themselves are (the access lines with the redacted query are there)."""
    statuses = _exercise(writable.client, token)
    assert statuses[:3] == [201, 204, 204] and statuses[3:7] == [401] * 4, statuses
    wrong = secrets.token_urlsafe(12)
    broken = settings.model_copy(update={"database_url": _wrong_url(writable, wrong)})
    with TestClient(create_app(broken, catalog), raise_server_exceptions=False) as client:
        assert client.get("/ready").status_code == 503
        assert (
            client.post(ITEMS, json=_feature("x"), headers={"Authorization": f"Bearer {token}"}).status_code
            >= 500
        )
    texts = _texts(every_record.records)
    assert any("token=REDACTED" in t and "api_key=REDACTED" in t for t in texts)
    assert any("password authentication failed" in t for t in texts)  # the failure itself is logged
    _assert_absent(
        texts, token, _password(str(writable.engine.url.render_as_string(hide_password=False))), wrong
    )


def _start(tmp_path: Path, database_url: str, name: str) -> Served:
    """`jxplan serve` on a free port, every logger at DEBUG, its output into a file."""
    return start_jxplan(tmp_path, name, "serve", DATABASE_URL=database_url, JXPLAN_LOG_LEVEL="debug")


@pytest.fixture(scope="module")
def servers(writable: Writable, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Served]]:
    """Two `jxplan serve` processes started together: on the private database, and on it with a wrong
    password."""
    folder = tmp_path_factory.mktemp("serve")
    good = writable.engine.url.render_as_string(hide_password=False)
    started = {
        "good": _start(folder, good, "good"),
        "refused": _start(folder, _wrong_url(writable, secrets.token_urlsafe(12)), "refused"),
    }
    try:
        for served in started.values():
            wait_until_up(served)
        yield started
    finally:
        for served in started.values():
            served.stop()


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_no_secret_in_serve_output(servers: dict[str, Served], token: str) -> None:
    """`jxplan serve` as a process, at debug level: its start, valid writes, invalid keys, keys in URLs and
    its shutdown write neither token nor password; its log is JSON lines with one access line per request."""
    served = servers["good"]
    with httpx.Client(base_url=served.base, timeout=10) as client:
        statuses = _exercise(client, token)
    text = served.stop()
    assert statuses[:3] == [201, 204, 204] and statuses[-1] == 200, statuses
    _assert_absent(text, token, _password(served.env["DATABASE_URL"]))
    lines = _json_lines(text)
    assert any("Uvicorn running" in line["message"] for line in lines)  # uvicorn's own lines, as JSON
    access = [line for line in lines if line["logger"] == "geo_service.access" and line["route"] != "/health"]
    assert [line["status"] for line in access] == statuses
    assert all(len(line["request_id"]) == 32 and line["duration_ms"] >= 0 for line in access)
    assert not any(line["logger"] == "uvicorn.access" for line in lines)


def test_no_password_when_the_database_refuses_it(servers: dict[str, Served], token: str) -> None:
    """`jxplan serve` given a database URL whose password is wrong: it starts, is not ready, fails the
    requests that need the database, logs why (authentication failed) and never the password."""
    served = servers["refused"]
    with httpx.Client(base_url=served.base, timeout=10) as client:
        assert client.get("/ready").status_code == 503
        assert client.post(ITEMS, json=_feature("x"), headers={"Authorization": f"Bearer {token}"}).is_error
    text = served.stop()
    assert "password authentication failed" in text
    _assert_absent(text, _password(served.env["DATABASE_URL"]), token)
