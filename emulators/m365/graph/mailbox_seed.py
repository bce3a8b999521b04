"""Filling a mailbox from the seed JSON, and dumping one for /__emulator/snapshot."""

from __future__ import annotations

import datetime as dt

from ..store import Mailbox, Store
from . import contacts, events


def populate(store: Store, box: Mailbox, seed: dict) -> None:
    today = dt.datetime.now(dt.UTC).date()
    calendars = seed.get("calendars") or [{"name": "Calendar", "isDefault": True}]
    if not any(c.get("isDefault") for c in calendars):
        calendars = [{"name": "Calendar", "isDefault": True}, *calendars]
    for cal_seed in calendars:
        calendar = events.create_calendar(store, box, {"name": cal_seed["name"]}, default=bool(cal_seed.get("isDefault")))
        for ev in cal_seed.get("events", []):
            payload = {k: v for k, v in ev.items() if k in events.WRITABLE}
            if "startOffsetDays" in ev:
                start = dt.datetime.combine(today + dt.timedelta(days=ev["startOffsetDays"]), dt.time.fromisoformat(ev.get("startTime", "09:00")))
                end = start + dt.timedelta(minutes=ev.get("durationMinutes", 60))
                zone = ev.get("timeZone", "UTC")
                payload["start"] = {"dateTime": start.isoformat(), "timeZone": zone}
                payload["end"] = {"dateTime": end.isoformat(), "timeZone": zone}
            if isinstance(ev.get("location"), str):
                payload["location"] = {"displayName": ev["location"]}
            if isinstance(ev.get("body"), str):
                payload["body"] = {"contentType": "html", "content": ev["body"]}
            events.create_event(store, box, calendar["id"], payload)
    folders = seed.get("contactFolders") or [{"displayName": "Contacts", "isDefault": True}]
    for folder_seed in folders:
        folder = contacts.create_folder(store, box, {"displayName": folder_seed["displayName"]}, default=bool(folder_seed.get("isDefault")))
        for contact in folder_seed.get("contacts", []):
            contacts.create_contact(store, box, folder["id"], contact)


def snapshot(store: Store, box: Mailbox) -> dict:
    from .mail import render_message

    user_events = {}
    for record in box.events.values():
        user_events.setdefault(record["calendarId"], []).append(events.render_event(store, box, record, ext_ids=list(record["ext"])))
    folder_contacts = {}
    for contact in box.contacts.values():
        folder_contacts.setdefault(contact["parentFolderId"], []).append(contacts.render_contact(contact, ext_ids=list(contact["ext"])))
    return {
        "calendars": [
            {**events.render_calendar(store, box, c, ext_ids=list(c["ext"])), "events": user_events.get(c["id"], [])}
            for c in box.calendars.values()
        ],
        "contactFolders": [
            {**contacts.render_folder(f, ext_ids=list(f["ext"])), "isDefault": f["isDefault"], "contacts": folder_contacts.get(f["id"], [])}
            for f in box.contact_folders.values()
        ],
        "messages": [render_message(m) for m in sorted(box.messages.values(), key=lambda m: m["receivedDateTime"], reverse=True)],
    }
