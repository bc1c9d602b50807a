"""Turns telemetry on, once per process, when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set.

Without the setting nothing is imported (the cold start keeps its goal, ``make bench``). With it,
the Azure Monitor OpenTelemetry distro is configured (learn.microsoft.com/azure/azure-functions/
opentelemetry-howto: ``configure_azure_monitor()`` in the app, ``telemetryMode`` in host.json),
with every automatic instrumentation off: the requests, urllib3 and Azure SDK instrumentations
would export provider and store URLs, query strings included. Our own spans
(``shared.telemetry.tracing``) and metrics (``shared.telemetry.metrics``) take their place.

- Traces are kept whole (``sampling_ratio=1.0``): the trace of the one failed request an
  operator looks for must not have been sampled away. ``OTEL_TRACES_SAMPLER`` still overrides.
- Logs go from the root logger, so the audit trail and ``ALERT`` lines reach ``traces``
  (``AppTraces``), but only our code's (``ehrbridge.*``, ``shared.*``, ``functions.*``): a
  library's lines may name URLs (the Azure SDK's HTTP logging policy logs request URLs at
  INFO; urllib3 names hosts), and a local host's access log names request paths. The exporter
  authenticates with ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` (Entra ID; the template
  sets it).
- The SDK's own statistics (statsbeat), its remote configuration (OneSettings), live metrics
  and process performance counters are off: none is needed, and the first three would each
  call a Microsoft endpoint of its own.
- Telemetry the exporter cannot deliver is kept on local disk for a retry only in Azure.

A failure to configure is logged and leaves telemetry off: the app serves requests regardless.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping

from shared.telemetry import metrics, tracing

CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
# Instrumentations the distro would otherwise turn on (its "library names").
_INSTRUMENTATIONS = (
    "azure_sdk",
    "django",
    "fastapi",
    "flask",
    "psycopg2",
    "requests",
    "urllib",
    "urllib3",
)
# The loggers whose lines are exported: our code's (docs/security.md row 140).
EXPORTED_LOGGERS = ("ehrbridge", "shared", "functions")
_SDK_SWITCHES = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
}

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_done = False


def ensure(environ: Mapping[str, str] | None = None, *, in_azure: bool | None = None) -> bool:
    """Configure telemetry on the first call; True when it is exported."""
    global _done
    if _done:
        return tracing.exporting()
    with _lock:
        if not _done:
            env = os.environ if environ is None else environ
            connection = env.get(CONNECTION_STRING, "").strip()
            if connection:
                _configure(connection, in_azure)
            _done = True
    return tracing.exporting()


def _configure(connection: str, in_azure: bool | None) -> None:
    if in_azure is None:
        from shared.hosting import detect

        in_azure = detect(os.environ).maybe_azure
    for name, value in _SDK_SWITCHES.items():
        os.environ.setdefault(name, value)
    try:
        from azure.monitor.opentelemetry import configure_azure_monitor

        configure_azure_monitor(
            connection_string=connection,
            logger_name="",
            sampling_ratio=1.0,
            enable_live_metrics=False,
            enable_performance_counters=False,
            disable_offline_storage=not in_azure,
            instrumentation_options={name: {"enabled": False} for name in _INSTRUMENTATIONS},
        )
        from shared.telemetry import otel

        # The audit lines go out whatever the root logger's level (ALERT lines are warnings).
        logging.getLogger("ehrbridge.audit").setLevel(logging.INFO)
        _export_only_our_loggers()
        tracing.use_exporter(otel.Spans())
        metrics.use_meter(otel.Instruments())
    except Exception as error:  # the app must serve requests without its telemetry
        _log.error("telemetry is off: configuring Azure Monitor failed (%s)", type(error).__name__)
        return
    _log.info("telemetry: exporting traces, metrics and logs to Application Insights")


class _OurLoggers(logging.Filter):
    """Admits records of ``EXPORTED_LOGGERS`` only."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        return any(name == root or name.startswith(root + ".") for root in EXPORTED_LOGGERS)


def _export_only_our_loggers() -> None:
    # The distro's handler (OpenTelemetry's LoggingHandler) is the one it put on the root logger.
    for handler in logging.getLogger().handlers:
        if type(handler).__module__.startswith("opentelemetry"):
            handler.addFilter(_OurLoggers())


def flush() -> None:
    """Export what is buffered now (tests and tools; a no-op without telemetry)."""
    if tracing.exporting():
        from shared.telemetry import otel

        otel.flush()
