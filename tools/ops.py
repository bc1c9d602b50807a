"""Operator CLI for EHR Bridge: ``python -m tools.ops GROUP ACTION ...``.

For operators who register clients, rotate client secrets, signing keys and the assertion key,
and onboard tenants
directly against Key Vault and Table Storage, without going through the management HTTP API
(for instance before the function app is deployed, or when it is down). Every command is a thin
call into ``shared/``, so the rules are the same ones the app and its management API enforce.

Settings come from the environment, as in the app. ``--settings FILE`` (default:
``./local.settings.json`` when present) loads that file's ``Values`` first, without overriding
variables already set, as Azure Functions Core Tools does.

Output is JSON on stdout. Errors are one line on stderr, ``error: <message>``, with exit code
2 (bad input or configuration), 3 (not found), 4 (conflict) or 5 (a dependency is unavailable).
Secret values are never printed, except the one freshly generated client secret of
``clients register`` and ``clients rotate``, which is shown exactly once.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, NoReturn

from shared.audit import Actor, acting_as, change
from shared.auth.client_gate import MAX_TOKEN_CHARS
from shared.auth.clients import (
    ClientConflict,
    ClientNotFound,
    ClientRegistry,
    InvalidClientInput,
    version_json,
)
from shared.ids import (
    ASSERTION_KEY_NAME,
    SIGNING_KEY_NAME,
    canonical_guid,
    is_guid,
    provider_secret_name,
)
from shared.proxy.auth_kinds import (
    AUTH_KINDS,
    AuthKind,
    UnknownAuthKind,
    auth_kind,
    kinds_requiring,
    kinds_storing_a_credential,
    one_of,
)
from shared.sandbox.errors import InvalidResource, SandboxError
from shared.secret_store import (
    LocalStoreRefused,
    SecretNotFound,
    SecretStoreError,
    SecretStoreUnavailable,
    SecretVersion,
    utcnow,
)
from shared.services import Services
from shared.settings import Settings, SettingsError
from shared.tables import (
    APP_TABLES,
    SANDBOX_TABLES,
    EntityExists,
    ETagMismatch,
    StoreUnavailable,
    ensure_tables,
)
from shared.tenants import (
    FHIR_VERSIONS,
    InvalidTenantInput,
    TenantConflict,
    TenantNotFound,
    TenantRegistry,
    check_provider_addresses,
    parse_mapping,
)
from tools.local_settings import LocalSettingsError, apply_local_settings

EXIT_OK = 0
EXIT_INPUT = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_UNAVAILABLE = 5

DEFAULT_SETTINGS_FILE = "local.settings.json"
# The JWKS response tells verifiers they may cache it this long (shared/auth/jwks.py).
JWKS_MAX_AGE_SECONDS = 60
CLOCK_SKEW_SECONDS = 60
# Key Vault rejects secret values above 25 KiB.
MAX_PROVIDER_SECRET_BYTES = 25 * 1024
MAX_MAPPING_FILE_BYTES = 64 * 1024
SHOWN_ONCE = "store the client_secret now: it is shown only once"
_VERSION_CHARS = frozenset("0123456789abcdefABCDEF")

# Mapping fields and the flags that set them, so that a validation message names what the
# operator actually typed.
TENANT_FLAGS = {
    "tenant_id": "TENANT_ID",
    "provider_base_url": "--provider-url",
    "provider_fhir_version": "--fhir-version",
    "provider_auth_kind": "--auth-kind",
    "provider_token_url": "--token-url",
    "provider_client_id": "--provider-client-id",
    "provider_scope": "--provider-scope",
    "allowed_client_ids": "--allow-client",
    "entra_app_ids": "--entra-app-id",
    "display_name": "--display-name",
    "enabled": "--disabled",
    "allow_writes": "--allow-writes",
}


class CliError(Exception):
    """An expected failure: the exit code and a one-line message for stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that reports usage errors as CliError instead of exiting."""

    def error(self, message: str) -> NoReturn:
        """Raise a bad-input error (argparse would print usage and exit)."""
        raise CliError(EXIT_INPUT, f"{message} (see {self.prog} --help)")


@dataclass
class Context:
    """What a command handler works with."""

    services: Services
    stdin: IO[str] | None

    def require_tables(self) -> None:
        """Fail with exit 2 when no table storage is configured."""
        # Without this, the missing setting would surface as "table storage unavailable",
        # sending the operator to retry what can only be fixed by configuration.
        settings = self.services.settings
        injected = "table_service" in vars(self.services)
        if not injected and not (settings.tables_connection_string or settings.tables_endpoint):
            raise CliError(
                EXIT_INPUT,
                "no table storage configured: set EHRB_TABLES_CONNECTION_STRING or "
                "EHRB_TABLES_ENDPOINT (or pass --settings)",
            )

    @property
    def clients(self) -> ClientRegistry:
        """The client registry."""
        self.require_tables()
        return self.services.clients

    @property
    def tenants(self) -> TenantRegistry:
        """The tenant registry."""
        self.require_tables()
        return self.services.tenants


# Settings file


def default_retire_after_seconds(settings: Settings) -> int:
    """Token lifetime + 2 x cache TTL + 60 s: how long a replaced signing key must still verify."""
    return settings.token_lifetime_seconds + 2 * settings.cache_ttl_seconds + CLOCK_SKEW_SECONDS


def default_assertion_retire_after_seconds(settings: Settings) -> int:
    """Cache TTL + assertion lifetime + 60 s: how long a replaced assertion key stays published.

    An instance may sign with the old key until its cached key list refreshes (one cache TTL
    after activation); what it signed then is checked within the assertion's lifetime.
    """
    from shared.proxy.assertions import ASSERTION_LIFETIME_SECONDS

    return settings.cache_ttl_seconds + ASSERTION_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS


def default_activate_in_seconds(settings: Settings) -> int:
    """Cache TTL + JWKS max-age: every instance and verifier knows a new key before it signs."""
    return settings.cache_ttl_seconds + JWKS_MAX_AGE_SECONDS


# Argument checks


def _guid(value: str, name: str) -> str:
    if not is_guid(value):
        raise CliError(EXIT_INPUT, f"{name} must be a GUID (8-4-4-4-12 hex)")
    return canonical_guid(value)


def _version(value: str) -> str:
    if not 1 <= len(value) <= 64 or not set(value) <= _VERSION_CHARS:
        raise CliError(EXIT_INPUT, "VERSION must be a secret version id (hex)")
    return value


def _non_negative(value: int | None, flag: str) -> int | None:
    if value is not None and value < 0:
        raise CliError(EXIT_INPUT, f"{flag} must not be negative")
    return value


def _forget_cached_lookups(services: Services) -> None:
    # Only matters when this process also serves requests (tests, an embedded host): the
    # change is then visible at once instead of after the cache TTL. Never build it just for this.
    lookups = vars(services).get("lookups")
    if lookups is not None:
        lookups.forget()


# Clients


def clients_register(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Register a client; its secret is printed once."""
    issued = ctx.clients.register(args.name)
    _forget_cached_lookups(ctx.services)
    return {
        **issued.client.to_json(),
        "client_secret": issued.secret,
        "secret_version": issued.version.version,
        "note": SHOWN_ONCE,
    }


