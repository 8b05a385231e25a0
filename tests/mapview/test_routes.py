"""The map routes on a throwaway app: the index, a map page, an unknown map."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.testclient import TestClient

from geo_service.catalog import Catalog
from geo_service.errors import PROBLEM_JSON, NotFound, Problem
from geo_service.mapview import routes
from geo_service.settings import Settings


@pytest.fixture(scope="module")
def routes_client(catalog: Catalog) -> TestClient:
    """The map routes on a throwaway app that records the problems it renders."""
    app = FastAPI()
    app.state.catalog = catalog
    app.state.settings = Settings(basemap="none", tianditu_key=None)
    seen: list[Problem] = []
    app.state.problems = seen

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        seen.append(exc)
        return JSONResponse(exc.body(request.url.path), status_code=exc.status, media_type=PROBLEM_JSON)

    app.include_router(routes.router)
    return TestClient(app)


def test_index_lists_every_map(routes_client: TestClient, catalog: Catalog) -> None:
    response = routes_client.get("/maps")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    for doc in catalog.maps.values():
        assert f'href="/maps/{doc.id}"' in response.text
        assert doc.title.zh in response.text and doc.title.en in response.text
    assert '<html lang="zh-CN">' in response.text
    links = [response.text.index(f'href="/maps/{doc_id}"') for doc_id in catalog.maps]
    assert min(links) == response.text.index('href="/maps/overview"')  # the overview comes first


def test_map_page(routes_client: TestClient, catalog: Catalog) -> None:
    response = routes_client.get("/maps/overview")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert catalog.maps["overview"].title.zh in response.text
    assert "jxplan.planLayer(" in response.text


def test_unknown_map_is_not_found(routes_client: TestClient) -> None:
    response = routes_client.get("/maps/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert isinstance(routes_client.app.state.problems[-1], NotFound)  # type: ignore[attr-defined]
    assert "nope" in response.json()["detail"]
