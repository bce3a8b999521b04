"""Whether a contact mapping can work, and whether one value fits its target (SPEC R4.2).

R4.2: "a mapping that cannot work (type mismatch, one field mapped twice, a required
field left out) is refused with a message that names the field". ``validate_mapping``
returns **every** problem, each with a stable ``code`` (for the API and the browser
tests) and the field it is about; an empty list means the mapping can be saved.

Mapping codes: ``unknown_field``, ``not_writable``, ``type_mismatch``, ``mapped_twice``,
``slot_gap``, ``required_unmapped``, ``required_one_way``.
Value codes (preview and sync time, ``value_problems``): ``value_too_long``,
``value_not_allowed``, ``invalid_value``, ``required_value_missing``.
"""

from __future__ import annotations

import enum
import re
from collections import defaultdict
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, JsonValue

from shared.sync.contacts.catalogue import (
    ADDRESS_PARTS,
    CRM_CONTACT_FIELDS,
    GRAPH_CONTACT_FIELDS,
    GRAPH_FIELDS_LEFT_OUT,
    CrmCatalogue,
    CrmField,
    FieldType,
    GraphField,
    compatible,
)
from shared.sync.contacts.mapping import ContactMapping, FieldPair
from shared.sync.links import Side


class ProblemCode(enum.StrEnum):
    UNKNOWN_FIELD = "unknown_field"
    NOT_WRITABLE = "not_writable"
    TYPE_MISMATCH = "type_mismatch"
    MAPPED_TWICE = "mapped_twice"
    SLOT_GAP = "slot_gap"
    REQUIRED_UNMAPPED = "required_unmapped"
    REQUIRED_ONE_WAY = "required_one_way"
    VALUE_TOO_LONG = "value_too_long"
    VALUE_NOT_ALLOWED = "value_not_allowed"
    INVALID_VALUE = "invalid_value"
    REQUIRED_VALUE_MISSING = "required_value_missing"


class MappingProblem(BaseModel):
    """One reason a mapping or a value is refused; ``field`` names the field on ``side``."""

    model_config = ConfigDict(frozen=True)

    code: ProblemCode
    field: str
    side: Side
    message: str


def validate_mapping(
    mapping: ContactMapping,
    *,
    crm_catalogue: CrmCatalogue = CRM_CONTACT_FIELDS,
    graph_catalogue: Mapping[str, GraphField] = GRAPH_CONTACT_FIELDS,
) -> list[MappingProblem]:
    """Every problem of ``mapping``, in the order of its pairs, then the required fields."""
    problems: list[MappingProblem] = []
    for pair in mapping.pairs:
        problems.extend(_pair_problems(pair, crm_catalogue, graph_catalogue))
    problems.extend(_twice(mapping, crm_catalogue))
    problems.extend(_slot_gaps(mapping, graph_catalogue))
    problems.extend(_required(mapping, crm_catalogue))
    return problems


def _problem(code: ProblemCode, field: str, side: Side, message: str) -> MappingProblem:
    return MappingProblem(code=code, field=field, side=side, message=message)


def _pair_problems(
    pair: FieldPair, crm_catalogue: CrmCatalogue, graph_catalogue: Mapping[str, GraphField]
) -> list[MappingProblem]:
    problems: list[MappingProblem] = []
    crm = crm_catalogue.get(pair.crm_field)
    graph = graph_catalogue.get(pair.outlook_field)
    if crm is None:
        problems.append(
            _problem(
                ProblemCode.UNKNOWN_FIELD,
                pair.crm_field,
                Side.CRM,
                f"{pair.crm_field} is not a field of CRM Contacts",
            )
        )
    elif not crm.writable and pair.direction.writes_to(Side.CRM):
        problems.append(
            _problem(
                ProblemCode.NOT_WRITABLE,
                pair.crm_field,
                Side.CRM,
                f"{pair.crm_field} cannot be written in the CRM; map it CRM to Outlook only",
            )
        )
    if graph is None and pair.outlook_field in GRAPH_FIELDS_LEFT_OUT:
        reason = GRAPH_FIELDS_LEFT_OUT[pair.outlook_field]
        problems.append(
            _problem(
                ProblemCode.NOT_WRITABLE,
                pair.outlook_field,
                Side.OUTLOOK,
                f"{pair.outlook_field} is not offered: {reason}",
            )
        )
    elif graph is None:
        problems.append(
            _problem(
                ProblemCode.UNKNOWN_FIELD,
                pair.outlook_field,
                Side.OUTLOOK,
                f"{pair.outlook_field} is not a field of Outlook contacts",
            )
        )
    if crm is not None and graph is not None and not compatible(crm.type, graph.type):
        problems.append(
            _problem(
                ProblemCode.TYPE_MISMATCH,
                pair.crm_field,
                Side.CRM,
                f"{pair.crm_field} ({crm.type}) cannot be mapped to {pair.outlook_field} ({graph.type})",
            )
        )
    return problems


def _twice(mapping: ContactMapping, crm_catalogue: CrmCatalogue) -> list[MappingProblem]:
    """A field in two pairs, on either side. An address group (Mailing_Address) counts as
    each of its parts, so mapping it and Mailing_City would write Mailing_City twice."""
    seen: dict[Side, dict[str, int]] = {Side.CRM: defaultdict(int), Side.OUTLOOK: defaultdict(int)}
    problems: list[MappingProblem] = []
    for pair in mapping.pairs:
        crm = crm_catalogue.get(pair.crm_field)
        crm_names = [pair.crm_field, *(crm.parts if crm is not None else ())]
        for side, names in ((Side.CRM, crm_names), (Side.OUTLOOK, [pair.outlook_field])):
            for name in names:
                seen[side][name] += 1
                if seen[side][name] == 2:
                    problems.append(
                        _problem(ProblemCode.MAPPED_TWICE, name, side, f"{name} is mapped more than once")
                    )
    return problems


