"""The `jxplan` command: run the service, manage the embedded database, load the layers, manage keys."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import make_url

from geo_service.bench import BENCH_LAYER, load_bench_layer
from geo_service.catalog import CatalogError, load_catalog, read_bench_layer
from geo_service.db import backup as backups
from geo_service.db import migrate
from geo_service.db.embedded import ClusterError, EmbeddedCluster
from geo_service.db.engine import database_url, ensure_database, sync_engine
from geo_service.db.standby import Standby
from geo_service.editing.imports import ImportProblem, import_rows, read_rows
from geo_service.editing.keys import ROLES, KeyProblem, add_key, checked_layers, list_keys, revoke_key
from geo_service.loader import SeedError, load
from geo_service.ops.audit import AuditEntry, read_entries_sync, store_sync
from geo_service.periods import moment
from geo_service.settings import Settings, get_settings

app = typer.Typer(help="嘉兴规划GIS Jiaxing plan GIS: serve, database, layers.", no_args_is_help=True)
db_app = typer.Typer(help="The database: embedded PostGIS cluster and migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
bench_app = typer.Typer(
    help="Synthetic benchmark data (layers/bench.yaml; served with JXPLAN_BENCH_LAYERS=1).",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


@contextlib.contextmanager
def database(settings: Settings, *, keep_running: bool = False) -> Iterator[str]:
    """The database URL: DATABASE_URL, or the embedded cluster started for the duration (and stopped after,
    if this call started it)."""
    if settings.database_url:
        yield database_url(settings)
        return
    cluster = EmbeddedCluster(settings.data_dir)
    try:
        started = cluster.start()
    except ClusterError as exc:
        raise _fail(str(exc)) from exc
    if started:
        typer.echo(
            f"Embedded PostGIS started on 127.0.0.1:{cluster.running_port()} (data in {settings.data_dir})."
        )
    try:
        url = database_url(settings)
        ensure_database(url)
        yield url
    finally:
        if started and not keep_running:
            cluster.stop()
            typer.echo("Embedded PostGIS stopped.")


def _prepare(url: str, settings: Settings, layer_ids: list[str] | None = None) -> None:
    """Migrate, then load the layers (all, or the chosen ones), saying what changed."""
    migrate.upgrade(url)
    try:
        catalog = load_catalog(settings.layers_dir, settings.maps_dir, bench_layers=settings.bench_layers)
    except CatalogError as exc:
        raise _fail(str(exc)) from exc
    unknown = [name for name in layer_ids or [] if name not in catalog.layers]
    if unknown:
        raise _fail(f"Unknown layer(s): {', '.join(unknown)}. Layers: {', '.join(catalog.layers)}")
    generated = [name for name in layer_ids or [] if catalog.layers[name].file is None]
    if generated:
        raise _fail(f"{', '.join(generated)} has no seed file: make it with `jxplan bench load`.")
    engine = sync_engine(url)
    try:
        reports = load(engine, catalog, layer_ids or None)
    except SeedError as exc:
        raise _fail(f"Seed data rejected, nothing was loaded:\n{exc}") from exc
    finally:
        engine.dispose()
    changed = [r for r in reports if r.changed or r.kept_edits]
    if not changed:
        typer.echo(f"Layers up to date ({len(reports)} layers, nothing changed).")
    for report in changed:
        typer.echo("  " + report.summary())


WORKERS = Annotated[
    int | None,
    typer.Option(
        "--workers", min=1, max=64, help="Service processes behind the one port (default: JXPLAN_WORKERS, 1)."
    ),
]


def _serve(settings: Settings, workers: int | None = None) -> None:
    from geo_service.app import create_app  # the app imports the web stack; the db commands do not need it
    from geo_service.ops.logformat import configure_logging

    workers = workers or settings.workers
    base = f"http://{settings.host}:{settings.port}"
    processes = f", {workers} processes" if workers > 1 else ""
    typer.echo(f"\n  地图 Map:  {base}/maps/overview\n  接口 API:  {base}/\n  (Ctrl-C stops{processes})\n")
    configure_logging(settings)  # uvicorn's own log config and access log stay off: ours has the request ids
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "log_level": settings.log_level,
        "access_log": False,
    }
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
    else:  # uvicorn's processes, each building the app from the environment (the database is found as here)
        uvicorn.run(
            "geo_service.app:worker_app",
            factory=True,
            workers=workers,
            timeout_worker_healthcheck=settings.worker_timeout_s,  # uvicorn's 5 s kills a slow-starting one
            **options,
        )


@app.command()
def run(workers: WORKERS = None) -> None:
    """Start the embedded PostGIS (unless DATABASE_URL is set), migrate, load the layers and serve."""
    settings = get_settings()
    with database(settings) as url:
        _prepare(url, settings)
        _serve(settings, workers)


@app.command()
def serve(workers: WORKERS = None) -> None:
    """Serve the API and maps (the database must be running and migrated)."""
    settings = get_settings()
    if not settings.database_url and EmbeddedCluster(settings.data_dir).running_port() is None:
        raise _fail("The embedded PostGIS is not running: use `jxplan run`, or `jxplan db start` first.")
    _serve(settings, workers)


@app.command("load")
def load_command(
    layer: Annotated[list[str] | None, typer.Option(help="Load only these layers (repeatable).")] = None,
) -> None:
    """Load `layers/` into the database: new features inserted, changed ones updated, edits kept."""
    settings = get_settings()
    with database(settings, keep_running=True) as url:
        _prepare(url, settings, layer)


@db_app.command("start")
def db_start() -> None:
    """Start the embedded PostGIS cluster (created on first use)."""
    cluster = EmbeddedCluster(get_settings().data_dir)
    try:
        started = cluster.start()
    except ClusterError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"{'Started' if started else 'Already running'} on 127.0.0.1:{cluster.running_port()}.")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostGIS cluster."""
    EmbeddedCluster(get_settings().data_dir).stop()
    typer.echo("Stopped.")


