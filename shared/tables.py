"""Entity access to Azure Table Storage (Azurite locally) with ETags and fail-closed errors.

Registries and the sandbox store talk to ``EntityTable``; ``AzureEntityTable`` is the one
implementation, built on azure-data-tables, imported lazily so that importing this module stays
cheap. It is the one place that turns the SDK's errors into ours (``_call``) and that consults
the store's circuit breaker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from shared.circuit import CircuitBreaker, guarded

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient

    from shared.settings import Settings

CLIENTS_TABLE = "clients"
TENANTS_TABLE = "tenants"
SANDBOX_TABLE = "sandbox"
# Rows that expire, shared by every instance: failure counters, instances alive (expiring.py).
EXPIRING_TABLE = "expiring"
# The sandbox's patient charts, sharded by patient, and its id -> patient locator
# (shared/sandbox/layout.py says why).
SANDBOX_LOCATOR_TABLE = "sandboxlocator"
SANDBOX_CHART_TABLES = tuple(f"sandboxchart{shard:02d}" for shard in range(32))

T = TypeVar("T")


class TableError(Exception):
    """Base class of table failures."""


class EntityNotFound(TableError):
    """No entity with that key."""


class EntityExists(TableError):
    """An entity with that key already exists."""


class EntityChanged(TableError):
    """The entity changed since it was read (ETag mismatch)."""


class ETagMismatch(TableError):
    """The caller's If-Match ETag is not the entity's current one."""


class StoreUnavailable(TableError):
    """Table Storage did not answer in time, is busy, or refused us."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Entity:
    """One table row: its keys, its properties and the ETag it was read with."""

    partition_key: str
    row_key: str
    properties: dict[str, Any] = field(default_factory=dict)
    etag: str | None = None


