"""The member's contact field mapping: pairs of fields with a direction (SPEC R4.2).

A ``ContactMapping`` is what ``GET|PUT /api/settings/microsoft/contacts/mapping`` reads
and writes and what is stored per member: plain JSON through pydantic
(``model_dump(mode="json")`` / ``model_validate``). The model checks shape only; whether
a mapping can work is ``validation.validate_mapping``'s job, so that every problem is
reported at once with its code, and so that a stored mapping still loads after the
catalogue changed (and is then reported, not crashed on).

**Canonical field names.** Each pair's ``key`` (``"<CRM field>:<Outlook field>"``) is the
name of its value in the engine's ``fields`` and in the link rows' baselines. It depends
on the pair's two fields only, never on its position or direction, so editing one pair
leaves every other pair's key, baseline and fingerprint contribution unchanged.

**Re-syncing a changed mapping** ("saving a changed mapping re-syncs only the fields it
changed"). ``changed_pairs(old, new)`` gives the keys whose meaning changed: pairs added,
removed or with a new direction. The runner, on a saved mapping:

1. drops those keys from every link row's baseline (``fields``) and recomputes the row's
   ``content_hash`` with ``CONTACTS_NORMALISATION``;
2. clears both stored versions of each row, so that the next cycle counts a read of
   either side as moved, and reads both sides of each linked contact;
3. lets ``plan`` run as usual: the unchanged keys equal the baseline on both sides, so
   the three-way merge copies only the changed keys (from the side that has a value; if
   both sides have different values, the member's conflict policy decides and the
   conflict is shown), and ``fields_to_*`` write only where the direction allows.
"""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.sync.links import Side


class Direction(enum.StrEnum):
    """Which way a pair's value flows (issue 8: "a direction per field")."""

    BOTH = "both"
    CRM_TO_OUTLOOK = "crm_to_outlook"
    OUTLOOK_TO_CRM = "outlook_to_crm"

    def writes_to(self, side: Side) -> bool:
        """Whether a value may be written to ``side``."""
        if side is Side.CRM:
            return self is not Direction.CRM_TO_OUTLOOK
        return self is not Direction.OUTLOOK_TO_CRM


class FieldPair(BaseModel):
    """One CRM field joined to one Outlook field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    crm_field: str = Field(min_length=1, max_length=100)
    outlook_field: str = Field(min_length=1, max_length=100)
    direction: Direction = Direction.BOTH

    @property
    def key(self) -> str:
        """The canonical field name of this pair's value (see the module docstring)."""
        return f"{self.crm_field}:{self.outlook_field}"

    def field_on(self, side: Side) -> str:
        return self.crm_field if side is Side.CRM else self.outlook_field


class ContactMapping(BaseModel):
    """The member's mapping: an ordered list of pairs (the order is the window's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    pairs: tuple[FieldPair, ...] = Field(default=(), max_length=200)

    def writing_to(self, side: Side) -> tuple[FieldPair, ...]:
        """The pairs whose direction allows writing to ``side``."""
        return tuple(pair for pair in self.pairs if pair.direction.writes_to(side))


def _pairs(*rows: tuple[str, str] | tuple[str, str, Direction]) -> tuple[FieldPair, ...]:
    return tuple(
        FieldPair(
            crm_field=row[0], outlook_field=row[1], direction=row[2] if len(row) == 3 else Direction.BOTH
        )
        for row in rows
    )


DEFAULT_CONTACT_MAPPING = ContactMapping(
    pairs=_pairs(
        ("First_Name", "givenName"),
        ("Last_Name", "surname"),
        # Salutation is a picklist in the CRM; Outlook's title is free text, so it only
        # flows out, never into a picklist that may refuse it.
        ("Salutation", "title", Direction.CRM_TO_OUTLOOK),
        ("Email", "emailAddresses[0]"),
        ("Secondary_Email", "emailAddresses[1]"),
        ("Phone", "businessPhones[0]"),
        ("Other_Phone", "businessPhones[1]"),
        ("Mobile", "mobilePhone"),
        ("Home_Phone", "homePhones[0]"),
        ("Title", "jobTitle"),
        ("Department", "department"),
        ("Account_Name", "companyName"),
        ("Assistant", "assistantName"),
        # A lookup to another contact: readable as a name, not writable from one.
        ("Reporting_To", "manager", Direction.CRM_TO_OUTLOOK),
        ("Mailing_Address", "businessAddress"),
        ("Other_Address", "otherAddress"),
        ("Date_of_Birth", "birthday"),
        ("Description", "personalNotes"),
        ("Skype_ID", "imAddresses[0]"),
    )
)


def changed_pairs(old: ContactMapping, new: ContactMapping) -> set[str]:
    """The keys whose values must be re-synced after ``old`` became ``new``: pairs added,
    removed, or with a changed direction. See the module docstring for the runner's use."""
    before = {pair.key: pair.direction for pair in old.pairs}
    after = {pair.key: pair.direction for pair in new.pairs}
    return {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
