"""Write routes of OGC API – Features Part 4 (POST, PUT, PATCH, DELETE), and OPTIONS saying what each path
allows.

Every write needs a key with the editor role (`auth.require`), honours `If-Match` when it is sent (412 with
the current version otherwise) and never requires it, and appends the previous state of the feature to
`feature_history` in the same transaction as the change: who (the key's name), when, and an optional
comment from the `X-Edit-Comment` header (percent-encoded UTF-8). Nothing is ever lost.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from geo_service.catalog import Layer
from geo_service.editing.auth import require
from geo_service.editing.body import (
    KEEP,
    PATCH_TYPES,
    checked_patch,
    conflict,
    read_feature,
    read_json,
)
from geo_service.editing.keys import Caller
from geo_service.editing.statements import RECORD_STATE, geometry_sql
from geo_service.errors import NotFound, Problem
from geo_service.ogc.dependencies import get_engine, get_layer, get_settings, parse_feature_id
from geo_service.ogc.links import url
from geo_service.ogc.responses import feature_etag, matches_version
from geo_service.settings import Settings

router = APIRouter()
editor = require("editor")  # the one place write routes get their guard

READ_METHODS = ["GET", "HEAD", "OPTIONS"]
MAX_COMMENT = 2000


class PreconditionFailed(Problem):
    """`If-Match` names a version that is no longer current."""

    status = 412
    title = "Precondition failed 版本已变化"


class MethodNotAllowed(Problem):
    """The collection cannot be changed this way."""

    status = 405
    title = "Method not allowed 不允许的方法"


def item_methods(layer: Layer) -> list[str]:
    """What `/items/{featureId}` allows."""
    return [*READ_METHODS, "PUT", "PATCH", "DELETE"] if layer.editable else READ_METHODS


def items_methods(layer: Layer) -> list[str]:
    """What `/items` allows: QGIS offers editing only when POST is allowed here."""
    return [*READ_METHODS, "POST"] if layer.editable else READ_METHODS


def _comment(request: Request) -> str | None:
    raw = request.headers.get("x-edit-comment")
    if raw is None:
        return None
    return unquote(raw)[:MAX_COMMENT] or None


def _check_editable(layer: Layer, allowed: list[str]) -> None:
    """405 for a write to a layer that is not editable, with what the path does allow."""
    if not layer.editable:
        problem = MethodNotAllowed(
            f"{layer.id} is reference data and cannot be edited through the API; it is rebuilt from its "
            "sources (see docs/data-sources.md)."
        )
        problem.headers = {"Allow": ", ".join(allowed)}
        raise problem


@router.options("/collections/{collection_id}/items", include_in_schema=False)
async def items_options(layer: Layer = Depends(get_layer)) -> Response:
    """What the items path allows."""
    return Response(status_code=204, headers={"Allow": ", ".join(items_methods(layer))})


@router.post("/collections/{collection_id}/items", include_in_schema=False)
async def create_feature(
    request: Request,
    layer: Layer = Depends(get_layer),
    caller: Caller = Depends(editor),
    engine: AsyncEngine = Depends(get_engine),
    settings: Settings = Depends(get_settings),
) -> Response:
    """Create a feature from a GeoJSON Feature (its `id`, if any, is ignored): 201 with `Location`."""
    _check_editable(layer, items_methods(layer))
    feature = await read_feature(request, layer)
    try:
        async with engine.begin() as conn:
            row = (
                await conn.execute(
                    text(
                        "INSERT INTO features (layer_id, properties, geom, updated_by)"
                        f" VALUES (:layer, CAST(:properties AS jsonb), {geometry_sql(layer)}, :who)"
                        " RETURNING id, version"
                    ),
                    {
                        "layer": layer.id,
                        "properties": json.dumps(feature.properties, ensure_ascii=False),
                        "geometry": feature.geometry_json,
                        "who": caller.name,
                    },
                )
            ).one()
    except IntegrityError as exc:
        raise conflict(exc, layer, feature.properties) from None
    location = url(request, settings, f"/collections/{layer.id}/items/{row.id}")
    headers = {"Location": location, "ETag": feature_etag(row.id, row.version, "created")}
    return Response(status_code=201, headers=headers)


@router.options("/collections/{collection_id}/items/{feature_id}", include_in_schema=False)
async def item_options(feature_id: str, layer: Layer = Depends(get_layer)) -> Response:
    """What a feature's path allows."""
    return Response(status_code=204, headers={"Allow": ", ".join(item_methods(layer))})


