"""SMART system scopes: what a token lets its client do, beside the tenant GUID that routes it.

The grammar accepted (SMART App Launch 2.x, "Scopes for requesting FHIR resources"; the v1
forms stay valid there):

- ``system/<type>.<permissions>``, and only ``system/``: a client-credentials token acts for no
  patient and no user, so ``patient/`` and ``user/`` scopes are ``invalid_scope``;
- ``<type>`` is a resource type the proxy forwards, in any release's name (``MedicationOrder``
  and ``MedicationRequest`` are one type: the proxy converts one into the other), or ``*`` for
  every type the proxy forwards;
- ``<permissions>`` is v1 ``read`` (= v2 ``rs``), ``write`` (= ``cud``) or ``*`` (= ``cruds``),
  or a v2 subset of ``cruds`` in that order, each letter at most once;
- v2 granular scopes (``?category=...``) and every other scope (``launch``, ``openid``, ...) are
  ``invalid_scope``: the proxy could not enforce them.

A grant is kept as "type -> letters", types by their R4 name, and written back in v2 form
(``system/*.rs``), so a token and an introspection answer say one thing one way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Final

LETTERS: Final = "cruds"
WILDCARD: Final = "*"
READ: Final = "r"
SEARCH: Final = "s"
_V1: Final = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(r"system/([A-Za-z]+|\*)\.([a-z]+|\*)")
MAX_SCOPES: Final = 32
"""Most SMART scopes one request or registration may name (a bounded request)."""

DEFAULT_SCOPES: Final = ("system/*.rs",)
"""What a client is registered with when nothing says otherwise (rows stored before scopes
existed included): read and search of every type, which is what the Patients app does."""


class InvalidScope(ValueError):
    """A scope outside the accepted grammar; the message names the rule, never the input."""


@cache
def _type_names() -> Mapping[str, str]:
    """Every release's name of every forwarded type -> its R4 name."""
    # Imported on first use: the catalogue is not needed at cold start.
    from shared.fhir.catalog import RESOURCE_TYPES

    return {name: t.name for t in RESOURCE_TYPES if t.proxied for name in t.names}


def type_names() -> list[str]:
    """Every name a scope may give a type (each release's name of each forwarded type)."""
    return sorted(_type_names())


def canonical_type(name: str) -> str | None:
    """The R4 name of a forwarded type named in any release, or None."""
    return _type_names().get(name)


def is_smart_scope(value: str) -> bool:
    """Whether ``value`` looks like a SMART resource scope (of any context)."""
    return value.startswith(("system/", "patient/", "user/"))


def _letters(permissions: str) -> str:
    if permissions in _V1:
        return _V1[permissions]
    # v2: a subset of c, r, u, d, s in that order, no letter twice.
    if permissions and all(p in LETTERS for p in permissions):
        positions = [LETTERS.index(p) for p in permissions]
        if positions == sorted(set(positions)):
            return permissions
    raise InvalidScope("permissions must be read, write, * or letters of cruds in that order")


def parse_scope(value: str) -> tuple[str, str]:
    """``(type or "*", letters)`` of one ``system/`` scope, or InvalidScope."""
    if value.startswith(("patient/", "user/")):
        raise InvalidScope("only system/ scopes are granted to client-credentials tokens")
    if "?" in value:
        raise InvalidScope("granular scopes (with ?) are not supported")
    match = _SCOPE.fullmatch(value)
    if match is None:
        raise InvalidScope("a scope must be system/<type>.<permissions>")
    type_name, permissions = match.groups()
    if type_name != WILDCARD:
        canonical = canonical_type(type_name)
        if canonical is None:
            raise InvalidScope("a scope names a resource type EHR Bridge does not forward")
        type_name = canonical
    return type_name, _letters(permissions)


@dataclass(frozen=True)
class ScopeGrant:
    """What a token allows: for each type (or ``*``), the letters of ``cruds`` granted."""

    by_type: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def letters_for(self, resource_type: str) -> frozenset[str]:
        """The letters granted on one type (its own and the wildcard's)."""
        canonical = canonical_type(resource_type) or resource_type
        return self.by_type.get(canonical, frozenset()) | self.by_type.get(WILDCARD, frozenset())

    def allows(self, resource_type: str, letter: str) -> bool:
        """Whether ``letter`` (one of ``cruds``) is granted on ``resource_type``."""
        return letter in self.letters_for(resource_type)

    @property
    def empty(self) -> bool:
        """True when nothing at all is granted."""
        return not any(self.by_type.values())

    def within(self, maximum: ScopeGrant) -> ScopeGrant:
        """What of this grant ``maximum`` allows (a request cut down to a registration)."""
        kept: dict[str, frozenset[str]] = {}
        wildcard = self.by_type.get(WILDCARD, frozenset()) & maximum.by_type.get(
            WILDCARD, frozenset()
        )
        if wildcard:
            kept[WILDCARD] = wildcard
        for name in set(self.by_type) | set(maximum.by_type):
            if name == WILDCARD:
                continue
            letters = (self.letters_for(name) & maximum.letters_for(name)) - wildcard
            if letters:
                kept[name] = letters
        return ScopeGrant(kept)

    def covers(self, other: ScopeGrant) -> bool:
        """Whether everything ``other`` grants is granted here too."""
        return other.within(self) == other.normalised()

    def normalised(self) -> ScopeGrant:
        """The same grant without empty or redundant entries."""
        return self.within(ScopeGrant({WILDCARD: frozenset(LETTERS)}))

    def scopes(self) -> tuple[str, ...]:
        """The grant as v2 ``system/`` scopes, the wildcard first, then types by name."""
        ordered = sorted(self.by_type, key=lambda name: (name != WILDCARD, name))
        return tuple(
            f"system/{name}.{''.join(c for c in LETTERS if c in self.by_type[name])}"
            for name in ordered
            if self.by_type[name]
        )


def parse_scopes(values: Iterable[str]) -> ScopeGrant:
    """The grant of several scopes (their union), or InvalidScope for the first bad one."""
    granted: dict[str, set[str]] = {}
    for count, value in enumerate(values, start=1):
        if count > MAX_SCOPES:
            raise InvalidScope(f"at most {MAX_SCOPES} scopes")
        type_name, letters = parse_scope(value)
        granted.setdefault(type_name, set()).update(letters)
    return ScopeGrant({name: frozenset(letters) for name, letters in granted.items()}).normalised()


def registered(value: object) -> tuple[str, ...]:
    """A registration's scopes as stored (space-separated), validated; the default when unset."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_SCOPES
    if isinstance(value, str):
        values = value.split()
    elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        values = list(value)
    else:
        raise InvalidScope("scopes must be a list of strings or one space-separated string")
    grant = parse_scopes(values)
    if grant.empty:
        raise InvalidScope("at least one scope is required")
    return grant.scopes()


LEGACY_GRANT: Final = parse_scopes(DEFAULT_SCOPES)
"""The grant of a token whose ``scope`` claim names only its tenant (issued before scopes, or
an Entra ID token whose roles name no SMART scope)."""
