"""Planning analysis in headless Chromium against the real service on real PostGIS, offline: the Site check
tool of the map pages (a drawn polygon over 南湖 lists the conflict first and the nearest station; a picked
feature; a site outside Jiaxing shows the server's message), the County summary page (seven county polygons,
a chart, eight table rows, a CSV download) and the editor's Check button."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page

from geo_service.catalog import Catalog
from tests.mapview.conftest import LOCAL_HOSTS, PROBE_NAME, PROBE_PLAN_TEXT, EditorServer, block_outside
from tests.mapview.test_browser import LOAD_TIMEOUT_MS, Traffic, browser  # noqa: F401  (the browser fixture)

MAP = "ecology_culture"  # 生态与文化: the ecology and culture areas, 南湖 among them
LAKE = "e19_nanhu_lake"
STATION = "c01_jiaxing_south_stn"  # 嘉兴南站
Seeds = dict[str, dict[str, dict[str, Any]]]
# a square over 南湖 (the lake's schematic disc is centred on 30.76 N, 120.76 E); 嘉兴南站 is 7 km south-east
OVER_THE_LAKE = [(30.7565, 120.7565), (30.7565, 120.7635), (30.7635, 120.7635), (30.7635, 120.7565)]
# west of 杭州, well outside 嘉兴
OUTSIDE = [(30.20, 119.90), (30.20, 119.95), (30.24, 119.95), (30.24, 119.90)]
CHECK_TIMEOUT_MS = 20_000


class Opened(NamedTuple):
    page: Page
    traffic: Traffic
    console: list[str]


def _open(browser: Browser, url: str) -> Opened:  # noqa: F811
    """A page with every request off this machine refused, its requests and console errors recorded."""
    traffic = Traffic()
    console: list[str] = []
    page = browser.new_page(viewport={"width": 1400, "height": 900}, locale="zh-CN", accept_downloads=True)
    page.route("**/*", block_outside)
    traffic.watch(page)
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: console.append(str(error)))
    page.goto(url)
    return Opened(page, traffic, console)


def _local_only(opened: Opened) -> None:
    elsewhere = {host for host in opened.traffic.hosts() if host not in LOCAL_HOSTS}
    assert not elsewhere, f"requests to {sorted(elsewhere)}"
    policy = [text for text in opened.console if "Content Security Policy" in text]
    assert not policy, policy


@pytest.fixture(scope="module")
def map_page(browser: Browser, live_server: str, catalog: Catalog) -> Iterator[Opened]:  # noqa: F811
    """The ecology and culture map with its layers loaded."""
    opened = _open(browser, f"{live_server}/maps/{MAP}")
    count = len(catalog.maps[MAP].layers)
    opened.page.wait_for_function(f"window.jxplanLoaded === {count}", timeout=LOAD_TIMEOUT_MS)
    opened.page.wait_for_function("window.jxplanSiteCheck !== undefined")
    yield opened
    opened.page.close()


def _screen(page: Page, lat: float, lon: float) -> tuple[float, float]:
    """Page coordinates of a point of the map."""
    point: dict[str, float] = page.evaluate(
        """([lat, lon]) => {
            const map = window.jxplanMap;
            const box = map.getContainer().getBoundingClientRect();
            const p = map.latLngToContainerPoint([lat, lon]);
            return {x: box.left + p.x, y: box.top + p.y};
        }""",
        [lat, lon],
    )
    return point["x"], point["y"]


def _view(page: Page, corners: list[tuple[float, float]], zoom: int) -> None:
    lat = sum(c[0] for c in corners) / len(corners)
    lon = sum(c[1] for c in corners) / len(corners)
    page.evaluate(f"() => window.jxplanMap.setView([{lat}, {lon}], {zoom}, {{animate: false}})")


def _click_corners(page: Page, corners: list[tuple[float, float]]) -> None:
    for lat, lon in [*corners, corners[0]]:
        x, y = _screen(page, lat, lon)
        page.mouse.click(x, y)
        page.wait_for_timeout(100)


def _open_tool(page: Page) -> None:
    if page.locator(".jx-sc-panel").is_hidden():
        page.click(".jx-sc-toggle")
    page.locator(".jx-sc-panel").wait_for(state="visible")


def _check_drawn(page: Page, corners: list[tuple[float, float]], zoom: int = 15) -> dict[str, Any]:
    """Open the tool, draw the polygon with the mouse, wait for the answer; the tool's state."""
    _open_tool(page)
    page.click(".jx-sc-clear")
    _view(page, corners, zoom)
    runs = page.evaluate("() => window.jxplanSiteCheck.runs")
    page.click(".jx-sc-draw")
    _click_corners(page, corners)
    page.wait_for_function(
        "(runs) => window.jxplanSiteCheck.runs > runs && !window.jxplanSiteCheck.running",
        arg=runs,
        timeout=CHECK_TIMEOUT_MS,
    )
    state: dict[str, Any] = page.evaluate("() => window.jxplanSiteCheck")
    return state


