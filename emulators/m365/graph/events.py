"""Events in a mailbox's calendars: validation, storage, series expansion and Graph's JSON shape.

Used by the Graph routes and by the control surface ("a person in Outlook"), so both go
through the same store and both fire delta changes and notifications.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re

from ..errors import GraphError, invalid_request, not_found_item
from ..store import Mailbox, Store, new_change_key, new_item_id, now_utc
from ..timezones import format_utc_offset, format_wall, parse_wall_time, resolve_zone
from . import recurrence as recurrence_rules
from .odata import check_if_match, extended_properties_from

# event-update: the properties a PATCH may change (plus transactionId on create only).
WRITABLE = {
    "attendees", "body", "categories", "end", "hideAttendees", "importance", "isAllDay", "isOnlineMeeting",
    "isReminderOn", "location", "locations", "onlineMeetingProvider", "recurrence", "reminderMinutesBeforeStart",
    "responseRequested", "sensitivity", "showAs", "start", "subject", "allowNewTimeProposals",
}
READ_ONLY_IGNORED = {
    "id", "@odata.type", "@odata.etag", "@odata.context", "createdDateTime", "lastModifiedDateTime", "changeKey",
    "iCalUId", "type", "seriesMasterId", "bodyPreview", "webLink", "organizer", "isOrganizer", "responseStatus",
    "originalStartTimeZone", "originalEndTimeZone", "hasAttachments", "isCancelled", "isDraft", "onlineMeeting",
    "onlineMeetingUrl", "originalStart", "cancelledOccurrences", "singleValueExtendedProperties", "transactionId",
    "calendar", "extensions", "attachments", "multiValueExtendedProperties", "occurrenceId",
}
ENUMS = {
    "sensitivity": {"normal", "personal", "private", "confidential"},
    "showAs": {"unknown", "free", "tentative", "busy", "oof", "workingElsewhere"},
    "importance": {"low", "normal", "high"},
}
OCCURRENCE_SEPARATOR = "="


def _check_payload(payload: dict, creating: bool) -> None:
    if not isinstance(payload, dict):
        raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
    for key, value in payload.items():
        if key in WRITABLE:
            if key in ENUMS and value not in ENUMS[key]:
                raise GraphError(400, "BadRequest", f"Requested value '{value}' was not found.")
            continue
        if key == "transactionId" and creating:
            continue
        if key == "transactionId":
            raise invalid_request("transactionId cannot be changed after the event is created.")
        if key in READ_ONLY_IGNORED or key.startswith("@"):
            continue
        raise GraphError(
            400, "RequestBodyRead",
            f"The property '{key}' does not exist on type 'microsoft.graph.event'. Make sure to only use property "
            "names that are defined by the type or mark the type as open type.",
        )


def _apply_fields(record: dict, payload: dict) -> None:
    data = record["data"]
    for key in WRITABLE - {"start", "end", "isAllDay", "recurrence"}:
        if key in payload:
            data[key] = payload[key]
    if "body" in payload:
        body = payload["body"] or {}
        kind = str(body.get("contentType", "text")).lower()
        if kind not in ("text", "html"):
            raise GraphError(400, "BadRequest", f"Requested value '{body.get('contentType')}' was not found.")
        data["body"] = {"contentType": kind, "content": body.get("content") or ""}
    if "location" in payload:  # updating location replaces locations (event resource)
        location = payload["location"] or {}
        data["location"] = location
        data["locations"] = [location] if location.get("displayName") else []
    for side in ("start", "end"):
        if side in payload:
            value = payload[side]
            if not isinstance(value, dict) or "dateTime" not in value:
                raise invalid_request(f"The {side} time of the event is invalid.")
            zone_name = value.get("timeZone") or "UTC"
            resolve_zone(zone_name)
            record[f"{side}_wall"] = parse_wall_time(value["dateTime"])
            record[f"{side}_zone"] = zone_name
    if "isAllDay" in payload:
        record["isAllDay"] = bool(payload["isAllDay"])
    if "recurrence" in payload:
        record["recurrence"] = recurrence_rules.validate(payload["recurrence"]) if payload["recurrence"] else None


def _validate_times(record: dict) -> None:
    if record.get("start_wall") is None or record.get("end_wall") is None:
        raise invalid_request("Your request can't be completed. The event must have a start and an end time.")
    if record["isAllDay"]:
        midnight = dt.time(0, 0)
        if (
            record["start_wall"].time() != midnight
            or record["end_wall"].time() != midnight
            or record["start_zone"] != record["end_zone"]
        ):
            raise invalid_request(
                "Your request can't be completed. If the event is an all-day event, its start time and end time "
                "must be set to midnight, and be in the same time zone.",
                code="ErrorPropertyValidationFailure",
            )
        if record["end_wall"] - record["start_wall"] < dt.timedelta(days=1):
            raise invalid_request("The duration of an event marked as All day must be at least 24 hours.",
                                  code="ErrorPropertyValidationFailure")
    if instant(record, "end") < instant(record, "start"):
        raise invalid_request("The end time of the event must be on or after its start time.", code="ErrorInvalidRequest")


def instant(record: dict, side: str) -> dt.datetime:
    """An event boundary as a UTC instant; all-day events float, so they are read in UTC."""
    zone = dt.UTC if record["isAllDay"] else resolve_zone(record[f"{side}_zone"])
    return record[f"{side}_wall"].replace(tzinfo=zone).astimezone(dt.UTC)


def _touch(record: dict) -> None:
    record["changeKey"] = new_change_key()
    record["lastModifiedDateTime"] = now_utc()


def get_calendar(box: Mailbox, calendar_id: str) -> dict:
    calendar = box.calendars.get(calendar_id)
    if calendar is None:
        raise not_found_item()
    return calendar


def default_calendar(box: Mailbox) -> dict:
    return next(c for c in box.calendars.values() if c["isDefaultCalendar"])


def create_event(store: Store, box: Mailbox, calendar_id: str, payload: dict) -> tuple[dict, bool]:
    """Create an event; a repeated transactionId returns the first event (created=False)."""
    with store.lock:
        get_calendar(box, calendar_id)
        _check_payload(payload, creating=True)
        transaction_id = payload.get("transactionId")
        if transaction_id and transaction_id in box.transaction_ids:
            existing = box.events.get(box.transaction_ids[transaction_id])
            if existing is not None:
                return existing, False
        user = store.users[box.user_id]
        event_id = new_item_id()
        record = {
            "id": event_id, "calendarId": calendar_id, "createdDateTime": now_utc(), "lastModifiedDateTime": now_utc(),
            "changeKey": new_change_key(), "iCalUId": "040000008200E00074C5B7101A82E008" + hashlib.sha1(event_id.encode()).hexdigest().upper(),
            "isAllDay": False, "recurrence": None, "isCancelled": False, "transactionId": transaction_id,
            "organizer": {"emailAddress": {"name": user["displayName"], "address": user.get("mail") or user["userPrincipalName"]}},
            "data": {
                "subject": "", "body": {"contentType": "html", "content": ""}, "categories": [], "importance": "normal",
                "sensitivity": "normal", "showAs": "busy", "isReminderOn": True, "reminderMinutesBeforeStart": 15,
                "responseRequested": True, "hideAttendees": False, "allowNewTimeProposals": True, "isOnlineMeeting": False,
                "onlineMeetingProvider": "unknown", "attendees": [], "location": {"displayName": ""}, "locations": [],
            },
            "ext": extended_properties_from(payload), "exceptions": {}, "cancelledDates": set(),
        }
        _apply_fields(record, payload)
        _validate_times(record)
        if record["isAllDay"] and "showAs" not in payload:
            record["data"]["showAs"] = "free"
        box.events[event_id] = record
        if transaction_id:
            box.transaction_ids[transaction_id] = event_id
    store.changed(box.user_id, "event", calendar_id, event_id, "created")
    return record, True


def split_occurrence_id(event_id: str) -> tuple[str, dt.date | None]:
    if OCCURRENCE_SEPARATOR in event_id:
        master, _, day = event_id.rpartition(OCCURRENCE_SEPARATOR)
        if re.fullmatch(r"\d{8}", day):
            return master, dt.datetime.strptime(day, "%Y%m%d").date()
    return event_id, None


def find_event(box: Mailbox, event_id: str, calendar_id: str | None = None) -> tuple[dict, dt.date | None]:
    master_id, day = split_occurrence_id(event_id)
    record = box.events.get(master_id)
    if record is None or (calendar_id is not None and record["calendarId"] != calendar_id):
        raise not_found_item()
    if day is not None and (record["recurrence"] is None or day in record["cancelledDates"] or not _is_occurrence_day(record, day)):
        raise not_found_item()
    return record, day


def _is_occurrence_day(record: dict, day: dt.date) -> bool:
    until = dt.datetime.combine(day, dt.time(23, 59, 59))
    return any(s.date() == day for s in recurrence_rules.occurrence_starts(record["recurrence"], record["start_wall"], until))


def update_event(store: Store, box: Mailbox, event_id: str, payload: dict, calendar_id: str | None = None,
                 if_match: str | None = None) -> dict:
    with store.lock:
        record, day = find_event(box, event_id, calendar_id)
        check_if_match(record, if_match)
        _check_payload(payload, creating=False)
        if day is not None:
            # Changing one occurrence turns it into an exception of the series.
            exception = record["exceptions"].setdefault(day.isoformat(), {"data": {}})
            for key in WRITABLE - {"recurrence"}:
                if key in payload:
                    exception["data"][key] = payload[key]
            exception["changeKey"] = new_change_key()
            exception["lastModifiedDateTime"] = now_utc()
        else:
            candidate = {**record, "data": dict(record["data"])}
            _apply_fields(candidate, payload)
            _validate_times(candidate)
            record.update(candidate)
            if "singleValueExtendedProperties" in payload:
                record["ext"].update(extended_properties_from(payload))
            _touch(record)
    store.changed(box.user_id, "event", record["calendarId"], event_id, "updated")
    return record


def delete_event(store: Store, box: Mailbox, event_id: str, calendar_id: str | None = None) -> None:
    with store.lock:
        record, day = find_event(box, event_id, calendar_id)
        if day is not None:
            record["cancelledDates"].add(day)
            record["exceptions"].pop(day.isoformat(), None)
            _touch(record)
        else:
            del box.events[record["id"]]
            if record.get("transactionId"):
                box.transaction_ids.pop(record["transactionId"], None)
    store.changed(box.user_id, "event", record["calendarId"], event_id, "deleted")


def move_event(store: Store, box: Mailbox, event_id: str, destination_id: str | None) -> dict:
    """A person drags an event to another calendar in Outlook (Graph v1.0 has no move for
    events): Exchange gives it a new id there and keeps its extended properties; the calendar
    it left reports it deleted, the other one created. ``destination_id`` None: the default calendar."""
    with store.lock:
        record, day = find_event(box, event_id)
        if day is not None:
            raise GraphError(400, "ErrorInvalidRequest", "An occurrence cannot be moved apart from its series.")
        destination = destination_id or default_calendar(box)["id"]
        get_calendar(box, destination)
        moved = {**record, "id": new_item_id(), "calendarId": destination, "transactionId": None}
        del box.events[record["id"]]
        if record.get("transactionId"):
            box.transaction_ids.pop(record["transactionId"], None)
        box.events[moved["id"]] = moved
        _touch(moved)
    store.changed(box.user_id, "event", record["calendarId"], event_id, "deleted")
    store.changed(box.user_id, "event", destination, moved["id"], "created")
    return moved


def delete_calendar(store: Store, box: Mailbox, calendar_id: str) -> None:
    with store.lock:
        calendar = get_calendar(box, calendar_id)
        if calendar["isDefaultCalendar"]:
            raise GraphError(400, "ErrorInvalidRequest", "The default calendar cannot be deleted.")
        removed = [e for e in box.events.values() if e["calendarId"] == calendar_id]
        for event in removed:
            del box.events[event["id"]]
        del box.calendars[calendar_id]
    for event in removed:
        store.changed(box.user_id, "event", calendar_id, event["id"], "deleted")


# ---- views ----------------------------------------------------------------------------
def view_items(box: Mailbox, calendar_id: str, window_start: dt.datetime, window_end: dt.datetime) -> list[dict]:
    """calendarView: single instances, occurrences and exceptions overlapping the window; no masters."""
    items = []
    for record in box.events.values():
        if record["calendarId"] != calendar_id:
            continue
        if record["recurrence"] is None:
            if instant(record, "start") < window_end and instant(record, "end") > window_start:
                items.append({"record": record, "day": None})
            continue
        items.extend(
            {"record": record, "day": day}
            for day in occurrence_days(record, window_start, window_end)
        )
    items.sort(key=lambda item: (occurrence_instant(item["record"], item["day"], "start"), item["record"]["id"]))
    return items


def occurrence_days(record: dict, window_start: dt.datetime, window_end: dt.datetime) -> list[dt.date]:
    duration = record["end_wall"] - record["start_wall"]
    zone = dt.UTC if record["isAllDay"] else resolve_zone(record["start_zone"])
    until = window_end.astimezone(zone).replace(tzinfo=None) + dt.timedelta(days=1)
    days = []
    for start in recurrence_rules.occurrence_starts(record["recurrence"], record["start_wall"], until):
        day = start.date()
        if day in record["cancelledDates"]:
            continue
        begin = occurrence_instant(record, day, "start")
        exception = record["exceptions"].get(day.isoformat())
        end = occurrence_instant(record, day, "end") if exception else begin + duration
        if begin < window_end and end > window_start:
            days.append(day)
    return days


def _occurrence_walls(record: dict, day: dt.date) -> dict:
    duration = record["end_wall"] - record["start_wall"]
    start = dt.datetime.combine(day, record["start_wall"].time())
    walls = {"start_wall": start, "end_wall": start + duration, "start_zone": record["start_zone"], "end_zone": record["end_zone"]}
    exception = record["exceptions"].get(day.isoformat())
    if exception:
        for side in ("start", "end"):
            if side in exception["data"]:
                walls[f"{side}_wall"] = parse_wall_time(exception["data"][side]["dateTime"])
                walls[f"{side}_zone"] = exception["data"][side].get("timeZone") or "UTC"
    return walls


def occurrence_instant(record: dict, day: dt.date | None, side: str) -> dt.datetime:
    if day is None:
        return instant(record, side)
    return instant({**record, **_occurrence_walls(record, day)}, side)


def item_id(record: dict, day: dt.date | None) -> str:
    return record["id"] if day is None else f"{record['id']}{OCCURRENCE_SEPARATOR}{day:%Y%m%d}"


def item_change_key(record: dict, day: dt.date | None) -> str:
    if day is not None and day.isoformat() in record["exceptions"]:
        return record["exceptions"][day.isoformat()]["changeKey"]
    return record["changeKey"]


def _render_boundary(record: dict, walls: dict, side: str, zone_pref: str | None) -> dict:
    if record["isAllDay"]:
        # All-day events are floating: midnight whatever zone the reader asks for.
        return {"dateTime": walls[f"{side}_wall"].strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": zone_pref or "UTC"}
    moment = walls[f"{side}_wall"].replace(tzinfo=resolve_zone(walls[f"{side}_zone"]))
    return format_wall(moment, zone_pref or "UTC")


def render_event(store: Store, box: Mailbox, record: dict, day: dt.date | None = None, zone_pref: str | None = None,
                 ext_ids: list[str] | None = None, preview_html: bool = True) -> dict:
    data = dict(record["data"])
    walls = {k: record[k] for k in ("start_wall", "end_wall", "start_zone", "end_zone")}
    kind = "seriesMaster" if record["recurrence"] else "singleInstance"
    modified, change_key = record["lastModifiedDateTime"], record["changeKey"]
    if day is not None:
        walls = _occurrence_walls(record, day)
        exception = record["exceptions"].get(day.isoformat())
        kind = "exception" if exception else "occurrence"
        if exception:
            data.update({k: v for k, v in exception["data"].items() if k not in ("start", "end")})
            modified, change_key = exception["lastModifiedDateTime"], exception["changeKey"]
    user = store.users[box.user_id]
    body = data.get("body") or {"contentType": "html", "content": ""}
    content = body.get("content") or ""
    preview = re.sub(r"<[^>]+>", "", content).strip()[:255]
    event_id = item_id(record, day)
    event = {
        "@odata.etag": f'W/"{change_key}"',
        "id": event_id,
        "createdDateTime": format_utc_offset(record["createdDateTime"]),
        "lastModifiedDateTime": format_utc_offset(modified),
        "changeKey": change_key,
        "categories": data.get("categories", []),
        "transactionId": record.get("transactionId"),
        "originalStartTimeZone": walls["start_zone"],
        "originalEndTimeZone": walls["end_zone"],
        "iCalUId": record["iCalUId"] if day is None else record["iCalUId"][:-8] + hashlib.sha1(event_id.encode()).hexdigest()[:8].upper(),
        "uid": record["iCalUId"],
        "reminderMinutesBeforeStart": data.get("reminderMinutesBeforeStart"),
        "isReminderOn": data.get("isReminderOn"),
        "hasAttachments": False,
        "subject": data.get("subject"),
        "bodyPreview": preview,
        "importance": data.get("importance"),
        "sensitivity": data.get("sensitivity"),
        "isAllDay": record["isAllDay"],
        "isCancelled": record["isCancelled"],
        "isOrganizer": True,
        "responseRequested": data.get("responseRequested"),
        "seriesMasterId": record["id"] if day is not None else None,
        "showAs": data.get("showAs"),
        "type": kind,
        "webLink": f"https://outlook.office365.com/owa/?itemid={event_id}&exvsurl=1&path=/calendar/item",
        "onlineMeetingUrl": None,
        "isOnlineMeeting": data.get("isOnlineMeeting"),
        "onlineMeetingProvider": data.get("onlineMeetingProvider"),
        "allowNewTimeProposals": data.get("allowNewTimeProposals"),
        "isDraft": False,
        "hideAttendees": data.get("hideAttendees"),
        "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
        "body": {"contentType": body.get("contentType", "html"), "content": content},
        "start": _render_boundary(record, walls, "start", zone_pref),
        "end": _render_boundary(record, walls, "end", zone_pref),
        "location": data.get("location") or {"displayName": ""},
        "locations": data.get("locations") or [],
        "recurrence": record["recurrence"] if day is None else None,
        "attendees": [
            {"type": a.get("type", "required"), "status": a.get("status") or {"response": "none", "time": "0001-01-01T00:00:00Z"},
             "emailAddress": a.get("emailAddress") or {}}
            for a in data.get("attendees") or []
        ],
        "organizer": record["organizer"] or {"emailAddress": {"name": user["displayName"], "address": user["userPrincipalName"]}},
        "onlineMeeting": None,
    }
    if day is not None:
        event["originalStart"] = format_utc_offset(occurrence_instant(record, day, "start") if day.isoformat() not in record["exceptions"]
                                                   else instant({**record, "start_wall": dt.datetime.combine(day, record["start_wall"].time())}, "start"))
    if record["recurrence"] and day is None and record["cancelledDates"]:
        event["cancelledOccurrences"] = [f"OID.{record['id']}.{d.isoformat()}" for d in sorted(record["cancelledDates"])]
    if event["transactionId"] is None:
        del event["transactionId"]  # only returned if an app has set it
    if ext_ids:
        event["singleValueExtendedProperties"] = [
            {"id": pid, "value": record["ext"][pid]} for pid in ext_ids if pid in record["ext"]
        ]
    return event


def render_calendar(store: Store, box: Mailbox, calendar: dict, ext_ids: list[str] | None = None) -> dict:
    user = store.users[box.user_id]
    result = {
        "@odata.etag": f'W/"{calendar["changeKey"]}"',
        "id": calendar["id"], "name": calendar["name"], "color": calendar["color"], "hexColor": calendar.get("hexColor", ""),
        "isDefaultCalendar": calendar["isDefaultCalendar"], "changeKey": calendar["changeKey"], "canShare": True,
        "canViewPrivateItems": True, "canEdit": True, "allowedOnlineMeetingProviders": ["teamsForBusiness"],
        "defaultOnlineMeetingProvider": "teamsForBusiness", "isTallyingResponses": True,
        "isRemovable": not calendar["isDefaultCalendar"],
        "owner": {"name": user["displayName"], "address": user.get("mail") or user["userPrincipalName"]},
    }
    if ext_ids:
        result["singleValueExtendedProperties"] = [
            {"id": pid, "value": calendar["ext"][pid]} for pid in ext_ids if pid in calendar["ext"]
        ]
    return result


CALENDAR_WRITABLE = {"name", "color", "hexColor", "singleValueExtendedProperties"}


def create_calendar(store: Store, box: Mailbox, payload: dict, default: bool = False) -> dict:
    with store.lock:
        if not isinstance(payload, dict) or not (payload.get("name") or "").strip():
            raise GraphError(400, "ErrorInvalidParameter", "The parameter 'name' is missing or empty.") if isinstance(payload, dict) else GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
        unknown = set(payload) - CALENDAR_WRITABLE - {"@odata.type"}
        if unknown:
            raise GraphError(400, "RequestBodyRead", f"The property '{sorted(unknown)[0]}' does not exist on type 'microsoft.graph.calendar'.")
        if any(c["name"].lower() == payload["name"].strip().lower() for c in box.calendars.values()):
            raise GraphError(409, "ErrorFolderExists", "A folder with the specified name already exists.")
        calendar_id = new_item_id()
        calendar = {
            "id": calendar_id, "name": payload["name"].strip(), "color": payload.get("color", "auto"),
            "hexColor": payload.get("hexColor", ""), "isDefaultCalendar": default, "changeKey": new_change_key(),
            "ext": extended_properties_from(payload),
        }
        box.calendars[calendar_id] = calendar
        return calendar


def update_calendar(store: Store, box: Mailbox, calendar_id: str, payload: dict) -> dict:
    with store.lock:
        calendar = get_calendar(box, calendar_id)
        unknown = set(payload) - CALENDAR_WRITABLE - {"@odata.type", "id"}
        if unknown:
            raise GraphError(400, "RequestBodyRead", f"The property '{sorted(unknown)[0]}' does not exist on type 'microsoft.graph.calendar'.")
        for key in ("name", "color", "hexColor"):
            if key in payload:
                calendar[key] = payload[key]
        calendar["ext"].update(extended_properties_from(payload))
        calendar["changeKey"] = new_change_key()
        return calendar
