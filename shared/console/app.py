"""The console's routes: ``/api/console/…`` as server-rendered pages on the web kit.

Every request is answered as a page: a bad input is a form shown again with its errors, a
refusal is a message page (401 sign in, 403 not allowed, 404, 405, 503), never a stack trace or
JSON. Before a POST runs: the operator must hold the change role (403 otherwise, whatever the
page showed), its Origin must be ours, and its form must carry the CSRF token bound to the
browser. Every change runs as the operator (``shared.audit.acting_as``), so its audit event
names them, and clears this instance's caches so it applies here at once.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from shared.audit import acting_as, change
from shared.auth.client_keys import (
    InvalidClientKeys,
    PrivateKeyRefused,
    check_jwks_uri_address,
    keys_json,
    validate_inline_jwks,
    validate_jwks_uri,
)
from shared.auth.clients import (
    ClientConflict,
    ClientNotFound,
    InvalidClientInput,
    validate_description,
    validate_display_name,
)
from shared.auth.smart_scopes import DEFAULT_SCOPES
from shared.console import keys as signing
from shared.console import onboarding
from shared.console.access import (
    BASE_PATH,
    PRESESSION_COOKIE_NAME,
    SESSION_SECONDS,
    Browser,
    ConsoleAccess,
)
from shared.console.rules import (
    DEFAULT_EXPIRY_DAYS,
    expiry_choices,
    grace_choices,
    parse_expiry,
    parse_grace,
    secret_rows,
    when,
)
from shared.http import Request, Response, public_origin
from shared.ids import is_guid, provider_secret_name
from shared.operators import NotAllowed, Operator
from shared.secret_store import SecretStoreUnavailable
from shared.settings import Settings
from shared.tables import ETagMismatch, StoreUnavailable
from shared.tenants import (
    InvalidTenantInput,
    TenantConflict,
    TenantNotFound,
    check_provider_addresses,
    parse_mapping,
)
from shared.web.cookies import Cookie
from shared.web.csrf import FIELD as CSRF_FIELD
from shared.web.csrf import Csrf
from shared.web.errors import PageError
from shared.web.forms import FieldErrors, read_form
from shared.web.pages import NavLink, Pages, Site, Visitor
from shared.web.routing import handler_for

if TYPE_CHECKING:
    from shared.auth.clients import ClientRegistry, IssuedSecret
    from shared.auth.secret_usage import SecretUsage
    from shared.console.appview import AppView
    from shared.console.key import ConsoleKey
    from shared.lookups import Lookups
    from shared.net.addresses import AddressPolicy
    from shared.proxy.check import TenantChecker
    from shared.secret_store import SecretStore
    from shared.tenants import TenantMapping, TenantRegistry

log = logging.getLogger(__name__)

SITE = Site(
    name="EHR Bridge console",
    base_path=BASE_PATH,
    nav=(
        NavLink("Clients", "clients"),
        NavLink("Tenants", "tenants"),
        NavLink("Signing keys", "keys"),
        NavLink("Patients app view", "app"),
    ),
    home=NavLink("Go to the list of clients", "clients"),
)
TEMPLATES = Path(__file__).parent / "templates"
CSRF_PURPOSE = "console-csrf"
MAX_FORM_FIELDS = 200  # the onboarding form has a checkbox per client
MAX_FORM_BYTES = 64 * 1024
_VERSION = re.compile(r"[0-9a-fA-F]{1,64}")
PUBLIC_ROUTES = frozenset({"home", "signin", "signout"})
READ_ONLY_POSTS = frozenset({"app"})
SIGNIN_LABELS = {"key": "Admin key", "look_only": "Look only: this session cannot change anything"}
CLIENT_LABELS = {
    "display_name": "Client name",
    "allowed_scopes": "Allowed scopes",
    "default_scopes": "Default scopes",
    "description": "Secret description",
    "expiry": "Secret expires after",
    "grace": "Keep the current secrets working for",
    "jwks_uri": "JWKS URL",
    "jwks": "Public keys (JWK Set)",
}


@dataclass
class Call:
    """One request as a handler sees it."""

    request: Request
    browser: Browser
    visitor: Visitor
    form: dict[str, str]
    ids: tuple[str, ...]  # the ids in the path: client, version or tenant

    @property
    def operator(self) -> Operator:
        """The signed-in operator (handlers other than sign-in run only with one)."""
        assert self.browser.operator is not None
        return self.browser.operator


Handler = Callable[[Call], Response]


def route_of(path: str) -> tuple[str, tuple[str, ...]]:
    """The route name and the ids of a path under the console's base path."""
    parts = [p for p in path.strip("/").split("/") if p] if path else []
    n = len(parts)
    if n == 0:
        return "home", ()
    if n == 1 and parts[0] in ("signin", "signout", "clients", "tenants", "keys", "app"):
        return parts[0], ()
    if parts == ["clients", "new"]:
        return "client_new", ()
    if parts == ["tenants", "new"]:
        return "tenant_new", ()
    if parts == ["keys", "rotate"]:
        return "keys_rotate", ()
    if parts[0] == "clients" and n >= 2 and is_guid(parts[1]):
        client = parts[1].lower()
        if n == 2:
            return "client", (client,)
        if n == 3 and parts[2] in ("secrets", "disable", "enable", "keys"):
            return f"client_{parts[2]}", (client,)
        if n == 4 and parts[2:] == ["keys", "remove"]:
            return "client_keys_remove", (client,)
        if (
            n == 5
            and parts[2] == "secrets"
            and _VERSION.fullmatch(parts[3])
            and parts[4] in ("invalidate", "delete")
        ):
            return f"secret_{parts[4]}", (client, parts[3])
        if parts[2:] == ["scopes"]:
            return "client_scopes", (client,)
    if parts[0] == "tenants" and n >= 2 and is_guid(parts[1]):
        tenant = parts[1].lower()
        if n == 2:
            return "tenant", (tenant,)
        if n == 3 and parts[2] in ("check", "enable"):
            return f"tenant_{parts[2]}", (tenant,)
    raise PageError(404, "Page not found", "There is no page at this address.")


