"""The audit log: every write request (create, replace, update, delete, import, revert, restore) and every
refused authentication, with the key's name (never its token or hash), the time, the action, the collection,
the feature ids, the outcome and status, the client address and the request's `X-Request-Id`.

Entries go to the `audit_log` table and, as records with `extra=` fields, to the `geo_service.audit` logger.
A write's success entry is stored in the write's own transaction (a write that rolls back leaves no
"success"), and logged once it has committed; a refusal or failure is stored in a transaction of its own.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.requests import HTTPConnection

log = logging.getLogger("geo_service.audit")

MAX_REQUEST_ID = 200
MAX_DETAIL = 1000
SUCCESS_STATUS = {"create": 201, "import": 200}  # the others answer 204

STORE_ENTRY = """
    INSERT INTO audit_log
           (action, outcome, status, key_name, collection, feature_ids, client, request_id, detail)
    VALUES (:action, :outcome, :status, :key_name, :collection, :feature_ids, :client, :request_id, :detail)
"""
READ_ENTRIES = """
    SELECT at, action, outcome, status, key_name, collection, feature_ids, client, request_id, detail
      FROM audit_log WHERE at >= :since ORDER BY at DESC, id DESC LIMIT :limit
"""


@dataclass
class AuditEntry:
    """One line of the audit log."""

    action: str
    outcome: str  # success, refused (a 4xx), error (a 5xx)
    status: int
    key_name: str | None
    collection: str | None
    client: str | None
    request_id: str | None
    feature_ids: list[int] | None = None
    detail: str | None = None

    def params(self) -> dict[str, Any]:
        """The entry as parameters of STORE_ENTRY."""
        return asdict(self) | {"detail": self.detail[:MAX_DETAIL] if self.detail else None}

    def emit(self) -> None:
        """The entry as a record of the `geo_service.audit` logger."""
        level = logging.INFO if self.outcome == "success" else logging.WARNING
        log.log(
            level,
            "%s %s %s (%d) by %s from %s",
            self.action,
            self.collection or "-",
            self.outcome,
            self.status,
            self.key_name or "-",
            self.client or "-",
            extra=asdict(self),
        )


def request_id(request: HTTPConnection) -> str | None:
    """The request's `X-Request-Id`, if it sent one (trimmed to printable text of bounded length)."""
    raw = request.headers.get("x-request-id")
    if not raw:
        return None
    return "".join(ch for ch in raw[:MAX_REQUEST_ID] if ch.isprintable()) or None


async def store(conn: AsyncConnection, entry: AuditEntry) -> None:
    """Store the entry within the caller's transaction."""
    await conn.execute(text(STORE_ENTRY), entry.params())


def store_sync(conn: Connection, entry: AuditEntry) -> None:
    """Store the entry within the caller's transaction (synchronous connections: imports, the CLI)."""
    conn.execute(text(STORE_ENTRY), entry.params())


async def record(engine: AsyncEngine, entry: AuditEntry) -> None:
    """Store the entry in a transaction of its own and log it. When the database cannot take it, the log
    record still says what happened (and that it was not stored): an audit must not turn a 4xx into a 5xx."""
    try:
        async with engine.begin() as conn:
            await store(conn, entry)
    except Exception as exc:  # the database is down or refusing: keep the log record, say so
        entry.detail = f"{entry.detail or ''} [not stored in audit_log: {type(exc).__name__}]".strip()
    entry.emit()


@dataclass
class WriteAudit:
    """The audit of one write request: its success stored in the write's transaction, or its failure."""

    action: str
    key_name: str
    collection: str | None
    client: str
    request_id: str | None
    stored: AuditEntry | None = field(default=None, init=False)

    def entry(self, outcome: str, status: int, **fields: Any) -> AuditEntry:
        """An entry of this request."""
        base: dict[str, Any] = {
            "action": self.action,
            "key_name": self.key_name,
            "collection": self.collection,
            "client": self.client,
            "request_id": self.request_id,
        }
        return AuditEntry(outcome=outcome, status=status, **(base | fields))

    def _success(self, feature_ids: list[int], action: str | None, detail: str | None) -> AuditEntry:
        action = action or self.action
        entry = self.entry("success", SUCCESS_STATUS.get(action, 204), feature_ids=feature_ids, detail=detail)
        entry.action = action
        self.stored = entry
        return entry

    async def written(
        self,
        conn: AsyncConnection,
        feature_ids: list[int],
        action: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Store the success inside the write's transaction (logged once the request is done)."""
        await store(conn, self._success(feature_ids, action, detail))

    def written_sync(self, conn: Connection, feature_ids: list[int], detail: str | None = None) -> None:
        """The same, for writes on a synchronous connection (imports run in a worker thread)."""
        store_sync(conn, self._success(feature_ids, None, detail))


def write_audit(request: HTTPConnection) -> WriteAudit:
    """The audit of this write request, opened by the write guard (`geo_service.editing.auth.editor`)."""
    audit = getattr(request.state, "write_audit", None)
    if not isinstance(audit, WriteAudit):
        raise RuntimeError("a write route runs without the editor guard that opens its audit")
    return audit


def _entry_json(row: Any) -> dict[str, Any]:
    entry = dict(row._mapping)
    entry["at"] = entry["at"].isoformat()
    return entry


async def read_entries(conn: AsyncConnection, since: datetime, limit: int) -> list[dict[str, Any]]:
    """The newest entries since `since`, newest first, as JSON objects."""
    rows = await conn.execute(text(READ_ENTRIES), {"since": since, "limit": limit})
    return [_entry_json(row) for row in rows]


def read_entries_sync(conn: Connection, since: datetime, limit: int) -> list[dict[str, Any]]:
    """The same, on a synchronous connection (`jxplan audit`)."""
    return [_entry_json(row) for row in conn.execute(text(READ_ENTRIES), {"since": since, "limit": limit})]
