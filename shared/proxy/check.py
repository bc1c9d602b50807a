"""``manage/tenants/{id}/check``: the operator's diagnosis of one tenant's provider.

Each step says whether it worked and how long it took: the mapping, the provider credential,
the provider's metadata (version and capabilities, which are recorded on the mapping), and one
small search. The report carries no secret, token or response body.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from shared.fhir import json_mime_type
from shared.fhir.errors import FhirError
from shared.fhir.versions import version_of
from shared.http import Headers
from shared.proxy.capabilities import detect, effective
from shared.proxy.provider_auth import ProviderAuth, ProviderAuthError
from shared.proxy.transport import ProviderTransport
from shared.secret_store import SecretStoreUnavailable
from shared.tenants import TenantMapping, TenantRegistry


class TenantChecker:
    """Runs the diagnosis and records what the provider declared it can do."""

    def __init__(
        self,
        tenants: TenantRegistry,
        transport: ProviderTransport,
        auth: ProviderAuth,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._tenants = tenants
        self._transport = transport
        self._auth = auth
        self._clock = clock

    def check(self, mapping: TenantMapping) -> dict[str, Any]:
        """The report for one mapping (which the caller has already loaded)."""
        steps: list[dict[str, Any]] = []
        statement: dict[str, Any] | None = None

        self._timed(steps, "mapping", self._check_mapping, mapping)
        auth_ok = self._timed(steps, "auth", self._check_auth, mapping)
        if auth_ok:
            statement = self._timed(steps, "metadata", self._check_metadata, mapping)
        detected: dict[str, bool] | None = None
        if statement is not None:
            detected = detect(statement)
            recorded = self._tenants.record_capabilities(mapping.tenant_id, detected)
            mapping = recorded
            self._timed(steps, "search", self._check_search, mapping)
        caps = effective(mapping.detected_capabilities, mapping.capabilities)
        return {
            "tenant_id": mapping.tenant_id,
            "ok": all(step["ok"] for step in steps) and statement is not None,
            "steps": steps,
            "detected_capabilities": detected,
            "capabilities": caps.to_json(),
        }

    def _timed(
        self,
        steps: list[dict[str, Any]],
        name: str,
        action: Callable[[TenantMapping, dict[str, Any]], Any],
        mapping: TenantMapping,
    ) -> Any:
        step: dict[str, Any] = {"step": name}
        started = self._clock()
        result = None
        try:
            result = action(mapping, step)
            step.setdefault("ok", True)
        except ProviderAuthError as error:
            # Our messages name the failing step and the Key Vault secret, never a value.
            step.update(ok=False, error=str(error))
        except SecretStoreUnavailable:
            step.update(ok=False, error="Key Vault is unavailable")
        except FhirError as error:
            step.update(ok=False, error=error.diagnostics, status=error.status)
        step["ms"] = round((self._clock() - started) * 1000, 1)
        steps.append(step)
        return result if step["ok"] else None

    def _check_mapping(self, mapping: TenantMapping, step: dict[str, Any]) -> bool:
        step.update(
            ok=mapping.enabled,
            enabled=mapping.enabled,
            provider_fhir_version=mapping.provider_fhir_version,
            provider_auth_kind=mapping.provider_auth_kind,
        )
        return mapping.enabled

    def _check_auth(self, mapping: TenantMapping, step: dict[str, Any]) -> bool:
        headers = self._auth.headers_for(mapping, force_refresh=True)
        step["sends_credentials"] = bool(headers)
        return True

    def _headers(self, mapping: TenantMapping) -> Headers:
        return Headers({"Accept": json_mime_type(mapping.provider_fhir_version)})

    def _check_metadata(
        self, mapping: TenantMapping, step: dict[str, Any]
    ) -> dict[str, Any] | None:
        answer = self._transport.probe(
            mapping, f"{mapping.provider_base_url}/metadata", self._headers(mapping)
        )
        step["status"] = answer.status
        try:
            statement = json.loads(answer.body)
        except (ValueError, RecursionError):
            statement = None
        if answer.status != 200 or not isinstance(statement, dict):
            step.update(ok=False, error="the provider's metadata is not a FHIR JSON document")
            return None
        reported = statement.get("fhirVersion")
        step["fhir_version"] = reported if isinstance(reported, str) else None
        step["resource_type"] = statement.get("resourceType")
        if version_of(reported) != mapping.provider_fhir_version:
            step.update(ok=False, error="the provider reports another FHIR version than mapped")
        return statement

    def _check_search(self, mapping: TenantMapping, step: dict[str, Any]) -> bool:
        answer = self._transport.probe(
            mapping, f"{mapping.provider_base_url}/Patient?_count=1", self._headers(mapping)
        )
        step["status"] = answer.status
        if answer.status != 200:
            step.update(ok=False, error="a one-patient search did not succeed")
            return False
        try:
            bundle = json.loads(answer.body)
        except (ValueError, RecursionError):
            bundle = None
        step["bundle_total"] = "total" in bundle if isinstance(bundle, dict) else False
        return True
