"""Failed authentication is limited per client address: 429 with Retry-After, even with a correct key, until
the window passes; X-Forwarded-For is believed only from the proxies the settings name."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geo_service.app import create_app
from geo_service.catalog import Catalog
from geo_service.db.engine import sync_engine
from geo_service.editing.keys import add_key
from geo_service.loader import load
from geo_service.security.ratelimit import AuthFailures
from geo_service.settings import Settings
from tests.conftest import check_problem, database_state, private_database, running_server

LIMIT = 3
WINDOW_S = 2


class Guarded(NamedTuple):
    """The service on a real socket behind a "proxy" (127.0.0.1 is trusted), its engine, an editor key."""

    base: str
    engine: Engine
    key: str
    settings: Settings
    catalog: Catalog


@pytest.fixture(scope="module")
def guarded(server_url: str, catalog: Catalog, settings: Settings) -> Iterator[Guarded]:
    """A private loaded database served with a limit of 3 failures per 2 s, trusting 127.0.0.1 as a proxy."""
    with private_database(server_url, "ratelimit") as url:
        engine = sync_engine(url)
        load(engine, catalog)
        key = add_key(engine, "限流 limited", "editor")
        private = settings.model_copy(
            update={
                "database_url": url,
                "auth_failures": LIMIT,
                "auth_window_s": WINDOW_S,
                "trusted_proxies": Settings.model_validate({"trusted_proxies": "127.0.0.1"}).trusted_proxies,
            }
        )
        with running_server(create_app(private, catalog)) as base:
            yield Guarded(base, engine, key, private, catalog)
        engine.dispose()


def _feature_path(engine: Engine) -> str:
    with engine.connect() as conn:
        fid = conn.execute(text("SELECT min(id) FROM features WHERE layer_id = 'rail_stations'")).scalar_one()
    return f"/collections/rail_stations/items/{fid}"


def _patch(base: str, path: str, token: str, client_ip: str) -> httpx.Response:
    return httpx.patch(
        base + path,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/merge-patch+json",
            "X-Forwarded-For": f"198.51.100.7, {client_ip}",  # the left one is the client's own claim
        },
        json={"properties": {"name_en": "renamed"}},
        timeout=30,
    )


def test_failures_lock_the_address_out_even_with_a_correct_key(guarded: Guarded) -> None:
    """After 3 bad keys from one address a correct key gets 429 with Retry-After and nothing is written;
    another address is not affected; once the window has passed the correct key works again."""
    path = _feature_path(guarded.engine)
    for _ in range(LIMIT):
        check_problem(_patch(guarded.base, path, "jxp_wrong", "203.0.113.10"), 401, "not valid")
    before = database_state(guarded.engine)
    locked = _patch(guarded.base, path, guarded.key, "203.0.113.10")
    body = check_problem(locked, 429, "wait", "try again")
    assert 1 <= int(locked.headers["retry-after"]) <= WINDOW_S
    assert body["retry_after_s"] == int(locked.headers["retry-after"])
    assert database_state(guarded.engine) == before
    with guarded.engine.connect() as conn:  # refusals audited under the address the proxy names
        refusals = conn.execute(
            text("SELECT status, key_name FROM audit_log WHERE client = '203.0.113.10' ORDER BY id")
        ).all()
    assert [tuple(r) for r in refusals] == [(401, None)] * LIMIT + [(429, None)]
    assert _patch(guarded.base, path, guarded.key, "203.0.113.11").status_code == 204  # another client
    time.sleep(int(locked.headers["retry-after"]) + 0.2)
    assert _patch(guarded.base, path, guarded.key, "203.0.113.10").status_code == 204


def test_failures_spread_out_beyond_the_window_do_not_lock(guarded: Guarded) -> None:
    """Failures count only within the window: two, a pause longer than the window, two more: no lockout."""
    path = _feature_path(guarded.engine)
    for _ in range(LIMIT - 1):
        check_problem(_patch(guarded.base, path, "jxp_wrong", "203.0.113.20"), 401)
    time.sleep(WINDOW_S + 0.2)
    for _ in range(LIMIT - 1):
        check_problem(_patch(guarded.base, path, "jxp_wrong", "203.0.113.20"), 401)
    assert _patch(guarded.base, path, guarded.key, "203.0.113.20").status_code == 204


def test_reads_and_missing_keys_are_not_limited(guarded: Guarded) -> None:
    """A locked-out address still reads; requests without any key are 401 but are not guesses."""
    path = _feature_path(guarded.engine)
    for _ in range(LIMIT):
        _patch(guarded.base, path, "jxp_wrong", "203.0.113.30")
    headers = {"X-Forwarded-For": "203.0.113.30"}
    assert httpx.get(guarded.base + path, headers=headers, timeout=30).status_code == 200
    for _ in range(LIMIT + 1):
        response = httpx.delete(guarded.base + path, headers={"X-Forwarded-For": "203.0.113.31"}, timeout=30)
        check_problem(response, 401, "Bearer")


def test_forwarded_for_is_ignored_from_an_untrusted_peer(guarded: Guarded) -> None:
    """Without a trusted proxy in front, X-Forwarded-For is the client's own claim: changing it does not
    escape the lockout (the in-process client's peer, `testclient`, is not a trusted proxy)."""
    path = _feature_path(guarded.engine)
    with TestClient(create_app(guarded.settings, guarded.catalog)) as client:
        for n in range(LIMIT):
            response = client.patch(
                path,
                headers={"Authorization": "Bearer jxp_wrong", "X-Forwarded-For": f"192.0.2.{n}"},
                json={},
            )
            check_problem(response, 401)
        before = database_state(guarded.engine)
        response = client.patch(
            path,
            headers={
                "Authorization": f"Bearer {guarded.key}",
                "X-Forwarded-For": "192.0.2.99",
                "Content-Type": "application/merge-patch+json",
            },
            json={"properties": {"name_en": "spoofed"}},
        )
        check_problem(response, 429)
        assert database_state(guarded.engine) == before


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_and_the_lockout() -> None:
    """The n-th failure within the window locks for one window; older failures age out."""
    clock = Clock()
    failures = AuthFailures(limit=3, window_s=60, clock=clock)
    failures.failed("a")
    clock.now += 59
    failures.failed("a")
    assert failures.retry_after("a") is None
    clock.now += 2  # the first failure is now older than the window
    failures.failed("a")
    assert failures.retry_after("a") is None
    failures.failed("a")
    assert failures.retry_after("a") == 60
    assert failures.retry_after("b") is None
    clock.now += 59.5
    assert failures.retry_after("a") == 1
    clock.now += 0.5
    assert failures.retry_after("a") is None


def test_the_problem_names_the_wait() -> None:
    """The 429 says how long to wait, in its detail and in Retry-After."""
    problem = AuthFailures(10, 60).problem(42)
    body: dict[str, Any] = problem.body()
    assert problem.status == 429 and problem.headers["Retry-After"] == "42"
    assert "42 s" in body["detail"] and "10 per 60 s" in body["detail"]
