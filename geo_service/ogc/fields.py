"""The properties of a layer as SQL sees them: one typed expression per property, from the layer's schema.

Filters (CQL2), `sortby`, `properties` and the queryables/sortables/schema documents all read this one
mapping, so what a client may filter or sort on is exactly what the layer declares. Property names become
SQL string literals only after they are checked against the catalogue's slug rule; values are always bound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from geo_service.catalog import COLUMN_PROPERTIES, Layer
from geo_service.errors import InvalidParameter

Kind = Literal["string", "number", "integer", "boolean", "array"]

GEOMETRY_FIELD = "geometry"
GEOMETRY_SQL = "f.geom"
_SAFE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Field:
    """One property: its JSON type and the SQL expression (over the `features f` row) that reads it."""

    name: str
    kind: Kind
    sql: str
    schema: dict[str, Any]

    @property
    def sortable(self) -> bool:
        """Scalar properties can be ordered; arrays cannot."""
        return self.kind != "array"

    @property
    def sort_sql(self) -> str:
        """The expression pages are ordered by: text in code-point order, whatever the database's locale,
        so the order (and the keyset cursor built on it) is the same on every deployment."""
        return f'({self.sql} COLLATE "C")' if self.kind == "string" else self.sql


def json_type(schema: dict[str, Any]) -> str:
    """The one non-null JSON type of a property schema (`["string", "null"]` → `string`)."""
    declared = schema.get("type", "string")
    if isinstance(declared, list):
        non_null = [t for t in declared if t != "null"]
        return str(non_null[0]) if non_null else "string"
    return str(declared)


def _sql(name: str, kind: Kind) -> str:
    if name in COLUMN_PROPERTIES:
        return f"f.{name}"
    if not _SAFE_NAME.match(name):  # the catalogue's rule; checked again because it becomes SQL text
        raise ValueError(f"property name {name!r} is not a safe identifier")
    member = f"f.properties -> '{name}'"
    text = f"(f.properties ->> '{name}')"
    if kind == "string":
        return text
    if kind == "array":
        return f"({member})"
    json_kind = "number" if kind in ("number", "integer") else "boolean"
    cast = "double precision" if kind in ("number", "integer") else "boolean"
    # a guarded cast: a value of another JSON type reads as NULL instead of failing the whole query
    return f"(CASE WHEN jsonb_typeof({member}) = '{json_kind}' THEN {text}::{cast} END)"


_FIELDS: dict[int, tuple[Layer, dict[str, Field]]] = {}


def layer_fields(layer: Layer) -> dict[str, Field]:
    """Every property of the layer, in declaration order (common properties first); worked out once per
    catalogue entry (layers are immutable), since every request asks."""
    cached = _FIELDS.get(id(layer))
    if cached is not None and cached[0] is layer:
        return cached[1]
    fields = _build_fields(layer)
    _FIELDS[id(layer)] = (layer, fields)
    return fields


def _build_fields(layer: Layer) -> dict[str, Field]:
    fields: dict[str, Field] = {}
    for name, schema in layer.json_schema["properties"].items():
        kind = json_type(schema)
        if kind not in ("string", "number", "integer", "boolean", "array"):
            continue
        fields[name] = Field(name, kind, _sql(name, kind), schema)  # type: ignore[arg-type]
    return fields


@dataclass(frozen=True)
class SortKey:
    """One `sortby` key: a sortable field and its direction."""

    field: Field
    descending: bool = False

    def __str__(self) -> str:
        return ("-" if self.descending else "+") + self.field.name


def parse_sortby(raw: str | None, layer: Layer) -> tuple[SortKey, ...]:
    """`sortby=name_zh,-status`: comma-separated sortables, each optionally prefixed + (asc) or - (desc).

    A `+` that arrived unescaped in the URL reads as a space, so leading spaces count as `+`.
    """
    if raw is None:
        return ()
    fields = layer_fields(layer)
    keys: list[SortKey] = []
    for part in raw.split(","):
        token = part.strip()
        descending = token.startswith("-")
        name = token.lstrip("+-").strip()
        found = fields.get(name)
        if found is None or not found.sortable:
            sortables = ", ".join(n for n, f in fields.items() if f.sortable)
            raise InvalidParameter(
                f"sortby {name!r} is not a sortable property of {layer.id}. Sortables: {sortables} "
                f"(see /collections/{layer.id}/sortables).",
                parameter="sortby",
            )
        if any(k.field.name == name for k in keys):
            raise InvalidParameter(
                f"sortby names {name!r} twice; name each property once.", parameter="sortby"
            )
        keys.append(SortKey(found, descending))
    return tuple(keys)


def parse_properties(raw: str | None, layer: Layer) -> tuple[str, ...] | None:
    """`properties=name_zh,status`: which properties to return (None: all; empty: none)."""
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    known = layer.property_names
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidParameter(
            f"properties names {', '.join(map(repr, unknown))}, which {layer.id} does not have. "
            f"Its properties: {', '.join(known)}.",
            parameter="properties",
        )
    return tuple(dict.fromkeys(names))
