"""The Alembic migrations: tables, append-only history, statistics triggers and geometry checks."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import (
    Connection,
    Engine,
    MetaData,
    Table,
    Text,
    cast,
    create_engine,
    delete,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from geo_service.app import create_app
from geo_service.catalog import Catalog
from geo_service.db import migrate
from geo_service.db.engine import sync_engine
from geo_service.editing.keys import SHOWN_PREFIX, TOKEN_PREFIX, hash_token
from geo_service.settings import Settings
from tests.conftest import private_database

TABLES = {"layers", "features", "feature_history", "api_keys", "audit_log", "jobs"}


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _functions(conn: Connection) -> set[str]:
    return set(conn.scalars(text("SELECT proname FROM pg_proc WHERE proname LIKE 'jx\\_%'")))


def _layer(conn: Connection, layer_id: str) -> dict[str, Any]:
    row = conn.execute(
        text("SELECT version, feature_count, extent IS NULL AS stale FROM layers WHERE id = :id"),
        {"id": layer_id},
    ).one()
    return dict(row._mapping)


def _add_layer(conn: Connection, layer_id: str) -> None:
    conn.execute(text("INSERT INTO layers (id, geometry_type) VALUES (:id, 'Point')"), {"id": layer_id})


def _insert_points(conn: Connection, layer_id: str, codes: list[str]) -> None:
    """One INSERT statement adding a point feature per code."""
    values = ", ".join(
        f"(:layer, jsonb_build_object('code', CAST(:c{i} AS text)),"
        f" ST_SetSRID(ST_MakePoint(120.7 + {i} * 0.01, 30.7), 4326))"
        for i in range(len(codes))
    )
    params: dict[str, Any] = {"layer": layer_id} | {f"c{i}": code for i, code in enumerate(codes)}
    conn.execute(text(f"INSERT INTO features (layer_id, properties, geom) VALUES {values}"), params)


def _head() -> str | None:
    return migrate.head()


def test_upgrade_creates_the_tables(private_url: str) -> None:
    """Upgrading to head creates layers, features, feature_history and api_keys, and records the head."""
    assert _tables(private_url) >= TABLES
    assert migrate.current_revision(private_url) == _head()


def test_downgrade_removes_everything_and_upgrade_works_again(
    private_url: str, private_engine: Engine
) -> None:
    """Downgrading to base removes the tables and functions; upgrading again rebuilds a working schema."""
    migrate.downgrade(private_url, "base")
    assert not (TABLES & _tables(private_url))
    assert migrate.current_revision(private_url) is None
    with private_engine.connect() as conn:
        assert _functions(conn) == set()
    migrate.upgrade(private_url)
    assert _tables(private_url) >= TABLES
    assert migrate.current_revision(private_url) == _head()
    with private_engine.begin() as conn:
        _add_layer(conn, "again")
        _insert_points(conn, "again", ["a", "b"])
        assert _layer(conn, "again")["feature_count"] == 2


def test_history_is_append_only(private_engine: Engine) -> None:
    """Rows of feature_history can be added but neither changed nor deleted."""
    with private_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO feature_history (feature_id, layer_id, version, properties, valid_from,"
                " operation, changed_by)"
                " VALUES (1, 'probe', 1, '{\"code\": \"x\"}', now(), 'update', 'tester')"
            )
        )
    for statement in (
        "UPDATE feature_history SET changed_by = 'someone else'",
        "DELETE FROM feature_history",
    ):
        with pytest.raises(DBAPIError, match="append-only"), private_engine.begin() as conn:
            conn.execute(text(statement))
    with private_engine.connect() as conn:
        rows = conn.execute(text("SELECT changed_by FROM feature_history")).all()
    assert [r.changed_by for r in rows] == ["tester"]


def test_history_operation_is_checked(private_engine: Engine) -> None:
    """Only 'update' and 'delete' are history operations."""
    with pytest.raises(IntegrityError), private_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO feature_history (feature_id, layer_id, version, properties, valid_from,"
                " operation, changed_by) VALUES (1, 'probe', 1, '{}', now(), 'rename', 'tester')"
            )
        )


def test_triggers_follow_insert_update_delete(private_engine: Engine) -> None:
    """feature_count follows every statement and version rises by one per statement (not per row)."""
    with private_engine.begin() as conn:
        _add_layer(conn, "probe")
        assert _layer(conn, "probe") == {"version": 0, "feature_count": 0, "stale": True}
        _insert_points(conn, "probe", ["a", "b", "c"])
        assert _layer(conn, "probe") == {"version": 1, "feature_count": 3, "stale": False}
        _insert_points(conn, "probe", ["d"])
        assert _layer(conn, "probe")["version"] == 2
        assert _layer(conn, "probe")["feature_count"] == 4
        conn.execute(
            text(
                "UPDATE features SET properties = properties || '{\"note\": \"x\"}' WHERE code IN ('a', 'b')"
            )
        )
        assert _layer(conn, "probe")["version"] == 3
        assert _layer(conn, "probe")["feature_count"] == 4
        conn.execute(text("DELETE FROM features WHERE code IN ('c', 'd')"))
        assert _layer(conn, "probe")["version"] == 4
        assert _layer(conn, "probe")["feature_count"] == 2
        stored = conn.scalar(text("SELECT count(*) FROM features WHERE layer_id = 'probe'"))
        assert _layer(conn, "probe")["feature_count"] == stored


def test_triggers_leave_other_layers_alone(private_engine: Engine) -> None:
    """A statement on one layer's features does not touch another layer's version or count."""
    with private_engine.begin() as conn:
        _add_layer(conn, "one")
        _add_layer(conn, "two")
        _insert_points(conn, "one", ["a"])
        _insert_points(conn, "two", ["b", "c"])
        before = _layer(conn, "two")
        conn.execute(
            text("UPDATE features SET properties = properties || '{\"note\": \"x\"}' WHERE layer_id = 'one'")
        )
        conn.execute(text("DELETE FROM features WHERE layer_id = 'one'"))
        assert _layer(conn, "two") == before
        assert _layer(conn, "one")["feature_count"] == 0


def test_triggers_count_features_moved_between_layers(private_engine: Engine) -> None:
    """An UPDATE that moves features to another layer moves their count too."""
    with private_engine.begin() as conn:
        _add_layer(conn, "source")
        _add_layer(conn, "target")
        _insert_points(conn, "source", ["a", "b", "c"])
        conn.execute(text("UPDATE features SET layer_id = 'target' WHERE code IN ('a', 'b')"))
        for layer_id in ("source", "target"):
            stored = conn.scalar(text("SELECT count(*) FROM features WHERE layer_id = :l"), {"l": layer_id})
            assert _layer(conn, layer_id)["feature_count"] == stored, layer_id


@pytest.mark.parametrize(
    ("wkt", "error"),
    [
        ("MULTIPOLYGON(((120.7 30.7, 120.8 30.8, 120.8 30.7, 120.7 30.8, 120.7 30.7)))", IntegrityError),
        (
            "POLYGON((120.7 30.7, 120.8 30.7, 120.8 30.8, 120.7 30.8, 120.7 30.7),"
            " (121.0 31.0, 121.1 31.0, 121.1 31.1, 121.0 31.1, 121.0 31.0))",
            IntegrityError,
        ),
        ("POINT Z (120.7 30.7 5)", DBAPIError),
    ],
    ids=["self-intersecting", "hole-outside-shell", "3d"],
)
def test_invalid_geometry_is_rejected(private_engine: Engine, wkt: str, error: type[Exception]) -> None:
    """Invalid (CHECK constraint) or 3D geometries are refused, and the layer count is unchanged."""
    with private_engine.begin() as conn:
        _add_layer(conn, "probe")
    with pytest.raises(error), private_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO features (layer_id, properties, geom)"
                " VALUES ('probe', '{\"code\": \"bad\"}', ST_GeomFromText(:wkt, 4326))"
            ),
            {"wkt": wkt},
        )
    with private_engine.connect() as conn:
        assert _layer(conn, "probe")["feature_count"] == 0
        assert conn.scalar(text("SELECT count(*) FROM features")) == 0


def test_valid_geometry_is_accepted(private_engine: Engine) -> None:
    """The same table accepts a valid polygon (the CHECK is not refusing everything)."""
    with private_engine.begin() as conn:
        _add_layer(conn, "probe")
        conn.execute(
            text(
                "INSERT INTO features (layer_id, properties, geom) VALUES ('probe', '{\"code\": \"ok\"}',"
                " ST_GeomFromText('POLYGON((120.7 30.7, 120.8 30.7, 120.8 30.8, 120.7 30.8, 120.7 30.7))',"
                " 4326))"
            )
        )
        assert _layer(conn, "probe")["feature_count"] == 1


def test_features_need_a_code(private_engine: Engine) -> None:
    """A feature whose properties lack a code is refused (the code column is NOT NULL)."""
    with private_engine.begin() as conn:
        _add_layer(conn, "probe")
    with pytest.raises(IntegrityError), private_engine.begin() as conn:
        conn.execute(
            text("INSERT INTO features (layer_id, properties) VALUES ('probe', '{\"name_zh\": \"无代码\"}')")
        )


def _columns(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def _mercator_matches(conn: Connection, code: str) -> bool:
    """Whether the stored Web Mercator geometry of the feature is its geometry transformed (to 1 mm)."""
    return bool(
        conn.scalar(
            text(
                "SELECT ST_SRID(geom_3857) = 3857"
                " AND ST_Equals(ST_SnapToGrid(geom_3857, 0.001),"
                " ST_SnapToGrid(ST_Transform(geom, 3857), 0.001))"
                " FROM features WHERE code = :c"
            ),
            {"c": code},
        )
    )


def test_web_mercator_geometry_follows_every_write(private_engine: Engine) -> None:
    """`geom_3857` is written with the feature and follows an update of `geom`; it cannot be set directly."""
    with private_engine.begin() as conn:
        _add_layer(conn, "probe")
        _insert_points(conn, "probe", ["a"])
        assert _mercator_matches(conn, "a")
        conn.execute(text("UPDATE features SET geom = ST_SetSRID(ST_MakePoint(121.0, 30.9), 4326)"))
        assert _mercator_matches(conn, "a")
        x = conn.scalar(text("SELECT ST_X(geom_3857) FROM features WHERE code = 'a'"))
        assert x == pytest.approx(121.0 * 20037508.342789244 / 180)
        conn.execute(text("UPDATE features SET geom = NULL"))
        assert conn.scalar(text("SELECT geom_3857 IS NULL FROM features WHERE code = 'a'"))
    with pytest.raises(DBAPIError), private_engine.begin() as conn:
        conn.execute(text("UPDATE features SET geom_3857 = ST_SetSRID(ST_MakePoint(0, 0), 3857)"))


def test_downgrade_to_0001_drops_the_web_mercator_column(private_url: str, private_engine: Engine) -> None:
    """Going back to 0001 removes `geom_3857` and its index and keeps the features; upgrading again
    recomputes it for the rows already there."""
    with private_engine.begin() as conn:
        _add_layer(conn, "probe")
        _insert_points(conn, "probe", ["a", "b"])
    migrate.downgrade(private_url, "0001")
    assert "geom_3857" not in _columns(private_url, "features")
    with private_engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM features")) == 2
        assert not conn.scalar(
            text("SELECT count(*) FROM pg_indexes WHERE indexname = 'features_geom_3857_idx'")
        )
    migrate.upgrade(private_url)
    assert "geom_3857" in _columns(private_url, "features")
    with private_engine.connect() as conn:
        assert _mercator_matches(conn, "a") and _mercator_matches(conn, "b")
        assert conn.scalar(text("SELECT count(*) FROM pg_indexes WHERE indexname = 'features_geom_3857_idx'"))


# -- an upgrade from the previous revision keeps everything ----------------------------------------------

# caches the statistics triggers keep, which a migration may legitimately refresh
DERIVED = {"layers": {"version", "extent", "updated_at"}}
PLANNER = "王工 planner"


def _previous_revision() -> str:
    """The head's parent, read from the migration scripts (whatever the newest migration is)."""
    script = migrate.script_directory()
    head = script.get_revision(script.get_current_head())
    assert head is not None and isinstance(head.down_revision, str), "the head has exactly one parent"
    return head.down_revision


