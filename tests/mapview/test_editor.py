"""The browser editor driven in headless Chromium against the real service on a private database: a key is
checked, a polygon drawn with the mouse is saved and is there after a reload, vertices are dragged, a stale
save shows the other version and offers to load it, an invalid polygon shows PostGIS's reason next to it,
and a delete goes to history."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import Engine, text

from tests.conftest import database_state
from tests.mapview.conftest import EditorServer, block_outside
from tests.mapview.test_browser import LOAD_TIMEOUT_MS, Traffic, browser  # noqa: F401  (the browser fixture)

LAYER = "strategic_platforms"
CODE = "editor_drawn_zone"
# an empty stretch of 嘉兴 between 秀洲 and 南湖 at zoom 14, where the test draws
VIEW = (30.70, 120.70, 14)


@pytest.fixture(scope="module")
def page(browser: Browser, editor_server: EditorServer) -> Iterator[tuple[Page, Traffic]]:  # noqa: F811
    """The editor page, basemap hosts blocked, with every request recorded."""
    traffic = Traffic()
    opened = browser.new_page(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    traffic.watch(opened)
    opened.route("**/*", block_outside)
    opened.on("dialog", lambda dialog: dialog.accept())
    opened.goto(f"{editor_server.base}/editor")
    opened.wait_for_function("window.jxplanEditor !== undefined", timeout=LOAD_TIMEOUT_MS)
    _use_key(opened, editor_server.editor_key)
    opened.wait_for_function("window.jxplanEditor.state.caller?.role === 'editor'")
    yield opened, traffic
    opened.close()


def _use_key(page: Page, key: str) -> None:
    page.fill(".jx-ed-key input[name=key]", key)
    page.click(".jx-ed-usekey")


def _choose_layer(page: Page, layer: str = LAYER) -> None:
    page.wait_for_function("window.jxplanEditor !== undefined")
    page.evaluate(
        "() => { const s = document.querySelector('.jx-ed-panel select[name=layer]'); s.value = ''; }"
    )
    page.select_option(".jx-ed-panel select[name=layer]", layer)
    page.wait_for_function(
        "() => document.querySelector('.jx-ed-layerinfo').dataset.loaded !== undefined",
        timeout=LOAD_TIMEOUT_MS,
    )
    page.evaluate(f"() => window.jxplanMap.setView([{VIEW[0]}, {VIEW[1]}], {VIEW[2]}, {{animate: false}})")


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


def _draw_polygon(page: Page, corners: list[tuple[float, float]]) -> None:
    """Click Draw, click each corner on the map, and close the ring on the first corner."""
    page.click(".jx-ed-draw")
    for lat, lon in [*corners, corners[0]]:
        x, y = _screen(page, lat, lon)
        page.mouse.click(x, y)
        page.wait_for_timeout(120)
    page.locator(".jx-ed-form").wait_for(state="visible", timeout=5_000)


def _fill(page: Page, values: dict[str, str]) -> None:
    for name, value in values.items():
        field = page.locator(f".jx-ed-form [name={name}]")
        if field.evaluate("node => node.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)


def _message(page: Page, *words: str) -> str:
    locator = page.locator(".jx-ed-messages .jx-ed-msg")
    for word in words:
        page.wait_for_function(
            "(word) => (document.querySelector('.jx-ed-messages')?.textContent || '').includes(word)",
            arg=word,
            timeout=10_000,
        )
    return locator.inner_text()


def _stored(engine: Engine, code: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT id, version, properties, updated_by, GeometryType(geom) AS kind,"
                " ST_NPoints(geom) AS points, ST_AsText(geom) AS wkt FROM features WHERE code = :c"
            ),
            {"c": code},
        ).first()


def _drawn_zone(server: EditorServer) -> Any:
    """The zone the draw test saves, created through the API when that test did not run first."""
    if _stored(server.engine, CODE) is None:
        ring = [[lon, lat] for lat, lon in [*ZONE, ZONE[0]]]
        properties = PROPERTIES | {"county": ["330402", "330411"]}
        created = httpx.post(
            f"{server.base}/collections/{LAYER}/items",
            json={
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": properties,
            },
            headers={"Authorization": f"Bearer {server.editor_key}"},
        )
        assert created.status_code == 201, created.text
    return _stored(server.engine, CODE)


def _click_feature(page: Page, code: str) -> None:
    """Click the middle of a drawn feature and wait until the form shows it."""
    center: dict[str, float] = page.evaluate(
        """(code) => {
            const layer = window.jxplanEditor.layerOf(code);
            const c = layer.getBounds().getCenter();
            return {lat: c.lat, lng: c.lng};
        }""",
        code,
    )
    x, y = _screen(page, center["lat"], center["lng"])
    page.mouse.click(x, y)
    page.wait_for_function(
        "(code) => window.jxplanEditor.state.selected?.feature?.properties?.code === code", arg=code
    )


ZONE = [(30.700, 120.695), (30.700, 120.705), (30.706, 120.705), (30.706, 120.695)]
PROPERTIES = {
    "code": CODE,
    "name_zh": "浏览器绘制片区",
    "name_en": "Zone drawn in the browser",
    "category": "strategic_platform",
    "status": "planned",
    "accuracy": "approximate",
    "county": "330402、330411",
}


def test_page_is_offline_and_checks_the_key(page: tuple[Page, Traffic], editor_server: EditorServer) -> None:
    """The page loads Geoman and its own script from the service; a wrong key is refused with the server's
    message, a reader key signs in but cannot draw, an editor key can."""
    opened, traffic = page
    assert opened.evaluate("() => typeof L.PM") == "object"
    # the maps' search box and status filter act on plan layers, which this page does not draw
    assert opened.locator(".jx-search, .jx-filter").count() == 0
    assert any("/static/vendor/@geoman-io/leaflet-geoman-free/" in url for url in traffic.urls)
    _choose_layer(opened)
    _use_key(opened, "jxp_not_a_key")
    assert "not valid" in _message(opened, "not valid")
    assert opened.locator(".jx-ed-draw").is_disabled()
    _use_key(opened, editor_server.reader_key)
    opened.wait_for_function("window.jxplanEditor.state.caller?.role === 'reader'")
    assert opened.locator(".jx-ed-draw").is_disabled()
    _use_key(opened, editor_server.editor_key)
    opened.wait_for_function("window.jxplanEditor.state.caller?.role === 'editor'")
    assert opened.locator(".jx-ed-draw").is_enabled()
    assert "浏览器编辑 browser" in opened.locator(".jx-ed-keystatus").inner_text()
    local = {"127.0.0.1", "localhost"}
    assert {urlsplit(u).hostname for u in traffic.urls if u.startswith("http")} <= local | {
        urlsplit(u).hostname for u in traffic.urls if "tile" in u
    }


def test_draw_save_and_reload(
    page: tuple[Page, Traffic], editor_server: EditorServer, output_dir: Path
) -> None:
    """A polygon drawn with four clicks and described in the form is created (MultiPolygon, the key's name
    in `updated_by`); after a reload it is drawn again."""
    opened, _ = page
    _choose_layer(opened)
    _draw_polygon(opened, ZONE)
    _fill(opened, PROPERTIES)
    opened.click(".jx-ed-save")
    _message(opened, "已创建 Created")
    row = _stored(editor_server.engine, CODE)
    assert row is not None and row.kind == "MULTIPOLYGON" and row.points == 5
    assert row.updated_by == "浏览器编辑 browser"
    assert row.properties["county"] == ["330402", "330411"]
    assert row.properties["name_en"] == "Zone drawn in the browser"
    opened.screenshot(path=str(output_dir / "editor.png"))
    opened.reload()
    opened.wait_for_function("window.jxplanEditor.state.caller?.role === 'editor'")  # the key survives
    _choose_layer(opened)
    assert CODE in opened.evaluate("() => window.jxplanEditor.codes()")
    assert opened.locator("path.jx-ed-feature").count() >= 1


def test_vertices_are_dragged_and_saved(page: tuple[Page, Traffic], editor_server: EditorServer) -> None:
    """Reshape: dragging a vertex marker moves that corner; the save is a new version with history."""
    _drawn_zone(editor_server)
    opened, _ = page
    _choose_layer(opened)
    _click_feature(opened, CODE)
    before = _stored(editor_server.engine, CODE)
    opened.click(".jx-ed-reshape")
    x, y = _screen(opened, *ZONE[2])
    opened.mouse.move(x, y)
    opened.mouse.down()
    opened.mouse.move(x + 30, y - 30, steps=5)
    opened.mouse.up()
    _fill(opened, {"__comment": "向东北拉一角 pull a corner north-east"})
    opened.click(".jx-ed-save")
    _message(opened, "已保存 Saved")
    after = _stored(editor_server.engine, CODE)
    assert after.version == before.version + 1 and after.wkt != before.wkt
    with editor_server.engine.connect() as conn:
        comment = conn.execute(
            text("SELECT comment FROM feature_history WHERE feature_id = :id ORDER BY version DESC LIMIT 1"),
            {"id": after.id},
        ).scalar_one()
    assert comment == "向东北拉一角 pull a corner north-east"


def test_stale_save_shows_the_other_version(page: tuple[Page, Traffic], editor_server: EditorServer) -> None:
    """Someone else saves while the page has the feature open: the page's save gets 412, shows both
    versions and what changed, and loads theirs on request; a save after that succeeds."""
    _drawn_zone(editor_server)
    opened, _ = page
    _choose_layer(opened)
    _click_feature(opened, CODE)
    row = _stored(editor_server.engine, CODE)
    other = httpx.patch(
        f"{editor_server.base}/collections/{LAYER}/items/{row.id}",
        json={"properties": {"name_zh": "同事改的名字"}},
        headers={
            "Authorization": f"Bearer {editor_server.editor_key}",
            "Content-Type": "application/merge-patch+json",
        },
    )
    assert other.status_code == 204, other.text
    _fill(opened, {"name_en": "My own English name"})
    opened.click(".jx-ed-save")
    _message(opened, "412")
    box = opened.locator(".jx-ed-conflict")
    box.wait_for(state="visible")
    assert f"version {row.version}" in box.inner_text() and f"version {row.version + 1}" in box.inner_text()
    assert "同事改的名字" in box.inner_text()
    assert _stored(editor_server.engine, CODE).properties["name_en"] == PROPERTIES["name_en"]
    opened.click(".jx-ed-reload")
    opened.wait_for_function(
        "() => document.querySelector('.jx-ed-form [name=name_zh]')?.value === '同事改的名字'"
    )
    _fill(opened, {"name_en": "My own English name"})
    opened.click(".jx-ed-save")
    _message(opened, "已保存 Saved")
    stored = _stored(editor_server.engine, CODE)
    assert stored.properties["name_zh"] == "同事改的名字"
    assert stored.properties["name_en"] == "My own English name"


def test_invalid_polygon_shows_the_reason(
    page: tuple[Page, Traffic], editor_server: EditorServer, output_dir: Path
) -> None:
    """A bow-tie polygon and a code with capitals are refused: PostGIS's reason appears on the feature, the
    code's reason beside the code field, and nothing is written."""
    opened, _ = page
    _choose_layer(opened)
    before = database_state(editor_server.engine)
    bowtie = [(30.690, 120.690), (30.696, 120.700), (30.690, 120.700), (30.696, 120.690)]
    _draw_polygon(opened, bowtie)
    _fill(opened, PROPERTIES | {"code": "Bad Code"})
    opened.click(".jx-ed-save")
    _message(opened, "Self-intersection")
    popup = opened.locator(".jx-ed-geomerror")
    popup.wait_for(state="visible")
    assert "Self-intersection" in popup.inner_text()
    code_error = opened.locator('.jx-ed-field[data-field="code"] .jx-ed-fielderror')
    assert "does not match" in code_error.inner_text()
    assert "Self-intersection" in opened.locator(".jx-ed-formerror").inner_text()  # beside Save too
    opened.screenshot(path=str(output_dir / "editor-invalid.png"))
    assert database_state(editor_server.engine) == before
    opened.click(".jx-ed-cancel")


