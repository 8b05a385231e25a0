"""Absolute links: built from the public URL when configured (behind a proxy), else from the request."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote_plus

from fastapi import Request

from geo_service.settings import Settings

_SAFE = ",:/"  # left as they are in query values: bbox, CRS URIs and sort keys stay readable


def base_url(request: Request, settings: Settings) -> str:
    """Scheme, host and root path that clients use to reach the service, without a trailing slash."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def query_pairs(**query: Any) -> dict[str, str]:
    """Each parameter as its encoded `name=value` (None values left out), so that a request's links
    encode each value once however many links carry it."""
    return {
        k: f"{quote_plus(k, _SAFE)}={quote_plus(str(v), _SAFE)}" for k, v in query.items() if v is not None
    }


def href(base: str, path: str, pairs: Iterable[str]) -> str:
    """`base` + `path` with the encoded pairs as its query string."""
    query = "&".join(pairs)
    return f"{base}{path}?{query}" if query else f"{base}{path}"


def url(request: Request, settings: Settings, path: str, **query: Any) -> str:
    """An absolute URL of `path` with the given query parameters (None values left out)."""
    return href(base_url(request, settings), path, query_pairs(**query).values())


def link(href: str, rel: str, media_type: str, title: str | None = None) -> dict[str, str]:
    """A link object."""
    out = {"href": href, "rel": rel, "type": media_type}
    if title:
        out["title"] = title
    return out
