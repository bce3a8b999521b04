"""The contact fields each side offers to the field mapping, with their types (SPEC R4.2).

Two catalogues:

- ``GRAPH_CONTACT_FIELDS``: the Microsoft Graph v1.0 ``contact`` properties the API can
  write (graph-notes §4, "contact-update": every property except the read-only ones),
  one entry per mappable value. Collections of single values (``emailAddresses``,
  ``businessPhones``, ``homePhones``, ``imAddresses``) are offered slot by slot, and only
  as many slots as Outlook is known to hold. ``GRAPH_FIELDS_LEFT_OUT`` says what was left
  out and why; the validator refuses those names as ``not_writable`` (R4.2: "Microsoft
  fields that the API does not support are not offered").
- ``CRM_CONTACT_FIELDS``: the CRM's Contacts fields (zoho-notes §5) with types, length
  limits, writability and the one system-mandatory field (``Last_Name``). It is a
  ``CrmCatalogue`` so that the adapter can rebuild it from the CRM's field metadata
  (``GET /settings/fields?module=Contacts``) through ``crm_metadata.crm_catalogue_from_metadata``;
  the shipped list is the documented one. Lengths are the CRM's documented defaults
  (help page "Standard Modules & Fields"); an org's metadata may differ, which is why
  the adapter should refresh them.

The two composite CRM entries ``Mailing_Address`` and ``Other_Address`` group the five
address fields each, so that an address maps to a Graph ``physicalAddress`` as one value:
Graph replaces a physicalAddress whole on PATCH, and the engine merges a composite as a
unit (``shared.sync.merge``), so street and city can never come from different sides.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict


class FieldType(enum.StrEnum):
    """What a field holds; a pair must join two compatible types (``compatible``)."""

    TEXT = "text"
    MULTILINE_TEXT = "multiline_text"
    EMAIL = "email"
    PHONE = "phone"
    DATE = "date"
    ADDRESS = "address"
    LIST = "list"


# Text fits into multi-line text and back (one line is a multi-line text); every other
# type only matches itself: a date is not a phone (issue 8), an e-mail is not free text.
_COMPATIBLE = frozenset(
    {frozenset({kind}) for kind in FieldType} | {frozenset({FieldType.TEXT, FieldType.MULTILINE_TEXT})}
)


def compatible(one: FieldType, other: FieldType) -> bool:
    """Whether values of ``one`` can be mapped to ``other`` and back."""
    return frozenset({one, other}) in _COMPATIBLE


ADDRESS_PARTS = ("street", "city", "state", "postalCode", "countryOrRegion")
"""The parts of a Graph ``physicalAddress``; the canonical address value uses these keys."""

_SLOT = re.compile(r"^(?P<collection>[A-Za-z]+)\[(?P<index>\d)\]$")


class GraphField(BaseModel):
    """One writable value of a Graph contact. ``name`` is the property, or ``property[i]``
    for slot ``i`` of a collection."""

    model_config = ConfigDict(frozen=True)

    name: str
    type: FieldType
    label: str

    @property
    def slot(self) -> tuple[str, int] | None:
        """``(collection, index)`` for a collection slot, else None."""
        found = _SLOT.match(self.name)
        return (found["collection"], int(found["index"])) if found else None


def _graph(kind: FieldType, *names_and_labels: tuple[str, str]) -> list[GraphField]:
    return [GraphField(name=name, type=kind, label=label) for name, label in names_and_labels]


GRAPH_CONTACT_FIELDS: Mapping[str, GraphField] = {
    field.name: field
    for field in [
        *_graph(
            FieldType.TEXT,
            ("givenName", "First name"),
            ("middleName", "Middle name"),
            ("surname", "Last name"),
            ("nickName", "Nickname"),
            ("title", "Title (Mr., Dr., ...)"),
            ("generation", "Suffix (Jr., III, ...)"),
            ("initials", "Initials"),
            ("displayName", "Display name"),
            ("fileAs", "File as"),
            ("yomiGivenName", "Phonetic first name"),
            ("yomiSurname", "Phonetic last name"),
            ("yomiCompanyName", "Phonetic company"),
            ("companyName", "Company"),
            ("jobTitle", "Job title"),
            ("department", "Department"),
            ("officeLocation", "Office location"),
            ("profession", "Profession"),
            ("manager", "Manager"),
            ("assistantName", "Assistant"),
            ("spouseName", "Spouse / partner"),
            ("businessHomePage", "Web page"),
            ("imAddresses[0]", "IM address"),
        ),
        *_graph(
            FieldType.EMAIL,
            ("emailAddresses[0]", "E-mail"),
            ("emailAddresses[1]", "E-mail 2"),
            ("emailAddresses[2]", "E-mail 3"),
        ),
        *_graph(
            FieldType.PHONE,
            ("businessPhones[0]", "Business phone"),
            ("businessPhones[1]", "Business phone 2"),
            ("homePhones[0]", "Home phone"),
            ("homePhones[1]", "Home phone 2"),
            ("mobilePhone", "Mobile phone"),
        ),
        *_graph(
            FieldType.ADDRESS,
            ("businessAddress", "Business address"),
            ("homeAddress", "Home address"),
            ("otherAddress", "Other address"),
        ),
        *_graph(FieldType.DATE, ("birthday", "Birthday")),
        *_graph(FieldType.MULTILINE_TEXT, ("personalNotes", "Notes")),
        *_graph(FieldType.LIST, ("categories", "Categories"), ("children", "Children")),
    ]
}

GRAPH_FIELDS_LEFT_OUT: Mapping[str, str] = {
    "id": "read-only (contact-update)",
    "createdDateTime": "read-only (contact-update)",
    "lastModifiedDateTime": "read-only (contact-update)",
    "changeKey": "read-only (contact-update)",
    "parentFolderId": "the folder is the sync's own (R4.4); moving a contact by PATCH is unconfirmed",
    "primaryEmailAddress": "only in the 2026 metadata, not on the documented page; aliases emailAddresses[0]",
    "secondaryEmailAddress": "only in the 2026 metadata, not on the documented page; aliases emailAddresses[1]",
    "tertiaryEmailAddress": "only in the 2026 metadata, not on the documented page; aliases emailAddresses[2]",
    "emailAddresses[3]": "Outlook holds 3 e-mail addresses (graph-notes §4: offer no more slots)",
    "businessPhones[2]": "Outlook holds 2 business phones (graph-notes §4: offer no more slots)",
    "homePhones[2]": "Outlook holds 2 home phones (graph-notes §4: offer no more slots)",
    "imAddresses[1]": "one IM slot is enough to map Skype_ID; more are unconfirmed",
    "photo": "a separate binary endpoint, not a property of the contact body",
    "extensions": "open extensions are not member data",
    "singleValueExtendedProperties": "holds our sync marker, not member data",
    "multiValueExtendedProperties": "not member data",
}


class CrmShape(enum.StrEnum):
    """How a CRM field holds its value in a record's JSON."""

    VALUE = "value"  # the value itself
    LOOKUP = "lookup"  # {"name": ..., "id": ...}; the mapping uses the name
    TAGS = "tags"  # [{"name": ...}, ...]; the mapping uses the names
    ADDRESS_GROUP = "address_group"  # five sibling fields, see ``parts``


