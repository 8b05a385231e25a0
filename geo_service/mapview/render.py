"""A map document as a complete HTML page: Folium map, basemaps, plan layers, controls and legend."""

from __future__ import annotations

from typing import Any

import folium

from geo_service.catalog import Bilingual, Catalog, Layer, MapDocument, MapLayer
from geo_service.mapview.assets import check_offline, localize
from geo_service.mapview.basemaps import add_basemaps
from geo_service.mapview.controls import add_controls
from geo_service.mapview.legend import Legend
from geo_service.mapview.page import MapPage
from geo_service.mapview.plan_layer import PageSetup, PlanLayer
from geo_service.mapview.site_check import add_site_check
from geo_service.mapview.styles import effective_style
from geo_service.settings import Settings

# Where the single-layer pages open before they zoom to their layer or feature.
HOME_CENTER = (30.75, 120.80)
HOME_ZOOM = 10
BOUNDARIES = "admin_boundaries"


def base_page(doc: MapDocument, settings: Settings, setup: PageSetup) -> tuple[MapPage, folium.Map]:
    """A page with its map, the basemaps and the page script: what every map page (and the editor) starts
    from."""
    page = MapPage(doc)
    m = folium.Map(location=list(doc.center), zoom_start=doc.zoom, tiles=None, control_scale=False)
    page.add_child(m)
    add_basemaps(m, settings)
    setup.add_to(m)
    return page, m


def page_html(page: MapPage) -> str:
    """The full HTML of a page; every script and stylesheet it links is served locally."""
    localize(page)
    html = page.render()
    check_offline(html)
    return html


def build_map(
    doc: MapDocument, catalog: Catalog, settings: Settings, focus: dict[str, Any] | None = None
) -> MapPage:
    """The Folium tree of a map page, not yet rendered; `focus` as `PageSetup` takes it."""
    page, m = base_page(doc, settings, PageSetup(focus))
    for map_layer in doc.layers:
        layer = catalog.layers[map_layer.layer]
        PlanLayer(
            layer, effective_style(layer, map_layer), show=map_layer.show, source=map_layer.source
        ).add_to(m)
    folium.LayerControl(position="topright", collapsed=True).add_to(m)
    Legend(doc, catalog).add_to(m)
    add_controls(m)
    add_site_check(m)
    return page


def layer_document(catalog: Catalog, layer: Layer, title: Bilingual | None = None) -> MapDocument:
    """The map of one collection (over the county boundaries), for its own page or one of its features."""
    layers = [MapLayer(layer=layer.id)]
    if layer.id != BOUNDARIES and BOUNDARIES in catalog.layers:
        layers.insert(0, MapLayer(layer=BOUNDARIES))
    return MapDocument(
        id=layer.id,
        title=title or layer.title,
        description=layer.description,
        center=HOME_CENTER,
        zoom=HOME_ZOOM,
        layers=layers,
    )


def render_map(
    doc: MapDocument, catalog: Catalog, settings: Settings, focus: dict[str, Any] | None = None
) -> str:
    """The full HTML page of a map document; every script and stylesheet it links is served locally."""
    return page_html(build_map(doc, catalog, settings, focus))
