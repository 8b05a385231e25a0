"""Who may write: a Bearer token of an active key with the needed role (and, for a write, the layer).
Attached to the routes that need it, here.

Refusals (401, 403, 429) go to the audit log. An address that fails to authenticate too often is refused
with 429 before its token is even looked up (`geo_service.security.ratelimit`). Write routes take `editor`,
which also opens the request's audit entry: the route stores its success in the write's transaction
(`geo_service.ops.audit.write_audit`), and a write that fails is recorded with its status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException

from geo_service.editing.keys import Caller, PresentedKey, Role, presented_key
from geo_service.errors import Forbidden, Problem, Unauthorized
from geo_service.ops import audit
from geo_service.security.address import client_address
from geo_service.security.ratelimit import AuthFailures
from geo_service.settings import Settings

NEW_KEY_HINT = "ask an administrator for a new one (`jxplan keys add --name NAME --role editor`)"
WRITE_ACTIONS = {"POST": "create", "PUT": "replace", "PATCH": "update", "DELETE": "delete"}


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer …` header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def write_action(request: Request) -> str:
    """What a write request does, for the audit log."""
    path = request.url.path
    for suffix in ("import", "revert"):
        if path.endswith(f"/{suffix}"):
            return suffix
    return WRITE_ACTIONS.get(request.method, request.method.lower())


def _address(request: Request) -> str:
    settings: Settings = request.app.state.settings
    return client_address(request, settings.trusted_proxies)


async def _refuse(request: Request, problem: Problem, key_name: str | None = None) -> Problem:
    """Record a refused authentication in the audit log; the problem to raise."""
    entry = audit.AuditEntry(
        action="authenticate",
        outcome="refused",
        status=problem.status,
        key_name=key_name,
        collection=request.path_params.get("collection_id"),
        client=_address(request),
        request_id=audit.request_id(request),
        detail=f"{request.method} {request.url.path}: {problem.detail}",
    )
    await audit.record(request.app.state.engine, entry)
    return problem


def _checked(key: PresentedKey | None) -> Caller | Unauthorized:
    """The caller a presented key stands for, or why it does not authenticate."""
    if key is None:
        return Unauthorized(f"This API key is not valid (mistyped, or not issued here); {NEW_KEY_HINT}.")
    if key.revoked_at is not None:
        when = key.revoked_at.isoformat(timespec="seconds")
        return Unauthorized(
            f"The API key {key.caller.name!r} is not valid: it was revoked at {when}; {NEW_KEY_HINT}."
        )
    if key.expired and key.expires_at is not None:
        when = key.expires_at.isoformat(timespec="seconds")
        return Unauthorized(
            f"The API key {key.caller.name!r} is not valid: it expired at {when}; {NEW_KEY_HINT}.",
            expired_at=when,
        )
    return key.caller


async def authenticate(request: Request, role: Role) -> Caller:
    """The caller, or the refusal (429 for an address locked out, 401 without a valid key, 403 for a role
    too low), recorded in the audit log."""
    failures: AuthFailures = request.app.state.auth_failures
    address = _address(request)
    wait = failures.retry_after(address)
    if wait is not None:
        raise await _refuse(request, failures.problem(wait))
    token = bearer_token(request)
    if token is None:
        raise await _refuse(
            request,
            Unauthorized(
                f"{'Writing' if role != 'admin' else 'This'} needs an API key: send it as `Authorization: "
                f"Bearer <token>` (an administrator creates one with `jxplan keys add --name NAME --role "
                f"{'editor' if role == 'reader' else role}`)."
            ),
        )
    engine: AsyncEngine = request.app.state.engine
    async with engine.begin() as conn:
        key = await presented_key(conn, token)
    caller = _checked(key)
    if isinstance(caller, Unauthorized):
        failures.failed(address)  # a token was tried and did not work: counts towards the limit
        raise await _refuse(request, caller, key.caller.name if key is not None else None)
    if not caller.may(role):
        raise await _refuse(
            request,
            Forbidden(f"The key {caller.name!r} has the role {caller.role}; this needs {role}."),
            caller.name,
        )
    return caller


def require(role: Role) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency admitting callers whose key has `role` (or a higher one)."""

    async def dependency(request: Request) -> Caller:
        return await authenticate(request, role)

    return dependency


def _status(exc: Exception) -> int:
    if isinstance(exc, Problem):
        return exc.status
    if isinstance(exc, HTTPException):
        return exc.status_code
    return 500


async def editor(request: Request) -> AsyncIterator[Caller]:
    """The guard of every write route: an editor key allowed to write the path's layer; opens the request's
    audit entry and records the write's failure, if it fails."""
    caller = await authenticate(request, "editor")
    collection = request.path_params.get("collection_id")
    if collection is not None and not caller.may_write(collection):
        allowed = ", ".join(caller.layers or ())
        raise await _refuse(
            request,
            Forbidden(
                f"The key {caller.name!r} may write only to {allowed}, not to {collection}; ask an "
                "administrator for a key for this layer.",
                layers=list(caller.layers or ()),
            ),
            caller.name,
        )
    entry = audit.WriteAudit(
        write_action(request), caller.name, collection, _address(request), audit.request_id(request)
    )
    request.state.write_audit = entry
    try:
        yield caller
    except Exception as exc:
        status = _status(exc)
        outcome = "refused" if status < 500 else "error"
        detail = exc.detail if isinstance(exc, Problem) else type(exc).__name__
        await audit.record(request.app.state.engine, entry.entry(outcome, status, detail=str(detail)))
        raise
    if entry.stored is not None:
        entry.stored.emit()  # committed by now: the route's transaction has ended
    else:  # answered without writing (a dry run)
        await audit.record(
            request.app.state.engine, entry.entry("success", 200, detail="dry run: nothing written")
        )
