"""The FHIR proxy against real HTTP provider servers on 127.0.0.1 (security tables C, D, F).

Every test runs the whole pipeline: a token from the token endpoint, the proxy handler, the
pooled transport, a fake provider that records what it received.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from typing import Any

import pytest

from shared.http import Headers, Request
from shared.ids import provider_secret_name
from shared.secret_store import SecretStoreUnavailable
from shared.services import Services
from shared.tenants import TenantMapping
from tests.conftest import ADMIN_KEY, bearer_token, writer_token
from tools.testkit.fake_fhir import HTML_STACK_TRACE, TOKEN_PATH, closed_port
from tools.testkit.inbound import fhir_request

FHIR_JSON = "application/fhir+json"


def mapped(
    services: Services, client, provider_url: str, version: str = "r4", **fields: Any
) -> TenantMapping:
    mapping = TenantMapping(
        tenant_id=str(uuid.uuid4()),
        provider_base_url=provider_url,
        provider_fhir_version=version,
        allowed_client_ids=(client.client.client_id,),
        **fields,
    )
    return services.tenants.put(mapping)[0]


@pytest.fixture
def provider(fhir_server):
    return fhir_server(version="r4")


@pytest.fixture
def tenant_a(proxy_services, client, provider):
    return mapped(proxy_services, client, provider.base_url)


@pytest.fixture
def token(proxy_services, client, tenant_a):
    return bearer_token(proxy_services, client, tenant_a.tenant_id)


def send(services: Services, method: str, path: str, token: str | None, **kwargs: Any):
    face = kwargs.get("face", "r4")
    return services.proxy.handle(fhir_request(method, path, token, **kwargs), face)


def outcome(response) -> dict:
    document = response.json()
    assert document["resourceType"] == "OperationOutcome"
    return document["issue"][0]


# -- reads and searches pass through -----------------------------------------------------------


def test_read_reaches_the_tenants_provider_and_comes_back_as_fhir(proxy_services, provider, token):
    response = send(proxy_services, "GET", "Patient/example", token)
    assert response.status == 200
    assert response.json()["id"] == "example"
    assert response.headers.get("Content-Type").startswith(FHIR_JSON)
    assert response.headers.get("Cache-Control") == "no-store"
    assert provider.last().path == "/fhir/Patient/example"


def test_callers_authorization_and_cookie_never_reach_the_provider(proxy_services, provider, token):
    send(proxy_services, "GET", "Patient/example", token, headers={"Cookie": "session=abc"})
    received = provider.last()
    assert received.header("Authorization") is None
    assert received.header("Cookie") is None


def test_search_query_passes_byte_for_byte(proxy_services, provider, token):
    query = "patient=example&category=vital-signs&_sort=-date&code=8867-4&code=9279-1&_count=5"
    response = send(proxy_services, "GET", "Observation", token, query=query)
    assert response.status == 200
    assert provider.last().query == query


def test_request_id_is_propagated_and_returned(proxy_services, provider, token):
    response = send(
        proxy_services, "GET", "Patient/example", token, headers={"X-Request-Id": "abc-123"}
    )
    assert response.headers.get("X-Request-Id") == "abc-123"
    assert provider.last().header("X-Request-Id") == "abc-123"


def test_provider_404_outcome_is_passed_on(proxy_services, provider, token):
    response = send(proxy_services, "GET", "Patient/nope", token)
    assert response.status == 404
    assert response.json()["resourceType"] == "OperationOutcome"


# -- response URLs (52) ----------------------------------------------------------------------


def test_paging_links_and_full_urls_point_at_the_face_and_never_the_provider(
    proxy_services, provider, token
):
    response = send(proxy_services, "GET", "Observation", token, query="_count=2")
    body = response.text
    assert provider.origin not in body
    assert "127.0.0.1" not in body
    bundle = response.json()
    next_url = next(link["url"] for link in bundle["link"] if link["relation"] == "next")
    assert next_url.startswith("https://bridge.test/api/fhir/r4/Observation?")
    assert all(e["fullUrl"].startswith("https://bridge.test/api/fhir/r4/") for e in bundle["entry"])


def test_following_the_next_link_through_the_proxy_reaches_page_two(
    proxy_services, provider, token
):
    first = send(proxy_services, "GET", "Observation", token, query="_count=2").json()
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    path_and_query = next_url.split("/api/fhir/r4/", 1)[1]
    path, _, query = path_and_query.partition("?")
    second = send(proxy_services, "GET", path, token, query=query)
    assert second.status == 200
    first_ids = {e["resource"]["id"] for e in first["entry"]}
    second_ids = {e["resource"]["id"] for e in second.json()["entry"]}
    assert first_ids.isdisjoint(second_ids)


def test_location_headers_are_rewritten(proxy_services, provider, client, fhir_server):
    writable = mapped(proxy_services, client, provider.base_url, allow_writes=True)
    token = writer_token(proxy_services, client, writable.tenant_id)
    patient = {"resourceType": "Patient", "name": [{"family": "Black"}]}
    response = send(
        proxy_services,
        "POST",
        "Patient",
        token,
        body=json.dumps(patient).encode(),
        headers={"Content-Type": FHIR_JSON},
    )
    assert response.status == 201
    assert response.headers.get("Location").startswith("https://bridge.test/api/fhir/r4/Patient/")


# -- tenancy (44, 45, 46) ----------------------------------------------------------------------


def test_a_token_for_tenant_a_never_reaches_tenant_b_whatever_the_path(
    proxy_services, client, fhir_server, provider, token
):
    other = fhir_server(version="r4")
    mapped(proxy_services, client, other.base_url)  # tenant B, same client even
    crafted = [
        "Patient/example",
        "Patient/..%2F..%2Fx",
        f"Patient/%2F%2F127.0.0.1:{other.base_url.split(':')[2]}",
        "http://127.0.0.1/fhir/Patient",
        "//127.0.0.1/fhir/Patient",
        "@127.0.0.1/fhir/Patient",
        "Patient/%252e%252e%252f",
        "Patient/..\\..\\x",
    ]
    for path in crafted:
        send(proxy_services, "GET", path, token)
    assert other.count() == 0


@pytest.mark.parametrize("where", ["header", "query", "ms-header"])
def test_naming_another_tenant_is_403_and_nothing_goes_upstream(
    proxy_services, provider, token, where
):
    other = str(uuid.uuid4())
    kwargs: dict[str, Any] = {
        "header": {"headers": {"X-Tenant-Id": other}},
        "ms-header": {"headers": {"X-Ms-Tenant-Id": other}},
        "query": {"query": f"tenant={other}"},
    }[where]
    response = send(proxy_services, "GET", "Patient/example", token, **kwargs)
    assert response.status == 403
    assert outcome(response)["code"] == "forbidden"
    assert provider.count() == 0


def test_naming_the_tokens_own_tenant_is_allowed(proxy_services, provider, token, tenant_a):
    response = send(
        proxy_services,
        "GET",
        "Patient/example",
        token,
        headers={"X-Tenant-Id": tenant_a.tenant_id.upper()},
    )
    assert response.status == 200


def test_tenant_unmapped_after_issuance_is_403_with_no_default_upstream(
    proxy_services, provider, token, tenant_a
):
    proxy_services.tenants.delete(tenant_a.tenant_id)
    proxy_services.lookups.forget()  # the cache TTL has passed
    response = send(proxy_services, "GET", "Patient/example", token)
    assert response.status == 403
    assert "not mapped" in outcome(response)["diagnostics"]
    assert provider.count() == 0


# -- path and query rules through the handler (47, 48, 50, 61) ---------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "Patient/..%2F..%2Fx",
        "Patient/%2e%2e/x",
        "Patient/%252e%252e%252f",
        "Patient/..\\x",
        "http://evil.example/x",
        "/evil.example/x",
        "@evil.example/x",
        "Patient/%00",
        "Patient/a%0d%0aX-Injected:1",
    ],
)
def test_traversal_and_injection_paths_are_400_before_any_upstream_call(
    proxy_services, provider, token, path
):
    response = send(proxy_services, "GET", path, token)
    assert response.status == 400
    assert outcome(response)["code"] == "invalid"
    assert provider.count() == 0
    assert "X-Injected" not in str(response.headers.items())


@pytest.mark.parametrize("path", ["Foo", "Patient/$purge", "Patient/example/$everything"])
def test_unknown_types_and_operations_are_refused_before_upstream(
    proxy_services, provider, token, path
):
    response = send(proxy_services, "GET", path, token)
    assert response.status in (400, 404)
    assert provider.count() == 0


@pytest.mark.parametrize(
    "query",
    [
        "_include=*",
        "_revinclude=*",
        "_count=100000",
        "subject.organization.partof.name=x",
        "_has:Observation:patient:code=1",
        "name=%0d%0aX-Injected:%201",
        "&".join(f"p{i}=1" for i in range(500)),
    ],
)
def test_search_abuse_is_400_before_upstream(proxy_services, provider, token, query):
    response = send(proxy_services, "GET", "Patient", token, query=query)
    assert response.status == 400
    assert provider.count() == 0


def test_parameter_in_both_query_and_body_is_400(proxy_services, provider, token):
    response = send(
        proxy_services,
        "POST",
        "Patient/_search",
        token,
        query="family=black",
        body=b"family=white",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 400
    assert provider.count() == 0


# -- hygiene (54, 55, 57, 58, 59, 60, 62) ------------------------------------------------------


def test_hop_by_hop_and_forwarding_headers_never_reach_the_provider(
    proxy_services, provider, token
):
    send(
        proxy_services,
        "GET",
        "Patient/example",
        token,
        headers=[
            ("Connection", "X-Foo"),
            ("X-Foo", "1"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Upgrade", "websocket"),
            ("Proxy-Authorization", "Basic eA=="),
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-Host", "evil.example"),
            ("Forwarded", "host=evil.example"),
            ("X-Original-URL", "/admin"),
            ("X-HTTP-Method-Override", "DELETE"),
        ],
    )
    received = provider.last()
    assert received.method == "GET"
    for name in (
        "X-Foo",
        "Keep-Alive",
        "TE",
        "Upgrade",
        "Proxy-Authorization",
        "X-Forwarded-For",
        "X-Forwarded-Host",
        "Forwarded",
        "X-Original-URL",
        "X-HTTP-Method-Override",
    ):
        assert received.header(name) is None, name


def test_provider_cookies_server_and_caching_headers_are_stripped(proxy_services, provider, token):
    provider.extra_headers(
        {
            "Set-Cookie": "JSESSIONID=1",
            "Server": "Tomcat/9",
            "X-Powered-By": "Servlet",
            "Cache-Control": "public, max-age=3600",
        }
    )
    response = send(proxy_services, "GET", "Patient/example", token)
    names = {name.lower() for name, _ in response.headers.items()}
    assert not names & {"set-cookie", "server", "x-powered-by"}
    assert response.headers.get("Cache-Control") == "no-store"


def test_provider_refusing_our_credentials_is_502_and_an_alert(
    proxy_services, provider, token, caplog
):
    provider.fail(401, times=5)
    caplog.set_level(logging.WARNING)
    response = send(proxy_services, "GET", "Patient/example", token)
    assert response.status == 502
    assert "ALERT" in caplog.text


def test_body_over_the_cap_is_413_before_upstream(make_services, client, fhir_server):
    services = make_services(allow_insecure_provider_urls=True, max_request_body_bytes=1000)
    server = fhir_server(version="r4")
    tenant = mapped(services, client, server.base_url)
    token = bearer_token(services, client, tenant.tenant_id)
    response = send(
        services,
        "POST",
        "Patient/_search",
        token,
        body=b"family=" + b"x" * 2000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 413
    assert outcome(response)["code"] == "too-long"
    assert server.count() == 0


def test_url_over_4kb_is_414_before_upstream(proxy_services, provider, token):
    response = send(proxy_services, "GET", "Patient", token, query="name=" + "x" * 5000)
    assert response.status == 414
    assert provider.count() == 0


@pytest.mark.parametrize(
    "body",
    [b"[" * 50_000 + b"]" * 50_000, b'{"resourceType":"Bundle","total":' + b"9" * 5000 + b"}"],
)
def test_json_bombs_in_a_batch_are_400_structure(proxy_services, provider, token, body):
    response = send(
        proxy_services, "POST", "", token, body=body, headers={"Content-Type": FHIR_JSON}
    )
    assert response.status == 400
    assert outcome(response)["code"] == "structure"
    assert provider.count() == 0


def test_xml_body_is_415_and_xml_accept_is_406(proxy_services, provider, token):
    xml = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    posted = send(
        proxy_services,
        "POST",
        "",
        token,
        body=xml,
        headers={"Content-Type": "application/fhir+xml"},
    )
    assert posted.status == 415
    read = send(
        proxy_services, "GET", "Patient/example", token, headers={"Accept": "application/fhir+xml"}
    )
    assert read.status == 406
    assert provider.count() == 0


def test_provider_500_with_a_stack_trace_is_a_sanitized_502_with_correlation_id(
    proxy_services, provider, token
):
    provider.fail(500, body=HTML_STACK_TRACE, content_type="text/html", times=3)
    response = send(
        proxy_services, "GET", "Patient/example", token, headers={"X-Request-Id": "corr-1"}
    )
    assert response.status == 502
    issue = outcome(response)
    assert "corr-1" in issue["diagnostics"]
    for leak in ("NullPointerException", "hospital.internal", "Tomcat", "svc_fhir"):
        assert leak not in response.text


def test_provider_4xx_that_is_not_fhir_is_wrapped_in_an_outcome(proxy_services, provider, token):
    provider.fail(400, body="<html>bad request</html>", content_type="text/html")
    response = send(proxy_services, "GET", "Patient/example", token)
    assert response.status == 400
    assert "<html>" not in response.text
    assert outcome(response)["code"] == "processing"


# -- methods (43) -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_writes_are_405_with_allow_unless_the_tenant_allows_them(
    proxy_services, provider, token, method
):
    response = send(
        proxy_services,
        method,
        "Patient/example",
        token,
        body=b"{}",
        headers={"Content-Type": FHIR_JSON},
    )
    assert response.status == 405
    assert response.headers.get("Allow") == "GET, POST"
    assert outcome(response)["code"] == "not-supported"
    assert provider.count() == 0


def test_post_of_a_resource_is_405_when_read_only(proxy_services, provider, token):
    response = send(
        proxy_services,
        "POST",
        "Patient",
        token,
        body=b'{"resourceType":"Patient"}',
        headers={"Content-Type": FHIR_JSON},
    )
    assert response.status == 405


# -- batch (51) and the Patients app's load -----------------------------------------------------


def batch(*urls: str, kind: str = "batch") -> bytes:
    return json.dumps(
        {
            "resourceType": "Bundle",
            "type": kind,
            "entry": [{"request": {"method": "GET", "url": url}} for url in urls],
        }
    ).encode()


APP_BATCH = (
    "Observation?patient=example&category=vital-signs&_sort=-date",
    "Condition?patient=example&_count=10",
    "Encounter?patient=example&_sort=-date&_count=1",
    "AllergyIntolerance?patient=example",
    "MedicationRequest?patient=example&_count=10",
    "Coverage?patient=example",
)


def test_batch_is_forwarded_to_a_provider_that_supports_it(proxy_services, provider, token):
    response = send(
        proxy_services,
        "POST",
        "",
        token,
        body=batch(*APP_BATCH),
        headers={"Content-Type": FHIR_JSON},
    )
    assert response.status == 200
    bundle = response.json()
    assert bundle["type"] == "batch-response"
    assert len(bundle["entry"]) == len(APP_BATCH)
    assert provider.count(method="POST") == 1
    assert provider.origin not in response.text


def test_provider_refusing_batch_gets_the_entries_run_by_the_proxy_in_order(
    proxy_services, client, fhir_server
):
    refusing = fhir_server(version="r4", capabilities={"batch": False})
    tenant = mapped(proxy_services, client, refusing.base_url)
    token = bearer_token(proxy_services, client, tenant.tenant_id)
    urls = ("Patient/example", "Patient/missing", "Condition?patient=example")
    response = send(
        proxy_services, "POST", "", token, body=batch(*urls), headers={"Content-Type": FHIR_JSON}
    )
    assert response.status == 200
    entries = response.json()["entry"]
    assert [e["response"]["status"].split()[0] for e in entries] == ["200", "404", "200"]
    assert entries[0]["resource"]["id"] == "example"
    assert entries[2]["resource"]["type"] == "searchset"
    assert refusing.origin not in response.text


def test_mapping_saying_no_batch_skips_the_providers_batch_endpoint(
    proxy_services, client, provider
):
    tenant = mapped(proxy_services, client, provider.base_url, capabilities={"batch": False})
    token = bearer_token(proxy_services, client, tenant.tenant_id)
    send(
        proxy_services,
        "POST",
        "",
        token,
        body=batch("Patient/example"),
        headers={"Content-Type": FHIR_JSON},
    )
    assert provider.count(method="POST") == 0
    assert provider.count(method="GET") == 1


@pytest.mark.parametrize(
    "body",
    [
        batch("http://evil.example/Patient/1"),
        batch("Patient/../../admin"),
        batch("Patient/1", kind="transaction"),
        batch(*["Patient/example"] * 51),
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "batch",
                "entry": [{"request": {"method": "DELETE", "url": "Patient/example"}}],
            }
        ).encode(),
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "batch",
                "entry": [
                    {
                        "fullUrl": "http://evil.example/x",
                        "request": {"method": "GET", "url": "Patient/1"},
                    }
                ],
            }
        ).encode(),
    ],
)
def test_bad_batches_are_refused_and_nothing_is_forwarded(proxy_services, provider, token, body):
    response = send(
        proxy_services, "POST", "", token, body=body, headers={"Content-Type": FHIR_JSON}
    )
    assert response.status in (400, 405)
    assert provider.count() == 0


# -- providers as they are ----------------------------------------------------------------------


def test_post_search_goes_upstream_as_post_when_the_provider_takes_it(
    proxy_services, provider, token
):
    response = send(
        proxy_services,
        "POST",
        "Patient/_search",
        token,
        body=b"given=peter&family=chalmers",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 200
    assert response.json()["total"] >= 0
    received = provider.last()
    assert (received.method, received.path, received.body) == (
        "POST",
        "/fhir/Patient/_search",
        b"given=peter&family=chalmers",
    )


def test_post_search_becomes_a_get_for_a_provider_that_refuses_it(
    proxy_services, client, fhir_server
):
    no_post = fhir_server(version="r4", capabilities={"post_search": False})
    tenant = mapped(proxy_services, client, no_post.base_url)
    token = bearer_token(proxy_services, client, tenant.tenant_id)
    response = send(
        proxy_services,
        "POST",
        "Patient/_search",
        token,
        body=b"family:contains=chal&_count=5",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 200
    received = no_post.last()
    assert (received.method, received.path, received.query) == (
        "GET",
        "/fhir/Patient",
        "family:contains=chal&_count=5",
    )


def test_mapping_saying_no_post_search_sends_get_straight_away(proxy_services, client, provider):
    tenant = mapped(proxy_services, client, provider.base_url, capabilities={"post_search": False})
    token = bearer_token(proxy_services, client, tenant.tenant_id)
    send(
        proxy_services,
        "POST",
        "Patient/_search",
        token,
        body=b"identifier=12345",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert [r.method for r in provider.requests()] == ["GET"]


def observations(server, count: int) -> None:
    for day in range(count):
        server.add(
            {
                "resourceType": "Observation",
                "id": f"hr-{day}",
                "status": "final",
                "category": [{"coding": [{"code": "vital-signs"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                "subject": {"reference": "Patient/sorted"},
                "effectiveDateTime": f"2026-{1 + day % 12:02d}-{1 + day % 28:02d}T08:00:00Z",
                "valueQuantity": {"value": 60 + day, "unit": "/min"},
            }
        )


def test_provider_that_cannot_sort_gets_the_latest_first_from_the_proxy(
    proxy_services, client, fhir_server
):
    unsorted = fhir_server(version="r4", capabilities={"sort": False})
    observations(unsorted, 30)
    tenant = mapped(proxy_services, client, unsorted.base_url, capabilities={"sort_by_date": False})
    token = bearer_token(proxy_services, client, tenant.tenant_id)
    response = send(
        proxy_services,
        "GET",
        "Observation",
        token,
        query="patient=sorted&category=vital-signs&_sort=-date&_count=5",
    )
    assert response.status == 200
    bundle = response.json()
    dates = [e["resource"]["effectiveDateTime"] for e in bundle["entry"]]
    assert len(dates) == 5
    assert dates == sorted(dates, reverse=True)
    all_dates = sorted(
        (
            r["effectiveDateTime"]
            for r in unsorted.resources("Observation")
            if r["subject"]["reference"] == "Patient/sorted"
        ),
        reverse=True,
    )
    assert dates == all_dates[:5]
    assert all("_sort" not in r.query for r in unsorted.requests())


def test_sorting_compensation_warns_when_the_cap_is_hit(make_services, client, fhir_server):
    services = make_services(allow_insecure_provider_urls=True, sort_compensation_cap=10)
    unsorted = fhir_server(version="r4", capabilities={"sort": False}, default_page_size=4)
    observations(unsorted, 30)
    tenant = mapped(services, client, unsorted.base_url, capabilities={"sort_by_date": False})
    token = bearer_token(services, client, tenant.tenant_id)
    response = send(services, "GET", "Observation", token, query="patient=sorted&_sort=-date")
    entries = response.json()["entry"]
    warning = [e for e in entries if e["search"]["mode"] == "outcome"]
    assert warning and warning[0]["resource"]["issue"][0]["severity"] == "warning"
    assert len([e for e in entries if e["search"]["mode"] == "match"]) == 10


def test_one_batch_makes_at_most_the_requests_budget_of_provider_calls(
    make_services, client, fhir_server
):
    """Row 81: entries and sort compensation share one budget; what is left over is refused."""
    services = make_services(allow_insecure_provider_urls=True, request_upstream_calls=6)
    unsorted = fhir_server(
        version="r4", capabilities={"sort": False, "batch": False}, max_page_size=2
    )
    observations(unsorted, 30)
    caps = {"sort_by_date": False, "batch": False}
    tenant = mapped(services, client, unsorted.base_url, capabilities=caps)
    token = bearer_token(services, client, tenant.tenant_id)
    before = unsorted.count()
    body = batch(*["Observation?patient=sorted&_sort=-date"] * 10)
    response = send(services, "POST", "", token, body=body, headers={"Content-Type": FHIR_JSON})
    assert response.status == 200
    assert unsorted.count() - before <= 6  # without a budget: 10 entries x 15 pages
    entries = response.json()["entry"]
    statuses = [e["response"]["status"].split()[0] for e in entries]
    assert sorted(statuses) == ["200"] * 6 + ["400"] * 4
    for entry in entries:
        if entry["response"]["status"].startswith("400"):
            assert entry["resource"]["issue"][0]["code"] == "too-costly"
        else:  # answered from the first page only, and says so
            modes = [x["search"]["mode"] for x in entry["resource"]["entry"]]
            assert "outcome" in modes


def test_filling_displays_stops_at_the_requests_budget_with_a_warning(
    make_services, client, fhir_server
):
    """Row 81: enrichment draws on the same budget and says what it could not fill."""
    services = make_services(allow_insecure_provider_urls=True, request_upstream_calls=5)
    provider = fhir_server(version="r4", capabilities={"batch": False})
    for n in range(20):
        provider.add({"resourceType": "Location", "id": f"ward-{n}", "name": f"Ward {n}"})
        provider.add(
            {
                "resourceType": "Encounter",
                "id": f"stay-{n}",
                "status": "finished",
                "class": {"code": "IMP"},
                "subject": {"reference": "Patient/budget"},
                "location": [{"location": {"reference": f"Location/ward-{n}"}}],
            }
        )
    tenant = mapped(services, client, provider.base_url, capabilities={"batch": False})
    token = bearer_token(services, client, tenant.tenant_id)
    before = provider.count()
    response = send(services, "GET", "Encounter", token, query="patient=budget&_count=50")
    assert response.status == 200
    assert provider.count() - before <= 5  # the search and four reads, not twenty-one calls
    entries = response.json()["entry"]
    warnings = [e for e in entries if e["search"]["mode"] == "outcome"]
    assert warnings and warnings[0]["resource"]["issue"][0]["severity"] == "warning"


def test_a_page_that_is_not_json_while_sorting_for_the_provider_is_a_502(
    proxy_services, client, fhir_server
):
    unsorted = fhir_server(version="r4", capabilities={"sort": False})
    tenant = mapped(proxy_services, client, unsorted.base_url, capabilities={"sort_by_date": False})
    token = bearer_token(proxy_services, client, tenant.tenant_id)
    unsorted.fail(200, "[" * 20_000, "application/fhir+json")
    response = send(proxy_services, "GET", "Observation", token, query="patient=x&_sort=-date")
    assert response.status == 502


def test_a_page_that_is_json_but_no_object_while_sorting_for_the_provider_is_a_502(
    proxy_services, client, fhir_server
):
    unsorted = fhir_server(version="r4", capabilities={"sort": False})
    tenant = mapped(proxy_services, client, unsorted.base_url, capabilities={"sort_by_date": False})
    token = bearer_token(proxy_services, client, tenant.tenant_id)
    unsorted.fail(200, '["resourceType"]', "application/fhir+json")
    response = send(proxy_services, "GET", "Observation", token, query="patient=x&_sort=-date")
    assert response.status == 502
    assert outcome(response)["code"] == "exception"


@pytest.mark.parametrize(
    "page",
    [
        '{"resourceType":"Bundle","type":"searchset","entry":["Observation/1"]}',
        '{"resourceType":"Bundle","type":"searchset","entry":{"resource":{}}}',
    ],
)
def test_a_page_whose_entries_are_not_objects_while_sorting_for_the_provider_is_a_502(
    proxy_services, client, fhir_server, page
):
    unsorted = fhir_server(version="r4", capabilities={"sort": False})
    tenant = mapped(proxy_services, client, unsorted.base_url, capabilities={"sort_by_date": False})
    token = bearer_token(proxy_services, client, tenant.tenant_id)
    unsorted.fail(200, page, "application/fhir+json")
    response = send(proxy_services, "GET", "Observation", token, query="patient=x&_sort=-date")
    assert response.status == 502
    assert outcome(response)["code"] == "exception"


def test_slow_provider_is_504(proxy_services, provider, token):
    provider.slow(3)
    response = send(proxy_services, "GET", "Patient/example", token)
    assert response.status == 504
    assert outcome(response)["code"] == "timeout"


def test_refused_connection_is_502_after_one_retry(proxy_services, client):
    tenant = mapped(proxy_services, client, f"http://127.0.0.1:{closed_port()}/fhir")
    token = bearer_token(proxy_services, client, tenant.tenant_id)
    response = send(proxy_services, "GET", "Patient/example", token)
    assert response.status == 502
    assert "127.0.0.1" not in response.text


def test_garbage_from_the_provider_is_502(proxy_services, provider, token):
    provider.garbage()
    assert send(proxy_services, "GET", "Patient/example", token).status == 502


def test_redirect_is_502_and_not_followed(proxy_services, provider, token, fhir_server):
    elsewhere = fhir_server(version="r4")
    provider.redirect(f"{elsewhere.base_url}/Patient/example")
    response = send(proxy_services, "GET", "Patient/example", token)
    assert response.status == 502
    assert elsewhere.count() == 0


def test_repeated_failures_open_the_circuit_with_retry_after(proxy_services, provider, token):
    provider.fail(503, times=50)
    statuses = [send(proxy_services, "GET", "Patient/example", token).status for _ in range(7)]
    assert statuses[-1] == 503
    last = send(proxy_services, "GET", "Patient/example", token)
    assert last.status == 503
    assert int(last.headers.get("Retry-After")) >= 1
    seen = provider.count()
    send(proxy_services, "GET", "Patient/example", token)
    assert provider.count() == seen  # open: nothing reaches the provider


class ProviderSecretsDown:
    """A secret store that answers for everything but the provider credentials."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)

        def call(secret_name: str, *args: Any, **kwargs: Any) -> Any:
            if secret_name.startswith("provider-"):
                raise SecretStoreUnavailable("down", retry_after=4)
            return target(secret_name, *args, **kwargs)

        return call


