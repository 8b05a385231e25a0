"""Vector tiles (OGC API – Tiles): Mapbox Vector Tiles in WebMercatorQuad, built by PostGIS.

Paths follow the standard: `/collections/{id}/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}`
(zoom, then row = y, then column = x) for one layer, and `/tiles/WebMercatorQuad/…` for the whole plan with
one MVT layer per collection. One SQL statement per tile: `ST_TileEnvelope` gives the tile, the features are
found through the GiST index of their stored Web Mercator geometry (`geom_3857`, so nothing is transformed
per request), simplified to the tile's pixel size, clipped by `ST_AsMVTGeom` and encoded by `ST_AsMVT`
with the properties the layer's catalogue entry names for that zoom (`tiles.properties`: few at low zoom).
The tile's ETag is derived from the layer versions, so an edit changes it at once; an empty tile is 204.
Tileset metadata, TileJSON 3.0 and the tile matrix set definition (from morecantile) describe them.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import datetime
from functools import cache
from typing import Any

import morecantile
from fastapi import APIRouter, Depends, Request, Response
from starlette.routing import Route

from geo_service.catalog import MAX_TILE_ZOOM, Catalog, Layer
from geo_service.db.engine import ReadPool, reading
from geo_service.db.replicas import reads_for
from geo_service.errors import InvalidParameter, NotFound
from geo_service.ogc.dependencies import get_catalog, get_layer, get_settings, path_layer
from geo_service.ogc.fields import layer_fields
from geo_service.ogc.links import link, url
from geo_service.ogc.negotiation import JSON, negotiate
from geo_service.ogc.parameters import reject_unknown
from geo_service.ogc.query import Sql
from geo_service.ogc.responses import cache_headers, etag_for, is_conditional, json_response, not_modified
from geo_service.ogc.tilecache import TileCache
from geo_service.settings import Settings

router = APIRouter()

MVT = "application/vnd.mapbox-vector-tile"
TMS_ID = "WebMercatorQuad"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
REL_TILING_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
REL_TILESETS_VECTOR = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
REL_TILING_SCHEMES = "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes"
MAX_ZOOM = MAX_TILE_ZOOM
EXTENT = 4096  # MVT grid units per tile side
BUFFER = 64  # grid units drawn beyond the edge, so strokes do not break at tile borders
SIMPLIFY_FROM = 32  # vertices: simpler geometries are not simplified before clipping
# how a property's kind reads in TileJSON's `fields` (tippecanoe's words) and in a tileset's schema
_FIELD_TYPE = {"string": "String", "number": "Number", "integer": "Number", "boolean": "Boolean"}
_INT = re.compile(r"^(0|[1-9][0-9]{0,9})$")
_DIMENSION = {
    "Point": 0,
    "MultiPoint": 0,
    "LineString": 1,
    "MultiLineString": 1,
    "Polygon": 2,
    "MultiPolygon": 2,
}


@cache
def _tms() -> morecantile.TileMatrixSet:
    return morecantile.tms.get(TMS_ID)


def _tile_index(tms_id: str, z: str, row: str, col: str) -> tuple[int, int, int]:
    """Zoom, column (x) and row (y), checked: 404 outside the tile matrix set, 400 for non-integers."""
    if tms_id != TMS_ID:
        raise NotFound(f"No tile matrix set {tms_id!r}; this service offers {TMS_ID}.")
    if not all(_INT.match(v) for v in (z, row, col)):
        raise InvalidParameter(
            "tileMatrix, tileRow and tileCol must be whole numbers (…/{zoom}/{row}/{column}).",
            parameter="tileMatrix",
        )
    zoom, y, x = int(z), int(row), int(col)
    if zoom > MAX_ZOOM:
        raise NotFound(f"tileMatrix {zoom} is beyond the deepest zoom, {MAX_ZOOM}.")
    if x >= 2**zoom or y >= 2**zoom:
        raise NotFound(
            f"Tile {zoom}/{y}/{x} is outside tile matrix {zoom} (rows and columns 0–{2**zoom - 1})."
        )
    return zoom, x, y


def tile_columns(layer: Layer, zoom: int) -> list[str]:
    """The SQL of the properties the layer's tiles carry at `zoom` (its catalogue's `tiles.properties`),
    each `AS` its name; arrays as their JSON text (an MVT value is a scalar)."""
    fields = layer_fields(layer)
    columns = []
    for name in layer.tile_properties(zoom):
        field = fields.get(name)
        if field is None:
            continue
        sql = f"({field.sql})::text" if field.kind == "array" else field.sql
        columns.append(f'{sql} AS "{name}"')
    return columns


def _layer_select(layer: Layer, index: int, zoom: int) -> str:
    """SQL of one MVT layer of the tile: simplified, clipped, encoded (empty bytes when nothing is there)."""
    columns = "".join(f"{c}, " for c in tile_columns(layer, zoom))
    geometry = "f.geom_3857"
    if _DIMENSION[layer.geometry_type] > 0:
        # drop detail finer than a quarter of a screen pixel (a 256-pixel tile) before clipping, from lines
        # and outlines with many vertices; a small shape (a parcel) is left to ST_AsMVTGeom's snapping to
        # the tile grid, which costs less than simplifying it (a z12 tile of 1,000 parcels: -20 % time)
        simplified = f"ST_Simplify({geometry}, :pixel, true)"
        geometry = f"CASE WHEN ST_NPoints({geometry}) > {SIMPLIFY_FROM} THEN {simplified} ELSE {geometry} END"
    return f"""
        (SELECT COALESCE(ST_AsMVT(t, :name{index}, {EXTENT}, 'geom', 'id'), ''::bytea) FROM (
            SELECT f.id, {columns}
                   ST_AsMVTGeom({geometry}, b.envelope, {EXTENT}, {BUFFER}, true) AS geom
            FROM features f, bounds b
            WHERE f.layer_id = :name{index} AND f.geom_3857 && b.search
            OFFSET 0
        ) t WHERE t.geom IS NOT NULL)
    """


# the layers' states (id, version, time of last change), as JSON text, in the statement's snapshot
STATES_SQL = (
    "(SELECT json_agg(json_build_array(l.id, l.version, l.updated_at))"
    " FROM layers l WHERE l.id = ANY(CAST(:layer_ids AS text[])))::text"
)


def tile_sql(layers: list[Layer], z: int, x: int, y: int, *, state: bool = False) -> Sql:
    """One statement giving the tile's bytes (`tile`): the named layers' MVT layers, concatenated; with
    `state`, also the layers' states (`states`, STATES_SQL), so that one round trip gives tile and ETag."""
    margin = BUFFER / EXTENT
    parts = " || ".join(_layer_select(layer, i, z) for i, layer in enumerate(layers))
    states = f"{STATES_SQL} AS states, " if state else ""
    sql = f"""
        WITH bounds AS (
            SELECT ST_TileEnvelope(:z, :x, :y) AS envelope,
                   ST_TileEnvelope(:z, :x, :y, margin => {margin}) AS search
        )
        SELECT {states}{parts} AS tile
    """
    pixel = 2 * math.pi * 6378137 / 2**z / 1024
    names = {f"name{i}": layer.id for i, layer in enumerate(layers)}
    params: dict[str, Any] = {"z": z, "x": x, "y": y, **names}
    if ":pixel" in sql:
        params["pixel"] = pixel
    if state:
        params["layer_ids"] = [layer.id for layer in layers]
    return Sql(sql, params)


