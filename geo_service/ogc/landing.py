"""Landing page, conformance declaration and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from geo_service.catalog import Catalog
from geo_service.ogc import conformance
from geo_service.ogc.dependencies import get_catalog, get_settings
from geo_service.ogc.html import render
from geo_service.ogc.links import base_url, link, url
from geo_service.ogc.negotiation import HTML, JSON, OPENAPI, negotiate
from geo_service.ogc.openapi import openapi_document
from geo_service.ogc.parameters import reject_unknown
from geo_service.ogc.responses import json_response
from geo_service.ogc.tiles import REL_TILESETS_VECTOR, REL_TILING_SCHEMES
from geo_service.settings import Settings

router = APIRouter()

REL_PROCESSES = "http://www.opengis.net/def/rel/ogc/1.0/processes"
REL_JOB_LIST = "http://www.opengis.net/def/rel/ogc/1.0/job-list"

TITLE = "嘉兴市“十四五”规划空间信息服务 Jiaxing 14th Five-Year Plan GIS"
DESCRIPTION = (
    "嘉兴市国民经济和社会发展第十四个五年规划的空间项目:示范区、G60科创走廊、轨道与道路、战略平台。"
    " The spatial items of Jiaxing's 14th Five-Year Plan as OGC API – Features."
)


def _self_links(
    request: Request, settings: Settings, path: str, json_type: str = JSON
) -> list[dict[str, str]]:
    """`self` in the format served plus an `alternate` per other format (JSON and HTML)."""
    chosen = negotiate(request, [json_type, HTML])
    formats = [(json_type, "json", "JSON"), (HTML, "html", "HTML")]
    return [
        link(url(request, settings, path, f=f), "self" if media == chosen else "alternate", media, title)
        for media, f, title in formats
    ]


@router.get("/", include_in_schema=False)
async def landing_page(request: Request, settings: Settings = Depends(get_settings)) -> Response:
    """The landing page: what the service is and where everything is."""
    reject_unknown(request.query_params, ["f"])
    fmt = negotiate(request, [JSON, HTML])
    doc: dict[str, Any] = {
        "title": TITLE,
        "description": DESCRIPTION,
        "links": [
            *_self_links(request, settings, "/"),
            link(
                url(request, settings, "/api"), "service-desc", OPENAPI, "OpenAPI 3.0 接口定义 API definition"
            ),
            link(url(request, settings, "/api", f="html"), "service-doc", HTML, "接口文档 API documentation"),
            link(url(request, settings, "/conformance"), "conformance", JSON, "符合性 Conformance"),
            link(url(request, settings, "/collections"), "data", JSON, "图层 Collections"),
            link(url(request, settings, "/tiles"), REL_TILESETS_VECTOR, JSON, "矢量瓦片 Vector tiles"),
            link(
                url(request, settings, "/tileMatrixSets"),
                REL_TILING_SCHEMES,
                JSON,
                "瓦片矩阵集 Tiling schemes",
            ),
            link(url(request, settings, "/processes"), REL_PROCESSES, JSON, "分析过程 Processes"),
            link(url(request, settings, "/jobs"), REL_JOB_LIST, JSON, "分析任务 Jobs"),
            link(url(request, settings, "/maps"), "related", HTML, "地图 Maps"),
        ],
    }
    if fmt == HTML:
        return render(
            request, "landing.html", doc=doc, title=TITLE, base=base_url(request, settings), links=[]
        )
    return json_response(doc, JSON)


@router.get("/conformance", include_in_schema=False)
async def conformance_declaration(request: Request, settings: Settings = Depends(get_settings)) -> Response:
    """The conformance classes the service passes."""
    reject_unknown(request.query_params, ["f"])
    fmt = negotiate(request, [JSON, HTML])
    doc = {"conformsTo": conformance.CONFORMS_TO, "links": _self_links(request, settings, "/conformance")}
    if fmt == HTML:
        return render(
            request,
            "conformance.html",
            doc=doc,
            title="符合性 Conformance",
            base=base_url(request, settings),
            links=doc["links"],
        )
    return json_response(doc, JSON)


@router.get("/api", include_in_schema=False)
async def api_definition(
    request: Request, settings: Settings = Depends(get_settings), catalog: Catalog = Depends(get_catalog)
) -> Response:
    """The OpenAPI 3.0 document (JSON), or a readable list of its operations (HTML)."""
    reject_unknown(request.query_params, ["f"])
    fmt = negotiate(request, [OPENAPI, HTML, JSON])
    extra = getattr(request.app.state, "openapi_paths", None)
    doc = openapi_document(catalog, settings, base_url(request, settings), TITLE, DESCRIPTION, extra)
    if fmt == HTML:
        return render(
            request, "api.html", doc=doc, title="接口 API", base=base_url(request, settings), links=[]
        )
    return json_response(doc, OPENAPI if fmt == OPENAPI else JSON)
