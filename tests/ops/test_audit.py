"""The audit log: every write, import, revert and restore, and every refused authentication, with the key's
name (never the token or its hash), stored in audit_log (a write's success in the write's own transaction)
and logged on `geo_service.audit`."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from geo_service.cli import app as cli
from geo_service.editing.keys import add_key, hash_token
from geo_service.settings import get_settings
from tests.conftest import Writable, database_state

LAYER = "rail_stations"
MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture(scope="module")
def editor_token(writable: Writable) -> str:
    """An editor's key."""
    return add_key(writable.engine, "审计 auditor", "editor")


def _entries(writable: Writable, request_id: str) -> list[dict[str, Any]]:
    with writable.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT * FROM audit_log WHERE request_id = :r ORDER BY id"), {"r": request_id}
        ).all()
    return [dict(row._mapping) for row in rows]


def _feature(code: str) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [120.8, 30.7]},
        "properties": {
            "code": code,
            "name_zh": "审计站",
            "name_en": "Audit station",
            "category": "rail_station",
            "status": "planned",
            "accuracy": "approximate",
            "county": ["330402"],
        },
    }


def _everything_logged(records: list[logging.LogRecord]) -> str:
    return " ".join(
        f"{r.getMessage()} {json.dumps(r.__dict__, default=str, ensure_ascii=False)}" for r in records
    )


