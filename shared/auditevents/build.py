"""R4 ``AuditEvent``s from the audit records of ``shared.audit`` (pure: dicts in, dicts out).

One record becomes one AuditEvent (more only when a request named more patients than one event
carries, ``MAX_PATIENTS``). The patterns follow IHE Basic Audit Log Patterns (BALP) over R4:

- a proxied request (``fhir.request``): type ``rest``, subtype the FHIR RESTful interaction
  (``read``, ``search-type``, ``history-instance``, ``batch``, ``create`` …), action ``R`` for a
  read, ``E`` for a search or a batch; agents: the client (the requestor, its token's ``jti`` as
  policy), the customer tenant and EHR Bridge; entities: the request id (BALP ``XrequestId``),
  what was read or searched (a resource type, never the query), and every patient the request
  named;
- a token issued or refused (``token.*``): DICOM 110114 User Authentication / 110122 Login, and
  110113 Security Alert for a throttled source;
- a management or console change (``client.*``, ``tenant.*``, ``signing_key.*`` and whatever
  ``shared.audit.change`` records next): DICOM 110113 Security Alert with 110137 (a client's
  credentials) or 110129 (security configuration); the entity names the client or tenant and
  which fields changed, not their values.

What an AuditEvent carries, and nothing more (docs/security.md row 142): who (client, tenant,
actor), what kind of access, when, the outcome, and the patient ids the request named. Never a
query string, a body, a token, a secret or a provider URL: fields are picked, never copied.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Mapping
from typing import Any, Final

MAX_PATIENTS: Final = 100
_random = random.Random()  # noqa: S311 - ids must be unique, not secret


def _new_id() -> str:
    # Unique, not secret; no system call on the request's path (see shared/telemetry/context.py).
    return str(uuid.UUID(int=_random.getrandbits(128), version=4))


EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
BALP_ENTITY = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
CLIENT_IDS = "urn:ehr-bridge:client-id"
TENANT_IDS = "urn:ehr-bridge:tenant-id"
TOKEN_IDS = "urn:ehr-bridge:token-id"
ACTOR_IDS = "urn:ehr-bridge:actor"
TRACE_IDS = "https://www.w3.org/TR/trace-context/#trace-id"

# FHIR ``id`` and a plain identifier value: what may stand in a reference or identifier here.
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_PLAIN = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def _coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [_coding(system, code, display)]}


_SOURCE: Final = {
    "site": "EHR Bridge",
    "observer": {"display": "EHR Bridge"},
    "type": [_coding(SOURCE_TYPE, "4", "Application Server")],
}
_SERVER: Final = {
    "type": _concept(DICOM, "110152", "Destination Role ID"),
    "who": {"display": "EHR Bridge"},
    "requestor": False,
}
_PATIENT_TYPE: Final = _coding(ENTITY_TYPE, "1", "Person")
_PATIENT_ROLE: Final = _coding(OBJECT_ROLE, "1", "Patient")
_OBJECT_TYPE: Final = _coding(ENTITY_TYPE, "2", "System Object")
_DOMAIN_RESOURCE: Final = _coding(OBJECT_ROLE, "4", "Domain Resource")
_QUERY_ROLE: Final = _coding(OBJECT_ROLE, "24", "Query")
_SECURITY_RESOURCE: Final = _coding(OBJECT_ROLE, "13", "Security Resource")
_REQUEST_ID_TYPE: Final = _coding(BALP_ENTITY, "XrequestId", "X-Request-Id")

_REST: Final = _coding(EVENT_TYPE, "rest", "Restful Operation")
_AUTHENTICATION: Final = _coding(DICOM, "110114", "User Authentication")
_LOGIN: Final = _coding(DICOM, "110122", "Login")
_LOGOUT: Final = _coding(DICOM, "110123", "Logout")
_SECURITY_ALERT: Final = _coding(DICOM, "110113", "Security Alert")
_CREDENTIALS_CHANGED: Final = _coding(DICOM, "110137", "User Security Attributes Changed")
_SECURITY_CONFIGURATION: Final = _coding(DICOM, "110129", "Security Configuration")

# interaction (shared/proxy/interaction.py) -> (RESTful interaction code, action)
_INTERACTIONS: Final = {
    "read": ("read", "R"),
    "search": ("search-type", "E"),
    "history": ("history-instance", "R"),
    "batch": ("batch", "E"),
}
_WRITES: Final = {
    "POST": ("create", "C"),
    "PUT": ("update", "U"),
    "PATCH": ("patch", "U"),
    "DELETE": ("delete", "D"),
}
_CHANGE_ACTIONS: Final = {"created": "C", "registered": "C", "deleted": "D"}


def audit_events(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The AuditEvents of one audit record; [] for a record that is not auditable."""
    event = str(record.get("event", ""))
    if event == "fhir.request":
        return _fhir_request(record)
    if event.startswith("token."):
        return [_token(record)]
    if event.partition(".")[0] in ("client", "tenant", "signing_key", "console", "sandbox"):
        return [_change(record)]
    return []


