"""Nothing lost, nothing duplicated (issue 7, issue 8; non-negotiable 4), with the Functions
host as its own process: killed with SIGKILL mid-initial-sync and started again; every
queue message handled twice and out of order; Graph and the CRM throttling (429 storms).
Each ends with both sides holding exactly the expected records."""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from emulators.crm.server import start as start_crm
from emulators.m365.server import start as start_m365
from shared.accounts.models import MemberIdentity
from shared.crm.records import ListQuery
from shared.graph.container import ItemDraft
from shared.graph.errors import GraphError
from shared.sync import ConflictPolicy, Create, SideChanges, plan
from shared.sync.jobs import SYNC_QUEUES
from shared.sync.profiles import LeaseHeld, SyncKind, SyncState
from shared.wiring import get_services
from tests.host_log import NOTEWORTHY
from tests.integration.host_process import HostProcess
from tests.integration.sync_setup import (
    SECRET_OR_BULKY,
    crm_control,
    crm_records,
    linked_member,
    outlook_items,
    profile,
    release_held_lease,
    wait_until,
)
from tests.product_stack import ROOT, ProductStack, product_environment

ADELE = "adele@contoso.test"
CONTAINER = {SyncKind.CALENDAR: "Zoho CRM", SyncKind.CONTACTS: "Zoho CRM Contacts"}
MODULE = {SyncKind.CALENDAR: "Events", SyncKind.CONTACTS: "Contacts"}
VISIBILITY_SECONDS = "5"  # how soon a killed host's messages are delivered again


@pytest.fixture(scope="module")
def emulators(azurite, tmp_path_factory) -> Iterator[tuple[Any, Any, dict[str, str]]]:  # type: ignore[no-untyped-def]
    m365 = start_m365(port=0, seed=ROOT / "emulators/m365/seed/demo.json", state_dir=tmp_path_factory.mktemp("m365"))
    crm = start_crm(port=0, seed=ROOT / "emulators/crm/seed/demo.json")
    patch = pytest.MonkeyPatch()
    env = product_environment(m365, crm)
    for name, value in env.items():
        patch.setenv(name, value)
    try:
        yield m365, crm, env
    finally:
        crm.stop()
        m365.stop()
        patch.undo()