def test_every_write_is_audited(
    writable: Writable, editor_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Create, update, replace, delete, restore, revert and import each leave one success entry with the
    key's name, the collection, the feature id, the status, the client and the X-Request-Id, and one record
    on the geo_service.audit logger with the same fields (a dry-run import an entry saying it wrote
    nothing); neither the token nor its hash appears anywhere."""
    auth = {"Authorization": f"Bearer {editor_token}"}
    client = writable.client
    caplog.set_level(logging.INFO, logger="geo_service.audit")

    created = client.post(
        f"/collections/{LAYER}/items", headers=auth | {"X-Request-Id": "a-create"}, json=_feature("audit_1")
    )
    assert created.status_code == 201, created.text
    fid = int(created.headers["location"].rsplit("/", 1)[1])
    item = f"/collections/{LAYER}/items/{fid}"
    steps = [
        (
            "a-update",
            lambda h: client.patch(item, headers=h | MERGE, json={"properties": {"name_en": "Changed"}}),
        ),
        ("a-replace", lambda h: client.put(item, headers=h, json=_feature("audit_1"))),
        ("a-delete", lambda h: client.delete(item, headers=h)),
        ("a-restore", lambda h: client.post(f"{item}/revert", headers=h, params={"to": 3})),
        ("a-revert", lambda h: client.post(f"{item}/revert", headers=h, params={"to": 1})),
    ]
    for request_id, send in steps:
        response = send(auth | {"X-Request-Id": request_id})
        assert response.status_code == 204, (request_id, response.text)
    upload = json.dumps({"type": "FeatureCollection", "features": [_feature("audit_2")]}).encode()
    imported = client.post(
        f"/collections/{LAYER}/import",
        headers=auth | {"X-Request-Id": "a-import"},
        files={"file": ("audit.geojson", upload)},
        data={"datum": "wgs84"},
    )
    assert imported.status_code == 200, imported.text
    before = database_state(writable.engine)
    checked = client.post(
        f"/collections/{LAYER}/import",
        headers=auth | {"X-Request-Id": "a-dry-run"},
        files={"file": ("audit.geojson", upload)},
        data={"dry_run": "true"},
    )
    assert checked.status_code == 200 and database_state(writable.engine) == before
    [dry] = _entries(writable, "a-dry-run")
    assert (dry["action"], dry["status"], dry["feature_ids"], dry["detail"]) == (
        "import",
        200,
        None,
        "dry run: nothing written",
    )
    with writable.engine.connect() as conn:
        imported_id = conn.execute(text("SELECT id FROM features WHERE code = 'audit_2'")).scalar_one()

    expected = {
        "a-create": ("create", 201, [fid]),
        "a-update": ("update", 204, [fid]),
        "a-replace": ("replace", 204, [fid]),
        "a-delete": ("delete", 204, [fid]),
        "a-restore": ("restore", 204, [fid]),
        "a-revert": ("revert", 204, [fid]),
        "a-import": ("import", 200, [imported_id]),
    }
    for request_id, (action, status, ids) in expected.items():
        [entry] = _entries(writable, request_id)
        assert (entry["action"], entry["outcome"], entry["status"]) == (action, "success", status), entry
        assert entry["key_name"] == "审计 auditor" and entry["collection"] == LAYER
        assert entry["feature_ids"] == ids and entry["client"] == "testclient"
        [record] = [r for r in caplog.records if getattr(r, "request_id", None) == request_id]
        assert record.name == "geo_service.audit"
        fields = record.__dict__
        assert (fields["action"], fields["outcome"], fields["key_name"], fields["feature_ids"]) == (
            action,
            "success",
            "审计 auditor",
            ids,
        )
    assert "1 created" in _entries(writable, "a-import")[0]["detail"]
    with writable.engine.connect() as conn:
        stored = " ".join(str(row) for row in conn.execute(text("SELECT * FROM audit_log")))
    for secret in (editor_token, hash_token(editor_token)):
        assert secret not in stored and secret not in _everything_logged(caplog.records)


def test_failed_writes_are_recorded_with_their_status(writable: Writable, editor_token: str) -> None:
    """A refused write (invalid body 400, stale If-Match 412, unknown feature 404) leaves a 'refused' entry
    with its status and the problem's detail, never a success, and changes nothing."""
    auth = {"Authorization": f"Bearer {editor_token}"}
    with writable.engine.connect() as conn:
        fid = conn.execute(
            text("SELECT min(id) FROM features WHERE layer_id = :l"), {"l": LAYER}
        ).scalar_one()
    item = f"/collections/{LAYER}/items/{fid}"
    before = database_state(writable.engine)
    for request_id, response, status in (
        (
            "f-400",
            writable.client.patch(
                item,
                headers=auth | MERGE | {"X-Request-Id": "f-400"},
                json={"properties": {"status": "dreamt"}},
            ),
            400,
        ),
        (
            "f-412",
            writable.client.delete(item, headers=auth | {"If-Match": '"stale"', "X-Request-Id": "f-412"}),
            412,
        ),
        (
            "f-404",
            writable.client.delete(
                f"/collections/{LAYER}/items/999999", headers=auth | {"X-Request-Id": "f-404"}
            ),
            404,
        ),
    ):
        assert response.status_code == status, response.text
        [entry] = _entries(writable, request_id)
        assert (entry["outcome"], entry["status"], entry["key_name"]) == ("refused", status, "审计 auditor")
        assert entry["detail"] == response.json()["detail"][:1000]
    assert database_state(writable.engine) == before


def test_refused_authentications_are_audited(writable: Writable) -> None:
    """No key, a wrong key, a revoked key and a key with too low a role: each refusal is an 'authenticate'
    entry with its status (401, 401, 401, 403), the key's name when it is known, and the path."""
    reader = add_key(writable.engine, "审计读者 reader", "reader")
    path = f"/collections/{LAYER}/items/1"
    cases = {
        "r-none": ({}, 401, None),
        "r-wrong": ({"Authorization": "Bearer jxp_guess"}, 401, None),
        "r-reader": ({"Authorization": f"Bearer {reader}"}, 403, "审计读者 reader"),
    }
    for request_id, (headers, status, name) in cases.items():
        response = writable.client.delete(path, headers=headers | {"X-Request-Id": request_id})
        assert response.status_code == status
        [entry] = _entries(writable, request_id)
        assert (entry["action"], entry["outcome"], entry["status"], entry["key_name"]) == (
            "authenticate",
            "refused",
            status,
            name,
        )
        assert entry["collection"] == LAYER and f"DELETE {path}" in entry["detail"]
        assert "jxp_guess" not in str(entry)


@pytest.fixture
def failing_commit(writable: Writable) -> Iterator[str]:
    """A deferred constraint trigger that fails at COMMIT for features named 'roll back': the write and
    everything in its transaction roll back after the audit entry was written inside it."""
    with writable.engine.begin() as conn:
        conn.execute(
            text(
                """
                CREATE FUNCTION test_fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.properties->>'name_en' = 'roll back' THEN
                        RAISE EXCEPTION 'rolled back at commit (test)';
                    END IF;
                    RETURN NULL;
                END $$;
                CREATE CONSTRAINT TRIGGER test_fail_at_commit AFTER INSERT OR UPDATE ON features
                    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_fail_at_commit();
                """
            )
        )
    yield "roll back"
    with writable.engine.begin() as conn:
        conn.execute(
            text("DROP TRIGGER test_fail_at_commit ON features; DROP FUNCTION test_fail_at_commit()")
        )


def test_a_write_that_rolls_back_leaves_no_success_entry(
    writable: Writable, editor_token: str, failing_commit: str
) -> None:
    """The write fails at COMMIT, after its success entry was stored in its transaction: the feature is not
    there and neither is a success entry; the failure is recorded instead."""
    feature = _feature("audit_rollback")
    feature["properties"]["name_en"] = failing_commit
    before = database_state(writable.engine)
    response = writable.client.post(
        f"/collections/{LAYER}/items",
        headers={"Authorization": f"Bearer {editor_token}", "X-Request-Id": "rollback"},
        json=feature,
    )
    assert response.status_code >= 500
    assert database_state(writable.engine) == before
    assert [(e["outcome"], e["status"]) for e in _entries(writable, "rollback")] == [
        ("error", response.status_code)
    ]


def test_command_line_imports_are_audited(writable: Writable, tmp_path: Any) -> None:
    """`jxplan import` records its import (by whom, from the command line) in the same transaction."""
    source = tmp_path / "cli.geojson"
    source.write_text(json.dumps({"type": "FeatureCollection", "features": [_feature("audit_cli")]}), "utf-8")
    url = writable.engine.url.render_as_string(hide_password=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            cli, ["import", str(source), "--layer", LAYER, "--by", "王工"], env={"DATABASE_URL": url}
        )
        listed = CliRunner().invoke(
            cli, ["audit", "--since", "1h", "--limit", "1"], env={"DATABASE_URL": url}
        )
        refused = CliRunner().invoke(cli, ["audit", "--since", "lately"], env={"DATABASE_URL": url})
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    with writable.engine.connect() as conn:
        fid = conn.execute(text("SELECT id FROM features WHERE code = 'audit_cli'")).scalar_one()
        entry = conn.execute(text("SELECT * FROM audit_log ORDER BY id DESC LIMIT 1")).one()
    assert (entry.action, entry.outcome, entry.client, entry.feature_ids) == (
        "import",
        "success",
        "command line",
        [fid],
    )
    assert "by 王工" in entry.detail
    assert listed.exit_code == 0 and len(listed.output.splitlines()) == 1
    assert "\timport\tsuccess\t200\t-\trail_stations\t" in listed.output and "by 王工" in listed.output
    assert refused.exit_code == 1 and "90d" in refused.output
