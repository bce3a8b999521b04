"""Three-way, field-by-field merge and the member's conflict policy (SPEC R3.9, R4.4).

The baseline is the link's ``fields`` (what both sides held at the last sync). A field
changed on one side only is copied to the other. A field changed on both sides to equal
values (after normalisation) is no conflict: that is also what a half-applied earlier
merge looks like after a crash, so this rule is what lets a crashed merge converge. A
field changed on both sides to different values is a conflict: the policy picks the
winner, the loser side is overwritten, and the conflict is returned so it can be shown
(issue 7: "never silent").

Fields that only make sense together (start, end, all-day and time zone of an event; a
recurrence and its exceptions) must be mapped as **one** composite field, so that they
merge as a unit.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from pydantic import JsonValue

from shared.sync.fingerprint import IGNORED_FIELDS, Normalisation
from shared.sync.links import Side


class ConflictPolicy(enum.StrEnum):
    """The member's rule for a field changed differently on both sides."""

    MOST_RECENT = "most_recent"  # the side modified last wins; ties go to the CRM
    CRM_WINS = "crm_wins"
    OUTLOOK_WINS = "outlook_wins"


@dataclass(frozen=True)
class FieldConflict:
    """One field changed on both sides to different values, and which side won."""

    field: str
    crm_value: JsonValue
    outlook_value: JsonValue
    winner: Side


@dataclass(frozen=True)
class Merge:
    """The merged fields (raw), the patch each side needs to reach them, and the conflicts."""

    fields: dict[str, JsonValue]
    to_crm: dict[str, JsonValue]
    to_outlook: dict[str, JsonValue]
    conflicts: tuple[FieldConflict, ...]


def pick_winner(policy: ConflictPolicy, crm_modified_at: datetime, outlook_modified_at: datetime) -> Side:
    """The side whose value wins a same-field conflict.

    For ``most_recent`` a tie goes to the CRM, the system of record: a stated rule beats a
    coin toss, and clock skew between Zoho and Exchange makes exact ties meaningless anyway.
    """
    if policy is ConflictPolicy.CRM_WINS:
        return Side.CRM
    if policy is ConflictPolicy.OUTLOOK_WINS:
        return Side.OUTLOOK
    return Side.OUTLOOK if outlook_modified_at > crm_modified_at else Side.CRM


def merge_fields(
    base: Mapping[str, JsonValue],
    crm: Mapping[str, JsonValue],
    outlook: Mapping[str, JsonValue],
    *,
    winner: Side,
    normalisation: Normalisation,
) -> Merge:
    """Merge ``crm`` and ``outlook`` against ``base``, field by field.

    ``winner`` decides same-field conflicts (see ``pick_winner``). Pass ``base`` as the
    content of a side that did not change.
    """
    merge = Merge(fields={}, to_crm={}, to_outlook={}, conflicts=())
    conflicts: list[FieldConflict] = []
    # Version tokens and ids are not content: never merged, never written (fingerprint.IGNORED_FIELDS).
    for name in sorted((set(base) | set(crm) | set(outlook)) - IGNORED_FIELDS.keys()):
        norm = {side: normalisation.value(name, values.get(name)) for side, values in _sides(crm, outlook)}
        was = normalisation.value(name, base.get(name))
        crm_moved, outlook_moved = norm[Side.CRM] != was, norm[Side.OUTLOOK] != was
        source = Side.OUTLOOK if outlook_moved and not crm_moved else Side.CRM
        if crm_moved and outlook_moved and norm[Side.CRM] != norm[Side.OUTLOOK]:
            source = winner
            conflicts.append(FieldConflict(name, crm.get(name), outlook.get(name), winner))
        value = (crm if source is Side.CRM else outlook).get(name)
        if value is not None:
            merge.fields[name] = value
        if norm[source] != norm[source.other]:
            (merge.to_outlook if source is Side.CRM else merge.to_crm)[name] = value
    return Merge(merge.fields, merge.to_crm, merge.to_outlook, tuple(conflicts))


def _sides(
    crm: Mapping[str, JsonValue], outlook: Mapping[str, JsonValue]
) -> tuple[tuple[Side, Mapping[str, JsonValue]], ...]:
    return ((Side.CRM, crm), (Side.OUTLOOK, outlook))
