"""Headers across the FHIR proxy: allow-lists both ways, request ids, JSON-only negotiation.

Cases follow docs/security.md §4 rows 44 (no client credentials upstream), 54
(hop-by-hop), 55 (forwarding and override headers), 57 (upstream headers) and 60 (XML).
"""

from __future__ import annotations

import re

import pytest

from shared.fhir.errors import FhirError, InvalidRequest
from shared.fhir.media import check_content_negotiation, request_id
from shared.http import Headers
from shared.proxy.headers import (
    FORWARDED_REQUEST_HEADERS,
    downstream_response_headers,
    upstream_request_headers,
)

FHIR_JSON = "application/fhir+json"
RID = "req-1"


def upstream(items, *, accept: str = FHIR_JSON, rid: str = RID) -> Headers:
    return upstream_request_headers(Headers(items), request_id=rid, accept=accept)


def names(headers: Headers) -> set[str]:
    return {name.lower() for name, _ in headers.items()}


# --- request side ------------------------------------------------------------------------------


def test_allow_listed_request_headers_are_copied():
    sent = upstream(
        [
            ("Accept", "application/json"),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Prefer", "handling=strict"),
            ("If-None-Match", 'W/"3"'),
            ("If-Modified-Since", "Wed, 21 Oct 2015 07:28:00 GMT"),
        ]
    )
    assert sent.items() == [
        ("Accept", "application/json"),
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Prefer", "handling=strict"),
        ("If-None-Match", 'W/"3"'),
        ("If-Modified-Since", "Wed, 21 Oct 2015 07:28:00 GMT"),
        ("X-Request-Id", RID),
    ]


def test_request_header_names_match_case_insensitively():
    assert upstream([("prefer", "return=minimal")]).get("Prefer") == "return=minimal"


def test_row_44_client_authorization_and_cookie_never_reach_the_provider():
    sent = upstream([("Authorization", "Bearer client-token"), ("Cookie", "session=1")])
    assert names(sent) == {"accept", "x-request-id"}


@pytest.mark.parametrize(
    "header",
    [
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Trailer", "X-Checksum"),
        ("Transfer-Encoding", "chunked"),
        ("Upgrade", "websocket"),
        ("Proxy-Authorization", "Basic eDp5"),
        ("Proxy-Connection", "keep-alive"),
        ("Connection", "keep-alive"),
        ("Content-Length", "42"),
        ("Host", "evil.example"),
    ],
)
def test_row_54_hop_by_hop_and_framing_headers_are_dropped(header):
    assert names(upstream([header])) == {"accept", "x-request-id"}


def test_row_54_headers_named_by_connection_are_dropped():
    sent = upstream([("Connection", "X-Foo, Prefer"), ("X-Foo", "1"), ("Prefer", "return=minimal")])
    assert "x-foo" not in names(sent)
    assert "prefer" not in names(sent)