def test_key_vault_down_for_the_provider_secret_is_503(
    make_services, client, fhir_server, secret_store, table_service
):
    healthy = make_services(allow_insecure_provider_urls=True)
    server = fhir_server(version="r4", require_bearer=True)
    tenant = mapped(healthy, client, server.base_url, provider_auth_kind="bearer")
    token = bearer_token(healthy, client, tenant.tenant_id)
    broken = Services(
        healthy.settings,
        secret_store=ProviderSecretsDown(secret_store),
        table_service=table_service,
    )
    response = send(broken, "GET", "Patient/example", token)
    assert response.status == 503
    assert response.headers.get("Retry-After") == "4"
    assert outcome(response)["code"] == "transient"
    assert server.count() == 0


# -- provider auth ------------------------------------------------------------------------------


def test_client_credentials_provider_gets_its_own_token_and_never_ours(
    proxy_services, client, fhir_server, secret_store
):
    server = fhir_server(version="r4", require_bearer=True)
    server.issue_tokens("bridge", "provider-secret", expires_in=3600)
    tenant = mapped(
        proxy_services,
        client,
        server.base_url,
        provider_auth_kind="client_credentials",
        provider_token_url=server.token_url,
        provider_client_id="bridge",
    )
    secret_store.set_secret(provider_secret_name(tenant.tenant_id), "provider-secret")
    token = bearer_token(proxy_services, client, tenant.tenant_id)
    for _ in range(3):
        assert send(proxy_services, "GET", "Patient/example", token).status == 200
    assert server.token_requests() == 1
    assert all(r.bearer != token for r in server.requests())