def _slot_gaps(mapping: ContactMapping, graph_catalogue: Mapping[str, GraphField]) -> list[MappingProblem]:
    """Outlook keeps its lists without gaps: slot i can only be held if slots before it
    are, so mapping emailAddresses[1] without emailAddresses[0] cannot round-trip."""
    slots = {
        graph.slot
        for pair in mapping.pairs
        if (graph := graph_catalogue.get(pair.outlook_field)) is not None and graph.slot
    }
    return [
        _problem(
            ProblemCode.SLOT_GAP,
            f"{collection}[{index}]",
            Side.OUTLOOK,
            f"{collection}[{index}] is mapped but {collection}[{index - 1}] is not:"
            " Outlook keeps no gaps in a list",
        )
        for collection, index in sorted(slots)
        if index > 0 and (collection, index - 1) not in slots
    ]


def _required(mapping: ContactMapping, crm_catalogue: CrmCatalogue) -> list[MappingProblem]:
    problems: list[MappingProblem] = []
    for field in crm_catalogue.values():
        if not field.required:
            continue
        pairs = [pair for pair in mapping.pairs if pair.crm_field == field.api_name]
        if not pairs:
            problems.append(
                _problem(
                    ProblemCode.REQUIRED_UNMAPPED,
                    field.api_name,
                    Side.CRM,
                    f"{field.api_name} must be mapped: the CRM requires it",
                )
            )
        elif not any(pair.direction.writes_to(Side.CRM) for pair in pairs):
            problems.append(
                _problem(
                    ProblemCode.REQUIRED_ONE_WAY,
                    field.api_name,
                    Side.CRM,
                    f"{field.api_name} must be mapped towards the CRM: contacts created in Outlook need it",
                )
            )
    return problems


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def value_problems(
    pair: FieldPair,
    value: JsonValue,
    target: Side,
    *,
    crm_catalogue: CrmCatalogue = CRM_CONTACT_FIELDS,
) -> list[MappingProblem]:
    """Why the canonical ``value`` of ``pair`` cannot be written to ``target`` (preview
    and sync time). Graph documents no length limits for contact strings, so lengths
    are checked towards the CRM only."""
    if target is Side.OUTLOOK:
        return _format_problems(
            pair.outlook_field, GRAPH_CONTACT_FIELDS.get(pair.outlook_field), value, target
        )
    field = crm_catalogue.get(pair.crm_field)
    if field is None:
        return []
    if value in (None, "", [], {}):
        if field.required:
            return [
                _problem(
                    ProblemCode.REQUIRED_VALUE_MISSING,
                    field.api_name,
                    target,
                    f"{field.api_name} is required by the CRM and {pair.outlook_field} is empty",
                )
            ]
        return []
    problems = _format_problems(field.api_name, field, value, target)
    parts = (
        zip(field.parts, _address_values(value), strict=True) if field.parts else [(field.api_name, value)]
    )
    for name, part in parts:
        limit = crm_catalogue[name].max_length if name in crm_catalogue else None
        if isinstance(part, str) and limit is not None and len(part) > limit:
            problems.append(
                _problem(
                    ProblemCode.VALUE_TOO_LONG,
                    name,
                    target,
                    f"{name} holds at most {limit} characters; this value has {len(part)}",
                )
            )
    if field.allowed_values and value not in field.allowed_values:
        problems.append(
            _problem(
                ProblemCode.VALUE_NOT_ALLOWED,
                field.api_name,
                target,
                f"{value!r} is not one of {field.api_name}'s values",
            )
        )
    return problems


def _address_values(value: JsonValue) -> list[JsonValue]:
    address = value if isinstance(value, dict) else {}
    return [address.get(part) for part in ADDRESS_PARTS]


def _format_problems(
    name: str, field: CrmField | GraphField | None, value: JsonValue, target: Side
) -> list[MappingProblem]:
    if value in (None, "", [], {}) or field is None:
        return []
    kind = field.type
    if kind is FieldType.DATE and not (isinstance(value, str) and _DATE.match(value)):
        return [
            _problem(
                ProblemCode.INVALID_VALUE, name, target, f"{name} needs a date (yyyy-mm-dd), not {value!r}"
            )
        ]
    if kind is FieldType.EMAIL and not (isinstance(value, str) and _EMAIL.match(value.strip())):
        return [
            _problem(
                ProblemCode.INVALID_VALUE, name, target, f"{name} needs an e-mail address, not {value!r}"
            )
        ]
    return []


def write_problems(
    fields: Mapping[str, JsonValue],
    mapping: ContactMapping,
    target: Side,
    *,
    crm_catalogue: CrmCatalogue = CRM_CONTACT_FIELDS,
) -> list[MappingProblem]:
    """Every value problem of a write of ``fields`` (a full set or a patch) to ``target``,
    at sync time: the runner records them on the link (``last_error``) and shows them on
    the status page instead of sending a write the other side would refuse."""
    return [
        problem
        for pair in mapping.writing_to(target)
        if pair.key in fields
        for problem in value_problems(pair, fields[pair.key], target, crm_catalogue=crm_catalogue)
    ]