def test_drawn_site_lists_the_conflict_first(map_page: Opened, live_server: str, output_dir: Path) -> None:
    """A polygon drawn over 南湖: the panel names the county, lists 南湖 first, in red, as a conflict with its
    reason and schematic accuracy, and the nearest station with its distance; the conflicting items are
    highlighted on the map in red; every item links to its page."""
    page = map_page.page
    state = _check_drawn(page, OVER_THE_LAKE)
    report = state["report"]
    assert report is not None, state["problem"]
    assert report["conflicts"] >= 1 and report["items"][0]["conflict"]
    panel = page.locator(".jx-sc-panel .jx-sc-result")
    assert report["county"]["name_zh"] in panel.locator(".jx-sc-where").inner_text()
    first = panel.locator(".jx-sc-item").first
    assert "jx-sc-conflict" in (first.get_attribute("class") or "")
    assert "冲突 conflict" in first.locator(".jx-sc-badge").inner_text()
    lake = next(item for item in report["items"] if item["code"] == LAKE)
    assert lake["conflict"]
    lake_node = panel.locator(f'.jx-sc-item[data-layer="ecology_culture"][data-id="{lake["id"]}"]')
    text = lake_node.inner_text()
    assert "南湖" in text and lake["name_en"] in text
    if lake["conflict_reason"]:
        assert lake["conflict_reason"] in lake_node.locator(".jx-sc-reason").inner_text()
    assert "示意 schematic ±" in text
    path = urlsplit(lake["href"]).path  # the server's hrefs are absolute; the page links its own paths
    assert path == f"/collections/ecology_culture/items/{lake['id']}"
    assert lake_node.locator("a.jx-sc-details").get_attribute("href") == path + "?f=html"
    assert lake_node.locator("a.jx-sc-map").get_attribute("href") == path + "/map"
    # the red of a conflict is the stylesheet's, on the item and on the map
    color = first.evaluate("node => getComputedStyle(node).borderLeftColor")
    assert color == "rgb(215, 25, 28)"
    station = report["nearest"]["rail_station"]
    assert station is not None
    near = panel.locator(".jx-sc-near-rail_station").inner_text()
    assert station["name_zh"] in near and ("km" in near or " m" in near)
    page.wait_for_function("() => window.jxplanSiteCheck.highlighted >= 1")
    assert page.locator("path.jx-sc-highlight-conflict").count() >= 1
    assert page.locator("path.jx-sc-highlight-site").count() == 1
    # the report is the server's: the same geometry posted directly gives the same items
    direct = httpx.post(
        f"{live_server}/processes/site-check/execution", json={"inputs": {"site": state["site"]}}
    )
    assert direct.status_code == 200, direct.text
    assert [(i["layer"], i["id"]) for i in direct.json()["items"]] == [
        (i["layer"], i["id"]) for i in report["items"]
    ]
    page.mouse.move(700, 15)  # onto the header, off the map: no tooltip covers the picture
    page.wait_for_timeout(300)
    page.screenshot(path=str(output_dir / "site-check.png"))  # docs/img/site-check.png is a copy


def test_a_site_by_the_station_names_it_nearest(map_page: Opened, seeds: Seeds) -> None:
    """A small polygon drawn 300 m from 嘉兴南站: the panel names it as the nearest station, with distance."""
    lon, lat = seeds["rail_stations"][STATION]["geometry"]["coordinates"]
    corners = [
        (lat + 0.002, lon + 0.002),
        (lat + 0.002, lon + 0.004),
        (lat + 0.004, lon + 0.004),
        (lat + 0.004, lon + 0.002),
    ]
    state = _check_drawn(map_page.page, corners)
    assert state["report"] is not None, state["problem"]
    station = state["report"]["nearest"]["rail_station"]
    assert station["code"] == STATION and station["distance_m"] < 1000
    near = map_page.page.locator(".jx-sc-result .jx-sc-near-rail_station").inner_text()
    assert "嘉兴南站" in near and " m" in near


