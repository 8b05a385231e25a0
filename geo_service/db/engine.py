"""Connections: which database to use, creating it with PostGIS, and the engines."""

from __future__ import annotations

import re
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
    """A synchronous engine for the loader, migrations and the CLI."""
    return create_engine(url, pool_pre_ping=True)


def async_engine(url: str, settings: Settings) -> AsyncEngine:
    """The service's pool of asynchronous connections."""
    # no pre-ping (a round trip per request): a connection the server dropped fails one statement, and
    # SQLAlchemy then discards the whole pool; connections are also renewed every half hour. The read pool's
    # session settings too: JIT cost /collections 0.3 s per request with a 100k-row layer (see READ_SETTINGS)
    return create_async_engine(
        url,
        pool_size=settings.pool_size,
        max_overflow=settings.pool_size,
        pool_recycle=1800,
        connect_args={"options": " ".join(f"-c {s.replace(' ', '')}" for s in READ_SETTINGS)},
    )


# -- the read path: psycopg's own pool ----------------------------------------------------------------------
# Reads (pages, features, tiles) skip SQLAlchemy: one autocommit statement per request on a psycopg pool, so a
# request costs one round trip and no transaction (no BEGIN, no ROLLBACK on return). Repeated statements are
# prepared by psycopg after their second execution. Writes keep the SQLAlchemy engine.

# `:name` placeholders as SQLAlchemy's text() reads them (not `::cast`, not `\:`), so one SQL text serves both
_PLACEHOLDER = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


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
    for setting in READ_SETTINGS:
        await conn.execute(f"SET {setting}")


ReadPool = AsyncConnectionPool[psycopg.AsyncConnection[Any]]


def read_pool(url: str, settings: Settings) -> ReadPool:
    """The service's pool for reads: up to twice `pool_size` connections (as the engine's pool plus its
    overflow), autocommit, kept for half an hour. Opened by the app's lifespan."""
    return AsyncConnectionPool(
        libpq_url(url),
        min_size=1,
        max_size=2 * settings.pool_size,
        max_idle=600,
        max_lifetime=1800,
        kwargs={"autocommit": True, "prepare_threshold": 2},
        configure=_configure,
        open=False,
        name="reads",
    )
