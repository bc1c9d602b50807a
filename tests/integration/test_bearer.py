"""Bearer-token verification (docs/security.md table B rows 28-42, F row 73)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import socket
import time
import types
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared.auth.clients import IssuedSecret
from shared.auth.signing_keys import SigningKeys, rotate_signing_key
from shared.fhir.errors import FhirError, Forbidden, InvalidRequest, Unauthorized, Unavailable
from shared.fhir.outcome import ISSUE_TYPES
from shared.http import Headers, Request
from shared.ids import SIGNING_KEY_NAME
from shared.proxy.bearer import BearerVerifier
from shared.proxy.model import Caller
from shared.secret_store import SecretStoreUnavailable, SecretVersion
from shared.services import Services
from shared.tables import StoreUnavailable
from shared.tenants import TenantMapping
from tests.conftest import request_token

URL = "https://bridge.test/api/fhir/r4/Patient/1"
BARE_CHALLENGE = 'Bearer realm="fhir"'
INVALID_TOKEN = 'Bearer realm="fhir", error="invalid_token"'
INVALID_REQUEST = 'Bearer realm="fhir", error="invalid_request"'
INSUFFICIENT_SCOPE = 'Bearer realm="fhir", error="insufficient_scope"'


# ---------------------------------------------------------------------------- helpers


def fhir_request(
    authorization: str | list[str] | None = None, *, url: str = URL, method: str = "GET"
) -> Request:
    """A proxied FHIR request carrying the given Authorization header value(s)."""
    headers = Headers({"Accept": "application/fhir+json"})
    values = [authorization] if isinstance(authorization, str) else authorization or []
    for value in values:
        headers.add("Authorization", value)
    return Request(method=method, url=url, headers=headers)


def verifier_for(services: Services, **kwargs: Any) -> BearerVerifier:
    return BearerVerifier(services.settings, services.signing_keys, services.lookups, **kwargs)


def issue(services: Services, client: IssuedSecret, tenant: TenantMapping) -> str:
    """A real access token from the token endpoint."""
    response = request_token(
        services,
        {
            "grant_type": "client_credentials",
            "scope": tenant.tenant_id,
            "client_id": client.client.client_id,
            "client_secret": client.secret,
        },
    )
    assert response.status == 200, response.text
    return str(response.json()["access_token"])


def claims_for(
    services: Services, client: IssuedSecret, tenant: TenantMapping, **overrides: Any
) -> dict[str, Any]:
    """The claims the token endpoint would write, with overrides (None drops a claim)."""
    now = int(time.time())
    client_id = client.client.client_id
    claims: dict[str, Any] = {
        "iss": services.settings.token_issuer,
        "aud": services.settings.token_audience,
        "sub": client_id,
        "client_id": client_id,
        "tid": tenant.tenant_id,
        "scope": tenant.tenant_id,
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": str(uuid.uuid4()),
        "sv": client.version.version,
    }
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def forge(
    services: Services,
    claims: dict[str, Any],
    *,
    headers: dict[str, Any] | None = None,
    key: Any = None,
    algorithm: str | None = None,
) -> str:
    """A token signed with our real current key (or ``key``); header defaults to ours.

    Signed as a raw JWS so that claims pyjwt would refuse to encode (a list ``iss``) still can be.
    """
    signing = services.signing_keys.current()
    header: dict[str, Any] = {"kid": signing.kid, "typ": "at+jwt"}
    header.update(headers or {})
    return jwt.PyJWS().encode(
        json.dumps(claims).encode(),
        signing.private_key if key is None else key,
        algorithm=algorithm or signing.algorithm,
        headers=header,
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """header.payload with no signature yet."""
    return b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """An HS256 JWS built by hand (pyjwt refuses PEM keys as HMAC secrets, attackers do not)."""
    signing_input = compact({**header, "alg": "HS256"}, claims)
    mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + b64url(mac)


def refused(verifier: BearerVerifier, request: Request, kind: type[FhirError]) -> FhirError:
    with pytest.raises(kind) as caught:
        verifier.verify(request)
    error = caught.value
    assert error.code in ISSUE_TYPES
    return error


def assert_invalid_token(
    verifier: BearerVerifier, token: str, diagnostics: str, code: str = "unknown"
) -> FhirError:
    error = refused(verifier, fhir_request(f"Bearer {token}"), Unauthorized)
    assert error.status == 401
    assert error.diagnostics == diagnostics
    assert error.code == code
    challenge = error.headers["WWW-Authenticate"]
    assert challenge.startswith(INVALID_TOKEN + ", error_description=")
    assert challenge.isascii()
    assert token not in challenge
    assert token not in error.diagnostics
    return error


def assert_forbidden(verifier: BearerVerifier, token: str, diagnostics: str) -> None:
    error = refused(verifier, fhir_request(f"Bearer {token}"), Forbidden)
    assert error.status == 403
    assert error.code == "forbidden"
    assert error.diagnostics == diagnostics
    assert error.headers["WWW-Authenticate"].startswith(INSUFFICIENT_SCOPE)


def iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CountingStore:
    """Wraps a secret store and counts version listings of the signing key."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.signing_key_listings = 0

    def list_versions(self, name: str) -> list[SecretVersion]:
        if name == SIGNING_KEY_NAME:
            self.signing_key_listings += 1
        return list(self.inner.list_versions(name))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def verifier(services: Services) -> BearerVerifier:
    return verifier_for(services)


