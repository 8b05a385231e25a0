"""A map whose layers are drawn from vector tiles (how large layers are shown), in a real browser."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from playwright.sync_api import Browser, Page

from geo_service.app import create_app
from geo_service.catalog import load_catalog
from geo_service.settings import PROJECT_ROOT, Settings
from tests.conftest import running_server
from tests.mapview.test_browser import LOAD_TIMEOUT_MS, Traffic, browser  # noqa: F401  (the browser fixture)

Seeds = dict[str, dict[str, dict[str, Any]]]
STATION = "c01_jiaxing_south_stn"


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
        "zoom": 13,
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
        assert any(f"/collections/{layer}/tiles/WebMercatorQuad/13/" in url for url in traffic.urls)
    assert traffic.failures == []
    pages = [url for url in traffic.urls if "/items" in url and "limit=1&" not in url + "&"]
    assert pages == []


def test_click_on_a_tile_feature_quotes_the_plan(tiles_page: tuple[Page, Traffic], seeds: Seeds) -> None:
    """Clicking 嘉兴南站 where the tile draws it opens the same popup as the GeoJSON maps: the plan clause."""
    page, _ = tiles_page
    lon, lat = seeds["rail_stations"][STATION]["geometry"]["coordinates"]
    x, y = page.evaluate(
        """([lat, lon]) => {
            const map = window.jxplanMap;
            const box = map.getContainer().getBoundingClientRect();
            const p = map.latLngToContainerPoint([lat, lon]);
            return [box.left + p.x, box.top + p.y];
        }""",
        [lat, lon],
    )
    page.mouse.click(x, y)
    quote = page.locator(".leaflet-popup-content blockquote.jx-plan-text")
    quote.wait_for(timeout=10_000)
    assert seeds["rail_stations"][STATION]["properties"]["plan_text"] in quote.inner_text()
