"""Which patient's partition holds a compartment resource: its id -> its patient.

A search by patient needs nothing of this: it names its partition. A read by id does (``GET
Observation/abc``), so every compartment resource has an entry here. Entries are grouped in
bucket rows, ``BUCKETS`` per type (partition ``loc-<Type>``, row the bucket in hex, by a hash of
the id), each holding a JSON map of its ids: a read by id is one point read, as with one row per
id, but a load of thousands of patients writes a few thousand rows instead of one per resource
(a bulk load was two rows a resource, and Azurite's time goes by the row). An entry is the
patient, or ``[patient, moving_from]`` while a resource moves between patients.

Writes are optimistic: read the bucket, change it, write it back at the ETag read, again on a
conflict. A bulk load merges its entries into each bucket it touches, in transactions of up to
100 buckets. A bucket holds its ids' entries in one row (1 MiB): at ~60 bytes an entry, about
16,000 ids a bucket, 16 million resources of one type.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

from shared.sandbox.errors import InvalidResource
from shared.sandbox.layout import CHUNK_CHARS, JSON_PREFIX, entity_bytes, is_id, transactions
from shared.tables import (
    Entity,
    EntityChanged,
    EntityExists,
    EntityNotFound,
    EntityTable,
    StoreUnavailable,
)

BUCKETS: Final = 1024
WRITE_ATTEMPTS: Final = 8
_POINT_READS: Final = 64
"""Above this many buckets of one type, read the whole partition rather than each bucket."""


@dataclass(frozen=True)
class Place:
    """Where a resource lives: its patient, and the patient it is moving from, if any."""

    patient_id: str
    moving_from: str | None = None


def partition(resource_type: str) -> str:
    """The partition of one compartment type's buckets."""
    return f"loc-{resource_type}"


def bucket(resource_id: str) -> str:
    """The bucket row of an id (three hex digits)."""
    number = int.from_bytes(hashlib.blake2b(resource_id.encode(), digest_size=4).digest(), "big")
    return f"{number % BUCKETS:03x}"


class Locator:
    """The id -> patient entries of the compartment types, in one table."""

    def __init__(self, table: EntityTable, pool: ThreadPoolExecutor | None = None) -> None:
        self._table = table
        self._pool = pool

    def find(self, resource_type: str, resource_id: str) -> Place | None:
        """Where ``resource_id`` lives, or None."""
        try:
            row = self._table.get(partition(resource_type), bucket(resource_id))
        except EntityNotFound:
            return None
        return _place(_entries(row).get(resource_id))

    def place(self, resource_type: str, resource_id: str, place: Place | None) -> None:
        """Set (or, with None, remove) one entry."""
        self.place_many(resource_type, {resource_id: place})

    def place_many(self, resource_type: str, places: Mapping[str, Place | None]) -> None:
        """Set (None: remove) many entries of one type, each bucket written once."""
        wanted: defaultdict[str, dict[str, Place | None]] = defaultdict(dict)
        for resource_id, place in places.items():
            wanted[bucket(resource_id)][resource_id] = place
        key = partition(resource_type)
        pending = set(wanted)
        for _ in range(WRITE_ATTEMPTS):
            rows = self._read(key, sorted(pending))
            changed = []
            for name in sorted(pending):
                row = rows.get(name)
                entries = _entries(row) if row is not None else {}
                for resource_id, place in wanted[name].items():
                    if place is None:
                        entries.pop(resource_id, None)
                    else:
                        entries[resource_id] = _entry(place)
                if entries or row is not None:
                    changed.append(_row(key, name, entries, row.etag if row is not None else None))
            pending = self._write(changed)
            if not pending:
                return
        raise StoreUnavailable("the sandbox's locator is being changed concurrently", 1)

    def _read(self, key: str, names: list[str]) -> dict[str, Entity]:
        if len(names) > _POINT_READS:
            return {row.row_key: row for row in self._table.query_partition(key)}
        found = (
            list(self._pool.map(lambda name: self._get(key, name), names))
            if self._pool is not None and len(names) > 1
            else [self._get(key, name) for name in names]
        )
        return {row.row_key: row for row in found if row is not None}

    def _get(self, key: str, name: str) -> Entity | None:
        try:
            return self._table.get(key, name)
        except EntityNotFound:
            return None

    def _write(self, rows: list[Entity]) -> set[str]:
        """Write rows in transactions (an emptied bucket is deleted); the buckets whose write
        met a conflict."""
        conflicted: set[str] = set()
        for row in [row for row in rows if row.properties.get(f"{JSON_PREFIX}0") == "{}"]:
            try:
                self._table.delete(row.partition_key, row.row_key, etag=row.etag)
            except (EntityChanged, EntityNotFound):
                conflicted.add(row.row_key)
        rows = [row for row in rows if row.properties.get(f"{JSON_PREFIX}0") != "{}"]
        batches = transactions(rows)

        def write(chunk: list[Entity]) -> None:
            try:
                self._table.write_batch(chunk)
            except (EntityExists, EntityChanged, EntityNotFound):
                conflicted.update(row.row_key for row in chunk)

        if self._pool is not None and len(batches) > 1:
            list(self._pool.map(write, batches))
        else:
            for chunk in batches:
                write(chunk)
        return conflicted


def _entries(row: Entity) -> dict[str, Any]:
    parts: list[str] = []
    while (part := row.properties.get(f"{JSON_PREFIX}{len(parts)}")) is not None:
        parts.append(part)
    document = json.loads("".join(parts)) if parts else {}
    return document if isinstance(document, dict) else {}


def _row(key: str, name: str, entries: Mapping[str, Any], etag: str | None) -> Entity:
    text = json.dumps(dict(sorted(entries.items())), separators=(",", ":"))
    properties = {
        f"{JSON_PREFIX}{index}": text[start : start + CHUNK_CHARS]
        for index, start in enumerate(range(0, len(text), CHUNK_CHARS))
    }
    if entity_bytes({"PartitionKey": key, "RowKey": name, **properties}) > 1_000_000:
        raise InvalidResource(key.removeprefix("loc-"), "the sandbox holds too many of this type")
    return Entity(key, name, properties, etag)


def _entry(place: Place) -> str | list[str]:
    return place.patient_id if place.moving_from is None else [place.patient_id, place.moving_from]


def _place(entry: object) -> Place | None:
    if is_id(entry):
        return Place(entry)
    if isinstance(entry, list) and len(entry) == 2 and all(is_id(part) for part in entry):
        return Place(entry[0], entry[1])
    return None