@pytest.mark.parametrize(
    "header",
    [
        ("X-Forwarded-For", "10.0.0.1"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Proto", "http"),
        ("Forwarded", "for=10.0.0.1;host=evil.example"),
        ("X-Original-URL", "/admin"),
        ("X-Rewrite-URL", "/admin"),
        ("X-HTTP-Method-Override", "DELETE"),
        ("X-Method-Override", "DELETE"),
        ("X-Tenant-Id", "another-tenant"),
    ],
)
def test_row_55_forwarding_and_override_headers_are_dropped(header):
    assert names(upstream([header])) == {"accept", "x-request-id"}


@pytest.mark.parametrize(
    "value",
    [
        "application/json\r\nX-Injected: 1",
        "application/json\nX-Injected: 1",
        "application/json\rX",
        "application/json\x00",
        "application/json\x7f",
    ],
)
def test_row_48_control_characters_in_a_copied_value_are_refused(value):
    with pytest.raises(InvalidRequest):
        upstream([("Accept", value)])


def test_control_characters_in_a_dropped_header_do_not_matter():
    assert names(upstream([("X-Anything", "a\r\nb")])) == {"accept", "x-request-id"}


def test_a_horizontal_tab_is_a_legal_field_character():
    assert upstream([("Prefer", "return=minimal;\thandling=lenient")]).get("Prefer")


def test_conflicting_content_types_are_refused():
    with pytest.raises(InvalidRequest):
        upstream([("Content-Type", "application/json"), ("Content-Type", "application/xml")])


@pytest.mark.parametrize("accept", [None, "*/*", " */* ", "*/*;q=0.8"])
def test_missing_or_wildcard_accept_becomes_the_providers_fhir_json(accept):
    items = [] if accept is None else [("Accept", accept)]
    assert upstream(items, accept="application/json+fhir").get_all("Accept") == [
        "application/json+fhir"
    ]


def test_a_specific_accept_is_kept():
    assert upstream([("Accept", "application/json")]).get_all("Accept") == ["application/json"]


def test_x_request_id_is_set_to_ours_not_the_callers():
    sent = upstream([("X-Request-Id", "callers-id")], rid="ours")
    assert sent.get_all("X-Request-Id") == ["ours"]


def test_an_unsafe_request_id_is_refused():
    with pytest.raises(InvalidRequest):
        upstream([], rid="a\r\nX: 1")


def test_forwarded_request_headers_are_exactly_the_documented_list():
    assert FORWARDED_REQUEST_HEADERS == (
        "Accept",
        "Content-Type",
        "Prefer",
        "If-None-Match",
        "If-Modified-Since",
    )


# --- request ids -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "A.b_c-9", "x" * 128, "0f5d2a52-1b3e-4c1f"])
def test_a_plain_incoming_request_id_is_propagated(value):
    assert request_id(Headers({"X-Request-Id": value})) == value


@pytest.mark.parametrize(
    "value", [None, "", "x" * 129, "a b", "a\r\nb", "<script>", "a/b", "é", "a:b"]
)
def test_a_missing_or_unsafe_request_id_is_replaced_by_a_new_one(value):
    incoming = Headers() if value is None else Headers({"X-Request-Id": value})
    new = request_id(incoming)
    assert new != value
    assert re.fullmatch(r"[0-9a-f]{32}", new)


def test_new_request_ids_differ():
    assert request_id(Headers()) != request_id(Headers())


# --- response side -----------------------------------------------------------------------------


def test_allow_listed_response_headers_are_kept():
    kept = downstream_response_headers(
        Headers(
            [
                ("Content-Type", "application/fhir+json;charset=utf-8"),
                ("ETag", 'W/"2"'),
                ("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT"),
                ("Location", "https://p/fhir/Patient/1/_history/2"),
                ("Content-Location", "https://p/fhir/Patient/1"),
                ("Link", '<https://p/fhir/Patient?page=2>; rel="next"'),
                ("Retry-After", "5"),
                ("X-Request-Id", "abc"),
            ]
        )
    )
    assert names(kept) == {
        "content-type",
        "etag",
        "last-modified",
        "location",
        "content-location",
        "link",
        "retry-after",
        "x-request-id",
        "cache-control",
    }


@pytest.mark.parametrize(
    "header",
    [
        ("Set-Cookie", "sid=1; HttpOnly"),
        ("Server", "Apache/2.4.1"),
        ("X-Powered-By", "HAPI FHIR 5.0"),
        ("Connection", "close"),
        ("Keep-Alive", "timeout=5"),
        ("Transfer-Encoding", "chunked"),
        ("Content-Length", "123"),
        ("Content-Encoding", "gzip"),
        ("Strict-Transport-Security", "max-age=1"),
        ("Proxy-Authenticate", "Basic"),
        ("WWW-Authenticate", 'Bearer realm="provider"'),
        ("Access-Control-Allow-Origin", "*"),
        ("Upgrade", "h2c"),
        ("Trailer", "X"),
        ("Vary", "Cookie"),
        ("Pragma", "public"),
        ("Expires", "Thu, 01 Dec 2094 16:00:00 GMT"),
        ("Age", "100"),
    ],
)
def test_row_57_other_upstream_headers_are_dropped(header):
    assert names(downstream_response_headers(Headers([header]))) == {"cache-control"}


def test_upstream_headers_named_by_connection_are_dropped():
    kept = downstream_response_headers(Headers([("Connection", "ETag"), ("ETag", 'W/"1"')]))
    assert "etag" not in names(kept)


def test_the_providers_cache_control_is_replaced_by_no_store():
    kept = downstream_response_headers(Headers([("Cache-Control", "public, max-age=3600")]))
    assert kept.get_all("Cache-Control") == ["no-store"]


def test_every_proxied_answer_says_no_store():
    assert downstream_response_headers(Headers()).get_all("Cache-Control") == ["no-store"]


def test_an_upstream_value_with_control_characters_is_dropped():
    kept = downstream_response_headers(
        Headers([("Location", "https://p/x\r\nSet-Cookie: a=1"), ("ETag", 'W/"1"')])
    )
    assert "location" not in names(kept)
    assert kept.get("ETag") == 'W/"1"'


def test_an_unsafe_upstream_request_id_is_dropped():
    kept = downstream_response_headers(Headers([("X-Request-Id", "<script>")]))
    assert "x-request-id" not in names(kept)


def test_repeated_link_headers_are_all_kept():
    kept = downstream_response_headers(
        Headers([("Link", "<a>; rel=next"), ("Link", "<b>; rel=self")])
    )
    assert kept.get_all("Link") == ["<a>; rel=next", "<b>; rel=self"]


# --- content negotiation (row 60) --------------------------------------------------------------


@pytest.mark.parametrize(
    "accept",
    [
        "application/fhir+xml",
        "application/xml",
        "text/xml",
        "application/xml+fhir",
        "text/html",
        "application/fhir+json;q=0, application/fhir+xml",
    ],
)
def test_row_60_an_accept_without_json_is_not_acceptable(accept):
    with pytest.raises(FhirError) as caught:
        check_content_negotiation(Headers({"Accept": accept}), "GET")
    assert (caught.value.status, caught.value.code) == (406, "not-supported")


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "*/*",
        "application/*",
        "application/json",
        "application/fhir+json",
        "application/json+fhir",
        "application/fhir+json; fhirVersion=3.0",
        "application/fhir+xml;q=0.9, application/fhir+json",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "APPLICATION/FHIR+JSON",
        "application/json;q=bogus",
    ],
)
def test_accept_with_a_json_or_wildcard_range_is_fine(accept):
    incoming = Headers() if accept is None else Headers({"Accept": accept})
    check_content_negotiation(incoming, "GET")


