"""A map whose layers are drawn from vector tiles (how large layers are shown), in a real browser."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from playwright.sync_api import Browser, Page

from geo_service.app import create_app
from geo_service.catalog import Catalog, load_catalog
from geo_service.settings import PROJECT_ROOT, Settings
from tests.conftest import running_server
from tests.mapview.test_browser import LOAD_TIMEOUT_MS, Traffic, browser  # noqa: F401  (the browser fixture)

Seeds = dict[str, dict[str, dict[str, Any]]]
STATION = "c01_jiaxing_south_stn"
COUNT_IS = """([want]) =>
    document.querySelector('.jx-legend [data-count-for="rail_stations"]').textContent === want"""


@pytest.fixture(scope="module")
def tiles_page(
    browser: Browser,  # noqa: F811
    settings: Settings,
    seeds: Seeds,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Page, Traffic]]:
    """A map document with two layers forced to vector tiles, centred on 嘉兴南站, loaded in Chromium."""
    maps = tmp_path_factory.mktemp("maps")
    shutil.copy(PROJECT_ROOT / "maps" / "overview.yaml", maps)
    lon, lat = seeds["rail_stations"][STATION]["geometry"]["coordinates"]
    doc = {
        "id": "tiles_probe",
        "title": {"zh": "瓦片测试", "en": "Tile probe"},
        "description": {"zh": "矢量瓦片绘制的图层。", "en": "Layers drawn from vector tiles."},
        "center": [lat, lon],
        "zoom": 11,  # below 12: the plan layers' tiles carry only what the map styles and filters by
        "layers": [
            {"layer": "admin_boundaries", "source": "tiles"},
            {"layer": "rail_stations", "source": "tiles"},
        ],
    }
    (maps / "tiles_probe.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    catalog = load_catalog(PROJECT_ROOT / "layers", maps)
    traffic = Traffic()
    with running_server(create_app(settings, catalog)) as base:
        page = browser.new_page(viewport={"width": 1200, "height": 800}, locale="zh-CN")
        traffic.watch(page)
        page.goto(f"{base}/maps/tiles_probe")
        page.wait_for_function("window.jxplanLoaded === 2", timeout=LOAD_TIMEOUT_MS)
        page.wait_for_load_state("networkidle")
        yield page, traffic
        page.close()


def test_layers_come_from_tiles(tiles_page: tuple[Page, Traffic], seeds: Seeds) -> None:
    """Both layers are in tile mode, their counts come from numberMatched, the page asked for MVT tiles
    of both collections at the map's zoom, every request succeeded, and no items page was downloaded."""
    page, traffic = tiles_page
    state = page.evaluate("() => window.jxplanLayers")
    for layer in ("admin_boundaries", "rail_stations"):
        assert state[layer]["state"] == "done" and state[layer]["mode"] == "tiles"
        assert state[layer]["features"] == len(seeds[layer])
        assert any(f"/collections/{layer}/tiles/WebMercatorQuad/11/" in url for url in traffic.urls)
    assert traffic.failures == []
    pages = [url for url in traffic.urls if "/items" in url and "limit=1&" not in url + "&"]
    assert pages == []


def test_click_on_a_tile_feature_quotes_the_plan(tiles_page: tuple[Page, Traffic], seeds: Seeds) -> None:
    """Clicking 嘉兴南站 where the tile draws it opens the same popup as the GeoJSON maps: the plan clause."""
    page, _ = tiles_page
    lon, lat = seeds["rail_stations"][STATION]["geometry"]["coordinates"]
    page.mouse.click(*_screen_point(page, lon, lat))
    quote = page.locator(".leaflet-popup-content blockquote.jx-plan-text")
    quote.wait_for(timeout=10_000)
    assert seeds["rail_stations"][STATION]["properties"]["plan_text"] in quote.inner_text()


def _screen_point(page: Page, lon: float, lat: float) -> tuple[float, float]:
    x, y = page.evaluate(
        """([lat, lon]) => {
            const map = window.jxplanMap;
            const box = map.getContainer().getBoundingClientRect();
            const p = map.latLngToContainerPoint([lat, lon]);
            return [box.left + p.x, box.top + p.y];
        }""",
        [lat, lon],
    )
    return x, y


def _no_popup(page: Page) -> None:
    """Close the popup an earlier test left open, and wait until its fade-out has removed it."""
    page.evaluate("() => window.jxplanMap.closePopup()")
    page.wait_for_function("() => document.querySelectorAll('.leaflet-popup').length === 0")


def _pixels_around(page: Page, x: float, y: float) -> bytes:
    return page.screenshot(clip={"x": x - 8, "y": y - 8, "width": 16, "height": 16})


