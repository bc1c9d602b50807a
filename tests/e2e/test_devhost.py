"""The dev host's HTTP rules, through real sockets, against a toy FunctionApp built here."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func
import pytest
import requests

from tools.devhost import (
    MASTER_KEY_ENV,
    DevHost,
    DuplicateFunctionNameError,
    ReservedRouteError,
    RouteTemplateError,
)
from tools.testkit.devhost import running_devhost

pytestmark = pytest.mark.e2e

MASTER_KEY = "dev-master-key-" + "m" * 24
ANON = func.AuthLevel.ANONYMOUS
TIMEOUT = 10


def _echo(name: str, req: func.HttpRequest) -> func.HttpResponse:
    payload = {
        "function": name,
        "method": req.method,
        "url": req.url,
        "headers": dict(req.headers),
        "params": dict(req.params),
        "route_params": dict(req.route_params),
        "body": req.get_body().decode("utf-8", "replace"),
        "request_type": f"{type(req).__module__}.{type(req).__qualname__}",
    }
    return func.HttpResponse(json.dumps(payload), mimetype="application/json")


def _register(
    app: func.FunctionApp,
    name: str,
    route: str,
    *,
    methods: list[str] | None = None,
    auth_level: func.AuthLevel = ANON,
) -> None:
    def handler(req: func.HttpRequest) -> func.HttpResponse:
        return _echo(name, req)

    handler.__name__ = name
    app.route(route=route, methods=methods, auth_level=auth_level)(handler)


CONSTRAINTS = {
    # name: (template parameter, accepted value, rejected value)
    "int": ("{v:int}", "-42", "4x2"),
    "long": ("{v:long}", "9000000000", "9.5"),
    "bool": ("{v:bool}", "TRUE", "yes"),
    "guid": ("{v:guid}", "6f9619ff-8b86-d011-b42d-00c04fc964ff", "6f9619ff-8b86-d011-b42d"),
    "alpha": ("{v:alpha}", "abcXYZ", "abc1"),
    "length": ("{v:length(3)}", "abc", "abcd"),
    "length_range": ("{v:length(2,4)}", "abcd", "a"),
    "minlength": ("{v:minlength(3)}", "abcdef", "ab"),
    "maxlength": ("{v:maxlength(3)}", "ab", "abcd"),
    "min": ("{v:min(10)}", "10", "9"),
    "max": ("{v:max(10)}", "10", "11"),
    "range": ("{v:range(1,5)}", "5", "6"),
    "regex": ("{v:regex(^[a-z]{{2}}[0-9]+$)}", "ab12", "abc12"),
}


def _build_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=ANON)
    # Registered before the literal route on purpose: precedence must not follow this order.
    _register(app, "fhir_passthrough", "fhir/{face}/{*path}")
    _register(app, "fhir_metadata", "fhir/{face}/metadata")
    _register(app, "item_by_name", "items/{name}")
    _register(app, "item_by_id", "items/{id:int}")
    for constraint, (parameter, _, _) in CONSTRAINTS.items():
        _register(app, f"constraint_{constraint}", f"c/{constraint}/{parameter}")
    _register(app, "optional", "opt/{name?}")
    _register(app, "defaulted", "dflt/{name=world}")
    _register(app, "files", "files/{*path}")
    _register(app, "echo", "echo/{a}/{b?}")
    _register(app, "things_get", "things", methods=["GET"])
    _register(app, "things_post", "things", methods=["POST"])
    _register(app, "secure_admin", "secure/admin", auth_level=func.AuthLevel.ADMIN)
    _register(app, "secure_function", "secure/function", auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="sleep", auth_level=ANON)
    def sleep(req: func.HttpRequest) -> func.HttpResponse:
        time.sleep(0.5)
        return func.HttpResponse("slept")

    @app.route(route="boom", auth_level=ANON)
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("secret-detail-xyz")

    @app.route(route="async", auth_level=ANON)
    async def async_route(req: func.HttpRequest) -> func.HttpResponse:
        await asyncio.sleep(0.01)
        return func.HttpResponse(f"async {req.route_params == {}}")

    @app.route(route="plain", auth_level=ANON)
    def plain(req: func.HttpRequest) -> str:
        return "just a string"

    @app.route(route="shaped", auth_level=ANON)
    def shaped(req: func.HttpRequest) -> func.HttpResponse:
        response = func.HttpResponse(
            b'{"resourceType":"CapabilityStatement"}',
            status_code=201,
            headers={"X-Shape": "yes"},
            mimetype="application/fhir+json",
        )
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        return response

    @app.route(route="texty", auth_level=ANON)
    def texty(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("hi", mimetype="text/html", charset="latin-1")

    return app


APP = _build_app()


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """The toy app on a dev host with a known master key and four function threads."""
    with running_devhost(APP, master_key=MASTER_KEY, threads=4) as url:
        yield url


def _get(url: str, **kwargs: Any) -> requests.Response:
    return requests.get(url, timeout=TIMEOUT, **kwargs)


def _raw_exchange(base_url: str, payload: bytes) -> bytes:
    parts = urlsplit(base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT) as sock:
        sock.sendall(payload)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def _tiny_app(route: str, name: str = "tiny") -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=ANON)
    _register(app, name, route)
    return app


# -- routing: precedence ----------------------------------------------------------------------


def test_literal_segment_beats_catch_all_whatever_the_registration_order(base_url: str) -> None:
    assert _get(f"{base_url}/api/fhir/stu3/metadata").json()["function"] == "fhir_metadata"
    other = _get(f"{base_url}/api/fhir/stu3/Patient/1").json()
    assert other["function"] == "fhir_passthrough"


def test_constrained_parameter_beats_plain_parameter(base_url: str) -> None:
    assert _get(f"{base_url}/api/items/42").json()["function"] == "item_by_id"
    assert _get(f"{base_url}/api/items/abc").json()["function"] == "item_by_name"


def test_literal_matching_is_case_insensitive(base_url: str) -> None:
    response = _get(f"{base_url}/API/Fhir/stu3/METADATA")
    assert response.json()["function"] == "fhir_metadata"


def test_trailing_slash_is_ignored(base_url: str) -> None:
    assert _get(f"{base_url}/api/fhir/stu3/metadata/").json()["function"] == "fhir_metadata"


# -- routing: parameters, constraints, catch-all ----------------------------------------------


def test_constraint_int_rejects_letters(base_url: str) -> None:
    assert _get(f"{base_url}/api/c/int/abc").status_code == 404


@pytest.mark.parametrize("constraint", sorted(CONSTRAINTS))
def test_constraint_accepts_matching_value(base_url: str, constraint: str) -> None:
    _, accepted, _ = CONSTRAINTS[constraint]
    response = _get(f"{base_url}/api/c/{constraint}/{accepted}")
    assert response.status_code == 200
    assert response.json()["route_params"] == {"v": accepted}


@pytest.mark.parametrize("constraint", sorted(CONSTRAINTS))
def test_constraint_rejects_other_values(base_url: str, constraint: str) -> None:
    _, _, rejected = CONSTRAINTS[constraint]
    assert _get(f"{base_url}/api/c/{constraint}/{rejected}").status_code == 404


def test_constraint_int_rejects_values_outside_32_bits(base_url: str) -> None:
    assert _get(f"{base_url}/api/c/int/2147483648").status_code == 404


def test_optional_parameter(base_url: str) -> None:
    missing = _get(f"{base_url}/api/opt").json()
    present = _get(f"{base_url}/api/opt/bob").json()
    # The host drops null route values, so a missing optional is absent, not "".
    assert (missing["function"], missing["route_params"]) == ("optional", {})
    assert present["route_params"] == {"name": "bob"}


def test_default_value_fills_missing_parameter(base_url: str) -> None:
    assert _get(f"{base_url}/api/dflt").json()["route_params"] == {"name": "world"}
    assert _get(f"{base_url}/api/dflt/you").json()["route_params"] == {"name": "you"}


def test_catch_all_captures_rest_of_path(base_url: str) -> None:
    body = _get(f"{base_url}/api/files/a/b/c.txt").json()
    assert body["route_params"] == {"path": "a/b/c.txt"}


def test_catch_all_matches_empty_rest(base_url: str) -> None:
    body = _get(f"{base_url}/api/files").json()
    assert (body["function"], body["route_params"]) == ("files", {})


def test_catch_all_is_decoded_except_encoded_slash(base_url: str) -> None:
    body = _get(f"{base_url}/api/files/a%2Fb/c%20d%C3%A9").json()
    assert body["route_params"] == {"path": "a%2Fb/c dé"}


def test_parameter_value_is_percent_decoded_once(base_url: str) -> None:
    body = _get(f"{base_url}/api/echo/x%20y%2541").json()
    assert body["route_params"] == {"a": "x y%41"}


def test_encoded_slash_does_not_split_a_parameter_segment(base_url: str) -> None:
    body = _get(f"{base_url}/api/echo/a%2Fb").json()
    assert body["route_params"] == {"a": "a/b"}


def test_unknown_route_is_404(base_url: str) -> None:
    response = _get(f"{base_url}/api/nothing/here")
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")


def test_path_outside_route_prefix_is_404(base_url: str) -> None:
    assert _get(f"{base_url}/fhir/stu3/metadata").status_code == 404


# -- methods ----------------------------------------------------------------------------------


def test_wrong_method_is_405_with_allow_header(base_url: str) -> None:
    response = requests.delete(f"{base_url}/api/things", timeout=TIMEOUT)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"


def test_same_template_dispatches_by_method(base_url: str) -> None:
    assert _get(f"{base_url}/api/things").json()["function"] == "things_get"
    posted = requests.post(f"{base_url}/api/things", timeout=TIMEOUT).json()
    assert posted["function"] == "things_post"


def test_route_without_methods_accepts_any_method(base_url: str) -> None:
    response = requests.patch(f"{base_url}/api/echo/x", timeout=TIMEOUT)
    assert response.json()["method"] == "PATCH"


# -- host.json --------------------------------------------------------------------------------


def test_route_prefix_comes_from_host_json(tmp_path: Path) -> None:
    host_json = tmp_path / "host.json"
    host_json.write_text(
        json.dumps({"version": "2.0", "extensions": {"http": {"routePrefix": "v1"}}})
    )
    with running_devhost(APP, host_json_path=host_json) as url:
        assert _get(f"{url}/v1/echo/x").json()["function"] == "echo"
        assert _get(f"{url}/api/echo/x").status_code == 404


def test_empty_route_prefix_is_allowed(tmp_path: Path) -> None:
    host_json = tmp_path / "host.json"
    host_json.write_text(json.dumps({"extensions": {"http": {"routePrefix": ""}}}))
    with running_devhost(APP, host_json_path=host_json) as url:
        assert _get(f"{url}/echo/x").json()["function"] == "echo"


def test_route_prefix_defaults_to_api_without_http_section(tmp_path: Path) -> None:
    host_json = tmp_path / "host.json"
    host_json.write_text(json.dumps({"version": "2.0"}))
    with running_devhost(APP, host_json_path=host_json) as url:
        assert _get(f"{url}/api/echo/x").status_code == 200


def test_custom_headers_from_host_json_are_added(tmp_path: Path) -> None:
    host_json = tmp_path / "host.json"
    settings = {"extensions": {"http": {"customHeaders": {"X-Content-Type-Options": "nosniff"}}}}
    host_json.write_text(json.dumps(settings))
    with running_devhost(APP, host_json_path=host_json) as url:
        assert _get(f"{url}/api/echo/x").headers["X-Content-Type-Options"] == "nosniff"


# -- load-time refusals -----------------------------------------------------------------------


@pytest.mark.parametrize("route", ["admin/tenants", "Admin", "administration/x", "/admin/x"])
def test_admin_prefixed_route_is_refused_at_load(route: str) -> None:
    with pytest.raises(ReservedRouteError, match="admin"):
        DevHost(_tiny_app(route), port=0)


def test_duplicate_function_names_are_refused_at_load() -> None:
    app = _tiny_app("one", name="Report")
    _register(app, "report", "two")
    with pytest.raises(DuplicateFunctionNameError):
        DevHost(app, port=0)


def test_catch_all_not_last_is_refused_at_load() -> None:
    with pytest.raises(RouteTemplateError, match="last"):
        DevHost(_tiny_app("files/{*path}/tail"), port=0)


def test_unknown_constraint_is_refused_at_load() -> None:
    with pytest.raises(RouteTemplateError, match="unknown constraint"):
        DevHost(_tiny_app("x/{id:nope}"), port=0)


def test_repeated_parameter_name_is_refused_at_load() -> None:
    with pytest.raises(RouteTemplateError, match="repeats"):
        DevHost(_tiny_app("x/{id}/{ID}"), port=0)


# -- auth levels ------------------------------------------------------------------------------


def test_admin_level_route_requires_master_key_header_or_code(base_url: str) -> None:
    url = f"{base_url}/api/secure/admin"
    missing = _get(url)
    assert (missing.status_code, missing.content) == (401, b"")
    assert _get(url, headers={"x-functions-key": MASTER_KEY}).status_code == 200
    assert _get(url, params={"code": MASTER_KEY}).status_code == 200


def test_function_level_route_requires_master_key(base_url: str) -> None:
    url = f"{base_url}/api/secure/function"
    assert _get(url).status_code == 401
    assert _get(url, headers={"X-Functions-Key": MASTER_KEY}).status_code == 200


def test_wrong_master_key_is_401(base_url: str) -> None:
    response = _get(f"{base_url}/api/secure/admin", headers={"x-functions-key": "wrong"})
    assert (response.status_code, response.content) == (401, b"")
    assert _get(f"{base_url}/api/secure/admin", params={"code": "wrong"}).status_code == 401


def test_key_header_takes_precedence_over_code(base_url: str) -> None:
    response = _get(
        f"{base_url}/api/secure/admin",
        headers={"x-functions-key": "wrong"},
        params={"code": MASTER_KEY},
    )
    assert response.status_code == 401


def test_non_ascii_key_is_401_not_an_error(base_url: str) -> None:
    response = _get(f"{base_url}/api/secure/admin", params={"code": "clé-ünïcode"})
    assert response.status_code == 401


def test_anonymous_route_needs_no_key(base_url: str) -> None:
    assert _get(f"{base_url}/api/echo/x").status_code == 200


def test_no_master_key_configured_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
    with running_devhost(APP) as url:
        assert _get(f"{url}/api/secure/admin").status_code == 401
        assert _get(f"{url}/api/secure/function", params={"code": ""}).status_code == 401
        assert _get(f"{url}/api/secure/admin", headers={"x-functions-key": ""}).status_code == 401


def test_master_key_defaults_to_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MASTER_KEY_ENV, "from-the-environment")
    with running_devhost(APP) as url:
        url_admin = f"{url}/api/secure/admin"
        assert _get(url_admin, headers={"x-functions-key": "from-the-environment"}).ok


# -- the request as the worker passes it ------------------------------------------------------


def test_request_fields_reach_function_as_worker_passes_them(base_url: str) -> None:
    response = requests.post(
        f"{base_url}/api/echo/one/tw%20o?x=1&y=a+b%26c",
        headers={"X-Custom": "v", "Content-Type": "application/json"},
        data=b'{"k": 1}',
        timeout=TIMEOUT,
    )
    seen = response.json()
    assert seen["method"] == "POST"
    assert seen["url"] == f"{base_url}/api/echo/one/tw%20o?x=1&y=a+b%26c"
    assert seen["headers"]["x-custom"] == "v"
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["params"] == {"x": "1", "y": "a b&c"}
    assert seen["route_params"] == {"a": "one", "b": "tw o"}
    assert seen["body"] == '{"k": 1}'
    assert seen["request_type"] == "azure.functions.http.HttpRequest"


def test_the_peer_address_is_appended_to_x_forwarded_for_as_the_front_end_does(
    base_url: str,
) -> None:
    plain = _get(f"{base_url}/api/echo/x").json()
    assert re.fullmatch(r"127\.0\.0\.1:\d+", plain["headers"]["x-forwarded-for"])
    spoofed = _get(f"{base_url}/api/echo/x", headers={"X-Forwarded-For": "198.51.100.1"}).json()
    assert re.fullmatch(r"198\.51\.100\.1,127\.0\.0\.1:\d+", spoofed["headers"]["x-forwarded-for"])


def test_repeated_query_keys_are_joined_with_commas(base_url: str) -> None:
    seen = _get(f"{base_url}/api/echo/x?t=1&t=2&T=3").json()
    assert seen["params"] == {"t": "1,2,3"}


def test_empty_query_values_are_dropped(base_url: str) -> None:
    seen = _get(f"{base_url}/api/echo/x?flag=&bare&x=1").json()
    assert seen["params"] == {"x": "1"}


def test_repeated_headers_are_joined_with_commas(base_url: str) -> None:
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        connection.putrequest("GET", "/api/echo/x")
        connection.putheader("X-Multi", "a")
        connection.putheader("X-Multi", "b")
        connection.endheaders()
        seen = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    assert seen["headers"]["x-multi"] == "a,b"


# -- execution --------------------------------------------------------------------------------


def test_concurrent_requests_run_in_parallel(base_url: str) -> None:
    statuses: list[int] = []

    def call() -> None:
        statuses.append(_get(f"{base_url}/api/sleep").status_code)

    threads = [threading.Thread(target=call) for _ in range(2)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200, 200]
    assert time.perf_counter() - started < 0.9


def test_thread_pool_bounds_concurrent_function_calls() -> None:
    with running_devhost(APP, threads=1) as url:
        threads = [threading.Thread(target=_get, args=(f"{url}/api/sleep",)) for _ in range(2)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert time.perf_counter() - started >= 0.95


def test_keep_alive_reuses_one_connection(base_url: str) -> None:
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        connection.request("GET", "/api/echo/first")
        first = connection.getresponse()
        first.read()
        first_socket = connection.sock
        # http.client silently reconnects if the server closed: the socket identity tells.
        connection.request("POST", "/api/echo/second", body=b"payload")
        second = connection.getresponse()
        body = json.loads(second.read())
        second_socket = connection.sock
    finally:
        connection.close()
    assert (first.status, second.status, body["body"]) == (200, 200, "payload")
    assert first_socket is not None and second_socket is first_socket


def test_function_exception_is_500_without_stack_trace(
    base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = _get(f"{base_url}/api/boom")
    assert response.status_code == 500
    assert "secret-detail-xyz" not in response.text
    assert "Traceback" not in response.text
    logged = [r for r in caplog.records if r.name == "ehr_bridge.devhost" and r.exc_info]
    assert "secret-detail-xyz" in str(logged[0].exc_info[1])


def test_app_stays_indexable_after_serving() -> None:
    app = _tiny_app("again")
    with running_devhost(app):
        pass
    assert [f.get_function_name() for f in app.get_functions()] == ["tiny"]


def test_async_function_is_supported(base_url: str) -> None:
    response = _get(f"{base_url}/api/async")
    assert (response.status_code, response.text) == (200, "async True")


# -- the response as the worker encodes it ----------------------------------------------------


def test_string_return_is_200_text_plain(base_url: str) -> None:
    response = _get(f"{base_url}/api/plain")
    assert (response.status_code, response.text) == (200, "just a string")
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_response_status_headers_cookies_and_mimetype_are_written(base_url: str) -> None:
    response = _get(f"{base_url}/api/shaped")
    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/fhir+json"
    assert response.headers["X-Shape"] == "yes"
    assert response.headers["Content-Length"] == str(len(response.content))
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]


def test_text_mimetype_gets_charset(base_url: str) -> None:
    response = _get(f"{base_url}/api/texty")
    assert response.headers["Content-Type"] == "text/html; charset=latin-1"


# -- limits and framing -----------------------------------------------------------------------


def test_body_over_cap_is_413() -> None:
    with running_devhost(APP, max_body_bytes=1024) as url:
        response = requests.post(f"{url}/api/echo/x", data=b"x" * 2048, timeout=TIMEOUT)
    assert response.status_code == 413


def test_body_at_cap_is_accepted() -> None:
    with running_devhost(APP, max_body_bytes=1024) as url:
        response = requests.post(f"{url}/api/echo/x", data=b"x" * 1024, timeout=TIMEOUT)
    assert len(response.json()["body"]) == 1024


def test_url_over_4kb_is_414(base_url: str) -> None:
    assert _get(f"{base_url}/api/echo/x?pad={'a' * 4096}").status_code == 414


def test_very_long_request_line_is_414_and_closes(base_url: str) -> None:
    received = _raw_exchange(base_url, b"GET /api/echo/" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 414 ")
    assert b"Connection: close" in received


def test_url_of_4kb_is_accepted(base_url: str) -> None:
    path = "/api/echo/x?pad="
    response = _get(f"{base_url}{path}{'a' * (4096 - len(path))}")
    assert response.status_code == 200


def test_content_length_with_transfer_encoding_is_400(base_url: str) -> None:
    received = _raw_exchange(
        base_url,
        b"POST /api/echo/x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    assert received.startswith(b"HTTP/1.1 400 ")


def test_chunked_request_body_is_reassembled(base_url: str) -> None:
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        connection.request(
            "POST",
            "/api/echo/x",
            body=iter([b"hello ", b"chunked ", b"world"]),
            encode_chunked=True,
        )
        seen = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    assert seen["body"] == "hello chunked world"
    assert seen["headers"]["transfer-encoding"] == "chunked"


def test_unsupported_transfer_coding_is_501(base_url: str) -> None:
    received = _raw_exchange(
        base_url,
        b"POST /api/echo/x HTTP/1.1\r\nHost: t\r\n"
        b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    )
    assert received.startswith(b"HTTP/1.1 501 ")


# -- logging and lifecycle --------------------------------------------------------------------


def test_access_log_is_one_line_without_query_string(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ehr_bridge.devhost.access")
    with running_devhost(APP, master_key=MASTER_KEY, quiet=False) as url:
        _get(f"{url}/api/secure/admin", params={"code": MASTER_KEY})
    lines = [r.getMessage() for r in caplog.records if r.name == "ehr_bridge.devhost.access"]
    assert len(lines) == 1
    assert '"GET /api/secure/admin" 200' in lines[0]
    assert MASTER_KEY not in lines[0] and "code" not in lines[0]


def test_quiet_host_writes_no_access_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ehr_bridge.devhost.access")
    with running_devhost(APP, quiet=True) as url:
        _get(f"{url}/api/echo/x")
    assert not [r for r in caplog.records if r.name == "ehr_bridge.devhost.access"]


def test_close_does_not_wait_for_idle_keep_alive_connections() -> None:
    with running_devhost(APP) as url:
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
        connection.request("GET", "/api/echo/x")
        connection.getresponse().read()
        started = time.perf_counter()
    assert time.perf_counter() - started < 3
    connection.close()


# -- command line -----------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]

CLI_APP = """
import os
import re
import azure.functions as func

