"""Where the app runs, recognised from the environment markers the Functions host itself reads.

Two decisions hang on this, and they fail safe in opposite directions:

* ``enforces_admin_level``: the app runs on one of the platform's hosting forms. ``manage/`` and
  the console then check Key Vault's admin key and may trust App Service Authentication's
  principal header (``shared/operators.py``, with ``platform_auth``); elsewhere they require
  ``EHRB_LOCAL_ADMIN_KEY``. Wrongly true would let a forged principal header in wherever the
  platform's authentication does not run (``func start``, the dev host), so it needs two
  independent markers of one hosting form and no sign of Core Tools.
* ``maybe_azure``: any single Azure-specific marker. The local secret store refuses to start
  then, so one stray variable makes it refuse rather than run in Azure. ``CONTAINER_NAME``
  alone does not count: container runtimes and sandboxes set it too (this project's own
  development machines do).

The markers and their meaning follow the host's ``EnvironmentExtensions.cs``
(Azure/azure-functions-host, src/WebJobs.Script/Environment/): ``IsAppService`` is a non-empty
``WEBSITE_INSTANCE_ID``; ``IsLinuxConsumptionOnAtlas`` is ``CONTAINER_NAME`` without
``LEGION_SERVICE_HOST``; ``IsLinuxConsumptionOnLegion`` is ``CONTAINER_NAME`` or
``WEBSITE_POD_NAME`` with ``LEGION_SERVICE_HOST`` and no ``WEBSITE_INSTANCE_ID``;
``IsFlexConsumptionSku`` is ``WEBSITE_SKU=FlexConsumption`` or Legion; ``GetInstanceId`` reads
``CONTAINER_NAME`` on any Linux consumption form, which is why ``WEBSITE_INSTANCE_ID`` is empty
on Flex Consumption. ``IsCoreTools`` is a non-empty ``FUNCTIONS_CORETOOLS_ENVIRONMENT``, which
Core Tools sets for ``func start``. Names from ``EnvironmentSettingNames.cs`` in the same folder.

Pure: the caller passes the environment (``shared/settings.py`` is the one reader of
``os.environ``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

# Every variable detection looks at, in the order the start-up line lists them.
MARKERS: tuple[str, ...] = (
    "WEBSITE_INSTANCE_ID",
    "WEBSITE_SKU",
    "WEBSITE_SITE_NAME",
    "CONTAINER_NAME",
    "WEBSITE_POD_NAME",
    "LEGION_SERVICE_HOST",
    "FUNCTIONS_LOGS_MOUNT_PATH",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_CORETOOLS_ENVIRONMENT",
)
# Set only by the platform's hosting forms. Not FUNCTIONS_WORKER_RUNTIME, which
# local.settings.json sets for `func start` too, nor CONTAINER_NAME, which is generic: it counts
# only next to a marker of the same form.
PLATFORM_MARKERS = frozenset(MARKERS) - {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_CORETOOLS_ENVIRONMENT",
    "CONTAINER_NAME",
}

FLEX_CONSUMPTION = "flex-consumption"
LINUX_CONSUMPTION = "linux-consumption"
APP_SERVICE = "app-service"
CORE_TOOLS = "core-tools"
LOCAL = "local"
UNRECOGNISED = "unrecognised"

_FLEX_SKU = "flexconsumption"
_DYNAMIC_SKU = "dynamic"

log = logging.getLogger(__name__)


# Set by App Service to "True" when its built-in authentication (Easy Auth) runs in front of the
# app (Microsoft.Identity.Web's AppServicesAuthenticationInformation reads the same variable).
PLATFORM_AUTH_MARKER = "WEBSITE_AUTH_ENABLED"


@dataclass(frozen=True)
class Hosting:
    """The hosting form and the marker names it was recognised from (never their values)."""

    kind: str = LOCAL
    present: tuple[str, ...] = ()
    platform_auth: bool = False  # App Service Authentication says it is on (WEBSITE_AUTH_ENABLED)

    @property
    def enforces_admin_level(self) -> bool:
        """The platform's host requires the master key for admin-level routes."""
        return self.kind in (FLEX_CONSUMPTION, LINUX_CONSUMPTION, APP_SERVICE)

    @property
    def maybe_azure(self) -> bool:
        """Some platform marker is present, whether or not the form was recognised."""
        return self.enforces_admin_level or any(m in PLATFORM_MARKERS for m in self.present)

    def describe(self) -> str:
        """One line for the start-up log: the form, the marker names, what follows."""
        names = ", ".join(self.present) or "none"
        if self.enforces_admin_level:
            consequence = "manage/ and console/ need Key Vault's manage-admin-key or an Entra role"
            if self.platform_auth:
                consequence += " (App Service Authentication is on)"
        else:
            consequence = "manage/ and console/ require EHRB_LOCAL_ADMIN_KEY"
        if self.maybe_azure:
            consequence += "; the local secret store refuses to start"
        return f"hosting: {self.kind} (markers present: {names}); {consequence}"


def detect(environ: Mapping[str, str]) -> Hosting:
    """The hosting form ``environ`` shows; two agreeing markers before any Azure form."""

    def has(name: str) -> bool:
        return bool(environ.get(name, "").strip())

    present = tuple(name for name in MARKERS if has(name))
    auth = environ.get(PLATFORM_AUTH_MARKER, "").strip().lower() == "true"
    sku = environ.get("WEBSITE_SKU", "").strip().lower()
    instance = has("WEBSITE_INSTANCE_ID")
    container = has("CONTAINER_NAME") or has("WEBSITE_POD_NAME")
    legion = not instance and container and has("LEGION_SERVICE_HOST")
    if has("FUNCTIONS_CORETOOLS_ENVIRONMENT"):
        # Core Tools does not enforce authorization levels, whatever else is set.
        return Hosting(CORE_TOOLS, present, auth)
    if legion or (not instance and container and sku == _FLEX_SKU):
        return Hosting(FLEX_CONSUMPTION, present, auth)
    if (
        not instance
        and has("CONTAINER_NAME")
        and not has("LEGION_SERVICE_HOST")
        and (sku == _DYNAMIC_SKU or has("WEBSITE_SITE_NAME"))
    ):
        return Hosting(LINUX_CONSUMPTION, present, auth)
    if instance and (has("WEBSITE_SITE_NAME") or bool(sku)):
        return Hosting(APP_SERVICE, present, auth)
    if any(name in PLATFORM_MARKERS for name in present):
        return Hosting(UNRECOGNISED, present, auth)
    return Hosting(LOCAL, present, auth)


def log_hosting(hosting: Hosting, logger: logging.Logger = log) -> None:
    """Say once, at start, which form this is and from which marker names."""
    if hosting.kind == UNRECOGNISED:
        logger.warning(
            "%s: platform markers without a consistent hosting form; failing safe",
            hosting.describe(),
        )
    else:
        logger.info("%s", hosting.describe())
