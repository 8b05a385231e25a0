"""The client address: the socket peer, or the first untrusted hop of X-Forwarded-For behind trusted
proxies."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from geo_service.security.address import client_address
from geo_service.settings import Settings


def _request(peer: str, forwarded: str | None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 5000), "headers": headers})


PROXIES = Settings.model_validate({"trusted_proxies": "10.0.0.0/8, ::1"}).trusted_proxies


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.5", "198.51.100.1", "203.0.113.5"),  # not from a proxy: the header is ignored
        ("10.0.0.2", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.2", "1.2.3.4, 198.51.100.1, 10.0.0.9", "198.51.100.1"),  # left of the client: its own claim
        ("10.0.0.2", "10.0.0.7, 10.0.0.9", "10.0.0.7"),  # every hop a proxy: the farthest
        ("10.0.0.2", "not-an-ip, 198.51.100.1", "198.51.100.1"),
        ("10.0.0.2", "198.51.100.1, garbage", "10.0.0.2"),  # a proxy passed garbage on: believe the proxy
        ("10.0.0.2", None, "10.0.0.2"),
        ("::1", "2001:db8::5", "2001:db8::5"),
    ],
)
def test_client_address(peer: str, forwarded: str | None, expected: str) -> None:
    """Which address counts as the client's."""
    assert client_address(_request(peer, forwarded), PROXIES) == expected


def test_no_trusted_proxies_means_the_peer() -> None:
    """By default (no proxies named) X-Forwarded-For is never believed."""
    assert client_address(_request("10.0.0.2", "198.51.100.1"), []) == "10.0.0.2"
