"""`create_app(settings)`: the FastAPI application, its lifespan and its error handling."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from geo_service.analysis import routes as analysis_routes
from geo_service.analysis.jobs import JobQueue
from geo_service.analysis.openapi import openapi_paths as analysis_openapi_paths
from geo_service.analysis.processes import AnswerCache, build_processes
from geo_service.caching import install_cache_policy
from geo_service.catalog import Catalog, load_catalog
from geo_service.compression import install_compression
from geo_service.db.engine import async_engine, database_url, read_pool
from geo_service.db.faults import DATABASE_ERRORS, database_problem
from geo_service.db.replicas import ReadAfterWrites, ReplicaRetry, Replicas
from geo_service.editing import history as editing_history
from geo_service.editing import routes as editing_routes
from geo_service.errors import PROBLEM_JSON, Problem
from geo_service.mapview import routes as map_routes
from geo_service.mapview.assets import SETUP_HINT, missing_assets
from geo_service.mapview.static import mount_static
from geo_service.ogc import collections, items, landing, schemas, tiles
from geo_service.ogc.counts import MatchedCounts
from geo_service.ogc.responses import json_response
from geo_service.ogc.tilecache import TileCache
from geo_service.ops import audit_api
from geo_service.ops.install import install_operations
from geo_service.ops.logformat import configure_logging
from geo_service.security.cors import install_cors
from geo_service.security.headers import install_security_headers
from geo_service.security.ratelimit import AuthFailures
from geo_service.settings import Settings, get_settings

log = logging.getLogger("geo_service")


def problem_response(problem: Problem, request: Request) -> Response:
    """Render a problem as `application/problem+json`."""
    body = problem.body(instance=str(request.url.path))
    if request_id := getattr(request.state, "request_id", None):
        body["requestId"] = request_id  # for a planner to quote (geo_service.ops.requestlog)
    response = json_response(body, PROBLEM_JSON, status_code=problem.status)
    response.headers.update(problem.headers)
    return response


def install_error_handlers(app: FastAPI) -> None:
    """One place maps every error to problem details; FastAPI's 422 becomes the 400 OGC requires."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return problem_response(Problem(f"The request is not valid: {reasons}"), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            detail = f"Nothing at {request.url.path}. Start at the landing page / for the links."
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}."
        else:
            detail = str(exc.detail)
        problem = Problem(detail, status=exc.status_code)
        problem.title = {404: "Not found 未找到", 405: "Method not allowed 不允许的方法"}.get(
            exc.status_code, "Error"
        )
        response = problem_response(problem, request)
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        request_id = getattr(request.state, "request_id", None)
        log.exception(
            "unhandled error on %s %s", request.method, request.url.path, extra={"request_id": request_id}
        )
        problem = Problem(
            "The server failed to answer this request. This is a bug; please report it with its requestId.",
            status=500,
        )
        problem.title = "Internal server error 服务器错误"
        response = problem_response(problem, request)
        if request_id:  # answered outside the request observer, which echoes it on every other response
            response.headers["X-Request-Id"] = request_id
        return response

    async def _database(request: Request, exc: Exception) -> Response:
        """A database that cannot answer now is a 503 with Retry-After (geo_service.db.faults)."""
        problem = database_problem(exc, request.method, request.app.state.settings)
        if problem is None:
            return await _bug(request, exc)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning("%s %s answered %d: %s", request.method, request.url.path, problem.status, reason)
        return problem_response(problem, request)

    for kind in DATABASE_ERRORS:
        app.add_exception_handler(kind, _database)


def create_app(settings: Settings | None = None, catalog: Catalog | None = None) -> FastAPI:
    """Build the service: OGC API – Features, maps and their static assets."""
    settings = settings or get_settings()
    catalog = catalog or load_catalog(
        settings.layers_dir, settings.maps_dir, bench_layers=settings.bench_layers
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # map assets: without them the maps are blank, so say so at once
        if missing := missing_assets():
            log.warning("%d map asset files are missing (e.g. %s): %s", len(missing), missing[0], SETUP_HINT)
        # database pools, opened once and closed on shutdown: psycopg's for reads, SQLAlchemy's for writes
        url = database_url(settings)
        app.state.engine = async_engine(url, settings)
        app.state.reads = read_pool(url, settings)
        await app.state.reads.open(wait=False)
        app.state.replicas = Replicas.create(app.state.reads, settings)
        await app.state.replicas.open()
        # asynchronous jobs of the processes, run on the primary (their rows live there)
        app.state.job_connections = read_pool(url, settings, name="jobs", max_size=2)
        await app.state.job_connections.open(wait=False)
        app.state.jobs = JobQueue(
            app.state.engine,
            app.state.reads,
            app.state.job_connections,
            app.state.processes,
            catalog,
            settings,
            observe=app.state.metrics.observe_process,
            answers=app.state.answers,
        )
        app.state.jobs.start()
        try:
            yield
        finally:
            await app.state.jobs.stop()
            await app.state.job_connections.close()
            await app.state.replicas.close()
            await app.state.reads.close()
            await app.state.engine.dispose()

    app = FastAPI(
        title="Jiaxing plan GIS",
        lifespan=lifespan,
        openapi_url=None,  # the OGC OpenAPI document is served at /api
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.catalog = catalog
    app.state.processes = build_processes(catalog)
    app.state.answers = AnswerCache()
    app.state.openapi_paths = analysis_openapi_paths(app.state.processes)
    app.state.matched_counts = MatchedCounts()
    app.state.tile_cache = TileCache(settings.tile_cache_mb * 2**20)
    app.state.auth_failures = AuthFailures(settings.auth_failures, settings.auth_window_s)
    install_error_handlers(app)
    install_compression(app)
    install_cors(app, settings)
    install_security_headers(app)
    install_cache_policy(app)
    app.add_middleware(ReadAfterWrites)
    app.add_middleware(ReplicaRetry)
    # the data routes first: plain routes, matched before the routers (see geo_service.ogc.dependencies)
    app.router.routes[:0] = [*items.routes, *tiles.routes]
    for router in (
        landing.router,
        collections.router,
        schemas.router,
        tiles.router,
        editing_routes.router,
        editing_history.router,
        map_routes.router,
        audit_api.router,
        analysis_routes.router,
    ):
        app.include_router(router)
    mount_static(app)
    install_operations(app, settings)  # last: its middleware must be the outermost
    return app


def worker_app() -> FastAPI:
    """The service in one of the processes of `jxplan serve --workers N` (uvicorn's factory, called in each
    worker): settings from the environment, logging as `jxplan serve` sets it up."""
    settings = get_settings()
    configure_logging(settings)  # a worker is a new (spawned) interpreter: the parent's set-up is not kept
    # and uvicorn's access log off, as `access_log=False` makes it in one process (ours has the request ids)
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
    return create_app(settings)
