"""Which addresses a provider (FHIR server, token endpoint, later a JWKS URL) may have.

One policy, used when a tenant mapping is validated and again on every connection
(``shared/net/guard.py``), because the name checked then need not resolve to the same address
later (docs/security.md table H):

- public unicast addresses are always allowed;
- loopback and private ranges (RFC 1918, CGNAT, unique-local, documentation ranges) only with
  the development setting ``EHRB_ALLOW_INSECURE_PROVIDER_URLS``;
- never: unspecified, "this network", link-local (the instance metadata service lives there),
  multicast, broadcast and reserved ranges, the cloud platforms' metadata and host addresses
  (Azure's 168.63.129.16), zone ids, and IPv4 addresses written in IPv6 form (mapped,
  compatible, NAT64, 6to4, Teredo), whatever they embed.

Numeric hosts are read the way resolvers read them (``inet_aton`` and the WHATWG URL standard):
``2851995905``, ``0xa9fe0101``, ``0251.0376.0001.0001`` and ``169.254.257`` are all addresses,
and a host whose last label is a number but that is no valid address is refused, not resolved.
Messages never repeat the address: it is configuration a caller of the proxy must not learn.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (family, type, proto, sockaddr) as socket.getaddrinfo answers, canonname left out.
Answer = tuple[int, int, int, tuple[Any, ...]]
Resolver = Callable[[str, int], Sequence[Answer]]


class AddressRefused(Exception):
    """A host or peer address EHR Bridge never connects to; ``reason`` says which kind."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidHost(ValueError):
    """A host that is neither a DNS name nor an IP address in any form resolvers accept."""


class Kind(enum.Enum):
    """What an address is, as far as connecting to it goes."""

    PUBLIC = "a public address"
    PRIVATE = "a private address"
    LOOPBACK = "a loopback address"
    NEVER = "a link-local, metadata or other special address"


_NEVER = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this network"; connecting to 0.x reaches the local host on Linux
        "169.254.0.0/16",  # link-local: 169.254.169.254 is the instance metadata service
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, with 255.255.255.255
        "168.63.129.16/32",  # Azure's host address (WireServer, platform DNS and probes)
        "100.100.100.200/32",  # another cloud's metadata service
        "192.0.0.192/32",  # another cloud's metadata service
        "::/128",
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
        "fd00:ec2::254/128",  # another cloud's IPv6 metadata service
    )
)
# IPv4 inside IPv6: a way to write a refused IPv4 address that IPv6 range checks do not see.
_EMBEDDED_IPV4 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "::ffff:0:0/96",  # mapped
        "::/96",  # compatible (deprecated)
        "64:ff9b::/96",  # NAT64
        "64:ff9b:1::/48",  # local-use NAT64
        "2002::/16",  # 6to4
        "2001::/32",  # Teredo
    )
)
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_DIGITS = re.compile(r"[0-9]+")
_HEX_NUMBER = re.compile(r"0[xX][0-9a-fA-F]*")


def classify(address: IPAddress) -> Kind:
    """The kind of one address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            return Kind.NEVER
        if address != ipaddress.IPv6Address("::1") and any(
            address in net for net in _EMBEDDED_IPV4
        ):
            return Kind.NEVER
    if any(address.version == net.version and address in net for net in _NEVER):
        return Kind.NEVER
    if any(address.version == net.version and address in net for net in _LOOPBACK):
        return Kind.LOOPBACK
    # is_global is False for RFC 1918, CGNAT, unique-local and the documentation ranges.
    return Kind.PUBLIC if address.is_global else Kind.PRIVATE


def _ends_in_number(labels: list[str]) -> bool:
    last = labels[-1]
    return bool(_DIGITS.fullmatch(last) or _HEX_NUMBER.fullmatch(last))


def _number(part: str) -> int:
    radix = 10
    if part[:2].lower() == "0x":
        radix, part = 16, part[2:]
        if part == "":
            return 0
    elif len(part) > 1 and part.startswith("0"):
        radix, part = 8, part[1:]
    try:
        return int(part, radix) if part and part.isascii() and part.isalnum() else -1
    except ValueError:
        return -1


def _ipv4(labels: list[str]) -> ipaddress.IPv4Address:
    """The address of a numeric host in any resolver form (1 to 4 parts, hex, octal)."""
    if len(labels) > 4 or "" in labels:
        raise InvalidHost("a numeric host that is no IPv4 address")
    numbers = [_number(part) for part in labels]
    if any(n < 0 for n in numbers) or any(n > 255 for n in numbers[:-1]):
        raise InvalidHost("a numeric host that is no IPv4 address")
    if numbers[-1] >= 256 ** (5 - len(numbers)):
        raise InvalidHost("a numeric host that is no IPv4 address")
    value = numbers[-1] + sum(n << (8 * (3 - i)) for i, n in enumerate(numbers[:-1]))
    return ipaddress.IPv4Address(value)


def host_address(host: str) -> IPAddress | None:
    """The address a URL host denotes, or None for a DNS name; InvalidHost for neither."""
    text = host.strip("[]").lower() if host.startswith("[") else host.lower()
    if not text or not text.isascii():
        raise InvalidHost("an empty or non-ASCII host")
    if ":" in text:
        if "%" in text:
            raise InvalidHost("an IPv6 zone id")
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            raise InvalidHost("a malformed IPv6 address") from None
    labels = text.split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()  # one trailing dot: the fully qualified spelling of the same host
    if _ends_in_number(labels):
        return _ipv4(labels)
    if len(text) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidHost("a host that is not a DNS name")
    return None


def is_loopback_name(host: str) -> bool:
    """``localhost`` and names under it, which resolvers answer with loopback (RFC 6761)."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def system_resolver(host: str, port: int) -> list[Answer]:
    """Every TCP address of ``host`` from the system resolver."""
    return [
        (family, kind, proto, sockaddr)
        for family, kind, proto, _, sockaddr in socket.getaddrinfo(
            host, port, socket.AF_UNSPEC, socket.SOCK_STREAM
        )
    ]


