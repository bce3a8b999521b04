"""One set of assertions per sync port (``shared.sync.ports``), run against the production
adapter (over the emulators and Azurite) and against the in-memory one the fast tests use
(``tests/sync_world.py``): a fake that drifted from the real thing fails here
(issue 17 §2)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.graph.container import ItemDraft
from shared.graph.errors import GraphError
from shared.sync.actions import Conflict, ConflictKind
from shared.sync.kind import CRM_MARKER_FIELD
from shared.sync.links import LinkRow, LinkState, Side
from shared.sync.merge import FieldConflict
from shared.sync.ports import ConflictLog, CrmRecordWrites, LinkRows, OutlookItems


def crm_record_writes(port: CrmRecordWrites, body: Callable[[str], dict[str, Any]], unknown_id: str) -> None:
    before = datetime.now(UTC) - timedelta(seconds=2)
    marker = f"marker-{datetime.now(UTC).timestamp()}"
    created = port.insert("Contacts", [{**body("Port One"), CRM_MARKER_FIELD: marker}, body("Port Two")])
    assert [r.index for r in created] == [0, 1] and all(r.ok and r.id and r.modified_time for r in created)
    found = port.with_field_values("Contacts", CRM_MARKER_FIELD, [marker, "no-such-marker"], modified_since=before)
    assert list(found) == [marker] and str(found[marker]["id"]) == created[0].id
    later = datetime.now(UTC) + timedelta(days=1)
    assert port.with_field_values("Contacts", CRM_MARKER_FIELD, [marker], modified_since=later) == {}
    updated = port.update("Contacts", [{"id": created[1].id, **body("Port Two Again")}, {"id": unknown_id, **body("X")}])
    assert updated[0].ok and updated[0].modified_time
    assert updated[1].status == "error" and updated[1].code == "INVALID_DATA"
    deleted = port.delete("Contacts", [created[0].id or "", unknown_id])
    assert deleted[0].ok and deleted[1].status == "error" and deleted[1].code == "INVALID_DATA"  # gone counts as done
    again = port.delete("Contacts", [created[0].id or ""])
    assert again[0].status == "error" and again[0].code == "INVALID_DATA"


def outlook_items(port: OutlookItems, fields: Callable[[str], dict[str, Any]], *, transaction_ids: bool) -> None:
    container = port.ensure_container("Zoho CRM")
    container_id = container if isinstance(container, str) else container.id
    drafts = [ItemDraft(crm_id="crm-a", fields=fields("A"), transaction_id="txn-a" if transaction_ids else None),
              ItemDraft(crm_id="crm-b", fields=fields("B"))]
    created = port.create_items(container_id, drafts)
    assert all(not isinstance(i, GraphError) and i.id and i.change_key for i in created)
    if transaction_ids:  # Graph answers a repeated transactionId with the first item
        repeated = port.create_items(container_id, drafts[:1])
        assert repeated[0].id == created[0].id
    assert [i.id for i in port.find_items_by_crm_id(container_id, "crm-a")] == [created[0].id]
    assert port.find_items_by_crm_id(container_id, "crm-none") == []
    updated = port.update_items(container_id, [(created[1].id, fields("B2")), ("AAMkAGI2-gone", fields("C"))])
    assert not isinstance(updated[0], GraphError) and updated[0].change_key != created[1].change_key
    assert isinstance(updated[1], GraphError) and updated[1].status == 404
    assert list(port.delete_items(container_id, [created[1].id, created[1].id])) == [True, False]  # gone: False


def _row(link_id: str, state: LinkState, **ids: Any) -> LinkRow:
    return LinkRow(link_id=link_id, state=state, fields={"subject": link_id}, **ids)


def link_rows(port: LinkRows, partition: str) -> None:
    synced = _row("l1", LinkState.SYNCED, crm_id="c1", outlook_id="o1", crm_version="1", outlook_version="1")
    series = synced.replace(link_id="l2", crm_id="c2", outlook_id="o2", fields={"recurrence": {"type": "daily"}})
    pending = LinkRow(link_id="l3", state=LinkState.PENDING_CREATE_OUTLOOK, crm_id="c3", crm_version="1",
                      transaction_key="k3", fields={"subject": "l3"})
    port.write(partition, [(None, synced), (None, series), (None, pending)])
    assert {r.link_id for r in port.load(partition, crm_ids=["c1"])} == {"l1", "l3"}  # and every pending create
    assert {r.link_id for r in port.load(partition, outlook_ids=["o2"])} == {"l2", "l3"}
    assert [r.link_id for r in port.pending(partition)] == ["l3"]
    assert port.series_outlook_ids(partition) == ["o2"]
    done = pending.with_side(Side.OUTLOOK, "o3", "1", state=LinkState.SYNCED, transaction_key=None)
    tombstone = synced.replace(state=LinkState.TOMBSTONE, tombstoned_at=datetime.now(UTC))
    port.write(partition, [(pending, done), (synced, tombstone)])
    assert port.pending(partition) == []
    assert {r.link_id for r in port.load(partition, outlook_ids=["o3"])} == {"l3"}
    assert port.load(partition, crm_ids=["c1"]) == []  # a tombstone is no item's pair any more
    assert sorted(r.link_id for r in port.all(partition)) == ["l1", "l2", "l3"]
    port.forget(partition, [tombstone])
    assert sorted(r.link_id for r in port.all(partition)) == ["l2", "l3"]
    assert port.purge(partition) == 2 and port.all(partition) == []


def conflict_log(port: ConflictLog, partition: str) -> None:
    def conflict(conflict_id: str, minutes: int) -> Conflict:
        return Conflict(conflict_id=conflict_id, link_id="l1", kind=ConflictKind.SAME_FIELD, crm_id="c1",
                        outlook_id="o1", deleted_on=None, detected_at=datetime(2026, 3, 1, 9, minutes, tzinfo=UTC),
                        fields=(FieldConflict("subject", "a", "b", Side.CRM),))
    port.record(partition, [conflict("k1", 1), conflict("k2", 2)])
    port.record(partition, [conflict("k1", 1)])  # recording one twice is one
    recent = port.recent(partition)
    assert [getattr(c, "conflict_id", None) or c.row_key for c in recent] == ["k2", "k1"]
    port.purge(partition)
    assert list(port.recent(partition)) == []
