"""`/collections` and `/collections/{id}`: layer metadata, identical in both places."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from geo_service.catalog import Catalog, Layer
from geo_service.ogc.crs import CRS84, SUPPORTED
from geo_service.ogc.dependencies import get_catalog, get_engine, get_layer, get_settings
from geo_service.ogc.html import render
from geo_service.ogc.links import base_url, link, url
from geo_service.ogc.negotiation import GEOJSON, HTML, JSON, SCHEMA_JSON, negotiate
from geo_service.ogc.parameters import reject_unknown
from geo_service.ogc.query import layer_states_statement
from geo_service.ogc.responses import cache_headers, etag_for, json_response, not_modified
from geo_service.ogc.schemas import REL_QUERYABLES, REL_SCHEMA, REL_SORTABLES
from geo_service.ogc.tiles import REL_TILESETS_VECTOR
from geo_service.settings import Settings

router = APIRouter()


async def _layer_rows(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:
        return {row.id: row for row in await conn.execute(layer_states_statement())}


def collection_document(request: Request, settings: Settings, layer: Layer, row: Any) -> dict[str, Any]:
    """The metadata of one collection, used verbatim by both endpoints (the OGC suite compares them)."""
    path = f"/collections/{layer.id}"
    doc: dict[str, Any] = {
        "id": layer.id,
        "title": str(layer.title),
        "description": str(layer.description),
        "keywords": layer.keywords,
        "itemType": "feature",
        "crs": list(SUPPORTED),
        "storageCrs": CRS84,
        "links": [
            link(url(request, settings, path, f="json"), "self", JSON, "本图层 This collection"),
            link(url(request, settings, path, f="html"), "alternate", HTML, "本图层 This collection (HTML)"),
            link(
                url(request, settings, f"{path}/items", f="json"), "items", GEOJSON, "要素 Features (GeoJSON)"
            ),
            link(url(request, settings, f"{path}/items", f="html"), "items", HTML, "要素 Features (HTML)"),
            link(
                url(request, settings, f"{path}/queryables"),
                REL_QUERYABLES,
                SCHEMA_JSON,
                "可查询属性 Queryables",
            ),
            link(
                url(request, settings, f"{path}/sortables"),
                REL_SORTABLES,
                SCHEMA_JSON,
                "可排序属性 Sortables",
            ),
            link(url(request, settings, f"{path}/schema"), REL_SCHEMA, SCHEMA_JSON, "模式 Schema"),
            link(url(request, settings, f"{path}/schema"), "describedby", SCHEMA_JSON, "模式 Schema"),
            link(url(request, settings, f"{path}/tiles"), REL_TILESETS_VECTOR, JSON, "矢量瓦片 Vector tiles"),
        ],
    }
    if row is not None and row.xmin is not None:
        doc["extent"] = {"spatial": {"bbox": [[row.xmin, row.ymin, row.xmax, row.ymax]], "crs": CRS84}}
    return doc


def _collections_etag(rows: dict[str, Any], fmt: str, request: Request) -> str:
    versions = ",".join(f"{k}:{rows[k].version}" for k in sorted(rows))
    return etag_for("collections", versions, fmt, str(request.base_url))


@router.get("/collections", include_in_schema=False)
async def collections(
    request: Request,
    settings: Settings = Depends(get_settings),
    catalog: Catalog = Depends(get_catalog),
    engine: AsyncEngine = Depends(get_engine),
) -> Response:
    """Every collection's metadata."""
    reject_unknown(request.query_params, ["f"])
    fmt = negotiate(request, [JSON, HTML])
    rows = await _layer_rows(engine)
    etag = _collections_etag(rows, fmt, request)
    last_modified = max((r.updated_at for r in rows.values()), default=None)
    if (cached := not_modified(request, etag, last_modified)) is not None:
        return cached
    doc = {
        "links": [
            link(
                url(request, settings, "/collections", f="json"), "self" if fmt == JSON else "alternate", JSON
            ),
            link(
                url(request, settings, "/collections", f="html"), "self" if fmt == HTML else "alternate", HTML
            ),
        ],
        "collections": [
            collection_document(request, settings, layer, rows.get(layer.id))
            for layer in catalog.layers.values()
        ],
    }
    headers = cache_headers(etag, last_modified)
    if fmt == HTML:
        counts = {k: r.feature_count for k, r in rows.items()}
        return render(
            request,
            "collections.html",
            headers=headers,
            doc=doc,
            counts=counts,
            title="图层 Collections",
            base=base_url(request, settings),
            links=doc["links"],
        )
    return json_response(doc, JSON, headers)


@router.get("/collections/{collection_id}", include_in_schema=False)
async def collection(
    request: Request,
    layer: Layer = Depends(get_layer),
    settings: Settings = Depends(get_settings),
    engine: AsyncEngine = Depends(get_engine),
) -> Response:
    """One collection's metadata."""
    reject_unknown(request.query_params, ["f"])
    fmt = negotiate(request, [JSON, HTML])
    row = (await _layer_rows(engine)).get(layer.id)
    etag = etag_for("collection", layer.id, row.version if row else -1, fmt, str(request.base_url))
    last_modified = row.updated_at if row else None
    if (cached := not_modified(request, etag, last_modified)) is not None:
        return cached
    doc = collection_document(request, settings, layer, row)
    headers = cache_headers(etag, last_modified)
    if fmt == HTML:
        return render(
            request,
            "collection.html",
            headers=headers,
            doc=doc,
            geometry_type=layer.geometry_type,
            count=row.feature_count if row else 0,
            title=str(layer.title),
            base=base_url(request, settings),
            links=doc["links"],
        )
    return json_response(doc, JSON, headers)
