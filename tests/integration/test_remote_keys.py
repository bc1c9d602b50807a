"""shared/jose: other parties' key sets fetched over HTTPS under our rules, cached as they say.

Against the local Entra stand-in (tools/testkit/entra.py) and, for answers it never gives
(redirects, a body trickling in), a small HTTPS server of this file's own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from shared.jose.fetch import FetchRefused, FetchUnavailable, fetch_json
from shared.jose.remote import RemoteDocuments, RemoteKeySets
from shared.net.addresses import AddressPolicy
from shared.proxy.provider_auth import upstream_session
from tools.testkit.entra import LocalEntra, running_entra
from tools.testkit.loopback import BackgroundServer, LoopbackServer

TIMEOUT = (1.0, 1.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def entra() -> Iterator[LocalEntra]:
    with running_entra() as server:
        yield server


@pytest.fixture
def tenant(entra: LocalEntra) -> str:
    entra.keys_cache_control = "max-age=86400, private"
    entra.keys_body = None
    return entra.add_tenant()


def keys_url(entra: LocalEntra, tenant: str) -> str:
    return f"{entra.authority}/{tenant}/discovery/v2.0/keys"


def session(entra: LocalEntra | None = None, *, allow_local: bool = True) -> Any:
    made = upstream_session(2, policy=AddressPolicy(allow_local=allow_local))
    if entra is not None:
        made.verify = entra.ca_path
    return made


def key_sets(entra: LocalEntra, clock: Clock | None = None, **options: Any) -> RemoteKeySets:
    return RemoteKeySets(
        lambda: session(entra),
        timeout=TIMEOUT,
        deadline=2.0,
        clock=clock or time.monotonic,
        **options,
    )


# -- one fetch ------------------------------------------------------------------------------


def test_a_key_set_is_fetched_over_https_and_its_keys_found_by_kid(entra, tenant):
    keys = key_sets(entra)
    assert keys.key(keys_url(entra, tenant), entra.kid) is not None


def test_in_production_a_loopback_host_is_refused_and_never_contacted(entra, tenant):
    before = entra.count("/keys")
    with pytest.raises(FetchRefused, match="loopback"):
        fetch_json(
            session(entra, allow_local=False),
            keys_url(entra, tenant),
            timeout=TIMEOUT,
            deadline=2.0,
        )
    assert entra.count("/keys") == before


def test_a_plain_http_url_is_refused_before_any_connection(entra, tenant):
    with pytest.raises(FetchRefused, match="not https"):
        fetch_json(
            session(entra),
            keys_url(entra, tenant).replace("https:", "http:"),
            timeout=TIMEOUT,
            deadline=2.0,
        )


def test_a_certificate_we_do_not_trust_is_refused(entra, tenant):
    with pytest.raises(FetchRefused, match="certificate"):
        fetch_json(session(), keys_url(entra, tenant), timeout=TIMEOUT, deadline=2.0)


def test_a_document_larger_than_the_cap_is_refused(entra, tenant):
    entra.keys_body = b'{"keys": [], "pad": "' + b"x" * 70_000 + b'"}'
    with pytest.raises(FetchRefused, match="larger than"):
        fetch_json(session(entra), keys_url(entra, tenant), timeout=TIMEOUT, deadline=2.0)


def test_an_answer_that_is_not_a_json_object_is_refused(entra, tenant):
    entra.keys_body = b"[" * 10_000 + b"]" * 10_000
    with pytest.raises(FetchRefused):
        fetch_json(session(entra), keys_url(entra, tenant), timeout=TIMEOUT, deadline=2.0)


def test_a_server_error_is_unavailable_not_refused(entra, tenant):
    entra.fail_next("/keys", 503)
    with pytest.raises(FetchUnavailable, match="503"):
        fetch_json(session(entra), keys_url(entra, tenant), timeout=TIMEOUT, deadline=2.0)


def test_another_client_error_is_refused(entra):
    with pytest.raises(FetchRefused, match="400"):
        fetch_json(
            session(entra),
            f"{entra.authority}/not-a-tenant/discovery/v2.0/keys",
            timeout=TIMEOUT,
            deadline=2.0,
        )


def test_a_server_that_does_not_answer_in_time_is_unavailable(entra, tenant):
    entra.delay_next("/keys", 3.0)
    with pytest.raises(FetchUnavailable):
        fetch_json(session(entra), keys_url(entra, tenant), timeout=TIMEOUT, deadline=2.0)


class _Odd(BackgroundServer):
    """HTTPS answers the stand-in never gives: a redirect, or a body one byte at a time."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._stop = threading.Event()
        self.requests = 0
        self.origin = ""

    def start(self) -> _Odd:
        odd = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                odd.requests += 1
                if odd.mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", f"{odd.origin}/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = b'{"keys": []}' + b" " * 200
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                for byte in body:
                    if odd._stop.wait(0.2):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()

        server = LoopbackServer(Handler, self._tls_context("odd-"))
        self.origin = f"https://127.0.0.1:{server.server_address[1]}"
        self._serve(server, "odd")
        return self


def test_a_redirect_is_refused_and_not_followed():
    with _Odd("redirect") as odd:
        made = session()
        made.verify = odd.ca_path
        with pytest.raises(FetchRefused, match="redirect"):
            fetch_json(made, f"{odd.origin}/keys", timeout=TIMEOUT, deadline=2.0)
        assert odd.requests == 1


