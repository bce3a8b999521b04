"""``TableRepository`` in memory: the same methods, ETags, conditional writes, atomic
entity-group transactions and OData filters (the subset the product writes: ``eq ne lt le
gt ge`` on properties and keys, joined by ``and`` and ``or``), entities kept in their stored
form (``to_entity``) so the service's limits and the round trip through storage still apply."""

from __future__ import annotations

import copy
import itertools
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from itertools import groupby
from typing import Any, Generic, TypeVar

from azure.data.tables import EntityProperty

from shared.storage import (
    ConcurrencyConflict,
    EntityAlreadyExists,
    StorageError,
    Stored,
    TableEntity,
    TableOperation,
)
from shared.storage.tables import COMPARISON, MAX_FILTER_COMPARISONS, MAX_TRANSACTION_OPERATIONS

E = TypeVar("E", bound=TableEntity)
_COMPARISON = re.compile(r"^\s*(\w+)\s+(eq|ne|lt|le|gt|ge)\s+@(\w+)\s*$")
_OPERATORS = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
}
_etags = itertools.count(1)


class TableRepositoryInMemory(Generic[E]):
    def __init__(self, model: type[E], table_name: str = "memory", *,
                 before_write: Callable[[], None] | None = None) -> None:
        """``before_write``: called before each write (a transaction is one): a test's crash point."""
        self.model = model
        self._before_write = before_write or (lambda: None)
        self.table_name = table_name
        self._rows: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        self._lock = threading.RLock()
        self.transactions = 0  # entity-group transactions submitted (the figure benchmarks count)

    def ensure_table(self) -> None:
        return None

    def view(self, model: type[Any]) -> Any:
        """The same table's rows read as ``model``: two repositories of one table (as the
        product keeps ``OrgChannel`` and ``OrgMember`` rows in ``crmchannels``)."""
        other = copy.copy(self)
        other.model = model
        return other

    def get(self, partition_key: str, row_key: str) -> Stored[E] | None:
        with self._lock:
            found = self._rows.get((partition_key, row_key))
        return None if found is None else Stored(self.model.from_entity(found[0]), found[1])

    def insert(self, entity: E) -> Stored[E]:
        self._before_write()
        with self._lock:
            if _keys(entity) in self._rows:
                raise EntityAlreadyExists(f"{self.table_name}: {entity.partition_key}/{entity.row_key} already exists")
            return self._put(entity)

    def upsert(self, entity: E) -> Stored[E]:
        self._before_write()
        with self._lock:
            return self._put(entity)

    def replace(self, entity: E, etag: str) -> Stored[E]:
        self._before_write()
        with self._lock:
            found = self._rows.get(_keys(entity))
            if found is None or found[1] != etag:
                raise ConcurrencyConflict(f"{self.table_name}: {entity.partition_key}/{entity.row_key} changed or vanished since it was read")
            return self._put(entity)

    def delete(self, partition_key: str, row_key: str, etag: str | None = None) -> None:
        self._before_write()
        with self._lock:
            found = self._rows.get((partition_key, row_key))
            if found is None:
                return
            if etag is not None and found[1] != etag:
                raise ConcurrencyConflict(f"{self.table_name}: {partition_key}/{row_key} changed since read")
            del self._rows[(partition_key, row_key)]

    def query(self, partition_key: str | None = None, *, where: str | None = None,
              parameters: dict[str, Any] | None = None, page_size: int = 1000) -> Iterator[Stored[E]]:
        if where and len(COMPARISON.findall(where)) + (partition_key is not None) > MAX_FILTER_COMPARISONS:
            raise ValueError(f"a filter of more than {MAX_FILTER_COMPARISONS} comparisons: the service refuses it")
        test = _filter(where, parameters or {})
        with self._lock:
            rows = sorted(self._rows.items())
        for (pk, _), (raw, etag) in rows:
            if (partition_key is None or pk == partition_key) and test(raw):
                yield Stored(self.model.from_entity(raw), etag)

    def transact(self, operations: Sequence[TableOperation[E]]) -> list[Stored[E] | None]:
        """Grouped by partition, 100 at most per group; each group all or nothing."""
        results: list[Stored[E] | None] = [None] * len(operations)
        indexed = sorted(enumerate(operations), key=lambda pair: pair[1].entity.partition_key)
        for _, group in groupby(indexed, key=lambda pair: pair[1].entity.partition_key):
            members = list(group)
            for start in range(0, len(members), MAX_TRANSACTION_OPERATIONS):
                self._submit(members[start:start + MAX_TRANSACTION_OPERATIONS], results)
        return results

    def _submit(self, chunk: list[tuple[int, TableOperation[E]]], results: list[Stored[E] | None]) -> None:
        if len({op.entity.row_key for _, op in chunk}) != len(chunk):
            raise ValueError("a row key appears twice in one transaction")
        self._before_write()
        with self._lock:
            self.transactions += 1
            for _, op in chunk:  # checked first: a failing group writes nothing
                found = self._rows.get(_keys(op.entity))
                if op.kind == "insert" and found is not None:
                    raise EntityAlreadyExists(f"the entity already exists: {op.entity.row_key}")
                if op.kind in ("replace", "delete") and found is None and op.etag:
                    raise ConcurrencyConflict(f"a row changed or vanished since it was read: {op.entity.row_key}")
                if op.kind in ("replace", "delete") and found is None:
                    raise StorageError(f"table storage answered 404: {op.entity.row_key} does not exist")
                if op.etag and op.kind in ("replace", "delete") and found is not None and found[1] != op.etag:
                    raise ConcurrencyConflict(f"the entity changed since it was read: {op.entity.row_key}")
                if op.kind != "delete":
                    op.entity.to_entity()  # the service's limits, before anything is written
            for index, op in chunk:
                if op.kind == "delete":
                    del self._rows[_keys(op.entity)]
                else:
                    results[index] = self._put(op.entity)

    def _put(self, entity: E) -> Stored[E]:
        etag = f'W/"{next(_etags)}"'
        self._rows[_keys(entity)] = (entity.to_entity(), etag)
        return Stored(entity, etag)


