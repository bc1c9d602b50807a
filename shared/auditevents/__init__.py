"""The audit trail as FHIR R4 ``AuditEvent``s (issue 18; docs/architecture.md §10).

- ``build``: AuditEvents from ``shared.audit`` records (pure);
- ``stream``: writes them to the audit stream (the ``ehrbridge.auditevent`` logger) and, locally,
  to the dev store;
- ``local``: the dev store, a bounded file written by a background thread;
- ``loganalytics``: reads them back from Log Analytics in Azure;
- ``query``: the window and page an export asks for;
- ``export``: one tenant's AuditEvents as a FHIR Bundle.
"""
