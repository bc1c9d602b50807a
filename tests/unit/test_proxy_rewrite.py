"""Provider URLs become face URLs in bodies and headers; anything left over is reported (row 52)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.proxy.rewrite import UrlRewriter

PROVIDER = "https://fhir.hospital-a.example/r4"
FACE = "https://bridge.example.com/api/fhir/stu3"


def rewriter(provider: str = PROVIDER, face: str = FACE) -> UrlRewriter:
    return UrlRewriter(provider, face)


def rewrite_json(document: object, provider: str = PROVIDER) -> object:
    return json.loads(rewriter(provider).body(json.dumps(document).encode()))


def searchset(base: str, count: int = 20) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": count,
        "link": [
            {"relation": "self", "url": f"{base}/Observation?patient=123&_count={count}"},
            {"relation": "next", "url": f"{base}?_getpages=abc&_getpagesoffset={count}"},
        ],
        "entry": [
            {
                "fullUrl": f"{base}/Observation/{i}",
                "resource": {
                    "resourceType": "Observation",
                    "id": str(i),
                    "subject": {"reference": f"{base}/Patient/123"},
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                },
            }
            for i in range(count)
        ],
    }


# --- bodies ------------------------------------------------------------------------------------


def test_searchset_links_full_urls_and_references_are_rewritten():
    out = rewrite_json(searchset(PROVIDER, 2))
    assert out == searchset(FACE, 2)


def test_paging_next_link_is_rewritten():
    out = rewrite_json({"link": [{"relation": "next", "url": f"{PROVIDER}?_getpages=x"}]})
    assert out["link"][0]["url"] == f"{FACE}?_getpages=x"


def test_response_locations_in_nested_batch_response_bundles_are_rewritten():
    nested = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": "next", "url": f"{PROVIDER}/Observation?page=2"}],
        "entry": [{"fullUrl": f"{PROVIDER}/Observation/9"}],
    }
    batch = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {"resource": nested, "response": {"status": "200 OK"}},
            {"response": {"status": "201 Created", "location": f"{PROVIDER}/Patient/1/_history/1"}},
        ],
    }
    out = rewrite_json(batch)
    assert out["entry"][0]["resource"]["link"][0]["url"] == f"{FACE}/Observation?page=2"
    assert out["entry"][0]["resource"]["entry"][0]["fullUrl"] == f"{FACE}/Observation/9"
    assert out["entry"][1]["response"]["location"] == f"{FACE}/Patient/1/_history/1"


def test_json_escaped_slashes_are_rewritten():
    body = b'{"fullUrl":"https:\\/\\/fhir.hospital-a.example\\/r4\\/Patient\\/1"}'
    out = rewriter().body(body)
    assert json.loads(out) == {"fullUrl": f"{FACE}/Patient/1"}
    assert not rewriter().leaks(out)


def test_escaped_base_at_the_end_of_a_string_is_rewritten():
    body = b'{"url":"https:\\/\\/fhir.hospital-a.example\\/r4"}'
    assert json.loads(rewriter().body(body)) == {"url": FACE}


@pytest.mark.parametrize("suffix", ["", "/", "/Patient", "?a=1", "#x"])
def test_the_base_is_rewritten_at_every_boundary(suffix):
    assert rewrite_json({"u": PROVIDER + suffix}) == {"u": FACE + suffix}


@pytest.mark.parametrize(
    "value",
    [
        "https://fhir.hospital-a.example/r42/Patient/1",
        "https://fhir.hospital-a.example/r4-old/Patient/1",
        "https://fhir.hospital-a.example/r4.1",
        "https://fhir.hospital-a.example/r4%2F..",
        "https://fhir.hospital-a.example/R4/Patient/1",
        "https://fhir.hospital-a.example.evil.com/r4/Patient/1",
        "https://fhir.hospital-a.examplex/r4/Patient/1",
        "https://fhir.hospital-a.example:8443/r4/Patient/1",
        "https://fhir.hospital-a.example:80/r4/Patient/1",
        "ftp://fhir.hospital-a.example/r4/Patient/1",
    ],
)
def test_lookalikes_of_the_base_are_not_rewritten(value):
    assert rewrite_json({"u": value}) == {"u": value}


def test_a_trailing_slash_on_the_configured_base_changes_nothing():
    assert rewrite_json({"u": f"{PROVIDER}/Patient/1"}, provider=PROVIDER + "/") == {
        "u": f"{FACE}/Patient/1"
    }


@pytest.mark.parametrize(
    "value",
    [
        "HTTPS://FHIR.HOSPITAL-A.EXAMPLE/r4/Patient/1",
        "https://Fhir.Hospital-A.Example/r4/Patient/1",
        "http://fhir.hospital-a.example/r4/Patient/1",
        "https://fhir.hospital-a.example:443/r4/Patient/1",
        "http://fhir.hospital-a.example:80/r4/Patient/1",
    ],
)
def test_scheme_host_case_and_default_ports_are_normalised(value):
    assert rewrite_json({"u": value}) == {"u": f"{FACE}/Patient/1"}


def test_a_base_configured_with_its_default_port_matches_urls_without_it():
    out = rewrite_json(
        {"u": f"{PROVIDER}/Patient/1"}, provider="https://fhir.hospital-a.example:443/r4"
    )
    assert out == {"u": f"{FACE}/Patient/1"}


def test_a_non_default_port_must_match_exactly():
    provider = "http://127.0.0.1:8080/fhir"
    assert rewrite_json({"u": "http://127.0.0.1:8080/fhir/Patient/1"}, provider) == {
        "u": f"{FACE}/Patient/1"
    }
    assert rewrite_json({"u": "http://127.0.0.1/fhir/Patient/1"}, provider) == {
        "u": "http://127.0.0.1/fhir/Patient/1"
    }
    assert rewrite_json({"u": "http://127.0.0.1:8081/fhir/Patient/1"}, provider) == {
        "u": "http://127.0.0.1:8081/fhir/Patient/1"
    }


def test_a_base_without_a_path_is_rewritten_at_the_host_boundary():
    provider = "https://fhir.hospital-a.example"
    assert rewrite_json({"a": f"{provider}/Patient/1", "b": provider}, provider) == {
        "a": f"{FACE}/Patient/1",
        "b": FACE,
    }


def test_urls_inside_narrative_xhtml_are_rewritten():
    div = f'<div xmlns="http://www.w3.org/1999/xhtml"><a href="{PROVIDER}/Patient/1">x</a></div>'
    out = rewrite_json({"text": {"div": div}})
    assert out["text"]["div"] == div.replace(PROVIDER, FACE)


def test_a_body_without_the_provider_host_is_returned_unchanged():
    body = json.dumps(searchset("urn:uuid:x", 3)).encode()
    assert rewriter().body(body) == body


def test_other_bytes_survive_untouched():
    document = {"name": [{"text": 'Zoë \u2028 "quoted" \\ back'}], "u": f"{PROVIDER}/Patient/1"}
    body = json.dumps(document, ensure_ascii=False).encode()
    out = rewriter().body(body)
    assert out == body.replace(PROVIDER.encode(), FACE.encode())


# --- headers -----------------------------------------------------------------------------------


def test_location_header_is_rewritten():
    assert rewriter().header(f"{PROVIDER}/Patient/1/_history/2") == f"{FACE}/Patient/1/_history/2"


def test_link_header_with_several_urls_is_rewritten():
    value = (
        f'<{PROVIDER}/Patient?page=2>; rel="next", <{PROVIDER}/Patient?page=1>; rel="self", '
        f'<{PROVIDER}>; rel="service"'
    )
    assert rewriter().header(value) == (
        f'<{FACE}/Patient?page=2>; rel="next", <{FACE}/Patient?page=1>; rel="self", '
        f'<{FACE}>; rel="service"'
    )


def test_a_relative_header_value_is_left_alone():
    assert rewriter().header("Patient/1/_history/2") == "Patient/1/_history/2"


# --- leaks -------------------------------------------------------------------------------------


def test_a_fully_rewritten_searchset_does_not_leak():
    r = rewriter()
    assert not r.leaks(r.body(json.dumps(searchset(PROVIDER)).encode()))


@pytest.mark.parametrize(
    "value",
    [
        "https://fhir.hospital-a.example/internal/debug",
        "https://fhir.hospital-a.example:8443/r4/Patient/1",
        "https://FHIR.hospital-a.example/other",
        "https://fhir.hospital-a.example/r42/x",
        "https://user@fhir.hospital-a.example/r4/x",
        "see fhir.hospital-a.example.",
        "https://x.example/?next=https%3A%2F%2Ffhir.hospital-a.example%2Fr4",
    ],
)
def test_the_provider_host_in_another_form_is_left_as_is_but_reported(value):
    r = rewriter()
    body = json.dumps({"u": value}).encode()
    assert r.body(body) == body
    assert r.leaks(r.body(body))


@pytest.mark.parametrize(
    "value",
    [
        "https://bridge.fhir.hospital-a.example/x",
        "https://fhir.hospital-a.example2/x",
        "https://notfhir.hospital-a.example/x",
        "http://loinc.org",
    ],
)
def test_other_hosts_that_contain_the_provider_host_are_not_leaks(value):
    assert not rewriter().leaks(json.dumps({"u": value}).encode())


def test_a_face_on_the_same_host_as_the_provider_is_not_a_leak():
    # Local development: the sandbox provider and the dev host both live on 127.0.0.1.
    r = UrlRewriter("http://127.0.0.1:8080/fhir", "http://127.0.0.1:7071/api/fhir/r4")
    out = r.body(b'{"u":"http://127.0.0.1:8080/fhir/Patient/1"}')
    assert out == b'{"u":"http://127.0.0.1:7071/api/fhir/r4/Patient/1"}'
    assert not r.leaks(out)
    assert r.leaks(out + b'"http://127.0.0.1:8080/other"')


# --- construction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "face"),
    [
        ("fhir.example/r4", FACE),
        ("ftp://fhir.example/r4", FACE),
        ("https:///r4", FACE),
        ("https://fhir.example:99999/r4", FACE),
        (PROVIDER, "/api/fhir/stu3"),
        (PROVIDER, 'https://bridge.example.com/"x'),
        (PROVIDER, "https://bridge.example.com/a\\b"),
    ],
)
def test_unusable_bases_are_refused(provider, face):
    with pytest.raises(ValueError):
        UrlRewriter(provider, face)


# --- property ----------------------------------------------------------------------------------

IDS = st.text(alphabet="abcXYZ019-.", min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    ids=st.lists(IDS, min_size=1, max_size=5),
    escaped=st.booleans(),
    upper=st.booleans(),
)
def test_every_provider_url_under_the_base_is_rewritten_and_nothing_leaks(ids, escaped, upper):
    base = PROVIDER.replace("fhir.hospital", "FHIR.Hospital") if upper else PROVIDER
    urls = [f"{base}/Patient/{i}" for i in ids]
    body = json.dumps({"urls": urls, "base": base}).encode()
    if escaped:
        body = body.replace(b"/", b"\\/")
    r = rewriter()
    out = r.body(body)
    assert json.loads(out) == {"urls": [f"{FACE}/Patient/{i}" for i in ids], "base": FACE}
    assert not r.leaks(out)
