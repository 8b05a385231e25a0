"""CORS split by method: reads for any origin, writes only for the origins `JXPLAN_CORS_WRITE_ORIGINS` names.

Starlette's CORSMiddleware grants one policy to every method; here GET, HEAD and OPTIONS (and their
preflights) answer `Access-Control-Allow-Origin: *`, so a web map on another origin can read the plan, while a
write's preflight is granted only to a listed origin (echoed, with `Vary: Origin`). No response ever carries
`Access-Control-Allow-Credentials`: keys travel in the Authorization header a page sets itself, which needs no
credentials mode, and cookies are not used. A write from an origin not on the list gets no grant, so the
browser never sends it (its preflight is refused with a 403 problem saying why).

A process execution (`POST /processes/{id}/execution`, geo_service.analysis) asks a question and changes no
feature, so it is granted to any origin as a read is, and so are its job's status and results; dismissing a
job (DELETE) is not.

Reads carry the grant whether or not the request names an Origin, so a cache can give the same response to
every client; the cost on the hot path is two headers added to the start of each response.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo_service.errors import PROBLEM_JSON, Forbidden
from geo_service.settings import Settings

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
EXECUTE_HEADERS = b"Content-Type, Prefer, X-Request-Id"
WRITE_METHODS = "GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE"
WRITE_HEADERS = "Authorization, Content-Type, If-Match, Content-Crs, X-Edit-Comment, X-Request-Id"
# what a page may read of a response beyond the CORS-safelisted headers
EXPOSED = (
    "ETag, Link, Location, Content-Crs, Content-Disposition, Retry-After, WWW-Authenticate, X-Request-Id, "
    "Preference-Applied"
)
MAX_AGE = "600"

READ_GRANT = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-expose-headers", EXPOSED.encode()),
]


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class CorsMiddleware:
    """Pure-ASGI CORS: `*` for reads, the allow-list for writes."""

    def __init__(self, app: ASGIApp, write_origins: Iterable[str]) -> None:
        self.app = app
        self.write_origins = frozenset(origin.encode() for origin in write_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method in ("GET", "HEAD") or (method == "POST" and _is_execution(scope["path"])):
            await self.app(scope, receive, _adding(send, READ_GRANT))
            return
        origin = _header(scope, b"origin")
        if method == "OPTIONS":
            requested = _header(scope, b"access-control-request-method")
            if origin is not None and requested is not None:
                await self._preflight(scope, send, origin, requested.decode("latin-1").upper())
                return
            await self.app(scope, receive, _adding(send, READ_GRANT))
            return
        if origin is not None and origin in self.write_origins:
            grant = [
                (b"access-control-allow-origin", origin),
                (b"access-control-expose-headers", EXPOSED.encode()),
                (b"vary", b"Origin"),
            ]
            await self.app(scope, receive, _adding(send, grant))
            return
        await self.app(scope, receive, _adding(send, [(b"vary", b"Origin")]))

    async def _preflight(self, scope: Scope, send: Send, origin: bytes, requested: str) -> None:
        """Answer a preflight (OPTIONS with Access-Control-Request-Method) without calling the app."""
        if requested == "POST" and _is_execution(scope["path"]):
            headers = [
                (b"access-control-allow-origin", b"*"),
                (b"access-control-allow-methods", b"POST, OPTIONS"),
                (b"access-control-allow-headers", EXECUTE_HEADERS),
                (b"access-control-max-age", MAX_AGE.encode()),
            ]
            await _send(send, 204, headers, b"")
            return
        if requested in READ_METHODS:
            headers = [
                (b"access-control-allow-origin", b"*"),
                (b"access-control-allow-methods", b"GET, HEAD, OPTIONS"),
                (b"access-control-allow-headers", b"*"),
                (b"access-control-max-age", MAX_AGE.encode()),
            ]
            await _send(send, 204, headers, b"")
            return
        if origin in self.write_origins:
            headers = [
                (b"access-control-allow-origin", origin),
                (b"access-control-allow-methods", WRITE_METHODS.encode()),
                (b"access-control-allow-headers", WRITE_HEADERS.encode()),
                (b"access-control-max-age", MAX_AGE.encode()),
                (b"vary", b"Origin"),
            ]
            await _send(send, 204, headers, b"")
            return
        shown = origin.decode("latin-1")
        problem = Forbidden(
            f"Pages from {shown} may read this service but not write to it ({requested}). An administrator "
            "allows an origin to write by adding it to JXPLAN_CORS_WRITE_ORIGINS.",
        )
        body = json.dumps(problem.body(instance=scope["path"]), ensure_ascii=False).encode()
        headers = [(b"content-type", PROBLEM_JSON.encode()), (b"vary", b"Origin")]
        await _send(send, problem.status, headers, body)


def _is_execution(path: str) -> bool:
    """Whether `path` is a process execution (/processes/{processId}/execution)."""
    return path.startswith("/processes/") and path.endswith("/execution") and path.count("/") == 3


def _adding(send: Send, headers: list[tuple[bytes, bytes]]) -> Send:
    """`send` with `headers` appended to the response's start."""

    async def send_with(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *headers]
        await send(message)

    return send_with


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def install_cors(app: FastAPI, settings: Settings) -> None:
    """Reads for any origin, writes for the listed ones."""
    app.add_middleware(CorsMiddleware, write_origins=settings.cors_write_origins)
