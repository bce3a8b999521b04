"""Recurring series and their exceptions, both ways (SPEC R3.9; issue 7 "Done when")."""

from __future__ import annotations

import json

import pytest
from calendar_examples import OWNER, SERIES, crm_record, same, through_crm, through_graph

from shared.sync.calendar_mapping import (
    CRM_MOVED_FIELD,
    UnsupportedRecurrence,
    crm_event_excluded,
    crm_event_to_fields,
    crm_occurrence_of,
    crm_occurrence_records,
    exception_changes,
    fields_to_crm_event,
    fields_to_graph_event,
    graph_event_to_fields,
)

# 2026-12-01 is a Tuesday.
PATTERNS = [
    ("FREQ=DAILY;INTERVAL=2;UNTIL=2026-12-31", "FREQ=DAILY;INTERVAL=2;UNTIL=2026-12-31",
     {"type": "daily", "interval": 2}, {"type": "endDate", "endDate": "2026-12-31"}),
    ("FREQ=WEEKLY;BYDAY=TU,MO;INTERVAL=1;COUNT=10", "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,TU;COUNT=10",
     {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "tuesday"]},
     {"type": "numbered", "numberOfOccurrences": 10}),
    ("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH;WKST=SU", "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH;WKST=SU",
     {"type": "weekly", "interval": 2, "daysOfWeek": ["tuesday", "thursday"], "firstDayOfWeek": "sunday"},
     {"type": "noEnd"}),
    ("FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=1", "FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=1",
     {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 1}, {"type": "noEnd"}),
    ("FREQ=MONTHLY;INTERVAL=1;BYDAY=1TU;COUNT=3", "FREQ=MONTHLY;INTERVAL=1;BYDAY=TU;BYSETPOS=1;COUNT=3",
     {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["tuesday"], "index": "first"},
     {"type": "numbered", "numberOfOccurrences": 3}),
    ("FREQ=MONTHLY;INTERVAL=3;BYDAY=FR;BYSETPOS=-1", "FREQ=MONTHLY;INTERVAL=3;BYDAY=FR;BYSETPOS=-1",
     {"type": "relativeMonthly", "interval": 3, "daysOfWeek": ["friday"], "index": "last"}, {"type": "noEnd"}),
    ("FREQ=YEARLY;INTERVAL=1;BYMONTH=12;BYMONTHDAY=1", "FREQ=YEARLY;INTERVAL=1;BYMONTH=12;BYMONTHDAY=1",
     {"type": "absoluteYearly", "interval": 1, "month": 12, "dayOfMonth": 1}, {"type": "noEnd"}),
    ("FREQ=YEARLY;BYMONTH=12;BYDAY=TU;BYSETPOS=1;UNTIL=20301231",
     "FREQ=YEARLY;INTERVAL=1;BYMONTH=12;BYDAY=TU;BYSETPOS=1;UNTIL=2030-12-31",
     {"type": "relativeYearly", "interval": 1, "month": 12, "daysOfWeek": ["tuesday"], "index": "first"},
     {"type": "endDate", "endDate": "2030-12-31"}),
]


@pytest.mark.parametrize(("rrule", "canonical", "pattern", "limit"), PATTERNS)
def test_each_pattern_crm_to_graph_and_back(rrule, canonical, pattern, limit):
    fields = crm_event_to_fields(crm_record(Recurring_Activity={"RRULE": rrule}), time_zone="Europe/Berlin")
    assert fields["recurrence"] == {"rule": canonical, "exceptions": []}
    graph = fields_to_graph_event(fields)["recurrence"]
    assert graph["pattern"].items() >= pattern.items()
    assert graph["range"].items() >= {**limit, "startDate": "2026-12-01"}.items()
    assert graph["range"]["recurrenceTimeZone"] == "W. Europe Standard Time"
    assert same(through_graph(fields), fields)
    assert same(through_crm(fields, time_zone="Europe/Berlin"), fields)


