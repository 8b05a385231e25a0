"""The operator's view wired into an app: `/health`, `/ready`, `/metrics` and the request observer."""

from __future__ import annotations

from fastapi import FastAPI

from geo_service.db.migrate import head_revisions
from geo_service.ops import health, metrics
from geo_service.ops.requestlog import RequestObserver, RouteLabels
from geo_service.settings import Settings


def install_operations(app: FastAPI, settings: Settings) -> None:
    """Health and readiness, metrics, request ids and the access log. Call it after every other middleware
    is added: the observer must be outermost to see (and time) every response."""
    app.state.readiness = health.Readiness(head_revisions())  # the migrations' head, once at start
    app.state.metrics = metrics.request_metrics(app.state)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.add_middleware(
        RequestObserver, labels=RouteLabels(app), metrics=app.state.metrics, log=settings.access_log
    )
