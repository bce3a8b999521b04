"""Conflicts the member can see (issue 7: "never silent"): one row per conflict, keyed by
the engine's deterministic conflict id, so recording it twice is one row."""

from __future__ import annotations

from datetime import datetime

from pydantic import JsonValue

from shared.storage import TableEntity, TableOperation, TableRepository
from shared.sync.actions import Conflict


class ConflictEntity(TableEntity):
    """PartitionKey = member key and kind, RowKey = conflict id."""

    link_id: str
    kind: str
    crm_id: str | None = None
    outlook_id: str | None = None
    deleted_on: str | None = None
    detected_at: datetime
    fields: list[dict[str, JsonValue]] = []


class ConflictStore:
    def __init__(self, repository: TableRepository[ConflictEntity]) -> None:
        self._repo = repository

    def record(self, partition: str, conflicts: list[Conflict]) -> None:
        self._repo.transact(
            [
                TableOperation(
                    "upsert",
                    ConflictEntity(
                        partition_key=partition, row_key=c.conflict_id, link_id=c.link_id, kind=c.kind.value,
                        crm_id=c.crm_id, outlook_id=c.outlook_id, deleted_on=c.deleted_on.value if c.deleted_on else None,
                        detected_at=c.detected_at,
                        fields=[
                            {"field": f.field, "crm": f.crm_value, "outlook": f.outlook_value, "winner": f.winner.value}
                            for f in c.fields
                        ],
                    ),
                )
                for c in conflicts
            ]
        )

    def recent(self, partition: str, limit: int = 20) -> list[ConflictEntity]:
        rows = [s.entity for s in self._repo.query(partition)]
        return sorted(rows, key=lambda r: r.detected_at, reverse=True)[:limit]

    def purge(self, partition: str) -> None:
        self._repo.transact([TableOperation("delete", s.entity) for s in self._repo.query(partition)])
