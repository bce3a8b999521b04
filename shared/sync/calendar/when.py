"""The ``when`` field: start, end, all-day flag and the event's zone as one value (SPEC R3.9).

They travel together because a field-by-field merge of start from one side and end from
the other can produce an event that ends before it starts (``merge`` module docstring).

Canonical shape (JSON):

- timed: ``{"all_day": false, "start": "2026-12-01T10:00:00+01:00", "end": ...,
  "time_zone": "Europe/Berlin" | "UTC" | null}``: instants with the offset they have in
  ``time_zone`` (or as the CRM gave them when the zone is unknown), seconds precision;
- all-day: ``{"all_day": true, "start": "2026-12-01", "end": "2026-12-03",
  "time_zone": ...}``: dates, ``end`` **exclusive** (Graph's midnight-to-midnight rule),
  so a one-day event has ``end = start + 1 day``.

Only the instants (timed) or the dates (all-day) are compared (``normalise_when``): the
CRM stores no zone, only offsets, so a zone can never be read back from it and must not
look like a change. The zone is carried so that a write to Graph keeps the event's zone
(recurring series stay at the same wall-clock time across DST).

CRM all-day events (zoho-notes §4, emulator seed): ``All_day: true`` with
``Start_DateTime`` at 00:00 of the first day and ``End_DateTime`` at 23:59 of the last
day (inclusive). We read the dates in the offsets the CRM returns, and accept an end at
00:00 of the day after as exclusive. The time part's exact semantics are [U] in the notes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pydantic import JsonValue

from shared.sync.calendar.timezones import (
    UTC_NAME,
    UnknownTimeZone,
    graph_zone_name,
    iana_name,
    matches_offsets,
    zone,
)

_FRACTION = re.compile(r"(\.\d{1,6})\d*")
_MIDNIGHT = time(0, 0)
_CRM_ALL_DAY_END = time(23, 59)


class InvalidWhen(ValueError):
    """An event whose times cannot be read (missing or malformed start or end)."""


def parse_instant(text: str) -> datetime:
    """An aware datetime from an ISO text with offset (``Z`` allowed), seconds precision."""
    try:
        instant = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (AttributeError, ValueError) as error:
        raise InvalidWhen(f"not a date-time: {text!r}") from error
    if instant.tzinfo is None:
        raise InvalidWhen(f"a date-time without offset: {text!r}")
    return instant.replace(microsecond=0)


def render_instant(instant: datetime, time_zone: str | None) -> str:
    """The canonical text of ``instant``: in ``time_zone`` when known, else as given."""
    if time_zone:
        instant = instant.astimezone(zone(time_zone))
    return instant.replace(microsecond=0).isoformat()


def _graph_wall(value: Mapping[str, Any]) -> datetime:
    """The naive wall-clock time of a Graph ``dateTimeTimeZone`` (7 fraction digits trimmed)."""
    text = _FRACTION.sub(r"\1", str(value.get("dateTime") or ""))
    try:
        wall = datetime.fromisoformat(text)
    except ValueError as error:
        raise InvalidWhen(f"not a Graph dateTime: {value!r}") from error
    return wall.replace(tzinfo=None, microsecond=0)


def _graph_event_zone(event: Mapping[str, Any]) -> tuple[str, str]:
    """(zone the times are expressed in, zone of the event).

    With ``Prefer: outlook.timezone="UTC"`` Graph returns times in UTC; the event's own
    zone is then ``originalStartTimeZone`` (a legacy ``tzone://Microsoft/Custom`` zone
    cannot be resolved and leaves the event in UTC).
    """
    expressed = iana_name(str((event.get("start") or {}).get("timeZone") or UTC_NAME))
    own = expressed
    original = event.get("originalStartTimeZone")
    if expressed == UTC_NAME and original:
        try:
            own = iana_name(str(original))
        except UnknownTimeZone:
            own = UTC_NAME
    return expressed, own


def _nearest_date(local: datetime) -> date:
    """The date of the midnight nearest ``local``: an all-day bound shifted by a zone
    conversion (a UTC read of an event whose zone Graph did not name) snaps back."""
    return (local + timedelta(hours=12)).date()


def when_from_graph(event: Mapping[str, Any]) -> dict[str, JsonValue]:
    """The canonical ``when`` of a Graph event (also used for an exception's times)."""
    expressed, own = _graph_event_zone(event)
    start = _graph_wall(event.get("start") or {}).replace(tzinfo=zone(expressed))
    end = _graph_wall(event.get("end") or {}).replace(tzinfo=zone(expressed))
    if event.get("isAllDay"):
        first = _nearest_date(start.astimezone(zone(own)).replace(tzinfo=None))
        after = _nearest_date(end.astimezone(zone(own)).replace(tzinfo=None))
        return all_day_when(first, max(after, first + timedelta(days=1)), own)
    return timed_when(start, end, own)


def timed_when(start: datetime, end: datetime, time_zone: str | None) -> dict[str, JsonValue]:
    return {
        "all_day": False,
        "start": render_instant(start, time_zone),
        "end": render_instant(end, time_zone),
        "time_zone": time_zone,
    }


def all_day_when(first: date, after_last: date, time_zone: str | None) -> dict[str, JsonValue]:
    return {"all_day": True, "start": first.isoformat(), "end": after_last.isoformat(), "time_zone": time_zone}


def when_from_crm(record: Mapping[str, Any], time_zone: str | None = None) -> dict[str, JsonValue]:
    """The canonical ``when`` of a CRM event.

    ``time_zone`` is the CRM user's zone (Users API ``time_zone``) if the caller knows it:
    it becomes the event's zone when the record's offsets agree with it, so an event
    created in the CRM lands in Outlook in the member's zone rather than in UTC.
    """
    start = parse_instant(str(record.get("Start_DateTime") or ""))
    end = parse_instant(str(record.get("End_DateTime") or ""))
    known = time_zone if time_zone and matches_offsets(time_zone, start, end) else None
    if record.get("All_day"):
        first = start.date()
        if end.time() == _MIDNIGHT and end.date() > first:
            after_last = end.date()  # an exclusive midnight end
        else:
            after_last = max(end.date(), first) + timedelta(days=1)
        return all_day_when(first, after_last, known)
    return timed_when(start, end, known)


def _dates(when: Mapping[str, Any]) -> tuple[date, date]:
    first = date.fromisoformat(str(when["start"]))
    after_last = date.fromisoformat(str(when["end"]))
    return first, max(after_last, first + timedelta(days=1))


def when_to_crm(when: Mapping[str, Any]) -> dict[str, JsonValue]:
    """``Start_DateTime``, ``End_DateTime`` and ``All_day`` for a CRM write (seconds,
    explicit offset: zoho-notes §2)."""
    time_zone = when.get("time_zone")
    if when.get("all_day"):
        first, after_last = _dates(when)
        tz = zone(time_zone)
        start = datetime.combine(first, _MIDNIGHT, tz)
        end = datetime.combine(after_last - timedelta(days=1), _CRM_ALL_DAY_END, tz)
        return {"Start_DateTime": start.isoformat(), "End_DateTime": end.isoformat(), "All_day": True}
    return {
        "Start_DateTime": render_instant(parse_instant(str(when["start"])), time_zone),
        "End_DateTime": render_instant(parse_instant(str(when["end"])), time_zone),
        "All_day": False,
    }


def when_to_graph(when: Mapping[str, Any]) -> dict[str, JsonValue]:
    """``start``, ``end`` and ``isAllDay`` for a Graph write, in the event's zone (UTC
    when unknown). All-day bounds are midnights in one zone, end exclusive (graph-notes §2)."""
    time_zone = when.get("time_zone") or UTC_NAME
    name = graph_zone_name(time_zone)
    if when.get("all_day"):
        first, after_last = _dates(when)
        return {
            "start": {"dateTime": f"{first.isoformat()}T00:00:00", "timeZone": name},
            "end": {"dateTime": f"{after_last.isoformat()}T00:00:00", "timeZone": name},
            "isAllDay": True,
        }
    tz = zone(time_zone)
    start = parse_instant(str(when["start"])).astimezone(tz)
    end = parse_instant(str(when["end"])).astimezone(tz)
    return {
        "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": name},
        "end": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": name},
        "isAllDay": False,
    }


def _utc_text(text: Any) -> str:
    try:
        return parse_instant(str(text)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except InvalidWhen:
        return str(text)


def normalise_when(value: JsonValue) -> JsonValue:
    """What is compared: instants in UTC (timed) or the dates (all-day), not the zone."""
    if not isinstance(value, dict) or "start" not in value:
        return value or None
    if value.get("all_day"):
        return {"all_day": True, "start": str(value["start"]), "end": str(value.get("end"))}
    return {"all_day": False, "start": _utc_text(value["start"]), "end": _utc_text(value.get("end"))}


def start_wall(when: Mapping[str, Any]) -> datetime:
    """The naive wall-clock start of the event in its zone (all-day: midnight)."""
    if when.get("all_day"):
        return datetime.combine(date.fromisoformat(str(when["start"])), _MIDNIGHT)
    return parse_instant(str(when["start"])).replace(tzinfo=None)


def start_instant(when: Mapping[str, Any]) -> datetime:
    """The aware start instant (all-day: midnight in the event's zone, UTC if unknown)."""
    if when.get("all_day"):
        return datetime.combine(date.fromisoformat(str(when["start"])), _MIDNIGHT, zone(when.get("time_zone")))
    return parse_instant(str(when["start"]))
