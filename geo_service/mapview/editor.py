"""The browser editor: a map page on which a planner with an editor key draws, reshapes, deletes and
describes plan features, saving each change through the OGC API – Features Part 4 routes.

The page is a Folium map like the thematic ones (basemaps, county boundaries, tools) plus Leaflet-Geoman for
drawing and `jxplan-editor.js`, which talks to the API: every rule (schema, geometry, If-Match) is the
server's, and the page shows the server's problem details next to the feature and the fields they name.
"""

from __future__ import annotations

from typing import Any, ClassVar

import folium
from branca.element import MacroElement
from folium.template import Template

from geo_service.caching import versioned
from geo_service.catalog import (
    ACCURACY_LABELS,
    STATUS_LABELS,
    Bilingual,
    Catalog,
    Layer,
    MapDocument,
    MapLayer,
)
from geo_service.mapview.controls import add_controls
from geo_service.mapview.inert import add_links, render_inert
from geo_service.mapview.page import MapPage
from geo_service.mapview.plan_layer import PageSetup, PlanLayer
from geo_service.mapview.render import base_page, page_html
from geo_service.mapview.site_check import ANALYSIS_CSS, ANALYSIS_JS, GEOMAN_CSS, GEOMAN_JS
from geo_service.mapview.styles import style_config
from geo_service.settings import Settings

EDITOR_JS = versioned("/static/app/jxplan-editor.js")
EDITOR_CSS = versioned("/static/app/jxplan-editor.css")

# Which Geoman drawing tool makes each layer geometry type (single parts are promoted by the server).
DRAW_TOOLS = {
    "Point": "Marker",
    "MultiPoint": "Marker",
    "LineString": "Line",
    "MultiLineString": "Line",
    "Polygon": "Polygon",
    "MultiPolygon": "Polygon",
}

EDITOR_DOC = MapDocument(
    id="editor",
    title=Bilingual(zh="规划要素编辑器", en="Plan feature editor"),
    description=Bilingual(
        zh="用编辑密钥绘制、修改和删除规划要素;每次保存都经过服务器校验并记入历史。",
        en="Draw, reshape and delete plan features with an editor key; every save is checked by the server "
        "and recorded in history.",
    ),
    center=(30.75, 120.80),
    zoom=10,
    layers=[MapLayer(layer="admin_boundaries")],
)


def editable_layer_config(layer: Layer) -> dict[str, Any]:
    """What the page needs to edit a layer: its tool, style and the property schema the form is built from."""
    schema = layer.json_schema
    return {
        "id": layer.id,
        "title": str(layer.title),
        "geometryType": layer.geometry_type,
        "tool": DRAW_TOOLS[layer.geometry_type],
        "style": style_config(layer.style),
        "properties": schema["properties"],
        "order": list(schema["properties"]),
        "required": schema["required"],
    }


class EditorSetup(MacroElement):
    """Loads Geoman and the editor script and starts the editor on the map."""

    default_js: ClassVar[list[tuple[str, str]]] = [
        ("leaflet_geoman_js", GEOMAN_JS),
        ("jxplan_analysis_js", ANALYSIS_JS),  # the site check the Check button runs
        ("jxplan_editor_js", EDITOR_JS),
    ]
    default_css: ClassVar[list[tuple[str, str]]] = [
        ("leaflet_geoman_css", GEOMAN_CSS),
        ("jxplan_analysis_css", ANALYSIS_CSS),
        ("jxplan_editor_css", EDITOR_CSS),
    ]

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            jxplan.editor({{ this._parent.get_name() }}, {{ this.config|tojson }});
        {% endmacro %}
        """
    )

    def __init__(self, catalog: Catalog) -> None:
        super().__init__()
        self._name = "EditorSetup"
        self.config = {
            "layers": [editable_layer_config(layer) for layer in catalog.layers.values() if layer.editable],
            "labels": {"status": STATUS_LABELS, "accuracy": ACCURACY_LABELS},
        }

    def render(self, **kwargs: Any) -> str:
        """Link the files, then place the script."""
        add_links(self, self.default_js, self.default_css)
        render_inert(self, **kwargs)
        return ""


def build_editor(catalog: Catalog, settings: Settings) -> MapPage:
    """The Folium tree of the editor page, not yet rendered."""
    page, m = base_page(EDITOR_DOC, settings, PageSetup(finder=False))
    boundaries = catalog.layers.get("admin_boundaries")
    if boundaries is not None:
        PlanLayer(boundaries, boundaries.style, source="geojson").add_to(m)
    folium.LayerControl(position="bottomright", collapsed=True).add_to(m)
    add_controls(m)
    EditorSetup(catalog).add_to(m)
    return page


def render_editor(catalog: Catalog, settings: Settings) -> str:
    """The editor page; every script and stylesheet it links is served locally."""
    return page_html(build_editor(catalog, settings))
