"""Reading an execute request: its inputs, checked before any statement runs.

A site is a GeoJSON geometry (in CRS84, or in the CRS the `crs` input names, in that CRS's axis order), a
GeoJSON Feature (its geometry is taken), or a reference to a feature of this service
(`{"href": "/collections/{collectionId}/items/{featureId}"}`, relative or absolute). Geometries are checked as
an edit's are (coordinates, validity with the reason, region, vertex count); every failure is a 4xx problem
saying what to change, and nothing is written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import shapely
from jsonschema import Draft202012Validator
from shapely.geometry import mapping, shape

from geo_service.catalog import Catalog
from geo_service.errors import Problem
from geo_service.ogc.crs import CRS84_CRS, SUPPORTED, parse_crs, to_storage_geometry
from geo_service.validation import MAX_VERTICES, coordinate_violations, shape_violations

GEOMETRY_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon")
_FEATURE_PATH = re.compile(r"^/collections/([a-z][a-z0-9_]*)/items/([1-9][0-9]{0,17})/?$")


class InvalidInput(Problem):
    """An input of an execute request is missing, unknown or not valid."""

    status = 400
    title = "Invalid input 输入无效"


class TooManyVertices(Problem):
    """A site geometry with more vertices than a check may take."""

    status = 413
    title = "Geometry too large 几何过大"


@dataclass(frozen=True)
class Site:
    """Where a process looks: a checked WGS 84 geometry (GeoJSON text), or a stored feature."""

    geojson: str | None = None
    layer_id: str | None = None
    feature_id: int | None = None
    source: str = "geometry"

    def params(self) -> dict[str, Any]:
        """The bound values of `SITE_SQL`."""
        return {"site": self.geojson, "ref_layer": self.layer_id, "ref_id": self.feature_id}


def unwrap(value: Any) -> Any:
    """An input given as a qualified value (`{"value": …, "mediaType": …}`) is its value."""
    if isinstance(value, dict) and "value" in value and "type" not in value and "href" not in value:
        return value["value"]
    return value


def check_inputs(
    process_id: str, validators: dict[str, Draft202012Validator], required: list[str], inputs: Any
) -> dict[str, Any]:
    """The inputs as an object, each checked by its schema's validator (unknown names are refused)."""
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, dict):
        raise InvalidInput(f'"inputs" must be a JSON object of input names and values; got {_kind(inputs)}.')
    known = validators
    if unknown := sorted(set(inputs) - set(known)):
        raise InvalidInput(
            f"{process_id} has no input {', '.join(repr(u) for u in unknown)}. "
            f"Its inputs: {', '.join(known)}.",
            input=unknown[0],
        )
    values = {name: unwrap(value) for name, value in inputs.items()}
    if missing := [name for name in required if name not in values]:
        raise InvalidInput(f"{process_id} needs the input {missing[0]!r}.", input=missing[0])
    for name, value in values.items():
        errors = sorted(validators[name].iter_errors(value), key=lambda e: list(e.path))
        if errors:
            where = "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in errors[0].path)
            raise InvalidInput(f"Input {name}{where}: {errors[0].message}.", input=name)
    return values


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def parse_site(value: Any, crs_uri: str | None, catalog: Catalog, name: str = "site") -> Site:
    """The `site` input: a geometry (checked, in WGS 84), a Feature's geometry, or a feature reference."""
    if isinstance(value, dict) and "href" in value:
        return _reference(str(value["href"]), catalog, name)
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
        if value is None:
            raise InvalidInput(
                f"The Feature given as {name} has no geometry; draw the site first.", input=name
            )
    if not isinstance(value, dict) or value.get("type") not in GEOMETRY_TYPES:
        kind = value.get("type") if isinstance(value, dict) else _kind(value)
        raise InvalidInput(
            f"{name} must be a GeoJSON geometry ({', '.join(GEOMETRY_TYPES)}), a Feature, or "
            f'{{"href": "/collections/{{collectionId}}/items/{{featureId}}"}}; got {kind!r}.',
            input=name,
        )
    try:
        crs = parse_crs(crs_uri, "crs") if crs_uri is not None else CRS84_CRS
    except Problem as exc:
        raise InvalidInput(f"Input crs: {exc.detail}", input="crs") from None
    if malformed := coordinate_violations(value):
        raise InvalidInput(f"{name}: {malformed[0].reason}.", input=name)
    try:
        geom = shape(value)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, shapely.errors.GEOSException) as exc:
        raise InvalidInput(f"{name}: malformed coordinates: {exc}.", input=name) from None
    if shapely.get_num_coordinates(geom) > MAX_VERTICES:
        raise TooManyVertices(
            f"{name} has {shapely.get_num_coordinates(geom):,} vertices; a site may have at most "
            f"{MAX_VERTICES:,}. Simplify it first (e.g. ogr2ogr -simplify 1, or QGIS Simplify).",
            input=name,
        )
    geom = to_storage_geometry(geom, crs)
    if violations := shape_violations(geom):
        reason = violations[0].reason
        if crs != CRS84_CRS and "outside the Jiaxing region" in reason:
            reason += f" (read in {crs.uri}, as the crs input says; is that the CRS of the coordinates?)"
        raise InvalidInput(f"{name} {reason}.", input=name)
    return Site(geojson=json.dumps(mapping(geom)))


def _reference(href: str, catalog: Catalog, name: str) -> Site:
    path = urlsplit(href).path
    match = _FEATURE_PATH.match(path)
    if match is None:
        raise InvalidInput(
            f"{name}.href {href[:200]!r} is not a feature of this service: give "
            "/collections/{collectionId}/items/{featureId}.",
            input=name,
        )
    layer_id, feature_id = match.group(1), int(match.group(2))
    if layer_id not in catalog.layers:
        raise InvalidInput(
            f"{name}.href names no collection {layer_id!r}. Collections: {', '.join(catalog.layers)}.",
            input=name,
        )
    source = f"/collections/{layer_id}/items/{feature_id}"
    return Site(layer_id=layer_id, feature_id=feature_id, source=source)


def crs_schema() -> dict[str, Any]:
    """The `crs` input's schema: the CRSs the service offers."""
    return {"type": "string", "enum": list(SUPPORTED), "default": CRS84_CRS.uri}