def test_search_asks_the_server_for_tiled_features(
    tiles_page: tuple[Page, Traffic], seeds: Seeds, catalog: Catalog
) -> None:
    """A tiled layer's features are not in the page: the search box asks the server (CQL2, case-insensitive),
    lists 嘉兴南站 under its layer, and choosing it zooms there and opens the popup quoting the plan."""
    page, traffic = tiles_page
    station = seeds["rail_stations"][STATION]
    _no_popup(page)
    page.evaluate("() => window.jxplanMap.setView([30.5, 120.5], 10, {animate: false})")
    page.locator("#jx-search-input").fill("JIAXING SOUTH")
    result = page.locator(".jx-search-result", has_text="嘉兴南站").first
    result.wait_for(timeout=10_000)
    assert result.locator(".jx-search-layer").inner_text() == str(catalog.layers["rail_stations"].title)
    asked = [url for url in traffic.urls if "/collections/rail_stations/items" in url and "cql2-json" in url]
    assert asked, "no CQL2 search request for the tiled layer"
    result.click()
    quote = page.locator(".leaflet-popup-content blockquote.jx-plan-text")
    quote.wait_for(timeout=10_000)
    assert station["properties"]["plan_text"] in quote.inner_text()
    lon, lat = station["geometry"]["coordinates"]
    centre = page.evaluate("() => window.jxplanMap.getCenter()")
    assert abs(centre["lng"] - lon) < 0.01 and abs(centre["lat"] - lat) < 0.01
    assert page.evaluate("() => window.jxplanMap.getZoom()") >= 14
    page.evaluate("() => window.jxplanMap.closePopup()")
    page.locator("#jx-search-input").fill("")
    assert traffic.failures == []


@pytest.mark.parametrize("query", ["嘉兴%站", "嘉兴_站", "'; DROP TABLE features; --", "\\", "没有这个地方"])
def test_search_with_pattern_characters_finds_nothing(tiles_page: tuple[Page, Traffic], query: str) -> None:
    """LIKE wildcards, quotes and backslashes are searched as text (as wildcards, 嘉兴%站 and 嘉兴_站 would
    match 嘉兴南站): the server answers (no 4xx) and nothing matches, so the box says so."""
    page, traffic = tiles_page
    page.locator("#jx-search-input").fill(query)
    none = page.locator(".jx-search-none", has_text="未找到 Nothing found")
    none.wait_for(timeout=10_000)
    assert page.locator(".jx-search-result").count() == 0
    assert traffic.failures == []
    page.locator("#jx-search-input").fill("")


def test_status_filter_redraws_tiles_and_counts_on_the_server(
    tiles_page: tuple[Page, Traffic], seeds: Seeds
) -> None:
    """Unticking "completed / existing" takes 嘉兴南站 (existing) out of the tiles, out of a click's answer
    and out of the legend count (from the server's numberMatched); ticking it again brings all three back.
    The county boundaries, not plan items, keep their count."""
    page, traffic = tiles_page
    station = seeds["rail_stations"][STATION]
    assert station["properties"]["status"] == "existing"
    lon, lat = station["geometry"]["coordinates"]
    _no_popup(page)
    page.evaluate(f"() => window.jxplanMap.setView([{lat}, {lon}], 11, {{animate: false}})")
    page.wait_for_load_state("networkidle")
    total = len(seeds["rail_stations"])
    statuses = [f["properties"]["status"] for f in seeds["rail_stations"].values()]
    shown = sum(1 for status in statuses if status not in ("completed", "existing"))
    assert 0 < shown < total
    count = page.locator('.jx-legend [data-count-for="rail_stations"]')
    boundaries = page.locator('.jx-legend [data-count-for="admin_boundaries"]')
    boundaries_before = boundaries.inner_text()
    x, y = _screen_point(page, lon, lat)
    drawn = _pixels_around(page, x, y)

    page.locator('.jx-filter input[data-group="completed"]').uncheck()
    page.wait_for_function(COUNT_IS, arg=[f"{shown} / {total}"], timeout=10_000)
    page.wait_for_load_state("networkidle")
    assert _pixels_around(page, x, y) != drawn, "嘉兴南站 is still drawn"
    assert boundaries.inner_text() == boundaries_before
    _no_popup(page)
    page.mouse.click(x, y)
    # the click falls through the hidden station to the county below it
    name = page.locator(".leaflet-popup-content .jx-popup-name")
    name.wait_for(timeout=10_000)
    assert "嘉兴南站" not in name.inner_text(), "a hidden station answered the click"
    page.evaluate("() => window.jxplanMap.closePopup()")
    identify = [u for u in traffic.urls if "/collections/rail_stations/items" in u and "bbox=" in u]
    assert identify and "NOT+IN" in identify[-1].replace("%20", "+")

    page.locator('.jx-filter input[data-group="completed"]').check()
    page.wait_for_function(COUNT_IS, arg=[str(total)], timeout=10_000)
    page.wait_for_load_state("networkidle")
    assert count.inner_text() == str(total)
    _no_popup(page)
    page.mouse.click(x, y)
    quote = page.locator(".leaflet-popup-content blockquote.jx-plan-text")
    quote.wait_for(timeout=10_000)
    assert station["properties"]["plan_text"] in quote.inner_text()
    page.evaluate("() => window.jxplanMap.closePopup()")
    assert traffic.failures == []
