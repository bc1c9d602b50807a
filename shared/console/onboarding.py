"""Tenant onboarding: the form's fields as a mapping, the check's steps in plain words, and the
last check result of each tenant.

The form writes what the management API's PUT takes (``shared/tenants.parse_mapping`` judges
it, so the rules are the same), plus the provider credential, which goes to the secret store
as ``provider-<tenant>`` and is never shown again. The last check result lives in the
``tenants`` table, partition ``console-check`` (the mappings are in partition ``tenant``): ok or
not, when, and the first failing step's explanation. No secret, URL or body.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.console.rules import When, when
from shared.fhir.versions import FhirVersion
from shared.proxy.auth_kinds import AUTH_KINDS
from shared.secret_store import utcnow
from shared.tables import Entity, EntityTable
from shared.tenants import TenantMapping

CHECK_PARTITION = "console-check"
MAX_CREDENTIAL_BYTES = 25 * 1024  # Key Vault's largest secret value
ALLOW_PREFIX = "allow-"  # one checkbox per client: allow-<client_id>

LABELS: dict[str, str] = {
    "tenant_id": "Tenant ID (the customer's Microsoft Entra tenant GUID)",
    "display_name": "Display name",
    "provider_base_url": "Provider FHIR base URL",
    "provider_fhir_version": "Provider FHIR version",
    "provider_auth_kind": "How EHR Bridge signs in to the provider",
    "provider_token_url": "Provider token URL",
    "provider_client_id": "Client ID at the provider",
    "provider_scope": "Scope at the provider (optional)",
    "credential": "Provider credential",
    "allowed_client_ids": "Clients allowed to use this tenant",
    "enabled": "Enabled",
}
STEP_NAMES = {
    "mapping": "Mapping",
    "auth": "Provider credential",
    "metadata": "Provider metadata",
    "search": "One patient search",
}


def version_choices() -> list[tuple[str, str]]:
    """The FHIR version select's options."""
    return [(str(version), version.label) for version in FhirVersion]


def auth_kind_choices() -> list[tuple[str, str]]:
    """The auth kind select's options, each with what it means."""
    return [(str(kind), f"{kind}: {rules.meaning}") for kind, rules in AUTH_KINDS.items()]


def stored_credential(kind: str) -> str | None:
    """What ``kind`` keeps in the secret store (None: nothing)."""
    rules = next((r for k, r in AUTH_KINDS.items() if str(k) == kind), None)
    return rules.stored_credential if rules else None


def mapping_document(form: dict[str, str], client_ids: list[str], enabled: bool) -> dict[str, Any]:
    """The management API's mapping document from the onboarding form."""
    document: dict[str, Any] = {
        "display_name": form.get("display_name", "").strip(),
        "provider_base_url": form.get("provider_base_url", "").strip(),
        "provider_fhir_version": form.get("provider_fhir_version", "").strip(),
        "provider_auth_kind": form.get("provider_auth_kind", "").strip(),
        "allowed_client_ids": [c for c in client_ids if form.get(ALLOW_PREFIX + c) == "on"],
        "enabled": enabled,
    }
    for name in ("provider_token_url", "provider_client_id", "provider_scope"):
        value = form.get(name, "").strip()
        if value:
            document[name] = value
    return document


def explain(step: dict[str, Any]) -> str:
    """One sentence saying what a failed check step means and what to do about it."""
    name, error, status = step.get("step"), str(step.get("error", "")), step.get("status")
    if step.get("ok"):
        return "Worked."
    if name == "mapping":
        return "The mapping is disabled, so the proxy would refuse this tenant's calls."
    if name == "auth":
        return (
            f"EHR Bridge could not get its credential for the provider ({error}). Check the "
            "token URL, the client ID and the credential you entered."
        )
    if name == "metadata":
        if "another FHIR version" in error:
            return (
                f"The provider says it speaks FHIR {step.get('fhir_version')}: choose that "
                "version, or check the base URL points at the right server."
            )
        if status in (401, 403):
            return "The provider refused EHR Bridge's credential when reading its metadata."
        if status == 404:
            return "Nothing answered at <base URL>/metadata: the base URL is probably wrong."
        if status in (502, 504) or not status:
            return (
                f"The provider could not be reached ({error or 'no answer'}). Check the base URL "
                "and that the server is running and reachable from Azure."
            )
        return f"The provider's metadata could not be read ({error})."
    if name == "search":
        return (
            f"A one-patient search did not succeed (status {status}). Check that the credential "
            "may read Patient resources."
        )
    return error or "This step failed."


@dataclass(frozen=True)
class CheckSummary:
    """A tenant's last check: whether it passed, when, and why not."""

    ok: bool
    at: When
    reason: str


class CheckResults:
    """The last check result of each tenant (partition ``console-check`` of ``tenants``)."""

    def __init__(self, table: EntityTable) -> None:
        self._table = table

    def record(
        self, tenant_id: str, report: dict[str, Any], moment: datetime | None = None
    ) -> None:
        """Keep the outcome of one check (not its details)."""
        failed = next((s for s in report.get("steps", []) if not s.get("ok")), None)
        reason = (
            f"{STEP_NAMES.get(failed['step'], failed['step'])}: {explain(failed)}" if failed else ""
        )
        self._table.upsert(
            Entity(
                CHECK_PARTITION,
                tenant_id,
                {
                    "ok": bool(report.get("ok")),
                    "checked_at": (moment or utcnow()).isoformat(),
                    "reason": reason[:500],
                },
            )
        )

    def all(self) -> dict[str, CheckSummary]:
        """Every tenant's last check, by tenant id."""
        found: dict[str, CheckSummary] = {}
        for entity in self._table.query_partition(CHECK_PARTITION):
            props = entity.properties
            try:
                moment: datetime | None = datetime.fromisoformat(str(props.get("checked_at", "")))
            except ValueError:
                moment = None
            found[entity.row_key] = CheckSummary(
                bool(props.get("ok")), when(moment), str(props.get("reason", ""))
            )
        return found


def form_values(mapping: TenantMapping | None) -> dict[str, str]:
    """What the onboarding form shows for a stored mapping (never its credential)."""
    if mapping is None:
        return {"provider_fhir_version": "r4", "provider_auth_kind": "none"}
    values = {
        "tenant_id": mapping.tenant_id,
        "display_name": mapping.display_name,
        "provider_base_url": mapping.provider_base_url,
        "provider_fhir_version": mapping.provider_fhir_version,
        "provider_auth_kind": mapping.provider_auth_kind,
        "provider_token_url": mapping.provider_token_url,
        "provider_client_id": mapping.provider_client_id,
        "provider_scope": mapping.provider_scope,
        "enabled": "on" if mapping.enabled else "",
    }
    values.update({ALLOW_PREFIX + c: "on" for c in mapping.allowed_client_ids})
    return values
