"""Absolute links: built from the public URL when configured (behind a proxy), else from the request."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request

from geo_service.settings import Settings


def base_url(request: Request, settings: Settings) -> str:
    """Scheme, host and root path that clients use to reach the service, without a trailing slash."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def url(request: Request, settings: Settings, path: str, **query: Any) -> str:
    """An absolute URL of `path` with the given query parameters (None values left out)."""
    params = {k: v for k, v in query.items() if v is not None}
    suffix = "?" + urlencode(params, safe=",:/") if params else ""
    return f"{base_url(request, settings)}{path}{suffix}"


def link(href: str, rel: str, media_type: str, title: str | None = None) -> dict[str, str]:
    """A link object."""
    out = {"href": href, "rel": rel, "type": media_type}
    if title:
        out["title"] = title
    return out
