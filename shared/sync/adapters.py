"""The two kinds of sync, built for one member: which CRM module and fields, which Outlook
container, and the field mapping each way (SPEC R3.9, R4.2). The engine, executor and
runner are the same for both (issue 8: "no second engine")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.accounts.models import MemberIdentity
from shared.graph.calendars import CalendarClient
from shared.graph.contacts import ContactsClient
from shared.graph.extended_properties import crm_id_of
from shared.graph.mailbox import GraphMailbox
from shared.graph.models import Contact, Event
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


def crm_time(value: Any) -> datetime:
    """The CRM's ``Modified_Time`` (ISO 8601 with offset) as an aware datetime."""
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.fromtimestamp(0, UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def graph_time(item: dict[str, Any]) -> datetime:
    return crm_time(item.get("lastModifiedDateTime") or "1970-01-01T00:00:00+00:00")


def adapter_for(member: MemberIdentity, kind: SyncKind, mailbox: GraphMailbox, **options: Any) -> SyncKindAdapter:
    if kind is SyncKind.CONTACTS:
        return contacts_adapter(member, mailbox, options.get("contact_mapping") or DEFAULT_CONTACT_MAPPING)
    return calendar_adapter(member, mailbox)


def contacts_adapter(member: MemberIdentity, mailbox: GraphMailbox, mapping: ContactMapping) -> SyncKindAdapter:
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
            partner_id=record.get(CRM_MARKER_FIELD) or None, excluded=crm_contact_excluded(record, member_user_id=owner),
        )

    def outlook_to_seen(item: dict[str, Any]) -> ItemSeen:
        return ItemSeen(
            item_id=str(item["id"]), version=str(item.get("changeKey", "")),
            fields=graph_contact_to_fields(item, mapping), modified_at=graph_time(item),
            partner_id=crm_id_of(Contact.model_validate(item)),
        )

    client = ContactsClient(mailbox)
    return SyncKindAdapter(
        name="contacts", crm_module="Contacts", crm_fields=tuple(dict.fromkeys([*mapped, *_BOOKKEEPING]))[:50],
        container_name=CONTACTS_FOLDER, normalisation=CONTACTS_NORMALISATION, outlook=client,
        crm_to_seen=crm_to_seen, outlook_to_seen=outlook_to_seen,
        to_crm=lambda fields: fields_to_crm_contact(fields, mapping),
        to_outlook=lambda fields, merged: fields_to_graph_contact(fields, mapping, merged=merged),
        initial_cap=INITIAL_SYNC_CAP, scan_fields=("Modified_Time", "Data_Source"),
        # R4.6 names no order: the most recently changed contacts go first.
        initial_key=lambda r: [-crm_time(r.get("Modified_Time")).timestamp(), str(r["id"])],
        excluded=lambda r: crm_contact_excluded(r, member_user_id=owner),
        delta=lambda folder, resume: client.delta(folder, resume_from=resume),
    )


def calendar_adapter(member: MemberIdentity, mailbox: GraphMailbox) -> SyncKindAdapter:
    from shared.sync.calendar_adapter import build

    return build(member, mailbox, CalendarClient(mailbox), Event)