class CrmField(BaseModel):
    """One field of the CRM's Contacts module, as the mapping needs it."""

    model_config = ConfigDict(frozen=True)

    api_name: str
    type: FieldType
    label: str
    max_length: int | None = None
    writable: bool = True
    required: bool = False
    shape: CrmShape = CrmShape.VALUE
    parts: tuple[str, ...] = ()  # for ADDRESS_GROUP: the CRM fields in ADDRESS_PARTS order
    allowed_values: tuple[str, ...] = ()  # for a picklist: the values the CRM accepts


class CrmCatalogue(Mapping[str, CrmField]):
    """The CRM Contacts fields by API name; a read-only mapping."""

    def __init__(self, fields: Iterable[CrmField]) -> None:
        self._fields = {field.api_name: field for field in fields}

    def __getitem__(self, name: str) -> CrmField:
        return self._fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def owner_of_part(self, name: str) -> str | None:
        """The address group that ``name`` is a part of, if any (for "mapped twice")."""
        return next((group.api_name for group in self.values() if name in group.parts), None)


def address_group(prefix: str, label: str, lengths: tuple[int, ...]) -> list[CrmField]:
    """The composite ``<prefix>_Address`` followed by its five part fields."""
    names = tuple(f"{prefix}_{part}" for part in ("Street", "City", "State", "Zip", "Country"))
    parts = [
        CrmField(
            api_name=name,
            type=FieldType.MULTILINE_TEXT if i == 0 else FieldType.TEXT,
            label=f"{label} {name.split('_')[1]}",
            max_length=lengths[i],
        )
        for i, name in enumerate(names)
    ]
    group = CrmField(
        api_name=f"{prefix}_Address",
        type=FieldType.ADDRESS,
        label=f"{label} address",
        shape=CrmShape.ADDRESS_GROUP,
        parts=names,
    )
    return [group, *parts]