def host_stack(emulators, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> Iterator[ProductStack]:  # type: ignore[no-untyped-def]
    m365, crm, base_env = emulators
    prefix = f"t{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("TABLE_PREFIX", prefix)
    host = HostProcess({**base_env, "TABLE_PREFIX": prefix, "LOCAL_QUEUE_RECEIVE_VISIBILITY_SECONDS": VISIBILITY_SECONDS, **env},
                       tmp_path / "host.log")
    monkeypatch.setenv("PUBLIC_BASE_URL", host.url)
    stack = ProductStack(m365, crm, host)  # type: ignore[arg-type]
    stack.reset()
    _empty_work_queues(base_env)
    try:
        host.start()
        yield stack
    finally:
        host.stop()


def _empty_work_queues(env: dict[str, str]) -> None:
    """Azurite lives for the whole session and the demo member's key is the same in every
    test: an earlier test's late messages (deferred steps, retries) would be this test's host's
    work, acting on this test's member."""
    connection = get_services().settings.storage_connection_string or env["AzureWebJobsStorage"]
    for name in (*SYNC_QUEUES, "mail-outbox"):
        with contextlib.suppress(ResourceNotFoundError):
            QueueClient.from_connection_string(connection, name).clear_messages()


@pytest.fixture
def stack(emulators, tmp_path, monkeypatch) -> Iterator[ProductStack]:  # type: ignore[no-untyped-def]
    yield from host_stack(emulators, tmp_path, monkeypatch)


@pytest.fixture
def twice_stack(emulators, tmp_path, monkeypatch) -> Iterator[ProductStack]:  # type: ignore[no-untyped-def]
    yield from host_stack(emulators, tmp_path, monkeypatch, LOCAL_QUEUE_DELIVERIES="2")


# --- what "exactly right" means ------------------------------------------------------------


def expected_and_actual(product: ProductStack, member: MemberIdentity, kind: SyncKind) -> tuple[Counter[Any], Counter[Any]]:
    """Both sides as comparable multisets: (title, start instant) of events, (first, last,
    e-mail) of contacts; the CRM side limited to what the member syncs."""
    records = [
        r for r in crm_records(product, member, MODULE[kind])
        if (r.get("Owner") or {}).get("id") == member.user_id and r.get("Data_Source") not in ("Import", "Migration")
    ]
    items = outlook_items(product, ADELE, CONTAINER[kind])
    if kind is SyncKind.CALENDAR:
        crm = Counter((r["Event_Title"], _utc(r["Start_DateTime"])) for r in records)
        outlook = Counter((e["subject"], _utc(e["start"]["dateTime"], e["start"].get("timeZone"))) for e in items)
    else:
        crm = Counter((r.get("First_Name"), r.get("Last_Name"), r.get("Email")) for r in records)
        outlook = Counter(
            (c.get("givenName"), c.get("surname"), ((c.get("emailAddresses") or [{}])[0] or {}).get("address"))
            for c in items
        )
    return crm, outlook


def _utc(text: str, zone: str | None = None) -> str:
    instant = datetime.fromisoformat(text[:26] if zone else text)
    if instant.tzinfo is None:
        assert zone in (None, "UTC"), f"unexpected time zone {zone}"
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def assert_mirrors(product: ProductStack, member: MemberIdentity, kind: SyncKind, count: int) -> None:
    crm, outlook = expected_and_actual(product, member, kind)
    assert sum(crm.values()) == count, f"CRM holds {sum(crm.values())} records, expected {count}"
    assert max(crm.values()) == 1, "a record duplicated in the CRM"
    assert max(outlook.values()) == 1, f"duplicated in Outlook: {[k for k, v in outlook.items() if v > 1][:3]}"
    assert outlook == crm, f"only in CRM: {list(crm - outlook)[:3]}; only in Outlook: {list(outlook - crm)[:3]}"


def settle(product: ProductStack, member: MemberIdentity, kind: SyncKind, count: int, timeout: float = 240) -> None:
    """Wait for two-way sync, then for both sides to agree and stay agreed."""
    wait_until(lambda: profile(member, kind).state is SyncState.ACTIVE, timeout=timeout, what="the initial sync")

    def agreed() -> bool:
        crm, outlook = expected_and_actual(product, member, kind)
        return crm == outlook and sum(crm.values()) == count

    try:
        wait_until(agreed, timeout=timeout, what="both sides to agree")
    except AssertionError as failure:
        # What differs, then what the host saw (CI keeps no host log): the member's sync state
        # and the host's warnings and errors.
        try:
            assert_mirrors(product, member, kind, count)
        except AssertionError as differs:
            raise AssertionError(f"{differs}\n{_diagnosis(product, member, kind)}") from failure
        raise AssertionError(f"{failure}\n{_diagnosis(product, member, kind)}") from None
    time.sleep(3)  # late redeliveries and echoes must change nothing
    assert_mirrors(product, member, kind, count)


def _diagnosis(product: ProductStack, member: MemberIdentity, kind: SyncKind) -> str:
    state = profile(member, kind).model_dump(exclude=SECRET_OR_BULKY)
    lines: list[str] = []
    log_path = getattr(product.host, "log_path", None)
    if log_path is not None and Path(log_path).exists():
        text = Path(log_path).read_text(encoding="utf-8", errors="replace").splitlines()
        lines = [line[:300] for line in text if NOTEWORTHY.search(line)][-80:]
    return "profile: " + repr(state) + "\nhost log (warnings, errors, lease hand-offs):\n" + "\n".join(lines)


def generate(product: ProductStack, kind: SyncKind, count: int) -> None:
    crm_control(product, "actions/generate", {"actor": ADELE, "module": MODULE[kind], "count": count})


# --- crashes --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [SyncKind.CALENDAR, SyncKind.CONTACTS])
def test_host_killed_three_times_mid_initial_sync_ends_exact(stack: ProductStack, kind: SyncKind) -> None:
    member = linked_member(stack)
    generate(stack, kind, 700)
    get_services().sync.enable(member, kind)
    chance = random.Random(f"crash-{kind}")
    host: HostProcess = stack.host  # type: ignore[assignment]
    for _ in range(3):
        time.sleep(chance.uniform(1.0, 4.0))
        host.kill()
        host.start()
    assert host.kills == 3
    settle(stack, member, kind, 700)


@pytest.mark.parametrize("kind", [SyncKind.CALENDAR, SyncKind.CONTACTS])
def test_a_step_that_died_between_its_outlook_creates_and_its_link_rows_duplicates_nothing(
    stack: ProductStack, kind: SyncKind
) -> None:
    """The leftovers of a step that stopped half-way (host killed, CRM authorisation lost):
    pending rows and the Outlook copies it made, which Graph's delta then reports without our
    marker. The next round adopts those copies: none comes back into the CRM as new."""
    member = linked_member(stack)
    generate(stack, kind, 20)
    services = get_services()
    services.sync.enable(member, kind)
    settle(stack, member, kind, 20)
    key = member.partition_key

    def hold() -> str | None:
        try:
            return services.sync_profiles.acquire(key, kind, holder="dying-step")[2]
        except LeaseHeld:
            return None

    owner = wait_until(hold, what="the member's lease")
    since = datetime.now(UTC) - timedelta(seconds=2)
    from tests.reliability.scenario import crm_create  # (that module builds on this one)

    crm_create(stack, kind, "Orphan", 3)  # the CRM's webhooks queue steps: they wait for the lease
    # The dying step: it read the CRM's changes, planned, wrote its pending rows, created in Outlook ...
    ctx = services.sync._context(services.sync.member(key), kind)
    a = ctx.rules
    query = ListQuery(module=a.crm_module, fields=a.crm_fields, owner_id=member.user_id, modified_since=since)  # type: ignore[arg-type]
    label = "Event_Title" if kind is SyncKind.CALENDAR else "First_Name"
    seen = [a.crm_to_seen(r) for r in ctx.records.changed_since(query) if str(r.get(label)).startswith("Orphan")]
    result = plan([], SideChanges(seen=tuple(seen)), SideChanges(), now=datetime.now(UTC),
                  policy=ConflictPolicy.MOST_RECENT, normalisation=a.normalisation)
    creates = [c for c in result.actions if isinstance(c, Create)]
    assert len(creates) == 3
    services.sync_links.write(profile(member, kind).links_partition, [(None, c.pending) for c in creates])
    container = profile(member, kind).container_id or ""
    made = ctx.outlook.create_items(container, [  # as the executor writes them: markers of this generation
        ItemDraft(crm_id=a.marker_for(c.marker), fields=a.to_outlook(c.fields, None),
                  transaction_id=a.marker_for(c.transaction_key or "")) for c in creates])
    assert all(not isinstance(item, GraphError) for item in made)
    # ... and died before writing its link rows: its lease is released, the next round runs.
    release_held_lease(key, kind, owner)
    services.sync.sweep()  # what the webhooks queued meanwhile was left to the lease's holder: a round now
    settle(stack, member, kind, 23)


# --- redelivery -----------------------------------------------------------------------------


def test_every_message_handled_twice_out_of_order_changes_nothing(twice_stack: ProductStack) -> None:
    product, kind = twice_stack, SyncKind.CONTACTS
    member = linked_member(product)
    generate(product, kind, 300)
    get_services().sync.enable(member, kind)
    settle(product, member, kind, 300)
    # Ongoing changes on both sides, every step of them handled twice.
    folder = profile(member, kind).container_id
    for n in range(5):
        product.m365_control("POST", f"mailbox/{ADELE}/contactFolders/{folder}/contacts", json={
            "givenName": f"Olga{n}", "surname": "Outlook", "emailAddresses": [{"address": f"olga{n}@outlook.example", "name": "O"}]})
    records = sorted(crm_records(product, member, "Contacts"), key=lambda r: r["id"])
    crm_control(product, "actions/mass-update", {"actor": ADELE, "module": "Contacts", "ids": [r["id"] for r in records[:5]],
                                                 "values": {"Last_Name": "Renamed"}})
    last_three = {r["Last_Name"] for r in records[-3:]}  # none of them renamed (a rename and a deletion would conflict)
    doomed = [c["id"] for c in outlook_items(product, ADELE, CONTAINER[kind]) if c.get("surname") in last_three]
    assert len(doomed) == 3
    product.m365_control("POST", f"mailbox/{ADELE}/contacts/delete", json={"ids": doomed})
    settle(product, member, kind, 300 + 5 - 3, timeout=120)
    _, outlook = expected_and_actual(product, member, kind)
    assert sum(1 for key in outlook if key[1] == "Renamed") == 5


# --- throttling -----------------------------------------------------------------------------


def test_a_429_storm_on_both_sides_delays_but_loses_nothing(stack: ProductStack) -> None:
    product, kind = stack, SyncKind.CALENDAR
    member = linked_member(product)
    generate(product, kind, 300)
    # The storm starts right after the member's click (whose own few calls it could fail: the
    # page says so); the initial sync, queued by it, runs in the storm.
    get_services().sync.enable(member, kind)
    product.m365_control("PUT", "faults", json={"rate_429": 0.3, "retry_after_seconds": 1, "rate_503": 0.02})
    requests.put(f"{product.crm.base_url}/__emulator/faults", json={"rate_429": 0.2}, timeout=10).raise_for_status()
    settle(product, member, kind, 300, timeout=300)
    # A change on each side during the storm arrives too.
    soon = datetime.now(UTC).replace(microsecond=0, second=0) + timedelta(days=1)
    crm_control(product, "actions/create", {"actor": ADELE, "module": "Events", "record": {
        "Event_Title": "Storm CRM", "Start_DateTime": soon.isoformat(), "End_DateTime": (soon + timedelta(hours=1)).isoformat(), "All_day": False}})
    product.m365_control("POST", f"mailbox/{ADELE}/calendars/{profile(member, kind).container_id}/events", json={
        "subject": "Storm Outlook", "start": {"dateTime": (soon + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": (soon + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}})
    settle(product, member, kind, 302, timeout=300)
    counters = product.m365_control("GET", "counters")
    assert counters["totals"]["throttled429"] > 0  # the storm did happen


def test_every_calendar_message_handled_twice_out_of_order_changes_nothing(twice_stack: ProductStack) -> None:
    product, kind = twice_stack, SyncKind.CALENDAR
    member = linked_member(product)
    generate(product, kind, 300)
    get_services().sync.enable(member, kind)
    settle(product, member, kind, 300)
    calendar_id = profile(member, kind).container_id
    soon = datetime.now(UTC).replace(microsecond=0, second=0) + timedelta(days=2)
    for n in range(4):
        start = soon + timedelta(hours=n)
        product.m365_control("POST", f"mailbox/{ADELE}/calendars/{calendar_id}/events", json={
            "subject": f"Outlook {n}", "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "end": {"dateTime": (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}})
    records = sorted(crm_records(product, member, "Events"), key=lambda r: r["id"])
    crm_control(product, "actions/mass-update", {"actor": ADELE, "module": "Events", "ids": [r["id"] for r in records[:4]],
                                                 "values": {"Event_Title": "Renamed"}})
    last_three = {r["Event_Title"] for r in records[-3:]}  # none of them renamed
    doomed = [e["id"] for e in outlook_items(product, ADELE, CONTAINER[kind]) if e.get("subject") in last_three]
    assert len(doomed) == 3
    product.m365_control("POST", f"mailbox/{ADELE}/events/delete", json={"ids": doomed})
    settle(product, member, kind, 300 + 4 - 3, timeout=120)
    crm, _ = expected_and_actual(product, member, kind)
    assert sum(1 for key in crm if key[0] == "Renamed") == 4
