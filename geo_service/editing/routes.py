"""Write routes of OGC API – Features Part 4 (POST, PUT, PATCH, DELETE), and OPTIONS saying what each path
allows.

Every write needs a key with the editor role (`auth.require`), honours `If-Match` when it is sent (412 with
the current version otherwise) and never requires it, and appends the previous state of the feature to
`feature_history` in the same transaction as the change: who (the key's name), when, and an optional
comment from the `X-Edit-Comment` header (percent-encoded UTF-8). Nothing is ever lost.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio
from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.datastructures import UploadFile

from geo_service.catalog import Layer
from geo_service.db.engine import sync_engine
from geo_service.editing.auth import editor, require
from geo_service.editing.body import (
    KEEP,
    PATCH_TYPES,
    InvalidFeature,
    checked_patch,
    conflict,
    read_feature,
    read_json,
)
from geo_service.editing.import_checks import ImportTooLarge
from geo_service.editing.imports import ImportProblem, ImportReport, import_rows, read_rows
from geo_service.editing.keys import Caller
from geo_service.editing.statements import RECORD_STATE, geometry_sql
from geo_service.errors import NotFound, Problem
from geo_service.ogc.dependencies import get_engine, get_layer, get_settings, parse_feature_id
from geo_service.ogc.links import url
from geo_service.ogc.responses import feature_etag, json_response, matches_version
from geo_service.ops.audit import WriteAudit, write_audit
from geo_service.settings import Settings
from geo_service.validation import storage_violations

router = APIRouter()
reader = require("reader")  # any valid key: used only to tell a key's holder who they are

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
    return checked_comment(unquote(raw), "X-Edit-Comment") or None


def checked_comment(comment: str, source: str) -> str:
    """A history comment as it can be stored (at most MAX_COMMENT characters), or 400 naming `source`."""
    if unstorable := storage_violations(comment, source):
        raise Problem(
            f"{source} {unstorable[0].reason}; send plain text (percent-encoded UTF-8 in a header)."
        )
    return comment[:MAX_COMMENT]


def _check_editable(layer: Layer, allowed: list[str]) -> None:
    """405 for a write to a layer that is not editable, with what the path does allow."""
    if not layer.editable:
        problem = MethodNotAllowed(
            f"{layer.id} is reference data and cannot be edited through the API; it is rebuilt from its "
            "sources (see docs/data-sources.md)."
        )
        problem.headers = {"Allow": ", ".join(allowed)}
        raise problem


@router.get("/auth/key", include_in_schema=False)
async def key_info(caller: Caller = Depends(reader)) -> Response:
    """Whose key this is and its role: the editor page checks a key with it before offering to save."""
    return json_response({"name": caller.name, "role": caller.role}, "application/json")


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
            await write_audit(request).written(conn, [row.id])
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
            await write_audit(request).written(conn, [fid])
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
        await write_audit(request).written(conn, [fid])
    return Response(status_code=204)


IMPORT_SUFFIXES = {".geojson": ".geojson", ".json": ".geojson", ".gpkg": ".gpkg", ".zip": ".zip"}
MAX_IMPORT_BYTES = 50 * 1024 * 1024


class UnsupportedFile(Problem):
    """An uploaded file of a kind the import does not read."""

    status = 415
    title = "Unsupported file 文件类型不支持"


class UploadTooLarge(Problem):
    """An uploaded file above the import's size limit."""

    status = 413
    title = "File too large 文件过大"


async def _saved_upload(upload: UploadFile, folder: Path) -> Path:
    """The upload written to `folder` under its own name made safe, with its kind's suffix (GDAL picks the
    driver by it)."""
    name = Path(upload.filename or "")
    suffix = IMPORT_SUFFIXES.get(name.suffix.lower())
    if suffix is None:
        raise UnsupportedFile(
            f"Cannot import {name.name or 'a file without a name'!r}: send a GeoJSON (.geojson, .json), "
            "GeoPackage (.gpkg) or zipped Shapefile (.zip) file."
        )
    # the sender's name (so that messages about the file name it), reduced to safe characters
    stem = re.sub(r"[^\w-]", "_", name.stem)[:80].strip("_") or "upload"
    target = folder / f"{stem}{suffix}"
    size = 0
    with target.open("wb") as out:
        while chunk := await upload.read(1 << 20):
            size += len(chunk)
            if size > MAX_IMPORT_BYTES:
                raise UploadTooLarge(
                    f"{name.name} is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB; split it, or use "
                    "`jxplan import` on the server."
                )
            out.write(chunk)
    return target