@pytest.mark.parametrize(("rrule", "canonical", "pattern", "limit"), PATTERNS)
def test_each_pattern_graph_to_crm(rrule, canonical, pattern, limit):
    event = fields_to_graph_event(crm_event_to_fields(crm_record(), time_zone="Europe/Berlin"))
    event["recurrence"] = {"pattern": pattern, "range": {**limit, "startDate": "2026-12-01"}}
    fields = graph_event_to_fields(event)
    assert fields["recurrence"]["rule"] == canonical
    record = fields_to_crm_event(fields, owner_id=OWNER)
    assert record["Recurring_Activity"]["RRULE"].startswith("FREQ=")
    assert "DTSTART=2026-12-01" in record["Recurring_Activity"]["RRULE"]
    assert same(crm_event_to_fields(record), fields)


def test_implicit_parts_are_made_explicit_from_the_start():
    rule = crm_event_to_fields(crm_record(Recurring_Activity={"RRULE": "FREQ=WEEKLY;COUNT=6"}))["recurrence"]["rule"]
    assert rule == "FREQ=WEEKLY;INTERVAL=1;BYDAY=TU;COUNT=6"
    rule = crm_event_to_fields(crm_record(Recurring_Activity={"RRULE": "FREQ=YEARLY"}))["recurrence"]["rule"]
    assert rule == "FREQ=YEARLY;INTERVAL=1;BYMONTH=12;BYMONTHDAY=1"


def test_every_weekday_daily_rule_is_the_weekly_rule_outlook_holds():
    rule = crm_event_to_fields(crm_record(Recurring_Activity={"RRULE": "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR"}))
    assert rule["recurrence"]["rule"] == "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,TU,WE,TH,FR"


@pytest.mark.parametrize("rrule", [
    "FREQ=HOURLY;INTERVAL=2",
    "FREQ=MONTHLY;BYDAY=TU",  # every Tuesday of the month
    "FREQ=MONTHLY;BYMONTHDAY=1,15",
    "FREQ=MONTHLY;BYMONTHDAY=-1",
    "FREQ=MONTHLY;BYDAY=TU;BYSETPOS=5",
    "FREQ=WEEKLY;BYHOUR=9",
    "FREQ=DAILY;COUNT=3;UNTIL=2026-12-31",
    "FREQ=YEARLY;BYWEEKNO=20",
    "FREQ=WEEKLY;BYDAY=2TU",
])
def test_unsupported_rules_are_refused_never_mangled(rrule):
    record = crm_record(Recurring_Activity={"RRULE": rrule})
    with pytest.raises(UnsupportedRecurrence):
        crm_event_to_fields(record)
    assert crm_event_excluded(record, member_user_id=OWNER).startswith("unsupported_recurrence")


def test_an_unknown_graph_pattern_is_refused():
    event = fields_to_graph_event(crm_event_to_fields(crm_record()))
    event["recurrence"] = {"pattern": {"type": "hourly", "interval": 1}, "range": {"type": "noEnd"}}
    with pytest.raises(UnsupportedRecurrence):
        graph_event_to_fields(event)


def _series_with_exceptions(all_day: bool = False):
    if all_day:
        record = crm_record(All_day=True, Start_DateTime="2026-12-01T00:00:00+01:00",
                            End_DateTime="2026-12-01T23:59:00+01:00")
        moved = {"original_date": "2026-12-08", "start": "2026-12-09", "end": "2026-12-10"}
    else:
        record = crm_record()
        moved = {"original_date": "2026-12-08", "start": "2026-12-08T15:00:00+01:00",
                 "end": "2026-12-08T16:30:00+01:00"}
    record["Recurring_Activity"] = {"RRULE": "FREQ=WEEKLY;BYDAY=TU;COUNT=6"}
    fields = crm_event_to_fields(record, time_zone="Europe/Berlin")
    fields["recurrence"]["exceptions"] = [moved, {"original_date": "2026-12-15", "cancelled": True}]
    return fields


@pytest.mark.parametrize("all_day", [False, True])
def test_a_moved_and_a_cancelled_occurrence_survive_both_directions(all_day):
    fields = _series_with_exceptions(all_day)
    via_graph = through_graph(fields)
    assert via_graph["recurrence"]["exceptions"] == fields["recurrence"]["exceptions"]
    assert same(via_graph, fields)
    via_crm = through_crm(fields, time_zone="Europe/Berlin")
    assert via_crm["recurrence"]["exceptions"] == fields["recurrence"]["exceptions"]
    assert same(through_crm(via_graph, time_zone="Europe/Berlin"), fields)


