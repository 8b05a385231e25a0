"""Folium elements that load plan features from the API in the browser and style them."""

from __future__ import annotations

from html import escape
from typing import Any, ClassVar

from branca.element import MacroElement
from folium.elements import ElementAddToElement
from folium.map import Layer
from folium.template import Template

from geo_service.caching import versioned
from geo_service.catalog import Layer as CatalogLayer
from geo_service.catalog import LayerStyle
from geo_service.mapview.assets import vendor_url
from geo_service.mapview.inert import add_links, render_inert
from geo_service.mapview.styles import page_config, style_config

APP_JS = versioned("/static/app/jxplan-map.js")
APP_CSS = versioned("/static/app/jxplan-map.css")
CJK_FONT_CSS = vendor_url("@fontsource-variable/noto-sans-sc/index.css")

# One request normally fetches a whole layer; the script follows `next` links when the server pages.
PAGE_LIMIT = 1000
# Above this many features an `auto` layer is drawn from vector tiles instead of being fetched whole.
TILE_THRESHOLD = 5000
# The properties the search box matches, in the page (GeoJSON layers) and on the server (tiled layers).
SEARCH_FIELDS = ("name_zh", "name_en", "code", "name_current")
VECTORGRID_JS = vendor_url("leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js")


class PageSetup(MacroElement):
    """Loads the page script and styles and hands it the labels and line styles every layer shares.

    `focus` (`{"layer": id}` or `{"layer": id, "feature": feature id}`) makes the page zoom to that layer or
    feature once it has loaded, and open the feature's popup. `finder` adds the search box and the status
    filter, which work on the plan layers of the page (the editor has its own)."""

    default_js: ClassVar[list[tuple[str, str]]] = [
        ("leaflet_vectorgrid_js", VECTORGRID_JS),
        ("jxplan_map_js", APP_JS),
    ]
    default_css: ClassVar[list[tuple[str, str]]] = [
        ("jxplan_cjk_font_css", CJK_FONT_CSS),
        ("jxplan_map_css", APP_CSS),
    ]

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            jxplan.setup({{ this._parent.get_name() }}, {{ this.config|tojson }});
        {% endmacro %}
        """
    )

    def __init__(self, focus: dict[str, Any] | None = None, finder: bool = True) -> None:
        super().__init__()
        self._name = "PageSetup"
        self.config = page_config()
        self.config["finder"] = finder
        if focus is not None:
            self.config["focus"] = focus

    def render(self, **kwargs: Any) -> str:
        """Link the files, then place the script."""
        add_links(self, self.default_js, self.default_css)
        render_inert(self, **kwargs)
        return ""


class PlanLayer(Layer):
    """A catalogue layer as an overlay: the browser fetches its features and draws them with its style."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = jxplan.planLayer(
                {{ this._parent.get_name() }}, {{ this.config|tojson }}
            );
        {% endmacro %}
        """
    )

    def __init__(
        self, layer: CatalogLayer, style: LayerStyle, show: bool = True, source: str = "auto"
    ) -> None:
        # Leaflet's layer control inserts names as HTML.
        super().__init__(name=escape(str(layer.title)), overlay=True, control=True, show=show)
        self._name = "PlanLayer"
        self.config = {
            "id": layer.id,
            "title": str(layer.title),
            "geometryType": layer.geometry_type,
            "items": f"/collections/{layer.id}/items?f=json&limit={PAGE_LIMIT}",
            "source": source,
            "tileThreshold": TILE_THRESHOLD,
            "tiles": f"/collections/{layer.id}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}",
            "style": style_config(style),
            # the status filter applies to the plan's items, not to reference layers such as boundaries
            "statusFilter": layer.plan_reference is not None,
            # what the search box asks the server about in a tiled layer (the features are not in the page)
            "searchFields": [name for name in SEARCH_FIELDS if name in layer.property_names],
        }

    def render(self, **kwargs: Any) -> str:
        """Place the script, and add the layer to the map when it is shown at first."""
        if self.show:
            if self._parent is None:
                raise TypeError(f"{self.get_name()} must be added to a map before rendering")
            adder = ElementAddToElement(
                element_name=self.get_name(), element_parent_name=self._parent.get_name()
            )
            self.add_child(adder, name=self.get_name() + "_add")
        render_inert(self, **kwargs)
        return ""