@pytest.fixture
def token(services: Services, client: IssuedSecret, tenant: TenantMapping) -> str:
    return issue(services, client, tenant)


@pytest.fixture
def network_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Records (and refuses) every DNS lookup and socket connect while active."""
    calls: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        raise OSError("network use during bearer verification")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield calls


def test_the_network_guard_sees_an_outbound_fetch(network_calls):
    # Proves the "no outbound fetch" assertions below could fail.
    import urllib.request

    with pytest.raises(OSError):
        urllib.request.urlopen("https://evil.example/jwks.json", timeout=1)
    assert network_calls


# ---------------------------------------------------------------------------- happy path (30)


def test_valid_token_yields_the_caller(verifier, token, client, tenant):
    claims = jwt.decode(token, options={"verify_signature": False})
    caller = verifier.verify(fhir_request(f"Bearer {token}"))
    assert caller == Caller(
        client_id=client.client.client_id,
        tenant_id=tenant.tenant_id,
        jti=claims["jti"],
        kid=jwt.get_unverified_header(token)["kid"],
        secret_version=client.version.version,
        expires_at=claims["exp"],
    )


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_bearer_scheme_is_case_insensitive(verifier, token, client, scheme):
    caller = verifier.verify(fhir_request(f"{scheme} {token}"))
    assert caller.client_id == client.client.client_id


def test_es256_tokens_verify_when_es256_is_configured(make_services, client, make_tenant):
    services = make_services(token_algorithm="ES256")
    mapped = make_tenant(client.client.client_id)
    token = issue(services, client, mapped)
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    caller = verifier_for(services).verify(fhir_request(f"Bearer {token}"))
    assert caller.tenant_id == mapped.tenant_id


# ---------------------------------------------------------------------------- 28, 29


def test_missing_authorization_gets_a_bare_challenge_and_login(verifier):
    error = refused(verifier, fhir_request(), Unauthorized)
    assert error.status == 401
    assert error.code == "login"
    assert error.headers == {"WWW-Authenticate": BARE_CHALLENGE}
    assert error.diagnostics == "a bearer token is required"


@pytest.mark.parametrize("authorization", ["Basic dXNlcjpwYXNz", "Token x", "Negotiate abc", ""])
def test_other_scheme_gets_a_bare_challenge(verifier, authorization):
    error = refused(verifier, fhir_request(authorization), Unauthorized)
    assert error.status == 401
    assert error.code == "login"
    assert error.headers == {"WWW-Authenticate": BARE_CHALLENGE}
    assert "error=" not in error.headers["WWW-Authenticate"]


# ---------------------------------------------------------------------------- 31


def assert_invalid_request(verifier: BearerVerifier, request: Request) -> None:
    error = refused(verifier, request, InvalidRequest)
    assert error.status == 400
    assert error.code == "invalid"
    assert error.headers["WWW-Authenticate"].startswith(INVALID_REQUEST)


def test_bearer_without_a_token_is_invalid_request(verifier):
    assert_invalid_request(verifier, fhir_request("Bearer"))
    assert_invalid_request(verifier, fhir_request("Bearer   "))


def test_bearer_with_two_tokens_is_invalid_request(verifier, token):
    assert_invalid_request(verifier, fhir_request(f"Bearer {token} {token}"))
    assert_invalid_request(verifier, fhir_request("Bearer a b"))


def test_two_authorization_headers_are_invalid_request(verifier, token):
    assert_invalid_request(verifier, fhir_request([f"Bearer {token}", f"Bearer {token}"]))


def test_header_plus_query_token_is_invalid_request(verifier, token):
    request = fhir_request(f"Bearer {token}", url=f"{URL}?access_token={token}")
    assert_invalid_request(verifier, request)


# ---------------------------------------------------------------------------- 32


def test_query_token_alone_is_refused_and_never_logged(verifier, token, caplog):
    caplog.set_level(logging.DEBUG)
    error = refused(
        verifier, fhir_request(url=f"{URL}?_format=json&access_token={token}"), Unauthorized
    )
    assert error.status == 401
    assert error.headers == {"WWW-Authenticate": BARE_CHALLENGE}
    assert token not in error.diagnostics
    assert caplog.records, "the refusal is logged, without the token"
    assert token not in caplog.text


def test_tokens_are_never_logged_accepted_or_refused(
    verifier, token, services, client, tenant, caplog
):
    caplog.set_level(logging.DEBUG)
    verifier.verify(fhir_request(f"Bearer {token}"))
    bad = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(Unauthorized):
        verifier.verify(fhir_request(f"Bearer {bad}"))
    expired = forge(services, claims_for(services, client, tenant, exp=int(time.time()) - 300))
    with pytest.raises(Unauthorized):
        verifier.verify(fhir_request(f"Bearer {expired}"))
    for secret_text in (token, bad, expired, token.split(".")[2]):
        assert secret_text not in caplog.text


# ---------------------------------------------------------------------------- 33


@pytest.mark.parametrize(
    "garbage",
    [
        "garbage",
        "a.b",
        "a.b.c.d",
        "!!!.???.***",
        "eyJhbGciOiJSUzI1NiJ9.%%%.sig",
        b64url(b"not json") + "." + b64url(b"{}") + ".c2ln",
        b64url(b"[1,2]") + "." + b64url(b"{}") + ".c2ln",
        b64url(b'{"alg":"RS256"') + "." + b64url(b"{}") + ".c2ln",
        "e30.e30.",  # {} . {} . empty
        "\u00e9t\u00e9.e30.e30",
    ],
)
def test_garbage_token_is_invalid_token_not_500(verifier, garbage):
    error = refused(verifier, fhir_request(f"Bearer {garbage}"), Unauthorized)
    assert error.headers["WWW-Authenticate"].startswith(INVALID_TOKEN)
    assert error.diagnostics in ("token is malformed", "algorithm not allowed")


def test_bad_base64_header_is_malformed(verifier):
    assert_invalid_token(verifier, "e-_.e30.e30", "token is malformed")


def test_non_json_payload_with_good_header_is_refused(verifier, services):
    signing = services.signing_keys.current()
    header = b64url(json.dumps({"alg": "RS256", "typ": "at+jwt", "kid": signing.kid}).encode())
    signing_input = f"{header}.{b64url(b'not json')}"
    from jwt.algorithms import RSAAlgorithm

    signature = RSAAlgorithm(RSAAlgorithm.SHA256).sign(signing_input.encode(), signing.private_key)
    assert_invalid_token(verifier, f"{signing_input}.{b64url(signature)}", "token is malformed")


def test_100_kb_token_is_invalid_token(verifier):
    assert_invalid_token(verifier, "a" * 100_000, "token is too large")


def test_token_just_over_8_kib_is_invalid_token(verifier, services, client, tenant):
    claims = claims_for(services, client, tenant, pad="x" * 6200)
    token = forge(services, claims)
    assert len(token) > 8192
    assert_invalid_token(verifier, token, "token is too large")


# ---------------------------------------------------------------------------- 34


def test_token_expired_beyond_leeway_is_refused_as_expired(verifier, services, client, tenant):
    exp = int(time.time()) - 120
    token = forge(
        services, claims_for(services, client, tenant, exp=exp, iat=exp - 900, nbf=exp - 900)
    )
    assert_invalid_token(verifier, token, f"token expired at {iso(exp)}", code="expired")


def test_issued_token_expires_after_its_lifetime_plus_leeway(services, token):
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    inside = verifier_for(services, clock=lambda: exp + 29)
    assert inside.verify(fhir_request(f"Bearer {token}")).expires_at == exp
    after = verifier_for(services, clock=lambda: exp + 30)
    assert_invalid_token(after, token, f"token expired at {iso(exp)}", code="expired")


def test_expiry_diagnostic_names_the_instant(services, client, tenant):
    exp = int(datetime(2026, 11, 22, 3, 0, tzinfo=UTC).timestamp())
    token = forge(
        services, claims_for(services, client, tenant, exp=exp, iat=exp - 900, nbf=exp - 900)
    )
    late = verifier_for(services, clock=lambda: exp + 3600)
    assert_invalid_token(late, token, "token expired at 2026-11-22T03:00:00Z", code="expired")


# ---------------------------------------------------------------------------- 35


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_unsigned_token_is_refused(verifier, services, client, tenant, alg):
    kid = services.signing_keys.current().kid
    unsigned = (
        compact({"alg": alg, "typ": "at+jwt", "kid": kid}, claims_for(services, client, tenant))
        + "."
    )
    assert_invalid_token(verifier, unsigned, "algorithm not allowed")


def test_valid_token_with_signature_stripped_is_refused(verifier, token):
    header, payload, _ = token.split(".")
    assert_invalid_token(verifier, f"{header}.{payload}.", "token signature is invalid")


# ---------------------------------------------------------------------------- 36


def spy_key_lookups(services: Services, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = services.signing_keys.verification_key

    def lookup(kid: str) -> Any:
        seen.append(kid)
        return real(kid)

    monkeypatch.setattr(services.signing_keys, "verification_key", lookup)
    return seen


def test_hs256_signed_with_the_public_key_pem_is_refused_before_key_lookup(
    services, client, tenant, monkeypatch
):
    signing = services.signing_keys.current()
    pem = signing.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = hs256({"typ": "at+jwt", "kid": signing.kid}, claims_for(services, client, tenant), pem)
    seen = spy_key_lookups(services, monkeypatch)
    assert_invalid_token(verifier_for(services), token, "algorithm not allowed")
    assert seen == []


def test_hs256_signed_with_the_public_jwk_bytes_is_refused_before_key_lookup(
    services, client, tenant, monkeypatch
):
    signing = services.signing_keys.current()
    claims = claims_for(services, client, tenant)
    seen = spy_key_lookups(services, monkeypatch)
    for jwk_bytes in (
        json.dumps(signing.public_jwk()).encode(),
        json.dumps(services.signing_keys.jwks()).encode(),
    ):
        token = hs256({"typ": "at+jwt", "kid": signing.kid}, claims, jwk_bytes)
        assert_invalid_token(verifier_for(services), token, "algorithm not allowed")
    assert seen == []


@pytest.mark.parametrize("alg", ["RS512", "PS256", "ES256", "rs256", "HS512"])
def test_any_algorithm_but_the_configured_one_is_refused(
    services, client, tenant, monkeypatch, alg
):
    token = (
        compact(
            {"alg": alg, "typ": "at+jwt", "kid": services.signing_keys.current().kid},
            claims_for(services, client, tenant),
        )
        + ".c2ln"
    )
    seen = spy_key_lookups(services, monkeypatch)
    assert_invalid_token(verifier_for(services), token, "algorithm not allowed")
    assert seen == []


def test_rs256_token_is_refused_when_es256_is_configured(make_services, services, token):
    es256 = make_services(token_algorithm="ES256")
    assert_invalid_token(verifier_for(es256), token, "algorithm not allowed")


# ---------------------------------------------------------------------------- 37


def test_tampered_payload_fails_the_signature(verifier, token, services, client, make_tenant):
    header, _, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    other = make_tenant(client.client.client_id)
    claims.update(tid=other.tenant_id, scope=other.tenant_id)
    tampered = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
    assert_invalid_token(verifier, tampered, "token signature is invalid")


def test_tampered_header_fails_the_signature(verifier, token):
    _, payload, signature = token.split(".")
    original = jwt.get_unverified_header(token)
    header = b64url(json.dumps({**original, "typ": "application/at+jwt"}).encode())
    assert_invalid_token(verifier, f"{header}.{payload}.{signature}", "token signature is invalid")


def test_attacker_key_in_jwk_jku_x5u_x5c_fails_signature_without_fetch(
    services, client, tenant, network_calls
):
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attacker_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key()))
    token = forge(
        services,
        claims_for(services, client, tenant),
        key=attacker,
        headers={
            "jwk": attacker_jwk,
            "jku": "https://evil.example/jwks.json",
            "x5u": "https://evil.example/cert.pem",
            "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"],
        },
    )
    assert_invalid_token(verifier_for(services), token, "token signature is invalid")
    assert network_calls == []


def test_attacker_key_with_its_own_kid_is_an_unknown_key_without_fetch(
    services, client, tenant, network_calls
):
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = forge(
        services,
        claims_for(services, client, tenant),
        key=attacker,
        headers={"kid": "attacker-key", "jku": "https://evil.example/jwks.json"},
    )
    assert_invalid_token(verifier_for(services), token, "unknown signing key")
    assert network_calls == []


def test_missing_kid_is_refused(verifier, services, client, tenant):
    signing = services.signing_keys.current()
    token = jwt.encode(
        claims_for(services, client, tenant),
        signing.private_key,
        algorithm=signing.algorithm,
        headers={"typ": "at+jwt"},
    )
    assert_invalid_token(verifier, token, "missing header: kid")


@pytest.mark.parametrize("kid", ["", "k" * 500, "../../secrets/x", "kid\u00e9"])
def test_odd_kid_is_an_unknown_key_and_not_echoed(verifier, services, client, tenant, kid):
    token = forge(services, claims_for(services, client, tenant), headers={"kid": kid})
    error = assert_invalid_token(verifier, token, "unknown signing key")
    if kid:
        assert kid not in error.headers["WWW-Authenticate"]


def test_critical_header_extension_is_refused(verifier, services, client, tenant):
    token = forge(
        services, claims_for(services, client, tenant), headers={"crit": ["exp"], "exp": 1}
    )
    assert_invalid_token(verifier, token, "token is malformed")


# ---------------------------------------------------------------------------- 38


def test_wrong_issuer_is_refused(verifier, services, client, tenant):
    for issuer in (
        "https://evil.example/oauth2",
        services.settings.token_issuer + "/",
        "https://bridge.test/api/oauth",
    ):
        token = forge(services, claims_for(services, client, tenant, iss=issuer))
        assert_invalid_token(verifier, token, "wrong issuer")


def test_non_string_issuer_is_refused(verifier, services, client, tenant):
    token = forge(
        services, claims_for(services, client, tenant, iss=[services.settings.token_issuer])
    )
    assert_invalid_token(verifier, token, "wrong issuer")


def test_token_for_the_management_api_is_refused(verifier, services, client, tenant):
    token = forge(
        services, claims_for(services, client, tenant, aud="https://bridge.test/api/manage")
    )
    assert_invalid_token(verifier, token, "wrong audience")


def test_multi_audience_token_is_refused(verifier, services, client, tenant):
    audiences = [services.settings.token_audience, "https://other.example"]
    token = forge(services, claims_for(services, client, tenant, aud=audiences))
    assert_invalid_token(verifier, token, "wrong audience")


def test_azure_ad_token_for_the_tenant_is_refused(verifier, services, tenant, client):
    # Shaped like an Entra ID v2 app token: typ JWT, Entra issuer, an API audience, Entra kid.
    entra = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {
        "aud": "api://ehr-bridge",
        "iss": f"https://login.microsoftonline.com/{tenant.tenant_id}/v2.0",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "tid": tenant.tenant_id,
        "sub": client.client.client_id,
        "azp": client.client.client_id,
        "oid": str(uuid.uuid4()),
        "ver": "2.0",
        "uti": "abc",
        "roles": ["Patients.Read"],
    }
    token = jwt.encode(
        claims,
        entra,
        algorithm="RS256",
        headers={"typ": "JWT", "kid": "nOo3ZDrODXEK1jKWhXslHR_KXEg"},
    )
    assert_invalid_token(verifier, token, "token is not an access token (typ)")
    # Even with our typ it names a key we never published.
    at_jwt = jwt.encode(
        claims,
        entra,
        algorithm="RS256",
        headers={"typ": "at+jwt", "kid": "nOo3ZDrODXEK1jKWhXslHR_KXEg"},
    )
    assert_invalid_token(verifier, at_jwt, "unknown signing key")


# ---------------------------------------------------------------------------- 39


@pytest.mark.parametrize(
    "typ", ["JWT", "jwt", "client-authentication+jwt", "at+jwt2", "application/jwt", None]
)
def test_token_that_is_not_an_access_token_is_refused(verifier, services, client, tenant, typ):
    token = forge(services, claims_for(services, client, tenant), headers={"typ": typ})
    assert_invalid_token(verifier, token, "token is not an access token (typ)")


def test_client_assertion_signed_with_our_key_is_refused(verifier, services, client):
    # An RFC 7523 assertion: typ JWT, iss = sub = client, aud = the token URL.
    client_id = client.client.client_id
    now = int(time.time())
    assertion = forge(
        services,
        {
            "iss": client_id,
            "sub": client_id,
            "aud": "https://bridge.test/api/oauth2/token",
            "exp": now + 300,
            "iat": now,
            "jti": str(uuid.uuid4()),
        },
        headers={"typ": "JWT"},
    )
    assert_invalid_token(verifier, assertion, "token is not an access token (typ)")


@pytest.mark.parametrize("typ", ["AT+JWT", "application/at+jwt", "Application/AT+JWT"])
def test_typ_is_compared_case_insensitively_with_media_type_form(
    verifier, services, client, tenant, typ
):
    token = forge(services, claims_for(services, client, tenant), headers={"typ": typ})
    assert verifier.verify(fhir_request(f"Bearer {token}")).client_id == client.client.client_id


# ---------------------------------------------------------------------------- 40


@pytest.mark.parametrize(
    "claim", ["exp", "iss", "aud", "tid", "client_id", "jti", "iat", "nbf", "sub", "scope", "sv"]
)
def test_missing_claim_is_refused(verifier, services, client, tenant, claim):
    token = forge(services, claims_for(services, client, tenant, **{claim: None}))
    assert_invalid_token(verifier, token, f"missing claim: {claim}")


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("exp", "9999999999"),
        ("exp", True),
        ("iat", 1e300),
        ("nbf", -5),
        ("jti", 7),
        ("jti", ""),
        ("sv", ["v"]),
        ("sub", 12),
    ],
)
def test_claim_of_the_wrong_type_is_refused(verifier, services, client, tenant, claim, value):
    token = forge(services, claims_for(services, client, tenant, **{claim: value}))
    error = refused(verifier, fhir_request(f"Bearer {token}"), Unauthorized)
    assert error.diagnostics == f"invalid claim: {claim}"


# ---------------------------------------------------------------------------- 41


@pytest.mark.parametrize("claim", ["iat", "nbf"])
def test_iat_or_nbf_five_minutes_ahead_is_refused(verifier, services, client, tenant, claim):
    ahead = int(time.time()) + 300
    token = forge(services, claims_for(services, client, tenant, **{claim: ahead}))
    assert_invalid_token(verifier, token, "token not yet valid")


@pytest.mark.parametrize("claim", ["iat", "nbf"])
def test_iat_or_nbf_within_the_leeway_is_accepted(verifier, services, client, tenant, claim):
    ahead = int(time.time()) + 20
    token = forge(services, claims_for(services, client, tenant, **{claim: ahead}))
    assert verifier.verify(fhir_request(f"Bearer {token}")).tenant_id == tenant.tenant_id


def test_pyjwt_itself_treats_future_iat_and_nbf_as_immature(services, client, tenant):
    # The verifier checks times against its injected clock with pyjwt's rules; pin those rules.
    signing = services.signing_keys.current()
    for claim in ("iat", "nbf"):
        token = forge(
            services, claims_for(services, client, tenant, **{claim: int(time.time()) + 300})
        )
        with pytest.raises(jwt.ImmatureSignatureError):
            jwt.decode(
                token,
                signing.private_key.public_key(),
                algorithms=["RS256"],
                audience=services.settings.token_audience,
                leeway=30,
            )


# ---------------------------------------------------------------------------- identity claims


@pytest.mark.parametrize("claim", ["client_id", "tid"])
def test_upper_case_guid_claim_is_refused(verifier, services, client, tenant, claim):
    claims = claims_for(services, client, tenant)
    claims[claim] = claims[claim].upper()
    claims["sub"], claims["scope"] = claims["client_id"], claims["tid"]
    assert_invalid_token(verifier, forge(services, claims), f"invalid claim: {claim}")


@pytest.mark.parametrize("claim", ["client_id", "tid"])
def test_non_guid_claim_is_refused(verifier, services, client, tenant, claim):
    claims = claims_for(services, client, tenant)
    claims[claim] = "{" + claims[claim] + "}"
    claims["sub"], claims["scope"] = claims["client_id"], claims["tid"]
    assert_invalid_token(verifier, forge(services, claims), f"invalid claim: {claim}")


def test_subject_other_than_the_client_is_refused(verifier, services, client, tenant):
    token = forge(services, claims_for(services, client, tenant, sub=str(uuid.uuid4())))
    assert_invalid_token(verifier, token, "invalid claim: sub")


def test_scope_other_than_the_tenant_is_refused(verifier, services, client, tenant):
    scope = f"{tenant.tenant_id} {uuid.uuid4()}"
    token = forge(services, claims_for(services, client, tenant, scope=scope))
    assert_invalid_token(verifier, token, "invalid claim: scope")


def test_unknown_client_in_a_signed_token_is_refused_as_disabled(
    verifier, services, client, tenant
):
    stranger = str(uuid.uuid4())
    token = forge(services, claims_for(services, client, tenant, client_id=stranger, sub=stranger))
    assert_invalid_token(verifier, token, "client is disabled")


def test_unknown_secret_version_is_refused(verifier, services, client, tenant):
    token = forge(services, claims_for(services, client, tenant, sv="0" * 32))
    assert_invalid_token(verifier, token, "secret version is disabled or expired")


# ---------------------------------------------------------------------------- 42, 73 revocation


def test_disabled_client_is_refused_once_the_cache_ttl_passes(verifier, services, client, token):
    verifier.verify(fhir_request(f"Bearer {token}"))
    services.clients.update(client.client.client_id, enabled=False)
    services.lookups.forget()
    assert_invalid_token(verifier, token, "client is disabled")


def test_disabled_client_still_passes_until_the_cache_ttl(verifier, services, client, token):
    # The documented revocation delay: this instance's cache holds the client for the TTL.
    verifier.verify(fhir_request(f"Bearer {token}"))
    services.clients.update(client.client.client_id, enabled=False)
    assert verifier.verify(fhir_request(f"Bearer {token}")).client_id == client.client.client_id


def test_disabled_secret_version_is_refused(verifier, services, client, token):
    verifier.verify(fhir_request(f"Bearer {token}"))
    services.clients.disable_secret_version(client.client.client_id, client.version.version)
    services.lookups.forget()
    assert_invalid_token(verifier, token, "secret version is disabled or expired")


def test_secret_rotated_without_grace_is_refused(verifier, services, client, tenant, token):
    verifier.verify(fhir_request(f"Bearer {token}"))
    rotated = services.clients.rotate_secret(client.client.client_id, grace_seconds=0)
    services.lookups.forget()
    assert_invalid_token(verifier, token, "secret version is disabled or expired")
    fresh = issue(services, rotated, tenant)
    assert verifier.verify(fhir_request(f"Bearer {fresh}")).secret_version == (
        rotated.version.version
    )


def test_secret_rotated_with_grace_verifies_until_the_grace_ends(services, client, token):
    services.clients.rotate_secret(client.client.client_id, grace_seconds=300)
    services.lookups.forget()
    assert verifier_for(services).verify(fhir_request(f"Bearer {token}"))
    # Validity is checked at use time against the clock, not a cache TTL later.
    after_grace = verifier_for(services, clock=lambda: time.time() + 301)
    assert_invalid_token(after_grace, token, "secret version is disabled or expired")


def test_unmapped_tenant_is_forbidden(verifier, services, tenant, token):
    verifier.verify(fhir_request(f"Bearer {token}"))
    services.tenants.delete(tenant.tenant_id)
    services.lookups.forget()
    assert_forbidden(verifier, token, "tenant is not mapped")


def test_tenant_never_mapped_is_forbidden(verifier, services, client, tenant):
    stranger = str(uuid.uuid4())
    token = forge(services, claims_for(services, client, tenant, tid=stranger, scope=stranger))
    assert_forbidden(verifier, token, "tenant is not mapped")


def test_disabled_tenant_is_forbidden(verifier, services, tenant, token):
    verifier.verify(fhir_request(f"Bearer {token}"))
    services.tenants.put(dataclasses.replace(tenant, enabled=False))
    services.lookups.forget()
    assert_forbidden(verifier, token, "tenant is disabled")


def test_client_removed_from_tenant_is_forbidden(verifier, services, tenant, token):
    verifier.verify(fhir_request(f"Bearer {token}"))
    services.tenants.put(dataclasses.replace(tenant, allowed_client_ids=()))
    services.lookups.forget()
    assert_forbidden(verifier, token, "client is not allowed for this tenant")


def test_unmapped_tenant_still_routes_until_the_cache_ttl(verifier, services, tenant, token):
    verifier.verify(fhir_request(f"Bearer {token}"))
    services.tenants.delete(tenant.tenant_id)
    assert verifier.verify(fhir_request(f"Bearer {token}")).tenant_id == tenant.tenant_id


# ---------------------------------------------------------------------------- store outages


def test_secret_store_outage_is_503_with_retry_after(verifier, services, token, monkeypatch):
    verifier.verify(fhir_request(f"Bearer {token}"))
    services.lookups.forget()

    def down(name: str) -> list[SecretVersion]:
        raise SecretStoreUnavailable("key vault throttled", retry_after=7)

    monkeypatch.setattr(services.secret_store, "list_versions", down)
    error = refused(verifier, fhir_request(f"Bearer {token}"), Unavailable)
    assert (error.status, error.code) == (503, "transient")
    assert error.headers == {"Retry-After": "7"}


def test_table_outage_is_503_with_retry_after(verifier, services, token, monkeypatch):
    verifier.verify(fhir_request(f"Bearer {token}"))
    services.lookups.forget()

    def down() -> Any:
        raise StoreUnavailable("table busy", retry_after=3)

    monkeypatch.setattr(services.clients, "list_all", down)
    error = refused(verifier, fhir_request(f"Bearer {token}"), Unavailable)
    assert error.status == 503
    assert error.headers == {"Retry-After": "3"}


def test_signing_key_store_outage_is_503(services, token, monkeypatch):
    def down(name: str) -> list[SecretVersion]:
        raise SecretStoreUnavailable("key vault down", retry_after=5)

    cold = SigningKeys(services.secret_store, services.settings.token_algorithm, 60)
    monkeypatch.setattr(services.secret_store, "list_versions", down)
    verifier = BearerVerifier(services.settings, cold, services.lookups)
    error = refused(verifier, fhir_request(f"Bearer {token}"), Unavailable)
    assert error.headers == {"Retry-After": "5"}


# ---------------------------------------------------------------------------- 73 key rotation


def test_token_of_the_previous_key_verifies_after_rotation(
    services, verifier, client, tenant, token
):
    old_kid = jwt.get_unverified_header(token)["kid"]
    rotate_signing_key(
        services.secret_store,
        services.settings.token_algorithm,
        retire_previous_after=timedelta(hours=1),
    )
    services.signing_keys.refresh()
    fresh = issue(services, client, tenant)
    assert jwt.get_unverified_header(fresh)["kid"] != old_kid
    assert verifier.verify(fhir_request(f"Bearer {token}")).kid == old_kid
    assert verifier.verify(fhir_request(f"Bearer {fresh}")).kid != old_kid


def test_token_of_a_retired_key_is_refused(services, verifier, token):
    verifier.verify(fhir_request(f"Bearer {token}"))
    rotate_signing_key(
        services.secret_store, services.settings.token_algorithm, retire_previous_after=timedelta(0)
    )
    services.signing_keys.refresh()
    assert_invalid_token(verifier, token, "unknown signing key")


def counting_verifier(services: Services) -> tuple[BearerVerifier, CountingStore]:
    store = CountingStore(services.secret_store)
    keys = SigningKeys(store, services.settings.token_algorithm, 60)  # type: ignore[arg-type]
    return BearerVerifier(services.settings, keys, services.lookups), store


def test_key_rotated_in_elsewhere_verifies_after_one_refresh(
    services, make_services, client, tenant, token
):
    verifier, store = counting_verifier(services)
    verifier.verify(fhir_request(f"Bearer {token}"))  # this instance's key list is now cached
    rotate_signing_key(
        services.secret_store,
        services.settings.token_algorithm,
        retire_previous_after=timedelta(hours=1),
    )
    other_instance = make_services()
    fresh = issue(other_instance, client, tenant)
    before = store.signing_key_listings
    assert (
        verifier.verify(fhir_request(f"Bearer {fresh}")).kid
        != (jwt.get_unverified_header(token)["kid"])
    )
    assert store.signing_key_listings - before == 1


def test_unknown_kids_refresh_the_key_list_at_most_once_in_ten_seconds(
    services, client, tenant, token, network_calls
):
    verifier, store = counting_verifier(services)
    verifier.verify(fhir_request(f"Bearer {token}"))
    before = store.signing_key_listings
    for _ in range(25):
        forged = forge(
            services, claims_for(services, client, tenant), headers={"kid": uuid.uuid4().hex}
        )
        assert_invalid_token(verifier, forged, "unknown signing key")
    assert store.signing_key_listings - before == 1
    assert network_calls == []
    # A known kid keeps verifying from the cache meanwhile.
    assert verifier.verify(fhir_request(f"Bearer {token}"))
    assert store.signing_key_listings - before == 1


def test_unknown_kid_may_refresh_again_after_ten_seconds(
    services, client, tenant, token, monkeypatch
):
    now = [1000.0]
    monkeypatch.setattr(
        "shared.auth.signing_keys.time", types.SimpleNamespace(monotonic=lambda: now[0])
    )
    verifier, store = counting_verifier(services)
    verifier.verify(fhir_request(f"Bearer {token}"))

    def unknown() -> None:
        forged = forge(
            services, claims_for(services, client, tenant), headers={"kid": uuid.uuid4().hex}
        )
        assert_invalid_token(verifier, forged, "unknown signing key")

    before = store.signing_key_listings
    unknown()
    now[0] += 9.9
    unknown()
    assert store.signing_key_listings - before == 1
    now[0] += 0.2
    unknown()
    assert store.signing_key_listings - before == 2


def test_a_known_but_expired_kid_does_not_force_a_refresh(services, token):
    store = CountingStore(services.secret_store)
    keys = SigningKeys(store, services.settings.token_algorithm, 60)  # type: ignore[arg-type]
    verifier = BearerVerifier(services.settings, keys, services.lookups)
    verifier.verify(fhir_request(f"Bearer {token}"))
    rotate_signing_key(
        services.secret_store, services.settings.token_algorithm, retire_previous_after=timedelta(0)
    )
    keys.refresh()  # this instance's cache TTL passed
    before = store.signing_key_listings
    assert_invalid_token(verifier, token, "unknown signing key")
    assert store.signing_key_listings - before == 1  # the TTL reload, no forced second one


# ---------------------------------------------------------------------------- ES256 key confusion


def test_ec_token_signed_by_an_attacker_p256_key_fails_signature(
    make_services, client, make_tenant
):
    services = make_services(token_algorithm="ES256")
    mapped = make_tenant(client.client.client_id)
    attacker = ec.generate_private_key(ec.SECP256R1())
    token = forge(services, claims_for(services, client, mapped), key=attacker, algorithm="ES256")
    assert_invalid_token(verifier_for(services), token, "token signature is invalid")


def test_a_token_seen_before_is_not_signature_checked_again_but_still_revocable(
    services, verifier, token, client
):
    """The verified-token cache saves the signature check only; revocation still applies."""
    calls = []
    original = verifier._verify_signature

    def counted(raw: str, header: dict[str, Any]):
        calls.append(1)
        return original(raw, header)

    verifier._verify_signature = counted  # type: ignore[method-assign]
    for _ in range(3):
        verifier.verify(fhir_request(f"Bearer {token}"))
    assert len(calls) == 1
    services.clients.update(client.client.client_id, enabled=False)
    services.lookups.forget()
    assert_invalid_token(verifier, token, "client is disabled")
