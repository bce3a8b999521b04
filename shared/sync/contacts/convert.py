"""CRM record / Graph contact ⇄ the engine's canonical fields, by the mapping (SPEC R4.2, R4.4).

The canonical fields of a contact are ``{pair.key: value}`` for every pair of the
mapping, whatever its direction, with the value in one shape per type:

=================  ==============================================================
type               canonical value
=================  ==============================================================
text, multi-line   the string
email              the address string (Graph's ``emailAddress.name`` is not data)
phone              the string as typed (``CONTACTS_NORMALISATION`` compares digits)
date               ``"yyyy-mm-dd"`` (CRM ``Date_of_Birth``; the date of Graph's
                   ``birthday`` instant as written)
address            ``{street, city, state, postalCode, countryOrRegion}``, empty
                   parts left out (CRM: the five fields of the group)
list               list of strings (CRM ``Tag``: the tag names)
=================  ==============================================================

Empty values are left out, so both sides of equal data give equal dicts. Both readers
read every pair, one-way ones included, because the engine compares one fingerprint
for both sides; direction applies when writing: ``fields_to_crm_contact`` never writes a
``crm_to_outlook`` pair and ``fields_to_graph_contact`` never an ``outlook_to_crm`` one.
A change made on the wrong side of a one-way pair is thus not propagated, and the
source's value is written back over it with the source's next change.

**Outlook lists have no gaps.** Graph returns ``emailAddresses`` and the phone lists
compacted, so a CRM contact with only a ``Secondary_Email`` shows in Outlook as its
first address. Both readers therefore compact the values of a collection's mapped
slots in slot order, so that the same data reads the same on both sides and never
ping-pongs; the CRM keeps its layout until that value is next changed in Outlook.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from pydantic import JsonValue

from shared.sync.contacts.catalogue import (
    ADDRESS_PARTS,
    CRM_CONTACT_FIELDS,
    GRAPH_CONTACT_FIELDS,
    CrmCatalogue,
    CrmField,
    CrmShape,
    FieldType,
)
from shared.sync.contacts.mapping import ContactMapping, FieldPair
from shared.sync.links import Side

_DATE_PREFIX = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})")
# Graph's birthday is an instant. 11:59 UTC falls on the same calendar day in every time
# zone from UTC-11 to UTC+12, so an Outlook client showing it in local time shows the day.
_BIRTHDAY_TIME = "T11:59:00Z"


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _address(parts: Mapping[str, Any]) -> dict[str, str] | None:
    kept = {
        part: parts[part]
        for part in ADDRESS_PARTS
        if isinstance(parts.get(part), str) and parts[part].strip()
    }
    return kept or None


def _date(value: Any) -> str | None:
    found = _DATE_PREFIX.match(value) if isinstance(value, str) else None
    return found.group(1) if found else None


# --- reading -------------------------------------------------------------------------------


def _crm_value(record: Mapping[str, Any], field: CrmField | None, name: str) -> JsonValue:
    if field is None:
        return record.get(name)
    if field.shape is CrmShape.ADDRESS_GROUP:
        return _address({part: record.get(crm) for part, crm in zip(ADDRESS_PARTS, field.parts, strict=True)})
    raw = record.get(name)
    if field.shape is CrmShape.LOOKUP:
        return raw.get("name") if isinstance(raw, dict) else raw
    if field.shape is CrmShape.TAGS:
        return [tag["name"] for tag in raw or () if isinstance(tag, dict) and tag.get("name")]
    if field.type is FieldType.DATE:
        return _date(raw)
    return raw


def _graph_value(contact: Mapping[str, Any], name: str) -> JsonValue:
    field = GRAPH_CONTACT_FIELDS.get(name)
    if field is None:
        return contact.get(name)
    if field.slot is not None:
        collection, index = field.slot
        items = contact.get(collection) or []
        return _element_value(items[index], field.type) if index < len(items) else None
    raw = contact.get(name)
    if field.type is FieldType.ADDRESS:
        return _address(raw) if isinstance(raw, dict) else None
    if field.type is FieldType.DATE:
        return _date(raw)
    return raw


def _element_value(element: Any, kind: FieldType) -> JsonValue:
    if kind is FieldType.EMAIL:
        return element.get("address") if isinstance(element, dict) else None
    return element


def _slot_groups(mapping: ContactMapping) -> dict[str, list[tuple[int, FieldPair]]]:
    """Pairs that map a slot of a Graph collection, by collection, in slot order."""
    groups: dict[str, list[tuple[int, FieldPair]]] = defaultdict(list)
    for pair in mapping.pairs:
        field = GRAPH_CONTACT_FIELDS.get(pair.outlook_field)
        if field is not None and field.slot is not None:
            groups[field.slot[0]].append((field.slot[1], pair))
    return {collection: sorted(pairs, key=lambda item: item[0]) for collection, pairs in groups.items()}


def _canonical(values: dict[str, JsonValue], mapping: ContactMapping) -> dict[str, JsonValue]:
    for slots in _slot_groups(mapping).values():
        filled = [values.get(pair.key) for _, pair in slots if not _empty(values.get(pair.key))]
        for position, (_, pair) in enumerate(slots):
            values[pair.key] = filled[position] if position < len(filled) else None
    return {key: value for key, value in values.items() if not _empty(value)}


def crm_contact_to_fields(
    record: Mapping[str, Any], mapping: ContactMapping, *, crm_catalogue: CrmCatalogue = CRM_CONTACT_FIELDS
) -> dict[str, JsonValue]:
    """The canonical fields of a CRM Contacts record (as the records API returns it)."""
    values = {
        pair.key: _crm_value(record, crm_catalogue.get(pair.crm_field), pair.crm_field)
        for pair in mapping.pairs
    }
    return _canonical(values, mapping)


def graph_contact_to_fields(contact: Mapping[str, Any], mapping: ContactMapping) -> dict[str, JsonValue]:
    """The canonical fields of a Graph contact (as GET or a delta page returns it)."""
    return _canonical(
        {pair.key: _graph_value(contact, pair.outlook_field) for pair in mapping.pairs}, mapping
    )


# --- writing -------------------------------------------------------------------------------


def fields_to_crm_contact(
    fields: Mapping[str, JsonValue],
    mapping: ContactMapping,
    *,
    crm_catalogue: CrmCatalogue = CRM_CONTACT_FIELDS,
) -> dict[str, Any]:
    """The record body for a CRM insert or update (one element of ``{"data": [...]}``)
    holding the ``fields`` present (a full set, or a patch; ``None`` clears a field).

    Pairs that may not write to the CRM (``crm_to_outlook``), fields the CRM cannot
    write and fields unknown to the catalogue are never written.
    """
    body: dict[str, Any] = {}
    for pair in mapping.writing_to(Side.CRM):
        field = crm_catalogue.get(pair.crm_field)
        if pair.key not in fields or field is None or not field.writable:
            continue
        value = None if _empty(fields[pair.key]) else fields[pair.key]
        if field.shape is CrmShape.ADDRESS_GROUP:
            address = value if isinstance(value, dict) else {}
            body.update(
                {crm: address.get(part) for part, crm in zip(ADDRESS_PARTS, field.parts, strict=True)}
            )
        elif field.shape is CrmShape.LOOKUP:
            body[field.api_name] = {"name": value} if value is not None else None
        elif field.shape is CrmShape.TAGS:
            body[field.api_name] = [{"name": name} for name in value or ()]  # type: ignore[union-attr]
        else:
            body[field.api_name] = value
    return body


def fields_to_graph_contact(
    fields: Mapping[str, JsonValue],
    mapping: ContactMapping,
    *,
    current: Mapping[str, Any] | None = None,
    merged: Mapping[str, JsonValue] | None = None,
) -> dict[str, Any]:
    """The body for a Graph contact create or PATCH holding the ``fields`` present.

    Graph replaces a collection (``emailAddresses``, ``businessPhones`` ...) whole on
    PATCH, so when a patch touches one slot the whole list is written. For an update pass
    ``current``, the contact as last read: every other slot, mapped or not, is kept. If
    the contact is not at hand, pass ``merged``, the canonical fields after the merge
    (the ``Update``'s link row): the other mapped slots are kept, unmapped ones are
    lost. With neither, ``fields`` is taken as the whole contact (a create).
    Pairs that may not write to Outlook (``outlook_to_crm``) are never written.
    """
    body: dict[str, Any] = {}
    writing = [pair for pair in mapping.writing_to(Side.OUTLOOK) if pair.key in fields]
    for pair in writing:
        field = GRAPH_CONTACT_FIELDS.get(pair.outlook_field)
        if field is None or field.slot is not None:
            continue
        value = None if _empty(fields[pair.key]) else fields[pair.key]
        if field.type is FieldType.ADDRESS:
            body[field.name] = (_address(value) or {}) if isinstance(value, dict) else {}
        elif field.type is FieldType.DATE:
            body[field.name] = f"{value}{_BIRTHDAY_TIME}" if value is not None else None
        elif field.type is FieldType.LIST:
            body[field.name] = list(value) if isinstance(value, list) else []
        else:
            body[field.name] = value
    touched = {pair.key for pair in writing}
    for collection, slots in _slot_groups(mapping).items():
        if touched & {pair.key for _, pair in slots}:
            body[collection] = _collection(collection, slots, {**(merged or {}), **fields}, touched, current)
    return body


def _collection(
    collection: str,
    slots: list[tuple[int, FieldPair]],
    fields: Mapping[str, JsonValue],
    touched: set[str],
    current: Mapping[str, Any] | None,
) -> list[Any]:
    """The whole list: mapped slots from ``fields`` (or ``current``), compacted because
    Outlook keeps no gaps, then ``current``'s elements past the mapped slots."""
    existing = list((current or {}).get(collection) or [])
    kind = GRAPH_CONTACT_FIELDS[slots[0][1].outlook_field].type
    mapped = max(index for index, _ in slots) + 1
    by_index = {index: pair for index, pair in slots}
    values: list[Any] = []
    for index in range(mapped):
        pair = by_index.get(index)
        if pair is not None and (pair.key in touched or current is None):
            values.append(fields.get(pair.key))
        elif index < len(existing):
            values.append(_element_value(existing[index], kind))
    elements = [_element(value, kind, existing) for value in values if not _empty(value)]
    return elements + existing[mapped:]


def _element(value: Any, kind: FieldType, existing: list[Any]) -> Any:
    if kind is not FieldType.EMAIL:
        return value
    for element in existing:  # keep the display name Outlook shows for an unchanged address
        if isinstance(element, dict) and str(element.get("address", "")).casefold() == str(value).casefold():
            return {"name": element.get("name") or value, "address": value}
    return {"name": value, "address": value}
