"""Backups with PostgreSQL's own tools: `pg_dump` in its custom format, and `pg_restore` in one transaction.

A backup is the whole database (layers, features, history, API key hashes, the migration revision and
whatever later migrations add), taken in one snapshot whose row counts are reported. The client tools are
those of the server's major version, or the nearest newer one: `pg_dump` refuses a newer server, and a much
newer `pg_restore` may write settings an older server does not know. The password reaches the tools through
a private pgpass file made for the one run, never a command line (`ps` shows those to every user) or output.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, pool, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from geo_service.db import migrate
from geo_service.db.engine import libpq_url

# Debian's layout, one directory per installed major version (as the embedded cluster's `find_pg_bin`)
PG_INSTALLS = Path("/usr/lib/postgresql")
# the tables every jxplan database has; an archive without them is not a jxplan backup
JXPLAN_TABLES = frozenset({"alembic_version", "layers", "features", "feature_history", "api_keys"})
# archive entries the target database provides itself (an empty database has the schema and, from
# `jxplan`, PostGIS): recreating or commenting them needs their owner, which a managed PostGIS's user is not
_PROVIDED_ENTRY = re.compile(
    r"^\d+; \d+ \d+ (?:EXTENSION - |COMMENT - EXTENSION |SCHEMA - public |COMMENT - SCHEMA public )"
)
_TABLE_ENTRY = re.compile(r"^\d+; \d+ \d+ TABLE (\S+) (\S+) ")
_SPATIAL_REF_SYS_DATA = re.compile(r"^\d+; \d+ \d+ TABLE DATA \S+ spatial_ref_sys ")

CONTENTS_SQL = (
    "SELECT (SELECT max(version_num) FROM alembic_version) AS revision,"
    " (SELECT count(*) FROM layers) AS layers, (SELECT count(*) FROM features) AS features,"
    " (SELECT count(*) FROM feature_history) AS history, (SELECT count(*) FROM api_keys) AS keys"
)

# what a restore would overwrite: relations outside PostgreSQL's own schemas that no extension owns
USER_RELATIONS_SQL = (
    "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
    " AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'"  # pg_catalog, toast, temp schemas
    " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
    " AND d.objid = c.oid AND d.deptype = 'e')"
    " ORDER BY c.relname"
)


class BackupError(RuntimeError):
    """A backup or a restore cannot be done as asked; the message says what to do."""


@dataclass(frozen=True)
class Contents:
    """What a jxplan database holds: its migration revision and how many rows of each kind."""

    revision: str | None
    layers: int
    features: int
    history: int
    keys: int

    def summary(self) -> str:
        """One line for the operator."""
        return (
            f"features {self.features}, layers {self.layers}, history rows {self.history}, "
            f"API keys {self.keys}, migration revision {self.revision}"
        )


def read_contents(conn: Connection) -> Contents:
    """The contents of the database `conn` is connected to."""
    return Contents(**conn.execute(text(CONTENTS_SQL)).one()._asdict())


@dataclass(frozen=True)
class ClientTools:
    """`pg_dump` and `pg_restore` of one PostgreSQL installation."""

    bin_dir: Path
    major: int

    def run(
        self, tool: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a tool to its end; its output is returned, never printed."""
        return subprocess.run(
            [str(self.bin_dir / tool), *args],
            capture_output=True,
            text=True,
            env=_tool_environment() if env is None else env,
            check=False,
        )