def tenant_of(record: Mapping[str, Any]) -> str | None:
    """The tenant an audit record belongs to, for the per-tenant export (None: no tenant)."""
    tenant = record.get("tenant_id")
    return tenant if isinstance(tenant, str) and _PLAIN.fullmatch(tenant) else None


# -- proxied requests --------------------------------------------------------------------------


def _fhir_request(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    interaction = str(record.get("interaction") or "")
    method = str(record.get("method") or "")
    code, action = _INTERACTIONS.get(interaction) or _WRITES.get(method) or ("operation", "E")
    recorded_status = record.get("status")
    status = recorded_status if isinstance(recorded_status, int) else 500
    agents = [_client(record), *_tenant(record), _SERVER]
    entities = [*_request_ids(record), *_accessed(record, interaction)]
    patients = [p for p in _patient_ids(record) if p]
    base = {
        "resourceType": "AuditEvent",
        "type": _REST,
        "subtype": [_coding(RESTFUL, code, code)],
        "action": action,
        "recorded": _recorded(record),
        "outcome": _outcome(status),
        "outcomeDesc": _outcome_text(status, record.get("provider_status")),
        "agent": agents,
        "source": _SOURCE,
    }
    chunks = [patients[i : i + MAX_PATIENTS] for i in range(0, len(patients), MAX_PATIENTS)]
    return [
        {"id": _new_id(), **base, "entity": [*entities, *map(_patient, chunk)]}
        for chunk in chunks or [[]]
    ]


def _accessed(record: Mapping[str, Any], interaction: str) -> list[dict[str, Any]]:
    resource_type = record.get("resource_type")
    resource_id = record.get("resource_id")
    if not isinstance(resource_type, str) or not _FHIR_ID.fullmatch(resource_type):
        if interaction == "batch":
            entries = record.get("entries")
            return [
                {
                    "type": _OBJECT_TYPE,
                    "role": _QUERY_ROLE,
                    "description": f"batch of {entries} entries"
                    if isinstance(entries, int)
                    else "batch",
                }
            ]
        return []
    if interaction in ("read", "history") and isinstance(resource_id, str):
        if resource_type == "Patient":
            return []  # the patient entity names it
        if _FHIR_ID.fullmatch(resource_id):
            return [
                {
                    "what": {"reference": f"{resource_type}/{resource_id}"},
                    "type": _OBJECT_TYPE,
                    "role": _DOMAIN_RESOURCE,
                }
            ]
    # A search names its type; its parameters stay out (they may hold names or birth dates).
    return [{"type": _OBJECT_TYPE, "role": _QUERY_ROLE, "description": f"{resource_type} search"}]


def _patient_ids(record: Mapping[str, Any]) -> list[str]:
    ids = record.get("patient_ids") or []
    return [str(one) for one in ids] if isinstance(ids, list) else []


def _patient(patient_id: str) -> dict[str, Any]:
    reference = (
        {"reference": f"Patient/{patient_id}"}
        if _FHIR_ID.fullmatch(patient_id)
        else {"identifier": {"value": patient_id[:64]}}  # not an id: kept as the caller named it
    )
    return {"what": reference, "type": _PATIENT_TYPE, "role": _PATIENT_ROLE}


def _request_ids(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = []
    request_id = record.get("request_id")
    if isinstance(request_id, str) and _PLAIN.fullmatch(request_id):
        found.append({"what": {"identifier": {"value": request_id}}, "type": _REQUEST_ID_TYPE})
    trace_id = record.get("trace_id")
    if isinstance(trace_id, str) and trace_id != request_id and _PLAIN.fullmatch(trace_id):
        found.append(
            {
                "what": {"identifier": {"system": TRACE_IDS, "value": trace_id}},
                "type": _REQUEST_ID_TYPE,
            }
        )
    return found


# -- tokens --------------------------------------------------------------------------------


def _token(record: Mapping[str, Any]) -> dict[str, Any]:
    event = str(record.get("event"))
    issued = event == "token.issued"
    throttled = event == "token.throttled"
    # RFC 7009 revocation ends a token's session: DICOM Logout.
    revoked = event == "token.revoked"
    entities = []
    jti = record.get("jti")
    if (issued or revoked) and isinstance(jti, str) and _PLAIN.fullmatch(jti):
        details = [
            {"type": name, "valueString": str(record[name])}
            for name in ("secret_version", "method")
            if isinstance(record.get(name), str)
        ]
        entities.append(
            {
                "what": {"identifier": {"system": TOKEN_IDS, "value": jti}},
                "type": _OBJECT_TYPE,
                "role": _SECURITY_RESOURCE,
                "description": "access token",
                **({"detail": details} if details else {}),
            }
        )
    reason = record.get("reason")
    return {
        "resourceType": "AuditEvent",
        "id": _new_id(),
        "type": _SECURITY_ALERT if throttled else _AUTHENTICATION,
        **({} if throttled else {"subtype": [_LOGOUT if revoked else _LOGIN]}),
        "action": "E",
        "recorded": _recorded(record),
        "outcome": "0" if issued or revoked else "4",
        "outcomeDesc": "token issued"
        if issued
        else "token revoked"
        if revoked
        else "too many failed attempts"
        if throttled
        else f"token refused: {reason}"
        if isinstance(reason, str)
        else "token refused",
        "agent": [_client(record, with_policy=False), *_tenant(record), _SERVER],
        "source": _SOURCE,
        **({"entity": entities} if entities else {}),
    }


# -- management and console changes --------------------------------------------------------


def _change(record: Mapping[str, Any]) -> dict[str, Any]:
    event = str(record.get("event"))
    subject, _, verb = event.partition(".")
    entities = []
    for field, system, label in (
        ("client_id", CLIENT_IDS, "client"),
        ("tenant_id", TENANT_IDS, "tenant mapping"),
    ):
        value = record.get(field)
        if isinstance(value, str) and _PLAIN.fullmatch(value):
            changed = record.get("changes")
            fields = sorted(changed) if isinstance(changed, Mapping) else []
            entities.append(
                {
                    "what": {"identifier": {"system": system, "value": value}},
                    "type": _OBJECT_TYPE,
                    "role": _SECURITY_RESOURCE,
                    "description": label,
                    **(
                        {"detail": [{"type": "changed", "valueString": ", ".join(fields)}]}
                        if fields
                        else {}
                    ),
                }
            )
    return {
        "resourceType": "AuditEvent",
        "id": _new_id(),
        "type": _SECURITY_ALERT,
        "subtype": [_CREDENTIALS_CHANGED if subject == "client" else _SECURITY_CONFIGURATION],
        "action": _CHANGE_ACTIONS.get(verb.split("_")[-1], "U"),
        "recorded": _recorded(record),
        "outcome": "0",
        "outcomeDesc": event,
        "agent": [_actor(record.get("actor")), _SERVER],
        "source": _SOURCE,
        **({"entity": entities} if entities else {}),
    }


def _actor(actor: Any) -> dict[str, Any]:
    kind = actor.get("kind") if isinstance(actor, Mapping) else None
    name = actor.get("name") if isinstance(actor, Mapping) else None
    who: dict[str, Any] = {"display": " ".join(str(p) for p in (kind, name) if p) or "unknown"}
    if isinstance(kind, str) and _PLAIN.fullmatch(kind):
        who["identifier"] = {"system": f"{ACTOR_IDS}:{kind}", "value": str(name or kind)[:128]}
    return {
        "type": _concept(DICOM, "110153", "Source Role ID"),
        "who": who,
        "requestor": True,
    }


# -- shared parts --------------------------------------------------------------------------


def _client(record: Mapping[str, Any], *, with_policy: bool = True) -> dict[str, Any]:
    client_id = record.get("client_id")
    agent: dict[str, Any] = {
        "type": _concept(DICOM, "110153", "Source Role ID"),
        "who": {"identifier": {"system": CLIENT_IDS, "value": client_id}}
        if isinstance(client_id, str) and _PLAIN.fullmatch(client_id)
        else {"display": "unidentified client"},
        "requestor": True,
    }
    jti = record.get("jti")
    if with_policy and isinstance(jti, str) and _PLAIN.fullmatch(jti):
        agent["policy"] = [jti]  # BALP: the access token's id
    return agent


def _tenant(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    tenant = tenant_of(record)
    if tenant is None:
        return []
    return [
        {
            "type": _concept(PARTICIPATION, "RESP", "responsible party"),
            "who": {"identifier": {"system": TENANT_IDS, "value": tenant}},
            "requestor": False,
        }
    ]


def _recorded(record: Mapping[str, Any]) -> str:
    return str(record.get("time"))


def _outcome(status: int) -> str:
    # R4 AuditEvent.outcome: 0 success, 4 minor failure, 8 serious failure.
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


def _outcome_text(status: int, provider_status: Any) -> str:
    text = f"HTTP {status}"
    if isinstance(provider_status, int):
        text += f" (provider {provider_status})"
    return text
