"""Keyset cursors for `next` links: the last id shown plus a fingerprint of the query they belong to."""

from __future__ import annotations

import base64
import hashlib
import json

from geo_service.errors import InvalidParameter


def _digest(fingerprint: str) -> str:
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:16]


def encode_cursor(last_id: int, fingerprint: str) -> str:
    """An opaque, URL-safe token."""
    raw = json.dumps({"after": last_id, "q": _digest(fingerprint)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str | None, fingerprint: str) -> int | None:
    """The id after which the page starts; 400 for a damaged token or one from another query."""
    if token is None:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        after = data["after"]
        query = data["q"]
    except (ValueError, KeyError, TypeError):
        raise InvalidParameter(
            "cursor is not valid: follow the `next` link exactly as the server gave it.", parameter="cursor"
        ) from None
    if not isinstance(after, int) or isinstance(after, bool) or query != _digest(fingerprint):
        raise InvalidParameter(
            "cursor belongs to a different query (collection, bbox or filter changed): "
            "start again from the first page.",
            parameter="cursor",
        )
    return after
