"""The sandbox's R4 resources in Azure Table Storage (Azurite locally).

Partition design, and why. Table Storage answers two things fast: a point read (PartitionKey +
RowKey) and a range of row keys inside one partition; a transaction is limited to one partition.
The Patients app asks for a patient's chart (``Observation?patient=X&category=vital-signs&
_sort=-date``, ``Condition/Encounter/AllergyIntolerance/MedicationRequest/Coverage?patient=X``)
and searches patients by name, birth date, gender or MRN. So:

- every patient-compartment resource (Observation, Condition, Encounter, AllergyIntolerance,
  MedicationRequest, Coverage) lives in its patient's partition, ``patient-<patient id>``, row
  ``<Type>|<id>``: a by-patient search is one single-partition range query on the type prefix,
  and a patient's chart loads in entity-group transactions;
- the patient partitions are spread over ``SANDBOX_CHART_TABLES`` (32 tables, by a hash of the
  patient id; ``layout.chart_shard``). Azure's table service finds a partition through its index
  whatever the table holds, so there this changes nothing: a table is a name, not a unit of
  capacity or of cost (its limits are per partition and per account; tables are "limited only by
  the capacity of the storage account"). Azurite evaluates every query over every entity of the
  table it names (``LokiTableMetadataStore.queryTableEntities``: one JavaScript filter over the
  table's whole collection), so a chart table of 1/32 of the charts is what keeps a by-patient
  query at 10,000 patients as fast as at 300;
- Patients, and the types outside the compartment (Location, Practitioner, Organization), live
  in one partition per type in the main ``sandbox`` table, ``res-<Type>``, row ``<id>``: reads
  are point reads, and a Patient search scans Patient rows only, never clinical ones;
- a read by id of a compartment resource must find its patient first: the locator
  (``shared.sandbox.locator``, its own table) maps ids to patients in bucket rows.

Writes never leave a half-written resource visible: the locator entry is written before the
resource and removed after it, and an entry that points to nothing reads as 404. A resource
whose patient changes on update moves partition (entry, new row, then delete the old row); the
entry keeps ``moving_from`` until the old row is gone, so a move cut short is finished by the next
write.

Each row holds the resource as compact JSON split over ``j0``, ``j1``, ... (a string property
holds 64 KiB, an entity 1 MiB) plus the search document and columns of ``shared.sandbox.query``,
written with it. Searches filter server-side where Table Storage can (a superset of the matches),
re-check every candidate with FHIR's rules, then read only the resources of the requested page;
a search by patient reads its partition's rows whole, in one query. A compartment type is
searched by patient (or ``_id``), never across patients: the sandbox is for the app's by-patient
queries.

The data of layout 1 (everything in ``sandbox``, one lookup row per id) is refused with
``LayoutOutdated`` until ``shared.sandbox.migrate`` (``ops sandbox migrate``; ``make run`` does
it) has moved it.
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

from shared.sandbox.errors import (
    InvalidResource,
    LayoutOutdated,
    ResourceNotFound,
    UnsupportedType,
)
from shared.sandbox.layout import (
    COMPARTMENT_TYPES,
    LAYOUT_KEY,
    LAYOUT_VERSION,
    SUPPORTED_TYPES,
    chart_shard,
    check_fits,
    decode_resource,
    encode_resource,
    id_of_row_key,
    is_id,
    partition_patient,
    patient_of,
    resource_partition,
    resource_row_key,
    transactions,
    type_range,
    v1_lookup_partition,
)
from shared.sandbox.locator import Locator, Place
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
    """A resource's rows as stored now: its locator entry (compartment types) and its entity."""

    place: Place | None
    entity: Entity | None

    @property
    def patient_id(self) -> str | None:
        """The patient the locator points to."""
        return self.place.patient_id if self.place else None

    @property
    def moving_from(self) -> str | None:
        """The patient partition an unfinished move left a copy in."""
        return self.place.moving_from if self.place else None


@dataclass(frozen=True)
class _Candidate:
    partition_key: str
    row_key: str
    document: dict[str, Any]
    entity: Entity | None = None
    """The whole row, when the search read rows whole."""


