"""The CRM catalogue rebuilt from the CRM's own field metadata (SPEC R4.2: "from the CRM's
field metadata where available, else the documented list").

The adapter reads ``GET /crm/v8/settings/fields?module=Contacts`` and passes its ``fields``
array here; the result replaces ``CRM_CONTACT_FIELDS`` for that org, so custom fields,
org-specific lengths and picklist values are offered and checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared.sync.contacts.catalogue import (
    ADDRESS_LENGTHS,
    CrmCatalogue,
    CrmField,
    CrmShape,
    FieldType,
    address_group,
)

_WRITABLE_LOOKUPS = frozenset({"Account_Name"})

_METADATA_TYPES: Mapping[str, FieldType] = {
    "text": FieldType.TEXT,
    "textarea": FieldType.MULTILINE_TEXT,
    "email": FieldType.EMAIL,
    "phone": FieldType.PHONE,
    "date": FieldType.DATE,
    "website": FieldType.TEXT,
    "picklist": FieldType.TEXT,
    "lookup": FieldType.TEXT,
}
"""CRM metadata ``data_type`` → mapping type. Other types (boolean, number, datetime,
owner lookup, multi-select ...) have no Outlook contact counterpart and are not offered."""


def crm_catalogue_from_metadata(fields: Iterable[Mapping[str, Any]]) -> CrmCatalogue:
    """The CRM catalogue from the Fields Metadata API's ``fields`` array (R4.2: "from the
    CRM's field metadata where available, else the documented list").

    Address groups are added for every prefix whose five parts are all present.
    """
    entries: list[CrmField] = []
    for meta in fields:
        kind = _METADATA_TYPES.get(str(meta.get("data_type")))
        name = meta.get("api_name")
        if kind is None or not isinstance(name, str):
            continue
        values = tuple(
            str(item.get("actual_value") or item.get("display_value"))
            for item in meta.get("pick_list_values") or ()
            if (item.get("actual_value") or item.get("display_value")) not in (None, "-None-")
        )
        lookup = meta.get("data_type") == "lookup"
        # A lookup is written by name only where the CRM resolves names (Account_Name).
        writable = not (meta.get("read_only") or meta.get("field_read_only")) and (
            not lookup or name in _WRITABLE_LOOKUPS
        )
        entries.append(
            CrmField(
                api_name=name,
                type=kind,
                label=str(meta.get("field_label") or name),
                max_length=meta.get("length") if kind is not FieldType.DATE else None,
                writable=writable,
                required=bool(meta.get("system_mandatory")),
                shape=CrmShape.LOOKUP if lookup else CrmShape.VALUE,
                allowed_values=values if meta.get("data_type") == "picklist" else (),
            )
        )
    known = {entry.api_name for entry in entries}
    for prefix, label in (("Mailing", "Mailing"), ("Other", "Other")):
        group = address_group(prefix, label, ADDRESS_LENGTHS)
        if set(group[0].parts) <= known:
            entries.insert(0, group[0])
    return CrmCatalogue(entries)