class Console:
    """Answers ``console/…``."""

    def __init__(
        self,
        settings: Settings,
        *,
        access: ConsoleAccess,
        console_key: ConsoleKey,
        clients: ClientRegistry,
        tenants: TenantRegistry,
        lookups: Lookups,
        secret_store: SecretStore,
        usage: SecretUsage,
        checks: onboarding.CheckResults,
        checker: TenantChecker,
        address_policy: AddressPolicy,
        appview: AppView,
    ) -> None:
        self._settings = settings
        self._access = access
        self._clients = clients
        self._tenants = tenants
        self._lookups = lookups
        self._store = secret_store
        self._usage = usage
        self._checks = checks
        self._checker = checker
        self._policy = address_policy
        self._appview = appview
        self._csrf = Csrf(
            lambda: console_key.derive(CSRF_PURPOSE),
            Cookie(PRESESSION_COOKIE_NAME, BASE_PATH, SESSION_SECONDS),
        )
        self._pages = Pages(SITE, _templates())
        # (route, method) -> handler; a route's methods give the 405's Allow header.
        self._handlers: dict[tuple[str, str], Handler] = {
            ("home", "GET"): self._home,
            ("signin", "GET"): self._home,
            ("signin", "POST"): self._signin,
            ("signout", "POST"): self._signout,
            ("clients", "GET"): self._client_list,
            ("client_new", "GET"): self._client_new_form,
            ("client_new", "POST"): self._client_register,
            ("client", "GET"): self._client_page,
            ("client_scopes", "POST"): self._client_scopes,
            ("client_secrets", "POST"): self._secret_new,
            ("secret_invalidate", "POST"): self._secret_invalidate,
            ("secret_delete", "POST"): self._secret_delete,
            ("client_disable", "POST"): self._client_disable,
            ("client_enable", "POST"): self._client_enable,
            ("client_keys", "POST"): self._client_keys,
            ("client_keys_remove", "POST"): self._client_keys_remove,
            ("tenants", "GET"): self._tenant_list,
            ("tenant_new", "GET"): self._tenant_new_form,
            ("tenant_new", "POST"): self._tenant_save,
            ("tenant", "GET"): self._tenant_page,
            ("tenant", "POST"): self._tenant_save,
            ("tenant_check", "POST"): self._tenant_check,
            ("tenant_enable", "POST"): self._tenant_enable,
            ("keys", "GET"): self._keys_page,
            ("keys_rotate", "POST"): self._keys_rotate,
            ("app", "GET"): self._app_page,
            ("app", "POST"): self._app_run,
        }

    # -- dispatch ------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one request to the console."""
        try:
            return self._dispatch(request)
        except PageError as error:
            return self._pages.message(error.status, error.title, error.text, headers=error.headers)
        except NotAllowed as error:
            if error.status == 401:
                return self._pages.message(401, "Sign in again", f"{error.message}.")
            return self._pages.message(403, "Not allowed", _sentence(error.message))
        except (ClientNotFound, TenantNotFound):
            return self._pages.message(
                404, "Not found", "There is no such client, secret or tenant."
            )
        except (StoreUnavailable, SecretStoreUnavailable) as error:
            log.warning("console dependency unavailable: %s", type(error).__name__)
            return self._pages.message(
                503,
                "Service unavailable",
                "Table Storage or Key Vault cannot be reached. Nothing was changed; try again "
                "shortly.",
                headers={"Retry-After": str(getattr(error, "retry_after", 5))},
            )

    def _dispatch(self, request: Request) -> Response:
        route, ids = route_of(request.route_params.get("path", ""))
        handler = handler_for(self._handlers, route, request, self._origin(request))
        posted = request.method == "POST"
        browser = self._access.who(request)
        if browser.operator is None and route not in PUBLIC_ROUTES:
            return self._signin_page(401, request, FieldErrors())
        if browser.operator is not None and route not in PUBLIC_ROUTES:
            # Every POST but the Patients app view's (which only reads, as the app did) changes
            # something: the change role is checked here, server-side, whatever the page showed.
            browser.operator.require(change=posted and route not in READ_ONLY_POSTS)
        form: dict[str, str] = {}
        if posted:
            form = read_form(request, max_bytes=MAX_FORM_BYTES, max_fields=MAX_FORM_FIELDS)
            # Signing out without a live session ends nothing, so it needs no token.
            if not (route == "signout" and browser.operator is None):
                self._check_token(request, browser, form)
        call = Call(request, browser, self._visitor(request, browser), form, ids)
        if browser.operator is not None and posted and route not in READ_ONLY_POSTS:
            with acting_as(browser.operator.actor()):
                response = handler(call)
            self._lookups.forget()  # applies at once on this instance; others within the TTL
            return response
        return handler(call)

    def _origin(self, request: Request) -> str:
        return public_origin(
            request, self._settings.public_base_url, self._settings.trust_forwarded_headers
        )

    def _secure(self, request: Request) -> bool:
        return self._origin(request).lower().startswith("https://")

    def _visitor(self, request: Request, browser: Browser) -> Visitor:
        if browser.binding is not None:
            return Visitor(signed_in=True, csrf_token=self._csrf.token(browser.binding))
        binding, cookie = self._csrf.presession(request, secure=self._secure(request))
        return Visitor(signed_in=False, csrf_token=self._csrf.token(binding), cookie=cookie)

    def _check_token(self, request: Request, browser: Browser, form: dict[str, str]) -> None:
        presented = form.get(CSRF_FIELD, "")
        bindings = [browser.binding] if browser.binding else self._csrf.presessions(request)
        if not any(self._csrf.valid(binding, presented) for binding in bindings):
            raise PageError(
                403,
                "Form expired",
                "This form was not sent from a current page of the console (its security token "
                "is missing, or belongs to an earlier session), so nothing was changed. Reload "
                "the page and send the form again.",
            )

    def _render(self, status: int, template: str, call: Call, **context: Any) -> Response:
        operator = call.browser.operator
        context.setdefault("current_nav", "")
        return self._pages.render(
            status,
            template,
            call.visitor,
            {
                **context,
                "can_change": bool(operator and operator.can_change),
                "operator_name": operator.name if operator else "",
            },
        )

    def _redirect(self, path: str, status: str = "") -> Response:
        return self._pages.redirect(SITE.url(path, [("status", status)] if status else ()))

    # -- sign-in -------------------------------------------------------------------------------

    def _home(self, call: Call) -> Response:
        if call.browser.operator is not None:
            return self._redirect("clients")
        return self._signin_page(200, call.request, FieldErrors(), call.visitor)

    def _signin_page(
        self, status: int, request: Request, errors: FieldErrors, visitor: Visitor | None = None
    ) -> Response:
        if self._access.entra:
            # App Service Authentication's own sign-in page, then back to the console.
            target = quote(SITE.url("clients"), safe="")
            return self._pages.redirect(f"/.auth/login/aad?post_login_redirect_uri={target}")
        visitor = visitor or self._visitor(request, Browser(None, None))
        context = {"title": "Sign in", "errors": errors, "labels": SIGNIN_LABELS}
        return self._pages.render(status, "signin.html", visitor, context)

    def _signin(self, call: Call) -> Response:
        if self._access.entra:
            return self._signin_page(200, call.request, FieldErrors())
        presented = call.form.get("key", "").strip()
        if not presented or not self._access.key_matches(presented):
            errors = FieldErrors({"key": "The admin key is not correct"})
            return self._signin_page(401, call.request, errors, call.visitor)
        cookie = self._access.sign_in(
            look_only=call.form.get("look_only") == "on", secure=self._secure(call.request)
        )
        return self._pages.redirect(SITE.url("clients"), cookie=cookie)

    def _signout(self, call: Call) -> Response:
        if self._access.entra:
            target = quote(SITE.url(), safe="")
            return self._pages.redirect(f"/.auth/logout?post_logout_redirect_uri={target}")
        cookie = self._access.sign_out(call.request, secure=self._secure(call.request))
        return self._pages.redirect(SITE.url(), cookie=cookie)

    # -- clients -------------------------------------------------------------------------------

    def _client_list(self, call: Call) -> Response:
        rows = []
        for record in self._clients.list_all():
            used = self._usage.last_used(record.client_id)
            rows.append(
                {
                    "client": record,
                    "state": "Enabled" if record.enabled else "Disabled",
                    "last_used": when(max(used.values()) if used else None, "No use recorded"),
                }
            )
        return self._render(
            200,
            "clients.html",
            call,
            title="Clients",
            current_nav="clients",
            rows=rows,
            notice=_notice(call),
        )

    def _client_new_form(self, call: Call) -> Response:
        return self._client_form(200, call, {"expiry": str(DEFAULT_EXPIRY_DAYS)}, FieldErrors())

    def _client_form(
        self, status: int, call: Call, values: dict[str, str], errors: FieldErrors
    ) -> Response:
        return self._render(
            status,
            "client_new.html",
            call,
            title="Register a client",
            current_nav="clients",
            values=values,
            errors=errors,
            labels=CLIENT_LABELS,
            expiries=expiry_choices(),
        )

    def _client_register(self, call: Call) -> Response:
        values = {
            name: call.form.get(name, "").strip()
            for name in ("display_name", "description", "expiry")
        }
        errors = FieldErrors()
        try:
            validate_display_name(values["display_name"])
        except InvalidClientInput:
            errors.add("display_name", "Enter a name of at most 200 printable characters")
        _check_description(values["description"], errors)
        expires = parse_expiry(values["expiry"])
        if expires is None:
            errors.add("expiry", "Choose when the secret expires")
        if errors:
            return self._client_form(422, call, values, errors)
        issued = self._clients.register(
            values["display_name"], description=values["description"], expires_on=expires
        )
        return self._secret_shown(call, issued, created_client=True)

    def _secret_shown(self, call: Call, issued: IssuedSecret, *, created_client: bool) -> Response:
        # The one page that ever shows this secret: the answer to the POST that made it.
        return self._render(
            201,
            "secret.html",
            call,
            title="Client registered" if created_client else "New secret created",
            current_nav="clients",
            client=issued.client,
            secret=issued.secret,
            version=issued.version.version,
            expires=when(issued.version.expires_on),
            created_client=created_client,
        )

    def _client_page(
        self,
        call: Call,
        status: int = 200,
        errors: FieldErrors | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        client_id = call.ids[0]
        record = self._clients.get(client_id)
        rows = secret_rows(
            self._clients.list_secret_versions(client_id),
            self._usage.last_used(client_id),
            self._usage.deleted(client_id),
        )
        return self._render(
            status,
            "client.html",
            call,
            title=f"Client {record.display_name}",
            current_nav="clients",
            client=record,
            rows=rows,
            errors=errors or FieldErrors(),
            values={
                "expiry": str(DEFAULT_EXPIRY_DAYS),
                "grace": "0",
                "allowed_scopes": " ".join(record.allowed_scopes),
                "default_scopes": " ".join(record.default_scopes),
                **(values or {}),
            },
            labels=CLIENT_LABELS,
            expiries=expiry_choices(),
            graces=grace_choices(),
            notice=_notice(call),
            keys=keys_json(record.jwks_uri, record.jwks),
        )

    def _client_keys(self, call: Call) -> Response:
        """Register the client's JWKS URL or pasted JWK Set (private_key_jwt)."""
        values = {name: call.form.get(name, "").strip() for name in ("jwks_uri", "jwks")}
        errors = FieldErrors()
        jwks_uri = jwks = ""
        if bool(values["jwks_uri"]) == bool(values["jwks"]):
            errors.add("jwks_uri", "Give either a JWKS URL or a JWK Set, not both and not neither")
        else:
            field = "jwks_uri" if values["jwks_uri"] else "jwks"
            try:
                if field == "jwks_uri":
                    jwks_uri = validate_jwks_uri(values["jwks_uri"])
                    check_jwks_uri_address(jwks_uri, self._policy)
                else:
                    jwks = validate_inline_jwks(values["jwks"])
            except InvalidClientKeys as invalid:
                errors.add(field, _sentence(str(invalid)))
                if isinstance(invalid, PrivateKeyRefused):
                    values["jwks"] = ""  # a private key is never written into a page
        if errors:
            defaults = {"expiry": str(DEFAULT_EXPIRY_DAYS), "grace": "0"}
            return self._client_page(call, 422, errors, {**defaults, **values})
        self._clients.set_keys(call.ids[0], jwks_uri, jwks)
        return self._redirect(f"clients/{call.ids[0]}", "keys_saved")

    def _client_keys_remove(self, call: Call) -> Response:
        self._clients.set_keys(call.ids[0], "", "")
        return self._redirect(f"clients/{call.ids[0]}", "keys_removed")

    def _secret_new(self, call: Call) -> Response:
        values = {
            name: call.form.get(name, "").strip() for name in ("description", "expiry", "grace")
        }
        errors = FieldErrors()
        _check_description(values["description"], errors)
        expires = parse_expiry(values["expiry"])
        if expires is None:
            errors.add("expiry", "Choose when the secret expires")
        grace = parse_grace(values["grace"])
        if grace is None:
            errors.add("grace", "Choose how long the current secrets keep working")
        if errors or expires is None or grace is None:
            return self._client_page(call, 422, errors, values)
        try:
            issued = self._clients.rotate_secret(
                call.ids[0], grace, description=values["description"], expires_on=expires
            )
        except ClientConflict:
            raise PageError(
                409,
                "Try again",
                "Another change to this client's secrets was in progress. Nothing was changed; "
                "reload the client's page and try again.",
            ) from None
        return self._secret_shown(call, issued, created_client=False)

    def _secret_invalidate(self, call: Call) -> Response:
        client_id, version = call.ids
        self._clients.disable_secret_version(client_id, version)
        return self._redirect(f"clients/{client_id}", "invalidated")

    def _secret_delete(self, call: Call) -> Response:
        client_id, version = call.ids
        # Key Vault keeps every version: "delete" disables it at once and lists it no more.
        self._clients.disable_secret_version(client_id, version)
        self._usage.mark_deleted(client_id, version)
        change("client.secret_deleted", client_id=client_id, secret_version=version)
        return self._redirect(f"clients/{client_id}", "deleted")

    def _client_scopes(self, call: Call) -> Response:
        """Save a client's allowed and default SMART scopes and its resource-server flag."""
        values = {name: call.form.get(name, "").strip() for name in SCOPE_FIELDS}
        errors = FieldErrors()
        for name in SCOPE_FIELDS:
            if not values[name]:
                errors.add(name, f"Enter at least one scope, for example {DEFAULT_SCOPES[0]}")
        if not errors:
            try:
                self._clients.update(
                    call.ids[0],
                    allowed_scopes=values["allowed_scopes"],
                    default_scopes=values["default_scopes"],
                    resource_server=call.form.get("resource_server") == "on",
                )
            except InvalidClientInput as error:
                field = "default_scopes" if str(error).startswith("default") else "allowed_scopes"
                errors.add(field, _sentence(str(error)))
        if errors:
            return self._client_page(call, 422, errors, values)
        return self._redirect(f"clients/{call.ids[0]}", "scopes")

    def _client_disable(self, call: Call) -> Response:
        self._clients.update(call.ids[0], enabled=False)
        return self._redirect(f"clients/{call.ids[0]}", "disabled")

    def _client_enable(self, call: Call) -> Response:
        self._clients.update(call.ids[0], enabled=True)
        return self._redirect(f"clients/{call.ids[0]}", "enabled")

    # -- tenants -------------------------------------------------------------------------------

    def _tenant_list(self, call: Call) -> Response:
        checks = self._checks.all()
        rows = [{"tenant": t, "check": checks.get(t.tenant_id)} for t in self._tenants.list_all()]
        return self._render(
            200,
            "tenants.html",
            call,
            title="Tenants",
            current_nav="tenants",
            rows=rows,
            notice=_notice(call),
        )

    def _tenant_new_form(self, call: Call) -> Response:
        return self._tenant_form(200, call, None, onboarding.form_values(None), FieldErrors())

    def _tenant_page(self, call: Call) -> Response:
        mapping = self._tenants.get(call.ids[0])
        return self._tenant_form(200, call, mapping, onboarding.form_values(mapping), FieldErrors())

    def _tenant_form(
        self,
        status: int,
        call: Call,
        mapping: TenantMapping | None,
        values: dict[str, str],
        errors: FieldErrors,
    ) -> Response:
        return self._render(
            status,
            "tenant.html",
            call,
            title=f"Tenant {mapping.display_name or mapping.tenant_id}"
            if mapping
            else "Onboard a tenant",
            current_nav="tenants",
            mapping=mapping,
            values=values,
            errors=errors,
            labels=onboarding.LABELS,
            versions=onboarding.version_choices(),
            kinds=onboarding.auth_kind_choices(),
            clients=self._clients.list_all(),
            allow_prefix=onboarding.ALLOW_PREFIX,
            check=self._checks.all().get(mapping.tenant_id) if mapping else None,
            notice=_notice(call),
        )

    def _tenant_save(self, call: Call) -> Response:
        existing: TenantMapping | None = None
        if call.ids:
            existing = self._tenants.get(call.ids[0])
            tenant_id = existing.tenant_id
        else:
            tenant_id = call.form.get("tenant_id", "").strip().lower()
        values = dict(call.form)
        values.pop("credential", None)  # never shown again, not even in a form with errors
        errors = FieldErrors()
        wants_enabled = call.form.get("enabled") == "on"
        # A tenant is switched on only after its check passes (or the operator confirms).
        enabled_now = wants_enabled and existing is not None and existing.enabled
        clients = [c.client_id for c in self._clients.list_all()]
        document = onboarding.mapping_document(call.form, clients, enabled_now)
        if existing is not None:
            document["allow_writes"] = existing.allow_writes
            document["capabilities"] = existing.capabilities
        credential = call.form.get("credential", "")
        kind_stores = onboarding.stored_credential(document["provider_auth_kind"])
        try:
            mapping = parse_mapping(
                tenant_id,
                document,
                allow_insecure=self._settings.allow_insecure_provider_urls,
                managed_identity_scopes=self._settings.managed_identity_scopes,
                client_exists=lambda client_id: client_id in clients,
            )
            check_provider_addresses(mapping, self._policy)
        except InvalidTenantInput as error:
            errors.add(error.field or "", _sentence(str(error)))
        if len(credential.encode("utf-8")) > onboarding.MAX_CREDENTIAL_BYTES:
            errors.add("credential", "The credential is larger than 25 KiB")
        elif kind_stores and not credential and not self._has_credential(tenant_id):
            errors.add("credential", f"Enter {kind_stores}")
        if existing is None and not errors and self._exists(tenant_id):
            errors.add("tenant_id", "This tenant is already onboarded: open it from the list")
        if errors:
            return self._tenant_form(422, call, existing, values, errors)
        if credential and kind_stores:
            version = self._store.set_secret(
                provider_secret_name(tenant_id), credential, tags={"tenant_id": tenant_id}
            )
            change(
                "tenant.provider_secret_set", tenant_id=tenant_id, secret_version=version.version
            )
        try:
            stored, _ = self._tenants.put(
                mapping,
                if_match=existing.etag if existing else None,
                create_only=existing is None,
            )
        except (TenantConflict, ETagMismatch):
            raise PageError(
                409,
                "Changed elsewhere",
                "This tenant was changed by someone else while you edited it. Nothing was saved; "
                "open it again and repeat your change.",
            ) from None
        report = self._run_check(stored)
        stored = self._tenants.get(tenant_id)  # the check recorded the provider's capabilities
        if wants_enabled and not stored.enabled and report["ok"]:
            stored = self._set_enabled(stored, True)
        return self._check_page(call, stored, report, confirm=wants_enabled and not stored.enabled)

    def _has_credential(self, tenant_id: str) -> bool:
        from shared.secret_store import usable_secrets

        return bool(usable_secrets(self._store, provider_secret_name(tenant_id)))

    def _exists(self, tenant_id: str) -> bool:
        try:
            self._tenants.get(tenant_id)
        except TenantNotFound:
            return False
        return True

    def _run_check(self, mapping: TenantMapping) -> dict[str, Any]:
        # Checked as it would run once enabled: a disabled mapping is not itself a failure here.
        report = self._checker.check(dataclasses.replace(mapping, enabled=True))
        self._checks.record(mapping.tenant_id, report)
        return report

    def _set_enabled(self, mapping: TenantMapping, enabled: bool) -> TenantMapping:
        stored, _ = self._tenants.put(
            dataclasses.replace(mapping, enabled=enabled), if_match=mapping.etag
        )
        return stored

    def _check_page(
        self, call: Call, mapping: TenantMapping, report: dict[str, Any], *, confirm: bool
    ) -> Response:
        steps = [
            {
                "name": onboarding.STEP_NAMES.get(step["step"], step["step"]),
                "ok": bool(step.get("ok")),
                "ms": step.get("ms"),
                "explanation": onboarding.explain(step),
            }
            for step in report.get("steps", [])
        ]
        return self._render(
            200,
            "tenant_check.html",
            call,
            title=f"Connection test: {mapping.display_name or mapping.tenant_id}",
            current_nav="tenants",
            mapping=mapping,
            ok=bool(report.get("ok")),
            steps=steps,
            confirm=confirm,
        )

    def _tenant_check(self, call: Call) -> Response:
        mapping = self._tenants.get(call.ids[0])
        return self._check_page(call, mapping, self._run_check(mapping), confirm=False)

    def _tenant_enable(self, call: Call) -> Response:
        mapping = self._tenants.get(call.ids[0])
        enable = call.form.get("enabled") != "off"
        if enable and call.form.get("confirm") != "yes":
            raise PageError(400, "Not confirmed", "Tick the confirmation to enable this tenant.")
        self._set_enabled(mapping, enable)
        return self._redirect(f"tenants/{mapping.tenant_id}", "enabled" if enable else "disabled")

    # -- signing keys --------------------------------------------------------------------------

    def _keys_page(self, call: Call) -> Response:
        rows = signing.key_rows(signing.list_keys(self._store), self._settings.token_algorithm)
        return self._render(
            200,
            "keys.html",
            call,
            title="Signing keys",
            current_nav="keys",
            rows=rows,
            algorithm=self._settings.token_algorithm,
            activate=signing.activate_in_seconds(self._settings),
            retire=signing.retire_after_seconds(self._settings),
            notice=_notice(call),
        )

    def _keys_rotate(self, call: Call) -> Response:
        version = signing.rotate(self._store, self._settings)
        change("signing_key.rotated", kid=version.version)
        return self._redirect("keys", "rotated")

    # -- the Patients app view -----------------------------------------------------------------

    def _app_page(self, call: Call) -> Response:
        return self._appview.page(call, self._render)

    def _app_run(self, call: Call) -> Response:
        return self._appview.run(call, self._render, self._origin(call.request))


SCOPE_FIELDS = ("allowed_scopes", "default_scopes")

NOTICES = {
    "scopes": "Scopes saved: new tokens carry them; tokens issued before keep theirs.",
    "invalidated": "The secret version was invalidated: it stopped working at once.",
    "deleted": "The secret version was deleted: it stopped working at once.",
    "disabled": "Disabled.",
    "enabled": "Enabled.",
    "keys_saved": "The public keys were saved: the client may use private_key_jwt.",
    "keys_removed": "The public keys were removed: tokens they got stop within the cache TTL.",
    "rotated": "A new signing key was added: it is published now and signs after the delay below.",
}


def _notice(call: Call) -> str:
    status = next((value for name, value in call.request.query if name == "status"), "")
    return NOTICES.get(status, "")


def _check_description(value: str, errors: FieldErrors) -> None:
    try:
        validate_description(value)
    except InvalidClientInput:
        errors.add("description", "Enter at most 100 printable characters")


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")) if text else text


def _templates() -> Any:
    from shared.web.templates import Templates

    return Templates(TEMPLATES)