def tile_statement(layers: list[Layer], z: int, x: int, y: int) -> Any:
    """`tile_sql` as a SQLAlchemy clause (the tile alone)."""
    return tile_sql(layers, z, x, y).clause()


def property_set(layers: list[Layer], zoom: int) -> str:
    """A short fingerprint of the properties the layers' tiles carry at `zoom`: part of the tile's cache key
    and ETag, so a catalogue that changes them never gets an older tile's bytes or a 304 for them."""
    names = ";".join(f"{layer.id}:{','.join(layer.tile_properties(zoom))}" for layer in layers)
    return hashlib.sha256(names.encode()).hexdigest()[:12]


def _versions(layers: list[Layer], states: bytes | str | None) -> tuple[str, datetime]:
    """The layers' versions as one text, and their latest change; 404 if one was never loaded."""
    found = {row[0]: (row[1], datetime.fromisoformat(row[2])) for row in json.loads(states or "[]")}
    for layer in layers:
        if layer.id not in found:
            raise NotFound(f"Collection {layer.id!r} is declared but not loaded yet; run `jxplan load`.")
    versions = ",".join(f"{layer.id}:{found[layer.id][0]}" for layer in layers)
    return versions, max(found[layer.id][1] for layer in layers)


async def _tile_response(
    request: Request, pool: ReadPool, layers: list[Layer], z: int, x: int, y: int
) -> Response:
    reject_unknown(request.query_params, [])
    cache: TileCache = request.app.state.tile_cache
    conditional = is_conditional(request)
    carried = property_set(layers, z)
    async with reading(pool) as conn:
        if conditional or cache.enabled:  # the layers' versions first: a 304 or a cached tile costs no tile
            ids = [layer.id for layer in layers]
            cur = await conn.execute(*Sql(f"SELECT {STATES_SQL}", {"layer_ids": ids}).psycopg())
            row = await cur.fetchone()
            versions, updated = _versions(layers, None if row is None else row[0])
            versions = f"{versions};{carried}"
            etag = etag_for("tile", versions, z, x, y)
            if conditional and (cached := not_modified(request, etag, updated)) is not None:
                return cached
            if (kept := cache.get((versions, z, x, y))) is not None:
                return _tile_body(kept, etag, updated)
        # binary results: the tile comes as its bytes, not as hex text twice its size to decode
        cur = await conn.execute(*tile_sql(layers, z, x, y, state=True).psycopg(), binary=True)
        row = await cur.fetchone()
    assert row is not None  # a SELECT without FROM gives one row
    states, tile = row
    # the versions of the tile's own snapshot: an edit between the two statements keys it under the new ones
    versions, updated = _versions(layers, states)
    versions = f"{versions};{carried}"
    cache.put((versions, z, x, y), tile or b"")
    return _tile_body(tile, etag_for("tile", versions, z, x, y), updated)