def test_provider_rotating_its_tokens_is_refreshed_once_and_retried(
    proxy_services, client, fhir_server, secret_store
):
    server = fhir_server(version="r4", require_bearer=True)
    server.issue_tokens("bridge", "provider-secret")
    tenant = mapped(
        proxy_services,
        client,
        server.base_url,
        provider_auth_kind="client_credentials",
        provider_token_url=server.token_url,
        provider_client_id="bridge",
    )
    secret_store.set_secret(provider_secret_name(tenant.tenant_id), "provider-secret")
    token = bearer_token(proxy_services, client, tenant.tenant_id)
    assert send(proxy_services, "GET", "Patient/example", token).status == 200
    server.rotate_tokens()
    assert send(proxy_services, "GET", "Patient/example", token).status == 200
    assert server.token_requests() == 2
    assert server.count(path=TOKEN_PATH) == 2


@pytest.mark.parametrize("status", [200, 400])
def test_deeply_nested_json_from_the_providers_token_endpoint_is_a_502(
    proxy_services, client, fhir_server, secret_store, status
):
    """Row 82: a JSON bomb from the provider's token endpoint is the provider's failure."""
    server = fhir_server(version="r4", require_bearer=True)
    tenant = mapped(
        proxy_services,
        client,
        server.base_url,
        provider_auth_kind="client_credentials",
        provider_token_url=server.token_url,
        provider_client_id="bridge",
    )
    secret_store.set_secret(provider_secret_name(tenant.tenant_id), "provider-secret")
    token = bearer_token(proxy_services, client, tenant.tenant_id)
    bomb = "[" * 20_000 + "]" * 20_000  # 40 KB: under the token answer cap
    server.fail(status, bomb, "application/json", path=TOKEN_PATH)
    response = send(proxy_services, "GET", "Patient/example", token)
    assert response.status == 502
    assert outcome(response)["code"] == "exception"


