"""The overview map in a real browser against the real service: layers load from the API, popups quote
the plan, data is shown as text, nothing is fetched from another host except basemap tiles."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright
from sqlalchemy import Engine, text

from geo_service.catalog import Catalog
from geo_service.mapview.basemaps import is_tile_host
from tests.mapview.conftest import PROBE_NAME

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
LOAD_TIMEOUT_MS = 60_000

# Finds a drawn feature quoting the plan whose symbol is on top at its own position, so that a real
# click there hits it; the topmost layers are tried first.
FIND_CLICKABLE = """
() => {
  const map = window.jxplanMap;
  const box = map.getContainer().getBoundingClientRect();
  for (const [id, holder] of Object.entries(window.jxplan.layers).reverse()) {
    for (const layer of holder.getLayers().flatMap((g) => (g.getLayers ? g.getLayers() : []))) {
      const props = layer.feature.properties;
      if (!props.plan_text || !layer._path) continue;
      const points = layer.getLatLng ? [layer.getLatLng()] : layer.getLatLngs().flat(Infinity);
      for (const latlng of points) {
        const p = map.latLngToContainerPoint(latlng);
        const x = box.left + p.x, y = box.top + p.y;
        if (document.elementFromPoint(x, y) === layer._path) {
          return {x, y, layer: id, id: layer.feature.id, planText: props.plan_text};
        }
      }
    }
  }
  return null;
}
"""

OPEN_BY_CODE = """
(code) => {
  for (const holder of Object.values(window.jxplan.layers)) {
    for (const layer of holder.getLayers().flatMap((g) => (g.getLayers ? g.getLayers() : []))) {
      if (layer.feature.properties.code === code) { layer.openPopup(); return true; }
    }
  }
  return false;
}
"""


@dataclass
class Traffic:
    """What the page asked for, and what failed."""

    urls: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("requestfailed", lambda request: self.failures.append(f"{request.url} {request.failure}"))
        page.on(
            "response",
            lambda response: (
                self.failures.append(f"{response.url} {response.status}") if response.status >= 400 else None
            ),
        )

    def hosts(self) -> set[str]:
        return {
            urlsplit(url).hostname or "" for url in self.urls if urlsplit(url).scheme in ("http", "https")
        }


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium, headless, with background networking off so that only the page makes requests."""
    assert os.access(CHROMIUM, os.X_OK), (
        f"no Chromium at {CHROMIUM}: run `make test` (it installs it) or set CHROMIUM"
    )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