def _tool_environment(password: str | None = None) -> dict[str, str]:
    """This process's environment less any password: PGPASSWORD (it would also win over a pgpass file),
    DATABASE_URL and whatever else holds `password`."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("PGPASSWORD", "DATABASE_URL") and not (password and password in v)
    }


def _tools_in(bin_dir: Path) -> ClientTools | None:
    if not all(os.access(bin_dir / tool, os.X_OK) for tool in ("pg_dump", "pg_restore")):
        return None
    found = re.search(r"\(PostgreSQL\) (\d+)", ClientTools(bin_dir, 0).run("pg_dump", "--version").stdout)
    return ClientTools(bin_dir, int(found.group(1))) if found else None


def installed_tools() -> list[ClientTools]:
    """Every installation of the client tools found: Debian's per-version directories, then the PATH's
    (its links resolved, so Debian's version-guessing wrapper is not mistaken for a version)."""
    dirs = sorted(PG_INSTALLS.glob("*/bin"))
    on_path = shutil.which("pg_dump")
    if on_path:
        dirs.append(Path(on_path).resolve().parent)
    found: dict[Path, ClientTools] = {}
    for bin_dir in dirs:
        tools = _tools_in(bin_dir)
        if tools is not None:
            found.setdefault(bin_dir.resolve(), tools)
    return sorted(found.values(), key=lambda t: t.major)


def client_tools(server_major: int) -> ClientTools:
    """The tools for a server of `server_major`: its own version (for the embedded cluster, the very
    installation that runs it), else the nearest newer one."""
    installed = installed_tools()
    for tools in installed:
        if tools.major >= server_major:
            return tools
    have = ", ".join(str(t.major) for t in installed) or "none"
    raise BackupError(
        f"The database server runs PostgreSQL {server_major}, but no pg_dump/pg_restore of version "
        f"{server_major} or newer is installed (found: {have}). Install them, e.g. "
        f"`apt-get install postgresql-client-{server_major}` (from the PostgreSQL apt repository if your "
        "system does not have that version), and run the command again."
    )


@dataclass(frozen=True)
class Target:
    """How the tools reach a database: a libpq connection string without the password, and the password."""

    dsn: str
    password: str | None

    @classmethod
    def of(cls, url: str) -> Target:
        """The target of a SQLAlchemy URL."""
        parsed = make_url(libpq_url(url))
        # URL.set(password=None) would keep the password: None there means "unchanged"
        dsn = URL.create(
            parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database, parsed.query
        )
        return cls(dsn.render_as_string(hide_password=False), parsed.password)

    @contextlib.contextmanager
    def environment(self) -> Iterator[dict[str, str]]:
        """The tools' environment: the password in a pgpass file only this user can read, removed after."""
        env = _tool_environment(self.password)
        env.setdefault("PGCONNECT_TIMEOUT", "10")
        if self.password is None:
            yield env  # the user's own ~/.pgpass or PGPASSFILE applies
            return
        escaped = self.password.replace("\\", "\\\\").replace(":", "\\:")
        with tempfile.TemporaryDirectory(prefix="jxplan-pg-") as private:  # mode 0700
            passfile = Path(private) / "pgpass"
            fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(f"*:*:*:*:{escaped}\n")
            yield env | {"PGPASSFILE": str(passfile)}


def _engine(url: str) -> Engine:
    return create_engine(url, poolclass=pool.NullPool)


def _server_major(engine: Engine) -> int:
    try:
        with engine.connect() as conn:
            return int(conn.scalar(text("SHOW server_version_num"))) // 10000
    except DBAPIError as exc:
        raise BackupError(
            f"Cannot reach the database ({exc.orig}); check DATABASE_URL and the server."
        ) from None


def _tool_error(result: subprocess.CompletedProcess[str]) -> str:
    return (result.stderr or result.stdout).strip()


def _verify_archive(tools: ClientTools, file: Path) -> str | None:
    """Read every byte of an archive (its data decompressed, nothing written anywhere); the error or None."""
    result = tools.run("pg_restore", "--file", os.devnull, str(file))
    return _tool_error(result) if result.returncode else None


# -- backup -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupReport:
    """A finished backup: where, how big, and what it holds."""

    file: Path
    size: int
    contents: Contents
    tools: ClientTools


def backup(url: str, file: Path) -> BackupReport:
    """Write the whole database of `url` to `file` (custom format, readable by its owner only).

    The file appears only once complete and read back, so a failed run never replaces the last good backup.
    """
    if file.is_dir():
        raise BackupError(f"{file} is a directory: give the name of the backup file, e.g. {file}/jxplan.dump")
    if not file.parent.is_dir():
        raise BackupError(f"The directory {file.parent} does not exist: create it first, then run again.")
    engine = _engine(url)
    try:
        tools = client_tools(_server_major(engine))
        target = Target.of(url)
        partial = file.with_name(file.name + ".partial")
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        os.chmod(partial, 0o600)
        try:
            # one snapshot for the counts and the dump, so the counts reported are the file's
            with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
                snapshot = conn.scalar(text("SELECT pg_export_snapshot()"))
                if not conn.scalar(text("SELECT to_regclass('public.alembic_version') IS NOT NULL")):
                    raise BackupError(
                        "This database holds no jxplan tables (it was never migrated): nothing to back up. "
                        "Check DATABASE_URL."
                    )
                contents = read_contents(conn)
                with target.environment() as env:
                    dumped = tools.run(
                        "pg_dump",
                        "--format=custom",
                        f"--snapshot={snapshot}",
                        "--file",
                        str(partial),
                        "--dbname",
                        target.dsn,
                        env=env,
                    )
            if dumped.returncode:
                raise BackupError(f"pg_dump failed, no backup was written:\n{_tool_error(dumped)}")
            damaged = _verify_archive(tools, partial)
            if damaged:
                raise BackupError(f"The backup written cannot be read back, so it was discarded:\n{damaged}")
            partial.replace(file)
        finally:
            partial.unlink(missing_ok=True)
    finally:
        engine.dispose()
    return BackupReport(file, file.stat().st_size, contents, tools)


# -- restore ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Archive:
    """A backup file as pg_restore lists it: its entries, its tables and the migration revision inside."""

    listing: list[str]
    tables: frozenset[str]
    revision: str


def _revision_in(tools: ClientTools, file: Path) -> str | None:
    """The alembic_version row of an archive (pg_restore prints that table's data as a COPY block)."""
    result = tools.run("pg_restore", "--data-only", "--table=alembic_version", "--file=-", str(file))
    lines = result.stdout.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("COPY ") and "alembic_version" in line and i + 1 < len(lines):
            return None if lines[i + 1] == "\\." else lines[i + 1].strip()
    return None


def read_archive(tools: ClientTools, file: Path) -> Archive:
    """Check that `file` is a whole, readable jxplan backup of a revision this jxplan knows, and list it."""
    listed = tools.run("pg_restore", "--list", str(file))
    if listed.returncode:
        raise BackupError(
            f"{file} is not a backup written by `jxplan backup` (pg_dump's custom format), is damaged, "
            f"or comes from a newer PostgreSQL than pg_restore {tools.major}: {_tool_error(listed)}. "
            "Nothing was restored; check the path or use another backup."
        )
    listing = listed.stdout.splitlines()
    tables = frozenset(m.group(2) for line in listing if (m := _TABLE_ENTRY.match(line)))
    missing = sorted(JXPLAN_TABLES - tables)
    if missing:
        raise BackupError(
            f"{file} is a PostgreSQL backup but not of a jxplan database (it has no {', '.join(missing)} "
            "table). Nothing was restored; use a file written by `jxplan backup`."
        )
    damaged = _verify_archive(tools, file)
    if damaged:
        raise BackupError(
            f"{file} is damaged or incomplete (pg_restore cannot read all of it: {damaged}). "
            "Nothing was restored; use an earlier backup."
        )
    revision = _revision_in(tools, file)
    if revision is None:
        raise BackupError(f"{file} records no migration revision. Nothing was restored; use another backup.")
    if not migrate.is_known(revision):
        raise BackupError(
            f"{file} is at migration revision {revision}, which this version of jxplan does not know (it was "
            "made by a newer one). Nothing was restored; restore it with that version of jxplan."
        )
    return Archive(listing, tables, revision)


@dataclass(frozen=True)
class RestoreReport:
    """A finished restore: what the database now holds, and whether it needs `jxplan db upgrade`."""

    contents: Contents
    head: str | None

    @property
    def needs_upgrade(self) -> bool:
        """The restored revision is older than this jxplan's newest."""
        return self.contents.revision != self.head


def _prepare_target(engine: Engine, archive: Archive, replace: bool) -> int:
    """PostGIS in the target; refuse a target with data unless replacing, and one with tables the
    backup lacks (a newer revision: its extra tables would outlive the restore and confuse migrations).
    Returns the highest layer version the target has reached (0 without layers)."""
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
            relations = conn.execute(text(USER_RELATIONS_SQL)).all()
            top = (
                conn.scalar(text("SELECT coalesce(max(version), 0) FROM layers"))
                if any(r.relname == "layers" and r.relkind in "rp" for r in relations)
                else 0
            )
    except DBAPIError as exc:
        raise BackupError(
            f"The target database cannot get PostGIS ({exc.orig}). Ask its administrator to run "
            "CREATE EXTENSION postgis in it, then restore again."
        ) from None
    if relations and not replace:
        names = (
            ", ".join(sorted({r.relname for r in relations if r.relkind in "rp"})[:6]) or relations[0].relname
        )
        raise BackupError(
            f"The database already holds data (tables {names}, …): restoring would replace all of it. "
            "Restore into an empty database, or, to replace its contents with the backup's, back it up first "
            "(`jxplan backup`) and add --replace."
        )
    extra = sorted({r.relname for r in relations if r.relkind in "rp"} - archive.tables)
    if extra:
        raise BackupError(
            f"The database has tables the backup does not ({', '.join(extra)}): it is at a newer migration "
            f"than the backup ({archive.revision}), and a restore would leave them behind. Restore into an "
            f"empty database, or back it up and go down to the backup's revision first "
            f"(`jxplan db downgrade {archive.revision}`), then restore with --replace."
        )
    return int(top or 0)


def restore(url: str, file: Path, *, replace: bool = False) -> RestoreReport:
    """Restore a backup into the database of `url`: an empty one, or with `replace` one whose contents
    the backup's replace. All in one transaction: on any error the database is as it was."""
    if not file.is_file():
        raise BackupError(f"No backup file at {file}: give the path of a file written by `jxplan backup`.")
    engine = _engine(url)
    try:
        tools = client_tools(_server_major(engine))
        archive = read_archive(tools, file)
        reached = _prepare_target(engine, archive, replace)
        entries = [line for line in archive.listing if not _PROVIDED_ENTRY.match(line)]
        if replace:  # PostGIS's own table stays as the target has it (the extension is not recreated)
            entries = [line for line in entries if not _SPATIAL_REF_SYS_DATA.match(line)]
        target = Target.of(url)
        with target.environment() as env, tempfile.TemporaryDirectory(prefix="jxplan-restore-") as work:
            list_file = Path(work) / "entries.list"
            list_file.write_text("\n".join(entries) + "\n")
            options = ["--clean", "--if-exists"] if replace else []
            restored = tools.run(
                "pg_restore",
                "--single-transaction",
                "--no-owner",
                "--no-privileges",
                *options,
                "--use-list",
                str(list_file),
                "--dbname",
                target.dsn,
                str(file),
                env=env,
            )
        if restored.returncode:
            raise BackupError(
                "pg_restore failed, so nothing was changed (the restore runs in one transaction):\n"
                f"{_tool_error(restored)}"
            )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if reached:
                # Every layer version moves past all the replaced database reached: tiles, pages, counts
                # and ETags are keyed by layer versions, so nothing cached from the replaced timeline (in a
                # running service, a proxy or a client) passes for the restored one.
                conn.execute(text("UPDATE layers SET version = version + :top"), {"top": reached + 1})
            conn.execute(text("ANALYZE"))  # a restore brings no planner statistics
            contents = read_contents(conn)
    finally:
        engine.dispose()
    if contents.revision != archive.revision:
        raise BackupError(
            f"After the restore the database is at revision {contents.revision}, not the backup's "
            f"{archive.revision}: check it before serving it (`jxplan db status`)."
        )
    return RestoreReport(contents, migrate.head())
