"""Each canonical field, each direction (SPEC R3.9)."""

from __future__ import annotations

from calendar_examples import OWNER, crm_record, graph_event, same, through_crm, through_graph

from shared.sync.calendar_mapping import (
    crm_event_to_fields,
    fields_to_crm_event,
    fields_to_graph_event,
    graph_event_to_fields,
    patch_to_crm,
    patch_to_graph,
)


def test_title_both_ways():
    assert crm_event_to_fields(crm_record(Event_Title="Demo"))["title"] == "Demo"
    assert graph_event_to_fields(graph_event(subject="Demo"))["title"] == "Demo"
    fields = crm_event_to_fields(crm_record(Event_Title="Demo"))
    assert fields_to_graph_event(fields)["subject"] == "Demo"
    assert fields_to_crm_event(fields, owner_id=OWNER)["Event_Title"] == "Demo"


def test_an_untitled_outlook_event_gets_the_crm_placeholder_and_does_not_echo():
    fields = graph_event_to_fields(graph_event(subject=""))
    record = fields_to_crm_event(fields, owner_id=OWNER)
    assert record["Event_Title"] == "(no title)"
    assert same(crm_event_to_fields(record), fields)


def test_a_title_longer_than_the_crm_holds_is_compared_on_what_the_crm_keeps():
    long = "x" * 300
    outlook = graph_event_to_fields(graph_event(subject=long))
    crm = crm_event_to_fields(crm_record(Event_Title=long[:255]))
    assert same(outlook, crm)


def test_description_both_ways_text_and_html():
    crm = crm_event_to_fields(crm_record(Description="Agenda:\n\n1. price & terms\n2. <signature>"))
    body = fields_to_graph_event(crm)["body"]
    assert body["contentType"] == "html" and "&lt;signature&gt;" in body["content"]
    assert same(graph_event_to_fields(graph_event(body=body)), crm)
    text = graph_event(body={"contentType": "text", "content": "Agenda:\r\n1. price & terms\r\n2. <signature>  "})
    assert same(graph_event_to_fields(text), crm)
    assert fields_to_crm_event(graph_event_to_fields(text), owner_id=OWNER)["Description"].startswith("Agenda:")


def test_location_both_ways():
    fields = crm_event_to_fields(crm_record(Venue="Head  office"))
    assert fields_to_graph_event(fields)["location"] == {"displayName": "Head  office"}
    outlook = graph_event_to_fields(graph_event(location={"displayName": "Head office", "locationType": "default"}))
    assert same(outlook, fields)
    assert fields_to_crm_event(outlook, owner_id=OWNER)["Venue"] == "Head office"


def test_reminder_minutes_both_ways():
    crm = crm_event_to_fields(crm_record(Remind_At=[{"unit": 15, "period": "minutes"}]))
    assert crm["reminder_minutes"] == 15
    graph = fields_to_graph_event(crm)
    assert graph["isReminderOn"] is True and graph["reminderMinutesBeforeStart"] == 15
    assert graph_event_to_fields(graph_event(isReminderOn=True, reminderMinutesBeforeStart=15))["reminder_minutes"] == 15
    assert graph_event_to_fields(graph_event(isReminderOn=False))["reminder_minutes"] is None
    assert fields_to_graph_event({**crm, "reminder_minutes": None})["isReminderOn"] is False


def test_a_day_before_reminder_round_trips_through_the_crm_days_form():
    fields = graph_event_to_fields(graph_event(isReminderOn=True, reminderMinutesBeforeStart=1080))
    record = fields_to_crm_event(fields, owner_id=OWNER)
    assert record["Remind_At"] == [{"unit": 1, "period": "days", "time": "16.00"}]  # start 10:00 - 18 h
    assert crm_event_to_fields(record)["reminder_minutes"] == 1080


def test_crm_reminder_forms_and_the_one_closest_to_the_start_wins():
    record = crm_record(Remind_At=[{"unit": 1, "period": "days", "time": "10.30"}, {"unit": 2, "period": "hrs"}])
    assert crm_event_to_fields(record)["reminder_minutes"] == 120
    assert crm_event_to_fields(crm_record(Remind_At=[{"unit": 1, "period": "weeks"}]))["reminder_minutes"] == 10080
    v2 = crm_record(Remind_At="2026-12-01T09:45:00+01:00")
    assert crm_event_to_fields(v2)["reminder_minutes"] == 15


def test_owner_is_the_member_on_crm_writes():
    fields = graph_event_to_fields(graph_event())
    assert fields_to_crm_event(fields, owner_id=OWNER)["Owner"] == {"id": OWNER}


def test_single_event_round_trips_both_ways():
    fields = crm_event_to_fields(
        crm_record(Venue="Room 1", Description="Seeded", Remind_At=[{"unit": 15, "period": "minutes"}],
                   Participants=[{"type": "email", "Email": "guest1@example.com", "name": "Guest 1"}]),
        time_zone="Europe/Berlin",
    )
    assert same(through_graph(fields), fields)
    assert same(through_crm(fields), fields)


def test_patches_carry_only_the_changed_fields_and_what_depends_on_them():
    merged = crm_event_to_fields(crm_record(Venue="Room 1", Remind_At=[{"unit": 1, "period": "days", "time": "09.00"}]))
    assert patch_to_graph({"location": "Room 2"}, merged=merged) == {"location": {"displayName": "Room 2"}}
    assert patch_to_crm({"title": "New"}, merged=merged) == {"Event_Title": "New"}
    moved = {**merged["when"], "start": "2026-12-01T14:00:00+01:00", "end": "2026-12-01T15:00:00+01:00"}
    crm = patch_to_crm({"when": moved}, merged={**merged, "when": moved})
    assert set(crm) == {"Start_DateTime", "End_DateTime", "All_day", "Remind_At"}
    assert crm["Remind_At"] == [{"unit": 1, "period": "days", "time": "13.00"}]  # still 25 h before
    graph = patch_to_graph({"when": moved}, merged={**merged, "when": moved})
    assert set(graph) == {"start", "end", "isAllDay"}
    body = patch_to_graph({"attendees": [{"email": "a@example.com", "name": "A"}]}, merged=merged)
    assert set(body) == {"body"} and "a@example.com" in body["body"]["content"]
