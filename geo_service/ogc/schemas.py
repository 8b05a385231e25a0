"""JSON Schemas of a collection: `/queryables` (Part 3), `/sortables` and `/schema` (Part 5).

All three are derived from the layer's one property declaration (`catalog.Layer.json_schema`, through
`fields.layer_fields`), so what a client is told it may filter, sort or receive is what the server does.
Types are written as one JSON type per property (QGIS reads `type` only when it is a string); a property
that may be absent or null is simply not listed in `required`.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from geo_service.catalog import Layer
from geo_service.ogc.dependencies import get_layer, get_settings
from geo_service.ogc.fields import GEOMETRY_FIELD, Field, json_type, layer_fields
from geo_service.ogc.links import url
from geo_service.ogc.negotiation import SCHEMA_JSON, negotiate
from geo_service.ogc.parameters import reject_unknown
from geo_service.ogc.responses import cache_headers, etag_for, json_response, not_modified
from geo_service.settings import Settings

router = APIRouter()

JSON_SCHEMA_2020 = "https://json-schema.org/draft/2020-12/schema"
REL_QUERYABLES = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
REL_SORTABLES = "http://www.opengis.net/def/rel/ogc/1.0/sortables"
REL_SCHEMA = "http://www.opengis.net/def/rel/ogc/1.0/schema"

# keywords a client needs to type and describe a property; validation-only keywords stay in the catalogue
_KEPT = ("title", "description", "enum", "format", "minimum", "maximum", "maxLength", "pattern")


def _property(field: Field) -> dict[str, Any]:
    out: dict[str, Any] = {"type": json_type(field.schema)}
    for key in _KEPT:
        if key in field.schema:
            out[key] = deepcopy(field.schema[key])
    if "enum" in out:
        out["enum"] = [v for v in out["enum"] if v is not None]
    if out["type"] == "array":
        out["items"] = {"type": json_type(field.schema.get("items", {}))}
    return out


def geometry_property(layer: Layer) -> dict[str, Any]:
    """The primary geometry: a `$ref` to the GeoJSON schema (how QGIS finds it) and its Part 5 format."""
    return {
        "title": "几何 Geometry",
        "description": f"{layer.geometry_type}, WGS 84 (CRS84) unless `crs` asks for another.",
        "$ref": f"https://geojson.org/schema/{layer.geometry_type}.json",
        "format": f"geometry-{layer.geometry_type.lower()}",
        "x-ogc-role": "primary-geometry",
    }


def _document(
    request: Request, settings: Settings, layer: Layer, kind: str, properties: dict[str, Any]
) -> dict[str, Any]:
    titles = {
        "queryables": "可查询属性 Queryables",
        "sortables": "可排序属性 Sortables",
        "schema": "模式 Schema",
    }
    return {
        "$schema": JSON_SCHEMA_2020,
        "$id": url(request, settings, f"/collections/{layer.id}/{kind}"),
        "type": "object",
        "title": f"{layer.title} — {titles[kind]}",
        "properties": properties,
        "additionalProperties": False,
    }


def queryables_document(request: Request, settings: Settings, layer: Layer) -> dict[str, Any]:
    """What `filter` may name: the geometry and every declared property."""
    properties = {GEOMETRY_FIELD: geometry_property(layer)}
    properties |= {name: _property(f) for name, f in layer_fields(layer).items()}
    return _document(request, settings, layer, "queryables", properties)


def sortables_document(request: Request, settings: Settings, layer: Layer) -> dict[str, Any]:
    """What `sortby` may name: the scalar properties."""
    properties = {name: _property(f) for name, f in layer_fields(layer).items() if f.sortable}
    return _document(request, settings, layer, "sortables", properties)


def feature_schema(request: Request, settings: Settings, layer: Layer) -> dict[str, Any]:
    """The features of the collection (Part 5): id and geometry roles, typed properties in order."""
    properties: dict[str, Any] = {
        "id": {
            "title": "要素编号 Feature id",
            "description": "Assigned by the server; stable for the life of the feature.",
            "type": "integer",
            "x-ogc-role": "id",
            "readOnly": True,
        },
        GEOMETRY_FIELD: geometry_property(layer),
    }
    for seq, (name, field) in enumerate(layer_fields(layer).items(), start=1):
        properties[name] = _property(field) | {"x-ogc-propertySeq": seq}
    doc = _document(request, settings, layer, "schema", properties)
    doc["required"] = list(layer.json_schema["required"])
    return doc


_BUILDERS = {"queryables": queryables_document, "sortables": sortables_document, "schema": feature_schema}


async def _respond(request: Request, settings: Settings, layer: Layer, kind: str) -> Response:
    reject_unknown(request.query_params, ["f"])
    media = negotiate(request, [SCHEMA_JSON])
    # the documents change only with the catalogue, which is fixed for the life of the process
    etag = etag_for(kind, layer.id, layer.model_dump_json(), str(request.base_url))
    if (cached := not_modified(request, etag, None)) is not None:
        return cached
    return json_response(_BUILDERS[kind](request, settings, layer), media, cache_headers(etag, None))


@router.get("/collections/{collection_id}/queryables", include_in_schema=False)
async def queryables(
    request: Request, layer: Layer = Depends(get_layer), settings: Settings = Depends(get_settings)
) -> Response:
    """Properties a CQL2 `filter` can use."""
    return await _respond(request, settings, layer, "queryables")


@router.get("/collections/{collection_id}/sortables", include_in_schema=False)
async def sortables(
    request: Request, layer: Layer = Depends(get_layer), settings: Settings = Depends(get_settings)
) -> Response:
    """Properties `sortby` can use."""
    return await _respond(request, settings, layer, "sortables")


@router.get("/collections/{collection_id}/schema", include_in_schema=False)
async def schema(
    request: Request, layer: Layer = Depends(get_layer), settings: Settings = Depends(get_settings)
) -> Response:
    """The schema of the collection's features."""
    return await _respond(request, settings, layer, "schema")
