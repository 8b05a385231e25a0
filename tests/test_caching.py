"""The caching policy's header rewrite on its own (tests/ogc/test_http_cache.py tests it behind nginx)."""

from __future__ import annotations

from typing import Any

from geo_service.caching import NO_STORE, REVALIDATE, CachePolicy


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "query_string": b"", "headers": headers or []}


async def _never(scope: Any, receive: Any, send: Any) -> None:  # the app behind: not called here
    raise AssertionError


def test_a_response_not_stored_keeps_every_vary_it_was_given() -> None:
    """A write answered with several Vary headers (CORS's Origin, compression's Accept-Encoding) keeps all of
    them, and its Cache-Control is replaced by the policy's."""
    policy = CachePolicy(_never)
    given = [
        (b"content-type", b"application/geo+json"),
        (b"vary", b"Origin"),
        (b"cache-control", b"public, max-age=60"),
        (b"vary", b"Accept-Encoding"),
    ]
    headers = policy.rewrite(_scope("PATCH", "/collections/rail_stations/items/1"), list(given), 204)
    assert [v for n, v in headers if n == b"vary"] == [b"Origin", b"Accept-Encoding"]
    assert [v for n, v in headers if n == b"cache-control"] == [NO_STORE.encode()]


def test_data_varies_by_accept_and_encoding_only_once() -> None:
    """A page's own Vary headers give way to the one the policy sets for data."""
    policy = CachePolicy(_never)
    given = [(b"content-type", b"application/geo+json"), (b"vary", b"Accept-Encoding"), (b"vary", b"Accept")]
    headers = policy.rewrite(_scope("GET", "/collections/rail_stations/items"), list(given), 200)
    assert [v for n, v in headers if n == b"vary"] == [b"Accept, Accept-Encoding"]
    assert [v for n, v in headers if n == b"cache-control"] == [REVALIDATE.encode()]
