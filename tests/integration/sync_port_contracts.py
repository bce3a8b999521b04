"""One set of assertions per sync port (``shared.sync.ports``), run against the production
adapter (over the emulators and Azurite) and against the in-memory one the fast tests use
(``tests/sync_world.py``): a fake that drifted from the real thing fails here
(issue 17 §2)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.crm.records import ListCursor, ListQuery
from shared.graph.container import ItemDraft
from shared.graph.errors import GraphError
from shared.graph.subscriptions import SubscriptionGone
from shared.graph.sync_errors import ContainerGone, ItemNotFound
from shared.sync.actions import Conflict, ConflictKind
from shared.sync.kind import CRM_MARKER_FIELD, OutlookSide
from shared.sync.links import LinkRow, LinkState, Side
from shared.sync.merge import FieldConflict
from shared.sync.ports import (
    ConflictLog,
    CrmChannels,
    CrmRecordPort,
    CrmRecordWrites,
    LinkRows,
    OutlookItems,
    OutlookSubscriptions,
)


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
    read_before = datetime.now(UTC) - timedelta(seconds=5)  # a plan made before that last change
    refused = port.update("Contacts", [{"id": created[1].id, **body("Overwrite")}], unmodified_since=read_before)
    assert refused[0].status == "error" and refused[0].code == "ALREADY_MODIFIED"
    assert port.update("Contacts", [{"id": created[1].id, **body("Port Two Once More")}],
                       unmodified_since=datetime.now(UTC) + timedelta(seconds=5))[0].ok
    assert updated[1].status == "error" and updated[1].code == "INVALID_DATA"
    deleted = port.delete("Contacts", [created[0].id or "", unknown_id])
    assert deleted[0].ok and deleted[1].status == "error" and deleted[1].code == "INVALID_DATA"  # gone counts as done
    again = port.delete("Contacts", [created[0].id or ""])
    assert again[0].status == "error" and again[0].code == "INVALID_DATA"


def outlook_items(port: OutlookItems, fields: Callable[[str], dict[str, Any]], *, transaction_ids: bool) -> None:
    container_id = port.ensure_container("Zoho CRM").id
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
    stale = port.update_items(container_id, [(created[1].id, fields("B3"))], if_match=[created[1].change_key])
    assert isinstance(stale[0], GraphError) and stale[0].status == 412  # changed since that version: left as it is
    current = port.update_items(container_id, [(created[1].id, fields("B4"))], if_match=[updated[0].change_key])
    assert not isinstance(current[0], GraphError)
    assert isinstance(updated[1], GraphError) and updated[1].status == 404
    # Gone: False. The two deletes go in one $batch, whose requests Graph runs in any order
    # (no dependsOn), so either may be the one that finds the item gone.
    assert sorted(port.delete_items(container_id, [created[1].id, created[1].id])) == [False, True]


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
    # A deletion's routing asks whether the member's links name any of the records.
    assert port.names_any(partition, ["c-unknown", "c2"]) and port.names_any(partition, ["c3"])
    assert not port.names_any(partition, ["c1", "c-unknown"]) and not port.names_any(partition, [])
    assert port.names_any(partition, [f"c-other-{n}" for n in range(40)] + ["c3"])  # beyond one query's comparisons
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


def crm_listing(port: CrmRecordPort, body: Callable[[str], dict[str, Any]], *, owner_id: str, fields: tuple[str, ...]) -> None:
    """How the steps read the CRM: changes after a time (each record once, across pages), a
    listing resumed from a saved cursor, nothing after a future time, and the deleted list."""
    before = datetime.now(UTC) - timedelta(seconds=2)
    created = port.insert("Contacts", [body("List A"), body("List B"), body("List C"), body("List D")])
    ids = [str(c.id) for c in created]
    query = ListQuery(module="Contacts", fields=fields, owner_id=owner_id, modified_since=before)
    listed = [str(r["id"]) for r in port.changed_since(query)]
    assert set(ids) <= set(listed) and len(listed) == len(set(listed))
    pages = list(port.pages(query))
    assert [str(r["id"]) for p in pages for r in p.records] == listed
    assert all(p.next is not None for p in pages[:-1]) and pages[-1].next is None
    first = next(iter(port.pages(query)))
    if first.next is not None:  # a cursor saved between queue messages goes on where it stopped
        saved = ListCursor.model_validate_json(first.next.model_dump_json())
        assert [str(r["id"]) for p in port.pages(saved) for r in p.records] == listed[len(first.records):]
    later = ListQuery(module="Contacts", fields=fields, owner_id=owner_id, modified_since=datetime.now(UTC) + timedelta(days=1))
    assert list(port.pages(later)) == []
    read = port.by_ids("Contacts", [ids[2], ids[0], "1999999999999999998"], fields)
    assert set(read) == {ids[2], ids[0]} and all(str(read[i]["id"]) == i for i in read)  # unknown ids: absent
    someone_else = ListQuery(module="Contacts", fields=fields, owner_id="1999999999999999999", modified_since=before)
    assert [r for r in port.changed_since(someone_else) if str(r["id"]) in ids] == []
    assert port.delete("Contacts", [ids[0], ids[1]])[0].ok
    gone = [d.id for d in port.deleted("Contacts", since=before)]
    assert ids[0] in gone and ids[1] in gone and ids[2] not in gone
    assert list(port.deleted("Contacts", since=datetime.now(UTC) + timedelta(days=1))) == []
    assert {str(r["id"]) for r in port.changed_since(query)} & set(ids) == {ids[2], ids[3]}


def outlook_side(port: OutlookSide, fields: Callable[[str], dict[str, Any]], container_name: str) -> None:
    """How the steps read our container: a new round lists what exists and removes nothing,
    a resumed one only what changed since, without our marker (Graph's delta never expands
    it); a read by id has it, and a missing item is ``ItemNotFound``; a deleted container
    answers ``ContainerGone``."""
    container_id = port.ensure_container(container_name).id
    made = port.create_items(container_id, [ItemDraft(crm_id="crm-d1", fields=fields("Delta One")),
                                            ItemDraft(crm_id="crm-d2", fields=fields("Delta Two"))])
    one, two = (str(i.id) for i in made)
    pages = list(port.delta_pages(container_id, None))
    assert {one, two} <= {i.id for p in pages for i in p.changed} and not any(p.removed for p in pages)
    assert pages[-1].is_last and all(not p.is_last for p in pages[:-1])
    assert all(port.seen(i).partner_id is None for p in pages for i in p.changed)
    link = pages[-1].resume_link
    assert not [i for p in port.delta_pages(container_id, link) for i in p.changed if i.id in (one, two)]
    port.update_items(container_id, [(one, fields("Delta One Again"))])
    port.delete_items(container_id, [two])
    resumed = list(port.delta_pages(container_id, link))
    assert one in {i.id for p in resumed for i in p.changed} and two not in {i.id for p in resumed for i in p.changed}
    assert two in {r.id for p in resumed for r in p.removed}
    read = port.get_items(container_id, [one, two])
    assert port.seen(read[0]).partner_id == "crm-d1" and port.seen(read[0]).item_id == one
    assert type(read[1]) is ItemNotFound
    assert port.delete_container(container_id)
    assert all(isinstance(r, ContainerGone) for r in port.create_items(container_id, [ItemDraft(crm_id="x", fields=fields("X"))]))
    assert all(isinstance(r, ContainerGone) for r in port.get_items(container_id, [one]))
    try:
        list(port.delta_pages(container_id, None))
    except ContainerGone:
        pass
    else:
        raise AssertionError("a deleted container answers ContainerGone")


def crm_channels(port: CrmChannels, notify_url: str) -> None:
    """A channel per Enable: its token to check callbacks with, an expiry about a week out
    that renewing pushes on, and disabling it twice is harmless."""
    channel = port.enable("Contacts", notify_url)
    assert channel.channel_id and channel.token and channel.events == ["Contacts.all"]
    assert timedelta(days=6) < channel.expires_at - datetime.now(UTC) <= timedelta(days=7)
    assert port.renew(channel.channel_id) > datetime.now(UTC) + timedelta(days=6)
    port.disable([channel.channel_id])
    port.disable([channel.channel_id])


def outlook_subscriptions(port: OutlookSubscriptions, folder_id: str, base_url: str, *, gone_folder_id: str) -> None:
    """A subscription on our folder, renewed, deleted once (then False), and gone for renew;
    none on a folder that no longer exists."""
    try:
        port.subscribe_contacts(gone_folder_id, notification_url=f"{base_url}/notify", lifecycle_url=f"{base_url}/lifecycle",
                                client_state="secret-state")
    except GraphError as refused:
        assert refused.status == 404
    else:
        raise AssertionError("a subscription on a deleted folder is refused (404)")
    made = port.subscribe_contacts(folder_id, notification_url=f"{base_url}/notify", lifecycle_url=f"{base_url}/lifecycle",
                                   client_state="secret-state")
    assert made.id and made.client_state == "secret-state" and made.resource.endswith(f"contactFolders/{folder_id}/contacts")
    assert timedelta(days=6) < made.expiration_date_time - datetime.now(UTC) <= timedelta(days=7)  # Outlook items: 7 days at most
    assert port.renew(made.id).expiration_date_time >= made.expiration_date_time - timedelta(minutes=1)
    assert port.delete(made.id) is True and port.delete(made.id) is False
    try:
        port.renew(made.id)
    except SubscriptionGone:
        return
    raise AssertionError("renewing a deleted subscription answers SubscriptionGone")
