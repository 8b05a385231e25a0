"""Which local file stands in for each CDN file Folium links, and the rewrite that makes pages use them.

Maps must work on an intranet without internet access, so every script, stylesheet and font a page
loads comes from our own `/static/vendor/` tree: the npm packages installed by `npm ci` in `assets/`,
plus a few stylesheets derived from them (see `derived_css`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from branca.element import CssLink, Element, Figure, JavascriptLink

from geo_service.caching import versioned
from geo_service.mapview.derived_css import DERIVED_FILES, NODE_MODULES

VENDOR_URL = "/static/vendor/"
SETUP_HINT = "run `make run` (or `npm ci --prefix geo_service/mapview/assets`) to install them"

# External URL Folium emits -> path under the vendor tree (a package file, or a derived stylesheet).
# Versions follow folium 0.20 except Leaflet (1.9.4, the bug-fix release of the 1.9.3 Folium names);
# where a package ships no minified file, the plain one is used.
CDN_FILES: dict[str, str] = {
    # folium.Map
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js": "leaflet/dist/leaflet.js",
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.css": "leaflet/dist/leaflet.css",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/dist/jquery.min.js",
    "https://cdn.jsdelivr.net/npm/bootstrap@5.2.2/dist/js/bootstrap.bundle.min.js": (
        "bootstrap/dist/js/bootstrap.bundle.min.js"
    ),
    "https://cdn.jsdelivr.net/npm/bootstrap@5.2.2/dist/css/bootstrap.min.css": (
        "bootstrap/dist/css/bootstrap.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.js": (
        "leaflet.awesome-markers/dist/leaflet.awesome-markers.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.css": (
        "leaflet.awesome-markers/dist/leaflet.awesome-markers.css"
    ),
    "https://netdna.bootstrapcdn.com/bootstrap/3.0.0/css/bootstrap-glyphicons.css": (
        "bootstrap3/dist/css/bootstrap-glyphicons.css"
    ),
    "https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free@6.2.0/css/all.min.css": (
        "@fortawesome/fontawesome-free/css/all.min.css"
    ),
    (
        "https://cdn.jsdelivr.net/gh/python-visualization/folium/folium/templates/"
        "leaflet.awesome.rotate.min.css"
    ): "leaflet.awesome-markers/dist/leaflet.awesome.rotate.css",
    # folium.plugins.Fullscreen
    "https://cdn.jsdelivr.net/npm/leaflet.fullscreen@3.0.0/Control.FullScreen.min.js": (
        "leaflet.fullscreen/Control.FullScreen.js"
    ),
    "https://cdn.jsdelivr.net/npm/leaflet.fullscreen@3.0.0/Control.FullScreen.css": (
        "leaflet.fullscreen/Control.FullScreen.css"
    ),
    # folium.plugins.MeasureControl
    "https://cdn.jsdelivr.net/gh/ljagis/leaflet-measure@2.1.7/dist/leaflet-measure.min.js": (
        "leaflet-measure/dist/leaflet-measure.min.js"
    ),
    "https://cdn.jsdelivr.net/gh/ljagis/leaflet-measure@2.1.7/dist/leaflet-measure.min.css": (
        "leaflet-measure/dist/leaflet-measure.css"
    ),
    # folium.plugins.MousePosition
    "https://cdn.jsdelivr.net/gh/ardhi/Leaflet.MousePosition/src/L.Control.MousePosition.min.js": (
        "leaflet-mouse-position/src/L.Control.MousePosition.js"
    ),
    "https://cdn.jsdelivr.net/gh/ardhi/Leaflet.MousePosition/src/L.Control.MousePosition.min.css": (
        "leaflet-mouse-position/src/L.Control.MousePosition.css"
    ),
}

# Vendor files our own page elements load directly (not through a Folium URL).
OWN_VENDOR_FILES: tuple[str, ...] = (
    "@fontsource-variable/noto-sans-sc/index.css",
    "@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.js",
    "@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.css",
    "leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js",
    # the county summary's chart (the UMD bundle holds its one dependency, @kurkle/color)
    "chart.js/dist/chart.umd.min.js",
)


class UnmappedAssetError(RuntimeError):
    """A page element links an external file that has no local copy, so the page would not work offline."""


def vendor_url(path: str) -> str:
    """The URL at which the service serves a vendor-tree path (versioned: cached for good)."""
    return versioned(VENDOR_URL + path)


def package_of(path: str) -> str:
    """The npm package a vendor-tree path belongs to (`@scope/name` or `name`)."""
    parts = path.split("/")
    return "/".join(parts[:2]) if path.startswith("@") else parts[0]


def vendor_paths() -> list[str]:
    """Every vendor-tree path a page may link, mapped or our own."""
    return sorted({*CDN_FILES.values(), *OWN_VENDOR_FILES})


def vendor_packages() -> frozenset[str]:
    """The npm packages whose files the service serves; nothing else under node_modules is exposed."""
    return frozenset(package_of(path) for path in vendor_paths())


def source_files(path: str) -> list[Path]:
    """The installed files a vendor-tree path is served from (the sources of a derived stylesheet)."""
    derived = DERIVED_FILES.get(path)
    if derived is not None:
        return [NODE_MODULES / source for source in derived.sources]
    return [NODE_MODULES / path]


def missing_assets() -> list[str]:
    """Installed files the maps need but that are absent: non-empty means the setup step was not run."""
    missing = {str(file) for path in vendor_paths() for file in source_files(path) if not file.is_file()}
    return sorted(missing)


def is_local(url: str) -> bool:
    """Whether a URL points at this service (a path on the same origin)."""
    return url.startswith("/") and not url.startswith("//")


def local_url(url: str) -> str:
    """The local URL of a linked file; raises `UnmappedAssetError` for an external URL we have no copy of."""
    if is_local(url):
        return url
    path = CDN_FILES.get(url)
    if path is None:
        raise UnmappedAssetError(_unmapped_message([url]))
    return vendor_url(path)


def _unmapped_message(urls: list[str]) -> str:
    listed = "\n  ".join(urls)
    return (
        "these external files have no local copy, so the map would not work offline:\n  "
        f"{listed}\nadd them to package.json and to CDN_FILES in {__name__}"
    )


def _walk(element: Element) -> Iterator[Element]:
    yield element
    if isinstance(element, Figure):
        for part in (element.header, element.html, element.script):
            yield from _walk(part)
    for child in element._children.values():
        yield from _walk(child)


def _localize_links(links: list[tuple[str, str]], unmapped: list[str]) -> list[tuple[str, str]]:
    result = []
    for name, url in links:
        try:
            result.append((name, local_url(url)))
        except UnmappedAssetError:
            unmapped.append(url)
    return result


def localize(root: Element) -> None:
    """Point every script and stylesheet link in a Folium tree at our local copies, before rendering.

    Raises `UnmappedAssetError` naming every external file that has no local copy.
    """
    unmapped: list[str] = []
    for element in _walk(root):
        # Assign on the instance: Folium's class-level lists are shared by every map in the process.
        if hasattr(element, "default_js"):
            element.default_js = _localize_links(list(element.default_js), unmapped)
        if hasattr(element, "default_css"):
            element.default_css = _localize_links(list(element.default_css), unmapped)
        if isinstance(element, JavascriptLink | CssLink):
            try:
                element.url = local_url(element.url)
            except UnmappedAssetError:
                unmapped.append(element.url)
    if unmapped:
        raise UnmappedAssetError(_unmapped_message(sorted(set(unmapped))))


_LINKED = re.compile(r"<(?:script|link)\b[^>]*?\b(?:src|href)\s*=\s*[\"']?([^\"'\s>]+)", re.IGNORECASE)


def external_links(html: str) -> list[str]:
    """Script and stylesheet URLs in a rendered page that do not point at this service."""
    return [url for url in _LINKED.findall(html) if not is_local(url) and not url.startswith("data:")]


def check_offline(html: str) -> None:
    """Raise `UnmappedAssetError` if a rendered page still links a script or stylesheet elsewhere."""
    external = external_links(html)
    if external:
        raise UnmappedAssetError(_unmapped_message(sorted(set(external))))
