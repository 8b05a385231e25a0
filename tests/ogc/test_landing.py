"""The landing page `/`: the links clients start from, its formats and its parameter checks."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

OPENAPI_30 = "application/vnd.oai.openapi+json;version=3.0"


def _links(doc: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    by_rel: dict[str, list[dict[str, str]]] = {}
    for link in doc["links"]:
        by_rel.setdefault(link["rel"], []).append(link)
    return by_rel


def test_landing_is_json_by_default(client: TestClient) -> None:
    """Without Accept or f the landing page is JSON with a title and links."""
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == "application/json"
    doc = response.json()
    assert doc["title"]
    assert doc["links"]


def test_landing_has_the_links_clients_need(client: TestClient) -> None:
    """service-desc (typed as OpenAPI 3.0), conformance and data links exist, each typed, absolute."""
    links = _links(client.get("/").json())
    assert [link["type"] for link in links["service-desc"]] == [OPENAPI_30]
    assert [link["type"] for link in links["conformance"]] == ["application/json"]
    assert [link["type"] for link in links["data"]] == ["application/json"]
    for group in links.values():
        for link in group:
            assert link["href"].startswith("http://testserver/"), link
            assert link["type"], link


def test_landing_self_and_alternate(client: TestClient) -> None:
    """JSON is `self`, HTML the one `alternate`."""
    links = _links(client.get("/").json())
    assert [link["type"] for link in links["self"]] == ["application/json"]
    assert [link["type"] for link in links["alternate"]] == ["text/html"]


def test_landing_links_resolve_to_their_type(client: TestClient) -> None:
    """Every landing link answers 200 with the media type the link announces."""
    for link in client.get("/").json()["links"]:
        response = client.get(link["href"], headers={"Accept": link["type"]})
        assert response.status_code == 200, (link, response.text[:300])
        served = response.headers["content-type"].replace(" ", "")
        expected = link["type"].replace(" ", "")
        if expected.startswith("text/"):
            served = served.split(";")[0]
        assert served == expected, link


def test_landing_links_point_where_clients_expect(client: TestClient) -> None:
    """The conformance link reaches the conformance classes, data the collections, service-desc an OpenAPI."""
    links = {link["rel"]: link["href"] for link in client.get("/").json()["links"]}
    assert "conformsTo" in client.get(links["conformance"]).json()
    assert "collections" in client.get(links["data"]).json()
    assert client.get(links["service-desc"]).json()["openapi"].startswith("3.0")


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"params": {"f": "html"}},
        {"headers": {"Accept": "text/html"}},
        {"headers": {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}},
    ],
    ids=["f=html", "accept-html", "browser-accept"],
)
def test_landing_html(client: TestClient, request_kwargs: dict[str, Any]) -> None:
    """Browsers get an HTML landing page that links to the API, the conformance and the collections."""
    response = client.get("/", **request_kwargs)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    text = html.unescape(response.text)
    assert "<html" in text.lower()
    for path in ("/api", "/conformance", "/collections"):
        assert f"http://testserver{path}" in text, path


def test_f_wins_over_accept(client: TestClient) -> None:
    """`f=json` overrides an Accept header asking for HTML."""
    response = client.get("/", params={"f": "json"}, headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == "application/json"


def test_unknown_format_is_400(client: TestClient, problem: Callable[..., dict[str, Any]]) -> None:
    """`f=xml` is refused with a problem that names the formats on offer."""
    body = problem(client.get("/", params={"f": "xml"}), 400, "xml", "json", "html")
    assert body["instance"] == "/"


def test_unknown_parameter_is_400(client: TestClient, problem: Callable[..., dict[str, Any]]) -> None:
    """An unknown query parameter is refused, naming it."""
    problem(client.get("/", params={"colour": "red"}), 400, "colour")


def test_repeated_parameter_is_400(client: TestClient, problem: Callable[..., dict[str, Any]]) -> None:
    """A parameter given twice is refused."""
    problem(client.get("/?f=json&f=html"), 400, "f")


def test_unknown_path_is_404_problem(client: TestClient, problem: Callable[..., dict[str, Any]]) -> None:
    """A path that does not exist is a 404 problem pointing back to the landing page."""
    body = problem(client.get("/wfs"), 404, "/wfs")
    assert body["instance"] == "/wfs"
