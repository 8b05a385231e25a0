"""Which address a request comes from: the socket peer, or what a trusted proxy says in X-Forwarded-For."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.requests import HTTPConnection

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(request: HTTPConnection, proxies: Sequence[Network]) -> str:
    """The client's address. X-Forwarded-For is believed only when the peer is one of `proxies`, and then
    only as far back as the chain stays within them: the first hop (from the right) that is not a trusted
    proxy is the client. Anything further left was written by the client itself and could be made up."""
    peer = request.client.host if request.client else "unknown"
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for header in request.headers.getlist("x-forwarded-for") for hop in header.split(",")]
    address = peer
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:  # not an address: the proxy that passed it on is the last one we can believe
            return address
        address = hop
        if not _trusted(hop, proxies):
            return hop
    return address
