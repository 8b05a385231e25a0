"""`/health` (the process answers) and `/ready` (its database answers and its schema is current).

A load balancer or an orchestrator polls both: `/health` never touches the database, so a database outage
does not get healthy processes restarted; `/ready` says whether requests can be served now, within
`READY_TIMEOUT` whatever the database does (a hung server, a lost network, a refused password).
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from fastapi import APIRouter, Request, Response
from psycopg_pool import PoolTimeout

from geo_service import __version__
from geo_service.db.engine import ReadPool
from geo_service.errors import PROBLEM_JSON, NotReady
from geo_service.ogc.responses import json_response

READY_TIMEOUT = 2.0  # seconds; a probe's own timeout is usually a few seconds
VERSION_SQL = "SELECT version_num FROM alembic_version"

router = APIRouter()


class Readiness:
    """The migrations' head, computed once at start, and the database checks still running after their
    answer was given (a timed-out check is cancelled without waiting: psycopg may take seconds to cancel)."""

    def __init__(self, heads: frozenset[str]) -> None:
        self.heads = heads
        self._abandoned: set[asyncio.Task[set[str]]] = set()

    async def revisions(self, pool: ReadPool) -> set[str]:
        """The revisions the database is at, within `READY_TIMEOUT`; `NotReady` if it does not answer."""
        check = asyncio.ensure_future(_database_revisions(pool))
        done, _ = await asyncio.wait({check}, timeout=READY_TIMEOUT)
        if not done:
            check.cancel()
            self._abandoned.add(check)
            check.add_done_callback(self._forget)
            raise _unreachable("no answer")
        try:
            return check.result()
        except psycopg.errors.UndefinedTable:
            raise NotReady(
                "The database has no schema yet: run `jxplan db upgrade` (or `jxplan run`)."
            ) from None
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            raise _unreachable(type(exc).__name__) from None

    def _forget(self, task: asyncio.Task[set[str]]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failed abandoned check is not an error of its own

    def schema_problem(self, revisions: set[str]) -> NotReady | None:
        """Why a database at `revisions` cannot be served by this code, or None when it is at head."""
        if revisions == self.heads:
            return None
        if not revisions:
            return NotReady("The database has no migration applied: run `jxplan db upgrade`.")
        at, head = ", ".join(sorted(revisions)), ", ".join(sorted(self.heads))
        return NotReady(
            f"The database is at migration {at}, this service needs {head}: run `jxplan db upgrade` "
            "(or, if the database is newer, deploy the service version that matches it)."
        )


def _unreachable(reason: str) -> NotReady:
    return NotReady(
        f"The database is not reachable within {READY_TIMEOUT:g} s ({reason}). Check that PostgreSQL is "
        "running and that DATABASE_URL is right (`jxplan db start` starts the embedded one)."
    )


async def _database_revisions(pool: ReadPool) -> set[str]:
    async with pool.connection(timeout=READY_TIMEOUT) as conn:
        cur = await conn.execute(VERSION_SQL)
        return {str(row[0]) for row in await cur.fetchall()}


@router.get("/health", include_in_schema=False)
async def health() -> Response:
    """Alive: the process answers (the database is not asked)."""
    return json_response({"status": "ok", "version": __version__}, "application/json")


@router.get("/ready", include_in_schema=False)
async def ready(request: Request) -> Response:
    """Ready: the database answers within two seconds and is at the migrations' head; else 503 saying why."""
    readiness: Readiness = request.app.state.readiness
    revisions = await readiness.revisions(request.app.state.reads)
    if (problem := readiness.schema_problem(revisions)) is not None:
        raise problem
    body: dict[str, Any] = {
        "status": "ready",
        "database": "reachable",
        "migration": ", ".join(sorted(revisions)),
    }
    replicas = getattr(request.app.state, "replicas", None)
    if replicas is not None and replicas.replicas:  # reads fall back to the primary: ready either way
        body["replicas"] = replicas.status()
    return json_response(body, "application/json")


def openapi_paths() -> dict[str, Any]:
    """The operator's endpoints in the OpenAPI document (`/health`, `/ready`, `/metrics`)."""
    problem = {
        "description": "Not ready: the detail says why and what to do.",
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    status = {
        "type": "object",
        "required": ["status"],
        "properties": {k: {"type": "string"} for k in ("status", "version", "database", "migration")},
    }

    def get(op_id: str, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
        return {
            "get": {"operationId": op_id, "summary": summary, "tags": ["Operations"], "responses": responses}
        }

    text = {"text/plain": {"schema": {"type": "string"}}}
    metrics = {"200": {"description": "Prometheus text exposition format.", "content": text}}
    ok = {"200": {"description": "OK.", "content": {"application/json": {"schema": status}}}}
    return {
        "/health": get("getHealth", "Alive 存活检查", ok),
        "/ready": get("getReadiness", "Ready to serve 就绪检查", ok | {"503": problem}),
        "/metrics": get("getMetrics", "Prometheus metrics 监控指标", metrics),
    }
