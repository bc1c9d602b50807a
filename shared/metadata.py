"""The unauthenticated discovery documents: each face's /metadata and SMART configuration.

The capability statement is generated for the face's own release, never converted from a
provider's: it advertises exactly what the Patients app reads and what the proxy translates.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from shared import routes
from shared.fhir import json_mime_type
from shared.fhir.outcome import outcome_response
from shared.fhir.versions import FhirVersion
from shared.http import Request, Response, json_response, public_origin
from shared.settings import FACES, Settings

if TYPE_CHECKING:
    from shared.fhir.catalog import ResourceType, SearchParam

log = logging.getLogger(__name__)

SOFTWARE_NAME: Final = "EHR Bridge"
# Equal to pyproject's version (a unit test keeps them together); read at import it would cost
# a package-metadata lookup on cold start and fail where the app is not pip-installed.
SOFTWARE_VERSION: Final = "0.1.0"
# CapabilityStatement.date is when the statement last changed: bump it with the tables below
# and with what shared/fhir/catalog.py says the app reads.
STATEMENT_DATE: Final = "2026-11-22"

# The body depends only on configuration and the public origin, and carries nothing secret.
CACHE_CONTROL: Final = "public, max-age=300"
# Built from the request's own Host (EHRB_PUBLIC_BASE_URL unset): no shared cache may keep it,
# or one forged Host would be served to everyone behind that cache.
CACHE_CONTROL_FROM_REQUEST: Final = "private, max-age=300"

OAUTH_URIS_EXTENSION: Final = (
    "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
)
_SEARCH_PARAMETER_BASE: Final = "http://hl7.org/fhir/SearchParameter/"


@dataclass(frozen=True)
class _FaceRules:
    """How one release spells the statement."""

    version: FhirVersion
    resource_type: str
    security_system: str
    # DSTU2 and STU3 make acceptUnknown 1..1; R4 removed the element.
    accept_unknown: bool
    # DSTU2's system interactions are transaction/search-system/history-system only: batch
    # support is rest.transactionMode there.
    batch_as_transaction_mode: bool
    # searchParam.target and .modifier exist in DSTU2 only.
    search_param_details: bool
    descending_sort: str


_FACE_RULES: Final[Mapping[str, _FaceRules]] = {
    FhirVersion.DSTU2: _FaceRules(
        version=FhirVersion.DSTU2,
        resource_type="Conformance",
        security_system="http://hl7.org/fhir/restful-security-service",
        accept_unknown=True,
        batch_as_transaction_mode=True,
        search_param_details=True,
        descending_sort="_sort:desc={}",
    ),
    FhirVersion.STU3: _FaceRules(
        version=FhirVersion.STU3,
        resource_type="CapabilityStatement",
        security_system="http://hl7.org/fhir/restful-security-service",
        accept_unknown=True,
        batch_as_transaction_mode=False,
        search_param_details=False,
        descending_sort="_sort=-{}",
    ),
    FhirVersion.R4: _FaceRules(
        version=FhirVersion.R4,
        resource_type="CapabilityStatement",
        security_system="http://terminology.hl7.org/CodeSystem/restful-security-service",
        accept_unknown=False,
        batch_as_transaction_mode=False,
        search_param_details=False,
        descending_sort="_sort=-{}",
    ),
}
assert set(_FACE_RULES) == set(FACES)


_READ_SEARCH: Final = ("read", "search-type")
_READ: Final = ("read",)


def capability_statement(
    face: str,
    token_url: str,
    *,
    software_version: str,
    published: str,
    base_url: str | None = None,
) -> dict[str, Any]:
    """The face's Conformance (DSTU2) or CapabilityStatement (STU3, R4) as a JSON document."""
    rules = _FACE_RULES.get(face)
    if rules is None:
        raise ValueError(f"unknown face {face!r}")
    implementation: dict[str, Any] = {
        "description": f"{SOFTWARE_NAME} FHIR {rules.version.label} face"
    }
    if base_url:
        implementation["url"] = base_url
    statement: dict[str, Any] = {
        "resourceType": rules.resource_type,
        "name": "EHRBridge",
        "status": "active",
        "date": published,
        "publisher": SOFTWARE_NAME,
        "kind": "instance",
        "software": {"name": SOFTWARE_NAME, "version": software_version},
        # R4 cpb-14: an instance statement must have implementation.
        "implementation": implementation,
        "fhirVersion": rules.version.fhir_version,
    }
    if rules.accept_unknown:
        # "no" promises the least: the proxy may refuse unknown elements in what it receives.
        statement["acceptUnknown"] = "no"
    # JSON only: XML bodies are refused (docs/security.md row 60).
    statement["format"] = ["json", json_mime_type(face)]
    statement["rest"] = [_rest(face, rules, token_url)]
    return statement


