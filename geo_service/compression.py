"""Response compression, with an ETag per encoding (a gzip body is another representation)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geo_service.ogc.responses import GZIP_SUFFIX


def accepts_gzip(scope: Scope) -> bool:
    """Whether the request's Accept-Encoding names gzip."""
    for name, value in scope["headers"]:
        if name == b"accept-encoding":
            return b"gzip" in value
    return False


class CompressionMiddleware:
    """gzip (starlette's `GZipMiddleware`) for clients that accept it, marking the ETag of a compressed
    response (`"abc"` → `"abc-gzip"`; conditional requests strip the mark). A request that does not accept
    gzip goes straight to the app: no wrapper per response message. `Vary` is set by the caching policy
    (`geo_service.caching`)."""

    def __init__(self, app: ASGIApp, minimum_size: int, compresslevel: int) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size, compresslevel=compresslevel)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not accepts_gzip(scope):
            await self.app(scope, receive, send)
            return

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                etag = headers.get("etag")
                if etag and headers.get("content-encoding") == "gzip" and etag.endswith('"'):
                    headers["etag"] = etag[:-1] + GZIP_SUFFIX + '"'
            await send(message)

        await self.gzip(scope, receive, send_marked)


def install_compression(app: FastAPI) -> None:
    """gzip for bodies over 1 KiB (JSON compresses ~10×), with encoding-specific ETags."""
    # level 4, not the default 9: JSON shrinks almost as much at a third of the CPU per response
    app.add_middleware(CompressionMiddleware, minimum_size=1024, compresslevel=4)
