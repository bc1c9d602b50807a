"""The sandbox's R4 resources in one Azure Table Storage table (Azurite locally).

Partition design, and why. Table Storage answers two things fast: a point read (PartitionKey +
RowKey) and a range of row keys inside one partition; a transaction is limited to one partition.
The Patients app asks for a patient's chart (``Observation?patient=X&category=vital-signs&
_sort=-date``, ``Condition/Encounter/AllergyIntolerance/MedicationRequest/Coverage?patient=X``)
and searches patients by name, birth date, gender or MRN. So:

- every patient-compartment resource (Observation, Condition, Encounter, AllergyIntolerance,
  MedicationRequest, Coverage) lives in its patient's partition, ``patient-<patient id>``, row
  ``<Type>|<id>``: a by-patient search is one single-partition range query on the type prefix,
  and a patient's chart loads in entity-group transactions;
- Patients, and the types outside the compartment (Location, Practitioner, Organization), live
  in one partition per type, ``res-<Type>``, row ``<id>``: reads are point reads, and a Patient
  search scans Patient rows only, never clinical ones;
- a read by id of a compartment resource must find its patient first: a small lookup row in
  ``ref-<Type>``, row ``<id>``, holds the patient id.

Writes never leave a half-written resource visible: the lookup is written before the resource
and deleted after it, and a lookup that points to nothing reads as 404. A resource whose patient
changes on update moves partition (lookup, new row, then delete the old row); the lookup keeps
``moving_from`` until the old row is gone, so a move cut short is finished by the next write.

Each row holds the resource as compact JSON split over ``j0``, ``j1``, ... (a string property
holds 64 KiB, an entity 1 MiB) plus the search document and columns of ``shared.sandbox.query``,
written with it. Searches filter server-side where Table Storage can (a superset of the matches,
fetching search columns only), re-check every candidate with FHIR's rules, then read only the
resources of the requested page. A compartment type is searched by patient (or ``_id``), never
across patients: the sandbox is for the app's by-patient queries.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from shared.sandbox.errors import InvalidResource, ResourceNotFound, UnsupportedType
from shared.sandbox.layout import (
    COMPARTMENT_TYPES,
    SUPPORTED_TYPES,
    check_fits,
    decode_resource,
    encode_resource,
    entity_bytes,
    id_of_row_key,
    is_id,
    lookup_partition,
    partition_patient,
    patient_of,
    resource_partition,
    resource_row_key,
    type_range,
)
from shared.sandbox.query import (
    MAX_FILTER_COMPARISONS,
    Clause,
    SearchQuery,
    index,
    parse_search,
    read_document,
)
from shared.sandbox.validate import validate_resource
from shared.tables import (
    SANDBOX_TABLE,
    Entity,
    EntityChanged,
    EntityExists,
    EntityNotFound,
    EntityTable,
    StoreUnavailable,
)

__all__ = [
    "SANDBOX_TABLE",
    "SUPPORTED_TYPES",
    "LoadReport",
    "SandboxStore",
    "SearchPage",
]

WORKERS: Final = 8
"""Table requests in flight at once (page reads, load transactions)."""
MAX_BATCH_OPERATIONS: Final = 100
"""Operations in one entity-group transaction (Table Storage's limit)."""
# A transaction carries at most 4 MiB; entity_bytes counts UTF-16 (2 bytes a character) while
# the request is UTF-8 JSON (up to 3 bytes a character, plus escaping), so stay well under.
MAX_BATCH_BYTES: Final = 2_500_000
WRITE_ATTEMPTS: Final = 3
"""Tries of a write that meets a concurrent one (or of a transaction cut off)."""


@dataclass(frozen=True)
class SearchPage:
    """One page of search results."""

    total: int
    """Every match, not just this page."""
    resources: list[dict[str, Any]]
    """This page, in order."""
    offset: int
    count: int
    """Page size used."""

    @property
    def has_next(self) -> bool:
        """True when matches remain after this page."""
        return self.count > 0 and self.offset + self.count < self.total


@dataclass
class LoadReport:
    """What a bulk load stored and skipped, by resource type, and how long it took."""

    stored: dict[str, int]
    skipped: dict[str, int]
    seconds: float


@dataclass(frozen=True)
class _Current:
    """A resource's rows as stored now: its lookup (compartment types) and its entity."""

    lookup: Entity | None
    entity: Entity | None

    @property
    def patient_id(self) -> str | None:
        """The patient the lookup points to."""
        value = self.lookup.properties.get("patient") if self.lookup else None
        return value if is_id(value) else None

    @property
    def moving_from(self) -> str | None:
        """The patient partition an unfinished move left a copy in."""
        value = self.lookup.properties.get("moving_from") if self.lookup else None
        return value if is_id(value) else None


@dataclass(frozen=True)
class _Candidate:
    partition_key: str
    row_key: str
    document: dict[str, Any]


class SandboxStore:
    """Read, write, search and bulk-load R4 resources in the sandbox table."""

    def __init__(self, table: EntityTable) -> None:
        self._table = table
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    @property
    def table(self) -> EntityTable:
        """The table the sandbox lives in (the editor keeps its sessions in a partition of it)."""
        return self._table

    # -- reads and writes ----------------------------------------------------------------------

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """The current version of a resource, or ResourceNotFound."""
        _check_type(resource_type)
        if not is_id(resource_id):
            raise ResourceNotFound(resource_type, resource_id[:64])
        entity = self._current(resource_type, resource_id).entity
        if entity is None:
            raise ResourceNotFound(resource_type, resource_id)
        return decode_resource(entity.properties)

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Store a new resource under a new id (any id given is ignored); returns it as stored."""
        resource_type = _type_of(resource)
        stored = _stamped(resource, str(uuid.uuid4()), "1", _now())
        validate_resource(stored)
        entity, patient_id = _entity(stored)
        if patient_id is not None:
            self._put_lookup(resource_type, stored["id"], patient_id)
        self._table.create(entity)
        return stored

    def update(
        self, resource_type: str, resource_id: str, resource: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """Create or replace a resource at its id; returns (as stored, whether it was created)."""
        _check_type(resource_type)
        if _type_of(resource) != resource_type:
            raise InvalidResource("resourceType", f"must be {resource_type}, as in the URL")
        if not is_id(resource_id):
            raise InvalidResource(f"{resource_type}.id", "is not a valid FHIR id")
        if resource.get("id", resource_id) != resource_id:
            raise InvalidResource(f"{resource_type}.id", "must match the id in the URL")
        stored = _stamped(resource, resource_id, "1", _now())
        validate_resource(stored)
        for _ in range(WRITE_ATTEMPTS):
            current = self._current(resource_type, resource_id)
            version = _version(current.entity) + 1 if current.entity is not None else 1
            stored["meta"]["versionId"] = str(version)
            stored["meta"]["lastUpdated"] = _now()
            entity, patient_id = _entity(stored)
            try:
                self._write(resource_type, resource_id, entity, patient_id, current)
            except (EntityExists, EntityChanged, EntityNotFound):
                continue  # written concurrently: read again and retry on the new version
            return stored, current.entity is None
        raise StoreUnavailable("the resource is being changed concurrently", retry_after=1)

    def delete(self, resource_type: str, resource_id: str) -> None:
        """Delete a resource (its row before its lookup), or ResourceNotFound."""
        _check_type(resource_type)
        if not is_id(resource_id):
            raise ResourceNotFound(resource_type, resource_id[:64])
        current = self._current(resource_type, resource_id)
        entity = current.entity
        if entity is not None:
            self._table.delete(entity.partition_key, entity.row_key)
        if current.lookup is not None:
            self._tidy(resource_type, resource_id, current, None)
        if entity is None:
            raise ResourceNotFound(resource_type, resource_id)

    # -- search ----------------------------------------------------------------------------------

    def search(self, resource_type: str, params: Sequence[tuple[str, str]]) -> SearchPage:
        """One page of the resources matching ``params`` (decoded pairs, in order)."""
        _check_type(resource_type)
        query = parse_search(resource_type, params)
        scanned = self._candidates(query)
        matches = [c for c in scanned if query.matches(c.document)]
        ordered = query.order(matches, lambda c: c.document["id"], lambda c: c.document)
        page = ordered[query.offset : query.offset + query.count]
        return SearchPage(
            total=len(ordered),
            resources=self._read_page(query, page, len(scanned)),
            offset=query.offset,
            count=query.count,
        )

    def _candidates(self, query: SearchQuery) -> list[_Candidate]:
        """Keys and search documents of every row the search must look at."""
        resource_type = query.resource_type
        select = ["RowKey", *query.columns]
        if query.patient_ids is None and resource_type in COMPARTMENT_TYPES:
            # By _id alone: each id's lookup names the one partition to read.
            found = []
            for resource_id in sorted(query.ids or ()):
                entity = self._current(resource_type, resource_id).entity
                if entity is not None:
                    found.append(_candidate(entity))
            return found
        return [
            _candidate(row)
            for partition_key in _partitions(query)
            for row in self._query(query, partition_key, select)
        ]

    def _query(
        self, query: SearchQuery, partition_key: str, select: list[str] | None
    ) -> list[Entity]:
        """The rows of one partition (of the searched type) the server-side filter selects."""
        parameters: dict[str, Any] = {"pk": partition_key}
        text = "PartitionKey eq @pk"
        if query.resource_type in COMPARTMENT_TYPES:
            parameters["lo"], parameters["hi"] = type_range(query.resource_type)
            text += " and RowKey ge @lo and RowKey lt @hi"
        budget = MAX_FILTER_COMPARISONS - len(parameters)
        for clause in query.server_clauses(budget):
            text += " and " + _render(clause, parameters)
        return self._table.query(text, parameters, select)

    def _read_page(
        self, query: SearchQuery, page: list[_Candidate], scanned: int
    ) -> list[dict[str, Any]]:
        """The resources of ``page``, in order; rows deleted since the scan are skipped.

        When the page is a good part of the rows scanned (a patient's few Conditions), running
        the query again with every column is one round trip instead of one read per resource.
        """
        keys = [(c.partition_key, c.row_key) for c in page]
        by_query = query.patient_ids is not None or query.resource_type not in COMPARTMENT_TYPES
        if len(keys) > 1 and by_query and 4 * len(keys) >= scanned:
            rows = {
                (row.partition_key, row.row_key): row
                for partition_key in sorted({pk for pk, _ in keys})
                for row in self._query(query, partition_key, None)
            }
            entities = [rows.get(key) for key in keys]
        elif len(keys) > 1:
            entities = list(self._executor().map(lambda key: self._get(*key), keys))
        else:
            entities = [self._get(*key) for key in keys]
        return [decode_resource(entity.properties) for entity in entities if entity is not None]

    # -- bulk load -------------------------------------------------------------------------------

    def load(self, resources: Iterable[dict[str, Any]], *, validate: bool = True) -> LoadReport:
        """Upsert many resources keeping their ids; idempotent; skips unsupported types.

        Every resource is checked (and validated when ``validate``) before anything is written.
        Rows go in entity-group transactions per partition, a few at once: all lookups first,
        then the resources. Meta is kept when given (versionId defaults to 1). References must
        already be ``Type/id``. A failure part-way leaves a partial load that loading again
        completes. Load does not move a compartment resource to another patient (use update).
        """
        began = time.perf_counter()
        now = _now()
        prepared: dict[tuple[str, str], tuple[Entity, Entity | None]] = {}
        skipped: Counter[str] = Counter()
        for resource in resources:
            resource_type = _type_of(resource, supported=False)
            if resource_type not in SUPPORTED_TYPES:
                skipped[resource_type] += 1
                continue
            resource_id = resource.get("id")
            if not is_id(resource_id):
                raise InvalidResource(f"{resource_type}.id", "is required (load keeps ids)")
            meta = resource.get("meta")
            meta = meta if isinstance(meta, Mapping) else {}
            version = meta.get("versionId")
            stored = _stamped(
                resource,
                str(resource_id),
                version if is_id(version) else "1",
                meta.get("lastUpdated") or now,
                deep=False,
            )
            if validate:
                validate_resource(stored)
            entity, patient_id = _entity(stored)
            lookup = None if patient_id is None else _lookup(resource_type, entity, patient_id)
            prepared[(resource_type, str(resource_id))] = (entity, lookup)
        self._submit([lookup for _, lookup in prepared.values() if lookup is not None])
        self._submit([entity for entity, _ in prepared.values()])
        return LoadReport(
            stored=dict(Counter(resource_type for resource_type, _ in prepared)),
            skipped=dict(skipped),
            seconds=time.perf_counter() - began,
        )

    def _submit(self, entities: list[Entity]) -> None:
        """Upsert ``entities`` in transactions (one partition, 100 rows each), a few at once."""
        by_partition: defaultdict[str, list[Entity]] = defaultdict(list)
        for entity in entities:
            by_partition[entity.partition_key].append(entity)
        batches: list[list[Entity]] = []
        for rows in by_partition.values():
            batch: list[Entity] = []
            size = 0
            for row in rows:
                row_size = entity_bytes(_row(row))
                if batch and (
                    len(batch) == MAX_BATCH_OPERATIONS or size + row_size > MAX_BATCH_BYTES
                ):
                    batches.append(batch)
                    batch, size = [], 0
                batch.append(row)
                size += row_size
            if batch:
                batches.append(batch)
        futures: list[Future[Any]] = [
            self._executor().submit(self._transact, batch) for batch in batches
        ]
        wait(futures)
        for future in futures:
            future.result()  # the first failure raises, once every batch has finished

    def _transact(self, batch: list[Entity]) -> None:
        # Upserts are idempotent, so a transaction cut off (a connection reset, which the SDK
        # does not retry for a POST) is simply sent again.
        for attempt in range(WRITE_ATTEMPTS):
            try:
                self._table.upsert_batch(batch)
                return
            except StoreUnavailable:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))

    # -- rows --------------------------------------------------------------------------------------

    def _get(self, partition_key: str, row_key: str) -> Entity | None:
        try:
            return self._table.get(partition_key, row_key)
        except EntityNotFound:
            return None

    def _current(self, resource_type: str, resource_id: str) -> _Current:
        """A resource's rows; during a move cut short, the copy it is moving from."""
        row_key = resource_row_key(resource_type, resource_id)
        if resource_type not in COMPARTMENT_TYPES:
            return _Current(None, self._get(resource_partition(resource_type, None), row_key))
        lookup = self._get(lookup_partition(resource_type), resource_id)
        found = _Current(lookup, None)
        for patient_id in (found.patient_id, found.moving_from):
            if patient_id is not None:
                entity = self._get(resource_partition(resource_type, patient_id), row_key)
                if entity is not None:
                    return _Current(lookup, entity)
        return found

    def _put_lookup(
        self, resource_type: str, resource_id: str, patient_id: str, moving_from: str | None = None
    ) -> None:
        properties = {"patient": patient_id}
        if moving_from is not None:
            properties["moving_from"] = moving_from
        self._table.upsert(Entity(lookup_partition(resource_type), resource_id, properties))

    def _write(
        self,
        resource_type: str,
        resource_id: str,
        entity: Entity,
        patient_id: str | None,
        current: _Current,
    ) -> None:
        """Write a new version; EntityExists / EntityChanged when another write came first."""
        old = current.entity
        if old is not None and old.partition_key == entity.partition_key:
            # Replaced only if unchanged since it was read.
            self._table.replace(
                Entity(entity.partition_key, entity.row_key, entity.properties, old.etag)
            )
        elif old is None:
            if patient_id is not None:
                self._put_lookup(resource_type, resource_id, patient_id)
            self._table.create(entity)
        else:
            # The patient changed: point the lookup at the new partition, write there, then
            # remove the old copy; "moving_from" lets reads and the next write finish a move
            # cut short.
            assert patient_id is not None
            moving_from = partition_patient(old.partition_key)
            self._put_lookup(resource_type, resource_id, patient_id, moving_from=moving_from)
            self._table.upsert(entity)
        if patient_id is not None:
            self._tidy(resource_type, resource_id, current, patient_id)

    def _tidy(
        self, resource_type: str, resource_id: str, current: _Current, patient_id: str | None
    ) -> None:
        """Delete copies in other patients' partitions, then leave the lookup plain.

        ``patient_id`` None (a delete) removes every copy the lookup knows of and the lookup.
        """
        row_key = resource_row_key(resource_type, resource_id)
        others = {current.patient_id, current.moving_from} - {None, patient_id}
        for other in sorted(p for p in others if p is not None):
            self._table.delete(resource_partition(resource_type, other), row_key)
        if patient_id is None:
            self._table.delete(lookup_partition(resource_type), resource_id)
        elif others or current.moving_from is not None:
            self._put_lookup(resource_type, resource_id, patient_id)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="sandbox-store")
            return self._pool


# -- helpers -----------------------------------------------------------------------------------


def _check_type(resource_type: str) -> None:
    if resource_type not in SUPPORTED_TYPES:
        raise UnsupportedType(resource_type)


def _type_of(resource: object, *, supported: bool = True) -> str:
    """The resourceType of a JSON object; UnsupportedType for a type the sandbox does not keep."""
    if not isinstance(resource, Mapping):
        raise InvalidResource("resourceType", "a resource must be a JSON object")
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise InvalidResource("resourceType", "is required")
    if supported:
        _check_type(resource_type)
    return resource_type


def _now() -> str:
    """The current time as a FHIR instant (UTC, milliseconds, Z)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _stamped(
    resource: Mapping[str, Any],
    resource_id: str,
    version: str,
    last_updated: str,
    *,
    deep: bool = True,
) -> dict[str, Any]:
    """A copy of ``resource`` with its id and meta.versionId / meta.lastUpdated set."""
    resource_type = str(resource["resourceType"])
    meta = resource.get("meta", {})
    if not isinstance(meta, Mapping):
        raise InvalidResource(f"{resource_type}.meta", "must be an object")
    rest = {k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")}
    return {
        "resourceType": resource_type,
        "id": resource_id,
        "meta": {**meta, "versionId": version, "lastUpdated": last_updated},
        **(copy.deepcopy(rest) if deep else rest),
    }


def _version(entity: Entity) -> int:
    """The versionId of the resource in ``entity`` (0 when it has none readable)."""
    meta = decode_resource(entity.properties).get("meta") or {}
    version = meta.get("versionId") if isinstance(meta, Mapping) else None
    return int(version) if isinstance(version, str) and version.isdigit() else 0


def _entity(resource: Mapping[str, Any]) -> tuple[Entity, str | None]:
    """The table entity of a stamped resource, and its patient (compartment types)."""
    resource_type, resource_id = str(resource["resourceType"]), str(resource["id"])
    patient_id = patient_of(resource)
    entity = Entity(
        resource_partition(resource_type, patient_id),
        resource_row_key(resource_type, resource_id),
        {**index(resource), **encode_resource(resource)},
    )
    check_fits(_row(entity), resource_type)
    return entity, patient_id


def _row(entity: Entity) -> dict[str, Any]:
    """The entity as Table Storage sizes it: its keys and its properties."""
    return {"PartitionKey": entity.partition_key, "RowKey": entity.row_key, **entity.properties}


def _lookup(resource_type: str, entity: Entity, patient_id: str) -> Entity:
    return Entity(
        lookup_partition(resource_type), id_of_row_key(entity.row_key), {"patient": patient_id}
    )


def _partitions(query: SearchQuery) -> list[str]:
    """The partitions holding every possible match of a search by patient or of a type."""
    if query.resource_type not in COMPARTMENT_TYPES:
        return [resource_partition(query.resource_type, None)]
    return [resource_partition(query.resource_type, p) for p in sorted(query.patient_ids or ())]


def _candidate(row: Entity) -> _Candidate:
    document = read_document(row.properties)
    document["id"] = id_of_row_key(row.row_key)
    return _Candidate(row.partition_key, row.row_key, document)


def _render(clause: Clause, parameters: dict[str, Any]) -> str:
    """An OData filter for ``clause`` with bound parameters (words apart, as the SDK needs)."""

    def bind(value: Any) -> str:
        name = f"p{len(parameters)}"
        parameters[name] = value
        return f"@{name}"

    alternatives = []
    for conjunction in clause:
        tests = [f"{column} {operator} {bind(value)}" for column, operator, value in conjunction]
        alternatives.append(tests[0] if len(tests) == 1 else "( " + " and ".join(tests) + " )")
    return "( " + " or ".join(alternatives) + " )"