def _open_overview(browser: Browser, base_url: str, catalog: Catalog, traffic: Traffic) -> Page:
    page = browser.new_page(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    traffic.watch(page)
    page.goto(f"{base_url}/maps/overview")
    count = len(catalog.maps["overview"].layers)
    page.wait_for_function(f"window.jxplanLoaded === {count}", timeout=LOAD_TIMEOUT_MS)
    return page


@pytest.fixture(scope="module")
def overview(browser: Browser, live_server: str, catalog: Catalog) -> Iterator[tuple[Page, Traffic]]:
    """The overview map with every layer loaded, and the requests it made."""
    traffic = Traffic()
    page = _open_overview(browser, live_server, catalog, traffic)
    yield page, traffic
    page.close()


def _settle_fonts(page: Page) -> None:
    """Wait until the Chinese font pieces the page asked for have arrived (Chrome asks only when painting)."""
    for _ in range(3):
        page.wait_for_timeout(200)
        page.evaluate("() => document.fonts.ready.then(() => true)")


def _layer_state(page: Page) -> dict[str, dict[str, Any]]:
    state: dict[str, dict[str, Any]] = page.evaluate("() => window.jxplanLayers")
    return state


def test_every_layer_loads_and_is_drawn(
    overview: tuple[Page, Traffic], catalog: Catalog, output_dir: Path
) -> None:
    """Every layer of the overview loads from the API and draws SVG paths; a screenshot is saved."""
    page, _ = overview
    state = _layer_state(page)
    for map_layer in catalog.maps["overview"].layers:
        info = state[map_layer.layer]
        assert info["state"] == "done", (map_layer.layer, info)
        count = page.locator(f'[data-count-for="{map_layer.layer}"]').inner_text()
        assert count == str(info["drawn"])
        if info["drawn"]:
            paths = page.locator(f"svg path.jxplan-layer-{map_layer.layer}").count()
            assert paths >= 1, f"no SVG paths for {map_layer.layer}"
    assert any(info["drawn"] for info in state.values()), "no layer drew anything"
    _settle_fonts(page)
    page.screenshot(path=str(output_dir / "overview.png"))


def test_features_without_location_are_skipped(overview: tuple[Page, Traffic]) -> None:
    """Features with a null geometry are counted but not drawn."""
    state = _layer_state(overview[0])
    for info in state.values():
        assert info["drawn"] + info["skipped"] == info["features"]


def _close_popups(page: Page) -> None:
    page.evaluate("() => window.jxplanMap.closePopup()")
    page.locator(".leaflet-popup").wait_for(state="detached", timeout=5_000)


def test_click_shows_plan_clause(overview: tuple[Page, Traffic], output_dir: Path) -> None:
    """Clicking a feature opens a popup quoting its plan clause, with a link to its page."""
    page, _ = overview
    _close_popups(page)
    target = page.evaluate(FIND_CLICKABLE)
    assert target, "no feature quoting the plan is clickable on the overview"
    page.mouse.click(target["x"], target["y"])
    popup = page.locator(".leaflet-popup-content")
    popup.locator("blockquote.jx-plan-text").wait_for(timeout=5_000)
    assert target["planText"] in popup.locator("blockquote.jx-plan-text").inner_text()
    details = popup.locator("a.jx-popup-details")
    assert details.inner_text() == "详情 Details"
    assert details.get_attribute("href") == f"/collections/{target['layer']}/items/{target['id']}"
    page.mouse.move(5, 300)  # off the feature, so that its tooltip closes
    page.wait_for_timeout(400)  # the popup fades in
    _settle_fonts(page)
    page.screenshot(path=str(output_dir / "overview-popup.png"))
    _close_popups(page)


@pytest.fixture(scope="module")
def probe_page(browser: Browser, probe_server: str, catalog: Catalog) -> Iterator[Page]:
    """The overview map on the probe server (hostile text, a feature without location, pages of three)."""
    page = _open_overview(browser, probe_server, catalog, Traffic())
    yield page
    page.close()


def test_layers_follow_next_links(probe_page: Page, catalog: Catalog, engine: Engine) -> None:
    """With three features per page the map still draws every located feature of every layer."""
    state = _layer_state(probe_page)
    with engine.connect() as conn:
        counts = dict(conn.execute(text("SELECT layer_id, count(*) FROM features GROUP BY layer_id")).all())
        located = dict(
            conn.execute(
                text("SELECT layer_id, count(*) FROM features WHERE geom IS NOT NULL GROUP BY layer_id")
            ).all()
        )
    for map_layer in catalog.maps["overview"].layers:
        layer_id = map_layer.layer
        probes = 2 if layer_id == "rail_stations" else 0
        assert state[layer_id]["features"] == counts[layer_id] + probes, layer_id
        assert state[layer_id]["drawn"] == located.get(layer_id, 0) + (1 if probes else 0), layer_id


def test_data_is_shown_as_text(probe_page: Page) -> None:
    """Markup and javascript: links in feature properties are shown as text, never run."""
    page = probe_page
    assert page.evaluate(OPEN_BY_CODE, "probe_html")
    popup = page.locator(".leaflet-popup-content")
    popup.locator("blockquote.jx-plan-text").wait_for(timeout=5_000)
    text_shown = popup.inner_text()
    assert PROBE_NAME in text_shown and "<b>probe clause</b>" in text_shown and "<i>alias</i>" in text_shown
    assert popup.locator("img, script, b, i").count() == 0
    assert popup.locator("a.jx-source-link").count() == 0  # the javascript: URL is not a link
    assert page.evaluate("() => window.jxplanInjected") is None
    _close_popups(page)


def test_nothing_fetched_from_elsewhere(overview: tuple[Page, Traffic]) -> None:
    """Every request of the page goes to 127.0.0.1 (basemap tiles aside) and none fails."""
    _, traffic = overview
    elsewhere = {host for host in traffic.hosts() if host not in LOCAL_HOSTS and not is_tile_host(host)}
    assert not elsewhere, f"requests to {sorted(elsewhere)}"
    assert not traffic.failures, traffic.failures
    assert any("/static/vendor/leaflet/dist/leaflet.js" in url for url in traffic.urls)


def test_map_works_with_unreachable_basemap(browser: Browser, live_server: str, catalog: Catalog) -> None:
    """With no internet the basemap fails quietly and every plan layer still draws."""
    traffic = Traffic()
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    blocked: list[str] = []

    def block_elsewhere(route: Route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if host in LOCAL_HOSTS:
            route.continue_()
        else:
            blocked.append(host)
            route.abort("internetdisconnected")

    page.route("**/*", block_elsewhere)
    traffic.watch(page)
    page.goto(f"{live_server}/maps/overview")
    count = len(catalog.maps["overview"].layers)
    page.wait_for_function(f"window.jxplanLoaded === {count}", timeout=LOAD_TIMEOUT_MS)
    page.hover(".leaflet-control-layers")
    page.get_by_text("开放街道地图 OpenStreetMap").click()
    page.wait_for_timeout(500)
    assert blocked and all(is_tile_host(host) for host in blocked)
    for layer_id, info in _layer_state(page).items():
        assert info["state"] == "done", layer_id
        if info["drawn"]:
            assert page.locator(f"svg path.jxplan-layer-{layer_id}").count() >= 1, layer_id
    page.close()