def _writable_columns(table: Table) -> set[str]:
    """The columns an INSERT may set: not generated, not an identity that is always generated."""
    return {c.name for c in table.columns if c.computed is None and not (c.identity and c.identity.always)}


def _insert(conn: Connection, table: Table, **values: Any) -> Any:
    """Insert a row with the values this revision's table has columns for; returns its primary key."""
    kept = {k: v for k, v in values.items() if k in _writable_columns(table)}
    return conn.execute(insert(table).values(kept).returning(*table.primary_key.columns)).scalar_one()


def _edit(conn: Connection, tables: dict[str, Table], fid: int, properties: dict[str, Any] | None) -> None:
    """What an edit does: the feature's current state into history, then the change (None: the delete)."""
    features = tables["features"]
    current = conn.execute(select(features).where(features.c.id == fid)).one()._asdict()
    operation = "update" if properties is not None else "delete"
    state = current | {"feature_id": fid, "valid_from": current["updated_at"], "operation": operation}
    _insert(
        conn, tables["feature_history"], **state, changed_by=PLANNER, comment=f"{operation}, old revision"
    )
    if properties is None:
        conn.execute(delete(features).where(features.c.id == fid))
        return
    changes = {"properties": properties, "version": features.c.version + 1, "updated_by": PLANNER}
    allowed = _writable_columns(features)
    conn.execute(
        update(features)
        .where(features.c.id == fid)
        .values({k: v for k, v in changes.items() if k in allowed})
    )


