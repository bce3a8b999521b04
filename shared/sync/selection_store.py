"""The initial sync's selection, in the order it is sent (R3.5, R4.6): the ids of the CRM
items the selection pass kept, best first, stored in chunks beside the generation's link rows
(a partition per generation, so Disable's purge or a new Enable leaves none behind)."""

from __future__ import annotations

from collections.abc import Sequence

from shared.storage import TableEntity, TableOperation, TableRepository

# A row's ``ids`` is one JSON string property: Table Storage allows 64 KiB of UTF-16, so
# 32,768 characters. Rows are filled by size (ids of any length), with room to spare.
CHUNK_CHARACTERS = 30_000


class SelectionChunk(TableEntity):
    """PartitionKey = the generation's links partition, RowKey = the chunk's number."""

    ids: list[str]


class SelectionStore:
    def __init__(self, repository: TableRepository[SelectionChunk]) -> None:
        self._repo = repository

    def save(self, partition: str, ids: Sequence[str]) -> None:
        """Replace the selection (a repeated selection pass writes the same rows again)."""
        chunks = _chunks(ids)
        rows = [SelectionChunk(partition_key=partition, row_key=f"{n:05d}", ids=chunk) for n, chunk in enumerate(chunks)]
        stale = [s.entity for s in self._repo.query(partition) if int(s.entity.row_key) >= len(rows)]
        self._repo.transact([TableOperation("upsert", row) for row in rows] + [TableOperation("delete", row) for row in stale])

    def load(self, partition: str) -> list[str] | None:
        """The ids in order; None when no selection was saved in this partition."""
        chunks = sorted(self._repo.query(partition), key=lambda s: s.entity.row_key)
        return [i for chunk in chunks for i in chunk.entity.ids] if chunks else None

    def purge(self, partition: str) -> None:
        self._repo.transact([TableOperation("delete", s.entity) for s in self._repo.query(partition)])


def _chunks(ids: Sequence[str]) -> list[list[str]]:
    """The ids in order, in rows whose JSON stays under ``CHUNK_CHARACTERS`` (at least one row)."""
    chunks: list[list[str]] = [[]]
    size = 2  # the list's brackets
    for item in ids:
        cost = len(item) + 3  # its quotes and a comma (ids are digits: nothing to escape)
        if chunks[-1] and size + cost > CHUNK_CHARACTERS:
            chunks.append([])
            size = 2
        chunks[-1].append(item)
        size += cost
    return chunks
