"""Issue 20 over fakes: one CRM channel per org and kind, each change routed to its owner's
sync, and a safety sweep whose idle cost does not grow with the members' (the real stores on
in-memory tables, every Table request counted; the CRM's records and channels in memory,
every call counted)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from shared.accounts.models import AuditEvent, CrmAccountRef, MemberIdentity, TenantInstall
from shared.accounts.repository import AccountsRepository
from shared.crm.models import DeletedRecord
from shared.crm.records import ListQuery
from shared.crm.watch import CallbackRejected
from shared.storage import TableEntity
from shared.sync.crm_routing import CrmChange
from shared.sync.dependencies import SyncDependencies
from shared.sync.echoes import sent_digests
from shared.sync.held_notifications import LOOKED_UP_WHILE_GRAPH_WAITS, HeldNotifications
from shared.sync.holder_filters import HolderFilterRow
from shared.sync.jobs import SYNC_QUEUES, StepReason, SyncJob, SyncJobQueues
from shared.sync.links import LinkRow, LinkState, Side
from shared.sync.org_channels import OrgChannel, OrgMember
from shared.sync.profiles import ProfileStore, SyncKind, SyncProfile, SyncState
from shared.sync.service import SyncService
from shared.sync.webhooks import WebhookRoute
from tests.fakes.queues import JobQueueInMemory
from tests.fakes.tables import TableRepositoryInMemory
from tests.sync_harness import TickingClock
from tests.sync_sides import CrmChannelsInMemory, OutlookSideInMemory, PlainRules, SubscriptionsInMemory
from tests.sync_world import Budget, Store

KIND = SyncKind.CONTACTS
ORG = "org-1"


class CountingTable(TableRepositoryInMemory):  # type: ignore[type-arg]
    """An in-memory table that counts its requests as Table Storage bills them: each read,
    write and transaction one, a query one per page."""

    def __init__(self, model: type[TableEntity], counts: dict[str, int]) -> None:
        super().__init__(model)
        self.counts = counts

    def _count(self, n: int = 1) -> None:
        self.counts["table"] += n

    def get(self, partition_key: str, row_key: str) -> Any:
        self._count()
        return super().get(partition_key, row_key)

    def insert(self, entity: Any) -> Any:
        self._count()
        return super().insert(entity)

    def upsert(self, entity: Any) -> Any:
        self._count()
        return super().upsert(entity)

    def replace(self, entity: Any, etag: str) -> Any:
        self._count()
        return super().replace(entity, etag)

    def delete(self, partition_key: str, row_key: str, etag: str | None = None) -> None:
        self._count()
        super().delete(partition_key, row_key, etag)

    def transact(self, operations: Sequence[Any]) -> Any:
        self._count(max(1, -(-len(operations) // 100)))
        return super().transact(operations)

    def query(self, partition_key: str | None = None, *, page_size: int = 1000, **kwargs: Any) -> Iterator[Any]:
        self._count()
        for n, row in enumerate(super().query(partition_key, page_size=page_size, **kwargs), start=1):
            yield row
            if n % page_size == 0:
                self._count()  # the next page


class CrmRecordsInMemory:
    """The org's records (id -> owner's CRM user id), as any member reads them; calls counted."""

    def __init__(self, counts: dict[str, int], clock: TickingClock) -> None:
        self.owners: dict[str, str] = {}
        self.modified: dict[str, datetime] = {}
        self.deleted_at: dict[str, datetime] = {}
        self.counts = counts
        self.clock = clock

    def change(self, record_id: str, owner: str) -> None:
        self.owners[record_id] = owner
        self.modified[record_id] = self.clock.now()

    def delete(self, record_id: str) -> None:
        self.owners.pop(record_id, None)
        self.deleted_at[record_id] = self.clock.now()

    def by_ids(self, module: str, ids: Sequence[str], fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        self.counts["crm"] += -(-len(ids) // 100)
        return {i: {"id": i, "Owner": {"id": self.owners[i]}} for i in ids if i in self.owners}

    def changed_since(self, query: ListQuery) -> Iterator[dict[str, Any]]:
        self.counts["crm"] += 1
        for record_id, owner in self.owners.items():
            if query.modified_since is None or self.modified[record_id] > query.modified_since:
                yield {"id": record_id, "Owner": {"id": owner}, "Modified_Time": self.modified[record_id].isoformat()}

    def deleted(self, module: str, *, since: datetime | None = None) -> Iterator[DeletedRecord]:
        self.counts["crm"] += 1
        for record_id, at in self.deleted_at.items():
            if since is None or at > since:
                yield DeletedRecord(id=record_id, type="recycle", deleted_time=at.isoformat())


class LinksInMemory:
    """Which CRM ids each member's link partition names (``LinkRows.load`` as routing reads it)."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.crm_ids: dict[str, set[str]] = {}
        self.synced: dict[str, list[LinkRow]] = {}  # whole rows, for the echo checks
        self.counts = counts

    def load(self, partition: str, *, crm_ids: Any = (), **_: Any) -> list[Any]:
        wanted = set(crm_ids)
        self.counts["table"] += len(wanted) + 1  # point reads of the index rows, and the pending query
        rows = [row for row in self.synced.get(partition, []) if row.crm_id in wanted]
        return rows or [SimpleNamespace(crm_id=i, state=LinkState.SYNCED, crm_sent=None)
                        for i in self.crm_ids.get(partition, set()) & wanted]

    def names_any(self, partition: str, crm_ids: Any, *, pairs: int | None = None) -> bool:
        wanted = set(crm_ids)
        self.counts["table"] += 1 if pairs is not None and pairs <= 200 else -(-(len(wanted) + 2) // 14)  # as LinkStore
        return bool(self.crm_ids.get(partition, set()) & wanted or any(r.crm_id in wanted for r in self.synced.get(partition, [])))

    def purge(self, partition: str) -> int:
        return 0


class OrgWorld:
    def __init__(self, *, holder_filters: bool = False) -> None:
        """``holder_filters``: the members' filters of linked CRM ids kept (``shared.sync.holder_filters``)."""
        self.clock = TickingClock(datetime(2026, 12, 5, 9, 0, tzinfo=UTC))
        self.counts = {"table": 0, "crm": 0}
        self.crm = CrmRecordsInMemory(self.counts, self.clock)
        self.channels = CrmChannelsInMemory(self.clock)
        self.links = LinksInMemory(self.counts)
        self.outlook = OutlookSideInMemory(Store(Side.OUTLOOK, self.clock, Budget()))  # type: ignore[arg-type]
        self.queue: JobQueueInMemory[SyncJob] = JobQueueInMemory(SyncJob)
        self.changes: JobQueueInMemory[CrmChange] = JobQueueInMemory(CrmChange)
        self.held: JobQueueInMemory[HeldNotifications] = JobQueueInMemory(HeldNotifications)
        self.profiles = ProfileStore(self._table(SyncProfile), clock=self.clock.now)
        self.accounts = AccountsRepository(self._table(TenantInstall), self._table(MemberIdentity), self._table(CrmAccountRef),
                                           self._table(AuditEvent), clock=self.clock.now)
        self.routes = self._table(WebhookRoute)
        self.service = SyncService(SyncDependencies(
            profiles=self.profiles, links=self.links, conflicts=None, ledger=SimpleNamespace(purge=lambda p: 0),  # type: ignore[arg-type]
            jobs=SyncJobQueues(dict.fromkeys(SYNC_QUEUES, self.queue)), routes=self.routes,  # type: ignore[arg-type]
            org_channels=(channels := self._table(OrgChannel)), org_members=channels.view(OrgMember), crm_changes=self.changes,
            accounts=self.accounts, kind_for=lambda member, kind, **facts: (PlainRules(member.user_id, None), self.outlook),
            crm_session=_unreachable, crm_records=lambda member: self.crm, crm_channels=lambda member: self.channels,
            crm_time_zone=lambda member: None, subscriptions=lambda member: SubscriptionsInMemory(self.clock),
            crm_token=_unreachable, mailbox=_unreachable, app_token=_unreachable, encrypt=_unreachable,
            public_base_url="https://sync.example", clock=self.clock.now, held_notifications=self.held,
            holder_filters=channels.view(HolderFilterRow) if holder_filters else None,
        ))
        self.members: list[MemberIdentity] = []

    def _table(self, model: type[TableEntity]) -> CountingTable:
        return CountingTable(model, self.counts)

    def member(self, n: int, org: str = ORG) -> MemberIdentity:
        member = MemberIdentity(
            partition_key=f"ms|tenant-1|object-{n}", row_key="member", tenant_id="tenant-1", object_id=f"object-{n}",
            email=f"m{n}@contoso.test", name=f"Member {n}", org_id=org, org_name="Contoso", user_id=str(4_000_000 + n),
            crm_email=f"m{n}@contoso.test", dc="us", accounts_server="https://accounts.zoho.test",
            api_domain="https://www.zohoapis.test", how="invited", linked_at=self.clock.now(),
        )
        self.accounts.members.upsert(member)
        self.members.append(member)
        return member

    def syncing(self, count: int, org: str = ORG) -> list[MemberIdentity]:
        """``count`` members with sync on, made cheaply: their org's index row and an active
        profile with a live Graph subscription (what Enable and the first delta round leave)."""
        made = []
        for n in range(len(self.members), len(self.members) + count):
            member = self.member(n, org)
            self.service.org_channels.join(member, KIND)
            self.profiles.create_or_get(SyncProfile(
                partition_key=member.partition_key, row_key=KIND.value, tenant_id=member.tenant_id,
                object_id=member.object_id, state=SyncState.ACTIVE, container_id="folder", generation=f"g{n}",
                enabled_at=self.clock.now(), subscription_id=f"sub-{n}",
                subscription_expires=self.clock.now() + timedelta(days=2)))
            made.append(member)
        return made

    def callback(self, operation: str, ids: list[str], *, token: str | None = None, channel_id: str | None = None,
                 values: dict[str, Any] | None = None) -> None:
        row = self.channel()
        self.service.crm_callback(json.dumps({
            "channel_id": channel_id or row.channel_id, "module": "Contacts", "operation": operation, "ids": ids,
            "token": token or row.token,
            **({"affected_values": [{"record_id": i, "values": values} for i in ids]} if values is not None else {}),
        }).encode())

    def channel(self) -> OrgChannel:
        stored = self.service.org_channels.channel(ORG, KIND)
        assert stored is not None
        return stored.entity

    def route_queued_changes(self) -> None:
        for sent in self.changes.take():
            self.service.route_crm_change(sent.message)

    def steps(self) -> list[SyncJob]:
        return [sent.message for sent in self.queue.take()]

    def reset(self) -> None:
        self.queue.take()
        self.changes.take()
        self.counts.update(table=0, crm=0)


def _unreachable(*_: Any, **__: Any) -> Any:
    raise AssertionError("not reached in these tests")


@pytest.fixture
def world() -> OrgWorld:
    return OrgWorld()


# -- one channel per org ---------------------------------------------------------------------------

def test_members_enabling_share_one_channel_and_only_the_last_disable_removes_it(world: OrgWorld) -> None:
    members = [world.member(n) for n in range(4)]
    for member in members:
        world.service.enable(member, KIND)
    assert len(world.channels.channels) == 1  # one per org and kind, not one per member
    channel = world.channel()
    assert world.routes.get(f"crm|{channel.channel_id}", "hook").entity.org_id == ORG  # type: ignore[union-attr]
    assert channel.agent == members[0].partition_key
    for member in members[:3]:
        world.service.disable(member, KIND)
        assert list(world.channels.channels) == [channel.channel_id]  # the others still hear the CRM
    assert world.channel().agent == members[3].partition_key  # the first one left: another acts for the org
    world.service.disable(members[3], KIND)
    assert world.channels.channels == {}
    assert world.service.org_channels.channel(ORG, KIND) is None
    assert world.routes.get(f"crm|{channel.channel_id}", "hook") is None
    world.service.enable(members[1], KIND)  # and a new one comes with the next Enable
    assert len(world.channels.channels) == 1 and world.channel().channel_id != channel.channel_id


def test_joining_costs_two_table_transactions_on_a_live_channel_and_four_on_a_new_one(world: OrgWorld) -> None:
    """The member's row rides with the channel's write (one partition, one transaction)."""
    org = world.service.org_channels
    first, second = world.member(0), world.member(1)
    before = world.counts["table"]
    org.join(first, KIND)  # the channel is made: a read, the claim, the route, the confirmation
    assert world.counts["table"] - before == 4
    before = world.counts["table"]
    org.join(second, KIND)  # live: a read, and one write of both rows
    assert world.counts["table"] - before == 2
    assert org.members(ORG, KIND) == [first.partition_key, second.partition_key]
    assert len(world.channels.channels) == 1


def test_an_enable_racing_the_last_disable_keeps_the_channel(world: OrgWorld) -> None:
    """The last member's Disable saw nobody else; an Enable wrote its row and touched the
    channel before that Disable deleted it: the conditional delete fails, and the Disable,
    looking again, finds the new member and keeps the channel."""
    leaving, arriving = world.member(0), world.member(1)
    world.service.enable(leaving, KIND)
    org = world.service.org_channels
    members = org.members
    calls = {"n": 0}

    def racing(org_id: str, kind: SyncKind, limit: int | None = None) -> list[str]:
        found = members(org_id, kind, limit)
        calls["n"] += 1
        if calls["n"] == 1:  # right after the leaving member's look: the Enable runs
            org.join(arriving, KIND)
        return found

    org.members = racing  # type: ignore[method-assign]
    world.service.disable(leaving, KIND)
    org.members = members  # type: ignore[method-assign]
    assert len(world.channels.channels) == 1
    assert world.channel().agent == arriving.partition_key


# -- one change, one step ------------------------------------------------------------------------

def test_a_crm_edit_in_an_org_of_1000_members_costs_one_step_for_its_owner(world: OrgWorld) -> None:
    members = world.syncing(1000)
    owner = members[417]
    world.crm.change("5000000000001", owner.user_id)
    world.reset()
    world.callback("update", ["5000000000001"])
    assert world.steps() == []  # the webhook only queued the change: one message
    assert len(world.changes.sent) == 1
    world.route_queued_changes()
    steps = world.steps()
    assert [(s.member, s.reason) for s in steps] == [(owner.partition_key, StepReason.CRM_WEBHOOK)]
    assert world.counts["crm"] == 1  # one read of the changed ids, whatever the members
    assert world.counts["table"] <= 12  # route, members, channel, agent, owner, the owner's profile: not per member


def test_an_edit_of_several_owners_records_wakes_each_owner_once(world: OrgWorld) -> None:
    a, b, c = world.syncing(3)
    for n, owner in enumerate((a, b, a, "4999999")):
        world.crm.change(str(5_000_000_000_010 + n), owner if isinstance(owner, str) else owner.user_id)
    world.reset()
    world.callback("insert", [str(5_000_000_000_010 + n) for n in range(4)])
    world.route_queued_changes()
    assert sorted(s.member for s in world.steps()) == sorted([a.partition_key, b.partition_key])  # not c; nobody syncs the 4th owner


@pytest.mark.parametrize("operation", ["update", "delete"])
def test_a_mass_action_of_250_records_in_one_callback_reaches_every_owner(world: OrgWorld, operation: str) -> None:
    """How many ids the CRM puts in one callback is not documented (a mass update may name
    hundreds): the callback is accepted whatever their number, and each queued change holds
    what one CRM read can look up (100 ids)."""
    members = world.syncing(5)
    ids = [str(5_000_000_001_000 + n) for n in range(250)]
    for n, record_id in enumerate(ids):
        holder = members[n % 5]
        world.crm.change(record_id, holder.user_id)
        world.links.crm_ids.setdefault(f"{holder.partition_key}|{KIND.value}|g{n % 5}", set()).add(record_id)
        if operation == "delete":
            world.crm.delete(record_id)
    world.reset()
    world.callback(operation, ids)
    assert [len(sent.message.ids) for sent in world.changes.sent] == [100, 100, 50]
    world.route_queued_changes()
    assert sorted({s.member for s in world.steps()}) == sorted(m.partition_key for m in members)


def test_a_mass_deletion_in_an_org_of_300_members_costs_a_few_reads_per_member_and_no_crm_call(world: OrgWorld) -> None:
    members = world.syncing(300)
    for n, member in enumerate(members):  # what Enable and the initial sync left: 2,000 pairs each
        world.profiles.update(member.partition_key, KIND, lambda p: p.model_copy(update={"synced_items": 2000}))
        world.links.crm_ids[f"{member.partition_key}|{KIND.value}|g{n}"] = {f"c{n}-{i}" for i in range(3)}
    holder = members[123]
    ids = ["c123-1", *(str(5_000_000_002_000 + n) for n in range(99))]
    world.reset()
    world.callback("delete", ids)
    world.route_queued_changes()
    assert [s.member for s in world.steps()] == [holder.partition_key]
    assert world.counts["crm"] == 0
    # Per member: its profile and at most 8 filtered queries of its links (``LinkStore.names_any``).
    assert world.counts["table"] <= 300 * (1 + 8) + 12


def test_a_crm_deletion_goes_to_the_members_whose_links_name_it(world: OrgWorld) -> None:
    members = world.syncing(50)
    holder = members[7]
    world.links.crm_ids[f"{holder.partition_key}|{KIND.value}|g7"] = {"5000000000099"}
    world.crm.delete("5000000000099")
    world.reset()
    world.callback("delete", ["5000000000099"])
    world.route_queued_changes()
    [step] = world.steps()
    assert step.member == holder.partition_key
    assert world.profiles.get(holder.partition_key, KIND).entity.crm_deletions_noticed  # type: ignore[union-attr]
    assert world.counts["crm"] == 0  # reads of our own tables only


def test_a_single_members_org_is_routed_at_once_without_the_queue(world: OrgWorld) -> None:
    [member] = world.syncing(1)
    world.reset()
    world.callback("update", ["5000000000001"])
    assert world.changes.sent == []
    assert [s.member for s in world.steps()] == [member.partition_key]
    assert world.counts["crm"] == 0


@pytest.mark.parametrize(("values", "steps"), [({"Title": "Chef"}, 0), ({"Title": "Sous-chef"}, 1), ({"Phone": "1"}, 1)],
                         ids=["our-echo", "another-value", "another-field"])
def test_the_owners_echo_of_its_own_write_wakes_nobody_in_a_many_member_org(world: OrgWorld, values, steps) -> None:  # type: ignore[no-untyped-def]
    """Routed by owner (the org has many members): the callback's affected values, carried by the
    queued change, are checked against what the owner's last write sent (``shared.sync.echoes``)."""
    members = world.syncing(20)
    owner = members[3]
    world.crm.change("5000000000001", owner.user_id)
    world.links.synced[f"{owner.partition_key}|{KIND.value}|g3"] = [LinkRow(
        link_id="a", state=LinkState.SYNCED, crm_id="5000000000001", outlook_id="o1", crm_version="v",
        outlook_version="k", crm_sent=sent_digests({"id": "5000000000001", "Title": "Chef"}))]
    world.reset()
    world.callback("update", ["5000000000001"], values=values)
    world.route_queued_changes()
    assert [s.member for s in world.steps()] == [owner.partition_key] * steps


def test_the_callbacks_checks_still_hold(world: OrgWorld) -> None:
    world.syncing(2)
    with pytest.raises(CallbackRejected) as refused:
        world.callback("update", ["1"], token="not-the-token")
    assert refused.value.reason == "bad_token"
    with pytest.raises(CallbackRejected) as refused:
        world.callback("update", ["1"], channel_id="123456789012345678")
    assert refused.value.reason == "unknown_channel"
    with pytest.raises(CallbackRejected) as refused:
        world.callback("update", ["1"], channel_id="12x")
    assert refused.value.reason == "malformed"
    assert world.changes.sent == [] and world.steps() == []


# -- Graph's notifications of many members in one POST ------------------------------------------

def _subscribed(world: OrgWorld, members: list[MemberIdentity]) -> list[tuple[str, str]]:
    """A Graph subscription per member, its route and the profile's fields written as subscribing writes them."""
    made = []
    for n, member in enumerate(members):
        subscription_id, secret = str(uuid.UUID(int=n + 1)), f"secret-{n}"
        world.routes.upsert(WebhookRoute(partition_key=f"graph|{subscription_id}", row_key="hook", member=member.partition_key,
                                         kind=KIND.value, secret=secret))
        world.profiles.update(member.partition_key, KIND, lambda p, sid=subscription_id, secret=secret: p.model_copy(
            update={"subscription_id": sid, "client_state": secret}))
        made.append((subscription_id, secret))
    return made


def _graph_post(entries: list[tuple[str, str]]) -> bytes:
    return json.dumps({"value": [
        {"subscriptionId": sid, "clientState": secret, "changeType": "updated", "resource": "Users/u/Contacts/c",
         "resourceData": {"id": f"contact-{n}", "@odata.etag": 'W/"K1"'}} for n, (sid, secret) in enumerate(entries)]}).encode()


def test_a_graph_post_naming_250_members_gets_each_a_step_the_first_100_at_once_the_rest_through_the_queue(world: OrgWorld) -> None:
    """Graph batches several subscriptions' notifications per POST: beyond those looked up while
    Graph waits (3 s), the rest are held for a queue, not dropped (the sweep checks members
    whose webhooks are healthy once a day only)."""
    members = world.syncing(250)
    subscriptions = _subscribed(world, members)
    world.reset()
    assert world.service.graph_notifications(_graph_post(subscriptions)) == LOOKED_UP_WHILE_GRAPH_WAITS
    assert len(world.queue.sent) == LOOKED_UP_WHILE_GRAPH_WAITS
    held = [sent.message for sent in world.held.take()]
    assert sum(len(m.notifications) for m in held) == 150
    assert all(len(m.model_dump_json()) * 4 / 3 < 64_000 for m in held)  # a queue message, base64
    for message in held:
        world.service.held_graph_notifications(HeldNotifications.model_validate_json(message.model_dump_json()))
    assert sorted(s.member for s in world.steps()) == sorted(m.partition_key for m in members)
    # Handled twice (a redelivery): the members' marks hold, nothing more is queued.
    for message in held:
        assert world.service.held_graph_notifications(message) == 0


def test_a_forged_post_of_thousands_of_subscriptions_holds_nothing_and_a_forged_held_notification_queues_nothing(
        world: OrgWorld) -> None:
    members = world.syncing(3)
    subscriptions = _subscribed(world, members)
    forged = [(str(uuid.uuid4()), "guess") for _ in range(900)] + [(subscriptions[0][0], "guess")] + subscriptions
    world.reset()
    assert world.service.graph_notifications(_graph_post(forged)) == 0
    assert world.held.sent == [] and world.steps() == []
    assert world.counts["table"] <= LOOKED_UP_WHILE_GRAPH_WAITS  # one route read each, for the first 100 only
    # The queue's messages are checked as the webhook's are: a wrong clientState queues nothing.
    message = HeldNotifications.model_validate({"notifications": [
        {"subscription_id": sid, "client_state": "guess", "items": None} for sid, _ in subscriptions]})
    assert world.service.held_graph_notifications(message) == 0 and world.steps() == []


def _lifecycle_post(entries: list[tuple[str, str, str]]) -> bytes:
    return json.dumps({"value": [{"subscriptionId": sid, "clientState": secret, "lifecycleEvent": event,
                                  "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z"} for sid, secret, event in entries]}).encode()


def test_lifecycle_notifications_are_answered_at_once_and_acted_on_from_the_queue(world: OrgWorld) -> None:
    """Each costs Graph calls (a renewal, a new subscription): 100 of them in one POST, as a
    tenant-wide reauthorization sends, made the webhook answer Graph in tens of seconds."""
    members = world.syncing(3)
    (sub_a, secret_a), (sub_b, secret_b), (sub_c, secret_c) = _subscribed(world, members)
    world.reset()
    events = [(sub_a, secret_a, "reauthorizationRequired"), (sub_b, secret_b, "subscriptionRemoved"),
              (sub_c, secret_c, "missed"), (sub_c, "forged", "subscriptionRemoved")]
    assert world.service.graph_lifecycle(_lifecycle_post(events)) == 3
    assert world.steps() == []  # nothing done yet: the webhook only checked and held them
    [held] = [sent.message for sent in world.held.take()]
    assert [n.lifecycle_event for n in held.notifications] == ["reauthorizationRequired", "subscriptionRemoved", "missed"]
    before = {m.partition_key: world.profiles.get(m.partition_key, KIND).entity.client_state for m in members}  # type: ignore[union-attr]
    assert world.service.held_graph_notifications(held) == 3
    after = {m.partition_key: world.profiles.get(m.partition_key, KIND).entity.client_state for m in members}  # type: ignore[union-attr]
    # Renewing a subscription Graph no longer knows makes a new one, as removal does; "missed" is a round.
    assert [before[m.partition_key] != after[m.partition_key] for m in members] == [True, True, False]
    assert sorted(s.member for s in world.steps()) == sorted(m.partition_key for m in members)
    assert world.service.graph_lifecycle(_lifecycle_post([(sub_a, "forged", "subscriptionRemoved")])) == 0
    assert world.held.sent == []  # a forged POST holds nothing


def test_a_removed_subscriptions_notification_handled_twice_or_late_makes_one_new_subscription(world: OrgWorld) -> None:
    """The queue may deliver a held message twice, and late: a notification about a subscription
    the member no longer has (already replaced) makes no other one (it would orphan theirs)."""
    [member] = world.syncing(1)
    [(subscription_id, secret)] = _subscribed(world, [member])
    world.service.graph_lifecycle(_lifecycle_post([(subscription_id, secret, "subscriptionRemoved")]))
    [held] = [sent.message for sent in world.held.take()]
    world.service.held_graph_notifications(held)
    replaced = world.profiles.get(member.partition_key, KIND).entity  # type: ignore[union-attr]
    assert replaced.subscription_id != subscription_id
    world.service.held_graph_notifications(held)  # delivered again
    world.service.graph_lifecycle(_lifecycle_post([(subscription_id, secret, "reauthorizationRequired")]))
    for sent in world.held.take():  # late: about the old subscription
        world.service.held_graph_notifications(sent.message)
    again = world.profiles.get(member.partition_key, KIND).entity  # type: ignore[union-attr]
    assert (again.subscription_id, again.client_state) == (replaced.subscription_id, replaced.client_state)


def test_a_tenant_wide_reauthorization_of_150_subscriptions_in_one_post_reaches_every_one(world: OrgWorld) -> None:
    members = world.syncing(150)
    subscriptions = _subscribed(world, members)
    world.reset()
    assert world.service.graph_lifecycle(_lifecycle_post([(sid, secret, "missed") for sid, secret in subscriptions])) == 100
    assert world.counts["table"] <= LOOKED_UP_WHILE_GRAPH_WAITS  # the webhook read the first 100 routes, no more
    for sent in world.held.take():
        world.service.held_graph_notifications(sent.message)
    assert sorted(s.member for s in world.steps()) == sorted(m.partition_key for m in members)


def test_a_lifecycle_notification_that_fails_leaves_the_others_done_and_its_message_to_come_again(
        world: OrgWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    members = world.syncing(3)
    subscriptions = _subscribed(world, members)
    world.reset()
    world.service.graph_lifecycle(_lifecycle_post([(sid, secret, "missed") for sid, secret in subscriptions]))
    [held] = [sent.message for sent in world.held.take()]
    real = world.service.webhooks.request_delta

    def request_delta(member_key: str, *args: Any, **kwargs: Any) -> bool:
        if member_key == members[1].partition_key:
            raise RuntimeError("Table Storage unavailable")
        return real(member_key, *args, **kwargs)

    monkeypatch.setattr(world.service.webhooks, "request_delta", request_delta)
    with pytest.raises(RuntimeError):
        world.service.held_graph_notifications(held)
    assert sorted(s.member for s in world.steps()) == sorted([members[0].partition_key, members[2].partition_key])


def test_a_posts_lookups_run_several_at_once(world: OrgWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """Graph wants the answer within 3 s; in Azure each lookup is a few Table requests of ~10 ms."""
    members = world.syncing(80)
    subscriptions = _subscribed(world, members)
    slow_get = world.routes.get

    def get(*args: Any) -> Any:
        time.sleep(0.02)
        return slow_get(*args)

    monkeypatch.setattr(world.routes, "get", get)
    world.reset()
    began = time.monotonic()
    assert world.service.graph_notifications(_graph_post(subscriptions)) == 80
    assert time.monotonic() - began < 80 * 0.02 / 3  # one at a time took 1.6 s


# -- renewal and migration -------------------------------------------------------------------------

def test_renewal_renews_one_channel_per_org(world: OrgWorld) -> None:
    world.syncing(30)
    before = world.channel().expires_at
    world.clock.advance(timedelta(days=6, hours=12))
    world.channels.calls = 0
    world.service.renew_all()
    assert world.channels.calls == 1
    assert world.channel().expires_at > before  # type: ignore[operator]


def test_a_members_own_channel_is_moved_onto_the_orgs(world: OrgWorld) -> None:
    """A member enabled before issue 20 has a channel of their own: callbacks on it still reach
    them, and the renewal timer moves them onto their org's channel and disables theirs."""
    [other] = world.syncing(1)
    old = world.member(9)
    own = world.channels.enable("Contacts", "https://sync.example/api/webhooks/crm", channel_id="900000000000000001", token="t" * 43)
    world.routes.upsert(WebhookRoute(partition_key=f"crm|{own.channel_id}", row_key="hook", member=old.partition_key,
                                     kind=KIND.value, secret=own.token))
    world.profiles.create_or_get(SyncProfile(
        partition_key=old.partition_key, row_key=KIND.value, tenant_id=old.tenant_id, object_id=old.object_id,
        state=SyncState.ACTIVE, generation="g9", subscription_id="sub-9", channel_id=own.channel_id,
        channel_token=own.token, channel_expires=own.expires_at))
    world.reset()
    world.service.crm_callback(json.dumps({"channel_id": own.channel_id, "module": "Contacts", "operation": "update",
                                           "ids": ["1"], "token": own.token}).encode())
    assert [s.member for s in world.steps()] == [old.partition_key]  # the old channel still works
    world.service.renew_all()
    assert own.channel_id not in world.channels.channels and len(world.channels.channels) == 1
    assert world.routes.get(f"crm|{own.channel_id}", "hook") is None
    assert world.profiles.get(old.partition_key, KIND).entity.channel_id is None  # type: ignore[union-attr]
    assert world.service.org_channels.member_for(ORG, KIND, old.user_id) == old.partition_key
    assert other.partition_key in world.service.org_channels.members(ORG, KIND)


# -- the safety sweep --------------------------------------------------------------------------------

def test_an_idle_tick_costs_under_one_table_transaction_and_no_crm_call_per_member(world: OrgWorld) -> None:
    members = world.syncing(400)
    world.syncing(100, org="org-2")
    world.clock.advance(timedelta(hours=3))
    world.reset()
    world.service.sweep_tick()
    assert world.steps() == [] and world.changes.sent == []
    assert world.counts["crm"] == 0
    assert world.counts["table"] / (len(members) + 100) <= 1
    # What the old tick did: a step for every member (each about 7 Table transactions, 1 Graph and 2 CRM calls).
    world.service.sweep()
    assert len(world.steps()) == 500


def test_a_member_whose_webhooks_are_not_known_healthy_gets_a_step_every_tick(world: OrgWorld) -> None:
    healthy, lapsed = world.syncing(2)
    world.profiles.update(lapsed.partition_key, KIND, lambda p: p.model_copy(update={"subscription_expires": world.clock.now()}))
    world.clock.advance(timedelta(minutes=5))
    world.reset()
    world.service.sweep_tick()
    assert [(s.member, s.reason) for s in world.steps()] == [(lapsed.partition_key, StepReason.SWEEP)]


def test_each_member_gets_a_full_round_a_day_spread_over_the_ticks(world: OrgWorld) -> None:
    members = world.syncing(600)  # enabled together: their rounds must not all come in one tick
    world.clock.advance(timedelta(days=1))
    seen: dict[str, int] = {}
    for _ in range(288):  # a day of ticks
        world.reset()
        world.service.sweep_tick()
        steps = world.steps()
        assert len(steps) <= 2 * -(-600 // 288)  # a tick's share (twice the even one), never the whole org
        for step in steps:
            seen[step.member] = seen.get(step.member, 0) + 1
        assert world.counts["crm"] == 0
        world.clock.advance(timedelta(minutes=5))
    assert sorted(seen) == sorted(m.partition_key for m in members)  # everyone within the day ...
    assert set(seen.values()) == {1}  # ... once


def test_a_lapsed_channel_is_made_live_and_the_orgs_changes_meanwhile_reach_their_owners(world: OrgWorld) -> None:
    a, b, c = world.syncing(3)
    world.clock.advance(timedelta(days=8))  # the channel expired (no renewal ran)
    world.channels.channels.clear()  # and the CRM forgot it
    world.crm.change("5000000000001", b.user_id)
    world.crm.delete("5000000000002")
    world.links.crm_ids[f"{c.partition_key}|{KIND.value}|g2"] = {"5000000000002"}
    for member in (a, b, c):  # their subscriptions were renewed meanwhile
        world.profiles.update(member.partition_key, KIND, lambda p: p.model_copy(update={
            "subscription_expires": world.clock.now() + timedelta(days=2), "swept_at": world.clock.now()}))
    world.reset()
    world.service.sweep_tick()
    assert len(world.channels.channels) == 1 and world.channel().expires_at > world.clock.now()  # type: ignore[operator]
    assert world.counts["crm"] == 2  # the org's changes and its deleted list, once for the org
    assert [(s.member, s.reason) for s in world.steps()] == [(b.partition_key, StepReason.SWEEP)]  # the changed record's owner
    # The deletions go through the queue (every member is asked about them: too much for the timer in a big org).
    assert [(sent.message.operation, sent.message.ids) for sent in world.changes.sent] == [("delete", ["5000000000002"])]
    world.route_queued_changes()
    assert [s.member for s in world.steps()] == [c.partition_key]


def test_a_lapsed_channels_thousands_of_deletions_are_queued_100_a_message_not_routed_by_the_timer(world: OrgWorld) -> None:
    world.syncing(2)
    world.clock.advance(timedelta(days=8))
    for n in range(2500):
        world.crm.delete(str(5_000_000_010_000 + n))
    world.reset()
    world.service.sweep_tick()
    assert [len(sent.message.ids) for sent in world.changes.sent] == [100] * 25
    assert world.counts["table"] < 50  # the timer asked no member about them


def test_an_initial_sync_waiting_out_its_mailbox_s_window_is_no_stall_until_it_was_due_back(world: OrgWorld) -> None:
    """A step that stopped for the mailbox's spent window (Graph's 10,000 requests per 10
    minutes) queued the next one up to 10 minutes later: the sweep adds none meanwhile (it did
    in bench initial-contacts at 10,000: two more executions); a sync not back 5 minutes after
    it was due gets one."""
    [waiting] = world.syncing(1)
    now = world.clock.now()
    world.profiles.update(waiting.partition_key, KIND, lambda p: p.model_copy(update={
        "state": SyncState.INITIAL, "last_sync_at": now, "swept_at": now, "initial_resume_at": now + timedelta(minutes=8)}))
    world.clock.advance(timedelta(minutes=12))
    world.reset()
    world.service.sweep_tick()
    assert world.steps() == []
    world.clock.advance(timedelta(minutes=2))  # 6 minutes past when it was due
    world.reset()
    world.service.sweep_tick()
    assert [(s.member, s.reason) for s in world.steps()] == [(waiting.partition_key, StepReason.STALLED)]


def test_an_initial_sync_whose_step_died_holding_the_lease_gets_a_step_at_the_next_tick(world: OrgWorld) -> None:
    """The instance running a step was killed: the messages it had taken stay invisible for up
    to 10 minutes, so the sweep gives the sync a step as soon as the lease lapses, not 5
    minutes after its last progress. A live lease or recent progress gets none."""
    died, running, fresh, idle = world.syncing(4)
    now = world.clock.now()
    for member, fields in ((died, {"lease_owner": "message-1|x", "lease_until": now + timedelta(minutes=1)}),
                           (running, {"lease_owner": "message-2|x", "lease_until": now + timedelta(minutes=6)}),
                           (fresh, {}), (idle, {})):
        world.profiles.update(member.partition_key, KIND, lambda p, f=fields: p.model_copy(update={  # type: ignore[misc]
            "state": SyncState.INITIAL, "last_sync_at": now, "swept_at": now, **f}))
    world.clock.advance(timedelta(minutes=2))
    world.reset()
    world.service.sweep_tick()
    assert [(s.member, s.step, s.reason) for s in world.steps()] == [(died.partition_key, "initial", StepReason.STALLED)]
    world.profiles.update(idle.partition_key, KIND, lambda p: p.model_copy(update={"last_sync_at": now - timedelta(minutes=4)}))
    world.clock.advance(timedelta(minutes=5))  # the running step lost its lease too; nobody moved for 7 minutes
    world.reset()
    world.service.sweep_tick()
    assert sorted(s.member for s in world.steps()) == sorted(m.partition_key for m in (died, running, fresh, idle))


def test_a_member_with_writes_to_retry_gets_a_step_every_tick_until_a_round_ends_clean(world: OrgWorld) -> None:
    """Its retry message may be lost (storage restarted): the tick is the safety net."""
    clean, retrying = world.syncing(2)
    world.profiles.update(retrying.partition_key, KIND, lambda p: p.model_copy(update={"retries": 2}))
    for member in (clean, retrying):
        world.profiles.update(member.partition_key, KIND, lambda p: p.model_copy(update={"swept_at": world.clock.now()}))
    world.clock.advance(timedelta(minutes=5))
    world.reset()
    world.service.sweep_tick()
    assert [(s.member, s.reason) for s in world.steps()] == [(retrying.partition_key, StepReason.SWEEP)]


def test_a_webhook_step_queued_a_tick_ago_and_never_run_is_queued_again_by_the_tick(world: OrgWorld) -> None:
    """Its message may be lost; a mark younger than a tick, or under a live lease, is left alone."""
    lost, recent, running = world.syncing(3)
    now = world.clock.now()
    for member, fields in ((lost, {"delta_queued_at": now}),
                           (recent, {"delta_queued_at": now + timedelta(minutes=4)}),
                           (running, {"delta_queued_at": now, "lease_owner": "m|x", "lease_until": now + timedelta(minutes=9)})):
        world.profiles.update(member.partition_key, KIND, lambda p, f=fields: p.model_copy(update={  # type: ignore[misc]
            "delta_queued": True, "swept_at": now, **f}))
    world.clock.advance(timedelta(minutes=6))
    world.reset()
    world.service.sweep_tick()
    assert [(s.member, s.reason) for s in world.steps()] == [(lost.partition_key, StepReason.SWEEP)]


def test_a_single_members_echo_is_told_from_the_orgs_index_without_reading_their_profile(world: OrgWorld, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The index row names the links of the member's Enable (written as it joins), so the echo
    of our own write costs the index query and the links; a real change still reads the profile."""
    [member] = world.syncing(1)
    partition = f"{member.partition_key}|{KIND.value}|g0"
    world.service.org_channels.join(world.member(0), KIND, links_partition=partition)
    world.links.synced[partition] = [LinkRow(
        link_id="a", state=LinkState.SYNCED, crm_id="5000000000001", outlook_id="o1", crm_version="v",
        outlook_version="k", crm_sent=sent_digests({"id": "5000000000001", "Title": "Chef"}))]
    profile_reads = []
    get = world.profiles.get
    monkeypatch.setattr(world.profiles, "get", lambda *a, **k: profile_reads.append(a) or get(*a, **k))
    world.reset()
    world.callback("update", ["5000000000001"], values={"Title": "Chef"})
    assert world.steps() == [] and profile_reads == []
    world.callback("update", ["5000000000001"], values={"Title": "Sous-chef"})
    assert [s.member for s in world.steps()] == [member.partition_key] and len(profile_reads) == 1


def test_enable_names_its_links_on_the_orgs_index_and_enable_again_names_the_new_ones(world: OrgWorld) -> None:
    member = world.member(0)
    first = world.service.enable(member, KIND)
    [row] = world.service.org_channels.member_rows(ORG, KIND)
    assert row.member == member.partition_key and row.links_partition == first.links_partition
    world.service.enable(member, KIND)  # twice: nothing changes
    assert [r.links_partition for r in world.service.org_channels.member_rows(ORG, KIND)] == [first.links_partition]
    world.service.disable(member, KIND)
    assert world.service.org_channels.member_rows(ORG, KIND) == []
    again = world.service.enable(member, KIND)  # a new generation: the old links are never named again
    assert again.links_partition != first.links_partition
    assert [r.links_partition for r in world.service.org_channels.member_rows(ORG, KIND)] == [again.links_partition]
