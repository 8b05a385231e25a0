"""Streamed responses that hold a database connection and always give it back, however they end."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Send

from geo_service.db.faults import DATABASE_ERRORS, failure

log = logging.getLogger("geo_service")


class ConnectionStream(StreamingResponse):
    """A response streamed from an async generator over a database connection that `release` gives back.

    However the response ends, the generator is closed and `release` awaited, shielded from cancellation:
    a client that goes away half-way makes the server cancel the response, and without the shield the
    connection would go back only when the generator is garbage-collected, or not at all (a generator
    closed before its first chunk never runs its `finally`).

    A database that fails after the headers went out is too late for a 503: that is logged in one line and
    the response ends without its last chunk, so the client sees an incomplete transfer, never a document
    silently cut short."""

    def __init__(
        self,
        content: AsyncGenerator[bytes],
        release: Callable[[], Awaitable[None]],
        *,
        media_type: str,
        headers: Mapping[str, str],
        what: str,
    ) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self.generator = content
        self.release = release
        self.what = what

    async def stream_response(self, send: Send) -> None:
        """Stream the body; whatever happens, close the generator."""
        try:
            await super().stream_response(send)
        except DATABASE_ERRORS as exc:
            if failure(exc) is None:
                raise
            log.warning(
                "%s: the database failed while streaming (%s); the response is cut short", self.what, exc
            )
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await self.generator.aclose()
                finally:
                    await self.release()
