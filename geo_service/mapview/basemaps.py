"""Optional basemaps: OpenStreetMap and 天地图 tiles, offered in the layer control but never required."""

from __future__ import annotations

import re
from urllib.parse import quote

import folium
from folium.map import Layer
from folium.template import Template

from geo_service.settings import Settings

OSM_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
OSM_ATTRIBUTION_URL = "https://www.openstreetmap.org/copyright"
TIANDITU_TILES = (
    "https://t{s}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
    "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
    "&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}&tk={key}"
)
TIANDITU_ATTRIBUTION_URL = "https://www.tianditu.gov.cn/"

# Hosts a page may fetch basemap tiles from; everything else it loads comes from this service.
_TILE_HOST = re.compile(r"^(tile\.openstreetmap\.org|t[0-7]\.tianditu\.gov\.cn)$")


def is_tile_host(host: str) -> bool:
    """Whether the browser may fetch from this host (only basemap tile servers qualify)."""
    return bool(_TILE_HOST.match(host))


def tile_origins(settings: Settings) -> list[str]:
    """The origins a map page may load basemap images from: those `add_basemaps` offers, no others."""
    origins = ["https://tile.openstreetmap.org"]
    if settings.tianditu_key:
        origins += [f"https://t{n}.tianditu.gov.cn" for n in range(8)]
    return origins


def tianditu_tiles(layer: str, key: str) -> str:
    """URL template of a 天地图 Web Mercator layer (`vec` roads, `cva` their annotation) with the key."""
    return TIANDITU_TILES.format(s="{s}", layer=layer, key=quote(key, safe=""))


class BlankBase(Layer):
    """A base layer with no tiles, so that the layer control can switch basemaps off again."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = L.layerGroup();
        {% endmacro %}
        """
    )

    def __init__(self, name: str, show: bool) -> None:
        super().__init__(name=name, overlay=False, control=True, show=show)
        self._name = "BlankBase"


class TiandituBase(Layer):
    """天地图 vector map with its annotation layer on top, selectable as one base layer."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = L.layerGroup([
                {%- for url in this.urls %}
                L.tileLayer({{ url|tojson }}, {{ this.options|tojavascript }}),
                {%- endfor %}
            ]);
        {% endmacro %}
        """
    )

    def __init__(self, key: str, show: bool) -> None:
        super().__init__(name="天地图 Tianditu", overlay=False, control=True, show=show)
        self._name = "TiandituBase"
        self.urls = [tianditu_tiles("vec", key), tianditu_tiles("cva", key)]
        self.options = {
            "subdomains": "01234567",
            "maxZoom": 18,
            "attribution": f'&copy; <a href="{TIANDITU_ATTRIBUTION_URL}">天地图 Tianditu</a>',
        }


def add_basemaps(m: folium.Map, settings: Settings) -> None:
    """Offer the basemaps as base layers; which one is on at first follows `settings.basemap`."""
    choice = settings.basemap.strip().lower()
    key = settings.tianditu_key
    if choice == "tianditu" and not key:
        choice = "none"
    BlankBase("无底图 No basemap", show=choice not in ("osm", "tianditu")).add_to(m)
    folium.TileLayer(
        tiles=OSM_TILES,
        name="开放街道地图 OpenStreetMap",
        attr=f'&copy; <a href="{OSM_ATTRIBUTION_URL}">OpenStreetMap</a> contributors',
        max_zoom=19,
        show=choice == "osm",
    ).add_to(m)
    if key:
        TiandituBase(key, show=choice == "tianditu").add_to(m)
