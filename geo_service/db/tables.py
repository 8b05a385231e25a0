"""The tables, as SQLAlchemy Core objects for the query builder (the migrations create them)."""

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()

ROLES = ("reader", "editor", "admin")

layers = Table(
    "layers",
    metadata,
    Column("id", Text, primary_key=True),
    Column("geometry_type", Text, nullable=False),
    # bumped by triggers on every statement that changes the layer's features: the cache key
    Column("version", BigInteger, nullable=False, server_default="0"),
    Column("feature_count", BigInteger, nullable=False, server_default="0"),
    Column("extent", Geometry(srid=4326, spatial_index=False), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

features = Table(
    "features",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("layer_id", Text, ForeignKey("layers.id"), nullable=False),
    # every property, common and layer-specific, lives in one JSONB document; the common ones are also
    # generated columns so they can be indexed, sorted and filtered as typed values
    Column("properties", JSONB, nullable=False),
    Column("code", Text, Computed("properties->>'code'"), nullable=False),
    Column("name_zh", Text, Computed("properties->>'name_zh'")),
    Column("name_en", Text, Computed("properties->>'name_en'")),
    Column("category", Text, Computed("properties->>'category'")),
    Column("status", Text, Computed("properties->>'status'")),
    Column("accuracy", Text, Computed("properties->>'accuracy'")),
    Column("geom", Geometry(srid=4326, spatial_index=False), nullable=True),
    # the same geometry in Web Mercator, kept by PostgreSQL, for vector tiles (migration 0002)
    Column("geom_3857", Geometry(srid=3857, spatial_index=False), Computed("ST_Transform(geom, 3857)")),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_by", Text, nullable=False, server_default="loader"),
    Column("seed_hash", Text, nullable=True),
    UniqueConstraint("layer_id", "code", name="features_layer_code_key"),
)

feature_history = Table(
    "feature_history",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("feature_id", BigInteger, nullable=False),
    Column("layer_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("properties", JSONB, nullable=False),
    Column("geom", Geometry(srid=4326, spatial_index=False), nullable=True),
    Column("valid_from", DateTime(timezone=True), nullable=False),
    Column("valid_to", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("operation", Text, nullable=False),
    Column("changed_by", Text, nullable=False),
    Column("comment", Text, nullable=True),
    CheckConstraint("operation IN ('update', 'delete')", name="feature_history_operation_check"),
    UniqueConstraint("feature_id", "version", name="feature_history_feature_version_key"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, unique=True),
    Column("role", Text, nullable=False),
    Column("prefix", Text, nullable=False),
    Column("key_hash", Text, nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    # migration 0003: when the key stops working (NULL: never), the layers it may write (NULL: all)
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("layers", ARRAY(Text), nullable=True),
    CheckConstraint(f"role IN {ROLES}", name="api_keys_role_check"),
)

# migration 0003: one row per write request and per refused authentication (geo_service.ops.audit)
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("action", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("status", Integer, nullable=False),
    Column("key_name", Text, nullable=True),
    Column("collection", Text, nullable=True),
    Column("feature_ids", ARRAY(BigInteger), nullable=True),
    Column("client", Text, nullable=True),
    Column("request_id", Text, nullable=True),
    Column("detail", Text, nullable=True),
    CheckConstraint("outcome IN ('success', 'refused', 'error')", name="audit_log_outcome_check"),
)
