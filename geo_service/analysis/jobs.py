"""Asynchronous executions (`Prefer: respond-async`): jobs kept in PostgreSQL and the runner that works them.

A job is written when it is accepted (after its inputs passed every check, so a refused request writes
nothing) and claimed by one runner at a time: `FOR UPDATE SKIP LOCKED` lets several service processes share
the queue, and a lease (longer than any statement may run, JXPLAN_READ_TIMEOUT_MS) makes it safe across
restarts: a job whose process died is taken again when its lease runs out, at most `MAX_ATTEMPTS` times.
On shutdown the runner stops taking jobs, lets running ones finish for JXPLAN_JOB_SHUTDOWN_S, and gives the
rest back to the queue. Jobs and their results are deleted JXPLAN_JOB_TTL_S after they were created or
finished. A client address may have JXPLAN_JOBS_PER_CLIENT jobs waiting or running at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from geo_service.analysis.processes import JSON, Answer, AnswerCache, Process, prepare, run
from geo_service.catalog import Catalog
from geo_service.db.engine import ReadPool, as_text, reading
from geo_service.db.faults import DATABASE_ERRORS
from geo_service.errors import NotFound, Problem
from geo_service.ogc.query import Sql
from geo_service.settings import Settings

log = logging.getLogger("geo_service.analysis")

MAX_ATTEMPTS = 3
POLL_S = 1.0  # how often an idle runner looks for jobs another process accepted
EXPIRE_EVERY_S = 60.0
EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
REL_RESULTS = "http://www.opengis.net/def/rel/ogc/1.0/results"
# what a status document is made of
STATUS_COLUMNS = "id, process_id, status, message, progress, created_at, started_at, finished_at, updated_at"


class TooManyJobs(Problem):
    """The client already has as many jobs waiting or running as it may."""

    status = 429
    title = "Too many jobs 任务过多"

    def __init__(self, detail: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {"Retry-After": str(retry_after)}


def no_such_job(job_id: str) -> NotFound:
    """The 404 of an unknown (or expired) job."""
    return NotFound(
        f"No job {job_id[:64]!r}: it never existed, was dismissed or has expired (jobs are kept for a "
        "limited time). The jobs of your address are listed at /jobs.",
        type=EXCEPTIONS + "no-such-job",
    )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def parse_job_id(job_id: str) -> uuid.UUID:
    """A job id of a path, or 404."""
    try:
        return uuid.UUID(job_id)
    except ValueError:
        raise no_such_job(job_id) from None


@dataclass(frozen=True)
class Claimed:
    """A job a runner has taken: what it needs to run it."""

    id: uuid.UUID
    process_id: str
    inputs: Any
    base_url: str


class JobQueue:
    """The jobs of one service process: submitting, reading, dismissing, and running them."""

    def __init__(
        self,
        engine: AsyncEngine,
        reads: ReadPool,
        queue: ReadPool,
        processes: dict[str, Process],
        catalog: Catalog,
        settings: Settings,
        observe: Callable[[str, str, str, float], None] | None = None,
        answers: AnswerCache | None = None,
    ) -> None:
        self.engine = engine
        self.reads = reads
        self.queue = queue  # the runner's own connections (`jxplan jobs`): autocommit, one statement each
        self.processes = processes
        self.catalog = catalog
        self.settings = settings
        self.observe = observe
        self.answers = answers
        self.lease_s = settings.read_timeout_ms / 1000 * 2 + 10
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()  # set by `stop`: take no more jobs
        self._last_failure: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._running: dict[asyncio.Task[None], uuid.UUID] = {}

    # the HTTP side ------------------------------------------------------------------------------------

    async def submit(self, process_id: str, inputs: dict[str, Any], client: str, base: str) -> dict[str, Any]:
        """Accept a job whose inputs passed every check; 429 when the client has too many active."""
        job_id = uuid.uuid4()
        async with self.engine.begin() as conn:
            # one client's submissions one after another, so that two at once cannot both pass the bound
            lock = "SELECT pg_advisory_xact_lock(hashtext('jobs:' || :client))"
            await conn.execute(text(lock), {"client": client})
            count = (
                "SELECT count(*) FILTER (WHERE status IN ('accepted', 'running')),"
                " count(*) FILTER (WHERE status <> 'dismissed')"
                " FROM jobs WHERE client = :client AND expires_at > now()"
            )
            active, kept = (await conn.execute(text(count), {"client": client})).one()
            if kept >= self.settings.jobs_kept_per_client:
                raise TooManyJobs(
                    f"Your address keeps {kept} jobs, the most it may keep "
                    f"({self.settings.jobs_kept_per_client}; each is kept for "
                    f"{self.settings.job_ttl_s // 3600} h with its inputs and results). Dismiss the ones "
                    "you have read (DELETE /jobs/{jobId}; GET /jobs lists them), or run the process "
                    "synchronously (without Prefer: respond-async).",
                    retry_after=60,
                )
            if active >= self.settings.jobs_per_client:
                raise TooManyJobs(
                    f"You have {active} jobs waiting or running, the most one address may have "
                    f"({self.settings.jobs_per_client}). Wait for one to finish (GET /jobs lists them), "
                    "dismiss one (DELETE /jobs/{jobId}), or run the process synchronously (without Prefer: "
                    "respond-async).",
                    retry_after=5,
                )
            await conn.execute(
                text(
                    "INSERT INTO jobs (id, process_id, client, inputs, base_url, message, expires_at)"
                    " VALUES (:id, :process_id, :client, CAST(:inputs AS jsonb), :base, :message,"
                    " now() + make_interval(secs => :ttl))"
                ),
                {
                    "id": job_id,
                    "process_id": process_id,
                    "client": client,
                    "inputs": json.dumps(inputs),
                    "base": base,
                    "message": "已受理,等待运行 accepted, waiting to run",
                    "ttl": self.settings.job_ttl_s,
                },
            )
        self._wake.set()
        return await self.status(str(job_id), base)

    async def _row(self, job_id: str, columns: str = STATUS_COLUMNS) -> Any:
        """The job's row (these columns), or 404 when there is none or it has expired."""
        sql = f"SELECT {columns} FROM jobs WHERE id = :id AND expires_at > now()"
        async with self.engine.connect() as conn:
            row = (await conn.execute(text(sql), {"id": parse_job_id(job_id)})).first()
        if row is None:
            raise no_such_job(job_id)
        return row

    def _document(self, row: Any, base: str) -> dict[str, Any]:
        links = [
            {"href": f"{base}/jobs/{row.id}", "rel": "self", "type": JSON, "title": "任务状态 Job status"},
            {
                "href": f"{base}/processes/{row.process_id}",
                "rel": "up",
                "type": JSON,
                "title": "过程 Process",
            },
        ]
        if row.status == "successful":
            links.append(
                {
                    "href": f"{base}/jobs/{row.id}/results",
                    "rel": REL_RESULTS,
                    "type": JSON,
                    "title": "结果 Results",
                }
            )
        return {
            "jobID": str(row.id),
            "processID": row.process_id,
            "type": "process",
            "status": row.status,
            "message": row.message,
            "progress": row.progress,
            "created": _iso(row.created_at),
            "started": _iso(row.started_at),
            "finished": _iso(row.finished_at),
            "updated": _iso(row.updated_at),
            "links": links,
        }

    async def status(self, job_id: str, base: str) -> dict[str, Any]:
        """The status document of a job (404 if unknown or expired)."""
        return self._document(await self._row(job_id), base)

    async def list_jobs(self, client: str, base: str, limit: int) -> list[dict[str, Any]]:
        """The client's jobs, newest first."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        f"SELECT {STATUS_COLUMNS} FROM jobs WHERE client = :client"
                        " AND expires_at > now() ORDER BY created_at DESC, id LIMIT :limit"
                    ),
                    {"client": client, "limit": limit},
                )
            ).all()
        return [self._document(row, base) for row in rows]

    async def results(self, job_id: str) -> bytes:
        """The results document of a successful job; its problem if it failed; 404 while it is not done."""
        row = await self._row(job_id, "status, results::text AS results, error")
        if row.status == "successful":
            return str(row.results).encode()
        if row.status == "failed":
            error = dict(row.error or {})
            raise Problem(
                f"The job failed: {error.get('detail', 'no reason was recorded')}",
                status=int(error.get("status", 500)) if int(error.get("status", 500)) < 500 else 500,
                type=EXCEPTIONS + "job-results-failed",
            )
        if row.status == "dismissed":
            raise no_such_job(job_id)
        raise NotFound(
            f"The job is {row.status}: its results are not ready yet. Ask /jobs/{job_id} until its status is "
            "successful.",
            type=EXCEPTIONS + "result-not-ready",
        )

    async def dismiss(self, job_id: str, base: str) -> dict[str, Any]:
        """Dismiss a job: it will not run (a running one's answer is dropped) and its results are deleted."""
        async with self.engine.begin() as conn:
            found = (
                await conn.execute(
                    text(
                        "UPDATE jobs SET status = 'dismissed', results = NULL, inputs = '{}'::jsonb,"
                        " updated_at = now(),"
                        " finished_at = COALESCE(finished_at, now()),"
                        " message = '已撤销 dismissed by its client'"
                        " WHERE id = :id AND status <> 'dismissed' AND expires_at > now() RETURNING id"
                    ),
                    {"id": parse_job_id(job_id)},
                )
            ).first()
        if found is None:
            raise no_such_job(job_id)
        return await self.status(job_id, base)

    # the runner ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the runner's tasks (none with JXPLAN_JOB_WORKERS=0) and the expiry of old jobs."""
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.settings.job_workers)]
        self._tasks.append(asyncio.create_task(self._expire_forever()))

    async def stop(self) -> None:
        """Stop taking jobs; let running ones finish for JXPLAN_JOB_SHUTDOWN_S; give the rest back."""
        self._stop.set()
        self._wake.set()
        pending: set[asyncio.Task[None]] = set()
        if self._tasks:  # idle loops end at once; a running job may finish within the time given
            _, pending = await asyncio.wait(self._tasks, timeout=self.settings.job_shutdown_s)
        unfinished = [self._running[t] for t in pending if t in self._running]
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if unfinished:
            with contextlib.suppress(*DATABASE_ERRORS):
                await self._execute(
                    "UPDATE jobs SET status = 'accepted', attempts = greatest(attempts - 1, 0),"
                    " lease_until = NULL, progress = 0, updated_at = now(),"
                    " message = '服务停止,已重新排队 returned to the queue: the service stopped'"
                    " WHERE id = ANY(:ids) AND status = 'running'",
                    ids=unfinished,
                )
            log.info("%d unfinished jobs returned to the queue", len(unfinished))

    async def _work(self) -> None:
        while not self._stop.is_set():
            try:
                job = await self._claim()
            except DATABASE_ERRORS as exc:
                reason = _first_line(exc)
                if reason != self._last_failure:  # once per kind of failure, not once a second
                    log.warning("the job runner cannot take jobs: %s", reason)
                    self._last_failure = reason
                job = None
            else:
                self._last_failure = None
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_S)
                continue
            task = asyncio.current_task()
            assert task is not None
            self._running[task] = job.id
            try:
                await self._run(job)
            finally:
                self._running.pop(task, None)

    async def _execute(self, sql: str, **params: Any) -> tuple[Any, ...] | None:
        """One statement on the runner's connections (autocommit: never idle in a transaction); its row."""
        async with reading(self.queue) as conn:
            cur = await conn.execute(*Sql(sql, params).psycopg())
            return await cur.fetchone() if cur.description else None

    async def _claim(self) -> Claimed | None:
        # a job that died with its process MAX_ATTEMPTS times fails, rather than kill the next one too
        await self._execute(
            "UPDATE jobs SET status = 'failed', finished_at = now(), updated_at = now(),"
            " expires_at = now() + make_interval(secs => :ttl),"
            " message = '运行多次中断 stopped without an answer ' || attempts || ' times',"
            " error = jsonb_build_object('status', 500,"
            " 'detail', 'the service stopped while running it ' || attempts || ' times')"
            " WHERE status = 'running' AND lease_until < now() AND attempts >= :max",
            max=MAX_ATTEMPTS,
            ttl=self.settings.job_ttl_s,
        )
        row = await self._execute(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, progress = 10,"
            " lease_until = now() + make_interval(secs => CAST(:lease AS float8)),"
            " started_at = COALESCE(started_at, now()), updated_at = now(), message = '运行中 running'"
            " WHERE id = (SELECT id FROM jobs WHERE (status = 'accepted' OR (status = 'running'"
            " AND lease_until < now())) AND attempts < :max AND expires_at > now()"
            " ORDER BY created_at FOR UPDATE SKIP LOCKED LIMIT 1)"
            " RETURNING id, process_id, inputs, base_url",
            lease=self.lease_s,
            max=MAX_ATTEMPTS,
        )
        if row is None:
            return None
        job_id, process_id, inputs, base = row
        return Claimed(job_id, as_text(process_id), inputs, as_text(base))

    async def _finish(self, job_id: uuid.UUID, status: str, message: str, **values: Any) -> None:
        await self._execute(
            "UPDATE jobs SET status = :status, message = :message, progress = :progress,"
            " results = CAST(:results AS jsonb), error = CAST(:error AS jsonb), finished_at = now(),"
            " updated_at = now(), lease_until = NULL, expires_at = now() + make_interval(secs => :ttl)"
            " WHERE id = :id AND status = 'running'",  # a dismissed job stays dismissed
            id=job_id,
            status=status,
            message=message,
            progress=100 if status == "successful" else 10,
            results=values.get("results"),
            error=values.get("error"),
            ttl=self.settings.job_ttl_s,
        )

    async def _run(self, job: Claimed) -> None:
        started = time.perf_counter()
        process = self.processes.get(job.process_id)
        outcome = "failed"
        try:
            if process is None:
                raise Problem(f"This service no longer offers the process {job.process_id!r}.", status=404)
            prepared = prepare(process, job.inputs, self.catalog, job.base_url)
            answer: Answer = await run(prepared, self.reads, self.answers)
            await self._finish(
                job.id,
                "successful",
                "完成 finished",
                results=answer.document_bytes().decode(),
            )
            outcome = "successful"
        except Problem as exc:
            body = exc.body()
            await self._finish(job.id, "failed", f"失败 failed: {exc.detail}", error=json.dumps(body))
        except DATABASE_ERRORS as exc:
            # the database went away: the job stays running until its lease ends, then is taken again
            log.warning("job %s stopped by the database: %s", job.id, _first_line(exc))
            outcome = "interrupted"
        except Exception:
            log.exception("job %s failed", job.id)
            error = {"status": 500, "detail": "the service failed to run it; this is a bug, please report it"}
            await self._finish(job.id, "failed", "失败 failed: internal error", error=json.dumps(error))
        if self.observe is not None:
            self.observe(job.process_id, "async", outcome, time.perf_counter() - started)

    async def _expire_forever(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(*DATABASE_ERRORS):
                await self._execute("DELETE FROM jobs WHERE expires_at <= now()")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), EXPIRE_EVERY_S)
