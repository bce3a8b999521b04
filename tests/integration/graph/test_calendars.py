"""The Zoho CRM calendar and its events through the sync client (SPEC R3.2, R3.7, R3.8; DESIGN §8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.graph.calendars import CALENDAR_NAME, CalendarClient
from shared.graph.container import ItemDraft
from shared.graph.extended_properties import crm_id_of
from shared.graph.mailbox import GraphMailbox
from shared.graph.sync_errors import CalendarGone, ContainerNameTaken, ItemNotFound

from .conftest import ADELE_UPN, Emulator


def event_fields(subject: str, day: int = 1, hour: int = 9) -> dict:
    start = (datetime.now(UTC) + timedelta(days=day)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return {
        "subject": subject,
        "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
    }


def test_find_or_create_twice_makes_one_calendar(mailbox: GraphMailbox, emulator: Emulator) -> None:
    calendars = CalendarClient(mailbox)
    first = calendars.ensure_calendar()
    second = calendars.ensure_calendar()
    assert first.id == second.id and first.name == CALENDAR_NAME
    assert len(emulator.calendars_named(CALENDAR_NAME)) == 1


def test_crash_after_create_finds_the_same_calendar_by_its_tag(make_mailbox, emulator: Emulator) -> None:
    # A worker created the calendar and died before recording the id: a fresh process (new
    # client, new gate) must find that calendar, not create a second one.
    created = CalendarClient(make_mailbox()).ensure_calendar()
    del created  # the id was never recorded
    again = CalendarClient(make_mailbox(shared_gate=False)).ensure_calendar()
    [calendar] = emulator.calendars_named(CALENDAR_NAME)
    assert again.id == calendar["id"]
    assert CalendarClient(make_mailbox()).find_calendar().id == calendar["id"]  # type: ignore[union-attr]


def test_a_users_own_calendar_with_our_name_is_never_taken_over(mailbox: GraphMailbox, emulator: Emulator) -> None:
    emulator.control("POST", f"mailbox/{ADELE_UPN}/calendars", json={"name": CALENDAR_NAME})
    with pytest.raises(ContainerNameTaken) as raised:
        CalendarClient(mailbox).ensure_calendar()
    assert raised.value.existing_id == emulator.calendars_named(CALENDAR_NAME)[0]["id"]
    assert len(emulator.calendars_named(CALENDAR_NAME)) == 1


def test_event_create_get_update_delete(mailbox: GraphMailbox, emulator: Emulator) -> None:
    calendars = CalendarClient(mailbox)
    calendar = calendars.ensure_calendar()
    created = calendars.create_event(calendar.id, event_fields("Call ACME"), crm_id="zcrm_1")
    assert created.subject == "Call ACME" and created.change_key and created.transaction_id

    read = calendars.get_event(calendar.id, created.id)
    assert crm_id_of(read) == "zcrm_1"
    assert read.start is not None and read.start.time_zone == "UTC"  # Prefer: outlook.timezone="UTC"

    updated = calendars.update_event(calendar.id, created.id, {"subject": "Call ACME (moved)"})
    assert updated.change_key and updated.change_key != created.change_key
    assert calendars.get_event(calendar.id, created.id).change_key == updated.change_key

    assert [e.id for e in calendars.find_events_by_crm_id(calendar.id, "zcrm_1")] == [created.id]
    assert calendars.find_events_by_crm_id(calendar.id, "zcrm_unknown") == []

    assert calendars.delete_event(calendar.id, created.id) is True
    assert calendars.delete_event(calendar.id, created.id) is False  # already gone is not an error
    with pytest.raises(ItemNotFound) as raised:
        calendars.get_event(calendar.id, created.id)
    assert not isinstance(raised.value, CalendarGone)


def test_transaction_id_retry_creates_no_duplicate(mailbox: GraphMailbox, emulator: Emulator) -> None:
    calendars = CalendarClient(mailbox)
    calendar = calendars.ensure_calendar()
    # The same create sent again (a re-delivered queue message): same transactionId, same event.
    first = calendars.create_event(calendar.id, event_fields("Demo"), crm_id="zcrm_42")
    again = calendars.create_event(calendar.id, event_fields("Demo"), crm_id="zcrm_42")
    assert again.id == first.id
    [ours] = emulator.calendars_named(CALENDAR_NAME)
    assert len(ours["events"]) == 1


def test_hundred_creates_go_as_five_batches(mailbox: GraphMailbox, emulator: Emulator, http) -> None:
    calendars = CalendarClient(mailbox)
    calendar = calendars.ensure_calendar()
    batch_posts: list[int] = []

    def count(response, *args, **kwargs):
        if response.request.method == "POST" and response.request.url.endswith("/$batch"):
            batch_posts.append(response.status_code)

    http.hooks["response"].append(count)
    try:
        drafts = [ItemDraft(crm_id=f"zcrm_{n}", fields=event_fields(f"Event {n}", day=1 + n % 20)) for n in range(100)]
        results = calendars.create_events(calendar.id, drafts)
    finally:
        http.hooks["response"].remove(count)
    assert batch_posts == [200] * 5
    assert all(not isinstance(r, Exception) for r in results)
    assert [r.subject for r in results] == [f"Event {n}" for n in range(100)]  # type: ignore[union-attr]
    [ours] = emulator.calendars_named(CALENDAR_NAME)
    tags = sorted(p["value"] for e in ours["events"] for p in e["singleValueExtendedProperties"])
    assert tags == sorted(f"zcrm_{n}" for n in range(100))  # each created exactly once
    counters = emulator.counters()
    assert counters["concurrentPeak"] <= 4 and counters["throttled429"] == 0

    # Batched updates and deletes answer per item, in input order.
    ids = [r.id for r in results]  # type: ignore[union-attr]
    updated = calendars.update_events(calendar.id, [(i, {"subject": "renamed"}) for i in ids[:30]])
    assert [u.subject for u in updated] == ["renamed"] * 30  # type: ignore[union-attr]
    deleted = calendars.delete_events(calendar.id, [*ids[:25], ids[0]])
    # ids[0] twice, in two batches that may run at once: whichever comes second finds it gone.
    assert deleted[1:25] == [True] * 24 and True in (deleted[0], deleted[25])
    assert len(emulator.calendars_named(CALENDAR_NAME)[0]["events"]) == 75


def test_calendar_deleted_in_outlook_is_a_distinct_error(mailbox: GraphMailbox, emulator: Emulator) -> None:
    calendars = CalendarClient(mailbox)
    calendar = calendars.ensure_calendar()
    event = calendars.create_event(calendar.id, event_fields("Soon gone"), crm_id="zcrm_7")
    emulator.control("DELETE", f"mailbox/{ADELE_UPN}/calendars/{calendar.id}")

    with pytest.raises(CalendarGone):
        calendars.get_calendar(calendar.id)
    with pytest.raises(CalendarGone):
        calendars.create_event(calendar.id, event_fields("Late"), crm_id="zcrm_8")
    with pytest.raises(CalendarGone):
        calendars.update_event(calendar.id, event.id, {"subject": "x"})
    with pytest.raises(CalendarGone):
        calendars.delete_event(calendar.id, event.id)
    with pytest.raises(CalendarGone):
        next(calendars.delta(calendar.id, start=datetime.now(UTC), end=datetime.now(UTC) + timedelta(days=30)))
    [outcome] = calendars.create_events(calendar.id, [ItemDraft(crm_id="zcrm_9", fields=event_fields("Batch"))])
    assert isinstance(outcome, CalendarGone)
    assert calendars.delete_calendar(calendar.id) is False  # Disable after the user deleted it: nothing to do
    assert calendars.find_calendar() is None


def test_disable_deletes_the_calendar_and_its_events(mailbox: GraphMailbox, emulator: Emulator) -> None:
    calendars = CalendarClient(mailbox)
    calendar = calendars.ensure_calendar()
    calendars.create_event(calendar.id, event_fields("Goes with it"), crm_id="zcrm_1")
    assert calendars.delete_calendar(calendar.id) is True
    assert emulator.calendars_named(CALENDAR_NAME) == []
    # Enabling again makes a fresh calendar.
    assert calendars.ensure_calendar().id != calendar.id
