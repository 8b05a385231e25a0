"""CORS: reads for any origin (`*`, no credentials), writes only for the origins JXPLAN_CORS_WRITE_ORIGINS
names, their preflights answered; checked at the header level and in Chromium across two origins."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import sync_playwright
from sqlalchemy import text

from geo_service.app import create_app
from geo_service.catalog import Catalog
from geo_service.editing.keys import add_key
from geo_service.settings import Settings
from tests.conftest import Writable, check_problem, database_state, running_server

ALLOWED = "http://editor.example.org:8080"
OTHER = "https://elsewhere.example.com"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def cors_client(settings: Settings, catalog: Catalog) -> Iterator[TestClient]:
    """The service on the shared database with one write origin allowed (reads and refused writes only)."""
    allowed = settings.model_copy(update={"cors_write_origins": [ALLOWED]})
    with TestClient(create_app(allowed, catalog), raise_server_exceptions=False) as client:
        yield client


def _preflight(client: TestClient, path: str, origin: str, method: str) -> httpx.Response:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type, if-match",
        },
    )


def test_reads_answer_any_origin(cors_client: TestClient) -> None:
    """GET and HEAD carry `Access-Control-Allow-Origin: *` (with or without Origin), expose ETag, Link,
    Location and Content-Crs, and never allow credentials; errors too."""
    for headers in ({"Origin": OTHER}, {}):
        for response in (
            cors_client.get("/collections/rail_stations/items?limit=1", headers=headers),
            cors_client.head("/collections/rail_stations", headers=headers),
            cors_client.get("/collections/nowhere", headers=headers),
        ):
            assert response.headers["access-control-allow-origin"] == "*"
            exposed = {
                h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
            }
            assert {"etag", "link", "location", "content-crs"} <= exposed
            assert "access-control-allow-credentials" not in response.headers


def test_a_read_preflight_is_granted_to_any_origin(cors_client: TestClient) -> None:
    """A preflight for GET from any origin: 204, `*`, GET and HEAD allowed, no credentials."""
    response = _preflight(cors_client, "/collections/rail_stations/items", OTHER, "GET")
    assert response.status_code == 204
    headers = response.headers
    assert headers["access-control-allow-origin"] == "*"
    assert "GET" in headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in headers


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_write_preflight_from_an_allowed_origin(cors_client: TestClient, method: str) -> None:
    """The listed origin is echoed with the write methods and headers, `Vary: Origin`, no credentials."""
    response = _preflight(cors_client, "/collections/rail_stations/items/1", ALLOWED, method)
    headers = response.headers
    assert response.status_code == 204
    assert headers["access-control-allow-origin"] == ALLOWED
    assert method in headers["access-control-allow-methods"]
    allowed_headers = {h.strip().lower() for h in headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "if-match"} <= allowed_headers
    assert "origin" in headers["vary"].lower()
    assert "access-control-allow-credentials" not in headers


@pytest.mark.parametrize(
    "origin", [OTHER, "http://editor.example.org", "http://editor.example.org:8080.evil"]
)
def test_a_write_preflight_from_another_origin_gets_no_grant(cors_client: TestClient, origin: str) -> None:
    """An origin not on the list (another host, another port, a longer name) gets a 403 problem naming the
    setting, and no Access-Control-Allow-Origin."""
    response = _preflight(cors_client, "/collections/rail_stations/items", origin, "POST")
    check_problem(response, 403, "JXPLAN_CORS_WRITE_ORIGINS")
    assert "access-control-allow-origin" not in response.headers
    assert "origin" in response.headers["vary"].lower()


def test_write_responses_name_only_the_allowed_origin(cors_client: TestClient) -> None:
    """A write request (refused here for want of a key, so nothing changes) carries the grant for the listed
    origin only; without a listed origin there is none."""
    path = "/collections/rail_stations/items"
    allowed = cors_client.post(path, headers={"Origin": ALLOWED}, json={})
    assert allowed.status_code == 401
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert "origin" in allowed.headers["vary"].lower()
    other = cors_client.post(path, headers={"Origin": OTHER}, json={})
    assert other.status_code == 401 and "access-control-allow-origin" not in other.headers


def test_by_default_no_origin_may_write(client: TestClient) -> None:
    """With JXPLAN_CORS_WRITE_ORIGINS empty (the default) every write preflight is refused, reads are open,
    and QGIS's capability OPTIONS (no preflight headers) still answers with Allow."""
    check_problem(_preflight(client, "/collections/rail_stations/items", ALLOWED, "POST"), 403)
    plain = client.options("/collections/rail_stations/items")
    assert plain.status_code == 204 and "POST" in plain.headers["allow"]


def test_the_setting_refuses_a_wildcard() -> None:
    """`*` (or a path) is not a write origin: the settings say so at start-up."""
    with pytest.raises(ValueError, match="no path, no"):
        Settings.model_validate({"cors_write_origins": "*"})
    assert Settings.model_validate(
        {"cors_write_origins": "HTTPS://GIS.Example.org/, http://a:1"}
    ).cors_write_origins == [
        "https://gis.example.org",
        "http://a:1",
    ]


PAGE = b"<!doctype html><title>another origin</title><p>a web map on another origin</p>"


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def page_origin() -> Iterator[str]:
    """A web page on its own origin (another 127.0.0.1 port), for the browser to start from."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


FETCH = """
async ([url, method, token, body]) => {
  const init = {method, headers: {}};
  if (token) init.headers["Authorization"] = "Bearer " + token;
  if (body) { init.headers["Content-Type"] = "application/merge-patch+json"; init.body = body; }
  try {
    const response = await fetch(url, init);
    const header = (name) => response.headers.get(name);
    return {status: response.status, etag: header("ETag"), crs: header("Content-Crs")};
  } catch (error) {
    return {blocked: String(error)};
  }
}
"""


def test_in_chromium_a_page_on_another_origin_reads_and_only_a_listed_one_writes(
    writable: Writable, settings: Settings, catalog: Catalog
) -> None:
    """Pages on two other origins fetch the service: both read a feature (and see its ETag and Content-Crs);
    the listed origin's PATCH goes through, the other's is blocked by the browser and changes nothing."""
    token = add_key(writable.engine, "跨域 cors", "editor")
    with writable.engine.connect() as conn:
        fid = conn.execute(text("SELECT min(id) FROM features WHERE layer_id = 'rail_stations'")).scalar_one()
    with page_origin() as listed, page_origin() as other:
        private = settings.model_copy(
            update={
                "database_url": writable.engine.url.render_as_string(hide_password=False),
                "cors_write_origins": [listed],
            }
        )
        with running_server(create_app(private, catalog)) as base, sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                feature = f"{base}/collections/rail_stations/items/{fid}"
                results = {}
                for name, origin in (("listed", listed), ("other", other)):
                    page = browser.new_page()
                    page.goto(origin + "/")
                    read = page.evaluate(FETCH, [feature, "GET", None, None])
                    assert read["status"] == 200 and read["etag"] and read["crs"], (name, read)
                    before = database_state(writable.engine)
                    body = json.dumps({"properties": {"name_en": f"written from {name}"}})
                    results[name] = page.evaluate(FETCH, [feature, "PATCH", token, body])
                    if name == "other":
                        assert "blocked" in results[name], results[name]
                        assert database_state(writable.engine) == before
                    page.close()
            finally:
                browser.close()
    assert results["listed"]["status"] == 204, results
    with writable.engine.connect() as conn:
        name_en = conn.execute(text("SELECT name_en FROM features WHERE id = :id"), {"id": fid}).scalar_one()
    assert name_en == "written from listed"