def _origin_of(token_url: str) -> str:
    return token_url.removesuffix(f"/{routes.ROUTE_PREFIX}/{routes.TOKEN}")


def _rest(face: str, rules: _FaceRules, token_url: str) -> dict[str, Any]:
    rest: dict[str, Any] = {
        "mode": "server",
        "documentation": _rest_documentation(rules),
        "security": _security(rules, token_url, _origin_of(token_url)),
        "resource": _resources(face, rules),
    }
    # The app loads several resources with one batch Bundle POSTed to the base.
    if rules.batch_as_transaction_mode:
        rest["transactionMode"] = "batch"
    else:
        rest["interaction"] = [{"code": "batch"}]
    return rest


def _rest_documentation(rules: _FaceRules) -> str:
    # No release has a structured element for result parameters (_count, _sort): they are not
    # SearchParameters, so listing them as searchParam would misstate them. Say it in prose.
    label = rules.version.label
    return (
        f"{SOFTWARE_NAME}: one FHIR {label} endpoint in front of each customer's own FHIR "
        "server. Send the access token from the token URL in rest.security as a Bearer token. "
        "Load several resources at once by POSTing a batch Bundle to this base. Every search "
        "may also be sent as POST [type]/_search with a form body, accepts _count, and answers "
        "a Bundle with total. Observation and Encounter searches sort on date, newest first "
        f"with {rules.descending_sort.format('date')}."
    )


def _security(rules: _FaceRules, token_url: str, origin: str) -> dict[str, Any]:
    from shared.auth.client_auth import default_client_authentication

    return {
        "extension": [
            {
                "url": OAUTH_URIS_EXTENSION,
                # Client credentials only: there is no authorize endpoint to publish. SMART
                # 1.0's oauth-uris also names introspect and revoke: ours are RFC 7662 and 7009.
                "extension": [
                    {"url": "token", "valueUri": token_url},
                    {"url": "introspect", "valueUri": routes.introspection_url(origin)},
                    {"url": "revoke", "valueUri": routes.revocation_url(origin)},
                ],
            }
        ],
        "service": [
            {
                "coding": [{"system": rules.security_system, "code": "OAuth", "display": "OAuth"}],
                "text": "OAuth 2.0 client credentials",
            }
        ],
        "description": (
            "OAuth 2.0 client credentials grant (RFC 6749 section 4.4): POST "
            "grant_type=client_credentials and scope=<your Azure AD tenant ID> to the token URL, "
            f"authenticating with {default_client_authentication().describe()}. The scope may "
            "add SMART system scopes (system/Patient.rs); without them the token carries the "
            "client's registered default."
        ),
    }


def _resources(face: str, rules: _FaceRules) -> list[dict[str, Any]]:
    # Imported here, not with the function app: the catalogue is not needed at cold start.
    from shared.fhir.catalog import RESOURCE_TYPES

    # What every face lists: the types the Patients app reads, with the parameters it sends.
    return [_resource(face, rules, t) for t in RESOURCE_TYPES if t.app_reads]


