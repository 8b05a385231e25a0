"""`jxplan backup` and `jxplan restore`: a round trip into a fresh cluster keeps every feature, version,
history row and key; damaged files and databases that hold data are refused, and nothing changes."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from geo_service.app import create_app
from geo_service.catalog import Catalog
from geo_service.cli import app
from geo_service.db import migrate
from geo_service.db.backup import BackupError, client_tools
from geo_service.db.embedded import EmbeddedCluster
from geo_service.editing.keys import add_key, revoke_key
from geo_service.settings import Settings, get_settings
from tests.conftest import Writable

LAYER = "rail_stations"
MERGE = "application/merge-patch+json"


def jxplan(*args: str, env: dict[str, str | None]) -> Result:
    """The `jxplan` command run in-process with `env` (its tools run as real processes)."""
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args), env=env)
    finally:
        get_settings.cache_clear()


def everything(url: str) -> dict[str, list[str]]:
    """Every row of every table in full (generated columns too, geometry as EWKB) and where each sequence
    stands, so that two databases compare equal only if nothing at all differs."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            tables = conn.scalars(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                    " AND tablename <> 'spatial_ref_sys' ORDER BY 1"
                )
            ).all()
            out = {
                name: list(conn.scalars(text(f'SELECT t::text FROM "{name}" t ORDER BY 1')))
                for name in tables
            }
            out["sequences"] = [
                f"{name}={value}"
                for name, value in conn.execute(
                    text(
                        "SELECT sequencename, last_value FROM pg_sequences"
                        " WHERE schemaname = 'public' ORDER BY 1"
                    )
                )
            ]
            return out
    finally:
        engine.dispose()


def _execute(url: str, *statements: str) -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Edited:
    """The source database after edits through the API: its URL, an editor's token and what was edited."""

    url: str
    password: str
    token: str
    created: str
    updated: str
    deleted: str


@pytest.fixture(scope="module")
def edited(writable: Writable) -> Edited:
    """Creates, updates (twice) and deletes through the API, plus a revoked key, so history and keys exist."""
    client = writable.client
    token = add_key(writable.engine, "备份测试 backup", "editor")
    add_key(writable.engine, "离职 former", "editor")
    revoke_key(writable.engine, "离职 former")
    auth = {"Authorization": f"Bearer {token}"}
    items = f"/collections/{LAYER}/items"
    first, second = client.get(items, params={"limit": 2}).json()["features"]
    feature = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [120.83, 30.72]},
        "properties": {
            "code": "backup_probe",
            "name_zh": "备份站",
            "name_en": "Backup station",
            "category": "rail_station",
            "status": "planned",
            "accuracy": "approximate",
            "county": ["330402"],
            "aliases": [],
        },
    }
    created = client.post(items, json=feature, headers=auth | {"Content-Type": "application/geo+json"})
    assert created.status_code == 201, created.text
    created_path = created.headers["location"].replace("http://testserver", "")
    updated_path = f"{items}/{first['id']}"
    for body in ({"properties": {"status": "completed"}}, {"properties": {"name_en": "Renamed 改名"}}):
        patched = client.patch(
            updated_path, content=json.dumps(body).encode(), headers=auth | {"Content-Type": MERGE}
        )
        assert patched.status_code == 204, patched.text
    deleted_path = f"{items}/{second['id']}"
    assert client.delete(deleted_path, headers=auth).status_code in (200, 204)
    url = writable.engine.url.render_as_string(hide_password=False)
    password = writable.engine.url.password
    assert password
    return Edited(url, password, token, created_path, updated_path, deleted_path)


@pytest.fixture(scope="module")
def fresh_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    """A second embedded cluster, made and started for this module only (as `postgres` when root)."""
    cluster = EmbeddedCluster(tmp_path_factory.mktemp("fresh_cluster"))
    cluster.start()
    yield cluster
    cluster.destroy()


