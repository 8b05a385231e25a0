"""Reading a feature sent by a client, and every check it must pass before anything is written.

Order: media type, size, JSON, a GeoJSON Feature, the geometry's CRS (`Content-Crs`, with or without angle
brackets) turned into WGS 84, then the same checks as the loader (`validation.py`): geometry type, ranges,
region (with a hint for swapped longitude/latitude), vertex count, validity, and the layer's property schema.
Each failure is a 4xx problem naming where and why; the database is not touched until all pass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry import mapping, shape
from sqlalchemy.exc import IntegrityError

from geo_service.catalog import Layer
from geo_service.errors import Problem
from geo_service.ogc.crs import CRS84_CRS, parse_crs, to_storage_geometry
from geo_service.validation import (
    MAX_JSON_DEPTH,
    Violation,
    coordinate_violations,
    geometry_violations,
    property_violations,
    too_deep,
)

MAX_BODY = 5 * 1024 * 1024  # bytes: a planning outline is kilobytes; anything near this is a mistake
FEATURE_TYPES = ("application/geo+json", "application/json")
PATCH_TYPES = ("application/merge-patch+json", "application/json", "application/geo+json")


class InvalidFeature(Problem):
    """The body is not a feature this layer can hold."""

    status = 400
    title = "Invalid feature 要素无效"


class PayloadTooLarge(Problem):
    """The body is over the size limit."""

    status = 413
    title = "Payload too large 内容过大"


class UnsupportedMediaType(Problem):
    """The body is not GeoJSON."""

    status = 415
    title = "Unsupported media type 不支持的内容类型"


class Conflict(Problem):
    """The write contradicts what is stored (a duplicate code)."""

    status = 409
    title = "Conflict 冲突"


@dataclass(frozen=True)
class SentFeature:
    """A checked feature: properties, and geometry as WGS 84 GeoJSON text (None for no location)."""

    properties: dict[str, Any]
    geometry_json: str | None


def _reject(violations: list[Violation]) -> InvalidFeature:
    listed = "; ".join(str(v) for v in violations)
    return InvalidFeature(
        f"The feature was not saved: {listed}.",
        violations=[{"where": v.where, "reason": v.reason} for v in violations],
    )


def _to_wgs84(geometry: dict[str, Any], content_crs: str | None) -> dict[str, Any]:
    """The geometry in CRS84 longitude/latitude, from the CRS the client named (its axis order)."""
    crs = parse_crs(content_crs, "Content-Crs") if content_crs else CRS84_CRS
    if crs == CRS84_CRS:
        return geometry
    if malformed := coordinate_violations(geometry):
        raise _reject(malformed)
    try:
        geom = shape(geometry)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, shapely.errors.GEOSException) as exc:
        raise _reject([Violation("geometry", f"malformed coordinates: {exc}")]) from None
    return dict(mapping(to_storage_geometry(geom, crs)))


async def read_json(request: Any, media_types: tuple[str, ...], invalid: type[Problem] | None = None) -> Any:
    """The request's body as JSON, after the media type and size checks (`invalid`: the problem raised for
    a body that is not JSON, or nested too deep; an invalid feature by default)."""
    invalid = invalid or InvalidFeature
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in media_types:
        raise UnsupportedMediaType(
            f"Send the body with Content-Type {' or '.join(media_types)}; got {media or 'none'!r}."
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise PayloadTooLarge(f"The body is {int(declared):,} bytes; the limit is {MAX_BODY:,}.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise PayloadTooLarge(f"The body is over the limit of {MAX_BODY:,} bytes.")
    nested = invalid(
        f"The body nests arrays or objects more than {MAX_JSON_DEPTH} levels deep; a GeoJSON Feature needs "
        "far fewer: flatten the nested properties."
    )
    try:
        document = json.loads(body)
    except RecursionError:
        raise nested from None
    except ValueError as exc:
        raise invalid(f"The body is not valid JSON: {exc}.") from None
    if too_deep(document):
        raise nested
    return document


def _checked(layer: Layer, properties: Any, geometry: Any, content_crs: str | None) -> SentFeature:
    violations = property_violations(layer, properties)
    if isinstance(geometry, dict) and "type" in geometry:
        geometry = _to_wgs84(geometry, content_crs)
    violations = geometry_violations(layer, geometry) + violations
    if violations:
        raise _reject(violations)
    return SentFeature(properties, None if geometry is None else json.dumps(geometry))


def checked_feature(
    document: Any, layer: Layer, content_crs: str | None, url_id: int | None = None
) -> SentFeature:
    """A whole GeoJSON Feature (POST, PUT), checked; with `url_id`, an `id` in the body must agree."""
    if not isinstance(document, dict) or document.get("type") != "Feature":
        kind = document.get("type") if isinstance(document, dict) else type(document).__name__
        raise InvalidFeature(f'Send one GeoJSON Feature ("type": "Feature"); got {kind!r}.')
    if "properties" not in document or "geometry" not in document:
        raise InvalidFeature('A Feature needs "geometry" (an object, or null) and "properties".')
    if url_id is not None and "id" in document and str(document["id"]) != str(url_id):
        raise InvalidFeature(
            f"The body's id {document['id']!r} contradicts the URL's feature {url_id}; leave the id out or "
            "send to the right URL."
        )
    return _checked(layer, document["properties"], document["geometry"], content_crs)


async def read_feature(request: Any, layer: Layer, url_id: int | None = None) -> SentFeature:
    """The request's body as a checked feature of `layer`."""
    document = await read_json(request, FEATURE_TYPES)
    return checked_feature(document, layer, request.headers.get("content-crs"), url_id)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON Merge Patch: members of `patch` replace those of `target`; null removes one."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


KEEP = object()  # a patch without "geometry" keeps the stored one


def checked_patch(
    document: Any, layer: Layer, current: dict[str, Any], content_crs: str | None, url_id: int
) -> tuple[dict[str, Any], Any]:
    """A merge patch of a feature (PATCH), applied to its current properties and checked as a whole:
    the new properties, and the new geometry's GeoJSON text (None to clear it, KEEP to leave it)."""
    if not isinstance(document, dict):
        raise InvalidFeature('A merge patch is a JSON object, e.g. {"properties": {"status": "completed"}}.')
    unknown = sorted(set(document) - {"type", "id", "geometry", "properties"})
    if unknown:
        raise InvalidFeature(
            f"A feature has no member(s) {', '.join(unknown)}; patch geometry or properties."
        )
    if "id" in document and str(document["id"]) != str(url_id):
        raise InvalidFeature(f"The body's id {document['id']!r} contradicts the URL's feature {url_id}.")
    properties = merge_patch(current, document.get("properties", {}))
    if "geometry" not in document:
        violations = property_violations(layer, properties)
        if violations:
            raise _reject(violations)
        return properties, KEEP
    sent = _checked(layer, properties, document["geometry"], content_crs)
    return sent.properties, sent.geometry_json


def conflict(exc: IntegrityError, layer: Layer, properties: dict[str, Any]) -> Problem:
    """The problem an integrity error of a write stands for."""
    constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None) or ""
    if constraint == "features_layer_code_key":
        return Conflict(
            f"A feature with code {properties.get('code')!r} already exists in {layer.id}; codes are unique "
            "per layer. Choose another code, or edit the existing feature."
        )
    if "geom" in constraint:
        return InvalidFeature(
            "The geometry is not valid for PostGIS (ST_IsValid); repair it and send it again."
        )
    return InvalidFeature(f"The feature breaks a rule of the database ({constraint or 'integrity'}).")