def _run_import(
    settings: Settings,
    url: str,
    layer: Layer,
    source: Path,
    datum: str | None,
    audit: WriteAudit,
    comment: str,
    dry_run: bool,
) -> ImportReport:
    """Read and import a file (blocking: GDAL and a synchronous connection), in a worker thread."""
    try:
        rows = read_rows(source, layer, datum, settings)
    except ImportTooLarge as exc:
        raise UploadTooLarge(f"Nothing imported: {exc}.") from None
    except ImportProblem as exc:
        raise InvalidFeature(f"Nothing imported: {exc}.") from None
    if not rows:
        raise InvalidFeature("Nothing imported: the file holds no features.")
    engine = sync_engine(url)
    try:
        return import_rows(
            engine,
            layer,
            rows,
            who=audit.key_name,
            comment=comment,
            dry_run=dry_run,
            on_apply=lambda conn, ids, counts: audit.written_sync(conn, ids, detail=counts),
        )
    finally:
        engine.dispose()


def _form_flag(value: Any, name: str) -> bool:
    if value is None or value == "":
        return False
    lowered = str(value).strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise InvalidFeature(f"{name} must be true or false; got {value!r}.")


async def _import_form(request: Request) -> tuple[UploadFile, dict[str, str]]:
    """The multipart form of an import: the file and the text fields (read only after the key is checked)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_IMPORT_BYTES + 64 * 1024:
        raise UploadTooLarge(
            f"The upload is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB; split the file, or use "
            "`jxplan import` on the server."
        )
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise UnsupportedFile(
            "Send the file as multipart/form-data with the field `file` (e.g. curl -F file=@stations.gpkg)."
        )
    try:
        form = await request.form(max_files=1, max_fields=10)
    except Exception as exc:  # the multipart parser raises several types for a broken body
        raise InvalidFeature(f"The multipart body cannot be read: {exc}.") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidFeature("The form has no file: send it in the field `file`.")
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    return upload, fields


@router.post("/collections/{collection_id}/import", include_in_schema=False)
async def import_file(
    request: Request,
    layer: Layer = Depends(get_layer),
    caller: Caller = Depends(editor),
    engine: AsyncEngine = Depends(get_engine),
    settings: Settings = Depends(get_settings),
) -> Response:
    """Import a GeoJSON, GeoPackage or zipped Shapefile (multipart field `file`): rows matched by `code` are
    created or updated, all or none, with a report per row. Fields: `datum` (wgs84, cgcs2000, gcj02, bd09 or
    EPSG:nnnn; default: the file's CRS), `dry_run` (true: report without changing anything), `comment`."""
    _check_editable(layer, items_methods(layer))
    upload, fields = await _import_form(request)
    dry_run = _form_flag(fields.get("dry_run"), "dry_run")
    request.state.dry_run = dry_run  # not counted as a write (geo_service.ops.metrics)
    datum = fields.get("datum") or None
    with tempfile.TemporaryDirectory(prefix="jxplan-import-") as folder:
        source = await _saved_upload(upload, Path(folder))
        url = engine.url.render_as_string(hide_password=False)
        named = Path(upload.filename or "").name
        note = checked_comment(fields.get("comment", "").strip() or f"import of {named}", "The comment")
        report = await anyio.to_thread.run_sync(
            _run_import, settings, url, layer, source, datum, write_audit(request), note, dry_run
        )
    document = report.as_json()
    if not report.applied and not dry_run:
        invalid = [r for r in report.rows if r.outcome == "invalid"]
        first = invalid[0]
        raise InvalidFeature(
            f"Nothing imported: {len(invalid)} of {len(report.rows)} rows are invalid, e.g. row {first.row}"
            f" ({first.code or 'no code'}): {'; '.join(first.reasons)}. Fix them and send the file again.",
            report=document,
        )
    return json_response(document, "application/json")