SEEN_AT_IMPORT = {name: os.environ.get(name) for name in ("TOY_SETTING", "PRESET")}
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="seen")
def seen(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(repr(sorted(SEEN_AT_IMPORT.items())))


@app.route(route="locked", auth_level=func.AuthLevel.ADMIN)
def locked(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("open")


@app.route(route="chatty")
def chatty(req: func.HttpRequest) -> func.HttpResponse:
    import logging

    logging.getLogger("ehrbridge.audit").info("app-event")
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").info("sdk-detail")
    return func.HttpResponse("ok")
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_cli_serves_function_app_with_local_settings_loaded_first(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(CLI_APP)
    values = {"TOY_SETTING": "from-file", "PRESET": "from-file", MASTER_KEY_ENV: "cli-key"}
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": values}))
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"http": {"routePrefix": "x"}}}))
    port = _free_port()
    env = {**os.environ, "PRESET": "from-environment"}
    env.pop(MASTER_KEY_ENV, None)
    command = [sys.executable, "-m", "tools.devhost", "--port", str(port), "--root", str(tmp_path)]
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("Listening on"):
                break
        base = f"http://127.0.0.1:{port}"
        seen = _get(f"{base}/x/seen").text
        locked = _get(f"{base}/x/locked", headers={"x-functions-key": "cli-key"})
    finally:
        process.send_signal(signal.SIGINT)
        exit_code = process.wait(timeout=TIMEOUT)
    assert seen == repr([("PRESET", "from-environment"), ("TOY_SETTING", "from-file")])
    assert locked.text == "open"
    assert exit_code == 0


