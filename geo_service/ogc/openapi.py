"""The OpenAPI 3.0 document, built from the catalogue and the parameter declarations."""

from __future__ import annotations

from typing import Any

from geo_service import __version__
from geo_service.catalog import Catalog
from geo_service.errors import PROBLEM_JSON
from geo_service.ogc.downloads import FORMATS
from geo_service.ogc.fields import layer_fields
from geo_service.ogc.negotiation import GEOJSON, HTML, JSON, OPENAPI, SCHEMA_JSON
from geo_service.ogc.parameters import MAX_VERSION, declarations
from geo_service.ogc.tiles import MVT
from geo_service.ops.health import openapi_paths
from geo_service.settings import Settings

REFUSALS = {"401": "Unauthorized", "403": "Forbidden", "429": "TooManyAttempts"}
# what answers without asking the database (every other operation may answer 503 while it is unavailable)
DATABASE_FREE = {"/", "/conformance", "/api", "/health", "/ready", "/metrics"}
ITEMS_PARAMETERS = [
    "f",
    "limit",
    "bbox",
    "bbox-crs",
    "datetime",
    "crs",
    "filter",
    "filter-lang",
    "filter-crs",
    "sortby",
    "properties",
    "cursor",
]
FEATURE_PARAMETERS = ["f", "crs", "properties", "version"]


READ_AFTER = "JXPlan-Read-After"


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _body_schema(media: str, name: str) -> dict[str, Any]:
    """A named schema, else what the media type holds: a JSON object, or text and bytes (not validated)."""
    if name:
        return _ref("schemas", name)
    return {"type": "object"} if "json" in media else {"type": "string"}


def _ok(description: str, media: dict[str, str]) -> dict[str, Any]:
    return {
        "200": {
            "description": description,
            "content": {m: {"schema": _body_schema(m, s)} for m, s in media.items()},
        },
        "400": _ref("responses", "InvalidParameter"),
        "500": _ref("responses", "ServerError"),
    }


def _operation(
    op_id: str, summary: str, tag: str, params: list[str], responses: dict[str, Any]
) -> dict[str, Any]:
    if "collectionId" in params:  # an unknown collection or feature
        responses = responses | {"404": _ref("responses", "NotFound")}
    return {
        "operationId": op_id,
        "summary": summary,
        "tags": [tag],
        "parameters": [_ref("parameters", p) for p in params],
        "responses": responses,
    }


def _schemas() -> dict[str, Any]:
    link = {
        "type": "object",
        "required": ["href", "rel"],
        "properties": {k: {"type": "string"} for k in ("href", "rel", "type", "title", "hreflang")},
    }
    links = {"type": "array", "items": _ref("schemas", "Link")}
    geometry = {"type": "object", "nullable": True, "description": "A GeoJSON geometry (RFC 7946)."}
    members = {
        "type": {"type": "string", "enum": ["Feature"]},
        "id": {"type": "integer"},
        "geometry": geometry,
        "properties": {"type": "object", "nullable": True},
    }
    feature = {
        "type": "object",
        "required": ["type", "geometry", "properties"],
        "properties": members | {"links": links},
    }
    return {
        "Link": link,
        "LandingPage": {
            "type": "object",
            "required": ["links"],
            "properties": {"title": {"type": "string"}, "description": {"type": "string"}, "links": links},
        },
        "ConfClasses": {
            "type": "object",
            "required": ["conformsTo"],
            "properties": {"conformsTo": {"type": "array", "items": {"type": "string"}}, "links": links},
        },
        "Collection": {
            "type": "object",
            "required": ["id", "links"],
            "properties": {
                "id": {"type": "string"},
                "title": {"type": "string"},
                "description": {"type": "string"},
                "itemType": {"type": "string"},
                "crs": {"type": "array", "items": {"type": "string"}},
                "extent": {"type": "object"},
                "links": links,
            },
        },
        "Collections": {
            "type": "object",
            "required": ["links", "collections"],
            "properties": {
                "links": links,
                "collections": {"type": "array", "items": _ref("schemas", "Collection")},
            },
        },
        "FeatureGeoJSON": feature,
        "FeaturePatch": {
            "type": "object",
            "description": "A JSON Merge Patch (RFC 7386) of a feature: only the members to change; "
            "null removes a property.",
            "properties": members,
            "additionalProperties": False,
        },
        "FeatureCollectionGeoJSON": {
            "type": "object",
            "required": ["type", "features"],
            "properties": {
                "type": {"type": "string", "enum": ["FeatureCollection"]},
                "features": {"type": "array", "items": _ref("schemas", "FeatureGeoJSON")},
                "links": links,
                "timeStamp": {"type": "string", "format": "date-time"},
                "numberMatched": {"type": "integer", "minimum": 0},
                "numberReturned": {"type": "integer", "minimum": 0},
            },
        },
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details.",
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "instance": {"type": "string"},
                "requestId": {"type": "string", "description": "The X-Request-Id of the request."},
            },
        },
    }


