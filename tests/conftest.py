"""Shared fixtures: a real PostGIS (the embedded cluster, or TEST_DATABASE_URL), the app, a live server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from geo_service.app import create_app
from geo_service.catalog import Catalog, load_catalog
from geo_service.db import migrate
from geo_service.db.embedded import EmbeddedCluster
from geo_service.db.engine import drop_database, ensure_database, normalize_url, sync_engine
from geo_service.loader import load
from geo_service.settings import PROJECT_ROOT, Settings

OUTPUT = PROJECT_ROOT / "tests" / "output"


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """URL of a PostgreSQL server with PostGIS (its default database); the embedded cluster unless
    TEST_DATABASE_URL names another."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield normalize_url(given)
        return
    cluster = EmbeddedCluster(PROJECT_ROOT / ".data")
    started = cluster.start()
    yield cluster.url("postgres")
    if started:
        cluster.stop()


@contextlib.contextmanager
def private_database(server_url: str, name: str) -> Iterator[str]:
    """A new, empty, migrated database on the test server, dropped afterwards.

    Named after this process too, so that concurrent test runs never share (or drop) each other's.
    """
    database = f"jxplan_test_{name}_{os.getpid()}"
    url = make_url(server_url).set(database=database).render_as_string(hide_password=False)
    drop_database(url)
    ensure_database(url)
    migrate.upgrade(url)
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def private_url(server_url: str) -> Iterator[str]:
    """URL of a fresh database migrated to head, for tests that write (never the shared one)."""
    with private_database(server_url, "private") as url:
        yield url


@pytest.fixture
def private_engine(private_url: str) -> Iterator[Engine]:
    """An engine on the fresh private database."""
    engine = sync_engine(private_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The real catalogue of `layers/` and `maps/`."""
    return load_catalog(PROJECT_ROOT / "layers", PROJECT_ROOT / "maps")


@pytest.fixture(scope="session")
def seeds(catalog: Catalog) -> dict[str, dict[str, dict[str, Any]]]:
    """Every layer's seed features keyed by `code`, in file order, read straight from the GeoJSON files."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for layer_id, layer in catalog.layers.items():
        doc = json.loads(catalog.layer_file(layer).read_text(encoding="utf-8"))
        out[layer_id] = {f["properties"]["code"]: f for f in doc["features"]}
    return out


@pytest.fixture(scope="session")
def database_url(server_url: str, catalog: Catalog) -> Iterator[str]:
    """The shared test database, migrated and loaded with every layer: read-only for tests."""
    with private_database(server_url, "shared") as url:
        engine = sync_engine(url)
        load(engine, catalog)
        engine.dispose()
        yield url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    """A synchronous engine on the shared test database."""
    eng = sync_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings pointing at the shared test database."""
    return Settings(database_url=database_url, data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def client(settings: Settings, catalog: Catalog) -> Iterator[TestClient]:
    """An HTTP client calling the app in-process."""
    with TestClient(create_app(settings, catalog), raise_server_exceptions=False) as test_client:
        yield test_client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_server(app: FastAPI) -> Iterator[str]:
    """Serve `app` with uvicorn on a free port of 127.0.0.1 for the duration; yields its base URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


JXPLAN = Path(sys.executable).parent / "jxplan"


class Served(NamedTuple):
    """A `jxplan` process that serves: the process, its base URL, the file its output goes to, its env."""

    process: subprocess.Popen[bytes]
    base: str
    output: Path
    env: dict[str, str]

    def stop(self, sig: signal.Signals = signal.SIGINT) -> str:
        """Stop it as Ctrl-C does (or with `sig`); everything it wrote."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.output.read_text()


def start_jxplan(folder: Path, name: str, *args: str, **env: str) -> Served:
    """`jxplan *args` (e.g. "serve") on a free port of 127.0.0.1 with `env` added (its data dir in `folder`
    unless given), its output into `folder/name.log`; wait for it with `wait_until_up`."""
    port = _free_port()
    env = {"PORT": str(port), "JXPLAN_HOST": "127.0.0.1", "JXPLAN_DATA_DIR": str(folder / "data")} | env
    output = folder / f"{name}.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [str(JXPLAN), *args], env=os.environ | env, stdout=sink, stderr=subprocess.STDOUT
        )
    return Served(process, f"http://127.0.0.1:{port}", output, env)


def wait_until_up(served: Served, timeout_s: float = 60) -> None:
    """Wait until `served` answers /health; stop it and fail with its output if it does not."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{served.base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or served.process.poll() is not None:
            raise RuntimeError(f"jxplan did not start:\n{served.stop()}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def live_server(settings: Settings, catalog: Catalog) -> Iterator[str]:
    """The service on a real socket, for real clients (GDAL, OWSLib, the browser)."""
    with running_server(create_app(settings, catalog)) as base:
        yield base


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """Where tests write screenshots and files for people to look at (git-ignored)."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT


class Writable(NamedTuple):
    """The app on a private loaded database that tests may change, and an engine on that database."""

    client: TestClient
    engine: Engine


@pytest.fixture(scope="module")
def writable(
    request: pytest.FixtureRequest, server_url: str, catalog: Catalog, settings: Settings
) -> Iterator[Writable]:
    """A private copy of the loaded layers (never the shared database) served by its own app, per module."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    with private_database(server_url, f"ogc_{module}") as url:
        engine = sync_engine(url)
        load(engine, catalog)
        private = settings.model_copy(update={"database_url": url})
        with TestClient(create_app(private, catalog), raise_server_exceptions=False) as test_client:
            yield Writable(test_client, engine)
        engine.dispose()


PROBLEM_JSON = "application/problem+json"


def check_problem(response: Response, status: int, *words: str) -> dict[str, Any]:
    """Assert an RFC 9457 problem with `status` whose detail mentions every one of `words`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0].strip() == PROBLEM_JSON
    body = response.json()
    assert body["status"] == status
    assert body.get("title")
    detail = body.get("detail", "")
    assert len(detail) >= 20, f"detail too short to help: {detail!r}"
    for word in words:
        assert word.lower() in detail.lower(), f"{word!r} not in detail {detail!r}"
    return body


@pytest.fixture(scope="session")
def problem() -> Callable[..., dict[str, Any]]:
    """`problem(response, status, *words)`: checks a problem+json answer and returns its body."""
    return check_problem


def database_state(engine: Engine) -> tuple[Any, ...]:
    """Everything a refused request must leave as it was: each layer's version and count, every feature's
    properties, geometry and version, and the length of history."""
    with engine.connect() as conn:
        layers = tuple(
            tuple(r) for r in conn.execute(text("SELECT id, version, feature_count FROM layers ORDER BY id"))
        )
        features = tuple(
            tuple(r)
            for r in conn.execute(
                text("SELECT id, version, properties::text, ST_AsEWKB(geom) FROM features ORDER BY id")
            )
        )
        history = conn.execute(text("SELECT count(*) FROM feature_history")).scalar_one()
    return layers, features, history
