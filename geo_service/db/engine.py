"""Connections: which database to use, creating it with PostGIS, and the engines."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from geo_service.db.embedded import EmbeddedCluster
from geo_service.db.faults import dropped, guard_engine, track_commits
from geo_service.settings import Settings


def normalize_url(url: str) -> str:
    """Make any PostgreSQL URL use the psycopg 3 driver (DATABASE_URL often says postgres://)."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def database_url(settings: Settings, database: str = "jxplan") -> str:
    """The configured DATABASE_URL, or the embedded cluster's (which must be running)."""
    if settings.database_url:
        return normalize_url(settings.database_url)
    return EmbeddedCluster(settings.data_dir).url(database)


def ensure_database(url: str) -> None:
    """Create the database of `url` if it does not exist, and the PostGIS extension in it."""
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database})
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    finally:
        admin.dispose()
    engine = create_engine(parsed, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    finally:
        engine.dispose()


def drop_database(url: str) -> None:
    """Drop the database of `url` (tests use a throwaway database)."""
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    finally:
        admin.dispose()


def sync_engine(url: str) -> Engine:
    """A synchronous engine for the loader, migrations, imports and the CLI."""
    engine = create_engine(url, pool_pre_ping=True)
    track_commits(engine)
    return engine


def cluster_port(settings: Settings) -> Callable[[], int | None] | None:
    """With the embedded cluster: where it listens now, asked again for every new connection, so the
    service finds a cluster that was stopped and started again (on another port, even). None with
    DATABASE_URL."""
    if settings.database_url:
        return None
    return EmbeddedCluster(settings.data_dir).current_port


def connect_timeout(settings: Settings) -> int:
    """libpq's connect timeout: the database wait in whole seconds, and at least libpq's floor of 2."""
    return max(2, -(-settings.db_wait_ms // 1000))


def server_options(settings: Settings, *settings_sql: str) -> str:
    """The libpq `options` that set session parameters at connect time (no round trip of their own)."""
    values = [f"statement_timeout={settings.read_timeout_ms}", *settings_sql]
    return " ".join(f"-c {v.replace(' ', '')}" for v in values)


def async_engine(url: str, settings: Settings) -> AsyncEngine:
    """The service's pool of asynchronous connections: every wait bounded by `db_wait_ms`."""
    # no pre-ping (a round trip per request): a connection the server dropped is noticed at checkout
    # without one (`guard_engine`); connections are also renewed every half hour. The read pool's session
    # settings too: JIT cost /collections 0.3 s per request with a 100k-row layer loaded (see READ_SETTINGS)
    engine = create_async_engine(
        url,
        pool_size=settings.pool_size,
        max_overflow=settings.pool_size,
        pool_recycle=1800,
        pool_timeout=settings.db_wait_ms / 1000,
        connect_args={
            "connect_timeout": connect_timeout(settings),
            "options": server_options(settings, *READ_SETTINGS),
        },
    )
    guard_engine(engine, cluster_port(settings))
    track_commits(engine)
    return engine


# -- the read path: psycopg's own pool ----------------------------------------------------------------------
# Reads (pages, features, tiles) skip SQLAlchemy: one autocommit statement per request on a psycopg pool, so a
# request costs one round trip and no transaction (no BEGIN, no ROLLBACK on return). Repeated statements are
# prepared by psycopg after their second execution. Writes keep the SQLAlchemy engine.

# `:name` placeholders as SQLAlchemy's text() reads them (not `::cast`, not `\:`), so one SQL text serves both
_PLACEHOLDER = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


def as_text(value: bytes | str) -> str:
    """A text value of the read pool (bytes, as `RawText` loads it) as a string."""
    return value.decode() if isinstance(value, bytes) else value


class RawText(Loader):
    """Loads `text` values as the bytes PostgreSQL sent: a page is relayed, never decoded and re-encoded."""

    def load(self, data: Buffer) -> bytes:
        return bytes(data)


@lru_cache(maxsize=512)
def pyformat(sql: str) -> str:
    """SQL with `:name` placeholders in psycopg's `%(name)s` style (`%` doubled, `\\:` unescaped)."""
    return _PLACEHOLDER.sub(r"%(\1)s", sql.replace("%", "%%")).replace("\\:", ":")


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL as libpq reads it (no `+driver`)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# Reads are many short statements at once, on a few cores: JIT compilation (tens of milliseconds, set off by
# the high cost estimates of PostGIS functions) and parallel workers (a seq scan split over workers looks
# cheaper than an index scan when every row calls ST_AsMVTGeom) only slow them down.
READ_SETTINGS = ("jit = off", "max_parallel_workers_per_gather = 0")


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    conn.adapters.register_loader("text", RawText)


ReadPool = AsyncConnectionPool[psycopg.AsyncConnection[Any]]
ReadConnection = psycopg.AsyncConnection[Any]


def read_pool(
    url: str,
    settings: Settings,
    pool_class: type[ReadPool] = AsyncConnectionPool,
    *,
    name: str = "reads",
    max_size: int | None = None,
) -> ReadPool:
    """The service's pool for reads: up to twice `pool_size` connections (as the engine's pool plus its
    overflow), autocommit, kept for half an hour, each read limited to `read_timeout_ms`, a wait for a
    connection to `db_wait_ms`. Opened by the app's lifespan. Another `name` (and `max_size`) makes a small
    pool of the same kind for one part of the service, its connections named `jxplan <name>` in
    pg_stat_activity (the job runner's: `jxplan jobs`)."""
    conninfo: str | Callable[[], str] = libpq_url(url)
    if (port := cluster_port(settings)) is not None:
        base = make_url(libpq_url(url))

        def conninfo() -> str:  # where the embedded cluster listens now
            now = port()
            return base.set(port=now or base.port).render_as_string(hide_password=False)

    wait_s = settings.db_wait_ms / 1000
    return pool_class(
        conninfo,
        min_size=1,
        max_size=max_size or 2 * settings.pool_size,
        max_idle=600,
        max_lifetime=1800,
        kwargs={
            "autocommit": True,
            "prepare_threshold": 2,
            "connect_timeout": connect_timeout(settings),
            "options": server_options(settings, *READ_SETTINGS),
            **({} if name == "reads" else {"application_name": f"jxplan {name}"}),
        },
        configure=_configure,
        open=False,
        name=name,
        timeout=wait_s,
        # while the database is away, each series of attempts to reconnect (backing off from 1 s) ends
        # within the wait, and the next request starts a new one: a database that returns is found within
        # about a second, not after a back-off grown to minutes
        reconnect_timeout=wait_s,
    )


async def read_connection(pool: ReadPool) -> ReadConnection:
    """A connection of the read pool the server has not dropped (give it back with `pool.putconn`).

    A dropped one (the server restarted since it was last used) is closed, so the pool replaces it, and
    the next one taken; all within the pool's wait, after which psycopg's PoolTimeout says the database
    is busy or away."""
    deadline = time.monotonic() + pool.timeout
    while True:
        conn = await pool.getconn(max(deadline - time.monotonic(), 0.001))
        if not dropped(conn):
            return conn
        await conn.close()
        await pool.putconn(conn)


@asynccontextmanager
async def reading(pool: ReadPool) -> AsyncIterator[ReadConnection]:
    """`read_connection` for the duration of a block."""
    conn = await read_connection(pool)
    try:
        yield conn
    finally:
        await pool.putconn(conn)