def _write(
    op_id: str,
    summary: str,
    params: list[str],
    body: str | None,
    ok: dict[str, Any],
    body_schema: str = "FeatureGeoJSON",
) -> dict[str, Any]:
    """A write operation: editor key, problem responses for each refusal."""
    problem = _ref("responses", "InvalidParameter")
    operation = _operation(op_id, summary, "Editing", params, ok)
    operation["security"] = [{"apiKey": []}]
    operation["responses"] |= _refusals() | {
        "400": problem,
        "404": _ref("responses", "NotFound"),
        "405": problem,
        "409": problem,
        "412": problem,
        "413": problem,
        "415": problem,
    }
    operation["parameters"].append(
        {
            "name": "If-Match",
            "in": "header",
            "required": False,
            "description": "The feature's ETag: a stale one is refused with 412. Never required.",
            "schema": {"type": "string"},
        }
    )
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {body: {"schema": _ref("schemas", body_schema)}},
        }
    for status, response in operation["responses"].items():
        if status.startswith("2") and "$ref" not in response:
            response.setdefault("headers", {})[READ_AFTER] = {
                "description": "The primary's WAL position after this write (also set as the cookie "
                "jxplan_read_after). A read that sends it back as a header (or the cookie) sees this write, "
                "whichever read replica answers (docs/deployment.md, Read replicas).",
                "schema": {"type": "string", "pattern": "^[0-9A-F]{1,8}/[0-9A-F]{1,8}$"},
            }
    return operation


def _refusals() -> dict[str, Any]:
    """What an operation needing a key may answer: 401, 403 and, after too many failures, 429."""
    return {code: _ref("responses", name) for code, name in REFUSALS.items()}


def _add_unavailable(paths: dict[str, Any]) -> None:
    """503 (with Retry-After) on every operation that asks the database: stopped, busy or too slow."""
    for path, operations in paths.items():
        if path not in DATABASE_FREE:
            for operation in operations.values():
                operation["responses"].setdefault("503", _ref("responses", "Unavailable"))


def _add_audit(paths: dict[str, Any]) -> None:
    """`GET /audit` (geo_service.ops.audit_api), for admin keys."""
    operation = _operation(
        "getAuditLog", "The audit log 审计日志", "Operations", [], _ok("Entries.", {JSON: ""})
    )
    operation["parameters"] = [
        {
            "name": "since",
            "in": "query",
            "required": False,
            "description": "How far back: 1d (the default), 12h, or an ISO date or date-time.",
            "schema": {"type": "string"},
        },
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": "At most this many entries, newest first.",
            "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
        },
    ]
    operation["security"] = [{"apiKey": []}]
    operation["responses"] |= _refusals()
    paths["/audit"] = {"get": operation}


def _add_writes(paths: dict[str, Any]) -> None:
    """Part 4 writes, history and revert (tests/editing)."""
    done = {"204": {"description": "Done; the new version's ETag is in the header."}}
    created = {"201": {"description": "Created; Location names the new feature."}}
    item = ["collectionId", "featureId"]
    paths["/collections/{collectionId}/items"]["post"] = _write(
        "createFeature", "Create a feature 新建要素", ["collectionId"], GEOJSON, created
    )
    feature_path = paths["/collections/{collectionId}/items/{featureId}"]
    feature_path["put"] = _write("replaceFeature", "Replace a feature 替换要素", item, GEOJSON, done)
    feature_path["patch"] = _write(
        "updateFeature",
        "Change part of a feature 修改要素",
        item,
        "application/merge-patch+json",
        done,
        body_schema="FeaturePatch",
    )
    feature_path["delete"] = _write("deleteFeature", "Delete a feature 删除要素", item, None, done)
    paths["/collections/{collectionId}/items/{featureId}/history"] = {
        "get": _operation(
            "getFeatureHistory",
            "Versions of a feature 要素历史",
            "Editing",
            item,
            _ok("Versions.", {JSON: ""}),
        )
    }
    revert = _write("revertFeature", "Restore a version 恢复版本", item, None, done)
    revert["parameters"].append(
        {
            "name": "to",
            "in": "query",
            "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
        }
    )
    paths["/collections/{collectionId}/items/{featureId}/revert"] = {"post": revert}
    upload = _write(
        "importFeatures", "Import a file 导入文件", ["collectionId"], None, _ok("Report.", {JSON: ""})
    )
    upload["parameters"] = [p for p in upload["parameters"] if p.get("name") != "If-Match"]
    upload["requestBody"] = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "GeoJSON, GeoPackage (.gpkg) or zipped Shapefile (.zip)",
                        },
                        "datum": {
                            "type": "string",
                            "description": "wgs84, cgcs2000, gcj02, bd09, EPSG:nnnn (default: file CRS)",
                        },
                        "dry_run": {"type": "boolean", "default": False},
                        "comment": {"type": "string", "description": "Recorded in history."},
                    },
                }
            }
        },
    }
    paths["/collections/{collectionId}/import"] = {"post": upload}
    paths["/collections/{collectionId}/deleted"] = {
        "get": _operation(
            "getDeletedFeatures",
            "Deleted features 已删除要素",
            "Editing",
            ["collectionId"],
            _ok("List.", {JSON: ""}),
        )
    }