def test_a_body_trickling_in_ends_at_the_deadline():
    with _Odd("trickle") as odd:
        made = session()
        made.verify = odd.ca_path
        started = time.monotonic()
        with pytest.raises(FetchUnavailable, match="too slow"):
            fetch_json(made, f"{odd.origin}/keys", timeout=TIMEOUT, deadline=1.5)
        # Well under the 40 s the body would take; the read timeout alone never fires.
        assert time.monotonic() - started < 10


# -- caching --------------------------------------------------------------------------------


def test_a_key_set_is_kept_for_its_max_age(entra, tenant):
    clock = Clock()
    keys = key_sets(entra, clock)
    url = keys_url(entra, tenant)
    keys.get(url)
    clock.now += 3_600
    keys.get(url)
    assert entra.count(f"{tenant}/discovery/v2.0/keys") == 1


def test_a_key_set_is_fetched_again_once_its_max_age_has_passed(entra, tenant):
    entra.keys_cache_control = "max-age=120"
    clock = Clock()
    keys = key_sets(entra, clock)
    url = keys_url(entra, tenant)
    keys.get(url)
    clock.now += 121
    keys.get(url)
    assert entra.count(f"{tenant}/discovery/v2.0/keys") == 2


def test_no_store_means_the_set_is_not_reused(entra, tenant):
    entra.keys_cache_control = "no-store"
    keys = key_sets(entra, Clock())
    url = keys_url(entra, tenant)
    keys.get(url)
    keys.get(url)
    assert entra.count(f"{tenant}/discovery/v2.0/keys") == 2


def test_a_max_age_longer_than_a_day_is_cut_to_a_day(entra, tenant):
    entra.keys_cache_control = "max-age=31536000"
    clock = Clock()
    keys = key_sets(entra, clock)
    url = keys_url(entra, tenant)
    keys.get(url)
    clock.now += 86_401
    keys.get(url)
    assert entra.count(f"{tenant}/discovery/v2.0/keys") == 2


def test_without_cache_control_the_default_lifetime_applies(entra, tenant):
    entra.keys_cache_control = None
    clock = Clock()
    keys = key_sets(entra, clock, default_ttl=300)
    url = keys_url(entra, tenant)
    keys.get(url)
    clock.now += 299
    keys.get(url)
    clock.now += 2
    keys.get(url)
    assert entra.count(f"{tenant}/discovery/v2.0/keys") == 2


def test_a_failed_fetch_is_shared_for_a_few_seconds(entra, tenant):
    clock = Clock()
    keys = key_sets(entra, clock, failure_ttl=5.0)
    url = keys_url(entra, tenant)
    entra.fail_next("/keys", 503)
    for _ in range(3):
        with pytest.raises(FetchUnavailable):
            keys.get(url)
    assert entra.count(f"{tenant}/discovery/v2.0/keys") == 1
    clock.now += 6
    assert keys.get(url) is not None


def test_a_key_rotated_in_since_the_fetch_is_found_after_one_refetch(entra, tenant):
    clock = Clock()
    keys = key_sets(entra, clock)
    url = keys_url(entra, tenant)
    keys.get(url)
    clock.now += 61
    new_kid = entra.rotate()
    assert keys.key(url, new_kid) is not None
    assert entra.count(f"{tenant}/discovery/v2.0/keys") == 2


def test_unknown_kids_refetch_the_set_at_most_once_per_interval(entra, tenant):
    clock = Clock()
    keys = key_sets(entra, clock, unknown_kid_interval=60)
    url = keys_url(entra, tenant)
    keys.get(url)
    clock.now += 61
    for n in range(50):
        assert keys.key(url, f"forged-{n}") is None
    assert entra.count(f"{tenant}/discovery/v2.0/keys") == 2
    clock.now += 61
    assert keys.key(url, "forged-again") is None
    assert entra.count(f"{tenant}/discovery/v2.0/keys") == 3


def test_an_unknown_kid_right_after_a_fetch_makes_no_second_fetch(entra, tenant):
    keys = key_sets(entra, Clock())
    assert keys.key(keys_url(entra, tenant), "forged") is None
    assert entra.count(f"{tenant}/discovery/v2.0/keys") == 1


def test_concurrent_first_lookups_fetch_once(entra, tenant):
    keys = key_sets(entra)
    url = keys_url(entra, tenant)
    entra.delay_next("/keys", 0.3)
    threads = [threading.Thread(target=keys.get, args=(url,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert entra.count(f"{tenant}/discovery/v2.0/keys") == 1


def test_documents_are_kept_parsed_not_as_their_body(entra, tenant):
    documents: RemoteDocuments[str] = RemoteDocuments(
        lambda document: str(document["issuer"]), lambda: session(entra), timeout=TIMEOUT
    )
    url = f"{entra.authority}/{tenant}/v2.0/.well-known/openid-configuration"
    assert documents.get(url) == entra.issuer(tenant)


def test_a_document_the_parser_refuses_is_a_refused_fetch(entra, tenant):
    def refuse(document: dict[str, Any]) -> str:
        raise ValueError("no issuer of ours")

    documents: RemoteDocuments[str] = RemoteDocuments(
        refuse, lambda: session(entra), timeout=TIMEOUT
    )
    with pytest.raises(FetchRefused, match="no issuer of ours"):
        documents.get(f"{entra.authority}/{tenant}/v2.0/.well-known/openid-configuration")
