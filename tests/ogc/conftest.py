"""Fixtures of the OGC API tests: the seed features to compare with, a page walker and a problem checker.

Expectations come from the seed files under `layers/` (read here with `json` and `shapely`), never from the
service's own code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine

from geo_service.app import create_app
from geo_service.catalog import Catalog
from geo_service.db.engine import sync_engine
from geo_service.loader import load
from geo_service.settings import Settings
from tests.conftest import private_database

PROBLEM_JSON = "application/problem+json"
SMALL_DEFAULT_LIMIT = 3
SMALL_MAX_LIMIT = 5


@pytest.fixture(scope="session")
def small_client(settings: Settings, catalog: Catalog) -> Iterator[TestClient]:
    """The app configured with a page size of 3 and a maximum of 5, so limits show on the small layers."""
    small = settings.model_copy(update={"default_limit": SMALL_DEFAULT_LIMIT, "max_limit": SMALL_MAX_LIMIT})
    with TestClient(create_app(small, catalog), raise_server_exceptions=False) as test_client:
        yield test_client


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


def walk_pages(http: TestClient, url: str, max_pages: int = 500) -> list[dict[str, Any]]:
    """Every page from `url` on, following `next` links until there is none."""
    pages: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url is not None:
        response = http.get(next_url)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        assert len(pages) <= max_pages, "the next links never end"
        nexts = [link for link in page["links"] if link["rel"] == "next"]
        assert len(nexts) <= 1
        next_url = nexts[0]["href"] if nexts else None
    return pages


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
def walk() -> Callable[..., list[dict[str, Any]]]:
    """`walk(http, url)`: the pages of a feature collection, following `next` links."""
    return walk_pages


@pytest.fixture(scope="session")
def problem() -> Callable[..., dict[str, Any]]:
    """`problem(response, status, *words)`: checks a problem+json answer and returns its body."""
    return check_problem