def _resource(face: str, rules: _FaceRules, resource: ResourceType) -> dict[str, Any]:
    interactions = _READ_SEARCH if resource.app_searches else _READ
    entry: dict[str, Any] = {
        "type": resource.name_in(face),
        "interaction": [{"code": code} for code in interactions],
    }
    params = [param for param in resource.search if param.app_sends]
    if params:
        entry["searchParam"] = [_search_param(face, rules, param) for param in params]
    return entry


def _search_param(face: str, rules: _FaceRules, param: SearchParam) -> dict[str, Any]:
    out: dict[str, Any] = {"name": param.name}
    definition = param.definitions[face]
    if definition:
        out["definition"] = _SEARCH_PARAMETER_BASE + definition
    out["type"] = param.type
    notes = [param.undefined_note] if definition is None else []
    if param.sortable:
        notes.append(f"Sort key: {rules.descending_sort.format(param.name)} sorts newest first.")
    if notes:
        out["documentation"] = " ".join(notes)
    if rules.search_param_details:
        if param.target:
            out["target"] = list(param.target)
        if param.modifiers:
            out["modifier"] = list(param.modifiers)
    return out


def _scopes_supported() -> list[str]:
    """What a client may ask for: every type's read (v1 and v2), and the wildcards."""
    from shared.auth.smart_scopes import type_names

    wildcards = ["system/*.read", "system/*.rs", "system/*.write", "system/*.cruds"]
    return wildcards + [f"system/{name}.{p}" for name in type_names() for p in ("read", "rs")]


def _auth_methods() -> dict[str, list[str]]:
    """The token endpoint's authentication methods and their signing algorithms, read from the
    registry (``shared.auth.client_auth``), so the documents cannot promise another method."""
    from shared.auth.client_auth import default_client_authentication

    registry = default_client_authentication()
    methods = {"token_endpoint_auth_methods_supported": list(registry.method_names)}
    if registry.signing_algorithms:
        # RFC 8414 §2: present exactly when a method takes a signed assertion.
        methods["token_endpoint_auth_signing_alg_values_supported"] = list(
            registry.signing_algorithms
        )
    return methods


def smart_configuration(origin: str) -> dict[str, Any]:
    """The ``.well-known/smart-configuration`` of a client-credentials-only server."""
    # SMART App Launch 2.x: token_endpoint, grant_types_supported and capabilities are
    # required. Left out on purpose, because they would be untrue here:
    # - issuer: only with sso-openid-connect ("otherwise, omitted"); our tokens' iss is not an
    #   OpenID Connect issuer;
    # - authorization_endpoint, code_challenge_methods_supported, response_types_supported:
    #   they describe the authorization-code flow, which we do not offer (HL7's own backend
    #   services example omits them too).
    # scopes_supported lists the SMART system scopes; the tenant GUID every request also names
    # is different for every customer, and listing ours would disclose them.
    methods = _auth_methods()
    capabilities = ["client-confidential-symmetric"]
    if "token_endpoint_auth_signing_alg_values_supported" in methods:
        capabilities.append("client-confidential-asymmetric")
    return {
        "token_endpoint": routes.token_url(origin),
        **methods,
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": _scopes_supported(),
        # Optional without OpenID Connect; true, and what a resource server needs to check our
        # access tokens.
        "jwks_uri": routes.jwks_url(origin),
        "introspection_endpoint": routes.introspection_url(origin),
        "revocation_endpoint": routes.revocation_url(origin),
        # Confidential clients; SMART v1 and v2 permission syntax in system/ scopes.
        "capabilities": [*capabilities, "permission-v1", "permission-v2"],
    }


def authorization_server_metadata(issuer: str, origin: str) -> dict[str, Any]:
    """RFC 8414 authorization server metadata."""
    methods = _auth_methods()
    return {
        "issuer": issuer,
        "token_endpoint": routes.token_url(origin),
        "jwks_uri": routes.jwks_url(origin),
        "scopes_supported": _scopes_supported(),
        # REQUIRED by §2; there is no authorization endpoint, so no response type is supported.
        "response_types_supported": [],
        "grant_types_supported": ["client_credentials"],
        **methods,
        "introspection_endpoint": routes.introspection_url(origin),
        "introspection_endpoint_auth_methods_supported": methods[
            "token_endpoint_auth_methods_supported"
        ],
        "revocation_endpoint": routes.revocation_url(origin),
        "revocation_endpoint_auth_methods_supported": methods[
            "token_endpoint_auth_methods_supported"
        ],
    }


