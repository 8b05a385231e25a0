"""Response helpers: JSON bodies with the right media type, ETag / Last-Modified and 304s."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from functools import lru_cache
from typing import Any

from fastapi import Request, Response

GZIP_SUFFIX = "-gzip"  # a compressed body is another representation: its strong ETag must differ


def json_response(
    body: Any, media_type: str, headers: dict[str, str] | None = None, status_code: int = 200
) -> Response:
    """Serialise a small document (the big ones are assembled by PostgreSQL)."""
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(content=content, media_type=media_type, headers=headers, status_code=status_code)


def etag_for(*parts: object) -> str:
    """A strong ETag from the parts that determine a representation (layer version, query, format)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]
    return f'"{digest}"'


@lru_cache(maxsize=4096)
def http_date(moment: datetime) -> str:
    """An HTTP date (`Mon, 23 Nov 2026 08:00:00 GMT`); many features share their layer's load time."""
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


def cache_headers(etag: str, last_modified: datetime | None) -> dict[str, str]:
    """The validators (the caching policy itself is `geo_service.caching`'s: revalidate every time)."""
    headers = {"ETag": etag}
    if last_modified is not None:
        headers["Last-Modified"] = http_date(last_modified)
    return headers


def is_conditional(request: Request) -> bool:
    """Whether the request carries a validator (then the state is read before the work, so that a 304
    costs no body)."""
    headers = request.headers
    return "if-none-match" in headers or "if-modified-since" in headers


def not_modified(request: Request, etag: str, last_modified: datetime | None) -> Response | None:
    """A 304 when the client's copy is current (If-None-Match wins over If-Modified-Since)."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        for tag in (t.strip().removeprefix("W/") for t in if_none_match.split(",")):
            # the client may hold the gzip representation: answer with the tag it holds
            if tag == "*" or tag.replace(GZIP_SUFFIX + '"', '"') == etag:
                held = etag if tag == "*" else tag
                return Response(status_code=304, headers=cache_headers(held, last_modified))
        return None
    since = request.headers.get("if-modified-since")
    if since and last_modified is not None:
        try:
            if last_modified.replace(microsecond=0) <= parsedate_to_datetime(since):
                return Response(status_code=304, headers=cache_headers(etag, last_modified))
        except (TypeError, ValueError):
            return None
    return None


_VERSIONED = re.compile(r'^(?:W/)?"f(\d+)v(\d+)-')


def feature_etag(feature_id: int, version: int, *parts: object) -> str:
    """A feature's ETag: strong per representation, and naming the feature's version in clear, so that
    `If-Match` with the ETag of any representation of the current version matches (Part 4)."""
    return f'"f{feature_id}v{version}-{etag_for(*parts)[1:]}'


def matches_version(if_match: str, feature_id: int, version: int) -> bool:
    """Whether an `If-Match` header names this version of this feature (or is `*`)."""
    for tag in (t.strip() for t in if_match.split(",")):
        if tag == "*":
            return True
        found = _VERSIONED.match(tag)
        if found and int(found.group(1)) == feature_id and int(found.group(2)) == version:
            return True
    return False
