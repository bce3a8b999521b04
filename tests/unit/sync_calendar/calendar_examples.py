"""Builders shared by the calendar mapping tests: CRM records and a tiny Graph stand-in."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from shared.sync.calendar_mapping import (
    CALENDAR_NORMALISATION,
    RECURRENCE,
    WHEN,
    crm_event_to_fields,
    crm_occurrence_records,
    fields_to_crm_event,
    fields_to_graph_event,
    graph_event_to_fields,
    graph_occurrence_times,
)

OWNER = "5725767000000411001"
SERIES = "5725767000000524157"


def crm_record(**fields: Any) -> dict[str, Any]:
    record = {
        "id": SERIES,
        "Owner": {"name": "Fabrice", "id": OWNER, "email": "fabrice@fabrikam.test"},
        "Event_Title": "Contract signing",
        "Start_DateTime": "2026-12-01T10:00:00+01:00",
        "End_DateTime": "2026-12-01T11:00:00+01:00",
        "All_day": False,
        "Data_Source": "API",
    }
    record.update(fields)
    return record


def graph_event(**fields: Any) -> dict[str, Any]:
    event = {
        "id": "AAMkAG1=",
        "type": "singleInstance",
        "subject": "Contract signing",
        "body": {"contentType": "html", "content": ""},
        "start": {"dateTime": "2026-12-01T10:00:00.0000000", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2026-12-01T11:00:00.0000000", "timeZone": "W. Europe Standard Time"},
        "isAllDay": False,
        "isReminderOn": False,
        "reminderMinutesBeforeStart": 15,
        "location": {"displayName": ""},
        "attendees": [],
    }
    event.update(fields)
    return event


def same(left: dict[str, Any], right: dict[str, Any]) -> bool:
    return CALENDAR_NORMALISATION.fingerprint(left) == CALENDAR_NORMALISATION.fingerprint(right)


def through_crm(fields: dict[str, Any], time_zone: str | None = None) -> dict[str, Any]:
    """Write the fields to the CRM (series and moved-occurrence records), read them back."""
    record = {"id": SERIES, **fields_to_crm_event(fields, owner_id=OWNER)}
    occurrences = crm_occurrence_records(fields, owner_id=OWNER, series_id=SERIES)
    return crm_event_to_fields(record, time_zone=time_zone, occurrences=occurrences)


def _original_start(fields: dict[str, Any], original: str) -> str:
    """The UTC ``originalStart`` Graph gives an occurrence of the series on ``original``."""
    when = fields[WHEN]
    zone = ZoneInfo(when.get("time_zone") or "UTC")
    wall = time(0, 0) if when["all_day"] else datetime.fromisoformat(when["start"]).astimezone(zone).time()
    instant = datetime.combine(date.fromisoformat(original), wall, zone)
    return instant.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_graph_series(fields: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What Graph would hold once the executor wrote the master and applied the
    exceptions: the master (with ``cancelledOccurrences``) and its exception instances."""
    master = fields_to_graph_event(fields)
    recurrence = fields.get(RECURRENCE) or {}
    instances = []
    cancelled = []
    for item in recurrence.get("exceptions") or []:
        if item.get("cancelled"):
            cancelled.append(f"OID.AAMkAG1=.{item['original_date']}")
            continue
        times = graph_occurrence_times(item, fields[WHEN].get("time_zone"))
        instances.append({
            "type": "exception",
            "originalStart": _original_start(fields, item["original_date"]),
            "isAllDay": fields[WHEN]["all_day"],
            **times,
        })
    if cancelled:
        master["cancelledOccurrences"] = cancelled
    return master, instances


def through_graph(fields: dict[str, Any]) -> dict[str, Any]:
    master, instances = as_graph_series(fields)
    return graph_event_to_fields(master, instances=instances)
