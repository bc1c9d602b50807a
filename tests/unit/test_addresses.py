"""The provider address policy: every spelling of a refused address is refused (table H)."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from shared.net.addresses import AddressPolicy, AddressRefused, Kind, classify, host_address
from shared.tenants import InvalidTenantInput, validate_provider_url

PRODUCTION = AddressPolicy(allow_local=False)
DEVELOPMENT = AddressPolicy(allow_local=True)

# 169.254.1.1 (link-local) as resolvers also read it.
LINK_LOCAL_SPELLINGS = [
    "http://2851995905/",
    "http://0xa9fe0101/",
    "http://0XA9FE0101/",
    "http://0251.0376.0001.0001/",
    "http://0xa9.0xfe.1.1/",
    "http://169.254.257/",
    "http://169.16646401/",
    "http://169.254.1.1./",
    "http://[::ffff:169.254.1.1]/",
    "http://[::ffff:a9fe:101]/",
    "http://[::169.254.1.1]/",
    "http://[64:ff9b::a9fe:101]/",
    "http://[fe80::1%25eth0]/",
]


@pytest.mark.parametrize("url", LINK_LOCAL_SPELLINGS)
def test_row_100_every_spelling_of_a_link_local_address_is_refused(url):
    with pytest.raises(InvalidTenantInput) as error:
        validate_provider_url(url, "provider_base_url", allow_insecure=True)
    assert error.value.field == "provider_base_url"


@pytest.mark.parametrize(
    "url", ["https://2130706433/", "https://0x7f000001/", "https://0177.1/", "https://127.1/"]
)
def test_row_100_numeric_spellings_of_loopback_need_the_development_setting(url):
    with pytest.raises(InvalidTenantInput):
        validate_provider_url(url, "provider_base_url", allow_insecure=False)
    assert validate_provider_url(url, "provider_base_url", allow_insecure=True) == url.rstrip("/")


@pytest.mark.parametrize(
    "url", ["https://1.2.3.4.5/", "https://256.1.1.1/", "https://0x100000000/", "https://09.1.1.1/"]
)
def test_a_numeric_host_that_is_no_address_is_refused_not_resolved(url):
    with pytest.raises(InvalidTenantInput) as error:
        validate_provider_url(url, "provider_base_url", allow_insecure=True)
    assert "no DNS name or IP address" in str(error.value)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2851995905", "169.254.1.1"),
        ("0xa9fe0101", "169.254.1.1"),
        ("0251.0376.0001.0001", "169.254.1.1"),
        ("127.1", "127.0.0.1"),
        ("10.0.258", "10.0.1.2"),
        ("fhir.example.org", None),
    ],
)
def test_numeric_hosts_are_read_as_resolvers_read_them(host, address):
    found = host_address(host)
    assert (str(found) if found else None) == address


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("169.254.169.254", Kind.NEVER),
        ("168.63.129.16", Kind.NEVER),
        ("0.0.0.0", Kind.NEVER),  # noqa: S104 - classified, never bound
        ("224.0.0.1", Kind.NEVER),
        ("255.255.255.255", Kind.NEVER),
        ("::", Kind.NEVER),
        ("ff02::1", Kind.NEVER),
        ("::ffff:8.8.8.8", Kind.NEVER),
        ("2002:a9fe:101::1", Kind.NEVER),
        ("fd00:ec2::254", Kind.NEVER),
        ("127.0.0.1", Kind.LOOPBACK),
        ("::1", Kind.LOOPBACK),
        ("10.1.2.3", Kind.PRIVATE),
        ("100.64.0.1", Kind.PRIVATE),
        ("fd12::1", Kind.PRIVATE),
        ("20.50.2.1", Kind.PUBLIC),
        ("2603:1020::1", Kind.PUBLIC),
    ],
)
def test_addresses_are_classified(address, kind):
    assert classify(ipaddress.ip_address(address)) is kind


@pytest.mark.parametrize("kind", [Kind.LOOPBACK, Kind.PRIVATE])
def test_production_allows_public_unicast_only(kind):
    assert PRODUCTION.allows(Kind.PUBLIC)
    assert not PRODUCTION.allows(kind)
    assert DEVELOPMENT.allows(kind)


def test_no_setting_allows_special_addresses():
    assert not DEVELOPMENT.allows(Kind.NEVER)


def test_a_name_resolving_to_a_refused_address_is_refused_before_connecting():
    attempts: list[str] = []

    def resolver(host: str, port: int):
        attempts.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, ("169.254.169.254", port))]

    policy = AddressPolicy(allow_local=True, resolver=resolver)
    with pytest.raises(AddressRefused):
        policy.check_resolved("metadata.provider.test", 443)
    with pytest.raises(AddressRefused):
        policy.connect("metadata.provider.test", 443, 0.5)
    assert attempts == ["metadata.provider.test", "metadata.provider.test"]


def test_a_name_with_one_refused_answer_among_others_is_refused_at_validation():
    def resolver(host: str, port: int):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, ("20.50.2.1", port)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, ("fe80::1", port, 0, 2)),
        ]

    with pytest.raises(AddressRefused):
        AddressPolicy(resolver=resolver).check_resolved("fhir.provider.test", 443)


def test_a_name_that_does_not_resolve_yet_passes_validation():
    def resolver(host: str, port: int):
        raise socket.gaierror(socket.EAI_NONAME, "unknown")

    AddressPolicy(resolver=resolver).check_resolved("not-yet.provider.test", 443)