@dataclass
class OldEdits:
    """What was written at the previous revision: feature ids per layer, which were edited, the keys."""

    ids: dict[str, list[int]]
    edited: int
    deleted: int
    token: str
    revoked: str


def _write_at_old_revision(
    conn: Connection, tables: dict[str, Table], catalog: Catalog, seeds: dict[str, dict[str, dict[str, Any]]]
) -> OldEdits:
    """Three plan features in each of two layers, two edits of one, an edit of another, a delete, and two
    keys (one revoked), each row in the columns the old revision's tables have."""
    ids: dict[str, list[int]] = {}
    for layer_id in ("rail_stations", "hubs"):
        _insert(conn, tables["layers"], id=layer_id, geometry_type=catalog.layers[layer_id].geometry_type)
        ids[layer_id] = [
            _insert(
                conn,
                tables["features"],
                layer_id=layer_id,
                properties=f["properties"],
                geom=func.ST_SetSRID(func.ST_GeomFromGeoJSON(json.dumps(f["geometry"])), 4326),
            )
            for f in list(seeds[layer_id].values())[:3]
        ]
    edited, _, deleted = ids["rail_stations"]
    station, hub = (next(iter(seeds[layer].values()))["properties"] for layer in ("rail_stations", "hubs"))
    _edit(conn, tables, edited, station | {"status": "completed"})
    _edit(conn, tables, edited, station | {"status": "completed", "name_en": "Renamed 改名"})
    _edit(conn, tables, ids["hubs"][0], hub | {"status": "under_construction"})
    _edit(conn, tables, deleted, None)
    token, revoked = (TOKEN_PREFIX + secrets.token_urlsafe(32) for _ in range(2))
    keys = tables["api_keys"]
    for name, secret in (("升级前 editor", token), ("已撤销 revoked", revoked)):
        _insert(
            conn, keys, name=name, role="editor", prefix=secret[:SHOWN_PREFIX], key_hash=hash_token(secret)
        )
    conn.execute(update(keys).where(keys.c.name == "已撤销 revoked").values(revoked_at=func.now()))
    return OldEdits(ids, edited, deleted, token, revoked)


