"""Every request observed once: its request id, its route template, one access-log line and its metrics.

One pure ASGI middleware, outermost, so that it sees every response (refusals by other middleware too). It
adds one wrapper around `send` that notes the status and counts the body bytes; the time of a streamed page
runs until its last byte was handed to the server. No header is parsed beyond two byte comparisons per header.
"""

from __future__ import annotations

import logging
import re
import uuid
from time import perf_counter
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo_service.ops.metrics import RequestMetrics

access_log = logging.getLogger("geo_service.access")

REQUEST_ID_HEADER = b"x-request-id"
SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
UNMATCHED = "unmatched"  # the one label of every path no route knows (bounded cardinality)
MAX_LOGGED = 2048  # characters of a path or a user agent kept in a log line

# query parameters whose value is a credential somewhere (a client putting its key in the URL): never logged
SECRET_PARAMETER = re.compile(
    r"(?i)(?<![^&;])(token|access_token|api_key|apikey|key|password|passwd|secret|tk)=[^&;]*"
)
# route parameters as the OpenAPI document names them (`{collection_id}` → `{collectionId}`)
OPENAPI_NAMES = {"z": "tileMatrix", "row": "tileRow", "col": "tileCol", "tms_id": "tileMatrixSetId"}
PATH_PARAMETER = re.compile(r"{(\w+)(?::\w+)?}")


def request_id_of(given: bytes | None) -> str:
    """The client's `X-Request-Id` when it is sane (≤ 128 of `[A-Za-z0-9._:-]`), else a new one."""
    if given is not None and SANE_REQUEST_ID.fullmatch(given):
        return given.decode("ascii")
    return uuid.uuid4().hex


def logged_path(path: str, query: bytes) -> str:
    """The path and query as logged: credential-like parameters' values replaced, length bounded."""
    if query:
        path = path + "?" + SECRET_PARAMETER.sub(r"\1=REDACTED", query.decode("latin-1"))
    return path if len(path) <= MAX_LOGGED else path[:MAX_LOGGED] + "…"


def _openapi_name(match: re.Match[str]) -> str:
    name = match.group(1)
    head, *rest = name.split("_")
    return "{" + OPENAPI_NAMES.get(name, head + "".join(part.capitalize() for part in rest)) + "}"


def template_label(path: str) -> str:
    """A route's path as a metric label, its parameters named as in the OpenAPI document."""
    return PATH_PARAMETER.sub(_openapi_name, path)


class RouteLabels:
    """The route template of a routed request, from what the router left in the scope: FastAPI's route, or
    for plain routes and mounts (which leave only their endpoint) the route found by that endpoint."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._by_path: dict[str, str] = {}
        self._by_endpoint: dict[Any, str] | None = None

    def of(self, scope: Scope) -> str:
        """The label of the request's route, or `UNMATCHED`."""
        route = scope.get("route")
        if route is not None:
            path = route.path
            label = self._by_path.get(path)
            if label is None:
                label = self._by_path[path] = template_label(path)
            return label
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return UNMATCHED
        if self._by_endpoint is None:
            self._by_endpoint = self._endpoints()
        return self._by_endpoint.get(endpoint, UNMATCHED)

    def _endpoints(self) -> dict[Any, str]:
        found: dict[Any, str] = {}
        for route in self.app.router.routes:
            endpoint = getattr(route, "endpoint", None) or getattr(route, "app", None)
            path = getattr(route, "path", None)
            if endpoint is not None and path is not None and endpoint not in found:
                # a mount answers for everything under it
                suffix = "/{path}" if not hasattr(route, "endpoint") else ""
                found[endpoint] = template_label(path) + suffix
        return found


def _header_text(value: bytes) -> str:
    text = value.decode("latin-1")
    return text if len(text) <= MAX_LOGGED else text[:MAX_LOGGED] + "…"


class RequestObserver:
    """ASGI middleware: `X-Request-Id` accepted or made, echoed and kept as `request.state.request_id`; the
    request counted and timed by route template; one access-log line."""

    def __init__(self, app: ASGIApp, labels: RouteLabels, metrics: RequestMetrics, log: bool) -> None:
        self.app = app
        self.labels = labels
        self.metrics = metrics
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        given = agent = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                given = value
            elif name == b"user-agent":
                agent = value
        request_id = request_id_of(given)
        scope.setdefault("state", {})["request_id"] = request_id
        echoed = (b"x-request-id", request_id.encode("ascii"))
        status = 500  # what the client gets when the app fails before answering
        sent = 0

        async def send_observed(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            elif message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            seconds = perf_counter() - start
            route = self.labels.of(scope)
            self.metrics.observe(scope, route, status, seconds)
            if self.log and access_log.isEnabledFor(logging.INFO):
                self._log(scope, request_id, route, status, seconds, sent, agent)

    @staticmethod
    def _log(
        scope: Scope, request_id: str, route: str, status: int, seconds: float, sent: int, agent: bytes | None
    ) -> None:
        client = scope.get("client")
        fields = {
            "request_id": request_id,
            "method": scope["method"],
            "path": logged_path(scope["path"], scope["query_string"]),
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "bytes": sent,
            "client": client[0] if client else None,
            "user_agent": _header_text(agent) if agent is not None else None,
        }
        message = '%s "%s %s" %d %dB %.1fms %s'
        args = (
            fields["client"],
            fields["method"],
            fields["path"],
            status,
            sent,
            fields["duration_ms"],
            request_id,
        )
        # the record made directly: Logger.info would also walk the stack to find its caller, for nothing
        access_log.handle(
            access_log.makeRecord(
                access_log.name, logging.INFO, __file__, 0, message, args, None, extra=fields
            )
        )
