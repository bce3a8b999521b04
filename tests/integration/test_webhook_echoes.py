"""Our own writes' echoes (issue 20, a steady change's cost; ``shared.sync.echoes``): a Graph notification naming only
items at the version our last write left is dropped at the webhook, with one read of the
profile and one query of the links and no step; anything else queues a step as before."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from azure.data.tables import TableServiceClient

from shared.storage import TableRepository
from shared.sync.echoes import crm_items, merged, sent_digests
from shared.sync.jobs import StepReason, SyncJob
from shared.sync.link_store import LinkEntity, LinkStore
from shared.sync.links import LinkRow, LinkState
from shared.sync.profiles import ProfileStore, SyncKind, SyncProfile, SyncState
from shared.sync.runner import StepContext, SyncRunner, already_covered
from shared.sync.service import SyncService
from shared.sync.webhook_routes import WebhookRoute

MEMBER = "ms|tenant|member"
SUBSCRIPTION = str(uuid.uuid4())
SECRET = "client-state-of-the-member"


class _RecordedQueue:
    def __init__(self) -> None:
        self.sent: list[SyncJob] = []

    def send(self, job: SyncJob, delay: object = None) -> None:
        self.sent.append(job)


@pytest.fixture
def world(azurite, unique_name):  # type: ignore[no-untyped-def]
    service = TableServiceClient.from_connection_string(azurite.connection_string)

    def table(name: str, model: type) -> TableRepository:  # type: ignore[type-arg]
        repository = TableRepository(service, unique_name(name), model)
        repository.ensure_table()
        return repository

    profiles = ProfileStore(table("profiles", SyncProfile))
    stored = profiles.create_or_get(SyncProfile(partition_key=MEMBER, row_key=SyncKind.CONTACTS.value, tenant_id="t",
                                                object_id="o"))
    profiles.save(stored.entity.model_copy(update={"state": SyncState.ACTIVE}), stored.etag)
    links = LinkStore(table("links", LinkEntity))
    partition = profiles.get(MEMBER, SyncKind.CONTACTS).entity.links_partition  # type: ignore[union-attr]
    links.write(partition, [(None, LinkRow(link_id="a", state=LinkState.SYNCED, crm_id="c1", outlook_id="o1",
                                           crm_version="2026-12-06T00:00:00+00:00", outlook_version="K1"))])
    routes = table("routes", WebhookRoute)
    routes.upsert(WebhookRoute(partition_key=f"graph|{SUBSCRIPTION}", row_key="hook", member=MEMBER,
                               kind=SyncKind.CONTACTS.value, secret=SECRET))  # a route made before it named its links
    queue = _RecordedQueue()
    dependencies = SimpleNamespace(profiles=profiles, links=links, conflicts=None, ledger=None, jobs=queue, routes=routes,
                                   clock=lambda: datetime.now(UTC), initial_page_size=99, org_channels=None,
                                   org_members=None, crm_changes=None, crm_channels=None, holder_filters=None,
                                   public_base_url="https://sync.example")
    return SimpleNamespace(service=SyncService(dependencies), queue=queue, profiles=profiles, links=links,  # type: ignore[arg-type]
                           routes=routes, partition=partition)


def post(*entries: tuple[str, str, str | None], client_state: str = SECRET) -> bytes:
    """A notification POST: (changeType, item id, changeKey or None) per entry."""
    return json.dumps({"value": [
        {"subscriptionId": SUBSCRIPTION, "changeType": change, "clientState": client_state,
         "resource": f"Users/o/contacts/{item}", "tenantId": "t",
         "resourceData": {"id": item, **({"@odata.etag": f'W/"{key}"'} if key else {})}}
        for change, item, key in entries]}).encode()


def test_the_echo_of_our_own_write_queues_nothing(world) -> None:  # type: ignore[no-untyped-def]
    assert world.service.graph_notifications(post(("updated", "o1", "K1"), ("updated", "o1", "K1"))) == 0
    assert world.queue.sent == []
    assert not world.profiles.get(MEMBER, SyncKind.CONTACTS).entity.delta_queued  # not even the mark is written


@pytest.mark.parametrize("entries", [
    [("updated", "o1", "K2")],                          # a newer version: someone edited after us
    [("updated", "o1", "K1"), ("updated", "o2", "X")],   # one echo, one item we never linked
    [("created", "o9", "K9")],                           # a new item
    [("deleted", "o1", "K1")],                           # a deletion is never an echo
    [("updated", "o1", None)],                           # no version to compare
    [("updated", "o1", "K1")] * 13,                      # more items than we look at
], ids=["newer", "mixed", "created", "deleted", "no-etag", "too-many"])
def test_anything_but_an_echo_queues_one_step(world, entries) -> None:  # type: ignore[no-untyped-def]
    assert world.service.graph_notifications(post(*entries)) == 1
    assert [job.step for job in world.queue.sent] == ["delta"]


def _counting(world, monkeypatch) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Counts the profile reads and links queries the webhook makes (each a Table transaction)."""
    counts = {"profile": 0, "links": 0}
    get, load = world.profiles.get, world.links.load

    def counted_get(*args, **kwargs):  # type: ignore[no-untyped-def]
        counts["profile"] += 1
        return get(*args, **kwargs)

    def counted_load(*args, **kwargs):  # type: ignore[no-untyped-def]
        counts["links"] += 1
        return load(*args, **kwargs)

    monkeypatch.setattr(world.profiles, "get", counted_get)
    monkeypatch.setattr(world.links, "load", counted_load)
    return counts


