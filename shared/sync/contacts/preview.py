"""How one of the member's real contacts would look on the other side (SPEC R4.2; issue 8:
"a preview showing how one of the member's real contacts would look on the other side").

The Configuration window calls ``preview`` with a contact read from one side and the
mapping being edited; each row names the target field, the value it would receive
(canonical: a string, a date, an address dict, a list) and the first problem that
would stop the write (``validation.value_problems``), or None.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from pydantic import JsonValue

from shared.sync.contacts.catalogue import CRM_CONTACT_FIELDS, CrmCatalogue
from shared.sync.contacts.convert import crm_contact_to_fields, graph_contact_to_fields
from shared.sync.contacts.mapping import ContactMapping, Direction
from shared.sync.contacts.validation import MappingProblem, value_problems
from shared.sync.links import Side


class PreviewRow(NamedTuple):
    target_field: str
    value: JsonValue
    problem: MappingProblem | None


def preview(
    record_or_contact: Mapping[str, Any],
    mapping: ContactMapping,
    direction: Direction,
    *,
    crm_catalogue: CrmCatalogue = CRM_CONTACT_FIELDS,
) -> list[PreviewRow]:
    """The rows the other side would receive, in the mapping's order.

    ``direction`` is ``crm_to_outlook`` for a CRM record, ``outlook_to_crm`` for a Graph
    contact. Pairs that do not write that way are left out; empty values are shown as
    None (the write clears the target).

    Raises:
        ValueError: ``direction`` is ``both``: a preview goes one way.
    """
    if direction is Direction.BOTH:
        raise ValueError("a preview goes one way: crm_to_outlook or outlook_to_crm")
    target = Side.OUTLOOK if direction is Direction.CRM_TO_OUTLOOK else Side.CRM
    if target is Side.OUTLOOK:
        fields = crm_contact_to_fields(record_or_contact, mapping, crm_catalogue=crm_catalogue)
    else:
        fields = graph_contact_to_fields(record_or_contact, mapping)
    rows: list[PreviewRow] = []
    for pair in mapping.writing_to(target):
        value = fields.get(pair.key)
        problems = value_problems(pair, value, target, crm_catalogue=crm_catalogue)
        rows.append(PreviewRow(pair.field_on(target), value, problems[0] if problems else None))
    return rows
