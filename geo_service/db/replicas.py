"""Read replicas: which server a read goes to, their health, and read-your-writes by WAL position.

Reads (pages, features, tiles, counts) may go to a streaming replica; everything else stays on the primary.
A background check asks every replica whether it is still in recovery, how far it has replayed and how far
behind the primary it is; a replica that is down, promoted or lagging is skipped for `replica_retry_ms`,
and reads then go to the primary. A write's response carries the primary's WAL position (`JXPlan-Read-After`):
a read carrying it is served only by a server that has replayed that far.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy.engine import make_url

from geo_service.db.engine import ReadPool, as_text, read_pool
from geo_service.errors import InvalidParameter
from geo_service.settings import Settings

log = logging.getLogger(__name__)

READ_AFTER_HEADER = "JXPlan-Read-After"
READ_AFTER_COOKIE = "jxplan_read_after"
PRIMARY = "primary"

_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")


def parse_lsn(value: str) -> int:
    """A PostgreSQL LSN (`16/B374D848`) as a number; ValueError for anything else."""
    match = _LSN.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"not a WAL position (like 0/16B3748): {value[:40]!r}")
    return (int(match[1], 16) << 32) | int(match[2], 16)


def format_lsn(lsn: int) -> str:
    """A number as PostgreSQL writes an LSN."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def replica_name(url: str, index: int) -> str:
    """A replica's label in /ready and metrics: host:port, never its password."""
    parsed = make_url(url)
    return f"{parsed.host or 'local'}:{parsed.port or 5432}" if parsed.host else f"replica{index}"


# a replica that does not hand out a connection this fast is taken for down, and the read goes to the primary
REPLICA_CONNECT_S = 0.5


