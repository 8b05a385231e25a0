"""HTML routes of the maps: `/maps` lists the map documents, `/maps/{map_id}` shows one;
`/collections/{id}/map` and `/collections/{id}/items/{featureId}/map` map one collection or one feature;
`/maps/county_summary` is the county summary of the planning analysis."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from geo_service.catalog import Bilingual, Catalog, Layer
from geo_service.errors import NotFound
from geo_service.mapview.basemaps import tile_origins
from geo_service.mapview.county_summary import ANALYSIS_PAGES, render_county_summary
from geo_service.mapview.editor import render_editor
from geo_service.mapview.plan_layer import APP_CSS, CJK_FONT_CSS
from geo_service.mapview.render import layer_document, render_map
from geo_service.mapview.templating import render
from geo_service.ogc.dependencies import (
    get_catalog,
    get_engine,
    get_layer,
    get_settings,
    parse_feature_id,
)
from geo_service.security.headers import page_response
from geo_service.settings import Settings

router = APIRouter(tags=["maps 地图"])

OVERVIEW = "overview"


@router.get("/maps", response_class=HTMLResponse, summary="地图列表 Maps")
def map_index(catalog: Catalog = Depends(get_catalog)) -> HTMLResponse:
    """The list of thematic maps, each linking to its page: the overview first, then the thematic maps."""
    html = render(
        "index.html",
        maps=sorted(catalog.maps.values(), key=lambda doc: doc.id != OVERVIEW),
        layers=catalog.layers,
        analyses=ANALYSIS_PAGES,
        stylesheets=[CJK_FONT_CSS, APP_CSS],
    )
    return HTMLResponse(html)


@router.get("/editor", response_class=HTMLResponse, summary="编辑器 Editor")
def editor_page(
    catalog: Catalog = Depends(get_catalog), settings: Settings = Depends(get_settings)
) -> HTMLResponse:
    """The browser editor: draw, reshape, delete and describe features with an editor key."""
    return page_response(render_editor(catalog, settings), tile_origins(settings))


# Before /maps/{map_id}, which would take the name for a map document's.
@router.get("/maps/county_summary", response_class=HTMLResponse, summary="区县汇总 County summary")
def county_summary_page(
    catalog: Catalog = Depends(get_catalog), settings: Settings = Depends(get_settings)
) -> HTMLResponse:
    """The seven counties: a choropleth of the share built, the table of areas, a chart by status, CSV."""
    return page_response(render_county_summary(catalog, settings), tile_origins(settings))


@router.get("/maps/{map_id}", response_class=HTMLResponse, summary="地图 Map")
def map_page(
    map_id: str, catalog: Catalog = Depends(get_catalog), settings: Settings = Depends(get_settings)
) -> HTMLResponse:
    """One map, rendered for each request (maps are small and the catalogue may change)."""
    doc = catalog.maps.get(map_id)
    if doc is None:
        raise NotFound(f"no map {map_id!r}; the maps are listed at /maps")
    return page_response(render_map(doc, catalog, settings), tile_origins(settings))


@router.get(
    "/collections/{collection_id}/map", response_class=HTMLResponse, summary="图层地图 Collection map"
)
def collection_map(
    layer: Layer = Depends(get_layer),
    catalog: Catalog = Depends(get_catalog),
    settings: Settings = Depends(get_settings),
) -> HTMLResponse:
    """One collection on a map of its own, zoomed to its features once they have loaded."""
    doc = layer_document(catalog, layer)
    return page_response(
        render_map(doc, catalog, settings, focus={"layer": layer.id}), tile_origins(settings)
    )


FEATURE_NAME = text(
    "SELECT properties->>'name_zh' AS name_zh, properties->>'name_en' AS name_en"
    " FROM features WHERE layer_id = :layer_id AND id = :id"
)


@router.get(
    "/collections/{collection_id}/items/{feature_id}/map",
    response_class=HTMLResponse,
    summary="要素地图 Feature map",
)
async def feature_map(
    feature_id: str,
    layer: Layer = Depends(get_layer),
    catalog: Catalog = Depends(get_catalog),
    settings: Settings = Depends(get_settings),
    engine: AsyncEngine = Depends(get_engine),
) -> HTMLResponse:
    """One feature on its collection's map: zoomed to it, its popup open."""
    fid = parse_feature_id(layer, feature_id)
    async with engine.connect() as conn:
        row = (await conn.execute(FEATURE_NAME, {"layer_id": layer.id, "id": fid})).first()
    if row is None:
        raise NotFound(f"No feature {feature_id} in collection {layer.id}.")
    title = Bilingual(
        zh=row.name_zh or f"{layer.title.zh} #{fid}", en=row.name_en or f"{layer.title.en} #{fid}"
    )
    doc = layer_document(catalog, layer, title)
    html = render_map(doc, catalog, settings, focus={"layer": layer.id, "feature": fid})
    return page_response(html, tile_origins(settings))