@db_app.command("status")
def db_status() -> None:
    """Say which database is used and whether it runs."""
    settings = get_settings()
    if settings.database_url:
        typer.echo("Using DATABASE_URL (an external PostGIS).")
        return
    port = EmbeddedCluster(settings.data_dir).running_port()
    typer.echo(f"Embedded PostGIS {'running on 127.0.0.1:' + str(port) if port else 'stopped'}.")


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    settings = get_settings()
    with database(settings, keep_running=True) as url:
        migrate.upgrade(url, revision)
        typer.echo(f"Database at revision {migrate.current_revision(url)}.")


@db_app.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (`base` removes every table and its data)."""
    settings = get_settings()
    with database(settings, keep_running=True) as url:
        migrate.downgrade(url, revision)
        typer.echo(f"Database at revision {migrate.current_revision(url)}.")


@app.command("backup")
def backup_command(
    file: Annotated[Path, typer.Argument(dir_okay=False, help="The backup file to write, e.g. jxplan.dump.")],
) -> None:
    """Back up the whole database (features, history, keys, layers, migrations) to FILE with pg_dump."""
    with database(get_settings()) as url:
        try:
            report = backups.backup(url, file)
        except backups.BackupError as exc:
            raise _fail(str(exc)) from exc
    typer.echo(f"Backup written to {report.file} ({report.size:,} bytes, pg_dump {report.tools.major}):")
    typer.echo(f"  {report.contents.summary()}.")


@app.command("restore")
def restore_command(
    file: Annotated[Path, typer.Argument(help="A file written by `jxplan backup`.")],
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace the contents of a database that already holds data.")
    ] = False,
) -> None:
    """Restore FILE into the database, in one transaction: an empty one, or with --replace one with data."""
    with database(get_settings()) as url:
        try:
            report = backups.restore(url, file, replace=replace)
        except backups.BackupError as exc:
            raise _fail(str(exc)) from exc
    typer.echo(f"Restored {file}:\n  {report.contents.summary()}.")
    if report.needs_upgrade:
        typer.echo(f"This jxplan's newest revision is {report.head}: run `jxplan db upgrade` before serving.")


@bench_app.callback()
def bench() -> None:
    """Synthetic layers for benchmarks: generated in PostgreSQL, hidden unless JXPLAN_BENCH_LAYERS=1."""


@bench_app.command("load")
def bench_load(
    rows: Annotated[int, typer.Option(min=1, help="How many parcels to generate.")] = 100_000,
) -> None:
    """Replace the rows of `bench_parcels` with ROWS generated parcels (the same ones for the same ROWS)."""
    settings = get_settings()
    try:
        layer = read_bench_layer(settings.layers_dir, BENCH_LAYER)
    except CatalogError as exc:
        raise _fail(str(exc)) from exc
    with database(settings, keep_running=True) as url:
        migrate.upgrade(url)
        engine = sync_engine(url)
        try:
            report = load_bench_layer(engine, layer, rows)
        finally:
            engine.dispose()
    typer.echo(report.summary())
    if not settings.bench_layers:
        typer.echo("Serve it with JXPLAN_BENCH_LAYERS=1 (hidden from the catalogue otherwise).")


keys_app = typer.Typer(help="API keys for writing (editors) and administration.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@contextlib.contextmanager
def _write_engine() -> Iterator[Engine]:
    settings = get_settings()
    with database(settings, keep_running=True) as url:
        migrate.upgrade(url)
        engine = sync_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


def _when(moment_: datetime | None, never: str) -> str:
    return moment_.astimezone(UTC).isoformat(timespec="seconds") if moment_ else never


@keys_app.command("add")
def keys_add(
    name: Annotated[str, typer.Option(help="Who or what uses the key, e.g. a planner's name.")],
    role: Annotated[str, typer.Option(help="reader, editor or admin.")] = "editor",
    expires: Annotated[
        str | None,
        typer.Option(
            help="When it stops working: 90d, 30d, 12h from now, or an ISO date (UTC unless given)."
        ),
    ] = None,
    layers: Annotated[
        str | None, typer.Option(help="Comma-separated layers it may write (default: every editable layer).")
    ] = None,
) -> None:
    """Create a key and print its token once: only its hash is stored, it cannot be shown again."""
    if role not in ROLES:
        raise _fail(f"role must be one of {', '.join(ROLES)}")
    settings = get_settings()
    try:
        expires_at = moment(expires, datetime.now(UTC), ago=False) if expires is not None else None
    except ValueError as exc:
        raise _fail(f"--expires: {exc}") from exc
    chosen = None
    if layers is not None:
        try:
            catalog = load_catalog(settings.layers_dir, settings.maps_dir, bench_layers=settings.bench_layers)
            editable = [layer.id for layer in catalog.layers.values() if layer.editable]
            chosen = checked_layers(layers.split(","), editable)
        except (KeyProblem, CatalogError) as exc:
            raise _fail(str(exc)) from exc
    with _write_engine() as engine:
        try:
            token = add_key(engine, name, role, expires_at=expires_at, layers=chosen)
        except KeyProblem as exc:
            raise _fail(str(exc)) from exc
    limits = [f"expires {_when(expires_at, '')}"] if expires_at else []
    limits += [f"writes only {', '.join(chosen)}"] if chosen else []
    typer.echo(f"Key {name!r} ({', '.join([role, *limits])}) created. Its token, shown only this once:")
    typer.echo(token)


@keys_app.command("list")
def keys_list() -> None:
    """Every key: name, role, first characters, layers, created, expiry, last used, revoked."""
    with _write_engine() as engine:
        keys = list_keys(engine)
    if not keys:
        typer.echo("No keys. Create one with: jxplan keys add --name NAME --role editor")
    now = datetime.now(UTC)
    for key in keys:
        layers = "layers " + (",".join(key.layers) if key.layers else "all")
        expiry = "expires never"
        if key.expires_at:
            expiry = f"{'expired' if key.expires_at <= now else 'expires'} {_when(key.expires_at, '')}"
        state = f"revoked {_when(key.revoked_at, '')}" if key.revoked_at else "active"
        typer.echo(
            f"{key.name}\t{key.role}\t{key.prefix}…\t{layers}\tcreated {key.created_at:%Y-%m-%d}"
            f"\t{expiry}\tused {_when(key.last_used_at, 'never')}\t{state}"
        )


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke a key: it stops working at once and stays listed."""
    with _write_engine() as engine:
        try:
            revoke_key(engine, name)
        except KeyProblem as exc:
            raise _fail(str(exc)) from exc
    typer.echo(f"Key {name!r} revoked.")


