"""Link rows in Table Storage: one partition per member and kind (DESIGN §7).

Each pair is stored under its link id, plus one index row per side's item id (``crm|…``,
``ol|…``) so a delta cycle reads only the rows its changes touch (point reads), not the
member's whole history. All rows of a pair live in one partition, so they change together
in one entity-group transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import JsonValue

from shared.storage import TableEntity, TableOperation, TableRepository
from shared.storage.keys import escape_key_part
from shared.sync.links import LinkRow, LinkState

# Beyond this many ids a cycle reads the partition's link rows in pages of 1,000 instead.
POINT_READS_BEFORE_SCAN = 60


class LinkEntity(TableEntity):
    """RowKey = "link|{id}", "crm|{crm id}" or "ol|{outlook id}"; ``row`` is the pair."""

    link_id: str
    state: str
    row: dict[str, JsonValue]


def _keys(row: LinkRow) -> list[str]:
    keys = [f"link|{row.link_id}"]
    if row.state.creating_on is not None:
        return keys  # pending creates are all loaded by every cycle (``pending``): no index rows
    if row.crm_id and row.state is not LinkState.TOMBSTONE:
        keys.append(f"crm|{escape_key_part(row.crm_id)}")
    if row.outlook_id and row.state is not LinkState.TOMBSTONE:
        keys.append(f"ol|{escape_key_part(row.outlook_id)}")
        if row.fields.get("recurrence"):  # a series: its master is re-read when occurrences vanish
            keys.append(f"series|{escape_key_part(row.outlook_id)}")
    return keys


class LinkStore:
    def __init__(self, repository: TableRepository[LinkEntity]) -> None:
        self._repo = repository

    def _entity(self, partition: str, key: str, row: LinkRow) -> LinkEntity:
        stored = row.model_dump(mode="json")
        if stored.get("pending_since") is None:
            # Written only while a create is pending: rows otherwise stay readable by an
            # instance of the previous release during a rolling deployment (LinkRow forbids
            # unknown fields).
            stored.pop("pending_since", None)
        return LinkEntity(partition_key=partition, row_key=key, link_id=row.link_id, state=row.state.value, row=stored)

    def load(self, partition: str, *, crm_ids: Iterable[str] = (), outlook_ids: Iterable[str] = (),
             every: list[LinkRow] | None = None) -> list[LinkRow]:
        """The rows these items belong to, plus every pending create (they need recovery).
        A tombstone belongs to no item any more (its ids are retired): it is not returned.

        A few ids are point reads of their index rows; many (a first delta round reports
        every item) are one scan of the partition's link rows, far fewer round trips.
        ``every``: the partition's rows, already scanned by the caller."""
        wanted = {"crm": set(crm_ids), "ol": set(outlook_ids)}
        if every is not None or len(wanted["crm"]) + len(wanted["ol"]) > POINT_READS_BEFORE_SCAN:
            rows_by_id = {  # as the point reads: a tombstone has no index rows, so is no item's row
                row.link_id: row for row in (self.all(partition) if every is None else every)
                if row.state is not LinkState.TOMBSTONE and (row.crm_id in wanted["crm"] or row.outlook_id in wanted["ol"])
                or row.state.creating_on is not None
            }
            return list(rows_by_id.values())
        rows: dict[str, LinkRow] = {}
        for prefix, ids in wanted.items():
            for item_id in ids:
                stored = self._repo.get(partition, f"{prefix}|{escape_key_part(item_id)}")
                if stored is not None:
                    row = LinkRow.model_validate(stored.entity.row)
                    rows[row.link_id] = row
        for row in self.pending(partition):
            rows[row.link_id] = row
        return list(rows.values())

    def series_outlook_ids(self, partition: str) -> list[str]:
        """The Outlook ids of the member's linked recurring series."""
        found = self._repo.query(partition, where="RowKey ge @lo and RowKey lt @hi", parameters={"lo": "series|", "hi": "series}"})
        return [s.entity.row["outlook_id"] for s in found if isinstance(s.entity.row.get("outlook_id"), str)]  # type: ignore[misc]

    def pending(self, partition: str) -> list[LinkRow]:
        found = self._repo.query(
            partition, where="state eq @a or state eq @b",
            parameters={"a": LinkState.PENDING_CREATE_OUTLOOK.value, "b": LinkState.PENDING_CREATE_CRM.value},
        )
        return [LinkRow.model_validate(s.entity.row) for s in found if s.entity.row_key.startswith("link|")]

    def all(self, partition: str) -> list[LinkRow]:
        return [
            LinkRow.model_validate(s.entity.row)
            for s in self._repo.query(partition, where="RowKey ge @lo and RowKey lt @hi", parameters={"lo": "link|", "hi": "link}"})
        ]

    def write(self, partition: str, rows: Sequence[tuple[LinkRow | None, LinkRow]]) -> None:
        """Write new versions of rows (``(previous, new)``): the link row and its index rows,
        dropping index rows the new version no longer has; in transactions of up to 100."""
        ops: list[TableOperation[LinkEntity]] = []
        for previous, row in rows:
            keep = _keys(row)
            ops += [TableOperation("upsert", self._entity(partition, key, row)) for key in keep]
            stale = set(_keys(previous)) - set(keep) if previous is not None else set()
            ops += [TableOperation("delete", self._entity(partition, key, row)) for key in stale]
        self._transact(ops)

    def forget(self, partition: str, rows: Sequence[LinkRow]) -> None:
        self._transact([TableOperation("delete", self._entity(partition, key, r)) for r in rows for key in _keys(r)])

    def purge(self, partition: str) -> int:
        """Delete every row of the partition (Disable): returns how many pairs were forgotten."""
        entities = list(self._repo.query(partition))
        self._repo.transact([TableOperation("delete", s.entity) for s in entities])
        return sum(1 for s in entities if s.entity.row_key.startswith("link|"))

    def _transact(self, ops: list[TableOperation[LinkEntity]]) -> None:
        # One entity may appear once per transaction: the last operation on a key wins.
        latest: dict[str, TableOperation[LinkEntity]] = {}
        for op in ops:
            latest[op.entity.row_key] = op
        deletes = [op for op in latest.values() if op.kind == "delete"]
        upserts = [op for op in latest.values() if op.kind != "delete"]
        if upserts:
            self._repo.transact(upserts)
        for op in deletes:  # deleting an absent row fails a whole transaction: one by one
            self._repo.delete(op.entity.partition_key, op.entity.row_key)