def test_a_picked_feature_is_checked_by_its_href(map_page: Opened) -> None:
    """Pick a feature, click 南湖 on the map: the check runs on its href (no popup opens) and the panel shows
    the report; Clear empties the panel and the highlights."""
    page = map_page.page
    _open_tool(page)
    page.click(".jx-sc-clear")
    page.evaluate("() => window.jxplanMap.setView([30.760, 120.760], 15, {animate: false})")
    runs = page.evaluate("() => window.jxplanSiteCheck.runs")
    page.click(".jx-sc-pick")
    x, y = _screen(page, 30.760, 120.757)
    page.mouse.click(x, y)
    page.wait_for_function(
        "(runs) => window.jxplanSiteCheck.runs > runs && !window.jxplanSiteCheck.running",
        arg=runs,
        timeout=CHECK_TIMEOUT_MS,
    )
    state = page.evaluate("() => window.jxplanSiteCheck")
    assert isinstance(state["site"], str) and state["site"].startswith("/collections/ecology_culture/items/")
    assert state["report"] is not None, state["problem"]
    assert state["report"]["site"]["source"] == state["site"]
    assert page.locator(".leaflet-popup").count() == 0, page.locator(".leaflet-popup").all_inner_texts()
    assert page.locator(".jx-sc-result .jx-sc-summary").is_visible()
    assert page.locator("path.jx-sc-highlight-site").count() == 1
    page.click(".jx-sc-clear")
    assert page.locator(".jx-sc-result").inner_text() == ""
    assert page.locator("path.jx-sc-highlight").count() == 0


def test_a_site_outside_jiaxing_shows_the_servers_message(map_page: Opened, live_server: str) -> None:
    """A polygon drawn west of 杭州: the panel shows the server's problem detail, word for word."""
    page = map_page.page
    state = _check_drawn(page, OUTSIDE, zoom=13)
    assert state["report"] is None and state["problem"] is not None
    direct = httpx.post(
        f"{live_server}/processes/site-check/execution", json={"inputs": {"site": state["site"]}}
    )
    assert direct.status_code == 400
    assert direct.headers["content-type"].startswith("application/problem+json")
    detail = direct.json()["detail"]
    assert page.locator(".jx-sc-result .jx-sc-error-detail").inner_text() == detail
    assert state["problem"]["status"] == 400
    page.click(".jx-sc-clear")


def test_map_page_stays_offline(map_page: Opened) -> None:
    """The tool's files (Geoman, the analysis script) come from this service; nothing breaks the policy."""
    _local_only(map_page)
    urls = map_page.traffic.urls
    assert any("/static/vendor/@geoman-io/leaflet-geoman-free/" in url for url in urls)
    assert any("/static/app/jxplan-analysis.js" in url for url in urls)


def test_county_summary_page(browser: Browser, live_server: str, output_dir: Path) -> None:  # noqa: F811
    """Seven county polygons coloured by the share built, a legend, a chart with content, the table with the
    city and its seven counties (Chinese first), and a CSV file with a header line."""
    opened = _open(browser, f"{live_server}/maps/county_summary")
    page = opened.page
    page.wait_for_function(
        "() => window.jxplanSummary && window.jxplanSummary.state !== 'loading'", timeout=LOAD_TIMEOUT_MS
    )
    summary = page.evaluate("() => ({state: window.jxplanSummary.state, error: window.jxplanSummary.error})")
    assert summary["state"] == "done", summary
    assert page.locator("path.jx-cs-county").count() == 7
    fills = page.locator("path.jx-cs-county").evaluate_all("paths => paths.map(p => p.getAttribute('fill'))")
    assert all(fills), fills
    assert "已建成比例 Built share" in page.locator(".jx-cs-legend").inner_text()
    rows = page.locator("#jx-cs-table tbody tr")
    assert rows.count() == 8
    assert "嘉兴市" in rows.first.inner_text() and "Jiaxing" in rows.first.inner_text()
    header = page.locator("#jx-cs-table thead").inner_text()
    assert header.index("地区") < header.index("Area")
    painted = page.evaluate(
        """() => {
            const canvas = document.getElementById('jx-cs-chart');
            const chart = Chart.getChart(canvas);
            const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            let inked = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i] > 0) inked++;
            return {inked, datasets: chart.data.datasets.length, labels: chart.data.labels.length};
        }"""
    )
    assert painted["labels"] == 7 and painted["datasets"] == 4 and painted["inked"] > 1000, painted
    with page.expect_download(timeout=CHECK_TIMEOUT_MS) as download_info:
        page.click("#jx-cs-csv")
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    path = download.path()
    assert path is not None
    lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    assert len(lines) >= 9 and "adcode" in lines[0]
    page.wait_for_timeout(300)
    page.screenshot(path=str(output_dir / "county-summary.png"))  # docs/img/county-summary.png: a copy
    _local_only(opened)
    assert not opened.traffic.failures, opened.traffic.failures
    assert any("/static/vendor/chart.js/dist/" in url for url in opened.traffic.urls)
    page.close()