@app.command("import")
def import_command(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="GeoJSON, GeoPackage or zipped Shapefile.")
    ],
    layer: Annotated[str, typer.Option(help="The collection to import into, e.g. rail_stations.")],
    datum: Annotated[
        str | None,
        typer.Option(
            help="Source datum: wgs84, cgcs2000, gcj02, bd09 or EPSG:nnnn (default: the file's CRS)."
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check and report; change nothing.")] = False,
    by: Annotated[str, typer.Option(help="Who the history records as making the change.")] = "import",
) -> None:
    """Create or update features of LAYER from FILE, matched by `code`: all rows or none, history kept."""
    settings = get_settings()
    catalog = load_catalog(settings.layers_dir, settings.maps_dir, bench_layers=settings.bench_layers)
    target = catalog.layers.get(layer)
    if target is None:
        raise _fail(f"no layer {layer!r}; layers: {', '.join(catalog.layers)}")
    if not target.editable:
        raise _fail(f"{layer} is reference data and is not imported into")
    try:
        rows = read_rows(file, target, datum, settings)
    except ImportProblem as exc:
        raise _fail(str(exc)) from exc

    def audited(conn: Connection, ids: list[int], counts: str) -> None:
        entry = AuditEntry(
            "import", "success", 200, None, layer, "command line", None, ids, f"by {by}: {counts}"
        )
        store_sync(conn, entry)
        entries.append(entry)

    entries: list[AuditEntry] = []
    with _write_engine() as engine:
        report = import_rows(
            engine, target, rows, who=by, comment=f"import of {file.name}", dry_run=dry_run, on_apply=audited
        )
    for entry in entries:
        entry.emit()  # committed
    for row in report.rows:
        reasons = f": {'; '.join(row.reasons)}" if row.reasons else ""
        typer.echo(f"row {row.row}\t{row.code or '-'}\t{row.outcome}{reasons}")
    for warning in report.warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW)
    counts = report.counts_text()
    if report.applied:
        typer.echo(f"Imported into {layer}: {counts}.")
    elif dry_run:
        typer.echo(f"Dry run, nothing changed: {counts}.")
    else:
        raise _fail(f"Nothing imported: fix the invalid rows and run again ({counts}).")


