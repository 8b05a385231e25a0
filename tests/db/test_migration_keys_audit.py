"""Migration 0003: key expiry and layers, the audit log; upgrade keeps existing keys, downgrade removes only
what 0003 added."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from geo_service.db import migrate


def _columns(engine: Engine, table: str) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(table)}


def test_upgrade_keeps_keys_and_downgrade_removes_what_it_added(
    private_url: str, private_engine: Engine
) -> None:
    """A key made at 0002 survives the upgrade (never expiring, every layer) and the downgrade; the audit
    table and its trigger function come and go with 0003."""
    migrate.downgrade(private_url, "0002")
    assert "audit_log" not in inspect(private_engine).get_table_names()
    with private_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO api_keys (name, role, prefix, key_hash)"
                " VALUES ('old', 'editor', 'jxp_abcd', 'h')"
            )
        )
    migrate.upgrade(private_url, "0003")
    assert {"expires_at", "layers"} <= _columns(private_engine, "api_keys")
    with private_engine.begin() as conn:
        assert conn.execute(text("SELECT name, expires_at, layers FROM api_keys")).one() == (
            "old",
            None,
            None,
        )
        conn.execute(
            text("INSERT INTO audit_log (action, outcome, status) VALUES ('create', 'success', 201)")
        )
    migrate.downgrade(private_url, "0002")
    assert "audit_log" not in inspect(private_engine).get_table_names()
    assert not {"expires_at", "layers"} & _columns(private_engine, "api_keys")
    with private_engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM api_keys")).scalar_one() == "old"
        assert (
            conn.execute(
                text("SELECT count(*) FROM pg_proc WHERE proname = 'jx_audit_is_unchanged'")
            ).scalar_one()
            == 0
        )
    migrate.upgrade(private_url)


def test_audit_entries_cannot_be_changed(private_engine: Engine) -> None:
    """UPDATE on audit_log is refused; an outcome other than success/refused/error too."""
    with private_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_log (action, outcome, status, key_name)"
                " VALUES ('delete', 'success', 204, 'a')"
            )
        )
    with pytest.raises(DBAPIError, match="cannot be changed"), private_engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET key_name = 'someone else'"))
    with pytest.raises(DBAPIError, match="audit_log_outcome_check"), private_engine.begin() as conn:
        conn.execute(text("INSERT INTO audit_log (action, outcome, status) VALUES ('delete', 'maybe', 204)"))
    with private_engine.connect() as conn:
        assert conn.execute(text("SELECT key_name FROM audit_log")).scalar_one() == "a"
