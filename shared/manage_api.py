"""The management API (``manage/…``): the partner's auth registration portal, as JSON.

Routes are anonymous at the Functions host; the app itself requires an operator
(``shared/operators.py``): an Entra principal with an app role, from App Service
Authentication, where that is configured (the reader role may GET, only the operator role may
change anything), or the admin key (``EHRB_LOCAL_ADMIN_KEY`` locally, Key Vault's
``manage-admin-key`` in Azure) as ``x-functions-key``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.audit import Actor, acting_as
from shared.auth.client_keys import (
    InvalidClientKeys,
    check_jwks_uri_address,
    keys_json,
    parse_registration,
)
from shared.auth.clients import (
    ClientConflict,
    ClientNotFound,
    ClientRegistry,
    InvalidClientInput,
    version_json,
)
from shared.http import Headers, Request, Response, json_response
from shared.ids import is_guid
from shared.lookups import Lookups
from shared.net.addresses import AddressPolicy
from shared.operators import AdminKey, NotAllowed, platform_operator, presented_key
from shared.secret_store import SecretStoreUnavailable
from shared.settings import Settings
from shared.tables import ETagMismatch, StoreUnavailable
from shared.tenants import (
    FIELDS as TENANT_FIELDS,
)
from shared.tenants import (
    InvalidTenantInput,
    TenantConflict,
    TenantNotFound,
    TenantRegistry,
    check_provider_addresses,
    parse_mapping,
)

if TYPE_CHECKING:
    from shared.auditevents.export import AuditReader
    from shared.proxy.check import TenantChecker

log = logging.getLogger(__name__)
# What PATCH /manage/clients/{id} may change.
_CLIENT_FIELDS = frozenset(
    {"display_name", "enabled", "allowed_scopes", "default_scopes", "resource_server"}
)

MAX_BODY_BYTES = 64 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_VERSION_CHARS = frozenset("0123456789abcdefABCDEF")


class ApiError(Exception):
    """A management error: HTTP status, a short code and a message naming the problem."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}

    def response(self) -> Response:
        """The JSON error response."""
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        return json_response(self.status, body, headers={**NO_STORE, **self.headers})


def _ok(status: int, document: Any, etag: str | None = None) -> Response:
    headers = dict(NO_STORE)
    if etag:
        headers["ETag"] = etag
    return json_response(status, document, headers=headers)


def admin_key_presented(request: Request) -> str | None:
    """The key the caller sent, as the Functions host reads it (header, then ``code``)."""
    return presented_key(request)


def _no_secret_store() -> Any:
    raise SecretStoreUnavailable("no secret store is configured for the admin key")


def read_json_object(request: Request, allowed: frozenset[str]) -> dict[str, Any]:
    """The request body as a JSON object with only ``allowed`` fields; {} when empty."""
    if not request.body.strip():
        return {}
    media_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    if len(request.body) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", "request body is larger than 64 KiB")
    try:
        document = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        # ValueError covers malformed JSON and 5,000-digit integers; RecursionError deep nesting.
        raise ApiError(400, "invalid_request", "body is not valid JSON") from None
    if not isinstance(document, dict):
        raise ApiError(400, "invalid_request", "body must be a JSON object")
    unknown = sorted(set(document) - allowed)
    if unknown:
        name = unknown[0] if unknown[0].isprintable() and len(unknown[0]) <= 64 else "?"
        raise ApiError(400, "invalid_request", f"unknown field: {name}", field=name)
    return document


def _client_id(params: dict[str, str]) -> str:
    value = params.get("client_id", "")
    if not is_guid(value):
        raise ApiError(400, "invalid_request", "client id must be a GUID", field="client_id")
    return value.lower()


def _tenant_id(params: dict[str, str]) -> str:
    value = params.get("tenant_id", "")
    if not is_guid(value):
        raise ApiError(400, "invalid_request", "tenant id must be a GUID", field="tenant_id")
    return value.lower()


