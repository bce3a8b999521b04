"""Our own writes' echoes (issue 20, a steady change's cost): a Graph notification naming only
items at the version our last write left is dropped at the webhook, with one read of the
profile and one query of the links and no step; anything else queues a step as before."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from azure.data.tables import TableServiceClient

from shared.storage import TableRepository
from shared.sync.jobs import SyncJob
from shared.sync.link_store import LinkEntity, LinkStore
from shared.sync.links import LinkRow, LinkState
from shared.sync.profiles import ProfileStore, SyncKind, SyncProfile, SyncState
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
                               kind=SyncKind.CONTACTS.value, secret=SECRET))
    queue = _RecordedQueue()
    dependencies = SimpleNamespace(profiles=profiles, links=links, conflicts=None, ledger=None, jobs=queue, routes=routes,
                                   clock=lambda: datetime.now(UTC), initial_page_size=99, org_channels=None,
                                   org_members=None, crm_changes=None, crm_channels=None,
                                   public_base_url="https://sync.example")
    return SimpleNamespace(service=SyncService(dependencies), queue=queue, profiles=profiles)  # type: ignore[arg-type]


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


def test_a_forged_notification_is_refused_before_any_lookup(world) -> None:  # type: ignore[no-untyped-def]
    assert world.service.graph_notifications(post(("updated", "o1", "K2"), client_state="guessed")) == 0
    assert world.queue.sent == []


def test_a_hostile_entry_cannot_smuggle_the_items_it_names(world) -> None:  # type: ignore[no-untyped-def]
    """``item_changes`` comes from the screening, never from the wire: an entry naming a
    newer version while carrying its own 'itemChanges' list of echoes still queues a step."""
    body = json.loads(post(("updated", "o1", "K2")))
    body["value"][0]["itemChanges"] = [{"changeType": "updated", "itemId": "o1", "changeKey": "K1"}]
    assert world.service.graph_notifications(json.dumps(body).encode()) == 1
