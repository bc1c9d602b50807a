"""An in-memory ``EntityTable``: registries and the sandbox store without Azurite.

It keeps Table Storage's rules that callers rely on: ETags that change on every write (a replace
or a delete at a stale ETag is ``EntityChanged``), ``EntityExists`` on a second create, deletes
of missing rows that succeed, results in key order, a transaction confined to one partition,
and OData filters whose values are bound ``@name`` parameters (``eq ne gt ge lt le``, ``and``,
``or``, parentheses; a comparison with a property the row lacks is false).
``tests/integration/test_entity_table_contract.py`` holds it to ``AzureEntityTable`` on Azurite.
"""

from __future__ import annotations

import itertools
import operator
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from shared.tables import Entity, EntityChanged, EntityExists, EntityNotFound

_TOKEN = re.compile(r"\s*(\(|\)|@\w+|\w+)")
_OPERATORS: Mapping[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
Row = Callable[[Entity], bool]


class MemoryEntityTable:
    """``EntityTable`` over a dict; thread-safe."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], Entity] = {}
        self._etags = itertools.count(1)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def get(self, partition_key: str, row_key: str) -> Entity:
        """One entity, or EntityNotFound."""
        with self._lock:
            found = self._rows.get((partition_key, row_key))
            if found is None:
                raise EntityNotFound("not found")
            return _copy(found)

    def create(self, entity: Entity) -> Entity:
        """Insert a new entity, or EntityExists."""
        with self._lock:
            if (entity.partition_key, entity.row_key) in self._rows:
                raise EntityExists("already exists")
            return self._store(entity)

    def replace(self, entity: Entity) -> Entity:
        """Replace an entity if its ETag still matches."""
        if entity.etag is None:
            raise ValueError("replace needs the ETag the entity was read with")
        with self._lock:
            current = self._rows.get((entity.partition_key, entity.row_key))
            if current is None:
                raise EntityNotFound("not found")
            if current.etag != entity.etag:
                raise EntityChanged("changed since read")
            return self._store(entity)

    def delete(self, partition_key: str, row_key: str, etag: str | None = None) -> None:
        """Delete an entity (only at ``etag`` when given); missing is not an error."""
        with self._lock:
            current = self._rows.get((partition_key, row_key))
            if current is None:
                return
            if etag is not None and current.etag != etag:
                raise EntityChanged("changed since read")
            del self._rows[(partition_key, row_key)]

    def upsert(self, entity: Entity) -> Entity:
        """Insert an entity, or replace it whatever its ETag."""
        with self._lock:
            return self._store(entity)

    def upsert_batch(self, entities: Sequence[Entity]) -> None:
        """Insert or replace entities of one partition in one transaction."""
        if len(entities) > 100:
            raise ValueError("a transaction holds at most 100 operations")
        if len({entity.partition_key for entity in entities}) > 1:
            raise ValueError("a transaction holds entities of one partition")
        with self._lock:
            for entity in entities:
                self._store(entity)

    def delete_batch(self, partition_key: str, row_keys: Sequence[str]) -> None:
        """Delete entities of one partition in one transaction (EntityNotFound if one is gone)."""
        with self._lock:
            keys = [(partition_key, row_key) for row_key in row_keys]
            if any(key not in self._rows for key in keys):
                raise EntityNotFound("not found")
            for key in keys:
                del self._rows[key]

    def write_batch(self, entities: Sequence[Entity]) -> None:
        """Create (no ETag) or replace at the ETag, in one transaction of one partition."""
        if len({entity.partition_key for entity in entities}) > 1:
            raise ValueError("a transaction holds entities of one partition")
        with self._lock:
            for entity in entities:
                current = self._rows.get((entity.partition_key, entity.row_key))
                if entity.etag is None and current is not None:
                    raise EntityExists("already exists")
                if entity.etag is not None and current is None:
                    raise EntityNotFound("not found")
                if entity.etag is not None and current is not None and current.etag != entity.etag:
                    raise EntityChanged("changed since read")
            for entity in entities:
                self._store(entity)

    def query_partition(self, partition_key: str) -> list[Entity]:
        """Every entity of one partition."""
        return self.query("PartitionKey eq @pk", {"pk": partition_key})

    def query(
        self,
        text: str,
        parameters: Mapping[str, Any],
        select: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[Entity]:
        """The entities the filter selects, in key order, with the ``select``ed properties."""
        matches = _Filter(text, parameters).compile()
        with self._lock:
            rows = [self._rows[key] for key in sorted(self._rows)]
        found = [_projected(row, select) for row in rows if matches(row)]
        return found if limit is None else found[:limit]

    def _store(self, entity: Entity) -> Entity:
        stored = Entity(
            entity.partition_key,
            entity.row_key,
            dict(entity.properties),
            f'W/"{next(self._etags)}"',
        )
        self._rows[(entity.partition_key, entity.row_key)] = stored
        return _copy(stored)


def _copy(entity: Entity) -> Entity:
    return Entity(entity.partition_key, entity.row_key, dict(entity.properties), entity.etag)


def _projected(entity: Entity, select: Sequence[str] | None) -> Entity:
    if select is None:
        return _copy(entity)
    chosen = {name: entity.properties[name] for name in select if name in entity.properties}
    return Entity(entity.partition_key, entity.row_key, chosen, entity.etag)


def _value(entity: Entity, column: str) -> Any:
    if column == "PartitionKey":
        return entity.partition_key
    if column == "RowKey":
        return entity.row_key
    return entity.properties.get(column)


def _comparable(left: Any, right: Any) -> bool:
    # Table Storage compares values of one type only; bool is not a number there.
    return left is not None and type(left) is type(right)


class _Filter:
    """A recursive-descent reader of the OData filters the app writes."""

    def __init__(self, text: str, parameters: Mapping[str, Any]) -> None:
        self._tokens = _TOKEN.findall(text)
        if "".join(self._tokens) != "".join(text.split()):
            raise ValueError(f"filter has text this fake does not read: {text!r}")
        self._parameters = parameters
        self._at = 0

    def compile(self) -> Row:
        found = self._any()
        if self._at != len(self._tokens):
            raise ValueError(f"unexpected {self._tokens[self._at]!r} in the filter")
        return found

    def _next(self) -> str:
        token = self._tokens[self._at]
        self._at += 1
        return token

    def _peek(self) -> str | None:
        return self._tokens[self._at] if self._at < len(self._tokens) else None

    def _any(self) -> Row:
        alternatives = [self._all()]
        while self._peek() == "or":
            self._next()
            alternatives.append(self._all())
        return lambda row: any(test(row) for test in alternatives)

    def _all(self) -> Row:
        tests = [self._one()]
        while self._peek() == "and":
            self._next()
            tests.append(self._one())
        return lambda row: all(test(row) for test in tests)

    def _one(self) -> Row:
        if self._peek() == "(":
            self._next()
            inner = self._any()
            if self._next() != ")":
                raise ValueError("unbalanced parentheses in the filter")
            return inner
        column, name, placeholder = self._next(), self._next(), self._next()
        if name not in _OPERATORS or not placeholder.startswith("@"):
            raise ValueError(f"{column} {name} {placeholder}: values must be bound parameters")
        compare, bound = _OPERATORS[name], self._parameters[placeholder[1:]]

        def test(row: Entity) -> bool:
            value = _value(row, column)
            return _comparable(value, bound) and compare(value, bound)

        return test