def _version(params: dict[str, str]) -> str:
    value = params.get("version", "")
    if not 1 <= len(value) <= 64 or not set(value) <= _VERSION_CHARS:
        raise ApiError(400, "invalid_request", "version must be a secret version id")
    return value


class ManagementApi:
    """Dispatches ``manage/…`` requests to the registries."""

    def __init__(
        self,
        settings: Settings,
        clients: ClientRegistry,
        tenants: TenantRegistry,
        lookups: Lookups,
        *,
        checker: TenantChecker | None = None,
        address_policy: AddressPolicy | None = None,
        admin_key: AdminKey | None = None,
        audit_store: Callable[[], AuditReader] | None = None,
    ) -> None:
        self._settings = settings
        self._admin_key = admin_key or AdminKey(settings, _no_secret_store)
        self._policy = address_policy or AddressPolicy(settings.allow_insecure_provider_urls)
        self._clients = clients
        self._tenants = tenants
        self._lookups = lookups
        self._checker = checker
        self._audit_store = audit_store
        self._handlers: dict[tuple[str, str], Callable[[Request], Response]] = {
            ("clients", "GET"): self._list_clients,
            ("clients", "POST"): self._register_client,
            ("client", "GET"): self._get_client,
            ("client", "PUT"): self._update_client,
            ("client", "DELETE"): self._disable_client,
            ("client_secrets", "GET"): self._list_versions,
            ("client_secrets", "POST"): self._rotate,
            ("client_secret", "GET"): self._get_version,
            ("client_secret", "DELETE"): self._disable_version,
            ("client_keys", "GET"): self._get_keys,
            ("client_keys", "PUT"): self._put_keys,
            ("client_keys", "DELETE"): self._delete_keys,
            ("tenants", "GET"): self._list_tenants,
            ("tenant", "GET"): self._get_tenant,
            ("tenant", "PUT"): self._put_tenant,
            ("tenant", "DELETE"): self._delete_tenant,
            ("tenant_check", "POST"): self._check_tenant,
            ("tenant_audit", "GET"): self._tenant_audit,
        }

    def allowed_methods(self, route: str) -> list[str]:
        """Methods a route answers."""
        return sorted(method for (name, method) in self._handlers if name == route)

    def handle(self, route: str, request: Request) -> Response:
        """Answer one management request for the named route."""
        try:
            actor = self._authorize(request)
            handler = self._handlers.get((route, request.method))
            if handler is None:
                allowed = ", ".join(self.allowed_methods(route))
                raise ApiError(
                    405, "method_not_allowed", "method not allowed", headers={"Allow": allowed}
                )
            with acting_as(actor):
                response = handler(request)
        except ApiError as error:
            return error.response()
        except NotAllowed as error:
            code = "unauthorized" if error.status == 401 else "forbidden"
            return ApiError(error.status, code, error.message).response()
        except (ClientNotFound, TenantNotFound):
            return ApiError(404, "not_found", "no such resource").response()
        except ETagMismatch as error:
            return ApiError(412, "precondition_failed", str(error)).response()
        except (ClientConflict, TenantConflict) as error:
            return ApiError(409, "conflict", str(error)).response()
        except InvalidClientInput as error:
            return ApiError(400, "invalid_request", str(error)).response()
        except InvalidClientKeys as error:
            return ApiError(400, "invalid_request", str(error)).response()
        except InvalidTenantInput as error:
            return ApiError(400, "invalid_request", str(error), field=error.field).response()
        except (SecretStoreUnavailable, StoreUnavailable) as error:
            log.warning("management dependency unavailable: %s", error)
            retry = str(getattr(error, "retry_after", 5))
            return ApiError(
                503,
                "unavailable",
                "a dependency is unavailable; nothing was changed, retry later",
                headers={"Retry-After": retry},
            ).response()
        if request.method != "GET":
            # Changes here are visible at once on this instance; others follow within the TTL.
            self._lookups.forget()
        return response

    def _authorize(self, request: Request) -> Actor:
        """Who is calling, once their credential is checked (the actor of their changes)."""
        operator = platform_operator(request, self._settings)
        if operator is not None:
            operator.require(change=request.method not in ("GET", "HEAD"))
            return operator.actor()
        presented = presented_key(request)
        if presented is None or not self._admin_key.matches(presented):
            raise ApiError(
                401,
                "unauthorized",
                "management routes need the admin key (x-functions-key header) or an Entra "
                "sign-in with an EHR Bridge role",
            )
        where = "admin key" if self._settings.hosting.enforces_admin_level else "local admin key"
        return Actor("admin_key", where)

    # Clients

    def _list_clients(self, request: Request) -> Response:
        return _ok(200, {"clients": [c.to_json() for c in self._clients.list_all()]})

    def _register_client(self, request: Request) -> Response:
        body = read_json_object(request, frozenset({"display_name", "client_id"}))
        if "client_id" in body:
            raise ApiError(
                400, "invalid_request", "client_id is assigned by the server", field="client_id"
            )
        if "display_name" not in body:
            raise ApiError(
                400, "invalid_request", "missing field: display_name", field="display_name"
            )
        issued = self._clients.register(body["display_name"])
        document = {
            **issued.client.to_json(),
            "client_secret": issued.secret,
            "secret_version": issued.version.version,
            "note": "store the client_secret now: it is shown only once",
        }
        return _ok(201, document, issued.client.etag)

    def _get_client(self, request: Request) -> Response:
        record = self._clients.get(_client_id(request.route_params))
        return _ok(200, record.to_json(), record.etag)

    def _update_client(self, request: Request) -> Response:
        client_id = _client_id(request.route_params)
        body = read_json_object(request, _CLIENT_FIELDS)
        if not body:
            raise ApiError(
                400, "invalid_request", f"send any of {', '.join(sorted(_CLIENT_FIELDS))}"
            )
        for flag in ("enabled", "resource_server"):
            if body.get(flag) is not None and not isinstance(body[flag], bool):
                raise ApiError(400, "invalid_request", f"{flag} must be true or false", field=flag)
        record = self._clients.update(
            client_id,
            display_name=body.get("display_name"),
            enabled=body.get("enabled"),
            if_match=request.header("If-Match"),
            allowed_scopes=body.get("allowed_scopes"),
            default_scopes=body.get("default_scopes"),
            resource_server=body.get("resource_server"),
        )
        return _ok(200, record.to_json(), record.etag)

    def _disable_client(self, request: Request) -> Response:
        record = self._clients.update(
            _client_id(request.route_params), enabled=False, if_match=request.header("If-Match")
        )
        return _ok(200, record.to_json(), record.etag)

    def _list_versions(self, request: Request) -> Response:
        client_id = _client_id(request.route_params)
        versions = self._clients.list_secret_versions(client_id)
        return _ok(200, {"client_id": client_id, "versions": [version_json(v) for v in versions]})

    def _rotate(self, request: Request) -> Response:
        client_id = _client_id(request.route_params)
        body = read_json_object(request, frozenset({"grace_period_seconds"}))
        issued = self._clients.rotate_secret(client_id, body.get("grace_period_seconds", 0))
        document = {
            "client_id": issued.client.client_id,
            "client_secret": issued.secret,
            "secret_version": issued.version.version,
            "note": "store the client_secret now: it is shown only once",
        }
        return _ok(201, document)

    def _get_version(self, request: Request) -> Response:
        client_id = _client_id(request.route_params)
        version = _version(request.route_params)
        for props in self._clients.list_secret_versions(client_id):
            if props.version == version:
                return _ok(200, version_json(props))
        raise ClientNotFound(f"{client_id}/{version}")

    def _disable_version(self, request: Request) -> Response:
        client_id = _client_id(request.route_params)
        props = self._clients.disable_secret_version(client_id, _version(request.route_params))
        return _ok(200, version_json(props))

    # Client keys (private_key_jwt)

    def _get_keys(self, request: Request) -> Response:
        record = self._clients.get(_client_id(request.route_params))
        document = {"client_id": record.client_id, **keys_json(record.jwks_uri, record.jwks)}
        return _ok(200, document, record.etag)

    def _put_keys(self, request: Request) -> Response:
        client_id = _client_id(request.route_params)
        body = read_json_object(request, frozenset({"jwks_uri", "jwks"}))
        jwks_uri, jwks = parse_registration(body)
        if jwks_uri:
            check_jwks_uri_address(jwks_uri, self._policy)
        record = self._clients.set_keys(
            client_id, jwks_uri, jwks, if_match=request.header("If-Match")
        )
        document = {"client_id": record.client_id, **keys_json(record.jwks_uri, record.jwks)}
        return _ok(200, document, record.etag)

    def _delete_keys(self, request: Request) -> Response:
        record = self._clients.set_keys(
            _client_id(request.route_params), "", "", if_match=request.header("If-Match")
        )
        document = {"client_id": record.client_id, **keys_json(record.jwks_uri, record.jwks)}
        return _ok(200, document, record.etag)

    # Tenants

    def _list_tenants(self, request: Request) -> Response:
        return _ok(200, {"tenants": [t.to_json() for t in self._tenants.list_all()]})

    def _get_tenant(self, request: Request) -> Response:
        mapping = self._tenants.get(_tenant_id(request.route_params))
        return _ok(200, mapping.to_json(), mapping.etag)

    def _put_tenant(self, request: Request) -> Response:
        tenant_id = _tenant_id(request.route_params)
        body = read_json_object(request, TENANT_FIELDS)
        mapping = parse_mapping(
            tenant_id,
            body,
            allow_insecure=self._settings.allow_insecure_provider_urls,
            managed_identity_scopes=self._settings.managed_identity_scopes,
            client_exists=self._client_exists,
        )
        # Before anything is stored or checked: nothing is sent to a refused address.
        check_provider_addresses(mapping, self._policy)
        stored, created = self._tenants.put(
            mapping,
            if_match=request.header("If-Match"),
            create_only=(request.header("If-None-Match") or "").strip() == "*",
        )
        document = stored.to_json()
        if self._checker is not None:
            # Record what the provider can do now that it is mapped; a provider that cannot
            # be reached yet does not stop the mapping (run manage/tenants/{id}/check later).
            report = self._checker.check(stored)
            stored = self._tenants.get(stored.tenant_id)
            document = {**stored.to_json(), "check": {"ok": report["ok"], "steps": report["steps"]}}
        return _ok(201 if created else 200, document, stored.etag)

    def _check_tenant(self, request: Request) -> Response:
        if self._checker is None:
            raise ApiError(501, "not_implemented", "no checker is configured")
        mapping = self._tenants.get(_tenant_id(request.route_params))
        return _ok(200, self._checker.check(mapping))

    def _tenant_audit(self, request: Request) -> Response:
        """The tenant's AuditEvents in a window, as a FHIR Bundle (``shared/auditevents/``)."""
        from shared.auditevents.export import export_bundle
        from shared.auditevents.query import InvalidQuery, parse_query

        if self._audit_store is None:
            raise ApiError(501, "not_implemented", "no audit store is configured")
        tenant_id = _tenant_id(request.route_params)
        params: dict[str, str] = {}
        for name, value in request.query:
            if name in params:
                raise ApiError(400, "invalid_request", "a parameter is repeated")
            params[name] = value
        try:
            query = parse_query(tenant_id, params)
        except InvalidQuery as error:
            raise ApiError(400, "invalid_request", str(error), field=error.field) from None
        base_url = request.url.split("?", 1)[0]
        bundle = export_bundle(self._audit_store(), query, base_url)
        return json_response(200, bundle, content_type="application/fhir+json", headers=NO_STORE)

    def _delete_tenant(self, request: Request) -> Response:
        self._tenants.delete(_tenant_id(request.route_params), if_match=request.header("If-Match"))
        return Response(status=204, headers=Headers(NO_STORE))

    def _client_exists(self, client_id: str) -> bool:
        try:
            self._clients.get(client_id)
        except ClientNotFound:
            return False
        return True
