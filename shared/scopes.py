"""Which token audiences the app's own managed identity may be asked for, for a tenant.

A ``managed_identity`` tenant sends a token of *our* identity to its provider. That identity
can read every secret in Key Vault, write the storage account (tables, deployed code) and more,
so the audience is not free text (docs/security.md table H):

- the provider's own origin + ``/.default`` (Azure Health Data Services and Azure API for FHIR
  take their URL as the audience), or a scope on the operator's allow-list
  (``EHRB_MANAGED_IDENTITY_SCOPES``);
- never Azure Resource Manager, Key Vault, Storage, Microsoft Graph (or Azure AD Graph) or the
  sign-in service, in any cloud, by URL or by application id, allow-listed or not.
"""

from __future__ import annotations

from urllib.parse import urlsplit

# Host suffixes of audiences a token of our identity must never be minted for.
FORBIDDEN_HOST_SUFFIXES = (
    "management.azure.com",
    "management.core.windows.net",
    "management.usgovcloudapi.net",
    "management.core.usgovcloudapi.net",
    "management.chinacloudapi.cn",
    "management.core.chinacloudapi.cn",
    "vault.azure.net",
    "vaultcore.azure.net",
    "managedhsm.azure.net",
    "vault.usgovcloudapi.net",
    "vault.azure.cn",
    "storage.azure.com",
    "core.windows.net",
    "core.usgovcloudapi.net",
    "core.chinacloudapi.cn",
    "graph.microsoft.com",
    "graph.microsoft.us",
    "dod-graph.microsoft.us",
    "microsoftgraph.chinacloudapi.cn",
    "graph.windows.net",
    "login.microsoftonline.com",
)
# The same services by application id (a scope may name the app instead of its URL).
FORBIDDEN_APP_IDS = frozenset(
    {
        "797f4846-ba00-4fd7-ba43-dac1f8f63013",  # Azure Resource Manager
        "cfa8b339-82a2-471a-a3c9-0fc0be7a4093",  # Azure Key Vault
        "e406a681-f3d4-42a8-90b6-c2b029497af1",  # Azure Storage
        "00000003-0000-0000-c000-000000000000",  # Microsoft Graph
        "00000002-0000-0000-c000-000000000000",  # Azure AD Graph
    }
)


class ScopeRefused(ValueError):
    """A scope the managed identity must not be asked for; the message says why."""


def origin_scope(provider_base_url: str) -> str:
    """``<scheme>://<host>[:port]/.default`` of the provider base URL."""
    parts = urlsplit(provider_base_url)
    return f"{parts.scheme}://{parts.netloc}/.default"


def _normalised(scope: str) -> str:
    parts = urlsplit(scope)
    if parts.scheme in ("http", "https") and parts.hostname:
        default = {"http": 80, "https": 443}[parts.scheme]
        try:
            port = parts.port
        except ValueError:
            raise ScopeRefused("the scope is not a valid URL") from None
        netloc = parts.hostname if port in (None, default) else f"{parts.hostname}:{port}"
        return f"{parts.scheme}://{netloc}{parts.path}"
    return scope.lower()


def _forbidden(scope: str) -> bool:
    lowered = scope.lower()
    if any(app_id in lowered for app_id in FORBIDDEN_APP_IDS):
        return True
    host = (urlsplit(lowered).hostname or "") if "://" in lowered else ""
    return any(host == s or host.endswith("." + s) for s in FORBIDDEN_HOST_SUFFIXES)


def check_forbidden(scope: str) -> None:
    """ScopeRefused for an Azure management, Key Vault, Storage, Graph or sign-in audience."""
    if _forbidden(scope):
        raise ScopeRefused(
            "tokens of EHR Bridge's identity are never requested for Azure management, "
            "Key Vault, Storage or Graph"
        )


def managed_identity_scope(
    provider_scope: str, provider_base_url: str, allowed: frozenset[str] | tuple[str, ...]
) -> str:
    """The scope to request for a tenant, or ScopeRefused naming the rule it breaks."""
    own = origin_scope(provider_base_url)
    scope = provider_scope.strip() or own
    if not scope or any(c.isspace() for c in scope):
        raise ScopeRefused("the scope must be one audience")
    check_forbidden(scope)
    wanted = _normalised(scope)
    if wanted != _normalised(own) and wanted not in {_normalised(a) for a in allowed}:
        raise ScopeRefused(
            "the scope must be the provider's own origin + /.default or one listed in "
            "EHRB_MANAGED_IDENTITY_SCOPES"
        )
    return scope
