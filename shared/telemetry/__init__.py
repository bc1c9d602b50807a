"""Traces, metrics and the trace id every answer carries (issue 18; docs/architecture.md §10).

- ``context``: W3C ``traceparent``, read and written by hand (no OpenTelemetry needed);
- ``tracing``: spans, real ones only when telemetry is exported;
- ``metrics``: what operators chart and alert on, recorded only when exported;
- ``attributes``: the only names a span attribute or metric dimension may have;
- ``setup``: turns export on when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set;
- ``otel``: the OpenTelemetry side, imported only then;
- ``signals``: what audit events add to the current span and to the metrics.
"""
