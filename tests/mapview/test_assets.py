"""The maps work offline: every file a page links is installed locally and served by us."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import folium
import pytest
from branca.element import Figure, JavascriptLink
from fastapi import FastAPI
from fastapi.testclient import TestClient
from folium import plugins

from geo_service.catalog import Catalog
from geo_service.mapview.assets import (
    CDN_FILES,
    UnmappedAssetError,
    check_offline,
    localize,
    missing_assets,
    source_files,
    vendor_paths,
    vendor_url,
)
from geo_service.mapview.basemaps import (
    OSM_ATTRIBUTION_URL,
    OSM_TILES,
    TIANDITU_ATTRIBUTION_URL,
    tianditu_tiles,
)
from geo_service.mapview.derived_css import awesome_rotate_css, glyphicons_css
from geo_service.mapview.render import render_map
from geo_service.mapview.static import mount_static
from geo_service.settings import Settings

TIANDITU_KEY = "test-key"

# The only absolute URLs a page may contain: tile templates the browser fetches when a basemap is
# switched on, and the attribution links shown with those tiles.
ALLOWED_URLS = {
    OSM_TILES,
    OSM_ATTRIBUTION_URL,
    tianditu_tiles("vec", TIANDITU_KEY),
    tianditu_tiles("cva", TIANDITU_KEY),
    TIANDITU_ATTRIBUTION_URL,
}

SETTINGS = [
    Settings(basemap="none", tianditu_key=None),
    Settings(basemap="osm", tianditu_key=TIANDITU_KEY),
]


@pytest.fixture(scope="module")
def static_client() -> TestClient:
    """The static files on an app of their own."""
    app = FastAPI()
    mount_static(app)
    return TestClient(app)


def _unescape_script(html: str) -> str:
    """Undo the JSON escapes of inline scripts, so that URLs in them read as written."""
    html = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), html)
    return html.replace('\\"', '"').replace("\\/", "/")


def absolute_urls(html: str) -> set[str]:
    return set(re.findall(r"https?://[^\s\"'<>\\]+", _unescape_script(html)))


def test_every_linked_file_is_installed() -> None:
    missing = missing_assets()
    assert not missing, f"run `npm ci` in geo_service/mapview/assets; missing: {missing}"


@pytest.mark.parametrize("path", vendor_paths())
def test_every_linked_file_is_served(static_client: TestClient, path: str) -> None:
    response = static_client.get(vendor_url(path))
    assert response.status_code == 200, path
    assert response.content, path


# A quoted url(...) is read whole, so that url(#id) references inside an inline SVG data URL are not taken
# for files.
_CSS_URL = re.compile(r"""url\(\s*(?:'([^']*)'|"([^"]*)"|([^)'"]*))\s*\)""")


def _css_references(css: str) -> list[str]:
    refs = ["".join(parts).strip() for parts in _CSS_URL.findall(css)]
    return [ref for ref in refs if ref and not ref.startswith(("data:", "#"))]


@pytest.mark.parametrize("path", [p for p in vendor_paths() if p.endswith(".css")])
def test_fonts_and_images_of_stylesheets_are_served(static_client: TestClient, path: str) -> None:
    url = vendor_url(path)
    refs = _css_references(static_client.get(url).text)
    for ref in refs:
        assert not ref.startswith(("http:", "https:", "//")), f"{path} loads {ref} from elsewhere"
        target = urljoin(url, ref).split("?")[0].split("#")[0]
        assert static_client.get(target).status_code == 200, f"{path} refers to {ref}, not served"


def test_own_files_are_served(static_client: TestClient) -> None:
    for name in ("jxplan-map.js", "jxplan-map.css"):
        assert static_client.get(f"/static/app/{name}").status_code == 200


def test_other_packages_are_not_served(static_client: TestClient) -> None:
    assert static_client.get("/static/vendor/brfs/package.json").status_code == 404
    assert static_client.get("/static/vendor/leaflet/../brfs/package.json").status_code == 404
    assert static_client.get("/static/vendor/leaflet/package.json").status_code == 200


def test_derived_stylesheets() -> None:
    glyphicons = glyphicons_css()
    assert "Glyphicons Halflings" in glyphicons
    assert ".glyphicon-info-sign:before" in glyphicons
    # Nothing else of Bootstrap 3, which would restyle the page.
    assert ".btn" not in glyphicons and "body" not in glyphicons
    assert ".awesome-marker i.fa-rotate-90{transform:rotate(90deg)}" in awesome_rotate_css()
    for path in CDN_FILES.values():
        assert all(file.name for file in source_files(path))


@pytest.mark.parametrize("settings", SETTINGS, ids=["no-basemap", "osm-tianditu"])
def test_pages_link_nothing_elsewhere(catalog: Catalog, settings: Settings) -> None:
    assert catalog.maps
    for doc in catalog.maps.values():
        html = render_map(doc, catalog, settings)
        unexpected = absolute_urls(html) - ALLOWED_URLS
        assert not unexpected, f"map {doc.id} links {sorted(unexpected)}"


def test_tianditu_only_with_a_key(catalog: Catalog) -> None:
    doc = next(iter(catalog.maps.values()))
    assert "tianditu.gov.cn" not in render_map(doc, catalog, SETTINGS[0])
    assert tianditu_tiles("vec", TIANDITU_KEY) in absolute_urls(render_map(doc, catalog, SETTINGS[1]))


def test_rendering_leaves_folium_defaults_alone(catalog: Catalog) -> None:
    before = list(folium.Map.default_js)
    render_map(next(iter(catalog.maps.values())), catalog, SETTINGS[0])
    assert folium.Map.default_js == before


def test_unmapped_cdn_file_fails_loudly() -> None:
    m = folium.Map(tiles=None)
    plugins.Draw().add_to(m)  # a plugin whose CDN files have no local copy
    with pytest.raises(UnmappedAssetError, match=r"leaflet\.draw") as info:
        localize(m.get_root())
    assert "CDN_FILES" in str(info.value)


def test_unmapped_link_element_fails_loudly() -> None:
    figure = Figure()
    figure.header.add_child(JavascriptLink("https://cdn.example.org/lib.js"))
    with pytest.raises(UnmappedAssetError, match=r"https://cdn\.example\.org/lib\.js"):
        localize(figure)


def test_rendered_page_is_checked() -> None:
    check_offline('<script src="/static/app/x.js"></script><link rel="icon" href="data:,">')
    with pytest.raises(UnmappedAssetError, match=r"cdn\.example\.org"):
        check_offline('<link rel="stylesheet" href="https://cdn.example.org/x.css">')