async def _locked(conn: AsyncConnection, layer: Layer, fid: int, if_match: str | None) -> Any:
    """The feature's row, locked for the rest of the transaction, after the If-Match check."""
    row = (
        await conn.execute(
            text("SELECT version, properties FROM features WHERE layer_id = :layer AND id = :id FOR UPDATE"),
            {"layer": layer.id, "id": fid},
        )
    ).first()
    if row is None:
        raise NotFound(f"No feature {fid} in collection {layer.id} (deleted?).")
    if if_match is not None and not matches_version(if_match, fid, row.version):
        raise PreconditionFailed(
            f"Feature {fid} has changed since you read it: it is now at version {row.version}. "
            "Reload it, check the changes, and try again.",
            current_version=row.version,
        )
    return row


async def record_state(
    conn: AsyncConnection, fid: int, operation: str, who: str, comment: str | None
) -> None:
    """The feature's current state into history, before it is changed or deleted (same transaction)."""
    await conn.execute(text(RECORD_STATE), {"id": fid, "op": operation, "who": who, "comment": comment})


async def update_feature(
    request: Request,
    layer: Layer,
    caller: Caller,
    engine: AsyncEngine,
    fid: int,
    changes: Callable[[dict[str, Any]], Awaitable[tuple[dict[str, Any], Any]]],
    comment: str | None = None,
) -> Response:
    """Lock, check If-Match, work out the new state from the current one, record history, write.
    The history comment is `comment`, else the request's X-Edit-Comment."""
    try:
        async with engine.begin() as conn:
            row = await _locked(conn, layer, fid, request.headers.get("if-match"))
            properties, geometry = await changes(row.properties)
            await record_state(conn, fid, "update", caller.name, comment or _comment(request))
            geometry_set = "" if geometry is KEEP else f", geom = {geometry_sql(layer)}"
            params: dict[str, Any] = {
                "id": fid,
                "properties": json.dumps(properties, ensure_ascii=False),
                "who": caller.name,
            }
            if geometry is not KEEP:
                params["geometry"] = geometry
            new = (
                await conn.execute(
                    text(
                        "UPDATE features SET properties = CAST(:properties AS jsonb),"
                        f" version = version + 1, updated_at = now(), updated_by = :who{geometry_set}"
                        " WHERE id = :id RETURNING version"
                    ),
                    params,
                )
            ).one()
    except IntegrityError as exc:
        raise conflict(exc, layer, properties) from None
    return Response(status_code=204, headers={"ETag": feature_etag(fid, new.version, "updated")})


@router.put("/collections/{collection_id}/items/{feature_id}", include_in_schema=False)
async def replace_feature(
    feature_id: str,
    request: Request,
    layer: Layer = Depends(get_layer),
    caller: Caller = Depends(editor),
    engine: AsyncEngine = Depends(get_engine),
) -> Response:
    """Replace a feature with the Feature sent (properties and geometry); the old one goes to history."""
    _check_editable(layer, item_methods(layer))
    fid = parse_feature_id(layer, feature_id)
    sent = await read_feature(request, layer, url_id=fid)

    async def changes(current: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        return sent.properties, sent.geometry_json

    return await update_feature(request, layer, caller, engine, fid, changes)


@router.patch("/collections/{collection_id}/items/{feature_id}", include_in_schema=False)
async def patch_feature(
    feature_id: str,
    request: Request,
    layer: Layer = Depends(get_layer),
    caller: Caller = Depends(editor),
    engine: AsyncEngine = Depends(get_engine),
) -> Response:
    """Change part of a feature with a JSON Merge Patch (only geometry, or only the changed properties)."""
    _check_editable(layer, item_methods(layer))
    fid = parse_feature_id(layer, feature_id)
    document = await read_json(request, PATCH_TYPES)
    content_crs = request.headers.get("content-crs")

    async def changes(current: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        return checked_patch(document, layer, current, content_crs, fid)

    return await update_feature(request, layer, caller, engine, fid, changes)


@router.delete("/collections/{collection_id}/items/{feature_id}", include_in_schema=False)
async def delete_feature(
    feature_id: str,
    request: Request,
    layer: Layer = Depends(get_layer),
    caller: Caller = Depends(editor),
    engine: AsyncEngine = Depends(get_engine),
) -> Response:
    """Delete a feature; its last state goes to history, from where it can be restored."""
    _check_editable(layer, item_methods(layer))
    fid = parse_feature_id(layer, feature_id)
    async with engine.begin() as conn:
        await _locked(conn, layer, fid, request.headers.get("if-match"))
        await record_state(conn, fid, "delete", caller.name, _comment(request))
        await conn.execute(text("DELETE FROM features WHERE id = :id"), {"id": fid})
    return Response(status_code=204)
