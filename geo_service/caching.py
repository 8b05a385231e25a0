"""How every response may be cached (`Cache-Control`), decided in this one place.

- Data and tiles (landing page, /api, collections, queryables, pages, features, tiles, map pages): a shared
  cache (nginx, a CDN) may store them but must revalidate by ETag every time (`public, no-cache`), so that an
  edit shows at once and a repeated request costs the service at most a 304. They vary by `Accept` (f=…
  negotiation) and `Accept-Encoding` (gzip).
- Requests carrying `Authorization`, writes, errors (problem+json, every status ≥ 400), the operations
  endpoints (/metrics, /ready, /health, /audit) and the jobs of OGC API – Processes (/jobs: they change
  while they run and belong to one client): `private, no-store`, never kept by any cache. A process
  execution is a POST, so never stored; the process list and descriptions are revalidated like data.
- The map pages' static files: with the asset version in the URL (`?v=…`, see `versioned`: a digest of
  the npm lock and of our own files, so it changes whenever they do) they never change,
  `public, max-age=31536000, immutable`; without it (or with an older one) they are revalidated like data.

nginx reads `no-cache` as "do not store" (it has no store-but-revalidate mode), so revalidated responses also
carry `X-Accel-Expires: @1`, an expiry in 1970: nginx stores them already stale and asks the service with
their ETag every time (nginx keeps that header to itself; other caches ignore it). It must come before
`Cache-Control`, which nginx then leaves unread.

The middleware sets the header at the start of each response (bodies pass untouched) and overrides whatever a
route set, so no route can disagree with the policy.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import FastAPI
from starlette.types import Scope

from geo_service import __version__
from geo_service.security.headers import RawHeaders, ResponseHeaders, install_outermost

REVALIDATE = "public, no-cache"
NO_STORE = "private, no-store"
IMMUTABLE = "public, max-age=31536000, immutable"
DATA_VARY = "Accept, Accept-Encoding"
NOT_STORED_PATHS = ("/metrics", "/ready", "/health", "/audit", "/jobs")
STATIC_PREFIX = "/static/"

# what the map pages' static files are made of: the npm lock (vendor tree), our own files, the derivation
MAPVIEW = Path(__file__).resolve().parent / "mapview"
ASSET_SOURCES = (
    MAPVIEW / "assets" / "package-lock.json",
    MAPVIEW / "derived_css.py",
    *sorted((MAPVIEW / "static_files").iterdir()),
)

_CACHE_CONTROL = b"cache-control"
_VARY = b"vary"
_STALE_FOR_NGINX = (b"x-accel-expires", b"@1")


def asset_version() -> str:
    """A short digest of everything the static files are made of (read once, at import)."""
    digest = hashlib.sha256(__version__.encode())
    for source in ASSET_SOURCES:
        digest.update(source.read_bytes() if source.is_file() else source.name.encode())
    return digest.hexdigest()[:12]


ASSET_VERSION = asset_version()
_CURRENT_VERSION = f"v={ASSET_VERSION}".encode()


def versioned(url: str) -> str:
    """A static file's URL carrying the asset version, so that it may be cached for good."""
    return f"{url}?v={ASSET_VERSION}"


def cache_policy(scope: Scope, status: int, content_type: bytes) -> tuple[str, str | None]:
    """The `Cache-Control` of a response, and its `Vary` (None: leave it as the route set it)."""
    method = scope["method"]
    if (
        (method != "GET" and method != "HEAD")
        or status >= 400
        or content_type.startswith(b"application/problem+json")
        or any(name == b"authorization" for name, _ in scope["headers"])
    ):
        return NO_STORE, None
    path: str = scope["path"]
    if path.startswith(NOT_STORED_PATHS):
        return NO_STORE, None
    if path.startswith(STATIC_PREFIX):
        # an older version's URL may now give newer files: only the current one is immutable
        current = scope.get("query_string", b"") == _CURRENT_VERSION
        return (IMMUTABLE if current else REVALIDATE), None
    return REVALIDATE, DATA_VARY


class CachePolicy(ResponseHeaders):
    """Writes `cache_policy` into each response's headers, replacing any `Cache-Control` a route set."""

    def rewrite(self, scope: Scope, headers: RawHeaders, status: int) -> RawHeaders:
        content_type = b""
        varies: RawHeaders = []  # every Vary the routes and middleware set (CORS, compression, …)
        kept = []
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"content-type":
                content_type = value
            if lowered == _VARY:
                varies.append((name, value))
            elif lowered != _CACHE_CONTROL:
                kept.append((name, value))
        control, wanted_vary = cache_policy(scope, status, content_type)
        if control == REVALIDATE:
            kept.insert(0, _STALE_FOR_NGINX)
        kept.append((_CACHE_CONTROL, control.encode()))
        kept.extend([(_VARY, wanted_vary.encode())] if wanted_vary is not None else varies)
        return kept


def install_cache_policy(app: FastAPI) -> None:
    """Apply the policy to every response of `app`, its 500s included."""
    install_outermost(app, CachePolicy)
