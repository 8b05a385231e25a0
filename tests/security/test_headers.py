"""Security headers: nosniff and a referrer policy on every response, a Content-Security-Policy on every HTML
page (strict on the API's pages, exact hashes of the inline blocks on the map pages), and the offline maps,
tiles, popups and editor working in Chromium under it with no violation reported."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from typing import Any

from fastapi.testclient import TestClient

from geo_service.app import create_app
from geo_service.catalog import Catalog
from geo_service.security.headers import DEFAULT_POLICY, REFERRER_POLICY
from geo_service.settings import Settings
from tests.mapview.test_browser import LOAD_TIMEOUT_MS, OPEN_BY_CODE
from tests.mapview.test_editor import _screen
from tests.security.conftest import (
    HOSTILE_CODE,
    HOSTILE_POINT,
    OSM_HOST,
    TILES_MAP,
    HostileSite,
    Watched,
    open_editor,
)


def _directives(policy: str) -> dict[str, list[str]]:
    out = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        out[name] = sources
    return out


class InlineBlocks(HTMLParser):
    """The text of each inline <script> and <style> of a page, as the browser hashes it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._open: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and not dict(attrs).get("src"):
            self.scripts.append("")
            self._open = self.scripts
        elif tag == "style":
            self.styles.append("")
            self._open = self.styles

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open[-1] += data


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_every_response_has_nosniff_and_a_referrer_policy(client: TestClient) -> None:
    """JSON, GeoJSON, problems, tiles, static files, HTML, HEAD and OPTIONS all carry nosniff and the
    referrer policy; HTML, and only HTML, carries a policy, never with 'unsafe-inline'."""
    fid = client.get("/collections/rail_stations/items?limit=1").json()["features"][0]["id"]
    requests = [
        ("GET", "/"),
        ("GET", "/?f=html"),
        ("GET", "/collections/rail_stations/items?limit=2"),
        ("GET", "/collections/rail_stations/items?f=html&limit=2"),
        ("GET", f"/collections/rail_stations/items/{fid}"),
        ("GET", f"/collections/rail_stations/items/{fid}?f=html"),
        ("GET", "/collections/no_such_layer"),
        ("GET", "/collections/rail_stations/items?limit=0"),
        ("GET", "/collections/admin_boundaries/tiles/WebMercatorQuad/8/107/213"),
        ("GET", "/static/app/jxplan-map.js"),
        ("GET", "/static/vendor/leaflet/dist/leaflet.js"),
        ("GET", "/static/app/jxplan-pages.css"),
        ("GET", "/maps"),
        ("GET", "/maps/overview"),
        ("GET", "/editor"),
        ("HEAD", "/collections/rail_stations/items?limit=1"),
        ("OPTIONS", "/collections/rail_stations/items"),
    ]
    for method, path in requests:
        response = client.request(method, path)
        assert response.status_code < 500, (path, response.text)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == REFERRER_POLICY, path
        policy = response.headers.get("content-security-policy")
        if response.headers.get("content-type", "").startswith("text/html"):
            assert policy and "'unsafe-inline'" not in policy, path
        else:
            assert policy is None, path
    for script in ("/static/app/jxplan-map.js", "/static/vendor/leaflet/dist/leaflet.js"):
        assert "javascript" in client.get(script).headers["content-type"]  # nosniff runs typed scripts only


def test_even_a_failure_carries_the_headers(settings: Settings, catalog: Catalog) -> None:
    """A route that fails (a bug, answered 500 by the outermost error handler) still sends nosniff and the
    referrer policy."""
    app = create_app(settings, catalog)

    def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as failing:
        response = failing.get("/broken")
    assert response.status_code == 500
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == REFERRER_POLICY


