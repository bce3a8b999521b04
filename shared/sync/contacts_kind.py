"""Contacts sync's rules (SPEC R4), pure: the member's own contacts (R4.5), not imported or
migrated (R4.7), at most 10,000 (R4.6), mapped both ways by the member's mapping (R4.2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import JsonValue

from shared.sync.changes import ItemSeen
from shared.sync.contacts import (
    CONTACTS_NORMALISATION,
    CRM_CONTACT_FIELDS,
    INITIAL_SYNC_CAP,
    ContactMapping,
    crm_contact_excluded,
    crm_contact_to_fields,
    fields_to_crm_contact,
    fields_to_graph_contact,
    graph_contact_to_fields,
)
from shared.sync.kind import CRM_MARKER_FIELD, KindRules, crm_time, graph_time, person_name

CONTACTS_FOLDER = "Zoho CRM Contacts"
_BOOKKEEPING = ("Modified_Time", "Data_Source", "Owner", CRM_MARKER_FIELD)


class ContactsRules(KindRules):
    name = "contacts"
    crm_module = "Contacts"
    container_name = CONTACTS_FOLDER
    normalisation = CONTACTS_NORMALISATION
    initial_cap = INITIAL_SYNC_CAP
    scan_fields = ("Modified_Time", "Data_Source", "First_Name", "Last_Name")

    def __init__(self, owner_id: str, generation: str | None, *, mapping: ContactMapping, initial_cap: int | None = None) -> None:
        super().__init__(owner_id, generation, initial_cap=initial_cap)
        self.mapping = mapping

    @property
    def crm_fields(self) -> tuple[str, ...]:
        mapped: list[str] = []
        for pair in self.mapping.pairs:
            field = CRM_CONTACT_FIELDS.get(pair.crm_field)
            mapped += list(field.parts) if field is not None and field.parts else [pair.crm_field]
        return tuple(dict.fromkeys([*mapped, *_BOOKKEEPING]))[:50]

    def excluded(self, record: dict[str, Any]) -> str | None:
        return crm_contact_excluded(record, member_user_id=self.owner_id)

    def crm_to_seen(self, record: dict[str, Any]) -> ItemSeen:
        return ItemSeen(
            item_id=str(record["id"]), version=str(record.get("Modified_Time", "")),
            fields=crm_contact_to_fields(record, self.mapping), modified_at=crm_time(record.get("Modified_Time")),
            partner_id=self.partner_named_by(record.get(CRM_MARKER_FIELD)), excluded=self.excluded(record),
            label=self.crm_label(record),
        )

    def crm_label(self, record: Mapping[str, Any]) -> str:
        return person_name(record.get("First_Name"), record.get("Last_Name"))

    def outlook_to_seen(self, item: dict[str, Any], marker: str | None,
                        instances: Sequence[dict[str, Any]] = ()) -> ItemSeen:
        return ItemSeen(
            item_id=str(item["id"]), version=str(item.get("changeKey", "")),
            fields=graph_contact_to_fields(item, self.mapping), modified_at=graph_time(item),
            partner_id=self.partner_named_by(marker), label=person_name(item.get("givenName"), item.get("surname")),
        )

    def to_crm(self, fields: Mapping[str, JsonValue], merged: Mapping[str, JsonValue] | None) -> dict[str, Any]:
        return fields_to_crm_contact(fields, self.mapping)

    def to_outlook(self, fields: Mapping[str, JsonValue], merged: Mapping[str, JsonValue] | None) -> dict[str, Any]:
        return fields_to_graph_contact(fields, self.mapping, merged=merged)

    def initial_key(self, record: dict[str, Any]) -> list[Any]:
        # R4.6 names no order: the most recently changed contacts go first.
        return [-crm_time(record.get("Modified_Time")).timestamp(), str(record["id"])]

    @staticmethod
    def label_of(fields: Mapping[str, JsonValue]) -> str:
        """A contact's name from its mapped fields, whatever the member's mapping calls them."""
        def part(crm_field: str) -> object:
            return next((value for key, value in fields.items() if key.split(":", 1)[0] == crm_field), None)

        return person_name(part("First_Name"), part("Last_Name")) or str(part("Email") or "")
