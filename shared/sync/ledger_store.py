"""The sync ledger's notes in Table Storage (``shared.sync.ledger``): one row per item that
has something to say no link row says; one partition per member and kind, across Enables."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from shared.storage import TableEntity, TableOperation, TableRepository
from shared.storage.keys import escape_key_part
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

    def note(self, partition: str, notes: Iterable[Note]) -> None:
        """Upsert the notes (the latest per item), in entity-group transactions of 100."""
        now = self._now()
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

    def notes(self, partition: str) -> list[LedgerNote]:
        return [s.entity for s in self._repo.query(partition)]

    def purge(self, partition: str) -> None:
        self._repo.transact([TableOperation("delete", s.entity) for s in self._repo.query(partition)])