def authorization_server_response(request: Request, settings: Settings) -> Response:
    """GET .well-known/oauth-authorization-server: the RFC 8414 document (JSON errors)."""
    if request.method != "GET":
        return json_response(
            405,
            {"error": "method_not_allowed"},
            headers={"Allow": "GET", "Cache-Control": "no-store"},
        )
    if settings.hosting.maybe_azure and not settings.public_base_url:
        log.warning("ALERT metadata refused: EHRB_PUBLIC_BASE_URL is not set in Azure")
        return json_response(500, {"error": "misconfigured"}, headers={"Cache-Control": "no-store"})
    document = authorization_server_metadata(settings.token_issuer, _origin(request, settings))
    return json_response(200, document, headers=_cache_headers(settings))


def metadata_response(request: Request, face: str, settings: Settings) -> Response:
    """GET [base]/metadata: the face's capability statement, or a FHIR error."""
    refusal = _refusal(request, face) or _unconfigured(face, settings)
    if refusal is not None:
        return refusal
    origin = _origin(request, settings)
    document = capability_statement(
        face,
        routes.token_url(origin),
        software_version=SOFTWARE_VERSION,
        published=STATEMENT_DATE,
        base_url=routes.face_base_url(origin, face),
    )
    return json_response(
        200, document, content_type=json_mime_type(face), headers=_cache_headers(settings)
    )


def smart_configuration_response(request: Request, face: str, settings: Settings) -> Response:
    """GET [base]/.well-known/smart-configuration, or a FHIR error."""
    refusal = _refusal(request, face) or _unconfigured(face, settings)
    if refusal is not None:
        return refusal
    origin = _origin(request, settings)
    return json_response(
        200,
        smart_configuration(origin),
        headers=_cache_headers(settings),
    )


def _refusal(request: Request, face: str) -> Response | None:
    if face not in FACES:
        # Never echo the requested face: it is caller input reflected into a response.
        return outcome_response(
            404,
            "not-found",
            f"Unknown FHIR endpoint. Supported versions: {', '.join(FACES)}.",
            None,
        )
    if request.method != "GET":
        # POST is routed only so that it gets this answer instead of the host's bare 404.
        return outcome_response(
            405, "not-supported", "Only GET is allowed here.", face, headers={"Allow": "GET"}
        )
    return None


def _unconfigured(face: str, settings: Settings) -> Response | None:
    # In Azure the public URL is configuration (the Bicep template sets it): a document built
    # from whatever Host a caller sent would advertise the caller's choice of token endpoint.
    if settings.hosting.maybe_azure and not settings.public_base_url:
        log.warning("ALERT metadata refused: EHRB_PUBLIC_BASE_URL is not set in Azure")
        return outcome_response(
            500,
            "exception",
            "The service is misconfigured: its public URL (EHRB_PUBLIC_BASE_URL) is not set.",
            face,
            headers={"Cache-Control": "no-store"},
        )
    return None


def _origin(request: Request, settings: Settings) -> str:
    return public_origin(request, settings.public_base_url, settings.trust_forwarded_headers)


def _cache_headers(settings: Settings) -> dict[str, str]:
    if not settings.public_base_url:
        headers = {"Cache-Control": CACHE_CONTROL_FROM_REQUEST}
    else:
        headers = {"Cache-Control": CACHE_CONTROL}
    if not settings.public_base_url and settings.trust_forwarded_headers:
        # The URLs inside then come from these headers, which are not part of a cache key.
        headers["Vary"] = "X-Forwarded-Host, X-Forwarded-Proto"
    return headers
