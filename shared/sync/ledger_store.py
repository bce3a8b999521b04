"""The sync ledger's notes in Table Storage (``shared.sync.ledger``): one row per item that
has something to say no link row says; one partition per member and kind, across Enables."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from shared.storage import TableEntity, TableOperation, TableRepository
from shared.storage.keys import escape_key_part
from shared.storage.tables import MAX_FILTER_COMPARISONS
from shared.sync.ledger import Note, Why
from shared.sync.links import Side


class LedgerNote(TableEntity):
    """PartitionKey = member key and kind, RowKey = "{side}|{item id}"."""

    side: Side
    item_id: str
    partner_id: str | None = None
    name: str = ""
    why: Why
    at: datetime
    detail: str | None = None


class SyncLedger:
    def __init__(self, repository: TableRepository[LedgerNote], clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._repo = repository
        self._now = clock

    def note(self, partition: str, notes: Iterable[Note], at: datetime | None = None) -> None:
        """Upsert the notes (the latest per item), in entity-group transactions of 100.
        ``at``: when what they say was read (default: now)."""
        now = at or self._now()
        latest = {
            f"{n.side.value}|{escape_key_part(n.item_id)}": LedgerNote(
                partition_key=partition, row_key=f"{n.side.value}|{escape_key_part(n.item_id)}", side=n.side,
                item_id=n.item_id, partner_id=n.partner_id, name=n.name[:200], why=n.why, at=now,
                detail=n.detail[:500] if n.detail else None,
            )
            for n in notes
        }
        if latest:
            self._repo.transact([TableOperation("upsert", entity) for entity in latest.values()])

    def about(self, partition: str, side: Side, item_ids: Iterable[str]) -> dict[str, LedgerNote]:
        """The notes on these items of one side (one query per 14 of them)."""
        keys = sorted({f"{side.value}|{escape_key_part(i)}" for i in item_ids})
        found: dict[str, LedgerNote] = {}
        per_query = MAX_FILTER_COMPARISONS - 1  # the partition key is one of them
        for start in range(0, len(keys), per_query):
            chunk = keys[start:start + per_query]
            where = " or ".join(f"RowKey eq @k{n}" for n in range(len(chunk)))
            for stored in self._repo.query(partition, where=where, parameters={f"k{n}": k for n, k in enumerate(chunk)}):
                found[stored.entity.item_id] = stored.entity
        return found

    def notes(self, partition: str) -> list[LedgerNote]:
        return [s.entity for s in self._repo.query(partition)]

    def purge(self, partition: str) -> None:
        self._repo.transact([TableOperation("delete", s.entity) for s in self._repo.query(partition)])
