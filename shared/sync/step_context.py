"""What a sync step needs for one member, built by the composition root (``SyncService``)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from shared.sync.jobs import SyncJob
from shared.sync.kind import KindRules, OutlookSide
from shared.sync.ports import CrmRecordPort
from shared.sync.profiles import SyncProfile


@dataclass
class StepContext:
    """What a step needs for one member (built by the composition root)."""

    rules: KindRules  # the kind's pure rules (mapping, scope, order)
    outlook: OutlookSide  # our container in the member's mailbox
    records: CrmRecordPort  # the member's CRM records
    enqueue: Callable[[SyncJob, int], None]  # (job, delay seconds)
    # Subscribes to the Outlook container's changes; returns the profile fields to store.
    subscribe: Callable[[SyncProfile], dict[str, Any]] | None = None
    # Whether other bulk steps (initial syncs, re-syncs) wait for a worker, as seen a few
    # seconds ago (``SyncJobQueues.bulk_waiting``): a long step gives its place up only then.
    bulk_waiting: Callable[[], bool] = lambda: True
    # About this many Graph requests are coming to the member's mailbox (an initial sync's
    # creates): its shared claim reserves them in one write (``MailboxGate.expect``).
    expect_graph_requests: Callable[[int], None] = lambda requests: None
    # Seconds until about this many Graph requests fit in the mailbox's 10-minute window: an
    # initial sync stops between pages instead of starting one that would wait past its budget.
    graph_room_wait: Callable[[int], float] = lambda requests: 0.0
    # Raises ``LeaseLost`` when the step's lease is no longer surely its own (``LeaseHeartbeat.check``):
    # called before each plan's remote writes.
    check_lease: Callable[[], None] = lambda: None
    # Link rows are about to name these CRM records: into the member's filter first, so a CRM
    # deletion's routing finds them (``holder_filters.HolderFilters.announce``; ``fresh``: a new
    # generation's first selection, its links empty).
    announce_crm_ids: Callable[[Collection[str], bool], None] = lambda ids, fresh: None
    # After a full round: the member's filter made, rotated or settled from ``scan``, the CRM
    # ids their links name now (``HolderFilters.tend``).
    tend_crm_ids: Callable[[Callable[[], list[str]]], None] = lambda scan: None

    @property
    def owner_id(self) -> str:
        """The member's CRM user id (R3.4, R4.5: only their own items)."""
        return self.rules.owner_id