def _tile_body(tile: bytes | None, etag: str, updated: datetime) -> Response:
    headers = cache_headers(etag, updated)
    if not tile:
        return Response(status_code=204, headers=headers)
    return Response(content=tile, media_type=MVT, headers=headers)


def _path_tile(request: Request) -> tuple[int, int, int]:
    path = request.path_params
    return _tile_index(str(path["tms_id"]), str(path["z"]), str(path["row"]), str(path["col"]))


async def collection_tile(request: Request) -> Response:
    """One vector tile of one collection."""
    layer = path_layer(request)
    zoom, x, y = _path_tile(request)
    return await _tile_response(request, await reads_for(request), [layer], zoom, x, y)


async def dataset_tile(request: Request) -> Response:
    """One vector tile of the whole plan: one MVT layer per collection."""
    catalog: Catalog = request.app.state.catalog
    zoom, x, y = _path_tile(request)
    return await _tile_response(request, await reads_for(request), list(catalog.layers.values()), zoom, x, y)


# plain routes, matched before the app's routers (see geo_service.ogc.dependencies)
routes = [
    Route("/collections/{collection_id}/tiles/{tms_id}/{z}/{row}/{col}", collection_tile, methods=["GET"]),
    Route("/tiles/{tms_id}/{z}/{row}/{col}", dataset_tile, methods=["GET"]),
]


# -- metadata ---------------------------------------------------------------------------------------------


def _tile_template(request: Request, settings: Settings, prefix: str) -> str:
    return url(request, settings, f"{prefix}/tiles/{TMS_ID}") + "/{tileMatrix}/{tileRow}/{tileCol}"


def _field_type(layer: Layer, name: str) -> str:
    """A tile property's type as TileJSON names it: arrays are carried as their JSON text."""
    return _FIELD_TYPE.get(layer_fields(layer)[name].kind, "String")


