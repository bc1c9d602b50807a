"""The proxy's one scope rule: a request needs, on its resource type, the SMART permission its
interaction is (docs/security.md table N).

- read (``GET Type/id``, its ``_history``) needs ``r``; a search (``GET Type``,
  ``POST Type/_search``) needs ``s``; a create (``POST Type``) ``c``; an update (``PUT``,
  ``PATCH``) ``u``; a delete ``d``;
- every entry of a batch Bundle is judged like the request it stands for, before anything is
  forwarded: one entry outside the grant refuses the whole batch;
- ``_include`` names its target (``Type:param:Target``) or needs read on every type;
  ``_revinclude=Type:param`` needs search on ``Type``: what comes back must be granted too;
- the displays the proxy fills in from referenced resources are read only for types the
  token may read.

A refusal is 403 with an OperationOutcome (``forbidden``) and RFC 6750 §3.1's
``insufficient_scope`` challenge naming the scope that would do.
"""

from __future__ import annotations

from shared.auth.smart_scopes import READ, SEARCH, WILDCARD, ScopeGrant, canonical_type
from shared.fhir.errors import Forbidden
from shared.fhir.paths import FhirPath

_VERBS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


def letter_for(method: str, path: FhirPath) -> str | None:
    """The permission a request of ``method`` on ``path`` needs; None when it names no type."""
    if path.resource_type is None:
        return None
    if method in ("GET", "HEAD"):
        return SEARCH if path.interaction == "type" else READ
    if method == "POST":
        return SEARCH if path.interaction == "search-post" else "c"
    if method == "DELETE":
        return "d"
    return "u"


def insufficient_scope(resource_type: str, letter: str, where: str = "") -> Forbidden:
    """The 403 for a request the token's scopes do not cover."""
    name = canonical_type(resource_type) or resource_type
    needed = f"system/{name}.{letter}"
    return Forbidden(
        f"insufficient_scope: {where}the token does not grant {_VERBS[letter]} of {name} "
        f"(needs {needed})",
        headers={
            "WWW-Authenticate": (
                f'Bearer realm="fhir", error="insufficient_scope", scope="{needed}"'
            )
        },
    )


def check(scopes: ScopeGrant, method: str, path: FhirPath, query: list[tuple[str, str]]) -> None:
    """Forbidden unless ``scopes`` grant what the request (and its includes) asks for."""
    letter = letter_for(method, path)
    if letter is None or path.resource_type is None:
        return
    if not scopes.allows(path.resource_type, letter):
        raise insufficient_scope(path.resource_type, letter)
    check_includes(scopes, query)


def check_entry(
    scopes: ScopeGrant, index: int, path: FhirPath, query: list[tuple[str, str]]
) -> None:
    """Forbidden, naming the entry, unless ``scopes`` grant one batch entry (a GET)."""
    letter = letter_for("GET", path)
    if letter is None or path.resource_type is None:
        return
    if not scopes.allows(path.resource_type, letter):
        raise insufficient_scope(path.resource_type, letter, f"entry {index}: ")
    check_includes(scopes, query)


def check_includes(scopes: ScopeGrant, query: list[tuple[str, str]]) -> None:
    """Forbidden when an ``_include`` or ``_revinclude`` would return types not granted."""
    for name, value in query:
        base = name.split(":")[0]
        if base not in ("_include", "_revinclude"):
            continue
        for one in value.split(","):
            parts = one.split(":")
            if base == "_revinclude":
                if not scopes.allows(parts[0], SEARCH):
                    raise insufficient_scope(parts[0], SEARCH, "_revinclude: ")
            elif len(parts) >= 3:
                if not scopes.allows(parts[2], READ):
                    raise insufficient_scope(parts[2], READ, "_include: ")
            elif not scopes.allows(WILDCARD, READ):
                # Without a target the included types are whatever the parameter points at.
                raise insufficient_scope(WILDCARD, READ, "_include without a target type: ")


def readable(scopes: ScopeGrant, references: list[str]) -> list[str]:
    """The ``Type/id`` references whose type the token may read."""
    return [r for r in references if scopes.allows(r.partition("/")[0], READ)]