ADDRESS_LENGTHS = (250, 30, 30, 30, 30)
_SALUTATIONS = ("Mr.", "Mrs.", "Ms.", "Dr.", "Prof.")


def _crm(
    kind: FieldType, length: int | None, *names_and_labels: tuple[str, str], **extra: Any
) -> list[CrmField]:
    return [
        CrmField(api_name=name, type=kind, label=label, max_length=length, **extra)
        for name, label in names_and_labels
    ]


CRM_CONTACT_FIELDS = CrmCatalogue(
    [
        *_crm(FieldType.TEXT, 40, ("First_Name", "First Name")),
        *_crm(FieldType.TEXT, 80, ("Last_Name", "Last Name"), required=True),
        *_crm(FieldType.TEXT, 120, ("Full_Name", "Full Name"), writable=False),
        *_crm(FieldType.TEXT, None, ("Salutation", "Salutation"), allowed_values=_SALUTATIONS),
        *_crm(FieldType.EMAIL, 100, ("Email", "Email"), ("Secondary_Email", "Secondary Email")),
        *_crm(
            FieldType.PHONE,
            30,
            ("Phone", "Phone"),
            ("Mobile", "Mobile"),
            ("Home_Phone", "Home Phone"),
            ("Other_Phone", "Other Phone"),
            ("Fax", "Fax"),
            ("Asst_Phone", "Asst Phone"),
        ),
        *_crm(FieldType.TEXT, 100, ("Title", "Title")),
        *_crm(FieldType.TEXT, 30, ("Department", "Department"), ("Assistant", "Assistant")),
        *_crm(FieldType.TEXT, 50, ("Skype_ID", "Skype ID"), ("Twitter", "Twitter")),
        *_crm(FieldType.DATE, None, ("Date_of_Birth", "Date of Birth")),
        *_crm(FieldType.MULTILINE_TEXT, 32_000, ("Description", "Description")),
        # Account_Name is written by name ({"name": ...}); the CRM resolves it to an
        # account. Reporting_To and Vendor_Name point at records a name cannot identify
        # (two contacts may share a name), so the mapping may only read them.
        *_crm(FieldType.TEXT, 100, ("Account_Name", "Account Name"), shape=CrmShape.LOOKUP),
        *_crm(
            FieldType.TEXT,
            None,
            ("Reporting_To", "Reports To"),
            ("Vendor_Name", "Vendor Name"),
            shape=CrmShape.LOOKUP,
            writable=False,
        ),
        # Tags change through the CRM's Tags API, not the record body.
        *_crm(FieldType.LIST, None, ("Tag", "Tag"), shape=CrmShape.TAGS, writable=False),
        *_crm(FieldType.TEXT, 120, ("Data_Source", "Data Source"), writable=False),
        *address_group("Mailing", "Mailing", ADDRESS_LENGTHS),
        *address_group("Other", "Other", ADDRESS_LENGTHS),
    ]
)
