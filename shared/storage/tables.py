"""Typed repositories over azure-data-tables, with ETag optimistic concurrency and
entity-group transactions split the way the service requires."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Generic, Literal, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.rest import HttpRequest
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from shared.storage import entity_group
from shared.storage.entity import TableEntity
from shared.storage.errors import ConcurrencyConflict, EntityAlreadyExists, StorageError

E = TypeVar("E", bound=TableEntity)
R = TypeVar("R")

MAX_TRANSACTION_OPERATIONS = 100  # per entity-group transaction, one partition
MAX_TRANSACTION_BYTES = 3 * 1024 * 1024  # the service allows 4 MiB; keep room for the envelope
TRANSACTIONS_IN_FLIGHT = 4  # per transact() call
# "Note that no more than 15 discrete comparisons are permitted within a $filter string."
MAX_FILTER_COMPARISONS = 15
COMPARISON = re.compile(r"\s(?:eq|ne|gt|ge|lt|le)\s")
# A POST (an insert, a transaction) whose connection failed: the SDK retries only the methods
# it deems idempotent, so a connection the service (or Azurite) reset under a pooled request
# failed the whole step. Tries in all, and the pause before each new one (conditional PUTs too).
POST_ATTEMPTS = 3
POST_PAUSE_SECONDS = 0.2


@dataclass(frozen=True)
class Stored(Generic[E]):
    """An entity as read from (or written to) the table, with the ETag to write it back."""

    entity: E
    etag: str


@dataclass(frozen=True)
class TableOperation(Generic[E]):
    """One write in a transaction. ``replace`` and ``delete`` honour ``etag`` when given."""

    kind: Literal["insert", "upsert", "replace", "delete"]
    entity: E
    etag: str | None = None


def partitions_starting(prefix: str) -> tuple[str, dict[str, str]]:
    """A filter (and its parameters) for every partition key that starts with ``prefix``, which
    ends with "|": "}" follows "|", so the range is one query, however many partitions it spans."""
    if not prefix.endswith("|"):
        raise ValueError(f"a key prefix ends with '|': {prefix!r}")
    return "PartitionKey ge @_lo and PartitionKey lt @_hi", {"_lo": prefix, "_hi": f"{prefix[:-1]}}}"}


def _refusal(status: int, message: str) -> StorageError:
    """The error of an operation the service refused with ``status``."""
    if status == 412:
        return ConcurrencyConflict(f"the entity changed since it was read: {message}")
    if status == 409:
        return EntityAlreadyExists(f"the entity already exists: {message}")
    return StorageError(f"table storage answered {status}: {message}")


class TableRepository(Generic[E]):
    """Reads and writes one table's entities as ``model`` instances."""

    def __init__(self, service: TableServiceClient, table_name: str, model: type[E]) -> None:
        self._service = service
        self._client: TableClient = service.get_table_client(table_name)
        self.table_name = table_name
        self.model = model

    def ensure_table(self) -> None:
        """Create the table unless it exists: a POST, sent again when its connection failed or
        its answer did not come (creating an existing table changes nothing)."""
        _resend(lambda: self._service.create_table_if_not_exists(self.table_name), applied=lambda: None)

    def get(self, partition_key: str, row_key: str) -> Stored[E] | None:
        try:
            raw = self._client.get_entity(partition_key, row_key)
        except ResourceNotFoundError:
            return None
        return self._stored(raw)

    def insert(self, entity: E) -> Stored[E]:
        """Create; raise EntityAlreadyExists when the keys are taken."""
        op = TableOperation("insert", entity)
        try:
            etags = _resend(lambda: [self._client.create_entity(entity.to_entity())], applied=lambda: self._applied([op]))
        except ResourceExistsError as error:
            raise EntityAlreadyExists(
                f"{self.table_name}: {entity.partition_key}/{entity.row_key} already exists"
            ) from error
        return Stored(entity, etags[0]["etag"])

    def upsert(self, entity: E) -> Stored[E]:
        """Create or replace whatever is there (last writer wins: use only where that is right)."""
        meta = self._client.upsert_entity(entity.to_entity(), mode=UpdateMode.REPLACE)
        return Stored(entity, meta["etag"])

    def replace(self, entity: E, etag: str) -> Stored[E]:
        """Replace only if unchanged since read; raise ConcurrencyConflict otherwise."""
        def send() -> list[dict[str, Any]]:
            # The SDK would send the PUT again after a lost answer (a "read" error), and a write
            # that landed then failed its own ETag: a 412 for a lease this process took. Those
            # are read back, as a POST's; its other retries (refused connections, 503s) stay.
            return [dict(self._client.update_entity(entity.to_entity(), mode=UpdateMode.REPLACE, etag=etag,
                                                    match_condition=MatchConditions.IfNotModified, retry_read=0))]

        try:
            [meta] = _resend(send, applied=lambda: self._applied([TableOperation("replace", entity, etag)]))
        except (ResourceModifiedError, ResourceNotFoundError) as error:
            raise ConcurrencyConflict(
                f"{self.table_name}: {entity.partition_key}/{entity.row_key} changed or vanished since it was read"
            ) from error
        return Stored(entity, meta["etag"])

    def delete(self, partition_key: str, row_key: str, etag: str | None = None) -> None:
        """Delete; absent is fine (idempotent). With ``etag``, only if unchanged."""
        try:
            if etag is None:
                self._client.delete_entity(partition_key, row_key)
            else:
                self._client.delete_entity(
                    partition_key, row_key, etag=etag, match_condition=MatchConditions.IfNotModified
                )
        except ResourceModifiedError as error:
            raise ConcurrencyConflict(f"{self.table_name}: {partition_key}/{row_key} changed since read") from error

    def query(
        self,
        partition_key: str | None = None,
        *,
        where: str | None = None,
        parameters: dict[str, Any] | None = None,
        page_size: int = 1000,
    ) -> Iterator[Stored[E]]:
        """Entities of one partition (and/or matching an OData filter with @parameters), streamed."""
        clauses, params = [], dict(parameters or {})
        if partition_key is not None:
            clauses.append("PartitionKey eq @_pk")
            params["_pk"] = partition_key
        if where:
            comparisons = len(COMPARISON.findall(where)) + (partition_key is not None)
            if comparisons > MAX_FILTER_COMPARISONS:  # Azurite runs them; the service refuses the query
                raise ValueError(f"{self.table_name}: a filter of {comparisons} comparisons (at most {MAX_FILTER_COMPARISONS})")
            # Spaces inside the parentheses: the SDK finds @parameters by splitting on spaces.
            clauses.append(f"( {where} )")
        if clauses:
            pages = self._client.query_entities(" and ".join(clauses), parameters=params, results_per_page=page_size)
        else:
            pages = self._client.list_entities(results_per_page=page_size)
        for raw in pages:
            yield self._stored(raw)

    def transact(self, operations: Sequence[TableOperation[E]]) -> list[Stored[E] | None]:
        """Apply writes in entity-group transactions: grouped by partition, at most 100 per
        group and under the payload limit. Each group is atomic; groups are not atomic with
        each other, so callers write operations that are safe to repeat.

        Returns one result per operation, in order (None for deletes).
        """
        results: list[Stored[E] | None] = [None] * len(operations)
        indexed = sorted(enumerate(operations), key=lambda pair: pair[1].entity.partition_key)
        chunks = [chunk for _, group in groupby(indexed, key=lambda pair: pair[1].entity.partition_key)
                  for chunk in _chunks(list(group))]
        if len(chunks) == 1:
            self._submit(chunks[0], results)
        elif chunks:
            # Independent transactions (none is atomic with another): a few in flight at once
            # instead of one round trip after the other (a page of 200 links is 6 of them).
            with ThreadPoolExecutor(max_workers=min(len(chunks), TRANSACTIONS_IN_FLIGHT),
                                    thread_name_prefix="table-transaction") as pool:
                list(pool.map(lambda chunk: self._submit(chunk, results), chunks))
        return results

    def _submit(self, chunk: list[tuple[int, TableOperation[E]]], results: list[Stored[E] | None]) -> None:
        seen: set[str] = set()
        for _, op in chunk:
            if op.entity.row_key in seen:
                raise ValueError(f"{op.entity.row_key!r} appears twice in one transaction")
            seen.add(op.entity.row_key)
        writes = [_write(op) for _, op in chunk]
        replies = _resend(lambda: self._send_transaction(writes), applied=lambda: self._applied([op for _, op in chunk]))
        for (index, op), reply in zip(chunk, replies, strict=True):
            results[index] = None if op.kind == "delete" else Stored(op.entity, reply["etag"])

    def _send_transaction(self, writes: Sequence[entity_group.Write]) -> list[dict[str, str]]:
        """One entity-group transaction through the SDK's pipeline (its authentication,
        retries and transport); each operation's ETag, or the failing one's error raised."""
        client = self._client
        account = f"{client.scheme}://{client._primary_hostname}"  # as the SDK's own ``_batch_send``
        body, content_type = entity_group.encode(f"{account}/{self.table_name}", writes)
        request = HttpRequest("POST", f"{account}/$batch", content=body, headers={
            "x-ms-version": client.api_version, "DataServiceVersion": "3.0", "MaxDataServiceVersion": "3.0;NetFx",
            "Content-Type": content_type, "Accept": "application/json"})
        # Streamed as the SDK's own: its content-decoding policy would try to parse a multipart body.
        response = client._client.send_request(request, stream=True)
        response.read()
        if response.status_code != 202:
            if response.status_code == 404:
                raise ResourceNotFoundError(message=f"{self.table_name}: {response.text()[:300]}", response=response)
            raise HttpResponseError(message=f"{self.table_name}: a transaction was refused: {response.text()[:300]}", response=response)
        try:
            answers = entity_group.decode(response.content, response.headers.get("Content-Type", ""))
        except ValueError as error:
            raise StorageError(f"{self.table_name}: an unreadable answer to a transaction: {error}") from error
        failed = next((answer for answer in answers if not 200 <= answer.status < 300), None)
        if failed is not None:
            code, message = failed.error()
            if failed.status == 404 and any(write.if_match not in (None, "*") for write in writes):
                # A conditional write of a row deleted since it was read: a lost race, as for
                # ``replace`` (the service does not always say which operation failed).
                raise ConcurrencyConflict(f"{self.table_name}: a row changed or vanished since it was read ({message})")
            raise _refusal(failed.status, f"{code} {message}")
        if len(answers) != len(writes):
            raise StorageError(f"{self.table_name}: {len(answers)} answers to a transaction of {len(writes)} operations")
        return [{"etag": answer.headers.get("etag", "")} for answer in answers]

    def _applied(self, operations: Sequence[TableOperation[E]]) -> list[dict[str, str]] | None:
        """Each operation's ETag if every one is visible as written, else None."""
        etags = []
        for op in operations:
            row = self.get(op.entity.partition_key, op.entity.row_key)
            if op.kind == "delete":
                if row is not None:
                    return None
                etags.append({"etag": ""})
            elif row is None or row.entity != op.entity:
                return None
            else:
                etags.append({"etag": row.etag})
        return etags

    def _stored(self, raw: Any) -> Stored[E]:
        return Stored(self.model.from_entity(raw), raw.metadata["etag"])