def openapi_document(
    catalog: Catalog,
    settings: Settings,
    base: str,
    title: str,
    description: str,
    extra_paths: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The API definition clients (QGIS, GDAL, the OGC test suite) read for paths and parameter limits;
    `extra_paths`: those of other parts of the service (the processes)."""
    parameters = declarations(settings.default_limit, settings.max_limit)
    parameters["collectionId"]["schema"]["enum"] = list(catalog.layers)
    problem = {"content": {PROBLEM_JSON: {"schema": _ref("schemas", "Problem")}}}
    html_or = {HTML: ""}
    parameters["fItems"] = parameters["f"] | {
        "description": "Output format: json (GeoJSON), html, or a file of every match: gpkg (GeoPackage), "
        "fgb (FlatGeobuf), csv (WKT geometry) or kml. Overrides the Accept header.",
        "schema": {"type": "string", "enum": ["json", "html", *(f.key for f in FORMATS.values())]},
    }
    items_refs = ["fItems" if p == "f" else p for p in ITEMS_PARAMETERS]
    items_responses = _ok(
        "A page of features (follow the `next` link for more), or a file of every match.",
        {GEOJSON: "FeatureCollectionGeoJSON"} | html_or | {m: "" for m in FORMATS},
    ) | {"404": _ref("responses", "NotFound")}
    paths: dict[str, Any] = {
        "/": {
            "get": _operation(
                "getLandingPage",
                "Landing page 首页",
                "Capabilities",
                ["f"],
                _ok("Links to the API, conformance and collections.", {JSON: "LandingPage"} | html_or),
            )
        },
        "/conformance": {
            "get": _operation(
                "getConformanceDeclaration",
                "Conformance classes 符合性",
                "Capabilities",
                ["f"],
                _ok("The conformance classes the service implements.", {JSON: "ConfClasses"} | html_or),
            )
        },
        "/api": {
            "get": _operation(
                "getAPI",
                "This API definition 接口定义",
                "Capabilities",
                ["f"],
                _ok("The OpenAPI document.", {OPENAPI: "", JSON: ""} | html_or),
            )
        },
        "/collections": {
            "get": _operation(
                "getCollections",
                "The collections (layers) 图层列表",
                "Capabilities",
                ["f"],
                _ok("Metadata of every collection.", {JSON: "Collections"} | html_or),
            )
        },
        "/collections/{collectionId}": {
            "get": _operation(
                "describeCollection",
                "One collection 图层",
                "Capabilities",
                ["collectionId", "f"],
                _ok("Metadata of the collection.", {JSON: "Collection"} | html_or),
            )
        },
        "/collections/{collectionId}/items": {
            "get": _operation(
                "getFeatures",
                "Features of a collection 要素",
                "Data",
                ["collectionId", *items_refs],
                items_responses,
            )
        },
        "/collections/{collectionId}/items/{featureId}": {
            "get": _operation(
                "getFeature",
                "One feature 单个要素",
                "Data",
                ["collectionId", "featureId", *FEATURE_PARAMETERS],
                _ok("The feature.", {GEOJSON: "FeatureGeoJSON"} | html_or),
            )
        },
    }
    _add_writes(paths)
    _add_audit(paths)
    for kind, summary in (
        ("queryables", "Properties a filter can use 可查询属性"),
        ("sortables", "Properties sortby can use 可排序属性"),
        ("schema", "Schema of the features 要素模式"),
    ):
        paths[f"/collections/{{collectionId}}/{kind}"] = {
            "get": _operation(
                f"get{kind.capitalize()}",
                summary,
                "Capabilities",
                ["collectionId", "f"],
                _ok("A JSON Schema.", {SCHEMA_JSON: ""}),
            )
        }
    tile_params = [
        {
            "name": n,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 0},
            "description": d,
        }
        for n, d in (
            ("tileMatrix", "Zoom level (0–22)."),
            ("tileRow", "Row (y, from the top)."),
            ("tileCol", "Column (x, from the left)."),
        )
    ]
    tile_responses = {
        "200": {"description": "A Mapbox Vector Tile.", "content": {MVT: {"schema": {"type": "string"}}}},
        "204": {"description": "No feature in this tile."},
        "400": _ref("responses", "InvalidParameter"),
        "404": _ref("responses", "NotFound"),
    }
    paths["/collections/{collectionId}/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}"] = {
        "get": _operation(
            "getCollectionTile",
            "A vector tile of a collection 图层矢量瓦片",
            "Data",
            ["collectionId"],
            tile_responses,
        )
        | {"parameters": [_ref("parameters", "collectionId"), *tile_params]}
    }
    paths["/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}"] = {
        "get": _operation(
            "getDatasetTile", "A vector tile of every collection 全部图层矢量瓦片", "Data", [], tile_responses
        )
        | {"parameters": tile_params}
    }
    for path, op_id, summary, params in (
        ("/tiles", "getTileSets", "Vector tilesets of the plan 矢量瓦片集", []),
        ("/tiles/WebMercatorQuad", "getTileSet", "Tileset metadata 瓦片集元数据", []),
        (
            "/collections/{collectionId}/tiles",
            "getCollectionTileSets",
            "Vector tilesets of a collection",
            ["collectionId"],
        ),
        (
            "/collections/{collectionId}/tiles/WebMercatorQuad",
            "getCollectionTileSet",
            "Tileset metadata of a collection",
            ["collectionId"],
        ),
        ("/tileMatrixSets", "getTileMatrixSets", "Tile matrix sets 瓦片矩阵集", []),
        ("/tileMatrixSets/WebMercatorQuad", "getTileMatrixSet", "WebMercatorQuad definition", []),
    ):
        paths[path] = {
            "get": _operation(op_id, summary, "Capabilities", [*params, "f"], _ok("JSON.", {JSON: ""}))
        }
    for layer in catalog.layers.values():
        # one path per collection, declaring its properties as Part 1 equality filters (`?status=planned`):
        # how GDAL and QGIS learn which attribute filters the server evaluates
        operation = _operation(
            f"getFeatures_{layer.id}",
            f"{layer.title}",
            "Data",
            items_refs,
            items_responses,
        )
        operation["parameters"] += [
            {
                "name": name,
                "in": "query",
                "required": False,
                "style": "form",
                "explode": False,
                "description": f"Only features whose {name} equals this value.",
                "schema": {"type": "number" if f.kind == "integer" else f.kind},
            }
            for name, f in layer_fields(layer).items()
            if f.sortable
        ]
        paths[f"/collections/{layer.id}/items"] = {"get": operation}
    paths |= openapi_paths()  # /health, /ready, /metrics
    paths |= extra_paths or {}
    _add_unavailable(paths)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": title,
            "description": f"{description} Read your writes: every write answers {READ_AFTER} (and the "
            "cookie jxplan_read_after); a read that sends either back sees the write, whichever read "
            "replica answers.",
            "version": __version__,
            "license": {"name": "MIT"},
        },
        "servers": [{"url": base}],
        "tags": [
            {"name": "Capabilities"},
            {"name": "Data"},
            {"name": "Editing"},
            {"name": "Processes"},
            {"name": "Operations"},
        ],
        "paths": paths,
        "components": {
            "parameters": parameters,
            "schemas": _schemas(),
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from `jxplan keys add`: role editor (or admin) for writes, "
                    "admin for the audit log.",
                }
            },
            "responses": {
                "InvalidParameter": {"description": "A query parameter is malformed or unknown.", **problem},
                "NotFound": {"description": "No such collection or feature.", **problem},
                "ServerError": {"description": "A server error (a bug: please report it).", **problem},
                "Unauthorized": {
                    "description": "No API key, or one that is not valid (mistyped, revoked or expired).",
                    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                    **problem,
                },
                "Forbidden": {
                    "description": "The key's role is too low, or the key may not write this layer.",
                    **problem,
                },
                "Unavailable": {
                    "description": "The database cannot answer now (stopped, restarting, every connection "
                    "busy) or the query ran past the time limit: try again after Retry-After seconds.",
                    "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
                    **problem,
                },
                "TooManyAttempts": {
                    "description": "Too many failed authentications from this address: wait Retry-After s.",
                    "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
                    **problem,
                },
            },
        },
    }