def _route_naming(world, partition: str) -> None:  # type: ignore[no-untyped-def]
    world.routes.upsert(WebhookRoute(partition_key=f"graph|{SUBSCRIPTION}", row_key="hook", member=MEMBER,
                                     kind=SyncKind.CONTACTS.value, secret=SECRET, links_partition=partition))


def test_a_route_naming_its_enables_links_drops_the_echo_without_reading_the_profile(world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _route_naming(world, world.partition)
    counts = _counting(world, monkeypatch)
    assert world.service.graph_notifications(post(("updated", "o1", "K1"))) == 0
    assert counts == {"profile": 0, "links": 1} and world.queue.sent == []
    assert world.service.graph_notifications(post(("updated", "o1", "K2"))) == 1  # someone's edit after ours
    assert counts == {"profile": 1, "links": 2}  # the links are not asked twice
    assert len(world.queue.sent) == 1


def test_a_route_of_an_earlier_enable_vouches_for_nothing_of_this_one(world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A late notification of a subscription whose Enable was replaced: its links are gone, so
    the member's own (this Enable's) are asked, as without a route naming any."""
    _route_naming(world, f"{world.partition}-an-earlier-generation")
    counts = _counting(world, monkeypatch)
    assert world.service.graph_notifications(post(("updated", "o1", "K1"))) == 0  # this Enable's echo, all the same
    assert counts == {"profile": 1, "links": 2}
    assert world.service.graph_notifications(post(("updated", "o1", "K2"))) == 1
    assert len(world.queue.sent) == 1


def test_a_forged_notification_is_refused_before_any_lookup(world) -> None:  # type: ignore[no-untyped-def]
    assert world.service.graph_notifications(post(("updated", "o1", "K2"), client_state="guessed")) == 0
    assert world.queue.sent == []


def test_a_hostile_entry_cannot_smuggle_the_items_it_names(world) -> None:  # type: ignore[no-untyped-def]
    """``item_changes`` comes from the screening, never from the wire: an entry naming a
    newer version while carrying its own 'itemChanges' list of echoes still queues a step."""
    body = json.loads(post(("updated", "o1", "K2")))
    body["value"][0]["itemChanges"] = [{"changeType": "updated", "itemId": "o1", "changeKey": "K1"}]
    assert world.service.graph_notifications(json.dumps(body).encode()) == 1


# --- the echo that arrives while the writing step still runs ----------------------------------

class _WritingRunner(SyncRunner):
    """A delta step that writes item o1 (Outlook answers changeKey K2), meets the echo's
    webhook before its rows are saved, then saves them (what the product's executor does)."""

    def __init__(self, world, echo: tuple[str, str, str | None]) -> None:  # type: ignore[no-untyped-def]
        super().__init__(world.profiles, world.links, conflicts=None)  # type: ignore[arg-type]
        self.world, self.echo = world, echo

    def _delta_step(self, profile, ctx, **options):  # type: ignore[no-untyped-def,override]
        self.world.service.graph_notifications(post(self.echo))  # before the rows: not an echo yet
        partition = profile.links_partition
        self.world.links.write(partition, [(None, LinkRow(link_id="a", state=LinkState.SYNCED, crm_id="c1",
                                                          outlook_id="o1", crm_version="v", outlook_version="K2"))])
        return profile


def _step(world, echo) -> list[SyncJob]:  # type: ignore[no-untyped-def]
    """The step's run; returns what it queued as it ended."""
    queued: list[SyncJob] = []
    ctx = StepContext(rules=None, outlook=None, records=None, enqueue=lambda job, delay: queued.append(job))  # type: ignore[arg-type]
    _WritingRunner(world, echo).run(SyncJob(member=MEMBER, kind=SyncKind.CONTACTS, step="delta", reason="sweep"), ctx,
                                     delivery="running-step")
    return queued


def test_an_echo_met_before_the_rows_were_saved_costs_no_step(world) -> None:  # type: ignore[no-untyped-def]
    """The webhook finds the lease held: it leaves its mark to the holder and queues nothing;
    the holder, ending, finds the mark its own echo and clears it (issue 20: no step for it)."""
    assert _step(world, ("updated", "o1", "K2")) == []
    assert world.queue.sent == []
    profile = world.profiles.get(MEMBER, SyncKind.CONTACTS).entity
    assert not profile.delta_queued and profile.delta_items is None and profile.lease_owner is None
    assert not profile.delta_for_holder


def test_a_change_met_while_a_step_runs_is_queued_by_that_step_as_it_ends(world) -> None:  # type: ignore[no-untyped-def]
    queued = _step(world, ("updated", "o1", "K3"))  # a version after ours: someone edited after the write
    assert world.queue.sent == []  # not by the webhook: the lease was held
    assert [(job.step, job.reason) for job in queued] == [("delta", StepReason.HELD_WEBHOOK)]
    profile = world.profiles.get(MEMBER, SyncKind.CONTACTS).entity
    assert profile.delta_queued and profile.delta_items == ["outlook|o1|K3"] and not profile.delta_for_holder
    assert not already_covered(queued[0], profile, "the-queued-step")  # it runs


def test_a_change_met_while_a_failing_step_runs_is_queued_all_the_same(world) -> None:  # type: ignore[no-untyped-def]
    class _Failing(_WritingRunner):
        def _delta_step(self, profile, ctx, **options):  # type: ignore[no-untyped-def,override]
            super()._delta_step(profile, ctx, **options)
            raise RuntimeError("the CRM kept failing")

    queued: list[SyncJob] = []
    ctx = StepContext(rules=None, outlook=None, records=None, enqueue=lambda job, delay: queued.append(job))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        _Failing(world, ("updated", "o1", "K3")).run(SyncJob(member=MEMBER, kind=SyncKind.CONTACTS, step="delta",
                                                             reason="sweep"), ctx, delivery="running-step")
    assert [job.reason for job in queued] == [StepReason.HELD_WEBHOOK]


def test_a_webhook_behind_a_lapsed_lease_queues_its_own_step(world) -> None:  # type: ignore[no-untyped-def]
    """A holder that died leaves a lease that lapses: nobody would queue what it was left."""
    world.profiles.update(MEMBER, SyncKind.CONTACTS, lambda p: p.model_copy(update={
        "lease_owner": "dead-step|1", "lease_until": datetime.now(UTC) - timedelta(seconds=1)}))
    assert world.service.graph_notifications(post(("updated", "o1", "K5"))) == 1
    assert not world.profiles.get(MEMBER, SyncKind.CONTACTS).entity.delta_for_holder


def test_a_change_coalesced_into_an_echos_mark_makes_it_must_run(world) -> None:  # type: ignore[no-untyped-def]
    assert world.service.graph_notifications(post(("updated", "o1", "K9"))) == 1
    assert world.service.graph_notifications(post(("deleted", "o1", None))) == 0  # coalesced
    assert world.profiles.get(MEMBER, SyncKind.CONTACTS).entity.delta_items is None


@pytest.mark.parametrize(("marked", "named", "fresh", "expected"), [
    (None, ["outlook|a|1"], True, ["outlook|a|1"]),
    (["outlook|a|1"], None, True, None),
    (["outlook|a|1"], ["outlook|b|2"], False, ["outlook|a|1", "outlook|b|2"]),
    (None, ["outlook|b|2"], False, None),          # a must-run stays must-run
    (["outlook|a|1"], None, False, None),
    ([f"outlook|{n}|k" for n in range(12)], ["outlook|x|k"], False, None),  # too many to look at
])
def test_how_a_mark_keeps_what_webhooks_named(marked, named, fresh, expected) -> None:  # type: ignore[no-untyped-def]
    assert merged(marked, named, fresh=fresh) == expected


def test_a_webhook_step_runs_when_its_own_earlier_delivery_took_the_lease(world) -> None:  # type: ignore[no-untyped-def]
    """That delivery may have died before saving its cursors: the mark it cleared proves nothing."""
    world.profiles.acquire(MEMBER, SyncKind.CONTACTS, holder="message-7", taking=lambda p: {"delta_queued": False})
    profile = world.profiles.get(MEMBER, SyncKind.CONTACTS).entity
    job = SyncJob(member=MEMBER, kind=SyncKind.CONTACTS, step="delta", reason="graph webhook")
    assert not already_covered(job, profile, "message-7")
    assert already_covered(job, profile, "message-8")
    assert not already_covered(job.model_copy(update={"reason": "sweep"}), profile, "message-8")


# --- the CRM's callbacks: told apart by their affected values -----------------------------------

def _link_written_by_us(world, sent: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
    partition = world.profiles.get(MEMBER, SyncKind.CONTACTS).entity.links_partition
    world.links.write(partition, [(None, LinkRow(link_id="a", state=LinkState.SYNCED, crm_id="c1", outlook_id="o1",
                                                 crm_version="v", outlook_version="K1",
                                                 crm_sent=sent_digests({"id": "c1", **sent})))])


def crm_request(world, operation: str, values: dict[str, object] | None, ids: tuple[str, ...] = ("c1",)) -> bool | None:  # type: ignore[no-untyped-def]
    affected = [] if values is None else [{"record_id": i, "values": values} for i in ids]
    return world.service.webhooks.request_unless_echo(MEMBER, SyncKind.CONTACTS, StepReason.CRM_WEBHOOK,
                                                      crm_items(operation, list(ids), affected))


def test_the_crms_echo_of_our_write_queues_nothing(world) -> None:  # type: ignore[no-untyped-def]
    _link_written_by_us(world, {"Title": "Chef", "Department": "Sales", "Email": "a@b.test"})
    assert crm_request(world, "update", {"Title": "Chef"}) is None  # only what we sent changed, to what we sent
    assert crm_request(world, "update", {}) is None  # our write changed nothing
    assert crm_request(world, "insert", None) is None  # a create happens once: its link exists
    assert world.queue.sent == []


@pytest.mark.parametrize(("operation", "values", "ids"), [
    ("update", {"Title": "Sous-chef"}, ("c1",)),                    # same field, another value: someone's edit
    ("update", {"Title": "Chef", "Phone": "+33 1"}, ("c1",)),       # a field we did not send
    ("update", None, ("c1",)),                                     # no values to compare
    ("update", {"Title": "Chef"}, ("c1", "c2")),                    # one record we never linked
    ("insert", None, ("c2",)),                                     # a new record
    ("delete", None, ("c1",)),                                     # a deletion is never an echo
], ids=["other-value", "other-field", "no-values", "unlinked", "new", "deleted"])
def test_anything_but_the_crms_echo_queues_a_step(world, operation, values, ids) -> None:  # type: ignore[no-untyped-def]
    _link_written_by_us(world, {"Title": "Chef"})
    assert crm_request(world, operation, values, ids) is True
    assert len(world.queue.sent) == 1


def test_a_row_rewritten_since_our_write_no_longer_vouches_for_it(world) -> None:  # type: ignore[no-untyped-def]
    """Our write sent Title 'Chef'; someone then set 'Sous-chef' (a step synced it, rewriting
    the row), and now sets 'Chef' again: that is a change, not our echo."""
    row = LinkRow(link_id="a", state=LinkState.SYNCED, crm_id="c1", outlook_id="o1", crm_version="v",
                  outlook_version="K1", crm_sent=sent_digests({"Title": "Chef"}))
    assert row.replace(crm_version="v2").crm_sent is None
    partition = world.profiles.get(MEMBER, SyncKind.CONTACTS).entity.links_partition
    world.links.write(partition, [(None, row.replace(crm_version="v2"))])
    assert crm_request(world, "update", {"Title": "Chef"}) is True
