"""The calendar mapping: CRM Events records ⇄ Graph events through canonical fields (SPEC R3.9; issue 7).

The sync engine compares and merges a dict of canonical **fields** per item (``changes``,
``merge``). This module maps both sides to and from them. Pure: no I/O, no clock.

Canonical fields (JSON values; a missing field is the same as None):

====================  ================================================================
``title``             text: CRM ``Event_Title`` ⇄ Graph ``subject`` (compared on one
                      line, first 255 characters: the CRM's limit)
``description``       text: CRM ``Description`` ⇄ Graph ``body`` without the
                      participants block (compared line by line, blank lines ignored)
``location``          text: CRM ``Venue`` ⇄ Graph ``location.displayName``
``when``              start, end, all-day flag and zone as **one** value (``when``)
``reminder_minutes``  int or None: CRM ``Remind_At`` ⇄ Graph ``isReminderOn`` and
                      ``reminderMinutesBeforeStart`` (``reminders``)
``recurrence``        None or ``{"rule", "exceptions"}`` as **one** value: the rule and
                      its moved/cancelled occurrences (``recurrence``, ``exceptions``)
``attendees``         sorted ``[{"email", "name"}]``: CRM ``Participants`` ⇄ the body's
                      participants block plus Graph ``attendees`` (``participants``)
====================  ================================================================

``CALENDAR_NORMALISATION`` makes the same data read from either side hash the same.

What the executor does beyond these functions:

- Graph writes get ``transactionId`` and our extended property from the caller; the
  body never has ``attendees`` (they would mail invitations: ``participants``).
- Exceptions are not in the master's body: after writing the master, apply
  ``exception_changes(row_recurrence, new_recurrence)``: on Graph, DELETE cancelled
  occurrences and PATCH moved ones (``graph_occurrence_times``), found by their
  original date (``graph_occurrence_date``); on the CRM, ``EXDATE`` is in the record and
  moved occurrences are separate events (``crm_occurrence_records``).
- The adapter filters with ``crm_event_excluded`` / ``graph_event_excluded`` and puts
  the reason in ``ItemSeen.excluded``; the mapping functions raise on the same inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import JsonValue

from shared.sync.calendar.exceptions import (
    CRM_MOVED_FIELD,
    ExceptionChanges,
    crm_occurrence_marker,
    crm_occurrence_of,
    exception_changes,
    exceptions_from_crm,
    exceptions_from_graph,
    exdates_to_crm,
    graph_occurrence_date,
    graph_occurrence_times,
    moved_to_crm,
    normalise_recurrence,
    sorted_exceptions,
)
from shared.sync.calendar.participants import (
    BLOCK_END,
    BLOCK_START,
    body_html,
    body_text,
    normalise_people,
    people_from_crm,
    people_from_graph_attendees,
    people_to_crm,
    sorted_people,
    split_body,
)
from shared.sync.calendar.recurrence import (
    UnsupportedRecurrence,
    canonical_rule,
    rule_from_graph,
    rule_to_crm,
    rule_to_graph,
)
from shared.sync.calendar.reminders import (
    reminder_from_crm,
    reminder_from_graph,
    reminder_to_crm,
    reminder_to_graph,
)
from shared.sync.calendar.scope import (
    INITIAL_SYNC_CAP,
    crm_event_excluded,
    graph_event_excluded,
    initial_order_key,
)
from shared.sync.calendar.timezones import UnknownTimeZone, graph_zone_name
from shared.sync.calendar.when import (
    InvalidWhen,
    normalise_when,
    start_wall,
    when_from_crm,
    when_from_graph,
    when_to_crm,
    when_to_graph,
)
from shared.sync.fingerprint import Normalisation, plain, single_line

TITLE = "title"
DESCRIPTION = "description"
LOCATION = "location"
WHEN = "when"
REMINDER_MINUTES = "reminder_minutes"
RECURRENCE = "recurrence"
ATTENDEES = "attendees"
FIELDS = (TITLE, DESCRIPTION, LOCATION, WHEN, REMINDER_MINUTES, RECURRENCE, ATTENDEES)

CRM_TITLE_LIMIT = 255
UNTITLED = "(no title)"  # Event_Title is mandatory in the CRM; compared as no title


def _title(value: JsonValue) -> JsonValue:
    text = single_line(value)
    if not isinstance(text, str):
        return text
    return None if text == UNTITLED else text[:CRM_TITLE_LIMIT]


def _text_lines(value: JsonValue) -> JsonValue:
    """Each line with single spaces, blank lines dropped: what survives text ⇄ HTML."""
    if not isinstance(value, str):
        return plain(value)
    lines = (" ".join(line.split()) for line in value.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return "\n".join(line for line in lines if line) or None


CALENDAR_NORMALISATION = Normalisation(
    {
        TITLE: _title,
        DESCRIPTION: _text_lines,
        LOCATION: single_line,
        WHEN: normalise_when,
        REMINDER_MINUTES: plain,
        RECURRENCE: normalise_recurrence,
        ATTENDEES: normalise_people,
    }
)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


# --- reading ----------------------------------------------------------------------------------


def crm_event_to_fields(
    record: Mapping[str, Any],
    *,
    time_zone: str | None = None,
    occurrences: Sequence[Mapping[str, Any]] = (),
) -> dict[str, JsonValue]:
    """The canonical fields of a CRM Events record (v8 GET shape).

    ``time_zone``: the CRM user's IANA zone, if known (``when``). ``occurrences``: the
    records standing for moved occurrences of this series (``crm_occurrence_of``).

    Raises:
        UnsupportedRecurrence, InvalidWhen: see ``crm_event_excluded``.
    """
    when = when_from_crm(record, time_zone)
    recurrence: JsonValue = None
    recurring = record.get("Recurring_Activity")
    if isinstance(recurring, Mapping) and recurring.get("RRULE"):
        rule = canonical_rule(str(recurring["RRULE"]), start_wall(when).date())
        exceptions = exceptions_from_crm(recurring.get("EXDATE"), occurrences, time_zone, record.get(CRM_MOVED_FIELD))
        recurrence = {"rule": rule, "exceptions": exceptions}  # type: ignore[dict-item]
    return {
        TITLE: _text(record.get("Event_Title")),
        DESCRIPTION: _text(record.get("Description")),
        LOCATION: _text(record.get("Venue")),
        WHEN: when,
        REMINDER_MINUTES: reminder_from_crm(record.get("Remind_At"), start_wall(when)),
        RECURRENCE: recurrence,
        ATTENDEES: people_from_crm(record.get("Participants")),  # type: ignore[dict-item]
    }


def graph_event_to_fields(
    event: Mapping[str, Any], *, instances: Sequence[Mapping[str, Any]] = ()
) -> dict[str, JsonValue]:
    """The canonical fields of a Graph event (a single instance or a series master).

    ``instances``: the series' exception (and cancelled) instances, for a master.

    Raises:
        UnsupportedRecurrence, UnknownTimeZone, InvalidWhen: see ``graph_event_excluded``.
    """
    body = event.get("body") or {}
    text = body_text(str(body.get("content") or ""), str(body.get("contentType") or "text"))
    description, listed = split_body(text)
    when = when_from_graph(event)
    recurrence: JsonValue = None
    if event.get("recurrence"):
        rule = rule_from_graph(event["recurrence"], start_wall(when).date())
        recurrence = {"rule": rule, "exceptions": exceptions_from_graph(event, instances, when)}  # type: ignore[dict-item]
    return {
        TITLE: _text(event.get("subject")),
        DESCRIPTION: _text(description),
        LOCATION: _text((event.get("location") or {}).get("displayName")),
        WHEN: when,
        REMINDER_MINUTES: reminder_from_graph(event),
        RECURRENCE: recurrence,
        ATTENDEES: sorted_people([*listed, *people_from_graph_attendees(event.get("attendees"))]),  # type: ignore[dict-item]
    }


# --- writing ----------------------------------------------------------------------------------


def fields_to_crm_event(
    fields: Mapping[str, JsonValue], *, owner_id: str, current_participants: Sequence[Mapping[str, Any]] = ()
) -> dict[str, JsonValue]:
    """The JSON record for a CRM insert or update (wrap in ``{"data": [...]}``).

    ``current_participants``: the record's ``Participants`` as last read, so contacts,
    leads and users keep their type and id (``participants``). Moved occurrences are
    separate records: ``crm_occurrence_records``.
    """
    when: Mapping[str, Any] = fields[WHEN]  # type: ignore[assignment]
    recurrence = fields.get(RECURRENCE)
    recurring: JsonValue = None
    if isinstance(recurrence, Mapping) and recurrence.get("rule"):
        exceptions = sorted_exceptions(recurrence.get("exceptions") or [])
        recurring = {"RRULE": rule_to_crm(str(recurrence["rule"]), start_wall(when).date())}
        if exdates := exdates_to_crm(exceptions):
            recurring["EXDATE"] = exdates
    minutes = fields.get(REMINDER_MINUTES)
    series_only = {CRM_MOVED_FIELD: moved_to_crm(recurrence.get("exceptions") or [])} if recurring else {}  # type: ignore[union-attr]
    return {
        **series_only,
        "Owner": {"id": owner_id},
        "Event_Title": _text(fields.get(TITLE)) or UNTITLED,
        **when_to_crm(when),
        "Venue": _text(fields.get(LOCATION)),
        "Description": _text(fields.get(DESCRIPTION)),
        "Remind_At": reminder_to_crm(minutes if isinstance(minutes, int) else None, start_wall(when)),
        "Participants": people_to_crm(fields.get(ATTENDEES) or [], current_participants),  # type: ignore[arg-type]
        "Recurring_Activity": recurring,
    }


def crm_occurrence_records(
    fields: Mapping[str, JsonValue], *, owner_id: str, series_id: str
) -> list[dict[str, JsonValue]]:
    """One non-recurring CRM record per moved occurrence of the series ``series_id``,
    marked in its Description so it is read back as part of the series (``exceptions``)."""
    recurrence = fields.get(RECURRENCE)
    if not isinstance(recurrence, Mapping):
        return []
    when: Mapping[str, Any] = fields[WHEN]  # type: ignore[assignment]
    records = []
    for item in sorted_exceptions(recurrence.get("exceptions") or []):
        if item.get("cancelled"):
            continue
        moved_when = {"all_day": len(str(item["start"])) == 10, "start": item["start"], "end": item["end"],
                      "time_zone": when.get("time_zone")}
        record = fields_to_crm_event({**fields, WHEN: moved_when, RECURRENCE: None}, owner_id=owner_id)
        marker = crm_occurrence_marker(series_id, str(item["original_date"]))
        record["Description"] = f"{record['Description']}\n\n{marker}" if record["Description"] else marker
        records.append(record)
    return records


def fields_to_graph_event(fields: Mapping[str, JsonValue], *, in_outlook: Iterable[str] = ()) -> dict[str, JsonValue]:
    """The body of a Graph create or PATCH (the caller adds ``transactionId`` and our
    extended property). Never ``attendees``; ``in_outlook``: e-mails already attendees
    in Outlook, left out of the participants block."""
    when: Mapping[str, Any] = fields[WHEN]  # type: ignore[assignment]
    recurrence = fields.get(RECURRENCE)
    pattern: JsonValue = None
    if isinstance(recurrence, Mapping) and recurrence.get("rule"):
        zone_name = graph_zone_name(when.get("time_zone"))
        pattern = rule_to_graph(str(recurrence["rule"]), start_wall(when).date(), zone_name)
    minutes = fields.get(REMINDER_MINUTES)
    people: list[Mapping[str, Any]] = fields.get(ATTENDEES) or []  # type: ignore[assignment]
    return {
        "subject": _text(fields.get(TITLE)) or "",
        "body": {"contentType": "html", "content": body_html(_text(fields.get(DESCRIPTION)), people, in_outlook)},
        "location": {"displayName": _text(fields.get(LOCATION)) or ""},
        **when_to_graph(when),
        **reminder_to_graph(minutes if isinstance(minutes, int) else None),
        "recurrence": pattern,
    }


# Which written keys each canonical field feeds. ``when`` also feeds the keys computed
# from the start (a CRM day reminder's time of day, DTSTART, Graph's range.startDate).
_CRM_KEYS = {
    TITLE: ("Event_Title",),
    DESCRIPTION: ("Description",),
    LOCATION: ("Venue",),
    WHEN: ("Start_DateTime", "End_DateTime", "All_day", "Remind_At", "Recurring_Activity"),
    REMINDER_MINUTES: ("Remind_At",),
    RECURRENCE: ("Recurring_Activity", CRM_MOVED_FIELD),
    ATTENDEES: ("Participants",),
}
_GRAPH_KEYS = {
    TITLE: ("subject",),
    DESCRIPTION: ("body",),
    ATTENDEES: ("body",),
    LOCATION: ("location",),
    WHEN: ("start", "end", "isAllDay", "recurrence"),
    REMINDER_MINUTES: ("isReminderOn", "reminderMinutesBeforeStart"),
    RECURRENCE: ("recurrence",),
}


def _patch(full: Mapping[str, JsonValue], changed: Iterable[str], keys: Mapping[str, tuple[str, ...]],
           merged: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    wanted = {key for name in changed for key in keys.get(name, ())}
    if not merged.get(RECURRENCE) and RECURRENCE not in changed:
        wanted -= {"recurrence", "Recurring_Activity"}  # a single event whose times moved: no series to state
    return {key: value for key, value in full.items() if key in wanted}


def patch_to_crm(
    changed: Mapping[str, JsonValue],
    *,
    merged: Mapping[str, JsonValue],
    current_participants: Sequence[Mapping[str, Any]] = (),
) -> dict[str, JsonValue]:
    """The CRM update body for a ``FieldPatch``: ``changed`` are its fields, ``merged``
    the fields after the merge (``Update.link.fields``), needed for dependent keys."""
    fields = {**merged, **changed}
    full = fields_to_crm_event(fields, owner_id="", current_participants=current_participants)
    return _patch(full, changed, _CRM_KEYS, fields)


def patch_to_graph(
    changed: Mapping[str, JsonValue], *, merged: Mapping[str, JsonValue], in_outlook: Iterable[str] = ()
) -> dict[str, JsonValue]:
    """The Graph PATCH body for a ``FieldPatch`` (see ``patch_to_crm``)."""
    fields = {**merged, **changed}
    return _patch(fields_to_graph_event(fields, in_outlook=in_outlook), changed, _GRAPH_KEYS, fields)


__all__ = [
    "ATTENDEES",
    "CRM_MOVED_FIELD",
    "BLOCK_END",
    "BLOCK_START",
    "CALENDAR_NORMALISATION",
    "DESCRIPTION",
    "FIELDS",
    "INITIAL_SYNC_CAP",
    "LOCATION",
    "RECURRENCE",
    "REMINDER_MINUTES",
    "TITLE",
    "WHEN",
    "ExceptionChanges",
    "InvalidWhen",
    "UnknownTimeZone",
    "UnsupportedRecurrence",
    "crm_event_excluded",
    "crm_event_to_fields",
    "crm_occurrence_of",
    "crm_occurrence_records",
    "exception_changes",
    "fields_to_crm_event",
    "fields_to_graph_event",
    "graph_event_excluded",
    "graph_event_to_fields",
    "graph_occurrence_date",
    "graph_occurrence_times",
    "initial_order_key",
    "patch_to_crm",
    "patch_to_graph",
]