# -- rate limits, bearer errors, audit ------------------------------------------------------------


def test_per_client_rate_limit_is_429_with_retry_after(make_services, client, fhir_server):
    services = make_services(allow_insecure_provider_urls=True, client_rate_limit_per_second=1)
    server = fhir_server(version="r4")
    tenant = mapped(services, client, server.base_url)
    token = bearer_token(services, client, tenant.tenant_id)
    statuses = [send(services, "GET", "Patient/example", token).status for _ in range(4)]
    assert statuses[:2] == [200, 200]
    limited = send(services, "GET", "Patient/example", token)
    assert limited.status == 429
    assert int(limited.headers.get("Retry-After")) >= 1


def test_missing_token_is_401_with_a_bearer_challenge_in_the_faces_version(
    proxy_services, provider
):
    response = send(proxy_services, "GET", "Patient/example", None, face="dstu2")
    assert response.status == 401
    assert response.headers.get("WWW-Authenticate") == 'Bearer realm="fhir"'
    assert response.headers.get("Content-Type").startswith("application/json+fhir")
    assert provider.count() == 0


def test_every_request_writes_one_audit_event_naming_who_read_which_patient(
    proxy_services, provider, token, client, tenant_a, caplog
):
    caplog.set_level(logging.INFO, logger="ehrbridge.audit")
    send(proxy_services, "GET", "Observation", token, query="patient=example&_sort=-date")
    send(proxy_services, "GET", "Patient/example", token)
    events = [
        json.loads(r.message)
        for r in caplog.records
        if r.name == "ehrbridge.audit" and "fhir.request" in r.message
    ]
    assert len(events) == 2
    search, read = events
    assert search["client_id"] == client.client.client_id
    assert search["tenant_id"] == tenant_a.tenant_id
    assert (search["interaction"], search["resource_type"], search["patient_ids"]) == (
        "search",
        "Observation",
        ["example"],
    )
    assert (read["interaction"], read["resource_id"], read["patient_ids"]) == (
        "read",
        "example",
        ["example"],
    )
    assert read["status"] == 200 and read["provider_status"] == 200
    assert read["latency_ms"] >= 0
    assert token not in caplog.text
    assert provider.origin not in caplog.text


