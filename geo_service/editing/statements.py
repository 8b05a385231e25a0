"""SQL shared by every kind of write (API, revert, import)."""

from __future__ import annotations

from geo_service.catalog import Layer

# The feature's current state into history before it is changed or deleted (same transaction); binds
# :id, :op (update or delete), :who and :comment.
RECORD_STATE = (
    "INSERT INTO feature_history (feature_id, layer_id, version, properties, geom, valid_from, operation,"
    " changed_by, comment) SELECT id, layer_id, version, properties, geom, updated_at, :op, :who, :comment"
    " FROM features WHERE id = :id"
)


def geometry_sql(layer: Layer) -> str:
    """SQL of the bound `:geometry` GeoJSON text (WGS 84, or NULL) as a stored geometry; single parts are
    made multi in a multi layer."""
    geom = "ST_SetSRID(ST_GeomFromGeoJSON(:geometry), 4326)"
    return f"ST_Multi({geom})" if layer.geometry_type.startswith("Multi") else geom
