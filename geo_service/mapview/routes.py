"""HTML routes of the maps: `/maps` lists the map documents, `/maps/{map_id}` shows one."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from geo_service.catalog import Catalog
from geo_service.errors import NotFound
from geo_service.mapview.editor import render_editor
from geo_service.mapview.plan_layer import APP_CSS, CJK_FONT_CSS
from geo_service.mapview.render import render_map
from geo_service.mapview.templating import render
from geo_service.ogc.dependencies import get_catalog, get_settings
from geo_service.settings import Settings

router = APIRouter(tags=["maps 地图"])


@router.get("/maps", response_class=HTMLResponse, summary="地图列表 Maps")
def map_index(catalog: Catalog = Depends(get_catalog)) -> HTMLResponse:
    """The list of thematic maps, each linking to its page."""
    html = render(
        "index.html",
        maps=list(catalog.maps.values()),
        layers=catalog.layers,
        stylesheets=[CJK_FONT_CSS, APP_CSS],
    )
    return HTMLResponse(html)


@router.get("/editor", response_class=HTMLResponse, summary="编辑器 Editor")
def editor_page(
    catalog: Catalog = Depends(get_catalog), settings: Settings = Depends(get_settings)
) -> HTMLResponse:
    """The browser editor: draw, reshape, delete and describe features with an editor key."""
    return HTMLResponse(render_editor(catalog, settings))


@router.get("/maps/{map_id}", response_class=HTMLResponse, summary="地图 Map")
def map_page(
    map_id: str, catalog: Catalog = Depends(get_catalog), settings: Settings = Depends(get_settings)
) -> HTMLResponse:
    """One map, rendered for each request (maps are small and the catalogue may change)."""
    doc = catalog.maps.get(map_id)
    if doc is None:
        raise NotFound(f"no map {map_id!r}; the maps are listed at /maps")
    return HTMLResponse(render_map(doc, catalog, settings))
