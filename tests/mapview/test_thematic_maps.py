"""Every thematic map, the search box, the status filter and the collection and feature map pages in a real
browser against the real service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route

from geo_service.catalog import Catalog
from geo_service.mapview.basemaps import is_tile_host
from geo_service.mapview.styles import STATUS_DASH
from tests.mapview.test_browser import (  # noqa: F401  (the `browser` fixture)
    FIND_CLICKABLE,
    LOAD_TIMEOUT_MS,
    LOCAL_HOSTS,
    Traffic,
    _settle_fonts,
    browser,
)

MAPS_DIR = Path(__file__).resolve().parents[2] / "maps"
MAP_IDS = sorted(path.stem for path in MAPS_DIR.glob("*.yaml"))
THEMATIC = {"overview", "demonstration_zone", "g60_corridor", "transport", "bay_shore", "ecology_culture"}


def _open(chromium: Browser, url: str, layers: int, traffic: Traffic, blocked: list[str]) -> Page:
    """A map page with basemap tiles refused (recorded in `blocked`), once `layers` layers have loaded."""
    page = chromium.new_page(viewport={"width": 1400, "height": 900}, locale="zh-CN")

    def local_only(route: Route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if host in LOCAL_HOSTS:
            route.continue_()
        else:
            blocked.append(host)
            route.abort("internetdisconnected")

    page.route("**/*", local_only)
    traffic.watch(page)
    page.goto(url)
    page.wait_for_function(f"window.jxplanLoaded === {layers}", timeout=LOAD_TIMEOUT_MS)
    return page


def _layer_paths(page: Page, selector: str) -> int:
    return page.locator(f"svg path{selector}").count()


def test_every_thematic_map_has_a_document(catalog: Catalog) -> None:
    assert set(catalog.maps) >= THEMATIC, sorted(THEMATIC - set(catalog.maps))
    for doc in catalog.maps.values():
        assert doc.title.zh and doc.title.en and doc.description.zh and doc.description.en
    assert {m.layer for m in catalog.maps["overview"].layers} >= {
        "central_city",
        "ecology_culture",
        "water_lines",
        "hubs",
    }


@pytest.mark.parametrize("map_id", MAP_IDS)
def test_map_opens_draws_and_explains(
    map_id: str,
    browser: Browser,  # noqa: F811
    live_server: str,
    catalog: Catalog,
    output_dir: Path,
) -> None:
    """Each map: every layer loads and draws, the legend lists them, a click opens a popup quoting the plan,
    search and status filter are there, nothing is fetched from elsewhere but tiles; a screenshot is saved."""
    doc = catalog.maps[map_id]
    traffic, blocked = Traffic(), []
    page = _open(browser, f"{live_server}/maps/{map_id}", len(doc.layers), traffic, blocked)
    state: dict[str, dict[str, Any]] = page.evaluate("() => window.jxplanLayers")
    assert sorted(state) == sorted(m.layer for m in doc.layers)
    for map_layer in doc.layers:
        info = state[map_layer.layer]
        assert info["state"] == "done", (map_layer.layer, info)
        assert info["drawn"] >= 1, f"{map_layer.layer} drew nothing"
        assert _layer_paths(page, f".jxplan-layer-{map_layer.layer}") >= 1, map_layer.layer
        count = page.locator(f'.jx-legend [data-count-for="{map_layer.layer}"]').inner_text()
        assert count == str(info["drawn"])
    legend = page.locator(".jx-legend")
    assert legend.is_visible()
    assert legend.locator(".jx-legend-layer").count() == len(doc.layers)
    assert page.locator("#jx-search-input").is_visible()
    assert page.locator(".jx-filter input[type=checkbox]").count() == 3

    target = page.evaluate(FIND_CLICKABLE)
    assert target, f"no feature quoting the plan is clickable on {map_id}"
    page.mouse.click(target["x"], target["y"])
    quote = page.locator(".leaflet-popup-content blockquote.jx-plan-text")
    quote.wait_for(timeout=5_000)
    assert target["planText"] in quote.inner_text()
    map_link = page.locator(".leaflet-popup-content a.jx-popup-map")
    assert map_link.get_attribute("href") == f"/collections/{target['layer']}/items/{target['id']}/map"

    page.mouse.move(5, 300)
    page.wait_for_timeout(400)
    _settle_fonts(page)
    page.screenshot(path=str(output_dir / f"map-{map_id}.png"))
    elsewhere = {host for host in traffic.hosts() if host not in LOCAL_HOSTS and not is_tile_host(host)}
    assert not elsewhere, f"requests to {sorted(elsewhere)}"
    assert all(is_tile_host(host) for host in blocked), blocked
    local_failures = [f for f in traffic.failures if urlsplit(f.split()[0]).hostname in LOCAL_HOSTS]
    assert not local_failures, local_failures
    page.close()


@pytest.fixture(scope="module")
def transport(browser: Browser, live_server: str, catalog: Catalog) -> Iterator[Page]:  # noqa: F811
    """The transport map with every layer loaded."""
    count = len(catalog.maps["transport"].layers)
    page = _open(browser, f"{live_server}/maps/transport", count, Traffic(), [])
    yield page
    page.close()


def test_transport_styles_by_status(transport: Page) -> None:
    """Planned lines are dashed, those under construction dotted, completed ones solid."""
    planned = transport.locator("svg path.jxplan-status-planned.jxplan-layer-rail_lines")
    assert planned.count() >= 1
    assert planned.first.get_attribute("stroke-dasharray") == STATUS_DASH["planned"]
    building = transport.locator("svg path.jxplan-status-under_construction.jxplan-layer-rail_lines")
    assert building.count() >= 1
    assert building.first.get_attribute("stroke-dasharray") == STATUS_DASH["under_construction"]
    assert STATUS_DASH["planned"] != STATUS_DASH["under_construction"]
    completed = transport.locator("svg path.jxplan-status-completed.jxplan-layer-road_projects")
    assert completed.count() >= 1
    assert all(completed.nth(i).get_attribute("stroke-dasharray") is None for i in range(completed.count()))


def test_status_filter_hides_and_shows_planned(transport: Page) -> None:
    """Unticking "planned" hides the planned features and dims their legend rows; ticking shows them again."""
    page = transport
    planned = page.locator("svg path.jxplan-status-planned")
    building = page.locator("svg path.jxplan-status-under_construction")
    before_planned, before_building = planned.count(), building.count()
    drawn = page.evaluate("() => window.jxplanLayers.rail_lines.drawn")
    assert before_planned >= 1 and before_building >= 1
    box = page.locator('.jx-filter input[data-group="planned"]')
    box.uncheck()
    assert planned.count() == 0
    assert building.count() == before_building
    assert page.locator('.jx-legend-lines [data-statuses="planned"]').get_attribute("class") == (
        "jx-legend-row jx-off"
    )
    shown = page.evaluate("() => window.jxplanLayers.rail_lines.shown")
    assert shown < drawn
    assert page.locator('.jx-legend [data-count-for="rail_lines"]').inner_text() == f"{shown} / {drawn}"
    # the county boundaries are not plan items: the filter leaves them alone
    assert _layer_paths(page, ".jxplan-layer-admin_boundaries") >= 1
    box.check()
    assert planned.count() == before_planned
    assert "jx-off" not in (
        page.locator('.jx-legend-lines [data-statuses="planned"]').get_attribute("class") or ""
    )
    assert page.locator('.jx-legend [data-count-for="rail_lines"]').inner_text() == str(drawn)


@pytest.fixture(scope="module")
def overview(browser: Browser, live_server: str, catalog: Catalog) -> Iterator[Page]:  # noqa: F811
    count = len(catalog.maps["overview"].layers)
    page = _open(browser, f"{live_server}/maps/overview", count, Traffic(), [])
    yield page
    page.close()


def test_search_finds_jiaxing_south(overview: Page, output_dir: Path) -> None:
    """Typing 嘉兴南站 lists the station; choosing it zooms there and opens its popup."""
    page = overview
    page.locator("#jx-search-input").fill("嘉兴南站")
    first = page.locator(".jx-search-result").first
    first.wait_for(timeout=5_000)
    assert "嘉兴南站" in first.locator(".jx-search-name").inner_text()
    assert first.locator(".jx-search-name-en").inner_text() == "Jiaxing South Railway Station"
    first.click()
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for(timeout=5_000)
    assert "嘉兴南站" in popup.locator(".jx-popup-name").inner_text()
    assert page.evaluate("() => window.jxplanMap.getZoom()") >= 14
    page.wait_for_timeout(600)
    assert page.locator(".leaflet-popup").count() == 1, "the popup closed again"
    _settle_fonts(page)
    page.screenshot(path=str(output_dir / "search-jiaxing-south.png"))
    page.evaluate("() => window.jxplanMap.closePopup()")


@pytest.mark.parametrize(
    ("query", "expected"),
    [("jiaxing south", "嘉兴南站"), ("c01_jiaxing_south_stn", "嘉兴南站"), ("嘉兴高铁南站", "嘉兴南站")],
)
def test_search_by_english_name_code_and_alias(overview: Page, query: str, expected: str) -> None:
    page = overview
    page.locator("#jx-search-input").fill(query)
    page.locator(".jx-search-result").first.wait_for(timeout=5_000)
    page.locator("#jx-search-input").press("Enter")
    page.locator(".leaflet-popup-content").wait_for(timeout=5_000)
    assert expected in page.locator(".leaflet-popup-content .jx-popup-name").inner_text()
    page.evaluate("() => window.jxplanMap.closePopup()")


def test_search_without_match_says_so(overview: Page) -> None:
    page = overview
    page.locator("#jx-search-input").fill("没有这个地方 no such place")
    assert page.locator(".jx-search-none").inner_text() == "未找到 Nothing found"
    assert page.locator(".jx-search-result").count() == 0
    page.locator("#jx-search-input").fill("")


def _station_id(base: str) -> int:
    response = httpx.get(f"{base}/collections/rail_stations/items", params={"f": "json", "limit": 1000})
    response.raise_for_status()
    for feature in response.json()["features"]:
        if feature["properties"]["code"] == "c01_jiaxing_south_stn":
            return int(feature["id"])
    raise AssertionError("no 嘉兴南站 in rail_stations")


def test_collection_map_page(browser: Browser, live_server: str) -> None:  # noqa: F811
    """/collections/{id}/map: the layer over the boundaries, zoomed to it; linked from the collection page."""
    page = _open(browser, f"{live_server}/collections/rail_stations/map", 2, Traffic(), [])
    assert page.evaluate("() => window.jxplanFocused") is True
    state = page.evaluate("() => window.jxplanLayers")
    assert set(state) == {"admin_boundaries", "rail_stations"}
    assert all(info["state"] == "done" for info in state.values())
    assert _layer_paths(page, ".jxplan-layer-rail_stations") >= 1
    assert page.locator(".jx-legend").is_visible()
    page.close()
    html = httpx.get(f"{live_server}/collections/rail_stations", params={"f": "html"}).text
    assert "/collections/rail_stations/map" in html


def test_feature_map_page(browser: Browser, live_server: str, output_dir: Path) -> None:  # noqa: F811
    """/collections/{id}/items/{fid}/map: zoomed to the feature with its popup open; linked from its page."""
    fid = _station_id(live_server)
    page = _open(browser, f"{live_server}/collections/rail_stations/items/{fid}/map", 2, Traffic(), [])
    assert page.evaluate("() => window.jxplanFocused") is True
    assert "嘉兴南站" in page.title() and "Jiaxing South Railway Station" in page.title()
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for(timeout=5_000)
    assert "嘉兴南站" in popup.locator(".jx-popup-name").inner_text()
    _settle_fonts(page)
    page.screenshot(path=str(output_dir / "feature-map.png"))
    page.close()
    html = httpx.get(f"{live_server}/collections/rail_stations/items/{fid}", params={"f": "html"}).text
    assert f"/collections/rail_stations/items/{fid}/map" in html


def test_feature_map_of_unknown_feature_is_not_found(live_server: str) -> None:
    assert httpx.get(f"{live_server}/collections/rail_stations/items/999999999/map").status_code == 404
    assert httpx.get(f"{live_server}/collections/rail_stations/items/abc/map").status_code == 404
    assert httpx.get(f"{live_server}/collections/nope/map").status_code == 404


def test_feature_map_without_location_says_so(browser: Browser, live_server: str) -> None:  # noqa: F811
    """A feature the plan names but nobody has located yet: its map page says so instead of a popup."""
    response = httpx.get(
        f"{live_server}/collections/road_projects/items", params={"f": "json", "limit": 1000}
    )
    unlocated = [f for f in response.json()["features"] if f["geometry"] is None]
    assert unlocated, "road_projects has no feature without location any more; pick another layer"
    fid = unlocated[0]["id"]
    page = _open(browser, f"{live_server}/collections/road_projects/items/{fid}/map", 2, Traffic(), [])
    page.wait_for_function("window.jxplanFocused !== null", timeout=LOAD_TIMEOUT_MS)
    assert page.evaluate("() => window.jxplanFocused") is False
    assert page.locator(".jx-notice").inner_text() == "此要素尚无位置 This feature has no location yet"
    assert unlocated[0]["properties"]["name_zh"] in page.title()
    page.close()