class EntityTable(Protocol):
    """The table operations the registries and the sandbox store need."""

    def get(self, partition_key: str, row_key: str) -> Entity:
        """One entity, or EntityNotFound."""
        ...

    def create(self, entity: Entity) -> Entity:
        """Insert a new entity, or EntityExists."""
        ...

    def replace(self, entity: Entity) -> Entity:
        """Replace an entity if its ETag still matches, or EntityChanged / EntityNotFound."""
        ...

    def delete(self, partition_key: str, row_key: str, etag: str | None = None) -> None:
        """Delete an entity (only at ``etag`` when given); missing is not an error."""
        ...

    def upsert(self, entity: Entity) -> Entity:
        """Insert an entity, or replace it whatever its ETag."""
        ...

    def upsert_batch(self, entities: Sequence[Entity]) -> None:
        """Insert or replace entities of one partition in one transaction: all of them or none."""
        ...

    def delete_batch(self, partition_key: str, row_keys: Sequence[str]) -> None:
        """Delete entities of one partition in one transaction: all of them or none (a missing
        one is EntityNotFound, and nothing is deleted)."""
        ...

    def write_batch(self, entities: Sequence[Entity]) -> None:
        """Create each entity that has no ETag and replace each that has one (only at it), of
        one partition, in one transaction: EntityExists / EntityChanged / EntityNotFound when
        one was written meanwhile, and then none is."""
        ...

    def query_partition(self, partition_key: str) -> list[Entity]:
        """Every entity of one partition."""
        ...

    def query(
        self,
        text: str,
        parameters: Mapping[str, Any],
        select: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[Entity]:
        """The entities an OData filter selects, in key order, with their keys and the
        ``select``ed properties (every property when None), at most ``limit`` of them. Values
        are bound as ``@name`` parameters, never spliced into ``text``."""
        ...


def store_breaker(settings: Settings) -> CircuitBreaker:
    """The breaker every table of the storage account shares (one key, ``tables``)."""
    return CircuitBreaker(
        settings.store_circuit_failure_threshold,
        settings.store_circuit_open_seconds,
        refusal=_paused,
    )


def _paused(retry_after: int) -> StoreUnavailable:
    return StoreUnavailable("table storage is not answering; calls are paused", retry_after)


class AzureEntityTable:
    """``EntityTable`` over an azure.data.tables ``TableClient``.

    With a ``breaker``, calls stop for a while after a few consecutive failures: a hung table
    service then costs a request nothing instead of the SDK's timeouts and retries (~15 s).
    """

    def __init__(self, client: TableClient, breaker: CircuitBreaker | None = None) -> None:
        self._client = client
        self._breaker = breaker

    def _run(self, operation: Callable[[], T]) -> T:
        if self._breaker is None:
            return _call(operation)
        return guarded(
            self._breaker,
            "tables",
            lambda: _call(operation),
            failure=StoreUnavailable,
            answer=TableError,
        )

    def get(self, partition_key: str, row_key: str) -> Entity:
        """One entity, or EntityNotFound."""
        raw = self._run(lambda: self._client.get_entity(partition_key, row_key))
        return _to_entity(raw)

    def create(self, entity: Entity) -> Entity:
        """Insert a new entity, or EntityExists."""
        meta = self._run(lambda: self._client.create_entity(_to_raw(entity)))
        return Entity(entity.partition_key, entity.row_key, dict(entity.properties), meta["etag"])

    def replace(self, entity: Entity) -> Entity:
        """Replace an entity if its ETag still matches."""
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        if entity.etag is None:
            raise ValueError("replace needs the ETag the entity was read with")
        etag = entity.etag
        meta = self._run(
            lambda: self._client.update_entity(
                _to_raw(entity),
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        )
        return Entity(entity.partition_key, entity.row_key, dict(entity.properties), meta["etag"])

    def delete(self, partition_key: str, row_key: str, etag: str | None = None) -> None:
        """Delete an entity (only at ``etag`` when given); missing is not an error."""
        from azure.core import MatchConditions

        if etag is None:
            self._run(lambda: self._client.delete_entity(partition_key, row_key))
        else:
            self._run(
                lambda: self._client.delete_entity(
                    partition_key,
                    row_key,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            )

    def upsert(self, entity: Entity) -> Entity:
        """Insert an entity, or replace it whatever its ETag."""
        from azure.data.tables import UpdateMode

        meta = self._run(
            lambda: self._client.upsert_entity(_to_raw(entity), mode=UpdateMode.REPLACE)
        )
        return Entity(entity.partition_key, entity.row_key, dict(entity.properties), meta["etag"])

    def upsert_batch(self, entities: Sequence[Entity]) -> None:
        """Insert or replace entities of one partition in one transaction: all of them or none."""
        from shared.table_batch import Operation

        if not entities:
            return
        partition_key = entities[0].partition_key
        if any(entity.partition_key != partition_key for entity in entities):
            raise ValueError("a transaction holds entities of one partition")
        operations = [Operation("upsert", e.row_key, e.properties) for e in entities]
        self._transact(partition_key, operations)

    def delete_batch(self, partition_key: str, row_keys: Sequence[str]) -> None:
        """Delete entities of one partition in one transaction (EntityNotFound if one is gone)."""
        from shared.table_batch import Operation

        self._transact(partition_key, [Operation("delete", key) for key in row_keys])

    def write_batch(self, entities: Sequence[Entity]) -> None:
        """Create (no ETag) or replace at the ETag, entities of one partition, in one
        transaction."""
        from shared.table_batch import Operation

        if not entities:
            return
        partition_key = entities[0].partition_key
        if any(entity.partition_key != partition_key for entity in entities):
            raise ValueError("a transaction holds entities of one partition")
        operations = [
            Operation("replace" if e.etag else "insert", e.row_key, e.properties, e.etag)
            for e in entities
        ]
        self._transact(partition_key, operations)

    def _transact(self, partition_key: str, operations: list[Any]) -> None:
        from shared.table_batch import TransactionFailed, submit

        def send() -> None:
            try:
                submit(self._client, partition_key, operations)
            except TransactionFailed as refused:
                raise _refusal(refused.status) from None

        self._run(send)

    def query_partition(self, partition_key: str) -> list[Entity]:
        """Every entity of one partition."""
        # Keys are validated before they reach a filter, and the value is a bound parameter.
        return self.query("PartitionKey eq @pk", {"pk": partition_key})

    def query(
        self,
        text: str,
        parameters: Mapping[str, Any],
        select: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[Entity]:
        """The entities an OData filter selects, in key order, with their keys and the
        ``select``ed properties (every property when None), at most ``limit`` of them."""
        import itertools

        bound = dict(parameters)
        # The keys always come, so that every Entity has them.
        columns = list(dict.fromkeys(["PartitionKey", "RowKey", *select])) if select else None
        page = None if limit is None else min(limit, 1000)
        rows = self._run(
            lambda: list(
                itertools.islice(
                    self._client.query_entities(
                        text, parameters=bound, select=columns, results_per_page=page
                    ),
                    limit,
                )
            )
        )
        return [_to_entity(row) for row in rows]


def _to_raw(entity: Entity) -> dict[str, Any]:
    raw = dict(entity.properties)
    raw["PartitionKey"] = entity.partition_key
    raw["RowKey"] = entity.row_key
    return raw


def _to_entity(raw: Any) -> Entity:
    props = {k: v for k, v in dict(raw).items() if k not in ("PartitionKey", "RowKey")}
    return Entity(
        partition_key=raw["PartitionKey"],
        row_key=raw["RowKey"],
        properties=props,
        etag=raw.metadata.get("etag"),
    )


def _refusal(status: int) -> TableError:
    """Our error for a status the table service answered a write with."""
    if status == 404:
        return EntityNotFound("not found")
    if status == 409:
        return EntityExists("already exists")
    if status == 412:
        return EntityChanged("changed since read")
    if status in (400, 413):
        # A request we built wrong (too large, a bad value): ours to fix, not an outage.
        return TableError(f"table storage refused the transaction ({status})")
    return StoreUnavailable(f"table storage answered {status}")


def _call(operation: Callable[[], T]) -> T:
    """Run one SDK call, turning its exceptions into ours (fail closed on anything transient)."""
    from azure.core.exceptions import (
        AzureError,
        HttpResponseError,
        ResourceExistsError,
        ResourceModifiedError,
        ResourceNotFoundError,
    )

    try:
        return operation()
    except ResourceNotFoundError:
        raise EntityNotFound("not found") from None
    except ResourceExistsError:
        raise EntityExists("already exists") from None
    except ResourceModifiedError:
        raise EntityChanged("changed since read") from None
    except HttpResponseError as error:
        if error.status_code == 412:
            raise EntityChanged("changed since read") from None
        if error.status_code == 409:
            raise EntityExists("already exists") from None
        raise StoreUnavailable(f"table storage answered {error.status_code}") from None
    except AzureError as error:
        raise StoreUnavailable(f"table storage unreachable ({type(error).__name__})") from None


def table_service(settings: Settings, credential: Any = None) -> TableServiceClient:
    """A TableServiceClient from the connection string (Azurite) or endpoint + identity."""
    from azure.data.tables import TableServiceClient

    # Bounded retries and timeouts: a token request must fail closed quickly, not hang.
    options: dict[str, Any] = {
        "retry_total": 2,
        "retry_backoff_factor": 0.2,
        "retry_backoff_max": 2,
        "connection_timeout": 3,
        "read_timeout": 5,
    }
    if settings.tables_connection_string:
        return TableServiceClient.from_connection_string(
            settings.tables_connection_string, **options
        )
    if settings.tables_endpoint:
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        return TableServiceClient(
            endpoint=settings.tables_endpoint, credential=credential, **options
        )
    raise StoreUnavailable("no table storage configured (EHRB_TABLES_*)")


APP_TABLES = (CLIENTS_TABLE, TENANTS_TABLE, EXPIRING_TABLE)
SANDBOX_TABLES = (SANDBOX_TABLE, SANDBOX_LOCATOR_TABLE, *SANDBOX_CHART_TABLES)


def ensure_tables(service: TableServiceClient) -> None:
    """Create the app's and the sandbox's tables if missing (bootstrap, ops)."""
    # The sandbox tables are created even when the sandbox is off: an empty table costs nothing.
    existing = _call(lambda: {table.name for table in service.list_tables()})
    for name in (*APP_TABLES, *SANDBOX_TABLES):
        if name not in existing:
            _call(lambda name=name: service.create_table_if_not_exists(name))  # type: ignore[misc]
