"""Every setting EHR Bridge reads, by name, in one place.

The names below are the single source of truth: the README's configuration table, the local
settings sample and the Bicep template's app settings are checked against ``SETTINGS``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.fhir.versions import VERSIONS, FhirVersion
from shared.hosting import Hosting, detect


class SettingsError(ValueError):
    """A setting has a value the app cannot run with."""


@dataclass(frozen=True)
class Setting:
    """One environment variable the code reads."""

    name: str
    default: str
    description: str
    local_only: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "EHRB_PUBLIC_BASE_URL",
        "",
        "Public origin (scheme://host[:port]) used in metadata, links and the token URL. "
        "Empty: taken from each request's own URL.",
    ),
    Setting(
        "EHRB_TRUST_FORWARDED_HEADERS",
        "false",
        "Honour X-Forwarded-Host/-Proto when building public URLs (only behind a proxy you run).",
    ),
    Setting("EHRB_TOKEN_ISSUER", "urn:ehr-bridge:oauth2", "`iss` of issued access tokens."),
    Setting("EHRB_TOKEN_AUDIENCE", "urn:ehr-bridge:fhir", "`aud` of issued access tokens."),
    Setting("EHRB_TOKEN_LIFETIME_SECONDS", "900", "Access-token lifetime (`expires_in`)."),
    Setting("EHRB_TOKEN_ALGORITHM", "RS256", "JWT signing algorithm: RS256 or ES256."),
    Setting(
        "EHRB_ASSERTION_ALGORITHM",
        "RS384",
        "Algorithm of the client assertions EHR Bridge signs for private_key_jwt providers: "
        "RS384 or ES384 (SMART Backend Services' pair).",
    ),
    Setting(
        "EHRB_ENTRA_AUDIENCE",
        "",
        "EHR Bridge's application (client) ID in Microsoft Entra ID: the `aud` of the v2.0 "
        "app-only tokens callers may present. Empty: Entra ID tokens are not accepted.",
    ),
    Setting(
        "EHRB_ENTRA_AUTHORITY",
        "https://login.microsoftonline.com",
        "The Entra ID authority (https origin) whose tenant issuers and keys are trusted.",
    ),
    Setting(
        "EHRB_ENTRA_CA_BUNDLE",
        "",
        "PEM file of the CAs trusted for the Entra authority instead of the system's "
        "(development: the local stand-in's throwaway CA).",
        local_only=True,
    ),
    Setting(
        "EHRB_CLIENT_JWKS_CA_BUNDLE",
        "",
        "PEM file of the CAs trusted for clients' JWKS URLs (private_key_jwt) instead of the "
        "system's (development: a local server's throwaway CA).",
        local_only=True,
    ),
    Setting(
        "EHRB_CACHE_TTL_SECONDS",
        "60",
        "TTL of the client, secret-version, tenant and signing-key caches and of each "
        "instance's list of revoked tokens; the documented revocation delay.",
    ),
    Setting(
        "EHRB_TOKEN_FAILURE_LIMIT",
        "10",
        "Failed client authentications per client_id and source address (and 5x that per "
        "source address across clients) within the window before that source gets 429; "
        "counted across instances.",
    ),
    Setting(
        "EHRB_TOKEN_FAILURE_WINDOW_SECONDS", "60", "Window of the failed-authentication limit."
    ),
    Setting(
        "EHRB_TOKEN_CLIENT_FAILURE_CEILING",
        "1000",
        "Failed authentications per client_id from all sources within the window; above it, "
        "sources that failed for that client get 429, sources with a clean record do not.",
    ),
    Setting(
        "EHRB_TRUSTED_PROXY_HOPS",
        "0",
        "Proxies of your own in front of the app that each append an X-Forwarded-For hop; "
        "0: the source address is the hop the platform front end appended.",
    ),
    Setting("EHRB_SECRET_STORE", "keyvault", "Secret store: `keyvault` or `local`."),
    Setting("EHRB_KEYVAULT_URL", "", "Key Vault URI, e.g. https://<vault>.vault.azure.net/."),
    Setting(
        "EHRB_KEYVAULT_TIMEOUT_SECONDS",
        "3",
        "Connect and read timeout of one Key Vault attempt; with two retries a failing call "
        "ends within 3x this (9 s), under the 10 s fail-closed budget.",
    ),
    Setting(
        "EHRB_STORE_CIRCUIT_FAILURE_THRESHOLD",
        "3",
        "Consecutive failed calls to Table Storage (or to Key Vault) after which its calls are "
        "paused: requests that need it answer 503 with Retry-After at once.",
    ),
    Setting(
        "EHRB_STORE_CIRCUIT_OPEN_SECONDS",
        "10",
        "How long Table Storage or Key Vault calls stay paused before one probe is let through.",
    ),
    Setting(
        "EHRB_LOCAL_SECRETS_PATH",
        ".local/secrets.json",
        "File of the local secret store (development only).",
        local_only=True,
    ),
    Setting(
        "EHRB_ALLOW_LOCAL_SECRET_STORE_IN_AZURE",
        "false",
        "Let the local secret store start although a hosting marker says this may be Azure "
        "(shared/hosting.py).",
        local_only=True,
    ),
    Setting(
        "EHRB_TABLES_ENDPOINT",
        "",
        "Table service URI, used with managed identity (https://<acct>.table.core.windows.net).",
    ),
    Setting(
        "EHRB_TABLES_CONNECTION_STRING",
        "",
        "Table connection string (Azurite locally); wins over EHRB_TABLES_ENDPOINT.",
        local_only=True,
    ),
    Setting(
        "EHRB_ALLOW_INSECURE_PROVIDER_URLS",
        "false",
        "Accept http:// and loopback provider URLs in tenant mappings (development only).",
        local_only=True,
    ),
    Setting(
        "EHRB_MANAGED_IDENTITY_SCOPES",
        "",
        "Token scopes (space-separated) a managed_identity tenant may name besides its provider's "
        "own origin + /.default; Azure management, Key Vault, Storage and Graph are refused even "
        "here.",
    ),
    Setting(
        "EHRB_LOCAL_ADMIN_KEY",
        "",
        "Key for manage/ routes outside Azure (dev host and `func start` do not enforce "
        "Azure's admin level). Generated by the bootstrap.",
        local_only=True,
    ),
    Setting(
        "EHRB_ENTRA_AUTH",
        "false",
        "Sign-in to console/ and manage/ through App Service Authentication (Microsoft Entra ID) "
        "and its app roles; trusted only in Azure with WEBSITE_AUTH_ENABLED (Bicep sets both).",
    ),
    Setting(
        "EHRB_MAX_REQUEST_BODY_BYTES",
        "1048576",
        "Largest request body the FHIR proxy accepts (413 above).",
    ),
    Setting(
        "EHRB_UPSTREAM_CONNECT_TIMEOUT_SECONDS",
        "5",
        "Connect timeout to a provider FHIR server (504 when exceeded).",
    ),
    Setting(
        "EHRB_UPSTREAM_READ_TIMEOUT_SECONDS",
        "30",
        "Read timeout per provider response, and the bound on one proxied call (504).",
    ),
    Setting(
        "EHRB_CIRCUIT_FAILURE_THRESHOLD",
        "5",
        "Consecutive provider failures that open its circuit breaker (503 with Retry-After).",
    ),
    Setting(
        "EHRB_CIRCUIT_OPEN_SECONDS",
        "30",
        "How long an open circuit refuses calls before one probe is let through.",
    ),
    Setting(
        "EHRB_TENANT_RATE_LIMIT_PER_SECOND",
        "50",
        "Proxied requests per second per tenant, for the whole app: each of N live instances "
        "allows 1/N (429 above; bursts of 2x).",
    ),
    Setting(
        "EHRB_CLIENT_RATE_LIMIT_PER_SECOND",
        "50",
        "Proxied requests per second per client, for the whole app: each of N live instances "
        "allows 1/N (429 above; bursts of 2x).",
    ),
    Setting(
        "EHRB_BATCH_MAX_ENTRIES",
        "50",
        "Most entries a batch Bundle may carry (400 above).",
    ),
    Setting(
        "EHRB_BATCH_CONCURRENCY",
        "4",
        "Entries the proxy runs at once when it executes a batch itself.",
    ),
    Setting(
        "EHRB_SORT_COMPENSATION_CAP",
        "1000",
        "Most resources the proxy reads to sort by date for a provider that cannot.",
    ),
    Setting(
        "EHRB_REQUEST_UPSTREAM_CALLS",
        "200",
        "Provider calls one proxied request may make, shared by its batch entries, sort "
        "compensation and display enrichment (then a warning, or 400 too-costly).",
    ),
    Setting(
        "EHRB_REQUEST_DEADLINE_SECONDS",
        "120",
        "No provider call of a proxied request starts or waits past this many seconds after it "
        "arrived (then a warning, or 504); below the front end's 230 s.",
    ),
    Setting(
        "EHRB_SANDBOX_ENABLED",
        "false",
        "Serve the built-in sandbox R4 provider (`api/sandbox/fhir`, synthetic data only) and "
        "its editor page (`api/sandbox/ui/`); off unless turned on.",
    ),
    Setting(
        "EHRB_DEMO_PROVIDER_URL",
        "",
        "Provider base URL of the demo tenant that `make run` seeds; empty: the built-in sandbox "
        "(read by tools/bootstrap.py only, not by the app).",
        local_only=True,
    ),
    Setting(
        "PYTHON_THREADPOOL_THREAD_COUNT",
        "",
        "Threads the Functions Python worker runs synchronous functions on (read by the worker; "
        "the app sizes each provider's connection pool to it). Empty: min(32, cpu + 4). In Azure "
        "the template sets it to the per-instance HTTP concurrency.",
    ),
    Setting(
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "",
        "Application Insights connection string: when set, traces, metrics and logs are exported "
        "through the Azure Monitor OpenTelemetry distro; empty: nothing is exported or loaded.",
    ),
    Setting(
        "EHRB_AUDIT_WORKSPACE_ID",
        "",
        "Log Analytics workspace id (its customerId) the per-tenant audit export reads; required "
        "in Azure. Empty outside Azure: the local audit store (EHRB_LOCAL_AUDIT_PATH).",
    ),
    Setting(
        "EHRB_LOG_ANALYTICS_ENDPOINT",
        "https://api.loganalytics.io",
        "Log Analytics query API the audit export calls (another cloud has its own).",
    ),
    Setting(
        "EHRB_LOCAL_AUDIT_PATH",
        ".local/audit/auditevents.jsonl",
        "File of the local audit store (development only; bounded, written in the background).",
        local_only=True,
    ),
    Setting(
        "AZURE_CLIENT_ID",
        "",
        "Client id of the user-assigned managed identity (read by DefaultAzureCredential).",
    ),
)

_DEFAULTS = {s.name: s.default for s in SETTINGS}

FACES: tuple[FhirVersion, ...] = VERSIONS
ALGORITHMS: tuple[str, ...] = ("RS256", "ES256")
ASSERTION_ALGORITHMS: tuple[str, ...] = ("RS384", "ES384")


def _flag(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("", "0", "false", "no"):
        return False
    raise SettingsError(f"{name} must be true or false")


def _positive_int(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be an integer") from None
    if number <= 0:
        raise SettingsError(f"{name} must be positive")
    return number


def _default_worker_threads() -> int:
    # Unset, the Python worker (3.9+) passes no max_workers, so ThreadPoolExecutor's default
    # applies (azure-functions-python-worker, dispatcher.py _get_sync_tp_max_workers).
    return min(32, (os.cpu_count() or 1) + 4)


def _worker_threads(value: str) -> int:
    if not value:
        return _default_worker_threads()
    return _positive_int(value, "PYTHON_THREADPOOL_THREAD_COUNT")


def _check_scopes(scopes: tuple[str, ...]) -> None:
    from shared.scopes import ScopeRefused, check_forbidden

    for scope in scopes:
        try:
            check_forbidden(scope)
        except ScopeRefused as refused:
            raise SettingsError(f"EHRB_MANAGED_IDENTITY_SCOPES: {refused}") from None


def _authority(value: str) -> str:
    """An https origin (scheme, host, optional port; no path, query or credentials)."""
    from urllib.parse import urlsplit

    parts = urlsplit(value.rstrip("/"))
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise SettingsError("EHRB_ENTRA_AUTHORITY has an invalid port") from None
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
    ):
        raise SettingsError("EHRB_ENTRA_AUTHORITY must be an https origin, e.g. https://host")
    return f"https://{parts.netloc.lower()}"


def _workspace_id(value: str) -> str:
    from shared.ids import is_guid

    if value and not is_guid(value):
        raise SettingsError("EHRB_AUDIT_WORKSPACE_ID must be the workspace's id (a GUID)")
    return value.lower()


def _count(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be an integer") from None
    if number < 0:
        raise SettingsError(f"{name} must not be negative")
    return number


# Integer proxy settings: dataclass field -> environment variable.
_PROXY_INTS = {
    "max_request_body_bytes": "EHRB_MAX_REQUEST_BODY_BYTES",
    "upstream_connect_timeout_seconds": "EHRB_UPSTREAM_CONNECT_TIMEOUT_SECONDS",
    "upstream_read_timeout_seconds": "EHRB_UPSTREAM_READ_TIMEOUT_SECONDS",
    "circuit_failure_threshold": "EHRB_CIRCUIT_FAILURE_THRESHOLD",
    "circuit_open_seconds": "EHRB_CIRCUIT_OPEN_SECONDS",
    "tenant_rate_limit_per_second": "EHRB_TENANT_RATE_LIMIT_PER_SECOND",
    "client_rate_limit_per_second": "EHRB_CLIENT_RATE_LIMIT_PER_SECOND",
    "batch_max_entries": "EHRB_BATCH_MAX_ENTRIES",
    "batch_concurrency": "EHRB_BATCH_CONCURRENCY",
    "sort_compensation_cap": "EHRB_SORT_COMPENSATION_CAP",
    "request_upstream_calls": "EHRB_REQUEST_UPSTREAM_CALLS",
    "request_deadline_seconds": "EHRB_REQUEST_DEADLINE_SECONDS",
}


@dataclass(frozen=True)
class Settings:
    """Typed view of the environment; build it with ``Settings.from_env``."""

    public_base_url: str = ""
    trust_forwarded_headers: bool = False
    token_issuer: str = _DEFAULTS["EHRB_TOKEN_ISSUER"]
    token_audience: str = _DEFAULTS["EHRB_TOKEN_AUDIENCE"]
    token_lifetime_seconds: int = 900
    token_algorithm: str = "RS256"
    assertion_algorithm: str = "RS384"
    entra_audience: str = ""
    entra_authority: str = _DEFAULTS["EHRB_ENTRA_AUTHORITY"]
    entra_ca_bundle: str = ""
    client_jwks_ca_bundle: str = ""
    cache_ttl_seconds: int = 60
    token_failure_limit: int = 10
    token_failure_window_seconds: int = 60
    token_client_failure_ceiling: int = 1000
    trusted_proxy_hops: int = 0
    secret_store: str = "keyvault"
    keyvault_url: str = ""
    keyvault_timeout_seconds: int = 3
    store_circuit_failure_threshold: int = 3
    store_circuit_open_seconds: int = 10
    local_secrets_path: str = ".local/secrets.json"
    allow_local_secret_store_in_azure: bool = False
    tables_endpoint: str = ""
    tables_connection_string: str = field(default="", repr=False)
    allow_insecure_provider_urls: bool = False
    managed_identity_scopes: tuple[str, ...] = ()
    local_admin_key: str = field(default="", repr=False)
    max_request_body_bytes: int = 1_048_576
    upstream_connect_timeout_seconds: int = 5
    upstream_read_timeout_seconds: int = 30
    circuit_failure_threshold: int = 5
    circuit_open_seconds: int = 30
    tenant_rate_limit_per_second: int = 50
    client_rate_limit_per_second: int = 50
    batch_max_entries: int = 50
    batch_concurrency: int = 4
    sort_compensation_cap: int = 1000
    request_upstream_calls: int = 200
    request_deadline_seconds: int = 120
    sandbox_enabled: bool = False
    entra_auth: bool = False
    audit_workspace_id: str = ""
    log_analytics_endpoint: str = _DEFAULTS["EHRB_LOG_ANALYTICS_ENDPOINT"]
    local_audit_path: str = _DEFAULTS["EHRB_LOCAL_AUDIT_PATH"]
    worker_threads: int = field(default_factory=_default_worker_threads)
    hosting: Hosting = field(default_factory=Hosting)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting from ``environ`` (default: ``os.environ``)."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str:
            return env.get(name, _DEFAULTS[name]).strip()

        algorithm = get("EHRB_TOKEN_ALGORITHM").upper()
        if algorithm not in ALGORITHMS:
            raise SettingsError("EHRB_TOKEN_ALGORITHM must be RS256 or ES256")
        assertion_algorithm = get("EHRB_ASSERTION_ALGORITHM").upper()
        if assertion_algorithm not in ASSERTION_ALGORITHMS:
            raise SettingsError("EHRB_ASSERTION_ALGORITHM must be RS384 or ES384")
        store = get("EHRB_SECRET_STORE").lower()
        if store not in ("keyvault", "local"):
            raise SettingsError("EHRB_SECRET_STORE must be keyvault or local")
        public_base = get("EHRB_PUBLIC_BASE_URL").rstrip("/")
        scopes = tuple(get("EHRB_MANAGED_IDENTITY_SCOPES").replace(",", " ").split())
        _check_scopes(scopes)
        if public_base and not public_base.startswith(("https://", "http://")):
            raise SettingsError("EHRB_PUBLIC_BASE_URL must be an absolute http(s) origin")
        return cls(
            public_base_url=public_base,
            trust_forwarded_headers=_flag(
                get("EHRB_TRUST_FORWARDED_HEADERS"), "EHRB_TRUST_FORWARDED_HEADERS"
            ),
            token_issuer=get("EHRB_TOKEN_ISSUER"),
            token_audience=get("EHRB_TOKEN_AUDIENCE"),
            token_lifetime_seconds=_positive_int(
                get("EHRB_TOKEN_LIFETIME_SECONDS"), "EHRB_TOKEN_LIFETIME_SECONDS"
            ),
            token_algorithm=algorithm,
            assertion_algorithm=assertion_algorithm,
            entra_audience=get("EHRB_ENTRA_AUDIENCE"),
            entra_authority=_authority(get("EHRB_ENTRA_AUTHORITY")),
            entra_ca_bundle=get("EHRB_ENTRA_CA_BUNDLE"),
            client_jwks_ca_bundle=get("EHRB_CLIENT_JWKS_CA_BUNDLE"),
            cache_ttl_seconds=_positive_int(
                get("EHRB_CACHE_TTL_SECONDS"), "EHRB_CACHE_TTL_SECONDS"
            ),
            token_failure_limit=_positive_int(
                get("EHRB_TOKEN_FAILURE_LIMIT"), "EHRB_TOKEN_FAILURE_LIMIT"
            ),
            token_failure_window_seconds=_positive_int(
                get("EHRB_TOKEN_FAILURE_WINDOW_SECONDS"), "EHRB_TOKEN_FAILURE_WINDOW_SECONDS"
            ),
            token_client_failure_ceiling=_positive_int(
                get("EHRB_TOKEN_CLIENT_FAILURE_CEILING"), "EHRB_TOKEN_CLIENT_FAILURE_CEILING"
            ),
            trusted_proxy_hops=_count(get("EHRB_TRUSTED_PROXY_HOPS"), "EHRB_TRUSTED_PROXY_HOPS"),
            secret_store=store,
            keyvault_url=get("EHRB_KEYVAULT_URL"),
            keyvault_timeout_seconds=_positive_int(
                get("EHRB_KEYVAULT_TIMEOUT_SECONDS"), "EHRB_KEYVAULT_TIMEOUT_SECONDS"
            ),
            store_circuit_failure_threshold=_positive_int(
                get("EHRB_STORE_CIRCUIT_FAILURE_THRESHOLD"), "EHRB_STORE_CIRCUIT_FAILURE_THRESHOLD"
            ),
            store_circuit_open_seconds=_positive_int(
                get("EHRB_STORE_CIRCUIT_OPEN_SECONDS"), "EHRB_STORE_CIRCUIT_OPEN_SECONDS"
            ),
            local_secrets_path=get("EHRB_LOCAL_SECRETS_PATH"),
            allow_local_secret_store_in_azure=_flag(
                get("EHRB_ALLOW_LOCAL_SECRET_STORE_IN_AZURE"),
                "EHRB_ALLOW_LOCAL_SECRET_STORE_IN_AZURE",
            ),
            tables_endpoint=get("EHRB_TABLES_ENDPOINT"),
            tables_connection_string=get("EHRB_TABLES_CONNECTION_STRING"),
            allow_insecure_provider_urls=_flag(
                get("EHRB_ALLOW_INSECURE_PROVIDER_URLS"), "EHRB_ALLOW_INSECURE_PROVIDER_URLS"
            ),
            managed_identity_scopes=scopes,
            local_admin_key=get("EHRB_LOCAL_ADMIN_KEY"),
            sandbox_enabled=_flag(get("EHRB_SANDBOX_ENABLED"), "EHRB_SANDBOX_ENABLED"),
            entra_auth=_flag(get("EHRB_ENTRA_AUTH"), "EHRB_ENTRA_AUTH"),
            audit_workspace_id=_workspace_id(get("EHRB_AUDIT_WORKSPACE_ID")),
            log_analytics_endpoint=get("EHRB_LOG_ANALYTICS_ENDPOINT").rstrip("/"),
            local_audit_path=get("EHRB_LOCAL_AUDIT_PATH"),
            **{
                field_name: _positive_int(get(name), name)
                for field_name, name in _PROXY_INTS.items()
            },
            worker_threads=_worker_threads(get("PYTHON_THREADPOOL_THREAD_COUNT")),
            hosting=detect(env),
        )
