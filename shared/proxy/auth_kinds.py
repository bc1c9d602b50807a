"""How EHR Bridge authenticates to a tenant's provider: one table of auth kinds.

A tenant mapping's ``provider_auth_kind`` names one row of ``AUTH_KINDS``. Each row says which
mapping fields the kind needs (the other kinds' fields are refused), the rule of its own a
mapping must meet, what the operator stores in Key Vault as ``provider-<tenant>`` for it, and
the loader that turns that into a credential at call time. Mapping validation
(``shared/tenants.py``), ``ProviderAuth`` and the ops CLI read this table; nothing else spells a
kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from shared.proxy.provider_tokens import (
    Loader,
    load_bearer,
    load_client_credentials,
    load_managed_identity,
    load_private_key_jwt,
)
from shared.scopes import ScopeRefused, managed_identity_scope


class AuthKind(StrEnum):
    """The ways EHR Bridge can authenticate to a provider."""

    NONE = "none"
    CLIENT_CREDENTIALS = "client_credentials"
    MANAGED_IDENTITY = "managed_identity"
    BEARER = "bearer"
    PRIVATE_KEY_JWT = "private_key_jwt"


class UnknownAuthKind(ValueError):
    """A value that names no auth kind."""


class AuthKindRuleBroken(ValueError):
    """A mapping breaks a rule of its auth kind; ``field`` names the offending field."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


# A kind's own rule, given the mapping's provider_scope, provider_base_url and the operator's
# allow-listed managed identity scopes; raises AuthKindRuleBroken.
KindRule = Callable[[str, str, tuple[str, ...]], None]


@dataclass(frozen=True)
class AuthKindRules:
    """One auth kind: its mapping fields, its rule, its stored credential and its loader."""

    kind: AuthKind
    meaning: str
    """What the kind does, in a few words (ops CLI help)."""
    required: tuple[str, ...] = ()
    """Mapping fields the kind needs; another kind's required fields are refused."""
    rule: KindRule | None = None
    stored_credential: str | None = None
    """What ``provider-<tenant>`` holds for this kind; None: nothing is stored."""
    load: Loader | None = None
    """How the credential is obtained at call time; None: the provider gets no credential."""

    @property
    def sends_credential(self) -> bool:
        """True when calls to the provider carry a credential of ours."""
        return self.load is not None

    def check(self, scope: str, base_url: str, allowed_scopes: tuple[str, ...]) -> None:
        """Apply the kind's own rule to a mapping (nothing for most kinds)."""
        if self.rule is not None:
            self.rule(scope, base_url, allowed_scopes)


def _managed_identity_scope_rule(scope: str, base_url: str, allowed: tuple[str, ...]) -> None:
    """The identity's token goes to the provider's own audience or an allow-listed one only."""
    try:
        managed_identity_scope(scope, base_url, allowed)
    except ScopeRefused as refused:
        field = "provider_scope" if scope else "provider_base_url"
        raise AuthKindRuleBroken(f"{field}: {refused}", field) from None


AUTH_KINDS: Final[Mapping[AuthKind, AuthKindRules]] = {
    rules.kind: rules
    for rules in (
        AuthKindRules(AuthKind.NONE, "no credential"),
        AuthKindRules(
            AuthKind.CLIENT_CREDENTIALS,
            "an OAuth client-credentials token from provider_token_url",
            required=("provider_token_url", "provider_client_id"),
            stored_credential="the provider client secret",
            load=load_client_credentials,
        ),
        AuthKindRules(
            AuthKind.MANAGED_IDENTITY,
            "a token of the app's managed identity for the provider's audience",
            rule=_managed_identity_scope_rule,
            load=load_managed_identity,
        ),
        AuthKindRules(
            AuthKind.BEARER,
            "a static bearer token kept in Key Vault",
            stored_credential="the provider bearer token",
            load=load_bearer,
        ),
        # Nothing stored per tenant: the assertion key is EHR Bridge's own (Key Vault secret
        # assertion-signing-key), and the provider knows its public half from our JWKS URL.
        AuthKindRules(
            AuthKind.PRIVATE_KEY_JWT,
            "an OAuth client-credentials token from provider_token_url, authenticated by "
            "EHR Bridge's signed assertion (RFC 7523, SMART Backend Services)",
            required=("provider_token_url", "provider_client_id"),
            load=load_private_key_jwt,
        ),
    )
}

# Rows by their plain names: mappings read from a table carry the kind as a plain string.
_BY_NAME: Final[Mapping[str, AuthKindRules]] = {
    str(kind): rules for kind, rules in AUTH_KINDS.items()
}

CREDENTIAL_FIELDS: Final = tuple(
    dict.fromkeys(name for rules in AUTH_KINDS.values() for name in rules.required)
)
"""Every mapping field some kind requires, in table order."""


def auth_kind(value: object) -> AuthKindRules:
    """The rules of the kind ``value`` names, or UnknownAuthKind."""
    rules = _BY_NAME.get(value) if isinstance(value, str) else None
    if rules is None:
        raise UnknownAuthKind(f"unknown provider auth kind {value!r}")
    return rules


def kinds_requiring(field: str) -> tuple[AuthKind, ...]:
    """The kinds that require ``field``."""
    return tuple(kind for kind, rules in AUTH_KINDS.items() if field in rules.required)


def kinds_storing_a_credential() -> tuple[AuthKind, ...]:
    """The kinds whose credential the operator stores as ``provider-<tenant>``."""
    return tuple(kind for kind, rules in AUTH_KINDS.items() if rules.stored_credential)


def one_of(kinds: tuple[AuthKind, ...] | list[AuthKind]) -> str:
    """``a, b or c``: kinds as an error message lists them."""
    names = [str(kind) for kind in kinds]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
