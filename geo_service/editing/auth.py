"""Who may write: a Bearer token of a key with the needed role. Attached to write routes only, here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine

from geo_service.editing.keys import Caller, Role, caller_of
from geo_service.errors import Forbidden, Unauthorized


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer …` header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def require(role: Role) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency admitting callers whose key has `role` (or a higher one): 401 without a valid token,
    403 with a token whose role is too low."""

    async def dependency(request: Request) -> Caller:
        token = bearer_token(request)
        if token is None:
            raise Unauthorized(
                "Writing needs an API key: send it as `Authorization: Bearer <token>` "
                "(an administrator creates one with `jxplan keys add --name NAME --role editor`)."
            )
        engine: AsyncEngine = request.app.state.engine
        async with engine.begin() as conn:
            caller = await caller_of(conn, token)
        if caller is None:
            raise Unauthorized("This API key is not valid (mistyped, or revoked); ask for a new one.")
        if not caller.may(role):
            raise Forbidden(f"The key {caller.name!r} has the role {caller.role}; this needs {role}.")
        return caller

    return dependency
