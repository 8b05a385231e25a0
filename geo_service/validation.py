"""Checks a feature must pass before it is written, shared by the loader and the editing API."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geo_service.catalog import Layer

# Generous box around Jiaxing and the neighbours its plan items reach (Shanghai's Qingpu/Jinshan,
# Suzhou's Wujiang, Hangzhou's Linping/Xiaoshan airport, Huzhou's Nanxun): anything outside is an error,
# usually swapped longitude and latitude.
REGION = (119.8, 29.9, 121.95, 31.4)
MAX_VERTICES = 100_000
# Arrays and objects inside each other: a Feature with a MultiPolygon and list properties needs 6; deeper
# bodies are refused before anything recursive (schema checks, merge patches, JSON encoding) sees them.
MAX_JSON_DEPTH = 32

# Which GeoJSON geometry types each declared layer type accepts (single parts are promoted to multi).
ACCEPTED_TYPES: dict[str, set[str]] = {
    "Point": {"Point"},
    "MultiPoint": {"Point", "MultiPoint"},
    "LineString": {"LineString"},
    "MultiLineString": {"LineString", "MultiLineString"},
    "Polygon": {"Polygon"},
    "MultiPolygon": {"Polygon", "MultiPolygon"},
}


@dataclass(frozen=True)
class Violation:
    """One reason a feature is rejected: where (a property or `geometry`) and why."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


def too_deep(value: Any) -> bool:
    """Whether a parsed JSON value nests arrays and objects more than MAX_JSON_DEPTH levels (no recursion)."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


_SURROGATE = re.compile("[\ud800-\udfff]")


def _unstorable(value: Any, where: str) -> Iterator[Violation]:
    if isinstance(value, str):
        if "\x00" in value:
            yield Violation(where, "contains a NUL character (\\u0000), which text cannot hold; remove it")
        elif _SURROGATE.search(value):
            yield Violation(
                where, "contains an unpaired surrogate (\\ud800–\\udfff), which is not Unicode text"
            )
    elif isinstance(value, float) and not math.isfinite(value):
        yield Violation(where, "is not a finite number (NaN, Infinity or beyond ±1.8e308)")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _unstorable(key, where)
            yield from _unstorable(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unstorable(item, f"{where}.{index}")


def storage_violations(value: Any, where: str) -> list[Violation]:
    """What PostgreSQL cannot store or compare in a JSON value: text with NUL characters or unpaired
    surrogates (both reach Python through `\\u` escapes), and NaN or infinite numbers (which `json` reads,
    and `1e400` becomes)."""
    return list(_unstorable(value, where))


def property_violations(layer: Layer, properties: Any) -> list[Violation]:
    """Every way `properties` breaks the layer's declared schema, or cannot be stored."""
    if not isinstance(properties, dict):
        return [Violation("properties", "must be a JSON object")]
    found = []
    for error in sorted(layer.property_validator.iter_errors(properties), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in error.path) or "properties"
        found.append(Violation(where, error.message))
    return found + storage_violations(properties, "properties")


# How deep positions are nested in each geometry type's `coordinates` (RFC 7946 §3.1), and in words.
_NESTING = {
    "Point": (0, "one position [longitude, latitude]"),
    "MultiPoint": (1, "a list of positions"),
    "LineString": (1, "a list of positions"),
    "MultiLineString": (2, "a list of lines, each a list of positions"),
    "Polygon": (2, "a list of rings, each a list of positions"),
    "MultiPolygon": (3, "a list of polygons, each a list of rings of positions"),
}


def _nested(coordinates: Any, depth: int) -> bool:
    if depth == 0:  # a position: two numbers (a third, a height, is refused later with its own reason)
        return (
            isinstance(coordinates, list | tuple)
            and len(coordinates) in (2, 3)
            and all(isinstance(n, int | float) and not isinstance(n, bool) for n in coordinates)
        )
    return isinstance(coordinates, list | tuple) and all(_nested(c, depth - 1) for c in coordinates)


def coordinate_violations(geometry: dict[str, Any]) -> list[Violation]:
    """Whether `coordinates` nests positions of numbers as its type needs.

    Shapely reads `[[x, y]]` as a Point and numbers written as text; PostGIS refuses the first and stores the
    second: the checks must see what will be stored."""
    nesting = _NESTING.get(str(geometry.get("type")))
    if nesting is not None and not _nested(geometry.get("coordinates"), nesting[0]):
        return [
            Violation("geometry", f"coordinates of a {geometry['type']} must be {nesting[1]}, in numbers")
        ]
    kind, coordinates = geometry.get("type"), geometry.get("coordinates")
    polygons: Any = [coordinates] if kind == "Polygon" else coordinates if kind == "MultiPolygon" else []
    for polygon in polygons:
        for ring in polygon:
            if len(ring) < 4 or list(ring[0]) != list(ring[-1]):
                return [
                    Violation(
                        "geometry",
                        "a polygon ring must be closed, with at least 4 positions, the last repeating "
                        f"the first (RFC 7946 §3.1.6); one has {len(ring)}, {ring[0]} to {ring[-1]}",
                    )
                ]
    return []


def geometry_violations(layer: Layer, geometry: Any) -> list[Violation]:
    """Every way a GeoJSON geometry (or null) does not fit the layer: type, coordinates, validity, region."""
    if geometry is None:
        return []
    if not isinstance(geometry, dict) or "type" not in geometry:
        return [Violation("geometry", "must be a GeoJSON geometry object or null")]
    accepted = ACCEPTED_TYPES[layer.geometry_type]
    if geometry["type"] not in accepted:
        return [
            Violation(
                "geometry",
                f"{geometry['type']} is not allowed in layer {layer.id}; it holds {layer.geometry_type} "
                f"(accepted: {', '.join(sorted(accepted))})",
            )
        ]
    if malformed := coordinate_violations(geometry):
        return malformed
    try:
        geom = shape(geometry)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, shapely.errors.GEOSException) as exc:
        return [Violation("geometry", f"malformed coordinates: {exc}")]
    return shape_violations(geom)


def shape_violations(geom: BaseGeometry) -> list[Violation]:
    """Checks of a parsed geometry: empty, vertex count, coordinate ranges, region, validity."""
    if geom.is_empty:
        return [Violation("geometry", "is empty; send null for an item whose location is unknown")]
    if shapely.get_num_coordinates(geom) > MAX_VERTICES:
        return [Violation("geometry", f"has more than {MAX_VERTICES} vertices; simplify it first")]
    if shapely.has_z(geom):
        return [Violation("geometry", "has Z coordinates; send 2D coordinates (longitude, latitude)")]
    minx, miny, maxx, maxy = geom.bounds
    west, south, east, north = REGION
    hint = ""
    if west <= miny and maxy <= east and south <= minx and maxx <= north:
        hint = " — the coordinates look like latitude, longitude: GeoJSON wants longitude first"
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        return [
            Violation(
                "geometry", f"coordinates out of range: longitude must be -180…180, latitude -90…90{hint}"
            )
        ]
    if minx < west or maxx > east or miny < south or maxy > north:
        return [
            Violation(
                "geometry",
                f"lies outside the Jiaxing region ({west}…{east} E, {south}…{north} N): "
                f"bounds {minx:.5f}, {miny:.5f}, {maxx:.5f}, {maxy:.5f}{hint}",
            )
        ]
    if not geom.is_valid:
        return [Violation("geometry", f"is not valid: {shapely.is_valid_reason(geom)}")]
    return []