def test_api_pages_get_the_strict_policy_and_need_nothing_more(client: TestClient) -> None:
    """The API's HTML pages and the map list get the default policy (this service only, no inline code)
    and hold no inline script, style block or style attribute that it would block."""
    fid = client.get("/collections/rail_stations/items?limit=1").json()["features"][0]["id"]
    for path in (
        "/?f=html",
        "/collections?f=html",
        "/collections/rail_stations?f=html",
        "/collections/rail_stations/items?f=html",
        f"/collections/rail_stations/items/{fid}?f=html",
        "/conformance?f=html",
        "/api?f=html",
        "/maps",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == DEFAULT_POLICY, path
        assert not re.search(r"<script|<style|\sstyle=|\son[a-z]+=", response.text, re.IGNORECASE), path
    policy = _directives(DEFAULT_POLICY)
    assert policy["default-src"] == ["'none'"] and policy["script-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'self'"] and policy["object-src"] == ["'none'"]


def _map_policy(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 200
    policy = _directives(response.headers["content-security-policy"])
    blocks = InlineBlocks()
    blocks.feed(response.text)
    assert blocks.scripts and blocks.styles
    hashes = {s for s in policy["script-src"] if s.startswith("'sha256-")}
    assert hashes == {_sha256(script) for script in blocks.scripts}
    assert {s for s in policy["style-src"] if s.startswith("'sha256-")} == {_sha256(s) for s in blocks.styles}
    assert "'unsafe-inline'" not in policy["script-src"] + policy["style-src"]
    return policy


def test_map_pages_allow_exactly_their_inline_blocks(
    client: TestClient, settings: Settings, catalog: Catalog
) -> None:
    """Each map page (thematic, collection, feature, editor) allows by hash exactly the inline scripts and
    styles it holds (two renders differ, so do their hashes), images from OpenStreetMap, which the maps
    offer, and from 天地图 only when a key is configured."""
    fid = client.get("/collections/rail_stations/items?limit=1").json()["features"][0]["id"]
    paths = [
        "/maps/overview",
        "/editor",
        "/collections/rail_stations/map",
        f"/collections/rail_stations/items/{fid}/map",
    ]
    for path in paths:
        policy = _map_policy(client.get(path))
        assert policy["img-src"] == ["'self'", "data:", f"https://{OSM_HOST}"], path
    first, second = (client.get("/maps/overview").headers["content-security-policy"] for _ in range(2))
    assert first != second  # Folium names its map afresh on each render
    keyed = settings.model_copy(update={"tianditu_key": "test-key"})
    with TestClient(create_app(keyed, catalog)) as tianditu:
        policy = _map_policy(tianditu.get("/maps/overview"))
    assert policy["img-src"][3:] == [f"https://t{n}.tianditu.gov.cn" for n in range(8)]


# --- in Chromium ----------------------------------------------------------------------------------------


def test_overview_map_works_under_its_policy(watched: Watched, hostile_site: HostileSite) -> None:
    """The overview draws every layer, its OpenStreetMap basemap tiles load, a popup opens and the measure
    tool starts, and the browser reports no policy violation."""
    page = watched.page
    page.goto(f"{hostile_site.base}/maps/overview")
    count = len(hostile_site.catalog.maps["overview"].layers)
    page.wait_for_function(f"window.jxplanLoaded === {count}", timeout=LOAD_TIMEOUT_MS)
    states = page.evaluate("() => Object.values(window.jxplanLayers).map((s) => s.state)")
    assert set(states) == {"done"}
    assert page.locator("svg path.jxplan-feature").count() > 10
    page.hover(".leaflet-control-layers")
    page.get_by_text("开放街道地图 OpenStreetMap").click()
    page.wait_for_function("() => document.querySelectorAll('img.leaflet-tile-loaded').length > 0")
    assert page.evaluate(OPEN_BY_CODE, HOSTILE_CODE)
    page.locator(".leaflet-popup-content .jx-popup-name").wait_for(timeout=5_000)
    page.hover(".leaflet-control-measure")  # the tool opens on hover and shows and hides its panels
    page.click(".leaflet-control-measure a.js-start")
    page.locator(".leaflet-control-measure .js-measuringprompt").wait_for(state="visible", timeout=5_000)
    assert page.locator(".leaflet-control-measure .js-startprompt").is_hidden()
    watched.assert_clean()


def test_tiled_layers_work_under_the_policy(watched: Watched, hostile_site: HostileSite) -> None:
    """A map drawing its layers from vector tiles fetches them, and a click on the hostile station asks the
    server for it and opens its popup; no violation."""
    page = watched.page
    tiles: list[int] = []
    page.on("response", lambda r: tiles.append(r.status) if "/tiles/WebMercatorQuad/" in r.url else None)
    page.goto(f"{hostile_site.base}/maps/{TILES_MAP}")
    page.wait_for_function("window.jxplanLoaded === 2", timeout=LOAD_TIMEOUT_MS)
    page.wait_for_load_state("networkidle")
    assert tiles and set(tiles) <= {200, 204} and 200 in tiles
    page.mouse.click(*_screen(page, HOSTILE_POINT[1], HOSTILE_POINT[0]))
    page.locator(".leaflet-popup-content .jx-popup-name").wait_for(timeout=10_000)
    watched.assert_clean()


def test_editor_works_under_its_policy(watched: Watched, hostile_site: HostileSite) -> None:
    """The editor signs in with a key, loads a layer, selects a feature and saves a change to it; no
    violation."""
    page = watched.page
    open_editor(page, hostile_site)
    page.evaluate("(code) => window.jxplanEditor.layerOf(code).fire('click')", HOSTILE_CODE)
    page.wait_for_function(
        "(code) => window.jxplanEditor.state.selected?.feature?.properties?.code === code", arg=HOSTILE_CODE
    )
    page.fill(".jx-ed-form [name=status_date]", "2026")
    page.click(".jx-ed-save")
    page.wait_for_function(
        "() => document.querySelector('.jx-ed-messages').textContent.includes('已保存 Saved')"
    )
    watched.assert_clean()


def test_api_pages_work_under_the_policy(watched: Watched, hostile_site: HostileSite) -> None:
    """The landing page (with the overview map in a frame), a page of items and a feature page are styled
    by their stylesheet and report no violation, in the frame neither."""
    page = watched.page
    page.goto(f"{hostile_site.base}/?f=html")
    frame = page.frame_locator("iframe.overview-map")
    frame.locator("svg path.jxplan-feature").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    assert watched.violations() == []  # the frame's too, before the page is left
    for path in (
        "/collections/rail_stations/items?f=html",
        f"/collections/rail_stations/items/{hostile_site.feature_id}?f=html",
    ):
        page.goto(f"{hostile_site.base}{path}")
        assert (
            page.evaluate("() => getComputedStyle(document.querySelector('header')).backgroundColor")
            == "rgb(31, 78, 121)"
        )
    watched.assert_clean()
