"""Moving a sandbox from layout 1 to layout 2 (``ops sandbox migrate``; ``make run`` runs it).

Layout 1 kept everything in the one ``sandbox`` table, with a lookup row per compartment
resource (partition ``ref-<Type>``); layout 2 keeps the patient partitions in the chart tables
and the ids in the locator (``shared.sandbox.store`` says why). The migration builds the locator
from the lookup rows, moves each patient partition's rows to its chart table page by page
(written there, then deleted here), deletes the lookup rows, and writes the marker. Every step
can be run again: stopped part-way, the migration is finished by running it again, and until it
is the store answers ``LayoutOutdated`` (the lookup rows are the last to go).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Final

from shared.sandbox.layout import (
    COMPARTMENT_TYPES,
    LAYOUT_KEY,
    LAYOUT_VERSION,
    is_id,
    transactions,
    v1_lookup_partition,
)
from shared.sandbox.locator import Place
from shared.sandbox.store import SandboxStore
from shared.tables import Entity, EntityNotFound, EntityTable

PAGE: Final = 1_000


@dataclass
class MigrationReport:
    """What the migration moved."""

    located: int
    moved: int
    seconds: float


def migrate(store: SandboxStore) -> MigrationReport:
    """Move layout-1 data to layout 2; nothing to do (all zero) when there is none."""
    began = time.perf_counter()
    main = store.table
    located = 0
    for resource_type in sorted(COMPARTMENT_TYPES):
        rows = main.query_partition(v1_lookup_partition(resource_type))
        places = {row.row_key: place for row in rows if (place := _place(row)) is not None}
        if places:
            store.locator.place_many(resource_type, places)
        located += len(places)
    moved = _move_charts(store)
    _delete_range(main, v1_lookup_partition(""), "ref.")
    main.upsert(Entity(*LAYOUT_KEY, {"version": LAYOUT_VERSION}))
    return MigrationReport(located, moved, time.perf_counter() - began)


def _move_charts(store: SandboxStore) -> int:
    main, moved = store.table, 0
    if store.table_of("patient-any") is main:
        return 0  # one table holds everything: the charts are where they belong
    while rows := main.query(
        "PartitionKey ge @lo and PartitionKey lt @hi",
        {"lo": "patient-", "hi": "patient."},
        None,
        PAGE,
    ):
        by_partition: defaultdict[str, list[Entity]] = defaultdict(list)
        for row in rows:
            by_partition[row.partition_key].append(
                Entity(row.partition_key, row.row_key, row.properties)
            )
        for partition_key, entities in by_partition.items():
            for chunk in transactions(entities):
                store.table_of(partition_key).upsert_batch(chunk)
                _delete(main, partition_key, [e.row_key for e in chunk])
                moved += len(chunk)
    return moved


def _delete_range(table: EntityTable, low: str, high: str) -> None:
    while rows := table.query(
        "PartitionKey ge @lo and PartitionKey lt @hi", {"lo": low, "hi": high}, ["patient"], PAGE
    ):
        by_partition: defaultdict[str, list[str]] = defaultdict(list)
        for row in rows:
            by_partition[row.partition_key].append(row.row_key)
        for partition_key, keys in by_partition.items():
            for start in range(0, len(keys), 100):
                _delete(table, partition_key, keys[start : start + 100])


def _delete(table: EntityTable, partition_key: str, keys: list[str]) -> None:
    try:
        table.delete_batch(partition_key, keys)
    except EntityNotFound:
        for key in keys:  # some went meanwhile (another run): the rest one by one
            table.delete(partition_key, key)


def _place(row: Entity) -> Place | None:
    patient_id, moving_from = row.properties.get("patient"), row.properties.get("moving_from")
    if not is_id(patient_id):
        return None
    return Place(patient_id, moving_from if is_id(moving_from) else None)
