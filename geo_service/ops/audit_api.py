"""`GET /audit`: the newest audit entries, for a key with the admin role."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from geo_service.editing.auth import require
from geo_service.editing.keys import Caller
from geo_service.errors import InvalidParameter
from geo_service.ogc.dependencies import get_engine, get_settings
from geo_service.ogc.links import url
from geo_service.ogc.negotiation import JSON
from geo_service.ogc.parameters import reject_unknown
from geo_service.ogc.responses import json_response
from geo_service.ops.audit import read_entries
from geo_service.periods import moment
from geo_service.settings import Settings

router = APIRouter()
admin = require("admin")
DEFAULT_SINCE = "1d"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def audit_window(since: str | None, limit: str | None) -> tuple[datetime, int]:
    """The `since` moment (`1d`, `12h`, an ISO date; default a day ago) and the entry limit (1–1000)."""
    now = datetime.now(UTC)
    try:
        start = moment(since or DEFAULT_SINCE, now, ago=True)
    except ValueError as exc:
        raise InvalidParameter(f"since: {exc}.", parameter="since") from None
    if limit is None:
        return start, DEFAULT_LIMIT
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
        raise InvalidParameter(
            f"limit must be a whole number from 1 to {MAX_LIMIT}; got {limit!r}.", parameter="limit"
        )
    return start, int(limit)


@router.get("/audit", include_in_schema=False)
async def audit_log(
    request: Request,
    caller: Caller = Depends(admin),
    engine: AsyncEngine = Depends(get_engine),
    settings: Settings = Depends(get_settings),
) -> Response:
    """Audit entries since `since`, newest first, at most `limit`."""
    reject_unknown(request.query_params, ["since", "limit"])
    start, limit = audit_window(request.query_params.get("since"), request.query_params.get("limit"))
    async with engine.connect() as conn:
        entries = await read_entries(conn, start, limit)
    body = {
        "since": start.isoformat(timespec="seconds"),
        "numberReturned": len(entries),
        "entries": entries,
        "links": [
            {
                "href": url(request, settings, "/audit", **dict(request.query_params)),
                "rel": "self",
                "type": JSON,
            }
        ],
    }
    return json_response(body, JSON)
