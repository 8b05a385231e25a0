"""`jxplan load`: the seed files in `layers/` → PostGIS, idempotently and without overwriting edits."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, text

from geo_service.catalog import Catalog, Layer
from geo_service.editing.statements import RECORD_STATE, geometry_sql
from geo_service.validation import geometry_violations, property_violations

LOADER = "loader"


class SeedError(ValueError):
    """Seed data that may not be loaded; the message lists file, feature and reason for each problem."""


@dataclass
class SeedFeature:
    """One feature of a seed file, validated, with the hash that identifies this version of it."""

    code: str
    properties: dict[str, Any]
    geometry: dict[str, Any] | None
    seed_hash: str


@dataclass
class LayerReport:
    """What loading one layer changed."""

    layer: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    kept_edits: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether anything was written."""
        return bool(self.created or self.updated)

    def summary(self) -> str:
        """One line for the terminal."""
        parts = [
            f"{len(self.created)} created",
            f"{len(self.updated)} updated",
            f"{self.unchanged} unchanged",
        ]
        if self.kept_edits:
            parts.append(
                f"{len(self.kept_edits)} edited since the last load and kept ({', '.join(self.kept_edits)})"
            )
        return f"{self.layer}: " + ", ".join(parts)


def _hash(properties: dict[str, Any], geometry: dict[str, Any] | None) -> str:
    canonical = json.dumps({"p": properties, "g": geometry}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def read_seed(catalog: Catalog, layer: Layer) -> list[SeedFeature]:
    """Read and validate a layer's seed file; raise `SeedError` naming every bad feature."""
    path = catalog.layer_file(layer)
    name = f"layers/{layer.file}"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SeedError(
            f"{name}: file missing (declared by layer {layer.id} in layers/catalog.yaml)"
        ) from exc
    except json.JSONDecodeError as exc:
        raise SeedError(f"{name}: not valid JSON: {exc}") from exc
    if (
        not isinstance(doc, dict)
        or doc.get("type") != "FeatureCollection"
        or not isinstance(doc.get("features"), list)
    ):
        raise SeedError(f"{name}: must be a GeoJSON FeatureCollection")
    problems: list[str] = []
    seen: set[str] = set()
    features: list[SeedFeature] = []
    for index, feature in enumerate(doc["features"]):
        props = feature.get("properties") if isinstance(feature, dict) else None
        label = f"feature #{index}"
        if isinstance(props, dict) and isinstance(props.get("code"), str):
            label += f" ({props['code']})"
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            problems.append(f"{name}, {label}: not a GeoJSON Feature")
            continue
        violations = property_violations(layer, props) + geometry_violations(layer, feature.get("geometry"))
        problems.extend(f"{name}, {label}: {v}" for v in violations)
        if violations or not isinstance(props, dict):
            continue
        code = props["code"]
        if code in seen:
            problems.append(f"{name}, {label}: code {code!r} used twice in the file")
            continue
        seen.add(code)
        features.append(
            SeedFeature(code, props, feature.get("geometry"), _hash(props, feature.get("geometry")))
        )
    if problems:
        raise SeedError("\n".join(problems))
    return features


def ensure_layer_row(conn: Connection, layer: Layer) -> None:
    """The layer's row in `layers` (its statistics and cache version), created or its type updated."""
    conn.execute(
        text(
            "INSERT INTO layers (id, geometry_type) VALUES (:id, :gt) "
            "ON CONFLICT (id) DO UPDATE SET geometry_type = EXCLUDED.geometry_type "
            "WHERE layers.geometry_type IS DISTINCT FROM EXCLUDED.geometry_type"
        ),
        {"id": layer.id, "gt": layer.geometry_type},
    )


def _load_layer(conn: Connection, layer: Layer, seed: list[SeedFeature]) -> LayerReport:
    report = LayerReport(layer.id)
    ensure_layer_row(conn, layer)
    existing = {
        row.code: row
        for row in conn.execute(
            text("SELECT id, code, seed_hash, updated_by FROM features WHERE layer_id = :l"), {"l": layer.id}
        )
    }
    inserts: list[dict[str, Any]] = []
    for feature in seed:
        params = {
            "layer": layer.id,
            "properties": json.dumps(feature.properties, ensure_ascii=False),
            "geometry": json.dumps(feature.geometry) if feature.geometry else None,
            "seed_hash": feature.seed_hash,
        }
        row = existing.get(feature.code)
        if row is None:
            inserts.append(params)
            report.created.append(feature.code)
        elif row.seed_hash == feature.seed_hash:
            report.unchanged += 1
        elif row.updated_by != LOADER:
            # a person edited it since the last load: their edit wins; the seed change is reported
            report.kept_edits.append(feature.code)
        else:
            conn.execute(
                text(RECORD_STATE),
                {
                    "id": row.id,
                    "op": "update",
                    "who": LOADER,
                    "comment": f"seed file layers/{layer.file} changed",
                },
            )
            conn.execute(
                text(
                    "UPDATE features SET properties = CAST(:properties AS jsonb),"
                    f" geom = {geometry_sql(layer)}, version = version + 1, updated_at = now(),"
                    " updated_by = :who, seed_hash = :seed_hash"
                    " WHERE id = :id"
                ),
                params | {"id": row.id, "who": LOADER},
            )
            report.updated.append(feature.code)
    if inserts:
        conn.execute(
            text(
                "INSERT INTO features (layer_id, properties, geom, seed_hash, updated_by) VALUES"
                f" (:layer, CAST(:properties AS jsonb), {geometry_sql(layer)}, :seed_hash, '{LOADER}')"
            ),
            inserts,
        )
    return report


def refresh_extents(conn: Connection) -> None:
    """Recompute the extents that writes marked stale."""
    conn.execute(
        text(
            "UPDATE layers l SET extent = (SELECT ST_SetSRID(ST_Extent(f.geom)::geometry, 4326)"
            " FROM features f WHERE f.layer_id = l.id) WHERE l.extent IS NULL AND l.feature_count > 0"
        )
    )


def load(engine: Engine, catalog: Catalog, layer_ids: Iterable[str] | None = None) -> list[LayerReport]:
    """Load the chosen layers (all by default) in one transaction: all of them or, on any error, none.

    Layers without a seed file (the generated benchmark layers) are skipped: `jxplan bench load` makes them.
    """
    chosen = [catalog.layers[i] for i in layer_ids] if layer_ids else list(catalog.layers.values())
    chosen = [layer for layer in chosen if layer.file is not None]
    seeds: dict[str, list[SeedFeature]] = {}
    problems: list[str] = []
    for layer in chosen:
        try:
            seeds[layer.id] = read_seed(catalog, layer)
        except SeedError as exc:
            problems.append(str(exc))
    if problems:
        raise SeedError("\n".join(problems))
    with engine.begin() as conn:
        reports = [_load_layer(conn, layer, seeds[layer.id]) for layer in chosen]
        refresh_extents(conn)
    return reports