def test_batch_audit_event_lists_every_patient_read(proxy_services, provider, token, caplog):
    caplog.set_level(logging.INFO, logger="ehrbridge.audit")
    send(
        proxy_services,
        "POST",
        "",
        token,
        body=batch("Patient/a1", "Observation?patient=b2", "Condition?subject=Patient/c3"),
        headers={"Content-Type": FHIR_JSON},
    )
    event = [json.loads(r.message) for r in caplog.records if "fhir.request" in r.message][-1]
    assert event["interaction"] == "batch"
    assert event["patient_ids"] == ["a1", "b2", "c3"]
    assert event["entries"] == 3


def test_a_batch_the_proxy_runs_and_sorts_is_audited_as_a_batch(
    make_services, client, fhir_server, caplog
):
    """Sorting an entry for the provider once recorded the whole request as a search."""
    services = make_services(allow_insecure_provider_urls=True)
    unsorted = fhir_server(version="r4", capabilities={"sort": False, "batch": False})
    observations(unsorted, 3)
    caps = {"sort_by_date": False, "batch": False}
    tenant = mapped(services, client, unsorted.base_url, capabilities=caps)
    token = bearer_token(services, client, tenant.tenant_id)
    caplog.set_level(logging.INFO, logger="ehrbridge.audit")
    body = batch("Observation?patient=sorted&_sort=-date", "Patient/sorted")
    response = send(services, "POST", "", token, body=body, headers={"Content-Type": FHIR_JSON})
    assert response.status == 200
    event = [json.loads(r.message) for r in caplog.records if "fhir.request" in r.message][-1]
    assert (event["interaction"], event["entries"]) == ("batch", 2)