@dataclass(frozen=True)
class AddressPolicy:
    """The rule for outbound provider connections; ``allow_local`` is the development setting."""

    allow_local: bool = False
    resolver: Resolver = system_resolver

    def allows(self, kind: Kind) -> bool:
        """True when an address of this kind may be connected to."""
        if kind is Kind.PUBLIC:
            return True
        return self.allow_local and kind in (Kind.PRIVATE, Kind.LOOPBACK)

    def check_address(self, address: IPAddress) -> None:
        """AddressRefused unless the policy allows ``address``."""
        kind = classify(address)
        if not self.allows(kind):
            raise AddressRefused(kind.value)

    def check_host(self, host: str) -> None:
        """Refuse a literal address or a loopback name without resolving anything.

        Raises InvalidHost for a host in no form resolvers accept, AddressRefused for one the
        policy refuses. A DNS name passes: its addresses are checked by ``check_resolved`` and
        at every connection.
        """
        address = host_address(host)
        if address is not None:
            self.check_address(address)
        elif is_loopback_name(host) and not self.allows(Kind.LOOPBACK):
            raise AddressRefused(Kind.LOOPBACK.value)

    def check_resolved(self, host: str, port: int) -> None:
        """Refuse a host any of whose current addresses the policy refuses.

        A name that does not resolve (yet) passes: the connection will fail, and be checked.
        """
        self.check_host(host)
        try:
            answers = self.resolver(host.strip("[]"), port)
        except OSError:
            return
        for answer in answers:
            self.check_address(_peer(answer[3]))

    def connect(
        self,
        host: str,
        port: int,
        timeout: float | None,
        *,
        source_address: tuple[str, int] | None = None,
        socket_options: Sequence[tuple[int, int, Any]] | None = None,
    ) -> socket.socket:
        """A TCP connection to the first allowed address of ``host`` that answers.

        Refused addresses are never tried; the address actually reached (``getpeername``) is
        checked again before the socket is handed back, so nothing is ever sent to a refused
        one. Raises AddressRefused when every address was refused, else the last OSError.
        """
        self.check_host(host)
        refused: AddressRefused | None = None
        error: OSError | None = None
        for family, kind, proto, sockaddr in self.resolver(host.strip("[]"), port):
            try:
                self.check_address(_peer(sockaddr))
            except AddressRefused as refusal:
                refused = refusal
                continue
            sock = socket.socket(family, kind, proto)
            try:
                for level, option, value in socket_options or ():
                    sock.setsockopt(level, option, value)
                sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                self.check_address(_peer(sock.getpeername()))
            except BaseException as failure:
                sock.close()
                if isinstance(failure, OSError):
                    error = failure
                    continue
                raise
            return sock
        if error is not None:
            raise error
        if refused is not None:
            raise refused
        raise OSError("the host has no address")


def _peer(sockaddr: tuple[Any, ...]) -> IPAddress:
    text = str(sockaddr[0])
    scope = sockaddr[3] if len(sockaddr) >= 4 else 0
    address = ipaddress.ip_address(text.split("%", 1)[0])
    if scope or "%" in text:
        # A scoped (zone) address is link-local by construction: refuse it whatever it says.
        return ipaddress.IPv6Address("fe80::1")
    return address