def _rows(conn: Connection, tables: dict[str, Table]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of each table in the columns the old revision has, as text (geometry as EWKB)."""
    out = {}
    for name, table in tables.items():
        columns = [c for c in table.columns if c.name not in DERIVED.get(name, set())]
        query = select(*(cast(c, Text) for c in columns)).order_by(*table.primary_key.columns)
        out[name] = [tuple(row) for row in conn.execute(query)]
    return out


def test_upgrade_from_the_previous_revision_keeps_every_edit(
    server_url: str, catalog: Catalog, seeds: dict[str, dict[str, dict[str, Any]]], tmp_path: Path
) -> None:
    """A database made by the head's parent revision, with features, edits (history of updates and a delete)
    and keys written in that revision's own schema (reflected), upgrades to head with every feature, version,
    history row and key kept; the service then serves the features as edited, and the keys still work."""
    with private_database(server_url, "previous") as url:
        migrate.downgrade(url, "base")
        migrate.upgrade(url, _previous_revision())
        engine = sync_engine(url)
        try:
            old = MetaData()
            old.reflect(engine, only=["layers", "features", "feature_history", "api_keys"])
            with engine.begin() as conn:
                edits = _write_at_old_revision(conn, dict(old.tables), catalog, seeds)
            with engine.connect() as conn:
                before = _rows(conn, dict(old.tables))
                stored = {
                    r.id: r.properties for r in conn.execute(text("SELECT id, properties FROM features"))
                }
            assert len(before["feature_history"]) == 4 and len(before["api_keys"]) == 2
            migrate.upgrade(url)
            assert migrate.current_revision(url) == _head()
            with engine.connect() as conn:
                assert _rows(conn, dict(old.tables)) == before
        finally:
            engine.dispose()

        with TestClient(create_app(Settings(database_url=url, data_dir=tmp_path), catalog)) as client:
            for layer_id, fids in edits.ids.items():
                for fid in fids:
                    response = client.get(f"/collections/{layer_id}/items/{fid}")
                    if fid == edits.deleted:
                        assert response.status_code == 404
                    else:
                        assert response.status_code == 200, response.text
                        assert response.json()["properties"].items() >= stored[fid].items()
            path = f"/collections/rail_stations/items/{edits.edited}"
            assert client.get(path).json()["properties"]["name_en"] == "Renamed 改名"
            assert [v["version"] for v in client.get(f"{path}/history").json()["versions"]] == [1, 2, 3]
            for secret, status in ((edits.token, 204), (edits.revoked, 401)):
                headers = {
                    "Authorization": f"Bearer {secret}",
                    "Content-Type": "application/merge-patch+json",
                }
                answer = client.patch(path, content=b'{"properties": {"status": "planned"}}', headers=headers)
                assert answer.status_code == status, answer.text