def test_two_instances_each_stop_a_disabled_client_within_their_cache_ttl(
    make_services, client, fhir_server
):
    """Row 73 with two instances: each has its own caches; the TTL is the revocation delay."""
    first = make_services(allow_insecure_provider_urls=True)
    second = make_services(allow_insecure_provider_urls=True)
    server = fhir_server(version="r4")
    tenant = mapped(first, client, server.base_url)
    token = bearer_token(first, client, tenant.tenant_id)
    assert send(first, "GET", "Patient/example", token).status == 200
    assert send(second, "GET", "Patient/example", token).status == 200
    # An operator disables the client through the first instance's management API.
    disable = Request(
        "DELETE",
        f"https://bridge.test/api/manage/clients/{client.client.client_id}",
        Headers({"x-functions-key": ADMIN_KEY}),
        b"",
        {"client_id": client.client.client_id},
    )
    assert first.management.handle("client", disable).status == 200
    assert send(first, "GET", "Patient/example", token).status == 401  # at once, here
    assert send(second, "GET", "Patient/example", token).status == 200  # cached on the other
    second.lookups.forget()  # the other instance's TTL has passed
    assert send(second, "GET", "Patient/example", token).status == 401


def test_provider_failures_are_logged_by_tenant_and_path_never_by_provider_url(
    proxy_services, client, caplog
):
    provider = f"http://127.0.0.1:{closed_port()}/fhir"
    tenant = mapped(proxy_services, client, provider)
    token = bearer_token(proxy_services, client, tenant.tenant_id)
    caplog.set_level(logging.DEBUG)
    assert send(proxy_services, "GET", "Patient/example", token).status == 502
    assert f"tenant {tenant.tenant_id} /Patient/example" in caplog.text
    assert provider.split("//")[1].split("/")[0] not in caplog.text


