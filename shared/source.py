"""Which network a request came from, for per-address limits.

The Python worker is never told the peer address: the Functions host hands it the URL, method,
headers, query, route values and body only (``ToRpcHttp`` in azure-functions-host). What it
does get is ``X-Forwarded-For``, to which the platform's front end appends the address it
accepted the connection from, as the right-most hop (``ip:port``); the dev host does the same.
Every hop to the left of the ones appended by someone we trust was written by the caller.

So the source is counted from the right: the hop the platform appended is the peer; with
``EHRB_TRUSTED_PROXY_HOPS`` = N (a gateway of your own, such as Application Gateway or Front
Door, in front of the app), the N hops appended by those proxies are skipped and the one they
received from is the source. That only holds when the app cannot be reached around the
gateway (restrict inbound access to it); otherwise a caller can write the hops itself.

IPv6 sources are keyed by their /64, the block one subscriber usually holds, so rotating
through addresses of one's own /64 gains nothing. A request with no usable hop gets one shared
key, ``unknown``: limited together rather than not at all.
"""

from __future__ import annotations

import ipaddress

from shared.http import Request

UNKNOWN = "unknown"
IPV6_PREFIX = 64
# Longer than any address with a port and brackets: what is over it is not an address.
_MAX_HOP = 64


def source_address(request: Request, trusted_hops: int = 0) -> str:
    """A key for the network the request came from: ``1.2.3.4``, ``2001:db8::/64``, or unknown."""
    hops = [
        hop.strip()
        for value in request.headers.get_all("X-Forwarded-For")
        for hop in value.split(",")
        if hop.strip()
    ]
    if not hops:
        return UNKNOWN
    index = len(hops) - 1 - trusted_hops
    # Fewer hops than proxies we trust: the request did not come through them, and only the
    # hop the platform appended is known to be true.
    return network_key(hops[index] if index >= 0 else hops[-1])


def network_key(hop: str) -> str:
    """The key of one ``X-Forwarded-For`` hop (with or without a port), or ``unknown``."""
    if len(hop) > _MAX_HOP:
        return UNKNOWN
    host = hop
    if hop.startswith("["):  # [v6]:port or [v6]
        host, bracket, _ = hop[1:].partition("]")
        if not bracket:
            return UNKNOWN
    elif hop.count(":") == 1:  # v4:port
        host = hop.partition(":")[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return UNKNOWN
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        host_bits = (1 << (128 - IPV6_PREFIX)) - 1
        return str(ipaddress.IPv6Network((int(address) & ~host_bits, IPV6_PREFIX)))
    return str(address)