class SandboxStore:
    """Read, write, search and bulk-load R4 resources in the sandbox's tables.

    ``table`` is the main table; ``charts`` the tables the patient partitions are spread over
    and ``locator`` the locator's (both default to ``table``: one table holds everything).
    """

    def __init__(
        self,
        table: EntityTable,
        *,
        charts: Sequence[EntityTable] = (),
        locator: EntityTable | None = None,
    ) -> None:
        self._table = table
        self._charts = tuple(charts) or (table,)
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="sandbox-store")
        self._locator = Locator(locator or table, self._pool)
        self._layout_checked = False
        self._layout_lock = threading.Lock()

    @property
    def table(self) -> EntityTable:
        """The main table (the editor keeps its sessions in a partition of it)."""
        return self._table

    @property
    def locator(self) -> Locator:
        """Where each compartment resource lives."""
        return self._locator

    def table_of(self, partition_key: str) -> EntityTable:
        """The table a partition lives in: a patient's chart table, else the main one."""
        patient_id = partition_patient(partition_key)
        if patient_id is None:
            return self._table
        return self._charts[chart_shard(patient_id, len(self._charts))]

    def check_layout(self) -> None:
        """Raise LayoutOutdated while layout-1 data waits for its migration; mark a new store."""
        if self._layout_checked:
            return
        with self._layout_lock:
            if self._layout_checked:
                return
            try:
                marker = self._table.get(*LAYOUT_KEY)
                version = marker.properties.get("version")
            except EntityNotFound:
                version = None
            if version is None:
                if self.holds_layout_1():
                    raise LayoutOutdated(
                        "the sandbox holds data of an earlier version's layout: run "
                        "`python -m tools.ops sandbox migrate` (make run does it)"
                    )
                self._table.upsert(Entity(*LAYOUT_KEY, {"version": LAYOUT_VERSION}))
            elif version != LAYOUT_VERSION:
                raise LayoutOutdated(
                    f"the sandbox's data has layout {version}, this version reads {LAYOUT_VERSION}"
                )
            self._layout_checked = True

    def holds_layout_1(self) -> bool:
        """True while the main table has layout 1's per-id lookup rows."""
        rows = self._table.query(
            "PartitionKey ge @lo and PartitionKey lt @hi",
            {"lo": v1_lookup_partition(""), "hi": "ref."},
            select=["patient"],
            limit=1,
        )
        return bool(rows)

    # -- reads and writes ----------------------------------------------------------------------

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """The current version of a resource, or ResourceNotFound."""
        self.check_layout()
        _check_type(resource_type)
        if not is_id(resource_id):
            raise ResourceNotFound(resource_type, resource_id[:64])
        entity = self._current(resource_type, resource_id).entity
        if entity is None:
            raise ResourceNotFound(resource_type, resource_id)
        return decode_resource(entity.properties)

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Store a new resource under a new id (any id given is ignored); returns it as stored."""
        self.check_layout()
        resource_type = _type_of(resource)
        stored = _stamped(resource, str(uuid.uuid4()), "1", _now())
        validate_resource(stored)
        entity, patient_id = _entity(stored)
        if patient_id is not None:
            self._locator.place(resource_type, stored["id"], Place(patient_id))
        self.table_of(entity.partition_key).create(entity)
        return stored

    def update(
        self, resource_type: str, resource_id: str, resource: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """Create or replace a resource at its id; returns (as stored, whether it was created)."""
        self.check_layout()
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
        """Delete a resource (its row before its locator entry), or ResourceNotFound."""
        self.check_layout()
        _check_type(resource_type)
        if not is_id(resource_id):
            raise ResourceNotFound(resource_type, resource_id[:64])
        current = self._current(resource_type, resource_id)
        entity = current.entity
        if entity is not None:
            self.table_of(entity.partition_key).delete(entity.partition_key, entity.row_key)
        if current.place is not None:
            self._tidy(resource_type, resource_id, current, None)
        if entity is None:
            raise ResourceNotFound(resource_type, resource_id)

    # -- search ----------------------------------------------------------------------------------

    def search(self, resource_type: str, params: Sequence[tuple[str, str]]) -> SearchPage:
        """One page of the resources matching ``params`` (decoded pairs, in order)."""
        self.check_layout()
        _check_type(resource_type)
        query = parse_search(resource_type, params)
        scanned = self._candidates(query)
        matches = [c for c in scanned if query.matches(c.document)]
        ordered = query.order(matches, lambda c: c.document["id"], lambda c: c.document)
        page = ordered[query.offset : query.offset + query.count]
        return SearchPage(
            total=len(ordered),
            resources=self._read_page(page),
            offset=query.offset,
            count=query.count,
        )

    def _candidates(self, query: SearchQuery) -> list[_Candidate]:
        """Search documents of every row the search must look at (whole rows when by patient)."""
        resource_type = query.resource_type
        if resource_type in COMPARTMENT_TYPES and query.patient_ids is None:
            # By _id alone: each id's locator entry names the one partition to read.
            found = []
            for resource_id in sorted(query.ids or ()):
                entity = self._current(resource_type, resource_id).entity
                if entity is not None:
                    found.append(_candidate(entity, whole=True))
            return found
        if resource_type in COMPARTMENT_TYPES:
            # One patient's rows of one type are few: read them whole in the one query, rather
            # than their search columns first and the page's resources after.
            partitions = _partitions(query)
            rows = (
                self._pool.map(lambda pk: self._query(query, pk, None), partitions)
                if len(partitions) > 1
                else [self._query(query, partitions[0], None)]
            )
            return [_candidate(row, whole=True) for found in rows for row in found]
        select = ["RowKey", *query.columns]
        return [_candidate(row) for row in self._query(query, _partitions(query)[0], select)]

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
        return self.table_of(partition_key).query(text, parameters, select)

    def _read_page(self, page: list[_Candidate]) -> list[dict[str, Any]]:
        """The resources of ``page``, in order; rows deleted since the scan are skipped."""
        keys = [(c.partition_key, c.row_key) for c in page if c.entity is None]
        fetched = dict(zip(keys, self._pool.map(lambda key: self._get(*key), keys), strict=True))
        entities = [c.entity or fetched[(c.partition_key, c.row_key)] for c in page]
        return [decode_resource(entity.properties) for entity in entities if entity is not None]

    # -- bulk load -------------------------------------------------------------------------------

    def load(self, resources: Iterable[dict[str, Any]], *, validate: bool = True) -> LoadReport:
        """Upsert many resources keeping their ids; idempotent; skips unsupported types.

        Every resource is checked (and validated when ``validate``) before anything is written.
        The locator's entries go first, then the rows, in entity-group transactions per
        partition, a few at once. Meta is kept when given (versionId defaults to 1). References must
        already be ``Type/id``. A failure part-way leaves a partial load that loading again
        completes. Load does not move a compartment resource to another patient (use update).
        """
        self.check_layout()
        began = time.perf_counter()
        now = _now()
        prepared: dict[tuple[str, str], tuple[Entity, str | None]] = {}
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
            prepared[(resource_type, str(resource_id))] = _entity(stored)
        places: defaultdict[str, dict[str, Place | None]] = defaultdict(dict)
        for (resource_type, resource_id), (_, patient_id) in prepared.items():
            if patient_id is not None:
                places[resource_type][resource_id] = Place(patient_id)
        for resource_type, entries in sorted(places.items()):
            self._locator.place_many(resource_type, entries)
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
        batches = [batch for rows in by_partition.values() for batch in transactions(rows)]
        futures: list[Future[Any]] = [self._pool.submit(self._transact, batch) for batch in batches]
        wait(futures)
        for future in futures:
            future.result()  # the first failure raises, once every batch has finished

    def _transact(self, batch: list[Entity]) -> None:
        # Upserts are idempotent, so a transaction cut off (a connection reset, which the SDK
        # does not retry for a POST) is simply sent again.
        for attempt in range(WRITE_ATTEMPTS):
            try:
                self.table_of(batch[0].partition_key).upsert_batch(batch)
                return
            except StoreUnavailable:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))

    # -- rows --------------------------------------------------------------------------------------

    def _get(self, partition_key: str, row_key: str) -> Entity | None:
        try:
            return self.table_of(partition_key).get(partition_key, row_key)
        except EntityNotFound:
            return None

    def _current(self, resource_type: str, resource_id: str) -> _Current:
        """A resource's rows; during a move cut short, the copy it is moving from."""
        row_key = resource_row_key(resource_type, resource_id)
        if resource_type not in COMPARTMENT_TYPES:
            return _Current(None, self._get(resource_partition(resource_type, None), row_key))
        place = self._locator.find(resource_type, resource_id)
        found = _Current(place, None)
        for patient_id in (found.patient_id, found.moving_from):
            if patient_id is not None:
                entity = self._get(resource_partition(resource_type, patient_id), row_key)
                if entity is not None:
                    return _Current(place, entity)
        return found

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
        table = self.table_of(entity.partition_key)
        if old is not None and old.partition_key == entity.partition_key:
            # Replaced only if unchanged since it was read.
            table.replace(Entity(entity.partition_key, entity.row_key, entity.properties, old.etag))
        elif old is None:
            if patient_id is not None:
                self._locator.place(resource_type, resource_id, Place(patient_id))
            table.create(entity)
        else:
            # The patient changed: point the locator at the new partition, write there, then
            # remove the old copy; "moving_from" lets reads and the next write finish a move
            # cut short.
            assert patient_id is not None
            moving_from = partition_patient(old.partition_key)
            self._locator.place(resource_type, resource_id, Place(patient_id, moving_from))
            table.upsert(entity)
        if patient_id is not None:
            self._tidy(resource_type, resource_id, current, patient_id)

    def _tidy(
        self, resource_type: str, resource_id: str, current: _Current, patient_id: str | None
    ) -> None:
        """Delete copies in other patients' partitions, then leave the locator entry plain.

        ``patient_id`` None (a delete) removes every copy the entry knows of, and the entry.
        """
        row_key = resource_row_key(resource_type, resource_id)
        others = {current.patient_id, current.moving_from} - {None, patient_id}
        for other in sorted(p for p in others if p is not None):
            partition_key = resource_partition(resource_type, other)
            self.table_of(partition_key).delete(partition_key, row_key)
        if patient_id is None:
            self._locator.place(resource_type, resource_id, None)
        elif others or current.moving_from is not None:
            self._locator.place(resource_type, resource_id, Place(patient_id))


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


def _partitions(query: SearchQuery) -> list[str]:
    """The partitions holding every possible match of a search by patient or of a type."""
    if query.resource_type not in COMPARTMENT_TYPES:
        return [resource_partition(query.resource_type, None)]
    return [resource_partition(query.resource_type, p) for p in sorted(query.patient_ids or ())]


def _candidate(row: Entity, *, whole: bool = False) -> _Candidate:
    document = read_document(row.properties)
    document["id"] = id_of_row_key(row.row_key)
    return _Candidate(row.partition_key, row.row_key, document, row if whole else None)


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