def _keys(entity: TableEntity) -> tuple[str, str]:
    return entity.partition_key, entity.row_key


def _filter(where: str | None, parameters: dict[str, Any]) -> Any:
    """An OData filter as a predicate on a stored entity: ``or`` of ``and`` of comparisons."""
    if not where:
        return lambda raw: True
    alternatives = []
    for alternative in re.split(r"\s+or\s+", where.strip()):
        terms = []
        for term in re.split(r"\s+and\s+", alternative):
            match = _COMPARISON.match(term)
            if match is None:
                raise ValueError(f"this fake reads no such filter: {term!r}")
            name, op, parameter = match.groups()
            terms.append((name, _OPERATORS[op], parameters[parameter]))
        alternatives.append(terms)

    def test(raw: dict[str, Any]) -> bool:
        return any(all(_matches(raw.get(name), compare, value) for name, compare, value in terms) for terms in alternatives)
    return test


def _matches(stored: Any, compare: Any, value: Any) -> bool:
    if isinstance(stored, EntityProperty):
        stored = stored.value
    if stored is None:
        return False  # Table Storage: a comparison with an absent property is false
    if hasattr(value, "value") and isinstance(stored, str) and not isinstance(value, str):
        value = value.value  # an enum parameter
    try:
        return bool(compare(stored, value))
    except TypeError:
        return False


class CountsRequests:
    """Mixed into a table (in memory or on Azurite): counts the reads and writes asked of it,
    each one Table transaction (``requests``)."""

    requests = 0

    def get(self, *args: Any, **kwargs: Any) -> Any:
        self.requests += 1
        return super().get(*args, **kwargs)  # type: ignore[misc]

    def query(self, *args: Any, **kwargs: Any) -> Any:
        self.requests += 1
        return super().query(*args, **kwargs)  # type: ignore[misc]

    def insert(self, *args: Any, **kwargs: Any) -> Any:
        self.requests += 1
        return super().insert(*args, **kwargs)  # type: ignore[misc]

    def replace(self, *args: Any, **kwargs: Any) -> Any:
        self.requests += 1
        return super().replace(*args, **kwargs)  # type: ignore[misc]
