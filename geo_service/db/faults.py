"""When the database fails: which errors mean it is unavailable, what the client is told, and the guards that
keep a connection the server has dropped out of any request.

Every "database unavailable" error becomes a 503 with `Retry-After` here (`database_problem`), whoever raised
it: psycopg (the read pool), SQLAlchemy (writes, collections, downloads, maps), psycopg's pool (no connection
within the wait) or the operating system (connection refused). The app's exception handlers call it; an error
it does not recognise stays what it is, a bug.
"""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import Any, Literal

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine

from geo_service.errors import OutcomeUnknown, QueryTimeout, ServiceUnavailable
from geo_service.settings import Settings


class CommitLost(Exception):
    """The connection was lost while its COMMIT was on the way: the change may or may not have been saved."""


# the exception types whose handler asks `database_problem` (what it does not recognise stays a bug)
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    psycopg.Error,
    sa_exc.DBAPIError,
    sa_exc.TimeoutError,
    ConnectionError,
    CommitLost,
)

# SQLSTATE classes that say the server cannot serve now: connection exception, insufficient resources (too
# many connections, disk full), operator intervention (shutting down, crashed, starting up), system error
_UNAVAILABLE_STATES = ("08", "53", "57P", "58")
_READ_METHODS = ("GET", "HEAD", "OPTIONS")
_COMMITTING = "jxplan_committing"  # in a connection's info while its COMMIT is on the way


def _unavailable(error: BaseException) -> bool:
    if isinstance(error, ConnectionError):
        return True
    if isinstance(error, psycopg.OperationalError):
        # no SQLSTATE: the client side failed (refused, lost, closed), the server said nothing
        state = error.sqlstate
        return state is None or state.startswith(_UNAVAILABLE_STATES)
    return False


def failure(exc: BaseException) -> Literal["commit lost", "timeout", "busy", "unavailable"] | None:
    """What a database error says: a COMMIT lost its answer, a statement ran past its time limit, no
    connection came free in time, the database cannot answer now; None for any other error (a bug)."""
    if isinstance(exc, CommitLost):
        return "commit lost"
    error = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    if isinstance(error, pg_errors.QueryCanceled) and "statement timeout" in str(error):
        return "timeout"
    if isinstance(error, PoolTimeout | sa_exc.TimeoutError):
        return "busy"
    invalidated = isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
    # a statement cancelled otherwise: by an operator, or by a shutdown
    if invalidated or isinstance(error, pg_errors.QueryCanceled) or _unavailable(error):
        return "unavailable"
    return None


def database_problem(exc: BaseException, method: str, settings: Settings) -> ServiceUnavailable | None:
    """The 503 problem for an error that means the database cannot answer now; None for any other error."""
    kind = failure(exc)
    if kind is None:
        return None
    retry = settings.retry_after_s
    writing = method.upper() not in _READ_METHODS
    unchanged = " Nothing was changed." if writing else ""
    if kind == "commit lost":
        return OutcomeUnknown(
            "The connection to the database was lost while this change was being committed, so it may or may"
            " not have been saved. Reload the feature (after a create or an import: the collection) to see,"
            f" before you send the change again. Try again in {retry} s.",
            retry_after=retry,
        )
    if kind == "timeout":
        limit = f"{settings.read_timeout_ms / 1000:g} s"
        if writing:
            return QueryTimeout(
                f"The change took longer than the {limit} the database allows a statement and was stopped."
                f" Nothing was changed. Try again in {retry} s.",
                retry_after=retry,
            )
        return QueryTimeout(
            f"This request took longer than the {limit} the database allows a read (JXPLAN_READ_TIMEOUT_MS) "
            "and was stopped there. Ask for less: a smaller bbox, a more selective filter, a lower limit "
            "(follow the next links page by page) or fewer properties; for a tile, zoom in.",
            retry_after=retry,
        )
    if kind == "busy":
        return ServiceUnavailable(
            f"No database connection came free within {settings.db_wait_ms / 1000:g} s: the database is busy"
            f" with other requests, or not reachable.{unchanged} Try again in {retry} s.",
            retry_after=retry,
        )
    return ServiceUnavailable(
        f"The database is not reachable just now (it may be restarting).{unchanged} Try again in {retry} s;"
        " if this lasts, ask the operator to check PostgreSQL (`jxplan db status`).",
        retry_after=retry,
    )


def dropped(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether the server has closed this idle connection (shut down, restarted, crashed), without a round
    trip: an idle connection has nothing to read unless the server said goodbye (an error and EOF)."""
    if conn.closed:
        return True
    poller = select.poll()
    poller.register(conn.pgconn.socket, select.POLLIN)
    return bool(poller.poll(0))


def guard_engine(engine: AsyncEngine, port: Callable[[], int | None] | None) -> None:
    """SQLAlchemy's side of the service: connect where the embedded cluster listens now (`port`, read again
    per new connection), and never hand out a connection the server dropped."""
    target = engine.sync_engine

    if port is not None:

        @event.listens_for(target, "do_connect")
        def _connect_where_it_listens(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
            if (now := port()) is not None:
                cparams["port"] = now

    @event.listens_for(target, "checkout")
    def _never_a_dropped_connection(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if dropped(record.driver_connection):
            # one dropped means the server went away: every older connection is renewed, this one at once
            raise sa_exc.InvalidatePoolError("the server closed this connection")


def track_commits(engine: Engine | AsyncEngine) -> None:
    """Tell a lost COMMIT from a failed change: a connection lost while its COMMIT was on the way raises
    `CommitLost` (the change may be saved), any other lost connection its usual error (nothing was)."""
    target = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

    @event.listens_for(target, "begin")
    def _begun(conn: Connection) -> None:
        conn.info.pop(_COMMITTING, None)

    @event.listens_for(target, "commit")
    def _committing(conn: Connection) -> None:
        conn.info[_COMMITTING] = True

    @event.listens_for(target, "handle_error")
    def _commit_lost(ctx: ExceptionContext) -> Exception | None:
        conn = ctx.connection
        if not ctx.is_disconnect or conn is None or conn.invalidated or not conn.info.get(_COMMITTING):
            return None
        return CommitLost(f"the connection was lost during COMMIT: {ctx.original_exception}")