def _log_of_one_request(tmp_path: Path, *flags: str) -> list[str]:
    """What ``python -m tools.devhost`` writes to stderr for one request to a chatty function."""
    (tmp_path / "function_app.py").write_text(CLI_APP)
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"http": {"routePrefix": "x"}}}))
    port = _free_port()
    command = [sys.executable, "-m", "tools.devhost", "--port", str(port), "--root", str(tmp_path)]
    process = subprocess.Popen(
        [*command, *flags], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("Listening on"):
                break
        assert _get(f"http://127.0.0.1:{port}/x/chatty").text == "ok"
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=TIMEOUT)
    return stderr.splitlines()


def test_cli_logs_one_access_line_per_request_by_default(tmp_path: Path) -> None:
    lines = _log_of_one_request(tmp_path)
    assert len(lines) == 1, lines
    assert '"GET /x/chatty" 200' in lines[0]


def test_cli_verbose_adds_the_apps_own_log_lines(tmp_path: Path) -> None:
    lines = _log_of_one_request(tmp_path, "-v")
    assert "app-event" in lines
    assert "sdk-detail" not in lines


def test_cli_very_verbose_adds_the_azure_sdk_http_detail(tmp_path: Path) -> None:
    lines = _log_of_one_request(tmp_path, "-vv")
    assert {"app-event", "sdk-detail"} <= set(lines)
