"""History of a feature: every earlier version, what each change did, old versions, revert and restore.

`feature_history` holds the state of each version a write replaced (or deleted), with who changed it, when
and why; the current version is the row in `features`. A change is described by the properties it changed
and by its geometry in EPSG:4549 (metres): how far it moved (Hausdorff distance), how its area or length
changed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from geo_service.catalog import Layer
from geo_service.editing.body import conflict
from geo_service.editing.keys import Caller
from geo_service.editing.routes import editor, update_feature
from geo_service.errors import InvalidParameter, NotFound
from geo_service.ogc.dependencies import get_engine, get_layer, get_settings, parse_feature_id
from geo_service.ogc.links import url
from geo_service.ogc.negotiation import JSON
from geo_service.ogc.parameters import parse_version, reject_unknown
from geo_service.ogc.query import FEATURE_STATES
from geo_service.ogc.responses import feature_etag, json_response
from geo_service.ops.audit import write_audit
from geo_service.settings import Settings

router = APIRouter()


def _changed(before: dict[str, Any], after: dict[str, Any] | None) -> list[str]:
    if after is None:
        return []
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


@router.get("/collections/{collection_id}/items/{feature_id}/history", include_in_schema=False)
async def feature_history(
    feature_id: str,
    request: Request,
    layer: Layer = Depends(get_layer),
    engine: AsyncEngine = Depends(get_engine),
    settings: Settings = Depends(get_settings),
) -> Response:
    """Every version of the feature, oldest first, each with the change that ended it."""
    reject_unknown(request.query_params, [])
    fid = parse_feature_id(layer, feature_id)
    sql = f"""
        WITH states AS ({FEATURE_STATES}), metric AS (
            SELECT s.*, lead(s.properties) OVER w AS next_properties,
                   lead(s.geom) OVER w AS next_geom, lead(s.version) OVER w AS next_version
              FROM states s WINDOW w AS (ORDER BY s.version)
        )
        SELECT version, properties, operation, changed_by, comment, changed_at, next_properties, next_version,
               ST_HausdorffDistance(ST_Transform(geom, 4549), ST_Transform(next_geom, 4549)) AS moved_m,
               ST_Area(ST_Transform(next_geom, 4549)) - ST_Area(ST_Transform(geom, 4549)) AS area_change_m2,
               ST_Length(ST_Transform(next_geom, 4549))
                 - ST_Length(ST_Transform(geom, 4549)) AS length_change_m,
               (geom IS NULL) <> (next_geom IS NULL) AS location_added_or_removed
          FROM metric ORDER BY version
    """
    async with engine.connect() as conn:
        rows = list(await conn.execute(text(sql), {"layer": layer.id, "id": fid}))
    if not rows:
        raise NotFound(f"Feature {fid} of {layer.id} has no history: it never existed.")
    base = f"/collections/{layer.id}/items/{fid}"
    versions = []
    for row in rows:
        entry: dict[str, Any] = {
            "version": row.version,
            "code": row.properties.get("code"),
            "href": url(request, settings, base, version=row.version),
        }
        if row.operation == "current":
            entry |= {"state": "current", "since": row.changed_at.isoformat(), "by": row.changed_by}
        else:
            change: dict[str, Any] = {
                "operation": row.operation,
                "at": row.changed_at.isoformat(),
                "by": row.changed_by,
                "comment": row.comment,
            }
            if row.operation == "update":
                change["properties_changed"] = _changed(row.properties, row.next_properties)
                change["geometry_moved_m"] = None if row.moved_m is None else round(row.moved_m, 3)
                change["area_change_m2"] = (
                    None if row.area_change_m2 is None else round(row.area_change_m2, 1)
                )
                change["length_change_m"] = (
                    None if row.length_change_m is None else round(row.length_change_m, 1)
                )
                change["location_added_or_removed"] = bool(row.location_added_or_removed)
            entry |= {"state": "replaced" if row.operation == "update" else "deleted", "change": change}
        versions.append(entry)
    body = {
        "feature": fid,
        "collection": layer.id,
        "deleted": rows[-1].operation == "delete",
        "versions": versions,
        "links": [{"href": url(request, settings, f"{base}/history"), "rel": "self", "type": JSON}],
    }
    return json_response(body, JSON)


@router.post("/collections/{collection_id}/items/{feature_id}/revert", include_in_schema=False)
async def revert(
    feature_id: str,
    request: Request,
    layer: Layer = Depends(get_layer),
    caller: Caller = Depends(editor),
    engine: AsyncEngine = Depends(get_engine),
) -> Response:
    """Make version `to` current again, as a new version (the replaced one goes to history); a deleted
    feature is restored under its own id."""
    reject_unknown(request.query_params, ["to"])
    fid = parse_feature_id(layer, feature_id)
    target = parse_version(
        request.query_params.get("to", ""), "to", " Say which version to go back to: ?to=N (see …/history)."
    )
    async with engine.connect() as conn:  # history rows never change: read them outside the write
        state = (
            await conn.execute(
                text(
                    "SELECT properties, ST_AsGeoJSON(geom, 15) AS geometry FROM feature_history"
                    " WHERE layer_id = :layer AND feature_id = :id AND version = :v"
                ),
                {"layer": layer.id, "id": fid, "v": target},
            )
        ).first()
        current = (
            await conn.execute(
                text("SELECT version FROM features WHERE layer_id = :layer AND id = :id"),
                {"layer": layer.id, "id": fid},
            )
        ).first()
    if state is None:
        where = (
            "the current version" if current is not None and current.version == target else "not in history"
        )
        raise InvalidParameter(
            f"Version {target} of feature {fid} is {where}; choose an earlier version from …/history.",
            parameter="to",
        )
    comment = unquote(request.headers.get("x-edit-comment", "")) or f"revert to version {target}"
    if current is not None:

        async def changes(_: dict[str, Any]) -> tuple[dict[str, Any], Any]:
            return state.properties, state.geometry

        return await update_feature(request, layer, caller, engine, fid, changes, comment)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": fid})
            last = (
                await conn.execute(
                    text("SELECT max(version) FROM feature_history WHERE feature_id = :id"), {"id": fid}
                )
            ).scalar_one()
            new = last + 1
            await conn.execute(
                text(
                    "INSERT INTO features (id, layer_id, properties, geom, version, updated_by)"
                    " SELECT feature_id, layer_id, properties, geom, :new, :who FROM feature_history"
                    " WHERE feature_id = :id AND version = :v"
                ),
                {"id": fid, "v": target, "new": new, "who": caller.name},
            )
            await write_audit(request).written(conn, [fid], action="restore")
    except IntegrityError as exc:  # the feature came back meanwhile, or its code is taken
        raise conflict(exc, layer, state.properties) from None
    return Response(status_code=204, headers={"ETag": feature_etag(fid, new, "reverted")})


@router.get("/collections/{collection_id}/deleted", include_in_schema=False)
async def deleted_features(
    request: Request,
    layer: Layer = Depends(get_layer),
    engine: AsyncEngine = Depends(get_engine),
    settings: Settings = Depends(get_settings),
) -> Response:
    """Features of the collection that were deleted (and not restored), newest first, each restorable."""
    reject_unknown(request.query_params, [])
    sql = """
        SELECT h.feature_id, h.version, h.properties->>'code' AS code, h.properties->>'name_zh' AS name_zh,
               h.valid_to AS deleted_at, h.changed_by, h.comment
          FROM feature_history h
         WHERE h.layer_id = :layer AND h.operation = 'delete'
           AND NOT EXISTS (SELECT 1 FROM features f WHERE f.id = h.feature_id)
           AND h.version = (SELECT max(version) FROM feature_history x WHERE x.feature_id = h.feature_id)
         ORDER BY h.valid_to DESC
    """
    async with engine.connect() as conn:
        rows = list(await conn.execute(text(sql), {"layer": layer.id}))
    base = f"/collections/{layer.id}/items"
    body = {
        "collection": layer.id,
        "deleted": [
            {
                "id": r.feature_id,
                "code": r.code,
                "name_zh": r.name_zh,
                "deleted_at": r.deleted_at.isoformat(),
                "deleted_by": r.changed_by,
                "comment": r.comment,
                "last_version": url(request, settings, f"{base}/{r.feature_id}", version=r.version),
                "restore": url(request, settings, f"{base}/{r.feature_id}/revert", to=r.version),
            }
            for r in rows
        ],
    }
    return json_response(body, JSON)
