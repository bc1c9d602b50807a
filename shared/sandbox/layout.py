"""Where each sandbox resource lives in the table, and how it is encoded as one entity.

See ``shared.sandbox.store`` for why the partitions are laid out this way. This module owns the
mechanics: key spelling, the patient a compartment resource belongs to, and the resource JSON
split across string properties within Table Storage's size limits.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeGuard

from shared.fhir.catalog import RESOURCE_TYPES
from shared.sandbox.errors import InvalidResource

if TYPE_CHECKING:
    from shared.tables import Entity

# What the sandbox keeps: the catalogue's sandbox types, by their R4 names.
SUPPORTED_TYPES: Final[tuple[str, ...]] = tuple(t.name for t in RESOURCE_TYPES if t.sandbox)

# The element naming the patient of each patient-compartment type (FHIR R4 compartment rules).
PATIENT_ELEMENT: Final[Mapping[str, str]] = {
    t.name: t.patient_element for t in RESOURCE_TYPES if t.sandbox and t.patient_element
}
COMPARTMENT_TYPES: Final = frozenset(PATIENT_ELEMENT)

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
# "Patient/<id>", alone or at the end of an absolute URL; versioned references are not links.
_PATIENT_REFERENCE = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.\-]*://[^\s?#]*/)?Patient/([^/\s?#]+)")

# Table Storage limits: a string property holds 64 KiB (32 Ki UTF-16 code units), an entity
# 1 MiB in all, and a transaction 100 operations and 4 MiB. Chunks are counted in characters,
# at most two UTF-16 code units each, so one chunk always fits in a property.
CHUNK_CHARS: Final = 16_000
MAX_PROPERTY_UNITS: Final = 32_767
MAX_ENTITY_BYTES: Final = 1_048_576
JSON_PREFIX: Final = "j"


def is_id(value: object) -> TypeGuard[str]:
    """True for a FHIR id ([A-Za-z0-9-.]{1,64}), the only strings used in keys."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def resource_partition(resource_type: str, patient_id: str | None) -> str:
    """The partition of a resource: its patient's for compartment types, else its type's."""
    if patient_id is not None:
        return f"patient-{patient_id}"
    return f"res-{resource_type}"


def partition_patient(partition_key: str) -> str | None:
    """The patient id of a ``patient-<id>`` partition (None for other partitions)."""
    patient_id = partition_key.removeprefix("patient-")
    return patient_id if patient_id != partition_key and is_id(patient_id) else None


def resource_row_key(resource_type: str, resource_id: str) -> str:
    """The row key of a resource: ``Type|id`` in a patient partition, the id elsewhere."""
    if resource_type in COMPARTMENT_TYPES:
        return f"{resource_type}|{resource_id}"
    return resource_id


def type_range(resource_type: str) -> tuple[str, str]:
    """Row keys [low, high) of one compartment type inside a patient partition."""
    return f"{resource_type}|", f"{resource_type}}}"  # "}" is the character after "|"


def id_of_row_key(row_key: str) -> str:
    """The resource id a row key holds (the part after ``Type|`` when there is one)."""
    return row_key.rpartition("|")[2]


def v1_lookup_partition(resource_type: str) -> str:
    """The partition of the per-id lookup rows of one compartment type in layout 1 (before the
    locator, ``shared.sandbox.locator``); only the migration reads them now."""
    return f"ref-{resource_type}"


LAYOUT_VERSION: Final = 2
"""2: patient partitions in chart tables sharded by patient, ids located by bucket rows.
1 (no marker row): everything in the one ``sandbox`` table, one lookup row per id."""
LAYOUT_KEY: Final = ("layout", "version")
"""The marker row (partition, row) in the main table that says which layout the data uses."""