def _tile_fields(layer: Layer) -> dict[str, int]:
    """Every property some zoom of the layer's tiles carries, with the lowest zoom that carries it."""
    fields = layer_fields(layer)
    return {n: z for n, z in layer.tile_property_zooms().items() if n in fields}


def _vector_layer(layer: Layer) -> dict[str, Any]:
    fields = layer_fields(layer)
    return {
        "id": layer.id,
        "title": str(layer.title),
        "description": str(layer.description),
        "dataType": "vector",
        "geometryDimension": _DIMENSION[layer.geometry_type],
        "minTileMatrix": "0",
        "maxTileMatrix": str(MAX_ZOOM),
        # every property a tile may carry; `x-minTileMatrix`, the first tile matrix whose tiles carry it
        # (lower zooms carry fewer: the catalogue's `tiles.properties`); the feature id is the MVT id
        "propertiesSchema": {
            "type": "object",
            "properties": {
                name: {
                    "type": _field_type(layer, name).lower(),
                    "title": fields[name].schema.get("title", name),
                    "x-minTileMatrix": str(zoom),
                }
                for name, zoom in _tile_fields(layer).items()
            },
        },
    }


def _tileset(
    request: Request, settings: Settings, prefix: str, title: str, layers: list[Layer]
) -> dict[str, Any]:
    """OGC API – Tiles tileset metadata of WebMercatorQuad vector tiles."""
    base = url(request, settings, f"{prefix}/tiles/{TMS_ID}")
    return {
        "title": title,
        "dataType": "vector",
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "tileMatrixSetURI": TMS_URI,
        "links": [
            link(
                url(request, settings, f"{prefix}/tiles/{TMS_ID}", f="json"),
                "self",
                JSON,
                "本瓦片集 This tileset",
            ),
            link(
                url(request, settings, f"/tileMatrixSets/{TMS_ID}"),
                REL_TILING_SCHEME,
                JSON,
                "瓦片矩阵集 Tiling scheme",
            ),
            link(base + "/tilejson", "alternate", "application/vnd.mapbox.tile+json", "TileJSON"),
            link(_tile_template(request, settings, prefix), "item", MVT, "矢量瓦片 Vector tiles")
            | {"templated": True},
        ],
        "layers": [_vector_layer(layer) for layer in layers],
    }


def _tilejson(
    request: Request, settings: Settings, prefix: str, name: str, layers: list[Layer]
) -> dict[str, Any]:
    """TileJSON 3.0.0, for MapLibre, Leaflet plug-ins and QGIS's vector tile layer."""
    template = url(request, settings, f"{prefix}/tiles/{TMS_ID}") + "/{z}/{y}/{x}"
    return {
        "tilejson": "3.0.0",
        "name": name,
        "scheme": "xyz",
        "tiles": [template],
        "minzoom": 0,
        "maxzoom": MAX_ZOOM,
        "bounds": [119.8, 29.9, 121.95, 31.4],
        "center": [120.76, 30.75, 9],
        "vector_layers": [
            {
                "id": layer.id,
                "description": str(layer.title),
                "minzoom": 0,
                "maxzoom": MAX_ZOOM,
                "fields": {n: _field_type(layer, n) for n in _tile_fields(layer)},
                # not in TileJSON 3.0 (which allows further keys): the lowest zoom carrying each field
                "fields_minzoom": _tile_fields(layer),
            }
            for layer in layers
        ],
    }


def _tilesets_list(request: Request, settings: Settings, prefix: str, title: str) -> dict[str, Any]:
    return {
        "tilesets": [
            {
                "title": title,
                "dataType": "vector",
                "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
                "tileMatrixSetURI": TMS_URI,
                "links": [
                    link(url(request, settings, f"{prefix}/tiles/{TMS_ID}"), "self", JSON, title),
                    link(url(request, settings, f"/tileMatrixSets/{TMS_ID}"), REL_TILING_SCHEME, JSON),
                ],
            }
        ],
        "links": [link(url(request, settings, f"{prefix}/tiles"), "self", JSON)],
    }


