"""A map document as a complete HTML page: Folium map, basemaps, plan layers, controls and legend."""

from __future__ import annotations

import folium

from geo_service.catalog import Catalog, MapDocument
from geo_service.mapview.assets import check_offline, localize
from geo_service.mapview.basemaps import add_basemaps
from geo_service.mapview.controls import add_controls
from geo_service.mapview.legend import Legend
from geo_service.mapview.page import MapPage
from geo_service.mapview.plan_layer import PageSetup, PlanLayer
from geo_service.mapview.styles import effective_style
from geo_service.settings import Settings


def build_map(doc: MapDocument, catalog: Catalog, settings: Settings) -> MapPage:
    """The Folium tree of a map page, not yet rendered."""
    page = MapPage(doc)
    m = folium.Map(location=list(doc.center), zoom_start=doc.zoom, tiles=None, control_scale=False)
    page.add_child(m)
    add_basemaps(m, settings)
    PageSetup().add_to(m)
    for map_layer in doc.layers:
        layer = catalog.layers[map_layer.layer]
        PlanLayer(
            layer, effective_style(layer, map_layer), show=map_layer.show, source=map_layer.source
        ).add_to(m)
    folium.LayerControl(position="topright", collapsed=True).add_to(m)
    Legend(doc, catalog).add_to(m)
    add_controls(m)
    return page


def render_map(doc: MapDocument, catalog: Catalog, settings: Settings) -> str:
    """The full HTML page of a map document; every script and stylesheet it links is served locally."""
    page = build_map(doc, catalog, settings)
    localize(page)
    html = page.render()
    check_offline(html)
    return html
