"""The embedded PostGIS cluster: its secret state file, `jxplan db status`, and the port it reports."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from geo_service.cli import app
from geo_service.db.embedded import ClusterError, ClusterState, EmbeddedCluster
from geo_service.settings import PROJECT_ROOT, get_settings


@pytest.fixture
def cluster(server_url: str) -> EmbeddedCluster:
    """The project's embedded cluster, started by the session (tests against TEST_DATABASE_URL skip)."""
    if os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("TEST_DATABASE_URL is set: the embedded cluster is not in use")
    return EmbeddedCluster(PROJECT_ROOT / ".data")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _status_output(env: dict[str, str | None]) -> str:
    """`jxplan db status` run in-process with the given environment."""
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["db", "status"], env=env)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return result.output


def test_state_file_is_private(cluster: EmbeddedCluster) -> None:
    """The cluster state file (it holds the password) is readable by its owner only."""
    assert cluster.state_file.exists()
    assert _mode(cluster.state_file) == 0o600
    assert cluster.state() is not None


def test_saved_state_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """Saving the state makes a 0600 file even under umask 0, also over an existing world-readable file."""
    target = tmp_path / "state" / "cluster.json"
    previous = os.umask(0)
    try:
        ClusterState(pgdata="/nowhere", password="s3cret-pw", port=5999).save(target)
        assert _mode(target) == 0o600
        target.chmod(0o644)
        ClusterState(pgdata="/nowhere", password="other-pw", port=5998).save(target)
        assert _mode(target) == 0o600
    finally:
        os.umask(previous)
    assert json.loads(target.read_text()) == {"pgdata": "/nowhere", "password": "other-pw", "port": 5998}


def test_status_shows_the_port_not_the_password(cluster: EmbeddedCluster) -> None:
    """`jxplan db status` says the cluster runs and on which port, and never prints the password."""
    state = cluster.state()
    assert state is not None
    output = _status_output({"JXPLAN_DATA_DIR": str(cluster.data_dir), "DATABASE_URL": None})
    port = cluster.running_port()
    assert port is not None
    assert "running" in output
    assert str(port) in output
    assert state.password not in output


def test_status_hides_an_external_url_password() -> None:
    """With DATABASE_URL set, status names it without printing its password."""
    output = _status_output({"DATABASE_URL": "postgresql://gis:Very-Secret-9@db.internal:5432/jxplan"})
    assert "DATABASE_URL" in output
    assert "Very-Secret-9" not in output


def test_running_port_is_the_port_connections_use(cluster: EmbeddedCluster, server_url: str) -> None:
    """`running_port()` equals the port in the URL and the port the server says it listens on."""
    port = cluster.running_port()
    assert port is not None
    assert make_url(cluster.url()).port == port
    assert make_url(server_url).port == port
    engine = create_engine(cluster.url("postgres"))
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT inet_server_port()")) == port
            assert int(conn.scalar(text("SELECT current_setting('port')"))) == port
    finally:
        engine.dispose()


def test_running_port_is_none_without_a_cluster(tmp_path: Path) -> None:
    """A data directory without a cluster has no running port, and asking for its URL says what to do."""
    empty = EmbeddedCluster(tmp_path)
    assert empty.state() is None
    assert empty.running_port() is None
    with pytest.raises(ClusterError, match="jxplan db start"):
        empty.url()


def test_running_port_is_none_for_a_dead_server(tmp_path: Path) -> None:
    """A leftover postmaster.pid of a process that no longer exists does not count as running."""
    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    ClusterState(pgdata=str(pgdata), password="x", port=5999).save(tmp_path / "cluster.json")
    dead_pid = 2**22 + 12345  # above the kernel's pid_max default, so no such process
    (pgdata / "postmaster.pid").write_text(f"{dead_pid}\n{pgdata}\n1700000000\n5999\n\n127.0.0.1\n")
    assert EmbeddedCluster(tmp_path).running_port() is None