def test_the_crm_holds_exceptions_as_exdate_and_marked_occurrence_events():
    fields = _series_with_exceptions()
    record = fields_to_crm_event(fields, owner_id=OWNER)
    assert record["Recurring_Activity"]["EXDATE"] == "2026-12-08,2026-12-15"
    [occurrence] = crm_occurrence_records(fields, owner_id=OWNER, series_id=SERIES)
    assert occurrence["Recurring_Activity"] is None
    assert occurrence["Start_DateTime"] == "2026-12-08T15:00:00+01:00"
    assert crm_occurrence_of(occurrence) == (SERIES, "2026-12-08")
    assert crm_event_excluded({**occurrence, "Owner": {"id": OWNER}}, member_user_id=OWNER) == "occurrence"


def test_graph_exception_read_in_utc_lands_on_its_original_date_in_the_series_zone():
    fields = _series_with_exceptions()
    master = fields_to_graph_event(fields)
    instance = {"type": "exception", "originalStart": "2026-12-08T09:00:00.0000000Z",
                "start": {"dateTime": "2026-12-08T14:00:00.0000000", "timeZone": "UTC"},
                "end": {"dateTime": "2026-12-08T15:30:00.0000000", "timeZone": "UTC"}}
    [moved] = graph_event_to_fields(master, instances=[instance])["recurrence"]["exceptions"]
    assert moved == {"original_date": "2026-12-08", "start": "2026-12-08T15:00:00+01:00",
                     "end": "2026-12-08T16:30:00+01:00"}


def test_an_exception_that_only_changed_its_subject_is_not_a_move():
    fields = _series_with_exceptions()
    fields["recurrence"]["exceptions"] = []
    master = fields_to_graph_event(fields)
    instance = {"type": "exception", "originalStart": "2026-12-08T09:00:00Z", "subject": "Renamed",
                "start": {"dateTime": "2026-12-08T10:00:00", "timeZone": "W. Europe Standard Time"},
                "end": {"dateTime": "2026-12-08T11:00:00", "timeZone": "W. Europe Standard Time"}}
    assert graph_event_to_fields(master, instances=[instance])["recurrence"]["exceptions"] == []


def test_exception_changes_tell_the_executor_what_to_do():
    before = _series_with_exceptions()["recurrence"]
    after = {**before, "exceptions": [
        {"original_date": "2026-12-08", "start": "2026-12-08T17:00:00+01:00", "end": "2026-12-08T18:00:00+01:00"},
        {"original_date": "2026-12-22", "cancelled": True},
    ]}
    changes = exception_changes(before, after)
    assert changes.cancel == ("2026-12-22",)
    assert [e["original_date"] for e in changes.move] == ["2026-12-08"]
    assert changes.restore == ("2026-12-15",)
    assert exception_changes(after, after) == type(changes)()


@pytest.mark.parametrize("all_day", [False, True])
def test_the_series_record_alone_says_where_its_occurrences_moved(all_day):
    """The CRM's API has no exceptions: the series' own CRM_MOVED_FIELD carries the moved
    times, so reading the series back needs no search for other records."""
    fields = _series_with_exceptions(all_day)
    record = {"id": SERIES, **fields_to_crm_event(fields, owner_id=OWNER)}
    assert json.loads(record[CRM_MOVED_FIELD]) == [
        {k: str(v) for k, v in fields["recurrence"]["exceptions"][0].items()}
    ]
    assert crm_event_to_fields(record, time_zone="Europe/Berlin")["recurrence"] == fields["recurrence"]


def test_an_unreadable_moved_field_leaves_the_dates_cancelled_not_lost():
    fields = _series_with_exceptions()
    record = {"id": SERIES, **fields_to_crm_event(fields, owner_id=OWNER), CRM_MOVED_FIELD: "{not json"}
    exceptions = crm_event_to_fields(record, time_zone="Europe/Berlin")["recurrence"]["exceptions"]
    assert [e["original_date"] for e in exceptions] == ["2026-12-08", "2026-12-15"]
    assert all(e.get("cancelled") for e in exceptions)


def test_single_events_carry_no_moved_field():
    assert CRM_MOVED_FIELD not in fields_to_crm_event(crm_event_to_fields(crm_record()), owner_id=OWNER)