def _fresh_env(cluster: EmbeddedCluster) -> dict[str, str | None]:
    return {"DATABASE_URL": None, "JXPLAN_DATA_DIR": str(cluster.data_dir)}


class ToolWatch:
    """Records the command line and environment of every pg_dump/pg_restore this process starts."""

    def __init__(self) -> None:
        self.seen: dict[int, tuple[list[bytes], bytes]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        me = str(os.getpid()).encode()
        while not self._stop.is_set():
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit() or int(proc.name) in self.seen:
                    continue
                try:
                    parent = (proc / "stat").read_bytes().rsplit(b")", 1)[1].split()[1]
                    argv = (proc / "cmdline").read_bytes().split(b"\0")
                    if parent == me and argv[0].endswith((b"/pg_dump", b"/pg_restore")):
                        self.seen[int(proc.name)] = (argv, (proc / "environ").read_bytes())
                except (OSError, IndexError):
                    continue
            self._stop.wait(0.002)

    def __enter__(self) -> ToolWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class RoundTrip:
    """What the backup and the restore printed, the file, and the tools' processes seen meanwhile."""

    file: Path
    backup: Result
    restore: Result
    tools: ToolWatch
    restored_url: str


@pytest.fixture(scope="module")
def round_trip(
    edited: Edited, fresh_cluster: EmbeddedCluster, tmp_path_factory: pytest.TempPathFactory
) -> RoundTrip:
    """`jxplan backup` of the edited database, then `jxplan restore` into the fresh cluster's empty one."""
    file = tmp_path_factory.mktemp("backups") / "jxplan.dump"
    with ToolWatch() as tools:
        backed_up = jxplan("backup", str(file), env={"DATABASE_URL": edited.url})
        restored = jxplan("restore", str(file), env=_fresh_env(fresh_cluster))
    assert backed_up.exit_code == 0, backed_up.output
    assert restored.exit_code == 0, restored.output
    return RoundTrip(file, backed_up, restored, tools, fresh_cluster.url())


def test_round_trip_into_a_fresh_cluster_keeps_everything(edited: Edited, round_trip: RoundTrip) -> None:
    """The restored database equals the edited one row for row — features with their properties, geometry
    and versions, every history row (updates and the delete), both keys' hashes (one revoked), the layers,
    the migration revision — and its sequences stand where the source's do; both commands report the
    same counts."""
    source = everything(edited.url)
    assert everything(round_trip.restored_url) == source
    assert len(source["feature_history"]) >= 3
    assert any('"delete"' in row or ",delete," in row for row in source["feature_history"])
    assert len(source["api_keys"]) >= 2
    counts = round_trip.backup.output.splitlines()[-1].strip()
    assert "features" in counts and "history rows 3" in counts and "API keys 2" in counts
    assert counts in round_trip.restore.output


def test_the_backup_file_is_private_and_no_password_is_shown(edited: Edited, round_trip: RoundTrip) -> None:
    """The file is readable by its owner only; pg_dump and pg_restore ran with no password on their
    command line or in their environment (those that connect get a pgpass file, gone afterwards), and
    none is printed."""
    assert stat.S_IMODE(round_trip.file.stat().st_mode) == 0o600
    assert not round_trip.file.with_name("jxplan.dump.partial").exists()
    secrets = [edited.password.encode()]
    fresh_password = make_url(round_trip.restored_url).password
    assert fresh_password
    secrets.append(fresh_password.encode())
    tools = {argv[0].rsplit(b"/", 1)[1] for argv, _ in round_trip.tools.seen.values()}
    assert {b"pg_dump", b"pg_restore"} <= tools
    for argv, environ in round_trip.tools.seen.values():
        for secret in secrets:
            assert secret not in b" ".join(argv)
            assert secret not in environ
        assert b"PGPASSWORD=" not in environ
        if b"--dbname" in argv:  # the ones that connect read the password from a file made for them
            passfiles = [v for v in environ.split(b"\0") if v.startswith(b"PGPASSFILE=")]
            assert passfiles and not Path(passfiles[0].split(b"=", 1)[1].decode()).exists()
    for secret in secrets:
        assert secret.decode() not in round_trip.backup.output + round_trip.restore.output


def test_the_restored_database_serves_and_accepts_the_keys(
    edited: Edited, round_trip: RoundTrip, catalog: Catalog, tmp_path: Path
) -> None:
    """The service on the restored database shows the edited feature with its history, not the deleted one;
    the restored editor key writes, and a new feature gets a new id (the sequences came along)."""
    settings = Settings(database_url=round_trip.restored_url, data_dir=tmp_path)
    with TestClient(create_app(settings, catalog), raise_server_exceptions=False) as client:
        feature = client.get(edited.updated)
        assert feature.status_code == 200
        assert feature.json()["properties"]["name_en"] == "Renamed 改名"
        assert [v["version"] for v in client.get(f"{edited.updated}/history").json()["versions"]] == [1, 2, 3]
        assert client.get(edited.created).json()["properties"]["code"] == "backup_probe"
        assert client.get(edited.deleted).status_code == 404
        auth = {"Authorization": f"Bearer {edited.token}"}
        body = client.get(edited.created).json()
        body["properties"]["code"] = "after_restore"
        del body["id"]
        created = client.post(
            f"/collections/{LAYER}/items", json=body, headers=auth | {"Content-Type": "application/geo+json"}
        )
        assert created.status_code == 201, created.text
        new_id = int(created.headers["location"].rsplit("/", 1)[1])
        assert new_id > int(edited.created.rsplit("/", 1)[1])


def test_a_database_with_data_is_replaced_only_when_asked(
    edited: Edited, round_trip: RoundTrip, fresh_cluster: EmbeddedCluster
) -> None:
    """Restoring over a database that holds data is refused (exit 1, the message names --replace) and
    changes nothing; with --replace the database becomes the backup's again, local changes gone, with every
    layer version past all the replaced database reached (no cached tile, page or count of it is reused)."""
    _execute(round_trip.restored_url, "DELETE FROM features WHERE code = 'backup_probe'")
    before = everything(round_trip.restored_url)
    reached = max(_layer_versions(round_trip.restored_url).values())
    refused = jxplan("restore", str(round_trip.file), env=_fresh_env(fresh_cluster))
    assert refused.exit_code == 1
    assert "--replace" in refused.output and "already holds data" in refused.output
    assert everything(round_trip.restored_url) == before
    replaced = jxplan("restore", "--replace", str(round_trip.file), env=_fresh_env(fresh_cluster))
    assert replaced.exit_code == 0, replaced.output
    source, restored = _layer_versions(edited.url), _layer_versions(round_trip.restored_url)
    assert restored == {layer: version + reached + 1 for layer, version in source.items()}
    _execute(round_trip.restored_url, f"UPDATE layers SET version = version - {reached + 1}")
    assert everything(round_trip.restored_url) == everything(edited.url)


def _layer_versions(url: str) -> dict[str, int]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return {row.id: row.version for row in conn.execute(text("SELECT id, version FROM layers"))}
    finally:
        engine.dispose()


def test_damaged_or_foreign_files_are_refused(
    round_trip: RoundTrip, fresh_cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    """A missing file, a file that is no archive, a truncated backup and a damaged byte in its data are
    each refused with exit 1 and a message saying what to do, even with --replace; nothing changes."""
    whole = round_trip.file.read_bytes()
    garbage = tmp_path / "notes.dump"
    garbage.write_text("not a backup\n")
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(whole[: len(whole) * 2 // 3])
    damaged = tmp_path / "damaged.dump"
    middle = len(whole) * 2 // 3
    damaged.write_bytes(
        whole[:middle] + bytes(b ^ 0xFF for b in whole[middle : middle + 64]) + whole[middle + 64 :]
    )
    before = everything(round_trip.restored_url)
    cases = {
        tmp_path / "missing.dump": "no backup file",
        garbage: "not a backup written by `jxplan backup`",
        truncated: "damaged or incomplete",
        damaged: "damaged or incomplete",
    }
    for file, message in cases.items():
        result = jxplan("restore", "--replace", str(file), env=_fresh_env(fresh_cluster))
        assert result.exit_code == 1, (file, result.output)
        assert message.lower() in result.output.lower(), result.output
        assert "nothing was restored" in result.output.lower() or "give the path" in result.output
    assert everything(round_trip.restored_url) == before


def test_a_restore_that_fails_part_way_changes_nothing(
    round_trip: RoundTrip, fresh_cluster: EmbeddedCluster
) -> None:
    """pg_restore stopped by the target (a planner's view depends on `features`, so it cannot be dropped)
    rolls back: the database, view included, is as it was. A table the backup lacks (a newer migration's)
    is refused before anything is tried, with the way out."""
    env = _fresh_env(fresh_cluster)
    view = ("CREATE VIEW planner_view AS SELECT id, code FROM features", "DROP VIEW IF EXISTS planner_view")
    _refused_unchanged(round_trip, env, view, "nothing was changed", "depend")
    table = ("CREATE TABLE site_reports (id bigint PRIMARY KEY)", "DROP TABLE IF EXISTS site_reports")
    _refused_unchanged(round_trip, env, table, "site_reports", "jxplan db downgrade")


def _refused_unchanged(
    round_trip: RoundTrip, env: dict[str, str | None], change: tuple[str, str], *words: str
) -> None:
    """With `change` made (then undone) in the restored database, `restore --replace` exits 1 with a message
    holding every one of `words`, and the database stays exactly as it was."""
    make, undo = change
    _execute(round_trip.restored_url, make)
    try:
        before = everything(round_trip.restored_url)
        refused = jxplan("restore", "--replace", str(round_trip.file), env=env)
        assert refused.exit_code == 1
        assert all(word in refused.output for word in words), refused.output
        assert everything(round_trip.restored_url) == before
    finally:
        _execute(round_trip.restored_url, undo)


def test_backup_errors_say_what_to_do(edited: Edited, tmp_path: Path) -> None:
    """A backup into a missing directory, of a database that is not jxplan's, or of a server newer than any
    installed pg_dump, is refused with what to do, and no file is left behind."""
    missing_dir = jxplan("backup", str(tmp_path / "no" / "x.dump"), env={"DATABASE_URL": edited.url})
    assert missing_dir.exit_code == 1 and "does not exist" in missing_dir.output
    empty = make_url(edited.url).set(database="postgres").render_as_string(hide_password=False)
    not_ours = jxplan("backup", str(tmp_path / "x.dump"), env={"DATABASE_URL": empty})
    assert not_ours.exit_code == 1 and "no jxplan tables" in not_ours.output, not_ours.output
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(BackupError, match="postgresql-client-99"):
        client_tools(99)


def test_a_backup_from_a_newer_jxplan_is_refused(
    round_trip: RoundTrip, fresh_cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    """A backup of a database at a migration revision this jxplan does not know (made by a newer one) is
    refused before anything is restored (here backed up from the embedded cluster, by `jxplan backup`)."""
    future = tmp_path / "future.dump"
    revision = migrate.current_revision(round_trip.restored_url)
    _execute(round_trip.restored_url, "UPDATE alembic_version SET version_num = '9999_from_the_future'")
    try:
        backed_up = jxplan("backup", str(future), env=_fresh_env(fresh_cluster))
        assert backed_up.exit_code == 0, backed_up.output
        assert "migration revision 9999_from_the_future" in backed_up.output
        before = everything(round_trip.restored_url)
        refused = jxplan("restore", "--replace", str(future), env=_fresh_env(fresh_cluster))
        assert refused.exit_code == 1
        assert "9999_from_the_future" in refused.output and "does not know" in refused.output, refused.output
        assert everything(round_trip.restored_url) == before
    finally:
        _execute(round_trip.restored_url, f"UPDATE alembic_version SET version_num = '{revision}'")