def _resend(send: Callable[[], R], *, applied: Callable[[], R | None]) -> R:
    """``send`` a write again when its connection failed (a POST, which the SDK never sends
    again, or a conditional PUT, which it must not). A request that never reached the
    service is sent again as it is. One whose answer was lost may have been applied: what
    ``applied`` reads back is then the answer (for a transaction, every operation's effect is
    there: it is all or nothing); None, and it is sent again (a write applied and then changed
    by someone else meanwhile meets its ETag or its insert's 409 then, as any lost race does)."""
    for attempt in range(1, POST_ATTEMPTS + 1):
        try:
            return send()
        except ServiceRequestError:
            if attempt == POST_ATTEMPTS:
                raise
        except ServiceResponseError:
            if attempt == POST_ATTEMPTS:
                raise
            if (answer := applied()) is not None:
                return answer
        time.sleep(POST_PAUSE_SECONDS * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _write(op: TableOperation[Any]) -> entity_group.Write:
    if op.kind == "insert":
        return entity_group.Write("POST", op.entity.to_entity())
    if op.kind == "upsert":  # insert or replace: a PUT with no If-Match
        return entity_group.Write("PUT", op.entity.to_entity())
    if op.kind == "replace":
        return entity_group.Write("PUT", op.entity.to_entity(), if_match=op.etag or "*")
    keys = {"PartitionKey": op.entity.partition_key, "RowKey": op.entity.row_key}
    return entity_group.Write("DELETE", keys, if_match=op.etag or "*")


def _chunks(group: Iterable[tuple[int, TableOperation[Any]]]) -> Iterator[list[tuple[int, TableOperation[Any]]]]:
    """Split one partition's operations by count (100) and by estimated payload size."""
    chunk: list[tuple[int, TableOperation[Any]]] = []
    size = 0
    for item in group:
        item_size = len(item[1].entity.model_dump_json()) * 2 + 512
        if chunk and (len(chunk) == MAX_TRANSACTION_OPERATIONS or size + item_size > MAX_TRANSACTION_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        yield chunk
