"""Security fixtures: the real service on a private database holding a feature written through the API
with hostile property values and a map drawing its layer from vector tiles; Chromium pages watched for
policy violations, script errors and dialogs."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from typing import Any, NamedTuple

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, Page, Route
from sqlalchemy import Engine

from geo_service.app import create_app
from geo_service.catalog import Catalog, load_catalog
from geo_service.db.engine import sync_engine
from geo_service.editing.keys import add_key
from geo_service.loader import load
from geo_service.settings import PROJECT_ROOT, Settings
from tests.conftest import private_database, running_server
from tests.mapview.test_browser import LOAD_TIMEOUT_MS, browser
from tests.mapview.test_editor import _choose_layer, _use_key

__all__ = ["browser"]  # the Chromium fixture of the map tests, for every browser test here

HOSTILE_CODE = "hostile_probe"
HOSTILE_POINT = (120.93, 30.83)  # lon, lat: open country in 嘉善, where no other station is drawn
# Each value would run script, or set `window.jxHostile`, or open a dialog, if it were inserted as markup,
# followed as a link or compiled as a template; every one must be shown as the text it is.
HOSTILE_PROPERTIES: dict[str, Any] = {
    "code": HOSTILE_CODE,
    "name_zh": '<script>window.jxHostile = 1</script>"><img src=x onerror="window.jxHostile = 2">{{ 7*7 }}',
    "name_en": '<svg onload="window.jxHostile = 3"><circle r="9"/></svg> {{ config }} {% raw %}',
    "category": "rail_station\"><img src=x onerror=alert('category')>",
    "status": "planned",
    "accuracy": "approximate",
    "county": ["330421"],
    "plan_text": "\"><img src=x onerror=alert('plan')><b>not bold</b> ${7*7} <%= 7*7 %>",
    "plan_section": "<iframe src=javascript:alert('section')></iframe>",
    "source": "<a href=\"javascript:alert('source')\">a link?</a>",
    "source_url": "javascript:alert('source_url')",
    "note": "JaVaScRiPt:window.jxHostile=4 <style>body{display:none}</style>",
    "aliases": ["<svg/onload=alert('alias')>", "{{ 7*7 }}"],
}
TILES_MAP = "hostile_tiles"

OSM_HOST = "tile.openstreetmap.org"
# A 1×1 PNG, answered for every OpenStreetMap tile so that the basemap "loads" without the internet.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


class HostileSite(NamedTuple):
    """The served site, its database, an editor key and the hostile feature's id."""

    base: str
    engine: Engine
    editor_key: str
    feature_id: int
    catalog: Catalog


@pytest.fixture(scope="session")
def hostile_site(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileSite]:
    """Every layer, the overview map and a map of rail stations drawn from vector tiles around the hostile
    feature, which is created through `POST /collections/rail_stations/items` with an editor key."""
    maps = tmp_path_factory.mktemp("hostile_maps")
    shutil.copy(PROJECT_ROOT / "maps" / "overview.yaml", maps)
    doc = {
        "id": TILES_MAP,
        "title": {"zh": "瓦片<b>地图</b> {{ 7*7 }}", "en": "Tiles <i>map</i>"},
        "description": {"zh": "矢量瓦片。", "en": "Vector tiles."},
        "center": [HOSTILE_POINT[1], HOSTILE_POINT[0]],
        "zoom": 13,
        "layers": [
            {"layer": "admin_boundaries", "source": "tiles"},
            {"layer": "rail_stations", "source": "tiles"},
        ],
    }
    (maps / f"{TILES_MAP}.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    catalog = load_catalog(PROJECT_ROOT / "layers", maps)
    with private_database(server_url, "hostile") as url:
        engine = sync_engine(url)
        load(engine, catalog)
        key = add_key(engine, "安全测试 security", "editor")
        settings = Settings(database_url=url, data_dir=tmp_path_factory.mktemp("hostile"))
        with running_server(create_app(settings, catalog)) as base:
            created = httpx.post(
                f"{base}/collections/rail_stations/items",
                json={
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": list(HOSTILE_POINT)},
                    "properties": HOSTILE_PROPERTIES,
                },
                headers={"Authorization": f"Bearer {key}"},
            )
            assert created.status_code == 201, created.text
            feature_id = int(created.headers["location"].rsplit("/", 1)[-1])
            yield HostileSite(base, engine, key, feature_id, catalog)
        engine.dispose()


WATCH_POLICY = """
window.jxViolations = [];
document.addEventListener('securitypolicyviolation', (e) => window.jxViolations.push(
    `${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`));
"""


class Watched:
    """A page whose policy violations, console errors about the policy, page errors and dialogs are kept."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.console: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.add_init_script(WATCH_POLICY)
        page.on(
            "console", lambda m: self.console.append(m.text) if "Content Security Policy" in m.text else None
        )
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))
        page.route("**/*", self._route)

    @staticmethod
    def _route(route: Route) -> None:
        host = route.request.url.split("/")[2].split(":")[0]
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        elif host == OSM_HOST:
            route.fulfill(status=200, content_type="image/png", body=PNG)
        else:
            route.abort("internetdisconnected")

    def violations(self) -> list[str]:
        """Every violation reported in any frame of the page, and the console's policy errors."""
        found = [v for frame in self.page.frames for v in frame.evaluate("() => window.jxViolations || []")]
        return found + self.console

    def assert_clean(self) -> None:
        """No violation, no script error, no dialog."""
        assert self.violations() == [], "\n".join(self.violations())
        assert self.errors == []
        assert self.dialogs == []


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    """A fresh Chromium page, watched."""
    page = browser.new_page(viewport={"width": 1300, "height": 850}, locale="zh-CN")
    yield Watched(page)
    page.close()


def open_editor(page: Page, site: HostileSite) -> None:
    """The editor, signed in with the site's editor key, showing the layer of the hostile feature."""
    page.goto(f"{site.base}/editor")
    page.wait_for_function("window.jxplanEditor !== undefined", timeout=LOAD_TIMEOUT_MS)
    _use_key(page, site.editor_key)
    page.wait_for_function("window.jxplanEditor.state.caller?.role === 'editor'")
    _choose_layer(page, "rail_stations")
