"""Which members' syncs a CRM change concerns (issue 20): its owners', found through the org's
index (``org_channels``), not every member of the org.

- A callback of an org with one member with sync on goes to that member, at once.
- Otherwise it is queued (``crm-changes``) and routed there: records written or created are
  read once per callback (``GET /{module}?ids=…&fields=Owner``, 100 ids a call, as the org's
  agent) and each owner's sync gets one step; ids that could not be read (deleted, or
  out of the agent's sight) go to the members whose links name them.
- Deleted records have no owner to read: the members whose link rows name them are found in
  two steps. The org's filters of linked CRM ids (``holder_filters``, one query a thousand
  members) rule out every member whose links surely do not name one; the others (the holders,
  about 1 % more, and members without a trusted filter yet) are asked by filtered queries of
  their links, 14 ids a query, stopping at the first found (``LinkRows.names_any``; one
  profile read and at most 8 queries each, one read of the whole partition when it holds at
  most 200 pairs). No CRM call and no step for the others.

A change routed to a member whose sync is paused or initial queues nothing (``request_delta``);
the owner's step reads every change since its watermark, so a routing that is late or runs twice
loses nothing and repeats nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, field_validator

from shared import concurrently
from shared.crm.records import ListQuery
from shared.observability import current_trace_parent, valid_trace_parent
from shared.sync.jobs import StepReason
from shared.sync.org_channels import CRM_MODULE, OrgChannel
from shared.sync.profiles import SyncKind, SyncState

if TYPE_CHECKING:
    from shared.sync.service import SyncService

log = logging.getLogger(__name__)

CRM_CHANGES_QUEUE = "crm-changes"
HOLDER_READS_IN_FLIGHT = 8
# A queued change holds what one CRM read looks up (``GET /{module}?ids=``: 100 ids). A callback
# may name more: how many the CRM puts in one is not documented (a mass update of hundreds).
IDS_PER_CHANGE = 100


class CrmChange(BaseModel):
    """A CRM callback of an org with several members with sync on, to be routed to owners."""

    version: int = 1
    org_id: str
    kind: SyncKind
    operation: Literal["insert", "update", "delete"]
    ids: list[str] = Field(max_length=IDS_PER_CHANGE)
    # What the callback said of each record, when it may be our own writes' echo
    # (``shared.sync.echoes.crm_items``: at most a dozen short entries).
    items: list[str] | None = Field(default=None, max_length=12)
    traceparent: str | None = Field(default_factory=current_trace_parent)

    @field_validator("traceparent", mode="before")
    @classmethod
    def _valid_trace(cls, value: object) -> str | None:
        return valid_trace_parent(value)


def owner_of(record: dict[str, object]) -> str | None:
    owner = record.get("Owner")
    if isinstance(owner, dict) and owner.get("id") is not None:
        return str(owner["id"])
    return None


class CrmRouting:
    def __init__(self, sync: SyncService) -> None:
        self.sync = sync
        self.d = sync.d
        self.org = sync.org_channels

    def callback(self, org_id: str, kind: SyncKind, operation: str, ids: list[str], items: list[str] | None = None) -> int:
        """An authentic callback of an org's channel: the one member's step now (unless it is
        the echo of that member's own write), or the change queued to be routed to its owners,
        100 ids a message. Returns the steps queued here."""
        members = self.org.member_rows(org_id, kind, limit=2)
        if not members:
            log.info("crm callback for org %s (%s): no member syncs it any more", org_id, kind.value)
            return 0
        if len(members) == 1:
            return int(self.sync.webhooks.request_unless_echo(members[0].member, kind, StepReason.CRM_WEBHOOK, items,
                                                              crm_deletion=operation == "delete",
                                                              links_partition=members[0].links_partition) is True)
        self._queue_changes(org_id, kind, operation, ids, items)
        return 0

    def _queue_changes(self, org_id: str, kind: SyncKind, operation: str, ids: list[str], items: list[str] | None = None) -> None:
        """``ids`` as queued changes of ``IDS_PER_CHANGE``, routed by the ``crm-changes`` trigger."""
        for start in range(0, len(ids), IDS_PER_CHANGE):
            self.d.crm_changes.send(CrmChange(org_id=org_id, kind=kind, operation=operation,  # type: ignore[arg-type]
                                              ids=ids[start:start + IDS_PER_CHANGE], items=items))

    def route(self, change: CrmChange) -> int:
        """A queued change: one step per owner (or link holder). Returns the steps queued."""
        stored = self.org.channel(change.org_id, change.kind)
        if stored is None:
            return 0  # the last member left meanwhile
        deleted = change.operation == "delete"
        unresolved = list(change.ids) if deleted else self._route_by_owner(stored.entity, change.ids, StepReason.CRM_WEBHOOK,
                                                                            change.items)
        return self._route_to_holders(change.org_id, change.kind, unresolved, StepReason.CRM_WEBHOOK, crm_deletion=deleted)

    def read_org_changes(self, row: OrgChannel, since: datetime) -> int:
        """The org's changes and deletions since ``since``, read once for the whole org (two
        CRM calls and their pages) and routed: what a lapsed channel may have missed. Returns
        the owners' steps queued (the deletions are queued changes)."""
        kind = SyncKind(row.kind)
        module = CRM_MODULE[kind]
        query = ListQuery(module=module, fields=("Owner", "Modified_Time"), modified_since=since - timedelta(seconds=1))

        def read(member):  # type: ignore[no-untyped-def]
            records = self.d.crm_records(member)
            return list(records.changed_since(query)), [d.id for d in records.deleted(module, since=since - timedelta(seconds=1))]

        (changed, deleted), _ = self.org.as_agent(row, read)
        by_owner: dict[str, list[str]] = defaultdict(list)
        for record in changed:
            owner = owner_of(record)
            if owner is not None:
                by_owner[owner].append(str(record.get("id")))
        queued = self._queue_owners(row.org_id, kind, by_owner, StepReason.SWEEP)
        # The deletions as queued changes of 100 ids, routed by the queue's trigger: every member
        # is asked about them, which a lapse of days in a big org makes too much for the timer.
        self._queue_changes(row.org_id, kind, "delete", deleted)
        return queued

    # -- by owner -----------------------------------------------------------------------------------

    def _route_by_owner(self, row: OrgChannel, ids: list[str], reason: StepReason, items: list[str] | None = None) -> list[str]:
        """Steps for the owners of ``ids``; returns the ids whose owner could not be read."""
        kind = SyncKind(row.kind)
        found, _ = self.org.as_agent(row, lambda member: self.d.crm_records(member).by_ids(CRM_MODULE[kind], ids, ["Owner"]))
        by_owner: dict[str, list[str]] = defaultdict(list)
        for record_id, record in found.items():
            owner = owner_of(record)
            if owner is not None:
                by_owner[owner].append(record_id)
        self._queue_owners(row.org_id, kind, by_owner, reason, items)
        return [i for i in ids if i not in found]

    def _queue_owners(self, org_id: str, kind: SyncKind, by_owner: dict[str, list[str]], reason: StepReason,
                      items: list[str] | None = None) -> int:
        """A step for each owner with the sync on (a few at a time: a lapsed channel's changes may
        name thousands of owners)."""

        def tell(owner: str) -> bool:
            member = self.org.member_for(org_id, kind, owner)
            if member is None:  # an owner without sync on: nobody to tell
                return False
            return self.sync.webhooks.request_unless_echo(member, kind, reason, _items_of(items, by_owner[owner])) is True

        return sum(concurrently.each(tell, list(by_owner), at_once=HOLDER_READS_IN_FLIGHT, name="owners"))

    # -- by link ------------------------------------------------------------------------------------

    def _route_to_holders(self, org_id: str, kind: SyncKind, ids: Iterable[str], reason: StepReason, *,
                          crm_deletion: bool) -> int:
        wanted = sorted(set(ids))
        if not wanted:
            return 0
        members = self.org.members(org_id, kind)
        if len(members) == 1:
            holders = members
        else:
            # Only the members whose filter of linked CRM ids may name one (``holder_filters``).
            filters = self.sync.holder_filters
            ruled_out = filters.ruled_out(org_id, kind, wanted) if filters is not None else set()
            asked = [m for m in members if m not in ruled_out]
            holds = concurrently.each(lambda m: self._holds(m, kind, wanted), asked, at_once=HOLDER_READS_IN_FLIGHT,
                                      name="link-holders")
            holders = [m for m, held in zip(asked, holds, strict=True) if held]
        return sum(self.sync.request_delta(m, kind, reason, crm_deletion=crm_deletion) for m in holders)

    def _holds(self, member_key: str, kind: SyncKind, ids: list[str]) -> bool:
        stored = self.d.profiles.get(member_key, kind)
        if stored is None or stored.entity.state is not SyncState.ACTIVE:
            return False
        return self.d.links.names_any(stored.entity.links_partition, ids, pairs=stored.entity.synced_items)


def _items_of(items: list[str] | None, ids: list[str]) -> list[str] | None:
    """The callback's entries for these records (None unless each has one)."""
    if items is None:
        return None
    wanted = set(ids)
    mine = [entry for entry in items if entry.partition("|")[2].partition("|")[0] in wanted]
    return mine if {entry.partition("|")[2].partition("|")[0] for entry in mine} == wanted else None