@pytest.mark.parametrize(
    "content_type",
    [
        "application/fhir+xml",
        "application/xml",
        "text/xml; charset=utf-8",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
    ],
)
def test_row_60_a_body_that_is_not_json_or_a_form_is_unsupported(content_type):
    with pytest.raises(FhirError) as caught:
        check_content_negotiation(Headers({"Content-Type": content_type}), "POST")
    assert (caught.value.status, caught.value.code) == (415, "not-supported")


@pytest.mark.parametrize(
    "content_type",
    [
        "application/fhir+json",
        "application/fhir+json; charset=utf-8",
        "application/json",
        "application/json+fhir;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=utf-8",
    ],
)
def test_json_and_form_bodies_are_accepted(content_type):
    check_content_negotiation(Headers({"Content-Type": content_type}), "POST")


def test_a_body_in_another_charset_is_unsupported():
    with pytest.raises(FhirError) as caught:
        check_content_negotiation(
            Headers({"Content-Type": "application/fhir+json; charset=iso-8859-1"}), "POST"
        )
    assert caught.value.status == 415


def test_content_type_is_not_judged_on_a_get():
    check_content_negotiation(Headers({"Content-Type": "application/xml"}), "GET")


def test_a_post_without_content_type_is_left_to_the_handler():
    check_content_negotiation(Headers(), "POST")