def clients_list(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Every registered client."""
    return {"clients": [c.to_json() for c in ctx.clients.list_all()]}


def clients_show(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """One client's record."""
    client_id = _guid(args.client_id, "CLIENT_ID")
    return ctx.clients.get(client_id).to_json()


def _set_enabled(args: argparse.Namespace, ctx: Context, enabled: bool) -> dict[str, Any]:
    client_id = _guid(args.client_id, "CLIENT_ID")
    record = ctx.clients.update(client_id, enabled=enabled)
    _forget_cached_lookups(ctx.services)
    return record.to_json()


def clients_disable(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Disable a client: it gets no new tokens and its tokens stop working within the TTL."""
    return _set_enabled(args, ctx, False)


def clients_enable(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Enable a client again."""
    return _set_enabled(args, ctx, True)


def clients_scopes(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Set a client's allowed and default SMART scopes, or its resource-server flag."""
    client_id = _guid(args.client_id, "CLIENT_ID")
    record = ctx.clients.update(
        client_id,
        allowed_scopes=args.allowed,
        default_scopes=args.default,
        resource_server=args.resource_server,
    )
    _forget_cached_lookups(ctx.services)
    return record.to_json()


def clients_rotate(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Add a new client secret (printed once); older ones end after the grace period."""
    grace = _non_negative(args.grace_seconds, "--grace-seconds") or 0
    client_id = _guid(args.client_id, "CLIENT_ID")
    issued = ctx.clients.rotate_secret(client_id, grace)
    _forget_cached_lookups(ctx.services)
    return {
        "client_id": issued.client.client_id,
        "client_secret": issued.secret,
        "secret_version": issued.version.version,
        "grace_seconds": grace,
        "note": SHOWN_ONCE,
    }


def clients_hash_secrets(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Store every plain-text secret version of the clients named (default: all) hashed."""
    ids = [_guid(c, "CLIENT_ID") for c in args.client_ids] or [
        record.client_id for record in ctx.clients.list_all()
    ]
    done = {client_id: ctx.clients.hash_stored_secrets(client_id) for client_id in ids}
    _forget_cached_lookups(ctx.services)
    return {"clients": done}


def clients_versions(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """A client's secret versions and their state (never their values)."""
    client_id = _guid(args.client_id, "CLIENT_ID")
    versions = ctx.clients.list_secret_versions(client_id)
    now = utcnow()
    return {"client_id": client_id, "versions": [version_json(v, now) for v in versions]}


def clients_keys(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """A client's public keys for private_key_jwt: its JWKS URL or its inline keys' kids."""
    from shared.auth.client_keys import keys_json

    record = ctx.clients.get(_guid(args.client_id, "CLIENT_ID"))
    return {"client_id": record.client_id, **keys_json(record.jwks_uri, record.jwks)}


def clients_set_keys(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Register a JWKS URL or an inline JWK Set (replacing what the client had)."""
    from shared.auth.client_keys import (
        MAX_INLINE_JWKS_BYTES,
        InvalidClientKeys,
        check_jwks_uri_address,
        keys_json,
        validate_inline_jwks,
        validate_jwks_uri,
    )

    client_id = _guid(args.client_id, "CLIENT_ID")
    try:
        if args.jwks_uri is not None:
            jwks_uri, jwks = validate_jwks_uri(args.jwks_uri), ""
            check_jwks_uri_address(jwks_uri, ctx.services.address_policy)
        else:
            text = _read_jwks_file(args.jwks_file, ctx.stdin, MAX_INLINE_JWKS_BYTES)
            jwks_uri, jwks = "", validate_inline_jwks(text)
    except InvalidClientKeys as invalid:
        raise CliError(EXIT_INPUT, str(invalid)) from None
    record = ctx.clients.set_keys(client_id, jwks_uri, jwks)
    _forget_cached_lookups(ctx.services)
    return {"client_id": record.client_id, **keys_json(record.jwks_uri, record.jwks)}


def _read_jwks_file(path: str, stdin: IO[str] | None, limit: int) -> str:
    try:
        if path == "-":
            text = (stdin or sys.stdin).read(limit + 1)
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read(limit + 1)
    except FileNotFoundError:
        raise CliError(EXIT_INPUT, f"JWKS file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(EXIT_INPUT, f"cannot read JWKS file {path}: {error}") from None
    if len(text) > limit:
        raise CliError(EXIT_INPUT, f"JWKS file is larger than {limit} bytes")
    return text


def clients_remove_keys(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Remove a client's keys: its private_key_jwt tokens stop within the cache TTL."""
    from shared.auth.client_keys import keys_json

    record = ctx.clients.set_keys(_guid(args.client_id, "CLIENT_ID"), "", "")
    _forget_cached_lookups(ctx.services)
    return {"client_id": record.client_id, **keys_json(record.jwks_uri, record.jwks)}


def clients_disable_version(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Disable one secret version at once."""
    client_id = _guid(args.client_id, "CLIENT_ID")
    version = _version(args.version)
    props = ctx.clients.disable_secret_version(client_id, version)
    _forget_cached_lookups(ctx.services)
    return {"client_id": client_id, **version_json(props)}


# Tenants


def _mapping_from_flags(args: argparse.Namespace) -> dict[str, Any]:
    if not args.provider_url or not args.fhir_version:
        raise CliError(EXIT_INPUT, "--provider-url and --fhir-version are required (or --file)")
    body: dict[str, Any] = {
        "provider_base_url": args.provider_url,
        "provider_fhir_version": args.fhir_version,
        "enabled": not args.disabled,
        "allow_writes": args.allow_writes,
    }
    optional = {
        "provider_auth_kind": args.auth_kind,
        "provider_token_url": args.token_url,
        "provider_client_id": args.provider_client_id,
        "provider_scope": args.provider_scope,
        "allowed_client_ids": args.allow_client,
        "entra_app_ids": args.entra_app_id,
        "display_name": args.display_name,
    }
    body.update({field: value for field, value in optional.items() if value is not None})
    return body


def _mapping_flags_given(args: argparse.Namespace) -> list[str]:
    given = [
        flag
        for dest, flag in (
            ("provider_url", "--provider-url"),
            ("fhir_version", "--fhir-version"),
            ("auth_kind", "--auth-kind"),
            ("token_url", "--token-url"),
            ("provider_client_id", "--provider-client-id"),
            ("provider_scope", "--provider-scope"),
            ("allow_client", "--allow-client"),
            ("entra_app_id", "--entra-app-id"),
            ("display_name", "--display-name"),
        )
        if getattr(args, dest) is not None
    ]
    if args.disabled:
        given.append("--disabled")
    if args.allow_writes:
        given.append("--allow-writes")
    return given


def _mapping_from_file(path: str, stdin: IO[str] | None) -> dict[str, Any]:
    try:
        if path == "-":
            text = (stdin or sys.stdin).read(MAX_MAPPING_FILE_BYTES + 1)
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read(MAX_MAPPING_FILE_BYTES + 1)
    except FileNotFoundError:
        raise CliError(EXIT_INPUT, f"mapping file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(EXIT_INPUT, f"cannot read mapping file {path}: {error}") from None
    if len(text) > MAX_MAPPING_FILE_BYTES:
        raise CliError(EXIT_INPUT, "mapping file is larger than 64 KiB")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise CliError(EXIT_INPUT, f"mapping file {path} is not valid JSON") from None
    if not isinstance(document, dict):
        raise CliError(EXIT_INPUT, f"mapping file {path} must hold a JSON object")
    return document


def _client_exists(ctx: Context) -> Callable[[str], bool]:
    def exists(client_id: str) -> bool:
        try:
            ctx.clients.get(client_id)
        except ClientNotFound:
            return False
        return True

    return exists


def tenants_put(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Create or replace a tenant mapping (the whole mapping, like the API's PUT)."""
    from_file = args.file is not None
    if from_file:
        mixed = _mapping_flags_given(args)
        if mixed:
            raise CliError(EXIT_INPUT, f"--file cannot be combined with {mixed[0]}")
        body = _mapping_from_file(args.file, ctx.stdin)
    else:
        body = _mapping_from_flags(args)
    try:
        mapping = parse_mapping(
            args.tenant_id,
            body,
            allow_insecure=ctx.services.settings.allow_insecure_provider_urls,
            managed_identity_scopes=ctx.services.settings.managed_identity_scopes,
            client_exists=_client_exists(ctx),
        )
        check_provider_addresses(mapping, ctx.services.address_policy)
    except InvalidTenantInput as error:
        flag = TENANT_FLAGS.get(error.field or "")
        hint = f" ({flag})" if flag and (not from_file or error.field == "tenant_id") else ""
        raise CliError(EXIT_INPUT, f"{error}{hint}") from None
    stored, created = ctx.tenants.put(mapping, create_only=args.create_only)
    _forget_cached_lookups(ctx.services)
    return {"created": created, "tenant": stored.to_json()}


def tenants_show(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """One tenant mapping."""
    tenant_id = _guid(args.tenant_id, "TENANT_ID")
    return ctx.tenants.get(tenant_id).to_json()


def tenants_list(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Every tenant mapping."""
    return {"tenants": [t.to_json() for t in ctx.tenants.list_all()]}


def tenants_check(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Diagnose a tenant's provider (reach, auth, version, capabilities) and record them."""
    tenant_id = _guid(args.tenant_id, "TENANT_ID")
    report = ctx.services.checker.check(ctx.tenants.get(tenant_id))
    _forget_cached_lookups(ctx.services)
    return report


def tenants_delete(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Remove a tenant mapping (offboarding)."""
    tenant_id = _guid(args.tenant_id, "TENANT_ID")
    ctx.tenants.delete(tenant_id)
    _forget_cached_lookups(ctx.services)
    return {"deleted": tenant_id}


def _read_credential(stdin: IO[str] | None, what: str) -> str:
    source = stdin if stdin is not None else sys.stdin
    if stdin is None and source.isatty():
        # Typed by a person: do not echo it to the terminal (or its scrollback).
        raw = getpass.getpass(f"{what} (not echoed): ")
    else:
        raw = source.read(MAX_PROVIDER_SECRET_BYTES + 2)
    # `echo secret |` adds a line break that is not part of the credential.
    value = raw.rstrip("\r\n")
    if not value:
        raise CliError(EXIT_INPUT, "no provider credential on stdin")
    if len(value.encode("utf-8")) > MAX_PROVIDER_SECRET_BYTES:
        raise CliError(EXIT_INPUT, "the provider credential is larger than 25 KiB")
    return value


def tokens_revoke(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Revoke one access token read from stdin, whichever client holds it (a leaked token)."""
    ctx.require_tables()
    source = ctx.stdin if ctx.stdin is not None else sys.stdin
    token = source.read(MAX_TOKEN_CHARS + 2).strip()
    if not token:
        raise CliError(EXIT_INPUT, "no access token on stdin")
    claims = ctx.services.verifier.signed_claims(token) if len(token) <= MAX_TOKEN_CHARS else None
    if claims is None:
        raise CliError(EXIT_INPUT, "not an access token of this app (or signed by a removed key)")
    revoked = {"client_id": claims["client_id"], "tenant_id": claims["tid"], "jti": claims["jti"]}
    if not isinstance(claims["exp"], int | float) or claims["exp"] <= time.time():
        return {**revoked, "revoked": False, "note": "the token has expired already"}
    ctx.services.revoked_tokens.revoke(str(claims["jti"]), float(claims["exp"]))
    change("token.revoked", **revoked)
    return {
        **revoked,
        "revoked": True,
        "note": "refused by every instance within EHRB_CACHE_TTL_SECONDS",
    }


def tenants_set_provider_secret(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Store the provider credential read from stdin as Key Vault secret provider-<tenant>."""
    tenant_id = _guid(args.tenant_id, "TENANT_ID")
    mapping = ctx.tenants.get(tenant_id)
    credential = _stored_credential(mapping.provider_auth_kind)
    if credential is None:
        raise CliError(
            EXIT_INPUT,
            f"tenant {tenant_id} has provider_auth_kind {mapping.provider_auth_kind}, "
            "which uses no stored credential "
            f"(set --auth-kind {one_of(kinds_storing_a_credential())} first)",
        )
    value = _read_credential(ctx.stdin, credential)
    name = provider_secret_name(tenant_id)
    version = ctx.services.secret_store.set_secret(name, value, tags={"tenant_id": tenant_id})
    change("tenant.provider_secret_set", tenant_id=tenant_id, secret_version=version.version)
    return {
        "tenant_id": tenant_id,
        "provider_auth_kind": mapping.provider_auth_kind,
        "secret_name": name,
        "secret_version": version.version,
    }


def _stored_credential(kind: str) -> str | None:
    """What the tenant's auth kind keeps as ``provider-<tenant>``; None: nothing."""
    try:
        return auth_kind(kind).stored_credential
    except UnknownAuthKind:  # a kind edited into the table by hand
        return None


# Signing keys


def _key_json(props: SecretVersion, signing_kid: str | None) -> dict[str, Any]:
    document = version_json(props)
    return {
        "kid": document.pop("version"),
        "alg": props.tags.get("alg"),
        "signing": props.version == signing_kid,
        **document,
    }


def _signing_kid(versions: list[SecretVersion], algorithm: str) -> str | None:
    # The same rule as SigningKeys.current, from metadata alone: no private key is read.
    now = utcnow()
    for props in versions:
        if props.tags.get("alg") == algorithm and props.is_usable(now):
            return props.version
    return None


def _keys_json(services: Services, name: str, algorithm: str) -> dict[str, Any]:
    versions = services.secret_store.list_versions(name)
    kid = _signing_kid(versions, algorithm)
    return {
        "algorithm": algorithm,
        "signing_kid": kid,
        "keys": [_key_json(v, kid) for v in versions],
    }


def _signing_keys_json(services: Services) -> dict[str, Any]:
    return _keys_json(services, SIGNING_KEY_NAME, services.settings.token_algorithm)


def _assertion_keys_json(services: Services) -> dict[str, Any]:
    return _keys_json(services, ASSERTION_KEY_NAME, services.settings.assertion_algorithm)


def signing_key_rotate(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Add a signing key; it is published at once and signs after the activation delay."""
    settings = ctx.services.settings
    return _rotate(
        args,
        ctx,
        SIGNING_KEY_NAME,
        settings.token_algorithm,
        default_retire_after_seconds(settings),
        event="signing_key.rotated",
        cached="signing_keys",
    )


def _rotate(
    args: argparse.Namespace,
    ctx: Context,
    name: str,
    algorithm: str,
    default_retire: int,
    *,
    event: str,
    cached: str,
) -> dict[str, Any]:
    """Rotate the key ``name`` (published at once, signing after the activation delay)."""
    activate = _non_negative(args.activate_in_seconds, "--activate-in-seconds")
    retire = _non_negative(args.retire_previous_after_seconds, "--retire-previous-after-seconds")
    activate = default_activate_in_seconds(ctx.services.settings) if activate is None else activate
    retire = default_retire if retire is None else retire
    version = _rotate_key(ctx.services, name, algorithm, activate, retire)
    change(event, kid=version.version)
    with contextlib.suppress(KeyError):
        # Only matters when this process also signs (tests, an embedded host).
        vars(ctx.services)[cached].refresh()
    return {
        "kid": version.version,
        "alg": algorithm,
        "signs_from": (version.not_before or version.created_on).isoformat(),
        "activate_in_seconds": activate,
        "retire_previous_after_seconds": retire,
        **_keys_json(ctx.services, name, algorithm),
    }


def _rotate_key(
    services: Services, name: str, algorithm: str, activate: int, retire: int
) -> SecretVersion:
    from shared.auth.signing_keys import rotate_signing_key

    return rotate_signing_key(
        services.secret_store,
        algorithm,
        activate_in=timedelta(seconds=activate),
        retire_previous_after=timedelta(seconds=retire),
        secret_name=name,
    )


def signing_key_list(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Signing key versions with their alg tag and state (never the PEM)."""
    return _signing_keys_json(ctx.services)


# Assertion keys


def assertion_key_rotate(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Add an assertion key: published at once at oauth2/assertion-jwks, signing later."""
    settings = ctx.services.settings
    return _rotate(
        args,
        ctx,
        ASSERTION_KEY_NAME,
        settings.assertion_algorithm,
        default_assertion_retire_after_seconds(settings),
        event="assertion_key.rotated",
        cached="assertion_keys",
    )


def assertion_key_list(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Assertion key versions with their alg tag and state (never the PEM)."""
    return _assertion_keys_json(ctx.services)


# Tables


def tables_init(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Create the app's and the sandbox's tables when missing."""
    ctx.require_tables()
    ensure_tables(ctx.services.table_service)
    return {"tables": [*APP_TABLES, *SANDBOX_TABLES], "status": "ok"}


# Sandbox


def sandbox_key(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Provision the sandbox's API key in the secret store (never printed)."""
    from shared.sandbox.access import SANDBOX_KEY_SECRET, ensure_sandbox_key

    store = ctx.services.secret_store
    try:
        store.get_secret(SANDBOX_KEY_SECRET)
        created = False
    except SecretNotFound:
        created = True
    ensure_sandbox_key(store)
    return {"secret": SANDBOX_KEY_SECRET, "created": created}


def sandbox_connect(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Give a tenant the sandbox key as its provider bearer token (its mapping stays as it is)."""
    from shared.sandbox.access import share_sandbox_key

    tenant_id = _guid(args.tenant_id, "TENANT_ID")
    mapping = ctx.tenants.get(tenant_id)
    if mapping.provider_auth_kind != AuthKind.BEARER:
        raise CliError(
            EXIT_INPUT,
            f"the tenant's provider_auth_kind must be {AuthKind.BEARER} to use the sandbox key "
            f"(tenants put ... --auth-kind {AuthKind.BEARER})",
        )
    changed = share_sandbox_key(ctx.services.secret_store, tenant_id)
    _forget_cached_lookups(ctx.services)
    return {"tenant_id": tenant_id, "secret": provider_secret_name(tenant_id), "changed": changed}


def sandbox_migrate(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Move sandbox data of an earlier layout to this version's (nothing to do: zeros)."""
    from shared.sandbox.migrate import migrate

    ctx.require_tables()
    ensure_tables(ctx.services.table_service)
    report = migrate(ctx.services.sandbox_store)
    return {
        "located": report.located,
        "moved": report.moved,
        "seconds": round(report.seconds, 2),
    }


def sandbox_load(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Load generated patients (and Synthea R4 bundles) into the sandbox's table."""
    from shared.sandbox.generate import generate_patients, generate_shared
    from shared.sandbox.synthea import load_synthea

    ctx.require_tables()
    store = ctx.services.sandbox_store
    result: dict[str, Any] = {}
    if args.patients:
        resources = list(generate_shared(args.seed))
        for chart in generate_patients(args.patients, args.seed, start=args.start):
            resources.extend(chart)
        report = store.load(resources)
        result["generated"] = {"stored": report.stored, "seconds": round(report.seconds, 2)}
    if args.synthea:
        missing = [path for path in args.synthea if not Path(path).exists()]
        if missing:
            raise CliError(EXIT_INPUT, f"no such bundle or folder: {missing[0]}")
        report = load_synthea(store, [Path(path) for path in args.synthea])
        result["synthea"] = {
            "stored": report.stored,
            "skipped": report.skipped,
            "seconds": round(report.seconds, 2),
        }
    if not result:
        raise CliError(EXIT_INPUT, "nothing to load: give --patients N and/or --synthea FILE...")
    return result


# Parser


RETIRE_HELP = (
    "seconds after activation until the previous keys expire; default: token lifetime "
    "+ 2 x cache TTL + 60 s (1080 s with the default settings). Tokens the old key signed "
    "live for the token lifetime; an instance may keep signing with the old key until its "
    "cached key list refreshes (one cache TTL), a second cache TTL covers verifiers' cached key "
    "lists, and 60 s cover clock skew. 0 retires them at activation: only for a leaked key, "
    "since tokens it signed stop verifying"
)
ACTIVATE_HELP = (
    "seconds until the new key signs; it is in the JWKS at once. Default: cache TTL + 60 s "
    "(the JWKS max-age), so every instance and verifier knows the key before a token uses it"
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(
        prog="python -m tools.ops",
        description="Operate EHR Bridge directly against Key Vault and Table Storage.",
        epilog="Exit codes: 0 ok, 2 bad input, 3 not found, 4 conflict, 5 dependency unavailable.",
    )
    parser.add_argument(
        "--settings",
        metavar="FILE",
        help="local.settings.json whose Values are loaded into the environment without "
        "overriding variables already set (default: ./local.settings.json when present)",
    )
    parser.add_argument(
        "--no-settings", action="store_true", help="ignore ./local.settings.json; use the env only"
    )
    groups = parser.add_subparsers(dest="group", metavar="GROUP", required=True)

    clients = groups.add_parser("clients", help="OAuth clients and their secrets")
    actions = clients.add_subparsers(dest="action", metavar="ACTION", required=True)
    cmd = actions.add_parser("register", help="register a client; prints its secret once")
    cmd.add_argument("--name", required=True, help="display name")
    cmd.set_defaults(handler=clients_register)
    actions.add_parser("list", help="every client").set_defaults(handler=clients_list)
    for name, handler, text in (
        ("show", clients_show, "one client"),
        ("disable", clients_disable, "disable a client (no new tokens; old ones stop within TTL)"),
        ("enable", clients_enable, "enable a client"),
        ("versions", clients_versions, "secret versions and their state (never values)"),
        ("keys", clients_keys, "public keys for private_key_jwt (JWKS URL, or kids)"),
        ("remove-keys", clients_remove_keys, "remove the keys (their tokens stop within TTL)"),
    ):
        cmd = actions.add_parser(name, help=text)
        cmd.add_argument("client_id", metavar="CLIENT_ID")
        cmd.set_defaults(handler=handler)
    cmd = actions.add_parser(
        "scopes", help="set the SMART scopes a client may have, its default, resource server"
    )
    cmd.add_argument("client_id", metavar="CLIENT_ID")
    cmd.add_argument(
        "--allowed", metavar="SCOPES", help='most a token may carry, e.g. "system/*.rs"'
    )
    cmd.add_argument(
        "--default", metavar="SCOPES", help="what a request naming only its tenant gets"
    )
    cmd.add_argument(
        "--resource-server",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="may introspect the tokens of tenants that allow it",
    )
    cmd.set_defaults(handler=clients_scopes)
    cmd = actions.add_parser("rotate", help="add a new secret (printed once)")
    cmd.add_argument("client_id", metavar="CLIENT_ID")
    cmd.add_argument(
        "--grace-seconds",
        type=int,
        default=0,
        metavar="N",
        help="older secrets keep working this long (default 0: they stop at once)",
    )
    cmd.set_defaults(handler=clients_rotate)
    cmd = actions.add_parser(
        "hash-secrets", help="store plain-text secret versions hashed (default: every client)"
    )
    cmd.add_argument("client_ids", metavar="CLIENT_ID", nargs="*")
    cmd.set_defaults(handler=clients_hash_secrets)
    cmd = actions.add_parser(
        "set-keys", help="register a JWKS URL or an inline JWK Set for private_key_jwt"
    )
    cmd.add_argument("client_id", metavar="CLIENT_ID")
    source = cmd.add_mutually_exclusive_group(required=True)
    source.add_argument("--jwks-uri", metavar="URL", help="https URL of the client's JWK Set")
    source.add_argument(
        "--jwks-file", metavar="FILE", help="a JWK Set of public keys (- for stdin)"
    )
    cmd.set_defaults(handler=clients_set_keys)
    cmd = actions.add_parser("disable-version", help="disable one secret version at once")
    cmd.add_argument("client_id", metavar="CLIENT_ID")
    cmd.add_argument("version", metavar="VERSION")
    cmd.set_defaults(handler=clients_disable_version)

    tenants = groups.add_parser("tenants", help="tenant -> provider mappings")
    actions = tenants.add_subparsers(dest="action", metavar="ACTION", required=True)
    cmd = actions.add_parser(
        "put",
        help="create or replace a mapping",
        description="Create or replace a tenant mapping. The whole mapping is replaced, like "
        "the management API's PUT: flags left out take their defaults.",
    )
    cmd.add_argument("tenant_id", metavar="TENANT_ID", help="the customer's Azure AD tenant GUID")
    cmd.add_argument(
        "--file",
        metavar="FILE",
        help="the JSON document the management API accepts ('-' reads stdin), instead of flags",
    )
    cmd.add_argument("--provider-url", help="provider FHIR base URL (https)")
    cmd.add_argument(
        "--fhir-version",
        # Plain strings: argparse names the choices by their repr when it refuses a value.
        choices=[version.value for version in FHIR_VERSIONS],
        help="provider FHIR version",
    )
    cmd.add_argument(
        "--auth-kind",
        choices=[str(kind) for kind in AUTH_KINDS],
        help="how we authenticate to the provider: "
        + "; ".join(f"{kind}: {rules.meaning}" for kind, rules in AUTH_KINDS.items())
        + f" (default {AuthKind.NONE})",
    )
    cmd.add_argument(
        "--token-url",
        help=f"provider token URL ({one_of(kinds_requiring('provider_token_url'))})",
    )
    cmd.add_argument(
        "--provider-client-id",
        help=f"our client id at the provider ({one_of(kinds_requiring('provider_client_id'))})",
    )
    cmd.add_argument("--provider-scope", help="scope to request from the provider")
    cmd.add_argument(
        "--allow-client",
        action="extend",
        nargs="+",
        metavar="CLIENT_ID",
        help="client allowed to get tokens for this tenant (repeatable)",
    )
    cmd.add_argument(
        "--entra-app-id",
        action="extend",
        nargs="+",
        metavar="APP_ID",
        help="Entra ID application of this tenant whose app-only tokens are accepted "
        "(repeatable; needs EHRB_ENTRA_AUDIENCE)",
    )
    cmd.add_argument("--display-name", help="display name")
    cmd.add_argument("--disabled", action="store_true", help="store the mapping disabled")
    cmd.add_argument("--allow-writes", action="store_true", help="allow writes to the provider")
    cmd.add_argument(
        "--create-only", action="store_true", help="fail (exit 4) if the tenant is mapped already"
    )
    cmd.set_defaults(handler=tenants_put)
    actions.add_parser("list", help="every mapping").set_defaults(handler=tenants_list)
    for name, handler, text in (
        ("show", tenants_show, "one mapping"),
        ("check", tenants_check, "diagnose the provider and record its capabilities"),
        ("delete", tenants_delete, "remove a mapping (offboarding)"),
        (
            "set-provider-secret",
            tenants_set_provider_secret,
            "store the provider credential ("
            + ", ".join(
                f"{rules.stored_credential} for {kind}"
                for kind, rules in AUTH_KINDS.items()
                if rules.stored_credential
            )
            + "), read from stdin (never from arguments)",
        ),
    ):
        cmd = actions.add_parser(name, help=text)
        cmd.add_argument("tenant_id", metavar="TENANT_ID")
        cmd.set_defaults(handler=handler)

    tokens = groups.add_parser("tokens", help="access tokens")
    actions = tokens.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser(
        "revoke", help="revoke the access token read from stdin (any client's; RFC 7009 list)"
    ).set_defaults(handler=tokens_revoke)
    keys = groups.add_parser("signing-key", help="token signing keys")
    actions = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    cmd = actions.add_parser("rotate", help="add a signing key; expire the previous ones later")
    cmd.add_argument("--activate-in-seconds", type=int, metavar="N", help=ACTIVATE_HELP)
    cmd.add_argument("--retire-previous-after-seconds", type=int, metavar="N", help=RETIRE_HELP)
    cmd.set_defaults(handler=signing_key_rotate)
    actions.add_parser("list", help="key versions, alg and state (never the key)").set_defaults(
        handler=signing_key_list
    )

    keys = groups.add_parser(
        "assertion-key",
        help="the key of the client assertions we sign for private_key_jwt providers",
    )
    actions = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    cmd = actions.add_parser(
        "rotate", help="add an assertion key; published at once, it signs after the delay"
    )
    cmd.add_argument("--activate-in-seconds", type=int, metavar="N", help=ACTIVATE_HELP)
    cmd.add_argument(
        "--retire-previous-after-seconds",
        type=int,
        metavar="N",
        help="seconds after activation until the previous keys leave the assertion JWKS; "
        "default: cache TTL + assertion lifetime (120 s) + 60 s. 0 retires them at "
        "activation: only for a leaked key",
    )
    cmd.set_defaults(handler=assertion_key_rotate)
    actions.add_parser("list", help="key versions, alg and state (never the key)").set_defaults(
        handler=assertion_key_list
    )

    tables = groups.add_parser("tables", help="Table Storage")
    actions = tables.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("init", help="create the tables when missing").set_defaults(
        handler=tables_init
    )

    sandbox = groups.add_parser("sandbox", help="the built-in sandbox provider (synthetic data)")
    actions = sandbox.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("key", help="provision the sandbox API key (not printed)").set_defaults(
        handler=sandbox_key
    )
    cmd = actions.add_parser(
        "connect", help="store the sandbox key as a tenant's provider bearer token"
    )
    cmd.add_argument("tenant_id", metavar="TENANT_ID")
    cmd.set_defaults(handler=sandbox_connect)
    actions.add_parser(
        "migrate", help="move data loaded by an earlier version to this version's layout"
    ).set_defaults(handler=sandbox_migrate)
    cmd = actions.add_parser("load", help="load generated patients and/or Synthea R4 bundles")
    cmd.add_argument("--patients", type=int, default=0, help="generated patients to load")
    cmd.add_argument("--seed", type=int, default=0, help="generator seed (same seed, same data)")
    cmd.add_argument("--start", type=int, default=0, help="index of the first generated patient")
    cmd.add_argument(
        "--synthea", nargs="*", default=[], metavar="PATH", help="R4 bundles, or folders of them"
    )
    cmd.set_defaults(handler=sandbox_load)
    return parser


# Errors


def _classify(error: Exception) -> tuple[int, str] | None:
    """Exit code and message of an expected failure; None for a bug."""
    if isinstance(error, CliError):
        return error.code, error.message
    if isinstance(error, ClientNotFound):
        return EXIT_NOT_FOUND, f"client not found: {error}"
    if isinstance(error, TenantNotFound):
        return EXIT_NOT_FOUND, f"tenant not found: {error}"
    if isinstance(error, ClientConflict | TenantConflict | ETagMismatch | EntityExists):
        return EXIT_CONFLICT, str(error) or "conflict"
    if isinstance(error, InvalidClientInput | InvalidTenantInput | SettingsError):
        return EXIT_INPUT, str(error)
    if isinstance(error, LocalStoreRefused):
        return EXIT_INPUT, str(error)
    if isinstance(error, InvalidResource):
        return EXIT_INPUT, f"invalid resource: {error.element}: {error.message}"
    if isinstance(error, SandboxError):
        return EXIT_INPUT, str(error)
    if isinstance(error, StoreUnavailable):
        return EXIT_UNAVAILABLE, f"table storage unavailable: {error}"
    if isinstance(error, SecretStoreUnavailable):
        return EXIT_UNAVAILABLE, f"secret store unavailable: {error}"
    if isinstance(error, SecretStoreError):
        return EXIT_UNAVAILABLE, f"secret store failed: {type(error).__name__}: {error}"
    return None


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _services_from_env(args: argparse.Namespace) -> Services:
    if not args.no_settings:
        path = args.settings
        if path is None and Path(DEFAULT_SETTINGS_FILE).is_file():
            path = DEFAULT_SETTINGS_FILE
        if path is not None:
            if not Path(path).is_file():
                raise CliError(EXIT_INPUT, f"settings file not found: {path}")
            try:
                apply_local_settings(path)
            except LocalSettingsError as error:
                raise CliError(EXIT_INPUT, str(error)) from None
    return Services(Settings.from_env())


def _login() -> str:
    """The operator's login name, as the machine knows it (their Entra identity is in the
    Key Vault and Storage logs of the same change)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def main(
    argv: list[str] | None = None,
    *,
    services: Services | None = None,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run one command; returns the exit code."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    try:
        try:
            # --help writes to stdout; send it where the caller wants output.
            with contextlib.redirect_stdout(out):
                args = build_parser().parse_args(argv)
        except SystemExit as done:
            return done.code if isinstance(done.code, int) else EXIT_OK
        if services is None:
            services = _services_from_env(args)
        with acting_as(Actor("ops_cli", _login())):
            document = args.handler(args, Context(services=services, stdin=stdin))
    except KeyboardInterrupt:
        err.write("error: interrupted\n")
        return 130
    except Exception as error:
        classified = _classify(error)
        if classified is None:
            raise
        code, message = classified
        err.write(f"error: {_one_line(message)}\n")
        return code
    out.write(json.dumps(document, indent=2) + "\n")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
