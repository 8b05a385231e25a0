"""A feature written through the API with hostile property values (script tags, `"><img onerror>`, SVG with
onload, javascript: links, template syntax) on every page that shows it, in Chromium: the API's items and
feature pages, the map pages and their popups (GeoJSON and vector-tile layers), and the editor. The values
are shown as the text they are; nothing runs, no dialog opens, no javascript: link is rendered."""

from __future__ import annotations

from playwright.sync_api import Locator, Page

from tests.mapview.test_browser import LOAD_TIMEOUT_MS, OPEN_BY_CODE
from tests.mapview.test_editor import _screen
from tests.security.conftest import (
    HOSTILE_CODE,
    HOSTILE_POINT,
    HOSTILE_PROPERTIES,
    TILES_MAP,
    HostileSite,
    Watched,
    open_editor,
)

NAME = HOSTILE_PROPERTIES["name_zh"]
PLAN = HOSTILE_PROPERTIES["plan_text"]
# What a page would hold had a value been inserted as markup or followed as a link.
EXECUTED = """() => ({
    hostile: window.jxHostile === undefined ? null : window.jxHostile,
    handlers: document.querySelectorAll('[onerror], [onload], iframe').length,
    links: [...document.querySelectorAll('a[href]')].map((a) => a.getAttribute('href'))
        .filter((href) => /^\\s*javascript:/i.test(href)),
    hiddenBody: getComputedStyle(document.body).display === 'none',
})"""


def _nothing_ran(watched: Watched) -> None:
    page = watched.page
    page.wait_for_timeout(300)  # an onerror of a broken image would fire by now
    assert page.evaluate(EXECUTED) == {"hostile": None, "handlers": 0, "links": [], "hiddenBody": False}
    watched.assert_clean()


def _shows_text(locator: Locator, *texts: str) -> None:
    shown = locator.inner_text()
    for text in texts:
        assert text in shown, (text, shown)
    assert locator.locator("script, img, svg, b, iframe, style").count() == 0


def test_api_pages_show_the_values_as_text(watched: Watched, hostile_site: HostileSite) -> None:
    """The items page and the feature page show the name, the plan text and every other value literally
    (template syntax included, not evaluated); the javascript: source is not a link."""
    page = watched.page
    page.goto(f"{hostile_site.base}/collections/rail_stations/items?f=html&code={HOSTILE_CODE}")
    _shows_text(page.locator("main table"), NAME, HOSTILE_PROPERTIES["category"])
    _nothing_ran(watched)
    page.goto(f"{hostile_site.base}/collections/rail_stations/items/{hostile_site.feature_id}?f=html")
    _shows_text(page.locator("main h1"), NAME)
    _shows_text(page.locator("main blockquote"), PLAN)
    _shows_text(page.locator("main table"), HOSTILE_PROPERTIES["source_url"], HOSTILE_PROPERTIES["note"])
    assert "49" not in page.locator("main h1").inner_text()
    _nothing_ran(watched)


def _popup(page: Page) -> Locator:
    popup = page.locator(".leaflet-popup-content")
    popup.locator("blockquote.jx-plan-text").wait_for(timeout=10_000)
    return popup


def test_feature_map_and_its_popup_show_the_values_as_text(
    watched: Watched, hostile_site: HostileSite
) -> None:
    """The feature's own map page is titled with its name as text (template syntax not evaluated) and opens
    its popup, which shows the name, plan text and aliases as text and no javascript: link."""
    page = watched.page
    page.goto(f"{hostile_site.base}/collections/rail_stations/items/{hostile_site.feature_id}/map")
    popup = _popup(page)
    assert page.title().startswith(NAME)
    _shows_text(page.locator(".jx-header h1"), NAME, HOSTILE_PROPERTIES["name_en"])
    _shows_text(popup, NAME, PLAN, *HOSTILE_PROPERTIES["aliases"], HOSTILE_PROPERTIES["source"])
    assert popup.locator("a.jx-source-link").count() == 0
    _nothing_ran(watched)


def test_collection_and_tiled_maps_show_the_values_as_text(
    watched: Watched, hostile_site: HostileSite
) -> None:
    """On the collection's map (GeoJSON) the popup and tooltip show the values as text; on a map drawing
    the layer from vector tiles, clicking the station fetches it and its popup does the same."""
    page = watched.page
    page.goto(f"{hostile_site.base}/collections/rail_stations/map")
    page.wait_for_function("window.jxplanLoaded === 2", timeout=LOAD_TIMEOUT_MS)
    assert page.evaluate(OPEN_BY_CODE, HOSTILE_CODE)
    _shows_text(_popup(page), NAME, PLAN, HOSTILE_PROPERTIES["plan_section"])
    page.evaluate("() => window.jxplanMap.closePopup()")
    assert page.evaluate(OPEN_BY_CODE.replace("openPopup", "openTooltip"), HOSTILE_CODE)
    _shows_text(page.locator(".leaflet-tooltip"), NAME)
    _nothing_ran(watched)
    page.goto(f"{hostile_site.base}/maps/{TILES_MAP}")
    page.wait_for_function("window.jxplanLoaded === 2", timeout=LOAD_TIMEOUT_MS)
    page.wait_for_load_state("networkidle")
    _shows_text(page.locator(".jx-header h1"), "瓦片<b>地图</b> {{ 7*7 }}")
    page.mouse.click(*_screen(page, HOSTILE_POINT[1], HOSTILE_POINT[0]))
    _shows_text(_popup(page), NAME, PLAN)
    _nothing_ran(watched)


def test_editor_shows_the_values_as_text(watched: Watched, hostile_site: HostileSite) -> None:
    """In the editor the feature's tooltip, the selection message and the form show the values as text."""
    page = watched.page
    open_editor(page, hostile_site)
    page.evaluate("(code) => window.jxplanEditor.layerOf(code).openTooltip()", HOSTILE_CODE)
    _shows_text(page.locator(".leaflet-tooltip"), NAME)
    page.evaluate("(code) => window.jxplanEditor.layerOf(code).fire('click')", HOSTILE_CODE)
    page.wait_for_function(
        "(code) => window.jxplanEditor.state.selected?.feature?.properties?.code === code", arg=HOSTILE_CODE
    )
    _shows_text(page.locator(".jx-ed-messages"), NAME)
    for name in ("name_zh", "name_en", "plan_text", "note"):
        assert page.locator(f".jx-ed-form [name={name}]").input_value() == HOSTILE_PROPERTIES[name]
    _nothing_ran(watched)
