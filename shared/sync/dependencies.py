"""What the sync needs from the rest of the product, passed in by the composition root
(``shared.wiring``) instead of looked up there (issue 17 §2): its stores and its queue, and
the ways to reach a member's CRM, mailbox and Microsoft tenant. Fast tests pass in-memory
stores (``tests/fakes``), held by contract tests to what Azurite does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.accounts.models import MemberIdentity
from shared.accounts.repository import AccountsRepository
from shared.crm.session import CrmSession
from shared.graph.mailbox import GraphMailbox
from shared.storage import JobQueue, TableRepository
from shared.sync.crm_routing import CrmChange
from shared.sync.held_notifications import HeldNotifications
from shared.sync.jobs import SyncJobQueues
from shared.sync.kind import KindRules, OutlookSide
from shared.sync.ledger_store import SyncLedger
from shared.sync.ports import ConflictLog, CrmChannels, CrmRecordPort, LinkRows, OutlookSubscriptions
from shared.sync.profiles import ProfileStore


@dataclass(frozen=True)
class SyncDependencies:
    profiles: ProfileStore
    links: LinkRows
    conflicts: ConflictLog
    ledger: SyncLedger
    jobs: SyncJobQueues  # each step to its queue (``jobs.queue_for``)
    routes: TableRepository[Any]  # the webhooks' routes (``shared.sync.webhook_routes.WebhookRoute``)
    # Each org's CRM channel per kind and the members with that sync on, rows of one table
    # (``shared.sync.org_channels``: ``OrgChannel``, ``OrgMember``).
    org_channels: TableRepository[Any]
    org_members: TableRepository[Any]
    crm_changes: JobQueue[CrmChange]  # CRM callbacks of orgs with several members, to route to owners
    accounts: AccountsRepository  # members, and the audit log
    # (member, kind, **profile facts) -> the kind's rules and its Outlook side in the member's mailbox
    # (``adapters.kind_for``)
    kind_for: Callable[..., tuple[KindRules, OutlookSide]]
    crm_session: Callable[[MemberIdentity], CrmSession]  # the CRM, acting as the member (the contacts settings)
    crm_records: Callable[[MemberIdentity], CrmRecordPort]  # their records (``CrmRecords`` over that session)
    crm_channels: Callable[[MemberIdentity], CrmChannels]  # their watch channels (``CrmWatch``)
    crm_time_zone: Callable[[MemberIdentity], str | None]  # their time zone in the CRM (IANA)
    subscriptions: Callable[[MemberIdentity], OutlookSubscriptions]  # Graph's, on their mailbox
    crm_token: Callable[[MemberIdentity], object]  # a CRM access token for them (raises CrmError when refused)
    mailbox: Callable[[MemberIdentity], GraphMailbox]  # their mailbox, with the app's token
    app_token: Callable[[str], object]  # the app's token for a tenant (raises SignInFailed when refused)
    encrypt: Callable[[str], str]  # a refresh token, sealed for storage
    public_base_url: str  # where Graph and the CRM send our webhooks
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # the one clock of the sync's decisions
    # About this many Graph requests are coming to their mailbox: its shared claim reserves them
    # at once (``MailboxGate.expect``); nothing to do where the mailbox's limits are not shared.
    expect_graph_requests: Callable[[MemberIdentity, int], None] = lambda member, requests: None
    # Seconds until about this many Graph requests fit in their mailbox's 10-minute window
    # (``MailboxGate.room_wait``); 0 where nothing keeps that window.
    graph_room_wait: Callable[[MemberIdentity, int], float] = lambda member, requests: 0.0
    # This process is done with their mailbox for now (an Enable, a step): its shared claim goes
    # back at once (``SharedMailboxes.give_back_if_idle``), for their next step, maybe elsewhere.
    mailbox_done: Callable[[MemberIdentity], None] = lambda member: None
    initial_page_size: int = 99  # CRM records the initial sync reads by id at a time (and link rows per commit)
    # Graph notifications of a POST beyond those looked up while Graph waits (``held_notifications``).
    held_notifications: JobQueue[HeldNotifications] | None = None
    # Each member's filter of the CRM ids their links name, rows of ``crmchannels`` beside the
    # org's index (``shared.sync.holder_filters``); None: a CRM deletion asks every member.
    holder_filters: TableRepository[Any] | None = None