def chart_shard(patient_id: str, shards: int) -> int:
    """The chart table of a patient: a stable hash of its id, so it never moves."""
    digest = hashlib.blake2b(patient_id.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % shards


def patient_reference_id(reference: object) -> str | None:
    """The patient id of ``Patient/<id>`` or an absolute URL ending in it; None otherwise."""
    if not isinstance(reference, str):
        return None
    match = _PATIENT_REFERENCE.fullmatch(reference)
    if match is None or not is_id(match[1]):
        return None
    return match[1]


def patient_of(resource: Mapping[str, Any]) -> str | None:
    """The patient a compartment resource belongs to (None for other types).

    Raises InvalidResource naming the element when a compartment resource has no usable
    patient reference: the store could not tell which partition it belongs to.
    """
    resource_type = str(resource.get("resourceType"))
    element = PATIENT_ELEMENT.get(resource_type)
    if element is None:
        return None
    value = resource.get(element)
    reference = value.get("reference") if isinstance(value, Mapping) else None
    patient_id = patient_reference_id(reference)
    if patient_id is None:
        raise InvalidResource(
            f"{resource_type}.{element}", "must reference the patient as Patient/<id>"
        )
    return patient_id


def encode_resource(resource: Mapping[str, Any]) -> dict[str, str]:
    """The resource as compact JSON split over properties ``j0``, ``j1``, ..."""
    try:
        text = json.dumps(resource, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidResource(str(resource.get("resourceType")), "is not a JSON document") from None
    return {
        f"{JSON_PREFIX}{index}": text[start : start + CHUNK_CHARS]
        for index, start in enumerate(range(0, len(text), CHUNK_CHARS))
    }


def decode_resource(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The resource stored in an entity's ``j0``, ``j1``, ... properties."""
    parts: list[str] = []
    while (part := entity.get(f"{JSON_PREFIX}{len(parts)}")) is not None:
        parts.append(part)
    document = json.loads("".join(parts))
    if not isinstance(document, dict):
        raise ValueError("a sandbox row does not hold a resource")
    return document


def utf16_units(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (how Table Storage counts string sizes)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def entity_bytes(entity: Mapping[str, Any]) -> int:
    """Table Storage's size of an entity (its published formula) in bytes."""
    size = 4 + 2 * (
        utf16_units(str(entity.get("PartitionKey", "")))
        + utf16_units(str(entity.get("RowKey", "")))
    )
    for name, value in entity.items():
        if name in ("PartitionKey", "RowKey"):
            continue
        size += 8 + 2 * len(name)
        if isinstance(value, str):
            size += 4 + 2 * utf16_units(value)
        elif isinstance(value, bool):
            size += 1
        else:
            size += 8  # int64, double and datetime
    return size


MAX_BATCH_OPERATIONS: Final = 100
"""Operations in one entity-group transaction (Table Storage's limit)."""
# A transaction carries at most 4 MiB; entity_bytes counts UTF-16 (2 bytes a character) while
# the request is UTF-8 JSON (up to 3 bytes a character, plus escaping), so stay well under.
MAX_BATCH_BYTES: Final = 2_500_000


def transactions(entities: Iterable[Entity]) -> list[list[Entity]]:
    """``entities`` (of one partition), in order, in the chunks one entity-group transaction
    takes: at most ``MAX_BATCH_OPERATIONS``, and ``MAX_BATCH_BYTES`` by Table Storage's sizes."""
    chunks: list[list[Entity]] = []
    chunk: list[Entity] = []
    size = 0
    for entity in entities:
        weight = entity_bytes(
            {"PartitionKey": entity.partition_key, "RowKey": entity.row_key, **entity.properties}
        )
        if chunk and (len(chunk) == MAX_BATCH_OPERATIONS or size + weight > MAX_BATCH_BYTES):
            chunks.append(chunk)
            chunk, size = [], 0
        chunk.append(entity)
        size += weight
    if chunk:
        chunks.append(chunk)
    return chunks


def check_fits(entity: Mapping[str, Any], resource_type: str) -> None:
    """Raise InvalidResource when the entity exceeds what Table Storage accepts."""
    for value in entity.values():
        if isinstance(value, str) and utf16_units(value) > MAX_PROPERTY_UNITS:
            raise InvalidResource(resource_type, "has a searchable value too long to store")
    if entity_bytes(entity) > MAX_ENTITY_BYTES:
        raise InvalidResource(resource_type, "is too large for the sandbox (1 MiB per resource)")