def test_delete_goes_to_history(page: tuple[Page, Traffic], editor_server: EditorServer) -> None:
    """Delete (confirmed) removes the feature from the map and the table; it is listed as deleted."""
    _drawn_zone(editor_server)
    opened, _ = page
    _choose_layer(opened)
    _click_feature(opened, CODE)
    fid = _stored(editor_server.engine, CODE).id
    opened.click(".jx-ed-delete")
    _message(opened, "已删除 Deleted")
    assert _stored(editor_server.engine, CODE) is None
    assert CODE not in opened.evaluate("() => window.jxplanEditor.codes()")
    deleted = httpx.get(f"{editor_server.base}/collections/{LAYER}/deleted").json()
    assert fid in [entry["id"] for entry in deleted["deleted"]]


def test_feature_without_location_is_given_one(
    page: tuple[Page, Traffic], editor_server: EditorServer
) -> None:
    """A feature listed as without location is picked from the list, drawn, and saved under its own id."""
    opened, _ = page
    code = "editor_unlocated"
    created = httpx.post(
        f"{editor_server.base}/collections/{LAYER}/items",
        json={"type": "Feature", "geometry": None, "properties": PROPERTIES | {"code": code, "county": []}},
        headers={"Authorization": f"Bearer {editor_server.editor_key}"},
    )
    assert created.status_code == 201, created.text
    fid, version = _stored(editor_server.engine, code)[:2]
    _choose_layer(opened)
    opened.click(".jx-ed-unlocated summary")
    opened.locator(".jx-ed-unlocated-item", has_text=PROPERTIES["name_zh"]).click()
    opened.wait_for_function("(id) => window.jxplanEditor.state.selected?.id === id", arg=fid)
    assert "no location" in opened.locator(".jx-ed-form").inner_text()
    corners = [(30.710, 120.690), (30.710, 120.698), (30.716, 120.698)]
    _draw_polygon(opened, corners)
    opened.click(".jx-ed-save")
    _message(opened, "已保存 Saved")
    row = _stored(editor_server.engine, code)
    assert row.id == fid and row.version == version + 1 and row.kind == "MULTIPOLYGON" and row.points == 4