class ReplicaPool(AsyncConnectionPool[psycopg.AsyncConnection[Any]]):
    """A replica's read pool that never fails a read because the replica is away: a connection it cannot
    give within REPLICA_CONNECT_S comes from the primary's pool instead (and goes back there)."""

    primary: ReadPool
    on_failure: Callable[[BaseException], None]

    async def getconn(self, timeout: float | None = None) -> psycopg.AsyncConnection[Any]:
        try:
            return await super().getconn(min(timeout or REPLICA_CONNECT_S, REPLICA_CONNECT_S))
        except (PoolTimeout, psycopg.OperationalError) as error:
            self.on_failure(error)
            return await self.primary.getconn(timeout)

    @contextlib.asynccontextmanager
    async def own_connection(self, timeout: float) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection to this replica only (the health check's: never the primary's)."""
        conn = await super().getconn(timeout)
        try:
            yield conn
        finally:
            await self.putconn(conn)

    async def putconn(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if getattr(conn, "_pool", None) is self.primary:
            await self.primary.putconn(conn)
        else:
            await super().putconn(conn)


@dataclass
class Replica:
    """One replica, its pool and what the last check found."""

    name: str
    pool: ReplicaPool
    state: str = "unknown"  # up | down | lagging | not-in-recovery | unknown
    replay_lsn: int = 0
    lag_s: float | None = None
    skipped_until: float = 0.0

    @property
    def usable(self) -> bool:
        return self.state == "up" and time.monotonic() >= self.skipped_until


_CHECK_SQL = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
    "pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn(), "
    "extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8"
)


@dataclass
class Replicas:
    """The primary's read pool and one per replica, with the background health check."""

    settings: Settings
    primary: ReadPool
    replicas: list[Replica] = field(default_factory=list)
    reads: Counter[str] = field(default_factory=Counter)
    _task: asyncio.Task[None] | None = None
    _turn: int = 0

    @classmethod
    def create(cls, primary: ReadPool, settings: Settings) -> Replicas:
        replicas = []
        for i, url in enumerate(settings.read_database_urls, 1):
            pool = read_pool(url, settings.model_copy(update={"database_url": url}), ReplicaPool)
            assert isinstance(pool, ReplicaPool)  # built by the class given
            pool.primary = primary
            replicas.append(Replica(replica_name(url, i), pool))
        made = cls(settings, primary, replicas)
        for replica in replicas:
            replica.pool.on_failure = functools.partial(made.failed_replica, replica)
        return made

    async def open(self) -> None:
        for replica in self.replicas:
            await replica.pool.open(wait=False)
        if self.replicas:
            self._task = asyncio.create_task(self._check_forever(), name="replica-check")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for replica in self.replicas:
            await replica.pool.close()

    async def primary_lsn(self) -> int:
        """The primary's current WAL insert position."""
        async with self.primary.connection(timeout=self.primary.timeout) as conn:
            cur = await conn.execute("SELECT pg_current_wal_insert_lsn()::text")
            row = await cur.fetchone()
        assert row is not None
        return parse_lsn(as_text(row[0]))

    async def check(self) -> None:
        """Ask every replica (and the primary, for the lag in bytes) once."""
        try:
            primary_lsn: int | None = await self.primary_lsn()
        except (psycopg.Error, OSError, TimeoutError) as error:
            log.warning("replica check: primary unavailable: %s", type(error).__name__)
            primary_lsn = None
        max_lag_s = self.settings.replica_max_lag_ms / 1000
        for replica in self.replicas:
            if time.monotonic() < replica.skipped_until:
                continue
            try:
                async with replica.pool.own_connection(self.settings.db_wait_ms / 1000) as conn:
                    cur = await conn.execute(_CHECK_SQL)
                    row = await cur.fetchone()
            except Exception as error:  # any failure means: do not read from it
                self._skip(replica, "down", type(error).__name__)
                continue
            assert row is not None
            in_recovery, replay, idle, age = row
            if not in_recovery:
                self._skip(replica, "not-in-recovery", "promoted or not a replica")
                continue
            replica.replay_lsn = parse_lsn(as_text(replay)) if replay is not None else 0
            caught_up = primary_lsn is not None and replica.replay_lsn >= primary_lsn
            # the replay timestamp ages while the primary writes nothing: only a replica behind counts it
            replica.lag_s = 0.0 if caught_up or (idle and primary_lsn is None) else float(age or 0.0)
            if not caught_up and replica.lag_s > max_lag_s:
                self._skip(replica, "lagging", f"{replica.lag_s:.1f} s behind")
                continue
            if replica.state != "up":
                log.info("replica %s is used for reads", replica.name)
            replica.state = "up"

    def _skip(self, replica: Replica, state: str, why: str) -> None:
        if replica.state != state:
            log.warning("replica %s skipped (%s): %s", replica.name, state, why)
        replica.state = state
        replica.skipped_until = time.monotonic() + self.settings.replica_retry_ms / 1000

    async def _check_forever(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # a check must never stop the checking
                log.exception("replica check failed")
            await asyncio.sleep(self.settings.replica_check_ms / 1000)

    async def choose(self, after: int | None = None) -> tuple[str, ReadPool]:
        """The server for one read: a usable replica (in turn) that has replayed `after`, waiting up to
        `read_after_write_wait_ms` for one; else the primary."""
        deadline = time.monotonic() + self.settings.read_after_write_wait_ms / 1000
        while True:
            usable = [r for r in self.replicas if r.usable and (after is None or r.replay_lsn >= after)]
            if usable:
                self._turn += 1
                replica = usable[self._turn % len(usable)]
                return replica.name, replica.pool
            if after is None or not any(r.usable for r in self.replicas) or time.monotonic() >= deadline:
                return PRIMARY, self.primary
            await asyncio.sleep(0.02)
            await self._refresh_replay(after)

    async def _refresh_replay(self, after: int) -> None:
        for replica in self.replicas:
            if not replica.usable or replica.replay_lsn >= after:
                continue
            try:
                async with replica.pool.own_connection(REPLICA_CONNECT_S) as conn:
                    cur = await conn.execute("SELECT pg_last_wal_replay_lsn()::text")
                    row = await cur.fetchone()
                if row is not None and row[0] is not None:
                    replica.replay_lsn = parse_lsn(as_text(row[0]))
            except Exception as error:
                self._skip(replica, "down", type(error).__name__)

    def failed_replica(self, replica: Replica, error: BaseException) -> None:
        """A read could not get a connection of `replica`: skip it until it is checked again, and count the
        read as the primary's."""
        self._skip(replica, "down", type(error).__name__)
        self.reads[replica.name] -= 1
        self.reads[PRIMARY] += 1

    def read_failed(self, name: str) -> None:
        """A read failed on the replica `name` (it went away during the read): skip it until it is checked
        again; the read is counted again where it is retried."""
        for replica in self.replicas:
            if replica.name == name:
                self._skip(replica, "down", "a read failed on it")
                self.reads[name] -= 1

    def status(self) -> list[dict[str, Any]]:
        """What /ready and the metrics show of each replica."""
        return [
            {
                "name": r.name,
                "state": r.state,
                "lag_seconds": r.lag_s,
                "replay_lsn": format_lsn(r.replay_lsn) if r.replay_lsn else None,
            }
            for r in self.replicas
        ]


def read_after(header: str | None, cookie: str | None) -> int | None:
    """The WAL position a read must see, from the `JXPlan-Read-After` header or cookie (the header wins);
    a value that is not an LSN is the client's mistake (400)."""
    value = header if header is not None else cookie
    if value is None or not value.strip():
        return None
    try:
        return parse_lsn(value)
    except ValueError:
        raise InvalidParameter(
            f"{READ_AFTER_HEADER} (or the {READ_AFTER_COOKIE} cookie) must be a WAL position such as "
            f"0/16B3748, as a write's response gave it; drop it to read without waiting for a write."
        ) from None


def replicas_reads(replicas: Replicas | None, name: str) -> None:
    if replicas is not None:
        replicas.reads[name] += 1


# keys of a request's scope state: the replica a read went to, and a retry's order to read from the primary
READ_TARGET = "jxplan_read_target"
PRIMARY_ONLY = "jxplan_primary_only"


async def reads_for(request: Any) -> ReadPool:
    """The read pool of one HTTP request: its `JXPlan-Read-After` header or cookie says what it must see.
    The replica chosen is noted in the request's scope, so that `ReplicaRetry` can read again elsewhere."""
    state = request.app.state
    replicas: Replicas | None = getattr(state, "replicas", None)
    scope_state = request.scope.setdefault("state", {})
    if scope_state.get(PRIMARY_ONLY) or replicas is None or not replicas.replicas:
        read_after(request.headers.get(READ_AFTER_HEADER), request.cookies.get(READ_AFTER_COOKIE))
        replicas_reads(replicas, PRIMARY)
        primary: ReadPool = state.reads
        return primary
    after = read_after(request.headers.get(READ_AFTER_HEADER), request.cookies.get(READ_AFTER_COOKIE))
    name, pool = await replicas.choose(after)
    replicas.reads[name] += 1
    scope_state[READ_TARGET] = name
    return pool


class ReplicaRetry:
    """ASGI middleware: a GET or HEAD whose read went to a replica and failed there before anything was sent
    (a 503: the replica stopped or restarted during the read) is skipped and read again from the primary, so
    that a replica that dies under a read costs its reader nothing. A response already started (a page
    being streamed) cannot be taken back; it ends as a broken transfer, which clients retry."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        failed: list[str] = []

        async def held(message: Any) -> None:
            if failed:
                return  # the failed answer's body: dropped
            if message["type"] == "http.response.start" and message["status"] == 503:
                target = scope.get("state", {}).get(READ_TARGET)
                if target is not None and target != PRIMARY:
                    failed.append(target)
                    return
            await send(message)

        await self.app(scope, receive, held)
        if not failed:
            return
        replicas: Replicas | None = getattr(scope["app"].state, "replicas", None)
        if replicas is not None:
            replicas.read_failed(failed[0])
        log.warning("a read failed on replica %s; read again from the primary", failed[0])
        scope["state"] = {**scope.get("state", {}), PRIMARY_ONLY: True, READ_TARGET: None}

        replayed = False

        async def replay() -> Any:  # a GET's (empty) body was taken by the first attempt: give it again
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# POSTs that change no feature: a process's execution reads, a job lives on the primary (geo_service.analysis)
_NOT_DATA_WRITES = ("/processes/", "/jobs")
READ_AFTER_COOKIE_S = 60  # long enough for any replica within replica_max_lag_ms to catch up


class ReadAfterWrites:
    """ASGI middleware: a successful write's response carries the primary's WAL position after its commit,
    as the `JXPlan-Read-After` header and a short-lived cookie, so the reads that follow see the write."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in _WRITES
            or scope["path"].startswith(_NOT_DATA_WRITES)
        ):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state if "app" in scope else None

        async def send_with_lsn(message: Any) -> None:
            replicas: Replicas | None = getattr(state, "replicas", None)
            if message["type"] == "http.response.start" and message["status"] < 300 and replicas is not None:
                try:
                    lsn = format_lsn(await replicas.primary_lsn())
                except (psycopg.Error, OSError, TimeoutError):
                    lsn = None  # the write is done; without the position, reads simply may lag
                if lsn is not None:
                    cookie = (
                        f"{READ_AFTER_COOKIE}={lsn}; Max-Age={READ_AFTER_COOKIE_S}; "
                        "Path=/; SameSite=Lax; HttpOnly"
                    )
                    message["headers"] = [
                        *message.get("headers", []),
                        (READ_AFTER_HEADER.lower().encode(), lsn.encode()),
                        (b"set-cookie", cookie.encode()),
                    ]
            await send(message)

        await self.app(scope, receive, send_with_lsn)