def test_every_map_page_has_the_tool(live_server: str) -> None:
    """The thematic maps, a collection's map and a feature's map carry the Site check tool, its script and
    Geoman; the editor carries the analysis script for its Check button."""
    first = httpx.get(f"{live_server}/collections/ecology_culture/items?f=json&limit=1").json()
    feature_id = first["features"][0]["id"]
    for path in (
        "/maps/overview",
        f"/maps/{MAP}",
        "/collections/rail_stations/map",
        f"/collections/ecology_culture/items/{feature_id}/map",
    ):
        page = httpx.get(live_server + path)
        assert page.status_code == 200, path
        assert "jxplan.siteCheckTool(" in page.text, path
        assert "/static/app/jxplan-analysis.js" in page.text and "leaflet-geoman.js" in page.text, path
    editor = httpx.get(f"{live_server}/editor").text
    assert "/static/app/jxplan-analysis.js" in editor and "jxplan.siteCheckTool(" not in editor


def test_county_summary_is_listed(live_server: str) -> None:
    """/maps lists the County summary after the thematic maps."""
    index = httpx.get(f"{live_server}/maps").text
    assert 'href="/maps/county_summary"' in index
    assert index.index('href="/maps/overview"') < index.index('href="/maps/county_summary"')


def test_editor_checks_the_shape_before_saving(browser: Browser, editor_server: EditorServer) -> None:  # noqa: F811
    """In the editor a zone drawn over 南湖 is checked with Check: the conflict is listed in the panel with a
    warning, and Save still creates the feature. An item with markup in its name (added first) is shown as
    text."""
    auth = {"Authorization": f"Bearer {editor_server.editor_key}"}
    ring = [[lon, lat] for lat, lon in [*OVER_THE_LAKE, OVER_THE_LAKE[0]]]
    probe = httpx.post(
        f"{editor_server.base}/collections/ecology_culture/items",
        json={
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {
                "code": "analysis_ui_probe",
                "name_zh": PROBE_NAME,
                "name_en": "Probe <script>window.jxplanInjected = 2</script>",
                "category": "ecology",
                "status": "planned",
                "accuracy": "approximate",
                "county": ["330402"],
                "plan_text": PROBE_PLAN_TEXT,
            },
        },
        headers=auth,
    )
    assert probe.status_code == 201, probe.text
    opened = _open(browser, f"{editor_server.base}/editor")
    page = opened.page
    page.on("dialog", lambda dialog: dialog.accept())
    page.wait_for_function("window.jxplanEditor !== undefined", timeout=LOAD_TIMEOUT_MS)
    page.fill(".jx-ed-key input[name=key]", editor_server.editor_key)
    page.click(".jx-ed-usekey")
    page.wait_for_function("window.jxplanEditor.state.caller?.role === 'editor'")
    page.select_option(".jx-ed-panel select[name=layer]", "strategic_platforms")
    page.wait_for_function(
        "() => document.querySelector('.jx-ed-layerinfo').dataset.loaded !== undefined",
        timeout=LOAD_TIMEOUT_MS,
    )
    _view(page, OVER_THE_LAKE, 15)
    page.click(".jx-ed-draw")
    _click_corners(page, OVER_THE_LAKE)
    page.locator(".jx-ed-form").wait_for(state="visible", timeout=5_000)
    page.click(".jx-ed-checkbtn")
    page.wait_for_function(
        "() => window.jxplanEditor.state.check && !window.jxplanEditor.state.check.running",
        timeout=CHECK_TIMEOUT_MS,
    )
    check = page.evaluate("() => window.jxplanEditor.state.check")
    assert check["report"] is not None, check["problem"]
    box = page.locator(".jx-ed-check")
    assert "jx-sc-conflict" in (box.locator(".jx-sc-item").first.get_attribute("class") or "")
    assert "南湖" in box.inner_text()
    assert "仍可保存" in box.locator(".jx-ed-warning").inner_text()
    assert PROBE_NAME in box.inner_text() and box.locator("img, script, b").count() == 0
    assert page.evaluate("() => window.jxplanInjected") is None
    assert page.locator("path.jx-sc-highlight-conflict").count() >= 1
    for name, value in {
        "code": "analysis_ui_zone",
        "name_zh": "南湖边的片区",
        "name_en": "Zone by the lake",
        "category": "strategic_platform",
        "status": "planned",
        "accuracy": "approximate",
        "county": "330402",
    }.items():
        field = page.locator(f".jx-ed-form [name={name}]")
        if field.evaluate("node => node.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    page.click(".jx-ed-save")
    page.wait_for_function(
        "() => (document.querySelector('.jx-ed-messages')?.textContent || '').includes('已创建 Created')",
        timeout=10_000,
    )
    # the warning stays beside the saved feature
    assert "仍可保存" in page.locator(".jx-ed-check").inner_text()
    _local_only(opened)
    page.close()
