"""SQL shared by every kind of write (API, revert, import)."""

from __future__ import annotations

# The feature's current state into history before it is changed or deleted (same transaction); binds
# :id, :op (update or delete), :who and :comment.
RECORD_STATE = (
    "INSERT INTO feature_history (feature_id, layer_id, version, properties, geom, valid_from, operation,"
    " changed_by, comment) SELECT id, layer_id, version, properties, geom, updated_at, :op, :who, :comment"
    " FROM features WHERE id = :id"
)
