"""source_address: the network a request came from, counted from the right of X-Forwarded-For
(docs/security.md row 77)."""

from __future__ import annotations

import pytest

from shared.http import Headers, Request
from shared.source import UNKNOWN, network_key, source_address


def request(*forwarded_for: str) -> Request:
    headers = Headers([("X-Forwarded-For", value) for value in forwarded_for])
    return Request("POST", "https://bridge.test/api/oauth2/token", headers)


def test_the_hop_the_platform_appended_is_the_source():
    assert source_address(request("203.0.113.9:51234")) == "203.0.113.9"


def test_hops_the_caller_wrote_are_ignored():
    spoofed = request("198.51.100.1, 198.51.100.2, 203.0.113.9:51234")
    assert source_address(spoofed) == "203.0.113.9"


def test_with_trusted_proxy_hops_the_hop_they_received_from_is_the_source():
    # caller-written, the client as the gateway saw it, the gateway as the platform saw it
    through_gateway = request("198.51.100.1, 192.0.2.44:4711, 10.1.0.5:5000")
    assert source_address(through_gateway, trusted_hops=1) == "192.0.2.44"
    assert source_address(through_gateway) == "10.1.0.5"


def test_fewer_hops_than_trusted_proxies_falls_back_to_the_platforms_hop():
    # The gateway was bypassed: only the platform's hop is known to be true.
    assert source_address(request("203.0.113.9:51234"), trusted_hops=2) == "203.0.113.9"


def test_repeated_headers_are_one_list_of_hops():
    assert source_address(request("198.51.100.1", "203.0.113.9")) == "203.0.113.9"


def test_no_usable_hop_is_one_shared_unknown_source():
    assert source_address(request()) == UNKNOWN
    assert source_address(request(" , ")) == UNKNOWN
    assert source_address(request("not-an-address")) == UNKNOWN


@pytest.mark.parametrize(
    "hop",
    [
        "2001:db8:1:2::1",
        "[2001:db8:1:2::1]:443",
        "[2001:db8:1:2:ffff:ffff:ffff:ffff]",
        "2001:db8:1:2:abcd::9",
    ],
)
def test_ipv6_sources_are_keyed_by_their_64(hop):
    assert network_key(hop) == "2001:db8:1:2::/64"


def test_other_64s_are_other_sources():
    assert network_key("2001:db8:1:3::1") != network_key("2001:db8:1:2::1")


def test_ipv4_mapped_ipv6_is_the_ipv4_address():
    assert network_key("[::ffff:203.0.113.9]:80") == "203.0.113.9"


@pytest.mark.parametrize("hop", ["unknown", "1.2.3.4.5", "x" * 500, "[::1", "203.0.113.9:80:1"])
def test_what_is_not_an_address_is_unknown(hop):
    assert network_key(hop) == UNKNOWN
