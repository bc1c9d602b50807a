"""The steps a provider's answer takes to the caller: accepted, downstream headers, rewritten."""

from __future__ import annotations

import logging

import pytest

from shared.fhir.errors import FhirError, UpstreamError
from shared.http import Headers, Response
from shared.proxy.answer import accepted, downstream, rewritten
from shared.proxy.model import UpstreamResponse

PROVIDER = "https://fhir.hospital.example/r4"
FACE = "https://bridge.example/api/fhir/stu3"
FHIR = Headers({"Content-Type": "application/fhir+json"})
OUTCOME = b'{"resourceType":"OperationOutcome","issue":[]}'


def accept(status: int, body: bytes = OUTCOME, headers: Headers = FHIR) -> UpstreamResponse:
    return accepted(UpstreamResponse(status, headers, body), tenant_id="t1", request_id="r1")


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_credential_is_a_502_and_an_alert(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), pytest.raises(UpstreamError) as refused:
        accept(status)
    assert "correlation id r1" in refused.value.diagnostics
    assert "ALERT provider answered" in caplog.text


@pytest.mark.parametrize("status", [500, 503, 302])
def test_a_failure_or_a_redirect_is_a_502(status: int) -> None:
    with pytest.raises(UpstreamError):
        accept(status)


def test_a_fhir_4xx_is_passed_on_and_anything_else_withheld() -> None:
    assert accept(404).status == 404
    with pytest.raises(FhirError) as wrapped:
        accept(404, b"<html>trace</html>", Headers({"Content-Type": "text/html"}))
    assert (wrapped.value.status, wrapped.value.code) == (404, "processing")
    with pytest.raises(UpstreamError):
        accept(200, b"<html></html>", Headers({"Content-Type": "text/html"}))


def test_downstream_keeps_the_allowed_headers_labelled_with_the_face() -> None:
    answer = UpstreamResponse(
        200, Headers({"ETag": 'W/"1"', "Set-Cookie": "a=b", "Server": "x"}), OUTCOME
    )
    response = downstream(answer, "dstu2")
    assert response.headers.get("ETag") == 'W/"1"'
    assert response.headers.get("Set-Cookie") is None and response.headers.get("Server") is None
    assert response.headers.get("Content-Type") == "application/json+fhir; charset=utf-8"
    assert response.headers.get("Cache-Control") == "no-store"


def test_rewritten_makes_the_providers_urls_the_faces_in_body_and_url_headers() -> None:
    body = f'{{"resourceType":"Patient","id":"1","link":"{PROVIDER}/Patient/2"}}'.encode()
    headers = Headers({"Location": f"{PROVIDER}/Patient/1/_history/2", "ETag": 'W/"2"'})
    response = rewritten(
        Response(201, body, headers),
        provider_base=PROVIDER,
        face_base=FACE,
        tenant_id="t1",
        request_id="r1",
    )
    assert PROVIDER.encode() not in response.body and f"{FACE}/Patient/2".encode() in response.body
    assert response.headers.items() == [
        ("Location", f"{FACE}/Patient/1/_history/2"),
        ("ETag", 'W/"2"'),
    ]