@app.command("audit")
def audit_command(
    since: Annotated[str, typer.Option(help="How far back: 1d, 12h, or an ISO date.")] = "1d",
    limit: Annotated[int, typer.Option(min=1, help="At most this many entries, newest first.")] = 100,
) -> None:
    """The audit log: writes, imports, reverts and refused authentications, newest first."""
    try:
        start = moment(since, datetime.now(UTC), ago=True)
    except ValueError as exc:
        raise _fail(f"--since: {exc}") from exc
    with _write_engine() as engine, engine.connect() as conn:
        entries = read_entries_sync(conn, start, limit)
    if not entries:
        typer.echo(f"No audit entries since {start.isoformat(timespec='seconds')}.")
    for e in entries:
        ids = ",".join(str(i) for i in e["feature_ids"] or []) or "-"
        typer.echo(
            "\t".join(
                str(v if v is not None else "-")
                for v in (
                    e["at"],
                    e["action"],
                    e["outcome"],
                    e["status"],
                    e["key_name"],
                    e["collection"],
                    ids,
                    e["client"],
                    e["request_id"],
                    e["detail"],
                )
            )
        )


replica_app = typer.Typer(
    help="Streaming read replicas of the embedded cluster on this machine.", no_args_is_help=True
)
db_app.add_typer(replica_app, name="replica")
ReplicaName = Annotated[str, typer.Option("--name", help="The replica's name (lower case, digits, _).")]


def _standby(name: str) -> Standby:
    try:
        return Standby(EmbeddedCluster(get_settings().data_dir), name)
    except ClusterError as exc:
        raise _fail(str(exc)) from exc


@replica_app.command("start")
def replica_start(
    name: ReplicaName = "r1",
    show_url: Annotated[
        bool,
        typer.Option("--show-url", help="Print the URL with its password (for JXPLAN_READ_DATABASE_URLS)."),
    ] = False,
) -> None:
    """Start a replica (copied from the running embedded cluster on first use) and say where it listens."""
    standby = _standby(name)
    try:
        started = standby.start()
        url = standby.url()
    except ClusterError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(
        f"Replica {name} {'started' if started else 'already running'} on 127.0.0.1:{standby.running_port()}."
    )
    typer.echo(url if show_url else make_url(url).render_as_string(hide_password=True))


@replica_app.command("stop")
def replica_stop(name: ReplicaName = "r1") -> None:
    """Stop a replica (its copy is kept; `start` resumes streaming)."""
    _standby(name).stop()
    typer.echo(f"Replica {name} stopped.")


@replica_app.command("status")
def replica_status(name: ReplicaName = "r1") -> None:
    """Say whether a replica exists and runs."""
    standby = _standby(name)
    port = standby.running_port()
    if standby.state() is None:
        typer.echo(f"Replica {name} does not exist.")
    else:
        typer.echo(f"Replica {name} {'running on 127.0.0.1:' + str(port) if port else 'stopped'}.")


@replica_app.command("remove")
def replica_remove(name: ReplicaName = "r1") -> None:
    """Stop a replica, drop its replication slot on the primary and delete its copy."""
    try:
        _standby(name).remove()
    except ClusterError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"Replica {name} removed.")
