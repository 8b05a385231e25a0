"""Fixtures of the OGC API tests: the seed features to compare with, a page walker and a problem checker.

Expectations come from the seed files under `layers/` (read here with `json` and `shapely`), never from the
service's own code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from geo_service.app import create_app
from geo_service.catalog import Catalog
from geo_service.settings import Settings

SMALL_DEFAULT_LIMIT = 3
SMALL_MAX_LIMIT = 5


@pytest.fixture(scope="session")
def small_client(settings: Settings, catalog: Catalog) -> Iterator[TestClient]:
    """The app configured with a page size of 3 and a maximum of 5, so limits show on the small layers."""
    small = settings.model_copy(update={"default_limit": SMALL_DEFAULT_LIMIT, "max_limit": SMALL_MAX_LIMIT})
    with TestClient(create_app(small, catalog), raise_server_exceptions=False) as test_client:
        yield test_client


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


@pytest.fixture(scope="session")
def walk() -> Callable[..., list[dict[str, Any]]]:
    """`walk(http, url)`: the pages of a feature collection, following `next` links."""
    return walk_pages
