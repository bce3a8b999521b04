"""Times: zones, all-day, DST, Graph's Prefer UTC (SPEC R3.9; graph-notes §2)."""

from __future__ import annotations

import pytest
from calendar_examples import OWNER, crm_record, graph_event, same, through_crm, through_graph

from shared.sync.calendar_mapping import (
    UnknownTimeZone,
    crm_event_to_fields,
    fields_to_crm_event,
    fields_to_graph_event,
    graph_event_excluded,
    graph_event_to_fields,
)


def test_crm_offsets_and_graph_windows_zone_are_the_same_instant():
    crm = crm_event_to_fields(crm_record())
    outlook = graph_event_to_fields(graph_event())
    assert outlook["when"]["time_zone"] == "Europe/Berlin"
    assert crm["when"]["time_zone"] is None
    assert same(crm, outlook)


def test_the_crm_users_zone_is_kept_when_the_offsets_agree():
    assert crm_event_to_fields(crm_record(), time_zone="Europe/Berlin")["when"]["time_zone"] == "Europe/Berlin"
    assert crm_event_to_fields(crm_record(), time_zone="America/New_York")["when"]["time_zone"] is None


def test_graph_iana_zone_names_are_read():
    event = graph_event(start={"dateTime": "2026-12-01T04:00:00", "timeZone": "America/New_York"},
                        end={"dateTime": "2026-12-01T05:00:00", "timeZone": "America/New_York"})
    assert same(graph_event_to_fields(event), crm_event_to_fields(crm_record()))


def test_a_cross_time_zone_event_keeps_its_zone_and_instant():
    # Created in Outlook in New York, the CRM user is in Berlin.
    outlook = graph_event_to_fields(graph_event(
        start={"dateTime": "2026-12-01T16:00:00.0000000", "timeZone": "Eastern Standard Time"},
        end={"dateTime": "2026-12-01T17:30:00.0000000", "timeZone": "Eastern Standard Time"}))
    record = fields_to_crm_event(outlook, owner_id=OWNER)
    assert record["Start_DateTime"] == "2026-12-01T16:00:00-05:00"
    berlin_view = crm_record(Start_DateTime="2026-12-01T22:00:00+01:00", End_DateTime="2026-12-01T23:30:00+01:00")
    assert same(crm_event_to_fields(berlin_view, time_zone="Europe/Berlin"), outlook)
    back = fields_to_graph_event(outlook)
    assert back["start"] == {"dateTime": "2026-12-01T16:00:00", "timeZone": "Eastern Standard Time"}


def test_prefer_utc_reads_the_event_zone_from_original_start_time_zone():
    event = graph_event(start={"dateTime": "2026-12-01T09:00:00.0000000", "timeZone": "UTC"},
                        end={"dateTime": "2026-12-01T10:00:00.0000000", "timeZone": "UTC"},
                        originalStartTimeZone="W. Europe Standard Time")
    fields = graph_event_to_fields(event)
    assert fields["when"] == {"all_day": False, "start": "2026-12-01T10:00:00+01:00",
                              "end": "2026-12-01T11:00:00+01:00", "time_zone": "Europe/Berlin"}


def test_dst_boundary_event_keeps_its_instants_both_ways():
    # 2026-03-29 Berlin: 02:00 CET -> 03:00 CEST; an event 01:30-03:30 lasts one hour.
    record = crm_record(Start_DateTime="2026-03-29T01:30:00+01:00", End_DateTime="2026-03-29T03:30:00+02:00")
    fields = crm_event_to_fields(record, time_zone="Europe/Berlin")
    graph = fields_to_graph_event(fields)
    assert graph["start"]["dateTime"] == "2026-03-29T01:30:00" and graph["end"]["dateTime"] == "2026-03-29T03:30:00"
    assert same(through_graph(fields), fields)
    assert same(through_crm(fields, time_zone="Europe/Berlin"), fields)


def test_a_weekly_series_across_dst_stays_at_the_same_wall_time_in_outlook():
    record = crm_record(Start_DateTime="2026-03-23T10:00:00+01:00", End_DateTime="2026-03-23T11:00:00+01:00",
                        Recurring_Activity={"RRULE": "FREQ=WEEKLY;BYDAY=MO;INTERVAL=1;COUNT=4"})
    graph = fields_to_graph_event(crm_event_to_fields(record, time_zone="Europe/Berlin"))
    assert graph["recurrence"]["range"]["recurrenceTimeZone"] == "W. Europe Standard Time"
    assert graph["start"]["timeZone"] == "W. Europe Standard Time"


