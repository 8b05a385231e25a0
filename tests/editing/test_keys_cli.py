"""`jxplan keys add|list|revoke`: the token is printed once and never stored or listed."""

from __future__ import annotations

import re

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