def _metadata(request: Request, body: dict[str, Any], media: str = JSON) -> Response:
    reject_unknown(request.query_params, ["f"])
    negotiate(request, [JSON])
    etag = etag_for("tiles-metadata", request.url.path, str(request.base_url), body)
    if (cached := not_modified(request, etag, None)) is not None:
        return cached
    return json_response(body, media, cache_headers(etag, None))


@router.get("/collections/{collection_id}/tiles", include_in_schema=False)
async def collection_tilesets(
    request: Request, layer: Layer = Depends(get_layer), settings: Settings = Depends(get_settings)
) -> Response:
    """The vector tilesets of one collection (WebMercatorQuad)."""
    prefix = f"/collections/{layer.id}"
    return _metadata(
        request, _tilesets_list(request, settings, prefix, f"{layer.title} — 矢量瓦片 vector tiles")
    )


@router.get("/collections/{collection_id}/tiles/{tms_id}", include_in_schema=False)
async def collection_tileset(
    tms_id: str,
    request: Request,
    layer: Layer = Depends(get_layer),
    settings: Settings = Depends(get_settings),
) -> Response:
    """Tileset metadata of one collection."""
    _tile_index(tms_id, "0", "0", "0")
    prefix = f"/collections/{layer.id}"
    return _metadata(request, _tileset(request, settings, prefix, str(layer.title), [layer]))


@router.get("/collections/{collection_id}/tiles/{tms_id}/tilejson", include_in_schema=False)
async def collection_tilejson(
    tms_id: str,
    request: Request,
    layer: Layer = Depends(get_layer),
    settings: Settings = Depends(get_settings),
) -> Response:
    """TileJSON of one collection's tiles."""
    _tile_index(tms_id, "0", "0", "0")
    body = _tilejson(request, settings, f"/collections/{layer.id}", str(layer.title), [layer])
    return _metadata(request, body)


@router.get("/tiles", include_in_schema=False)
async def dataset_tilesets(request: Request, settings: Settings = Depends(get_settings)) -> Response:
    """The vector tilesets of the whole plan."""
    return _metadata(
        request, _tilesets_list(request, settings, "", "嘉兴规划 Jiaxing plan — 矢量瓦片 vector tiles")
    )


@router.get("/tiles/{tms_id}", include_in_schema=False)
async def dataset_tileset(
    tms_id: str,
    request: Request,
    settings: Settings = Depends(get_settings),
    catalog: Catalog = Depends(get_catalog),
) -> Response:
    """Tileset metadata of the whole plan: one vector layer per collection."""
    _tile_index(tms_id, "0", "0", "0")
    body = _tileset(request, settings, "", "嘉兴规划 Jiaxing plan", list(catalog.layers.values()))
    return _metadata(request, body)


@router.get("/tiles/{tms_id}/tilejson", include_in_schema=False)
async def dataset_tilejson(
    tms_id: str,
    request: Request,
    settings: Settings = Depends(get_settings),
    catalog: Catalog = Depends(get_catalog),
) -> Response:
    """TileJSON of the whole plan's tiles."""
    _tile_index(tms_id, "0", "0", "0")
    return _metadata(request, _tilejson(request, settings, "", "jiaxing_plan", list(catalog.layers.values())))


@router.get("/tileMatrixSets", include_in_schema=False)
async def tile_matrix_sets(request: Request, settings: Settings = Depends(get_settings)) -> Response:
    """The tile matrix sets offered."""
    body = {
        "tileMatrixSets": [
            {
                "id": TMS_ID,
                "title": "Google Maps Compatible for the World",
                "uri": TMS_URI,
                "links": [link(url(request, settings, f"/tileMatrixSets/{TMS_ID}"), "self", JSON)],
            }
        ]
    }
    return _metadata(request, body)


@router.get("/tileMatrixSets/{tms_id}", include_in_schema=False)
async def tile_matrix_set(tms_id: str, request: Request) -> Response:
    """The definition of WebMercatorQuad (OGC Two Dimensional Tile Matrix Set 2.0)."""
    _tile_index(tms_id, "0", "0", "0")
    return _metadata(request, _tms().model_dump(mode="json", exclude_none=True, by_alias=True))
