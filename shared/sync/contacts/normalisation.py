"""``CONTACTS_NORMALISATION``: how contact fields compare, so equal data never ping-pongs
(issue 8: "phone formats, e-mail case, address line breaks, birthday as a date"; SPEC R4.4).

The rule of a canonical field follows from its pair's types, read from the key
(``"<CRM field>:<Outlook field>"``), so one constant serves every member's mapping:

- text: ``single_line`` (whitespace runs, padding); multi-line text: ``plain`` (line-break
  style, trailing spaces). Text mapped to multi-line compares as single-line text,
  because the single-line side may have folded the line breaks;
- email: ``email`` (case); phone: ``phone`` (only ``+`` and digits count, so
  ``+1 (555) 010-9999`` equals ``+15550109999``);
- date: the ``yyyy-mm-dd`` the value starts with (``1974-07-22T11:59:00Z`` is
  ``1974-07-22``);
- address: each part as text, the street as multi-line text (``\\r\\n`` vs ``\\n``);
  empty parts dropped;
- list: the set of its trimmed strings, sorted (Outlook and the CRM do not keep order).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from pydantic import JsonValue

from shared.sync.contacts.catalogue import CRM_CONTACT_FIELDS, GRAPH_CONTACT_FIELDS, FieldType
from shared.sync.fingerprint import Normalisation, Normaliser, email, phone, plain, single_line


def birthday_date(value: JsonValue) -> JsonValue:
    """A date, or the date an ISO instant is written on; other values as ``plain``."""
    if isinstance(value, str) and len(value.strip()) >= 10 and value.strip()[4:5] == "-":
        return value.strip()[:10]
    return plain(value)


def address_parts(value: JsonValue) -> JsonValue:
    """An address compared part by part; the street keeps its lines, in one style."""
    if not isinstance(value, dict):
        return plain(value)
    parts = {key: (plain if key == "street" else single_line)(part) for key, part in value.items()}
    kept = {key: part for key, part in parts.items() if part is not None}
    return kept or None


def string_set(value: JsonValue) -> JsonValue:
    """A list compared as the sorted set of its non-empty strings."""
    if not isinstance(value, list):
        return plain(value)
    kept = sorted({text for item in value if isinstance(item, str) and (text := item.strip())})
    return kept or None


_BY_TYPE: Mapping[FieldType, Normaliser] = {
    FieldType.TEXT: single_line,
    FieldType.MULTILINE_TEXT: plain,
    FieldType.EMAIL: email,
    FieldType.PHONE: phone,
    FieldType.DATE: birthday_date,
    FieldType.ADDRESS: address_parts,
    FieldType.LIST: string_set,
}


class _RulesByPairKey(Mapping[str, Normaliser]):
    """Looks a field's rule up from its pair key; unknown keys fall back to ``plain``
    (``Normalisation.value`` uses ``.get``). Iterates over nothing: the keys are every
    possible pair, not a list."""

    def __getitem__(self, key: str) -> Normaliser:
        crm_name, _, outlook_name = key.partition(":")
        outlook = GRAPH_CONTACT_FIELDS.get(outlook_name)
        if outlook is None:
            raise KeyError(key)
        crm = CRM_CONTACT_FIELDS.get(crm_name)
        if crm is not None and FieldType.TEXT in (crm.type, outlook.type):
            return single_line  # the narrower of text and multi-line text
        return _BY_TYPE[outlook.type]

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


CONTACTS_NORMALISATION = Normalisation(by_field=_RulesByPairKey())
