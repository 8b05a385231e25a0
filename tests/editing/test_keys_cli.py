"""`jxplan keys add|list|revoke`: the token is printed once and never stored or listed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text
from typer.testing import CliRunner

from geo_service.cli import app
from geo_service.settings import get_settings


def _run(private_url: str, *args: str) -> tuple[int, str]:
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["keys", *args], env={"DATABASE_URL": private_url})
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.output


def test_key_lifecycle(private_url: str, private_engine: Engine) -> None:
    """add prints a token once (only its hash is stored), list shows it by name without the token, revoke
    marks it; a second key of the same name or an unknown role is refused with exit code 1."""
    code, out = _run(private_url, "add", "--name", "王工 planner", "--role", "editor")
    assert code == 0, out
    [token] = re.findall(r"^jxp_\S+$", out, flags=re.MULTILINE)
    with private_engine.connect() as conn:
        stored = conn.execute(text("SELECT name, role, prefix, key_hash FROM api_keys")).one()
    assert stored.name == "王工 planner" and stored.role == "editor"
    assert token not in stored.key_hash and stored.prefix == token[:8]
    code, out = _run(private_url, "list")
    assert code == 0 and "王工 planner" in out and "active" in out and token not in out
    assert _run(private_url, "add", "--name", "王工 planner")[0] == 1
    assert _run(private_url, "add", "--name", "other", "--role", "superuser")[0] == 1
    code, out = _run(private_url, "revoke", "王工 planner")
    assert code == 0
    assert "revoked" in _run(private_url, "list")[1]
    assert _run(private_url, "revoke", "王工 planner")[0] == 1


def test_expiry_and_layers(private_url: str, private_engine: Engine) -> None:
    """--expires takes 90d, 30d, 12h or an ISO date (a past one, or nonsense, is refused); --layers is checked
    against the catalogue; list shows role, layers, expiry, last use and state."""
    before = datetime.now(UTC)
    for name, expires, span in (("ninety", "90d", timedelta(days=90)), ("half", "12h", timedelta(hours=12))):
        code, out = _run(private_url, "add", "--name", name, "--expires", expires)
        assert code == 0, out
        with private_engine.connect() as conn:
            stored = conn.execute(
                text("SELECT expires_at FROM api_keys WHERE name = :n"), {"n": name}
            ).scalar_one()
        assert before + span <= stored <= datetime.now(UTC) + span
    code, out = _run(
        private_url,
        "add",
        "--name",
        "rail",
        "--expires",
        "2099-03-01",
        "--layers",
        "rail_lines,road_projects",
    )
    assert code == 0, out
    with private_engine.connect() as conn:
        row = conn.execute(text("SELECT expires_at, layers FROM api_keys WHERE name = 'rail'")).one()
    assert row.expires_at == datetime(2099, 3, 1, tzinfo=UTC) and row.layers == [
        "rail_lines",
        "road_projects",
    ]
    for args, words in (
        (["--expires", "2020-01-01"], "already passed"),
        (["--expires", "soon"], "90d"),
        (["--layers", "rail_lines,railway"], "railway"),
        (["--layers", "admin_boundaries"], "admin_boundaries"),
    ):
        code, out = _run(private_url, "add", "--name", "refused", *args)
        assert code == 1 and words in out, out
    with private_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM api_keys WHERE name = 'refused'")).scalar_one() == 0
    with private_engine.begin() as conn:
        conn.execute(text("UPDATE api_keys SET expires_at = now() - interval '1 day' WHERE name = 'half'"))
        conn.execute(text("UPDATE api_keys SET last_used_at = '2026-11-30T08:00:00Z' WHERE name = 'rail'"))
    code, out = _run(private_url, "list")
    lines = {line.split("\t")[0]: line for line in out.splitlines()}
    assert (
        "layers rail_lines,road_projects" in lines["rail"]
        and "expires 2099-03-01T00:00:00+00:00" in lines["rail"]
    )
    assert "used 2026-11-30T08:00:00+00:00" in lines["rail"] and "active" in lines["rail"]
    assert "layers all" in lines["ninety"] and "used never" in lines["ninety"]
    assert "\texpired " in lines["half"]