def test_all_day_crm_event_becomes_midnight_to_midnight_in_outlook():
    record = crm_record(All_day=True, Start_DateTime="2026-12-03T00:00:00+01:00",
                        End_DateTime="2026-12-03T23:59:00+01:00")
    fields = crm_event_to_fields(record, time_zone="Europe/Berlin")
    assert fields["when"] == {"all_day": True, "start": "2026-12-03", "end": "2026-12-04", "time_zone": "Europe/Berlin"}
    graph = fields_to_graph_event(fields)
    assert graph["isAllDay"] is True
    assert graph["start"] == {"dateTime": "2026-12-03T00:00:00", "timeZone": "W. Europe Standard Time"}
    assert graph["end"] == {"dateTime": "2026-12-04T00:00:00", "timeZone": "W. Europe Standard Time"}
    back = fields_to_crm_event(graph_event_to_fields(graph), owner_id=OWNER)
    assert (back["Start_DateTime"], back["End_DateTime"], back["All_day"]) == (
        "2026-12-03T00:00:00+01:00", "2026-12-03T23:59:00+01:00", True)


@pytest.mark.parametrize("zone", ["Pacific Standard Time", "Tokyo Standard Time", "Line Islands Standard Time", "UTC"])
def test_all_day_days_survive_in_every_zone_and_a_utc_read(zone):
    event = graph_event(isAllDay=True, start={"dateTime": "2026-12-03T00:00:00.0000000", "timeZone": zone},
                        end={"dateTime": "2026-12-05T00:00:00.0000000", "timeZone": zone})
    fields = graph_event_to_fields(event)
    assert (fields["when"]["start"], fields["when"]["end"]) == ("2026-12-03", "2026-12-05")
    record = fields_to_crm_event(fields, owner_id=OWNER)
    assert record["Start_DateTime"].startswith("2026-12-03T00:00:00")
    assert record["End_DateTime"].startswith("2026-12-04T23:59:00")
    assert same(crm_event_to_fields(record), fields)


def test_all_day_read_with_prefer_utc_snaps_back_to_the_days():
    # A Tokyo all-day event on Dec 3 read with Prefer: outlook.timezone="UTC".
    event = graph_event(isAllDay=True, originalStartTimeZone="Tokyo Standard Time",
                        start={"dateTime": "2026-12-02T15:00:00.0000000", "timeZone": "UTC"},
                        end={"dateTime": "2026-12-03T15:00:00.0000000", "timeZone": "UTC"})
    assert graph_event_to_fields(event)["when"]["start"] == "2026-12-03"
    event.pop("originalStartTimeZone")
    assert graph_event_to_fields(event)["when"]["start"] == "2026-12-03"  # nearest midnight


def test_a_crm_all_day_end_at_midnight_is_exclusive():
    record = crm_record(All_day=True, Start_DateTime="2026-12-03T00:00:00+00:00",
                        End_DateTime="2026-12-05T00:00:00+00:00")
    assert crm_event_to_fields(record)["when"]["end"] == "2026-12-05"


def test_all_day_and_timed_are_different():
    timed = crm_event_to_fields(crm_record(Start_DateTime="2026-12-03T00:00:00+00:00",
                                           End_DateTime="2026-12-04T00:00:00+00:00"))
    day = crm_event_to_fields(crm_record(All_day=True, Start_DateTime="2026-12-03T00:00:00+00:00",
                                         End_DateTime="2026-12-03T23:59:00+00:00"))
    assert not same(timed, day)


def test_an_unknown_windows_zone_is_refused_not_guessed():
    event = graph_event(start={"dateTime": "2026-12-01T10:00:00", "timeZone": "Mars Standard Time"},
                        end={"dateTime": "2026-12-01T11:00:00", "timeZone": "Mars Standard Time"})
    with pytest.raises(UnknownTimeZone):
        graph_event_to_fields(event)
    assert graph_event_excluded(event).startswith("unknown_time_zone")
