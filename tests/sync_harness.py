"""A member's whole sync in memory, for fast tests of the runner and the service (issue 17
§2): the real ``SyncService``, runner, steps and executor, the real stores (profiles, link
rows, conflicts, ledger, accounts) on in-memory tables, the in-memory CRM and Outlook sides
(``tests/sync_sides.py``) and queue. Every fake is held to the real thing's contract
(``tests/integration/test_storage_contract.py``, ``sync_port_contracts.py``).

Faults, as the Functions host meets them: a process that dies at its k-th write (a
``Budget``: remote writes and table writes alike; nothing after it is written, the lease
stays until it lapses), a message delivered twice, a message that comes back after its
visibility timeout. One clock for everything, advanced by hand."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.accounts.models import AuditEvent, CrmAccountRef, MemberIdentity, TenantInstall
from shared.accounts.repository import AccountsRepository
from shared.sync import markers
from shared.sync.conflicts import ConflictEntity, ConflictStore
from shared.sync.crm_routing import CrmChange
from shared.sync.dependencies import SyncDependencies
from shared.sync.holder_filters import HolderFilterRow
from shared.sync.jobs import SYNC_QUEUES, StepReason, SyncJob, SyncJobQueues
from shared.sync.ledger_store import LedgerNote, SyncLedger
from shared.sync.link_store import LinkEntity, LinkStore
from shared.sync.links import Side, linked_crm_ids
from shared.sync.org_channels import OrgChannel, OrgMember
from shared.sync.profiles import LEASE, ProfileStore, SyncKind, SyncProfile
from shared.sync.service import SyncService
from shared.sync.webhooks import WebhookRoute
from tests.fakes.queues import JobQueueInMemory
from tests.fakes.tables import TableRepositoryInMemory
from tests.sync_sides import (
    CrmChannelsInMemory,
    CrmListing,
    OutlookSideInMemory,
    PlainRules,
    SubscriptionsInMemory,
)
from tests.sync_world import Budget, Crash, Store

TENANT, OBJECT, USER = "tenant-1", "object-1", "4000000000001"
MEMBER_KEY = f"ms|{TENANT}|{OBJECT}"
KIND = SyncKind.CONTACTS
MAX_DELIVERIES = 5  # host.json's maxDequeueCount


class TickingClock:
    """Strictly increasing (a millisecond a reading), moved on by hand (a lease lapsing)."""

    def __init__(self, start: datetime = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)) -> None:
        self.base = start
        self._ticks = itertools.count(1)

    def now(self) -> datetime:
        return self.base + timedelta(milliseconds=next(self._ticks))

    def advance(self, delta: timedelta) -> None:
        self.base += delta


def _unreachable(*_: Any, **__: Any) -> Any:
    raise AssertionError("the sync reaches no other service in these tests")


@dataclass(frozen=True)
class Delivery:
    id: str  # the queue message id: the same on every delivery of one message
    job: SyncJob


class SyncHarness:
    def __init__(self, *, crm_per_page: int = 3, outlook_per_page: int = 4, initial_page_size: int = 2,
                 graph_room_wait: Callable[[int], float] = lambda requests: 0.0,
                 mailbox_done: Callable[[], None] = lambda: None) -> None:
        """``initial_page_size``: small, so that a few items make several initial pages (the
        pipeline, and the range of creates reserved ahead of the committed progress);
        ``graph_room_wait``: what the mailbox's 10-minute window says (seconds to wait for
        that many requests)."""
        self.clock = TickingClock()
        self.budget = Budget()
        self.crm_store = Store(Side.CRM, self.clock, self.budget, origin_of=self._origin_in(Side.OUTLOOK),  # type: ignore[arg-type]
                               time_versions=True)
        self.outlook_store = Store(Side.OUTLOOK, self.clock, self.budget, honours_transaction_id=False,  # type: ignore[arg-type]
                                   origin_of=self._origin_in(Side.CRM))
        self.crm = CrmListing(self.crm_store, owner=USER, per_page=crm_per_page)
        self.outlook = OutlookSideInMemory(self.outlook_store, per_page=outlook_per_page)
        self.channels = CrmChannelsInMemory(self.clock)
        self.subscriptions = SubscriptionsInMemory(self.clock, container_exists=lambda container_id: not self.outlook.gone)
        self.queue: JobQueueInMemory[SyncJob] = JobQueueInMemory(SyncJob)
        self.profiles = ProfileStore(self._table(SyncProfile), clock=self.clock.now)
        self.links = LinkStore(self._table(LinkEntity))
        accounts = AccountsRepository(self._table(TenantInstall), self._table(MemberIdentity), self._table(CrmAccountRef),
                                      self._table(AuditEvent), clock=self.clock.now)
        self.member = MemberIdentity(
            partition_key=MEMBER_KEY, row_key="member", tenant_id=TENANT, object_id=OBJECT, email="adele@contoso.test",
            name="Adele", org_id="org-1", org_name="Contoso", user_id=USER, crm_email="adele@contoso.test", dc="us",
            accounts_server="https://accounts.zoho.test", api_domain="https://www.zohoapis.test", how="invited",
            linked_at=self.clock.now(),
        )
        accounts.members.upsert(self.member)
        self.service = SyncService(SyncDependencies(
            profiles=self.profiles, links=self.links, conflicts=ConflictStore(self._table(ConflictEntity)),
            ledger=SyncLedger(self._table(LedgerNote)), jobs=SyncJobQueues(dict.fromkeys(SYNC_QUEUES, self.queue)), routes=self._table(WebhookRoute),  # type: ignore[arg-type]
            org_channels=(channels := self._table(OrgChannel)), org_members=channels.view(OrgMember),
            holder_filters=channels.view(HolderFilterRow), crm_changes=JobQueueInMemory(CrmChange),
            accounts=accounts, kind_for=self._kind_for, crm_session=_unreachable, crm_records=lambda member: self.crm,
            crm_channels=lambda member: self.channels, crm_time_zone=lambda member: None,
            subscriptions=lambda member: self.subscriptions, crm_token=_unreachable, mailbox=_unreachable,
            app_token=_unreachable, encrypt=_unreachable, public_base_url="https://sync.example", clock=self.clock.now,
            initial_page_size=initial_page_size, graph_room_wait=lambda member, requests: graph_room_wait(requests),
            mailbox_done=lambda member: mailbox_done(),
        ))
        self.pending: list[Delivery] = []
        self.deliveries = 0
        self.failures: Counter[str] = Counter()  # failed deliveries per message
        self.poisoned: list[SyncJob] = []
        self.user_deleted: set[str] = set()  # origins the member deleted (in the CRM, or in Outlook while syncing)

    def _table(self, model: type) -> Any:
        return TableRepositoryInMemory(model, before_write=self.budget.spend)

    def _kind_for(self, member: MemberIdentity, kind: SyncKind, *, generation: str | None = None,
                  **facts: Any) -> tuple[PlainRules, OutlookSideInMemory]:
        self.outlook.rules = PlainRules(member.user_id, generation)
        return self.outlook.rules, self.outlook

    def _origin_in(self, side: Side) -> Callable[[str], str]:
        """The origin of an item the sync created: that of the item its marker names."""
        def origin(marker: str) -> str:
            store = self.crm_store if side is Side.CRM else self.outlook_store
            partner = marker.split(markers.SEPARATOR, 1)[-1]
            source = store.items.get(partner)
            return source.origin if source is not None else partner
        return origin

    # -- what people do ---------------------------------------------------------------------

    def enable(self) -> SyncProfile:
        profile = self.service.enable(self.member, KIND)
        self._collect()
        return profile

    def disable(self) -> None:
        self.service.disable(self.member, KIND)
        self._collect()

    def resume(self) -> None:
        """The member presses Resume on the settings page."""
        self.service.resume(self.member, KIND)
        self._collect()

    def webhook(self) -> None:
        """A change notification from either side: a delta step is queued (or coalesced)."""
        self.service.request_delta(MEMBER_KEY, KIND, StepReason.GRAPH_WEBHOOK)
        self._collect()

    def sweep(self) -> None:
        self.service.sweep()
        self._collect()

    # -- the queue and the host ----------------------------------------------------------------

    def _collect(self) -> None:
        for sent in self.queue.take():
            if sent.delay:
                self.clock.advance(sent.delay)  # the message becomes visible that much later
            self.pending.append(Delivery(sent.id, sent.message))

    def deliver_one(self, crash_at: int | None) -> bool:
        """Deliver the first queued message only, its process dying before write ``crash_at``;
        returns whether it died (its message is queued again, its lease lapsed)."""
        delivery = self.pending.pop(0)
        self.budget.left = crash_at
        try:
            self.service.run(delivery.job, delivery=delivery.id)
            return False
        except Crash:
            self._died(delivery)
            return True
        finally:
            self.budget.left = None
            self._collect()

    def _died(self, delivery: Delivery) -> None:
        """Its process died: what it sent is lost with it; its message comes back after the
        visibility timeout, by when a lease it held has lapsed."""
        self.queue.take()
        self.clock.advance(LEASE + timedelta(seconds=1))
        self.pending.append(delivery)

    def settle(self, crashes: Iterable[int | None] = (), duplicates: Iterable[bool] = (), limit: int = 400) -> None:
        """Deliver every queued message, and what each one queues, until none is left.
        ``crashes``: per delivery, the write its process dies before (None: it does not);
        ``duplicates``: per delivery, whether the queue hands it out twice."""
        crash_plan, twice = iter(crashes), iter(duplicates)
        while self.pending:
            self.deliveries += 1
            assert self.deliveries <= limit, f"no end after {limit} deliveries: {self.pending[:3]}"
            delivery = self.pending.pop(0)
            if next(twice, False):
                self.pending.append(delivery)
            self.budget.left = next(crash_plan, None)
            try:
                self.service.run(delivery.job, delivery=delivery.id)
            except Crash:
                self._died(delivery)
                continue
            except Exception:
                # Failed: delivered again after the visibility timeout, five times in all
                # (host.json maxDequeueCount), then given up: the poison queue's trigger.
                self.failures[delivery.id] += 1
                self.queue.take()
                self.clock.advance(timedelta(seconds=30))
                if self.failures[delivery.id] < MAX_DELIVERIES:
                    self.pending.append(delivery)
                else:
                    self.poisoned.append(delivery.job)
                    self.service.give_up(delivery.job)
            finally:
                self.budget.left = None
            self._collect()

    # -- what must be true -----------------------------------------------------------------------

    def profile(self) -> SyncProfile:
        stored = self.profiles.get(MEMBER_KEY, KIND)
        assert stored is not None
        return stored.entity

    def org_channel(self) -> OrgChannel:
        """The member's org's CRM channel of this kind (issue 20: one per org)."""
        stored = self.service.org_channels.channel(self.member.org_id, KIND)
        assert stored is not None
        return stored.entity

    def origins(self, store: Store, *, owned_only: bool = False) -> Counter[str]:
        return Counter(item.origin for item_id, item in store.items.items()
                       if not owned_only or self.crm.owners.get(item_id, USER) == USER)

    def assert_in_step(self) -> None:
        """Nothing lost, nothing duplicated, both sides equal: each of the member's CRM
        items once in Outlook with the same fields, nobody else's, no pending row left."""
        crm = self.origins(self.crm_store, owned_only=True)
        outlook = self.origins(self.outlook_store)
        assert all(n == 1 for n in crm.values()), f"duplicated in the CRM: {crm}"
        assert all(n == 1 for n in outlook.values()), f"duplicated in Outlook: {outlook}"
        assert set(crm) == set(outlook), f"CRM only: {set(crm) - set(outlook)}; Outlook only: {set(outlook) - set(crm)}"
        crm_fields = {i.origin: i.fields for k, i in self.crm_store.items.items() if self.crm.owners.get(k, USER) == USER}
        outlook_fields = {i.origin: i.fields for i in self.outlook_store.items.values()}
        assert crm_fields == outlook_fields
        profile = self.profile()
        assert profile.lease_owner is None and not self.links.pending(profile.links_partition)
        self.assert_filter_holds_links()

    def assert_filter_holds_links(self) -> None:
        """The member's filter of linked CRM ids, when trusted, names every CRM record their
        links name (a CRM deletion's routing asks only the members it names)."""
        profile = self.profile()
        row = self.service.holder_filters.rows(self.member.org_id, KIND).get(MEMBER_KEY)  # type: ignore[union-attr]
        if row is None or not row.trusted:
            return
        linked = linked_crm_ids(self.links.all(profile.links_partition))
        missed = [i for i in linked if not row.held().may_name_any([i])]
        assert not missed, f"linked but not in the member's filter: {missed}"

    def assert_nothing_lost(self, made: Iterable[str]) -> None:
        """Every item the member made in either place and did not delete is in the CRM."""
        kept = set(self.origins(self.crm_store))
        missing = set(made) - self.user_deleted - kept
        assert not missing, f"lost from the CRM: {missing}"
