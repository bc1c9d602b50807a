"""The AuditEvents of a tenant from Log Analytics, in Azure, with the app's managed identity.

The audit stream (``stream.py``) reaches the workspace-based Application Insights component as
traces, kept in the workspace's ``AppTraces`` table with the record's attributes in
``Properties``. This store asks the Log Analytics query API for one tenant's lines in a window
(``POST {endpoint}/v1/workspaces/{workspace id}/query`` with ``{"query", "timespan"}``; the
answer is ``{"tables": [{"columns", "rows"}]}``, learn.microsoft.com/rest/api/loganalytics/
dataaccess/query/execute), with a token for ``https://api.loganalytics.io/.default``. The
identity needs *Log Analytics Reader* on the workspace (``infra/modules/roles.bicep``).

Only values this module validated go into the query (a GUID, instants it formatted, an id), so
nothing from the caller is spliced into KQL. Lines may arrive twice (the exporter retries);
each event is kept once, by its id. Ingestion takes minutes: events of the last few minutes
may not be there yet (the runbook says so).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from shared.auditevents.query import AuditQuery
from shared.auditevents.stream import KIND
from shared.ids import is_guid
from shared.tables import StoreUnavailable

SCOPE = "https://api.loganalytics.io/.default"
# TimeGenerated is the log record's time; the event's own ``recorded`` decides, within this.
_SLACK = timedelta(minutes=5)
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

log = logging.getLogger(__name__)


class AuditStoreUnavailable(StoreUnavailable):
    """Log Analytics did not answer, refused us, or answered something unreadable."""


class LogAnalyticsAuditStore:
    """Reads AuditEvents back from Log Analytics."""

    def __init__(
        self,
        workspace_id: str,
        endpoint: str,
        credential: Any,
        *,
        timeout: tuple[float, float] = (5.0, 60.0),
    ) -> None:
        if not is_guid(workspace_id):
            raise ValueError("the workspace id must be a GUID (its customerId)")
        parts = urlsplit(endpoint)
        if parts.scheme != "https" and parts.hostname not in _LOOPBACK:
            raise ValueError("the Log Analytics endpoint must be https")
        self._url = f"{endpoint.rstrip('/')}/v1/workspaces/{workspace_id.lower()}/query"
        self._credential = credential
        self._timeout = timeout

    def read(self, query: AuditQuery) -> list[dict[str, Any]]:
        """The tenant's events in the query's window, oldest first, at most ``limit + 1``."""
        import requests

        body = {"query": kusto(query), "timespan": _timespan(query)}
        try:
            token = self._credential.get_token(SCOPE).token
            response = requests.post(
                self._url,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.RequestException as error:
            raise AuditStoreUnavailable(f"Log Analytics: {type(error).__name__}") from None
        except Exception as error:  # the credential: no token, no query
            raise AuditStoreUnavailable(f"Log Analytics token: {type(error).__name__}") from None
        if response.status_code != 200:
            log.warning("Log Analytics query answered %s", response.status_code)
            retry = response.headers.get("Retry-After", "")
            raise AuditStoreUnavailable(
                f"Log Analytics answered {response.status_code}",
                retry_after=int(retry) if retry.isdigit() else 5,
            )
        return _events(response.content)


def kusto(query: AuditQuery) -> str:
    """The KQL for one page of a tenant's AuditEvents."""
    if not is_guid(query.tenant_id):
        raise ValueError("tenant id must be a GUID")
    since, until = _kql_time(query.since), _kql_time(query.until)
    after = ""
    if query.after is not None:
        after = (
            f'\n| where not(recorded == datetime({since}) and strcmp(audit_id, "{query.after}")'
            " <= 0)"
        )
    return (
        "AppTraces"
        f"\n| where TimeGenerated >= datetime({_kql_time(query.since - _SLACK)})"
        f" and TimeGenerated < datetime({_kql_time(query.until + _SLACK)})"
        f'\n| where tostring(Properties["ehrbridge.kind"]) == "{KIND}"'
        f'\n| where tostring(Properties["ehrbridge.tenant_id"]) == "{query.tenant_id.lower()}"'
        '\n| extend recorded = todatetime(Properties["ehrbridge.recorded"]),'
        ' audit_id = tostring(Properties["ehrbridge.audit_id"])'
        f"\n| where recorded >= datetime({since}) and recorded < datetime({until})"
        f"{after}"
        "\n| summarize arg_min(TimeGenerated, Message) by audit_id, recorded"
        "\n| order by recorded asc, audit_id asc"
        f"\n| take {query.limit + 1}"
        "\n| project Message"
    )


def _kql_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _timespan(query: AuditQuery) -> str:
    return f"{_kql_time(query.since - _SLACK)}/{_kql_time(query.until + _SLACK)}"


def _events(content: bytes) -> list[dict[str, Any]]:
    try:
        document = json.loads(content)
        table = document["tables"][0]
        column = [c["name"] for c in table["columns"]].index("Message")
        events = [json.loads(row[column]) for row in table["rows"]]
    except (ValueError, KeyError, IndexError, TypeError, RecursionError):
        raise AuditStoreUnavailable("Log Analytics answered something unreadable") from None
    return [e for e in events if isinstance(e, dict) and e.get("resourceType") == "AuditEvent"]
