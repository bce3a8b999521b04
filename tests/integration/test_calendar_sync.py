"""Calendar sync on the local stack (Azurite, both emulators, the Functions host running the
real function_app.py): enable, the initial sync, both directions through webhooks, disable,
and the calendar deleted in Outlook (SPEC R3.1 to R3.8)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from shared.sync.profiles import SyncKind, SyncState
from shared.wiring import get_services
from tests.integration.sync_setup import (
    containers,
    crm_control,
    crm_records,
    linked_member,
    outlook_items,
    profile,
    request_counts,
    reset_request_counts,
    wait_until,
)
from tests.product_stack import ProductStack

ADELE = "adele@contoso.test"
CALENDAR = "Zoho CRM"


def crm_event(title: str, start: datetime, hours: int = 1) -> dict[str, object]:
    return {
        "Event_Title": title,
        "Start_DateTime": start.isoformat(timespec="seconds"),
        "End_DateTime": (start + timedelta(hours=hours)).isoformat(timespec="seconds"),
        "All_day": False,
    }


def subjects(product: ProductStack) -> list[str]:
    return sorted(str(e.get("subject")) for e in outlook_items(product, ADELE, CALENDAR))


def enable_and_wait(product: ProductStack, member, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    get_services().sync.enable(member, SyncKind.CALENDAR)
    wait_until(lambda: profile(member, SyncKind.CALENDAR).state is SyncState.ACTIVE, timeout=timeout,
               what="initial sync to finish")
    wait_until(lambda: profile(member, SyncKind.CALENDAR).delta_link, what="the first delta round")


def test_enable_creates_one_calendar_and_sends_own_events_but_not_imported(product: ProductStack) -> None:
    member = linked_member(product)
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    for n in range(3):
        crm_control(product, "actions/create", {"actor": ADELE, "module": "Events", "record": crm_event(f"Own {n}", soon + timedelta(hours=n))})
    crm_control(product, "actions/import", {"actor": ADELE, "module": "Events", "records": [crm_event("Imported", soon)]})
    enable_and_wait(product, member)
    assert containers(product, ADELE, CALENDAR) == 1
    assert subjects(product) == ["Own 0", "Own 1", "Own 2"]
    get_services().sync.enable(member, SyncKind.CALENDAR)  # enabling again changes nothing
    assert containers(product, ADELE, CALENDAR) == 1


def test_changes_flow_both_ways_through_webhooks(product: ProductStack) -> None:
    member = linked_member(product)
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    created = crm_control(product, "actions/create", {"actor": ADELE, "module": "Events", "record": crm_event("From CRM", soon)})
    enable_and_wait(product, member)
    calendar_id = profile(member, SyncKind.CALENDAR).container_id
    # Outlook -> CRM: a person creates an event in the Zoho CRM calendar.
    product.m365_control("POST", f"mailbox/{ADELE}/calendars/{calendar_id}/events", json={
        "subject": "From Outlook", "start": {"dateTime": (soon + timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": (soon + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
    })
    wait_until(lambda: any(r.get("Event_Title") == "From Outlook" for r in crm_records(product, member, "Events")),
               what="the Outlook event in the CRM")
    mine = [r for r in crm_records(product, member, "Events") if r.get("Event_Title") == "From Outlook"]
    assert len(mine) == 1 and mine[0]["Owner"]["id"] == member.user_id
    # CRM -> Outlook: a mass update of the CRM event renames it.
    crm_id = str(created["data"][0]["details"]["id"])
    crm_control(product, "actions/mass-update", {"actor": ADELE, "module": "Events", "ids": [crm_id], "values": {"Event_Title": "Renamed in CRM"}})
    wait_until(lambda: "Renamed in CRM" in subjects(product), what="the rename in Outlook")
    # Deleting in Outlook deletes in the CRM.
    outlook_event = next(e for e in outlook_items(product, ADELE, CALENDAR) if e["subject"] == "Renamed in CRM")
    product.m365_control("DELETE", f"mailbox/{ADELE}/events/{outlook_event['id']}")
    wait_until(lambda: not any(r.get("id") == crm_id for r in crm_records(product, member, "Events")),
               what="the CRM event deleted")
    assert subjects(product) == ["From Outlook"]


def test_disable_removes_the_calendar_and_keeps_crm_events(product: ProductStack) -> None:
    member = linked_member(product)
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    crm_control(product, "actions/create", {"actor": ADELE, "module": "Events", "record": crm_event("Kept", soon)})
    enable_and_wait(product, member)
    before = len(crm_records(product, member, "Events"))
    get_services().sync.disable(member, SyncKind.CALENDAR)
    assert containers(product, ADELE, CALENDAR) == 0
    assert len(crm_records(product, member, "Events")) == before
    assert profile(member, SyncKind.CALENDAR).state is SyncState.DISABLED


def test_deleting_the_calendar_in_outlook_disables_sync(product: ProductStack) -> None:
    member = linked_member(product)
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    crm_control(product, "actions/create", {"actor": ADELE, "module": "Events", "record": crm_event("Survives", soon)})
    enable_and_wait(product, member)
    before = len(crm_records(product, member, "Events"))
    product.m365_control("DELETE", f"mailbox/{ADELE}/calendars/{profile(member, SyncKind.CALENDAR).container_id}")
    get_services().sync.sweep()
    wait_until(lambda: profile(member, SyncKind.CALENDAR).state is SyncState.DISABLED, what="sync disabled")
    assert profile(member, SyncKind.CALENDAR).reason == "container_deleted"
    assert len(crm_records(product, member, "Events")) == before


@pytest.mark.slow
def test_initial_sync_caps_at_5000_future_first_without_imported(product: ProductStack) -> None:
    member = linked_member(product)
    crm_control(product, "actions/generate", {"actor": ADELE, "module": "Events", "count": 5500})
    crm_control(product, "actions/generate", {"actor": ADELE, "module": "Events", "count": 500, "data_source": "Import"})
    reset_request_counts(product)
    started = time.monotonic()
    enable_and_wait(product, member, timeout=900)
    print("FIGURES calendar initial 5000", round(time.monotonic() - started, 1), "s", request_counts(product))
    events = outlook_items(product, ADELE, CALENDAR)
    assert len(events) == 5000
    assert len({e["subject"] for e in events}) == 5000  # no duplicate
    # All 2,750 future ones are in; the past ones kept are the most recent.
    now = datetime.now(UTC)
    future = [e for e in events if datetime.fromisoformat(e["start"]["dateTime"][:19]).replace(tzinfo=UTC) >= now - timedelta(hours=1)]
    assert len(future) >= 2700
