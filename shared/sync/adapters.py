"""The two kinds of sync, built for one member: which CRM module and fields, which Outlook
container, and the field mapping each way (SPEC R3.9, R4.2). The engine, executor and
runner are the same for both (issue 8: "no second engine")."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import JsonValue

from shared.accounts.models import MemberIdentity
from shared.graph.calendars import CalendarClient
from shared.graph.contacts import ContactsClient
from shared.graph.errors import GraphError
from shared.graph.extended_properties import crm_id_of
from shared.graph.mailbox import GraphMailbox
from shared.graph.models import Contact, Event
from shared.graph.sync_errors import ContainerGone, ItemNotFound
from shared.sync import calendar_mapping, markers
from shared.sync.changes import ItemSeen
from shared.sync.contacts import (
    CONTACTS_NORMALISATION,
    CRM_CONTACT_FIELDS,
    DEFAULT_CONTACT_MAPPING,
    INITIAL_SYNC_CAP,
    ContactMapping,
    crm_contact_excluded,
    crm_contact_to_fields,
    fields_to_crm_contact,
    fields_to_graph_contact,
    graph_contact_to_fields,
)
from shared.sync.kind import CRM_MARKER_FIELD, SyncKindAdapter
from shared.sync.profiles import SyncKind

CONTACTS_FOLDER = "Zoho CRM Contacts"
CALENDAR_NAME = "Zoho CRM"
_BOOKKEEPING = ("Modified_Time", "Data_Source", "Owner", CRM_MARKER_FIELD)
EVENT_FIELDS = (
    "Event_Title", "Start_DateTime", "End_DateTime", "All_day", "Venue", "Description", "Participants", "Remind_At",
    "Recurring_Activity", calendar_mapping.CRM_MOVED_FIELD, *_BOOKKEEPING,
)
# Graph's calendarView delta needs a window; events outside it are never reported (and so
# never deleted: absence is not a deletion).
DELTA_WINDOW_PAST = timedelta(days=365)
DELTA_WINDOW_FUTURE = timedelta(days=730)


def crm_time(value: Any) -> datetime:
    """The CRM's ``Modified_Time`` (ISO 8601 with offset) as an aware datetime."""
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.fromtimestamp(0, UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def graph_time(item: dict[str, Any]) -> datetime:
    return crm_time(item.get("lastModifiedDateTime") or "1970-01-01T00:00:00+00:00")


def adapter_for(
    member: MemberIdentity, kind: SyncKind, mailbox: GraphMailbox, *, reference: datetime | None = None,
    contact_mapping: ContactMapping | None = None, crm_time_zone: str | None = None, generation: str | None = None,
) -> SyncKindAdapter:
    """``reference``: the moment the sync was enabled, so that the initial sync's order
    (upcoming events first, R3.5) is the same in every step of it. ``generation``: the
    member's current Enable (markers of another one name no partner)."""
    if kind is SyncKind.CONTACTS:
        return contacts_adapter(member, mailbox, contact_mapping or DEFAULT_CONTACT_MAPPING, generation)
    return calendar_adapter(member, mailbox, reference or datetime.now(UTC), crm_time_zone, generation)


def contacts_adapter(
    member: MemberIdentity, mailbox: GraphMailbox, mapping: ContactMapping, generation: str | None = None
) -> SyncKindAdapter:
    """Contacts of the member's own (R4.5), not imported or migrated (R4.7), at most 10,000 (R4.6)."""
    owner = member.user_id
    mapped: list[str] = []
    for pair in mapping.pairs:
        field = CRM_CONTACT_FIELDS.get(pair.crm_field)
        mapped += list(field.parts) if field is not None and field.parts else [pair.crm_field]

    def crm_to_seen(record: dict[str, Any]) -> ItemSeen:
        return ItemSeen(
            item_id=str(record["id"]), version=str(record.get("Modified_Time", "")),
            fields=crm_contact_to_fields(record, mapping), modified_at=crm_time(record.get("Modified_Time")),
            partner_id=markers.decode(generation, record.get(CRM_MARKER_FIELD)),
            excluded=crm_contact_excluded(record, member_user_id=owner),
            label=_name(record.get("First_Name"), record.get("Last_Name")),
        )

    def outlook_to_seen(item: dict[str, Any]) -> ItemSeen:
        return ItemSeen(
            item_id=str(item["id"]), version=str(item.get("changeKey", "")),
            fields=graph_contact_to_fields(item, mapping), modified_at=graph_time(item),
            partner_id=markers.decode(generation, crm_id_of(Contact.model_validate(item))),
            label=_name(item.get("givenName"), item.get("surname")),
        )

    client = ContactsClient(mailbox)
    return SyncKindAdapter(
        name="contacts", crm_module="Contacts", crm_fields=tuple(dict.fromkeys([*mapped, *_BOOKKEEPING]))[:50],
        container_name=CONTACTS_FOLDER, normalisation=CONTACTS_NORMALISATION, outlook=client,
        crm_to_seen=crm_to_seen, outlook_to_seen=outlook_to_seen,
        to_crm=lambda fields, merged: fields_to_crm_contact(fields, mapping),
        to_outlook=lambda fields, merged: fields_to_graph_contact(fields, mapping, merged=merged),
        initial_cap=INITIAL_SYNC_CAP, scan_fields=("Modified_Time", "Data_Source"),
        # R4.6 names no order: the most recently changed contacts go first.
        initial_key=lambda r: [-crm_time(r.get("Modified_Time")).timestamp(), str(r["id"])],
        excluded=lambda r: crm_contact_excluded(r, member_user_id=owner),
        delta=lambda folder, resume: client.delta(folder, resume_from=resume), generation=generation,
        label_of=contact_label,
    )


def calendar_adapter(
    member: MemberIdentity, mailbox: GraphMailbox, reference: datetime, crm_time_zone: str | None = None,
    generation: str | None = None,
) -> SyncKindAdapter:
    """Events of the member's own (R3.4), not imported (R3.6), at most 5,000, upcoming first (R3.5).
    ``crm_time_zone``: the member's zone in the CRM, so their CRM events land in Outlook in it."""
    owner = member.user_id
    client = CalendarClient(mailbox)

    def excluded(record: dict[str, Any]) -> str | None:
        return calendar_mapping.crm_event_excluded(record, member_user_id=owner)

    def crm_to_seen(record: dict[str, Any]) -> ItemSeen:
        reason = excluded(record)
        return ItemSeen(
            item_id=str(record["id"]), version=str(record.get("Modified_Time", "")),
            fields={} if reason else calendar_mapping.crm_event_to_fields(record, time_zone=crm_time_zone),
            modified_at=crm_time(record.get("Modified_Time")), partner_id=markers.decode(generation, record.get(CRM_MARKER_FIELD)),
            excluded=reason, label=str(record.get("Event_Title") or ""),
        )

    def outlook_to_seen(item: dict[str, Any], instances: list[dict[str, Any]] | None = None) -> ItemSeen:
        reason = calendar_mapping.graph_event_excluded(item)
        # A series' version covers its exceptions too (moving one may not move the master's).
        version = "/".join([str(item.get("changeKey", "")), *sorted(str(i.get("changeKey", "")) for i in instances or [])])
        return ItemSeen(
            item_id=str(item["id"]), version=version,
            fields={} if reason else calendar_mapping.graph_event_to_fields(item, instances=instances or ()),
            modified_at=graph_time(item), partner_id=markers.decode(generation, crm_id_of(Event.model_validate(item))),
            excluded=reason, label=str(item.get("subject") or ""),
        )

    def to_crm(fields: Mapping[str, JsonValue], merged: Mapping[str, JsonValue] | None) -> dict[str, Any]:
        if merged is None:
            return dict(calendar_mapping.fields_to_crm_event(fields, owner_id=owner))
        return dict(calendar_mapping.patch_to_crm(fields, merged=merged))

    def to_outlook(fields: Mapping[str, JsonValue], merged: Mapping[str, JsonValue] | None) -> dict[str, Any]:
        if merged is None:
            return dict(calendar_mapping.fields_to_graph_event(fields))
        return dict(calendar_mapping.patch_to_graph(fields, merged=merged))

    def series_master_of(item: dict[str, Any]) -> str | None:
        if item.get("type") in ("occurrence", "exception") and isinstance(item.get("seriesMasterId"), str):
            return str(item["seriesMasterId"])
        return None

    def read_series(calendar_id: str, master_ids: list[str]) -> tuple[list[ItemSeen], list[str]]:
        seen: list[ItemSeen] = []
        gone: list[str] = []
        for master_id, item in zip(master_ids, client.get_items(calendar_id, master_ids), strict=True):
            if isinstance(item, ContainerGone):
                raise item
            if type(item) is ItemNotFound:
                gone.append(master_id)  # a confirmed 404: the series was deleted
            elif not isinstance(item, GraphError):  # another failure: read again next round
                master = item.to_graph()
                now = datetime.now(UTC)
                instances = [
                    i.to_graph() for i in client.instances(master_id, now - DELTA_WINDOW_PAST, now + DELTA_WINDOW_FUTURE)
                ] if master.get("recurrence") else []
                seen.append(outlook_to_seen(master, [i for i in instances if i.get("type") == "exception"]))
        return seen, gone

    def after_outlook_write(
        calendar_id: str, master_id: str, before: Mapping[str, JsonValue] | None, after: Mapping[str, JsonValue]
    ) -> None:
        """Apply a series' exceptions Outlook's event body cannot carry: a cancelled occurrence
        is a DELETE of it, a moved one a PATCH of its times. (An occurrence cancelled in
        Outlook cannot be brought back there: Graph has no API for it.)"""
        changes = calendar_mapping.exception_changes(
            (before or {}).get(calendar_mapping.RECURRENCE), after.get(calendar_mapping.RECURRENCE)
        )
        when = after.get(calendar_mapping.WHEN)
        zone = when.get("time_zone") if isinstance(when, Mapping) else None
        def occurrence_on(text: str) -> Any:
            day = date.fromisoformat(text)
            for occurrence in client.occurrences_around(master_id, day):
                raw = occurrence.to_graph()
                if raw.get("originalStart") and calendar_mapping.graph_occurrence_date(raw, zone) == day:  # type: ignore[arg-type]
                    return occurrence
            return None

        for text in changes.cancel:
            if (found := occurrence_on(text)) is not None:
                client.cancel_occurrence(found.id)
        for exception in changes.move:
            if (found := occurrence_on(str(exception["original_date"]))) is not None:
                client.move_occurrence(found.id, calendar_mapping.graph_occurrence_times(exception, zone))  # type: ignore[arg-type]

    def outside_window(calendar_id: str) -> list[ItemSeen]:
        now = datetime.now(UTC)
        return [outlook_to_seen(e.to_graph())
                for e in client.events_outside(calendar_id, now - DELTA_WINDOW_PAST, now + DELTA_WINDOW_FUTURE)]

    def delta(calendar_id: str, resume: str | None) -> Iterator[Any]:
        if resume:
            return client.delta(calendar_id, resume_from=resume)
        now = datetime.now(UTC)
        return client.delta(calendar_id, start=now - DELTA_WINDOW_PAST, end=now + DELTA_WINDOW_FUTURE)

    return SyncKindAdapter(
        name="calendar", crm_module="Events", crm_fields=EVENT_FIELDS, container_name=CALENDAR_NAME,
        normalisation=calendar_mapping.CALENDAR_NORMALISATION, outlook=client, crm_to_seen=crm_to_seen,
        outlook_to_seen=outlook_to_seen, to_crm=to_crm, to_outlook=to_outlook,
        initial_cap=calendar_mapping.INITIAL_SYNC_CAP,
        scan_fields=("Start_DateTime", "End_DateTime", "Data_Source", "Recurring_Activity", "Description"),
        initial_key=lambda record: calendar_order_key(record, reference), excluded=excluded, delta=delta,
        series_master_of=series_master_of, read_series=read_series, after_outlook_write=after_outlook_write,
        generation=generation, label_of=event_label, outside_window=outside_window,
    )


def _name(*parts: object) -> str:
    return " ".join(str(p) for p in parts if p)


def event_label(fields: Mapping[str, JsonValue]) -> str:
    return str(fields.get(calendar_mapping.TITLE) or "")


def contact_label(fields: Mapping[str, JsonValue]) -> str:
    """A contact's name from its mapped fields, whatever the member's mapping calls them."""
    def part(crm_field: str) -> object:
        return next((value for key, value in fields.items() if key.split(":", 1)[0] == crm_field), None)

    return _name(part("First_Name"), part("Last_Name")) or str(part("Email") or "")


def calendar_order_key(record: Mapping[str, Any], reference: datetime) -> list[Any]:
    """R3.5 as a sortable key: upcoming events (soonest first), then completed ones (latest
    first), then those whose times cannot be read (the mapping reports them)."""
    try:
        start = datetime.fromisoformat(str(record.get("Start_DateTime")))
        end = datetime.fromisoformat(str(record.get("End_DateTime")))
    except ValueError:
        return [2, 0.0, str(record["id"])]
    if end > reference or calendar_still_running(record, reference):
        return [0, start.timestamp(), str(record["id"])]
    return [1, -end.timestamp(), str(record["id"])]


def calendar_still_running(record: Mapping[str, Any], reference: datetime) -> bool:
    """A series with no end date is still running (its range, not its first slot, counts)."""
    recurring = record.get("Recurring_Activity")
    return isinstance(recurring, Mapping) and bool(recurring.get("RRULE")) and "UNTIL" not in str(recurring.get("RRULE"))


# What a person calls an item of each kind, from a link row's fields (the sync ledger's names).
LABELS = {SyncKind.CALENDAR: event_label, SyncKind.CONTACTS: contact_label}
