"""Security headers: `X-Content-Type-Options: nosniff` and a `Referrer-Policy` on every response, and a
Content-Security-Policy on every HTML page.

Every script, stylesheet, font and image a page uses is served by this service (the maps work offline), so
the policy allows 'self' and nothing else, except the basemap tile hosts a map page offers, in `img-src`
only. The OGC pages have no inline code at all. A map page (Folium) carries inline scripts and styles that
differ per render; `page_response` hashes exactly those blocks into the page's own policy, so that nothing
injected into the page could run. The middleware gives every other HTML response the strict default and
leaves a policy a route has set alone; it touches only the response's headers, once per response.
"""

from __future__ import annotations

import base64
import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Cross-origin requests (basemap tiles) name only this site, as OpenStreetMap's tile policy asks; paths
# (which may hold feature ids and filters) never leave it.
REFERRER_POLICY = "strict-origin-when-cross-origin"
# Shared by every page: nothing but this service, no plugins, no <base> rewriting, forms post here only,
# framed only by this service's own pages (the landing page shows the overview map in a frame).
COMMON = (
    "default-src 'none'",
    "connect-src 'self'",
    "font-src 'self'",
    "frame-src 'self'",
    "frame-ancestors 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "object-src 'none'",
)
# data: images are the stylesheets' own icons (Bootstrap, Geoman) and the pages' empty favicon.
DEFAULT_POLICY = "; ".join((*COMMON, "script-src 'self'", "style-src 'self'", "img-src 'self' data:"))
# leaflet-measure (the maps' measure tool, used by Folium's MeasureControl) compiles its lodash templates
# with `new Function` when it loads: without 'unsafe-eval' the tool, and the script after it, fail. Inline
# scripts stay forbidden (only the hashed ones run), which is what stops injected markup from running.
MAP_SCRIPT_EXTRA = "'unsafe-eval'"
# leaflet-measure hides its panels with setAttribute("style", "display:none;"): exactly that attribute value
# is allowed, by its hash (CSP's 'unsafe-hashes'), and no other inline style.
MEASURE_HIDDEN = "display:none;"

_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\ssrc=)[^>]*>(.*?)</script>", re.IGNORECASE | re.DOTALL)
_INLINE_STYLE = re.compile(rb"<style[^>]*>(.*?)</style>", re.IGNORECASE | re.DOTALL)


RawHeaders = list[tuple[bytes, bytes]]  # an ASGI response's headers


def _hash(block: bytes) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(block).digest()).decode("ascii") + "'"


def page_policy(html: bytes, img_origins: Iterable[str] = ()) -> str:
    """The policy of a page with inline blocks: each inline script and style allowed by its hash, images
    also from `img_origins` (basemap tile servers)."""
    scripts = sorted({_hash(block) for block in _INLINE_SCRIPT.findall(html)})
    styles = sorted({_hash(block) for block in _INLINE_STYLE.findall(html)})
    return "; ".join(
        (
            *COMMON,
            " ".join(("script-src 'self'", MAP_SCRIPT_EXTRA, *scripts)),
            " ".join(("style-src 'self'", *styles)),
            f"style-src-attr 'unsafe-hashes' {_hash(MEASURE_HIDDEN.encode())}",
            " ".join(("img-src 'self' data:", *img_origins)),
        )
    )


def page_response(html: str, img_origins: Iterable[str] = ()) -> HTMLResponse:
    """An HTML response whose policy allows exactly its own inline blocks (see `page_policy`)."""
    body = html.encode("utf-8")
    return HTMLResponse(body, headers={"Content-Security-Policy": page_policy(body, img_origins)})


class ResponseHeaders(ABC):
    """Pure ASGI middleware that changes only the headers at the start of each response (bodies pass
    untouched): subclasses say how, in `rewrite`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @abstractmethod
    def rewrite(self, scope: Scope, headers: RawHeaders, status: int) -> RawHeaders:
        """The headers to send instead of `headers`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_rewritten(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self.rewrite(scope, list(message.get("headers", ())), message["status"])
            await send(message)

        await self.app(scope, receive, send_rewritten)


class SecurityHeaders(ResponseHeaders):
    """Adds the security headers to each response."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        self.always = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", REFERRER_POLICY.encode()),
        ]
        self.html_policy = (b"content-security-policy", DEFAULT_POLICY.encode())

    def rewrite(self, scope: Scope, headers: RawHeaders, status: int) -> RawHeaders:
        names = {name.lower() for name, _ in headers}
        headers.extend(pair for pair in self.always if pair[0] not in names)
        if b"content-security-policy" not in names:
            html = any(n.lower() == b"content-type" and v.startswith(b"text/html") for n, v in headers)
            if html:
                headers.append(self.html_policy)
        return headers


def install_outermost(app: FastAPI, middleware: Callable[[ASGIApp], ASGIApp]) -> None:
    """Wrap the whole stack of `app` in `middleware`, so that it sees every response, the 500s included:
    outside Starlette's error middleware (which `add_middleware` would place it inside)."""
    build = app.build_middleware_stack

    def build_wrapped() -> ASGIApp:
        return middleware(build())

    app.build_middleware_stack = build_wrapped  # type: ignore[method-assign]


def install_security_headers(app: FastAPI) -> None:
    """Add the security headers to every response of `app`, its 500s included."""
    install_outermost(app, SecurityHeaders)
