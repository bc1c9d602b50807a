"""End to end through the dev host: SMART scopes, RFC 7662 introspection, RFC 7009 revocation and
the discovery documents, called by real client libraries (Authlib, requests-oauthlib) over HTTP.
"""

from __future__ import annotations

import pytest
import requests

from tests.e2e.test_oauth_through_devhost import ISSUER, Stack, registered, stack

pytestmark = pytest.mark.e2e

__all__ = ["registered", "stack"]  # fixtures shared with the OAuth end-to-end tests


def introspect_url(stack: Stack) -> str:
    return f"{stack.base}/api/oauth2/introspect"


def revoke_url(stack: Stack) -> str:
    return f"{stack.base}/api/oauth2/revoke"


def test_authlib_asks_for_smart_scopes_and_gets_what_was_granted(stack, registered):
    from authlib.integrations.requests_client import OAuth2Session

    client_id, secret, tenant_id = registered
    with OAuth2Session(client_id, secret, scope=f"{tenant_id} system/Patient.read") as session:
        token = session.fetch_token(stack.token_url, grant_type="client_credentials")
    assert token["scope"] == f"{tenant_id} system/Patient.rs"


def test_requests_oauthlib_asks_for_scopes_as_a_list(stack, registered):
    from oauthlib.oauth2 import BackendApplicationClient
    from requests_oauthlib import OAuth2Session

    client_id, secret, tenant_id = registered
    session = OAuth2Session(client=BackendApplicationClient(client_id=client_id))
    token = session.fetch_token(
        stack.token_url,
        client_id=client_id,
        client_secret=secret,
        scope=[tenant_id, "system/Observation.rs"],
    )
    assert token["scope"] == [tenant_id, "system/Observation.rs"]


def test_authlib_introspects_then_revokes_its_token(stack, registered):
    from authlib.integrations.requests_client import OAuth2Session

    client_id, secret, tenant_id = registered
    with OAuth2Session(client_id, secret, scope=tenant_id) as session:
        token = session.fetch_token(stack.token_url, grant_type="client_credentials")
        access_token = token["access_token"]
        described = session.introspect_token(introspect_url(stack), token=access_token)
        assert described.status_code == 200
        assert described.headers["Cache-Control"] == "no-store"
        assert described.json()["active"] is True
        assert described.json()["scope"] == f"{tenant_id} system/*.rs"
        revoked = session.revoke_token(
            revoke_url(stack), token=access_token, token_type_hint="access_token"
        )
        assert revoked.status_code == 200
        after = session.introspect_token(introspect_url(stack), token=access_token)
        assert after.json() == {"active": False}


def test_a_revoked_token_is_refused_by_the_fhir_proxy_over_http(stack, registered):
    from authlib.integrations.requests_client import OAuth2Session

    client_id, secret, tenant_id = registered
    with OAuth2Session(client_id, secret, scope=tenant_id) as session:
        token = session.fetch_token(stack.token_url, grant_type="client_credentials")
        session.revoke_token(revoke_url(stack), token=token["access_token"])
    response = requests.get(
        f"{stack.base}/api/fhir/r4/Patient/example",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()["issue"][0]["diagnostics"] == "token is revoked"


def test_introspection_with_a_wrong_secret_is_401_over_http(stack, registered):
    client_id, _, _ = registered
    response = requests.post(
        introspect_url(stack), data={"token": "x"}, auth=(client_id, "wrong"), timeout=10
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_the_rfc_8414_document_is_served_under_the_route_prefix(stack):
    response = requests.get(f"{stack.base}/api/.well-known/oauth-authorization-server", timeout=10)
    assert response.status_code == 200
    document = response.json()
    assert document["issuer"] == ISSUER
    assert document["token_endpoint"] == stack.token_url
    assert document["introspection_endpoint"] == introspect_url(stack)
    assert document["revocation_endpoint"] == revoke_url(stack)


def test_the_smart_configuration_names_the_introspection_and_revocation_endpoints(stack):
    response = requests.get(f"{stack.base}/api/fhir/r4/.well-known/smart-configuration", timeout=10)
    document = response.json()
    assert document["introspection_endpoint"] == introspect_url(stack)
    assert document["revocation_endpoint"] == revoke_url(stack)
    assert "system/*.rs" in document["scopes_supported"]