def test_two_instances_accept_a_secret_version_rotated_on_the_other_at_once(
    make_services, client, fhir_server
):
    """Row 66 across instances: a miss on `sv` re-reads the versions once, then verifies."""
    first = make_services(allow_insecure_provider_urls=True)
    second = make_services(allow_insecure_provider_urls=True)
    server = fhir_server(version="r4")
    tenant = mapped(first, client, server.base_url)
    cid = client.client.client_id
    # The second instance caches the client's versions (only the first secret's).
    assert send(second, "GET", "Patient/example", bearer_token(first, client, tenant.tenant_id))
    rotate = Request(
        "POST",
        f"https://bridge.test/api/manage/clients/{cid}/secrets",
        Headers({"x-functions-key": ADMIN_KEY, "Content-Type": "application/json"}),
        b'{"grace_period_seconds": 0}',
        {"client_id": cid},
    )
    rotated = first.management.handle("client_secrets", rotate)
    assert rotated.status == 201
    fresh = dataclasses.replace(client, secret=rotated.json()["client_secret"])
    token = bearer_token(first, fresh, tenant.tenant_id)
    assert send(second, "GET", "Patient/example", token).status == 200


def test_random_secret_versions_in_signed_tokens_reread_the_versions_at_most_once(
    proxy_services, client, tenant_a, monkeypatch
):
    """Row 66's refresh is bounded: a stream of unknown `sv` values makes one Key Vault read."""
    from tests.integration.test_bearer import claims_for, forge

    reads: list[str] = []
    real = proxy_services.secret_store.list_versions
    monkeypatch.setattr(
        proxy_services.secret_store, "list_versions", lambda n: reads.append(n) or real(n)
    )
    for _ in range(20):
        token = forge(proxy_services, claims_for(proxy_services, client, tenant_a, sv="x" * 32))
        response = send(proxy_services, "GET", "Patient/example", token)
        assert response.status == 401
        assert "secret version" in outcome(response)["diagnostics"]
    client_reads = [n for n in reads if n.startswith("client-")]
    assert len(client_reads) <= 2  # the first load, and one refresh


def test_refused_megabyte_requests_with_random_tokens_leave_memory_flat(proxy_services, token):
    """Row 74: nothing of a refused request outlives it, whatever the token looked like."""
    import secrets
    import tracemalloc

    from tests.integration.test_bearer import b64url

    kid = proxy_services.signing_keys.current().kid
    header = b64url(json.dumps({"alg": "RS256", "typ": "at+jwt", "kid": kid}).encode())

    def refused(index: int) -> int:
        # Half garbage, half well-formed with our kid and a signature that cannot hold.
        random_part = b64url(secrets.token_bytes(48))
        bad = random_part if index % 2 else f"{header}.{random_part}.{random_part}"
        body = b"x" * (1 << 20)  # a fresh MiB each time: the cap lets it through
        return send(proxy_services, "POST", "Patient/_search", bad, body=body).status

    for index in range(4):  # warm-up: key list, caches and code paths
        assert refused(index) == 401
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        statuses = {refused(index) for index in range(64)}
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert statuses == {401}
    # 64 MiB went in; a kept request is 1 MiB, so anything over a few MiB is a leak.
    assert grown < 4 * 1024 * 1024
