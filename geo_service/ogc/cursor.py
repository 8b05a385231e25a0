"""Keyset cursors for `next` links: where the last page ended, plus a fingerprint of the query.

The position is the last row's sort values (when `sortby` is given) followed by its id; the next page
starts strictly after it, so page 5,000 costs what page 1 costs.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from geo_service.errors import InvalidParameter
from geo_service.validation import storage_violations


def _digest(fingerprint: str) -> str:
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:16]


def encode_cursor(position: list[Any], fingerprint: str) -> str:
    """An opaque, URL-safe token."""
    raw = json.dumps({"p": position, "q": _digest(fingerprint)}, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _fits(value: Any, kind: str) -> bool:
    if value is None:
        return True
    if kind == "string":
        return isinstance(value, str) and not storage_violations(value, "cursor")  # NUL, lone surrogates
    if kind == "boolean":
        return isinstance(value, bool)
    return isinstance(value, float) or (type(value) is int and abs(value) < 2**63)  # an int binds as bigint


def decode_cursor(token: str | None, fingerprint: str, kinds: tuple[str, ...] = ()) -> list[Any] | None:
    """The position after which the page starts (one value per sort key, of the key's JSON kind, then
    an id); 400 for a damaged token or one from another query."""
    if token is None:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        position = data["p"]
        query = data["q"]
    except (ValueError, KeyError, TypeError):
        raise InvalidParameter(
            "cursor is not valid: follow the `next` link exactly as the server gave it.", parameter="cursor"
        ) from None
    if query != _digest(fingerprint):
        raise InvalidParameter(
            "cursor belongs to a different query (collection, bbox, filter or sortby changed): "
            "start again from the first page.",
            parameter="cursor",
        )
    valid = (
        isinstance(position, list)
        and len(position) == len(kinds) + 1
        and isinstance(position[-1], int)
        and not isinstance(position[-1], bool)
        and abs(position[-1]) < 2**63  # ids are bigint
        and all(_fits(v, k) for v, k in zip(position, kinds, strict=False))
    )
    if not valid:
        raise InvalidParameter(
            "cursor is not valid: follow the `next` link exactly as the server gave it.", parameter="cursor"
        )
    return position
