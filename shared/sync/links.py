"""Link rows: what the sync remembers about each linked pair (DESIGN §7 and §8; peers d.1).

Terminology, used the same way in every module of ``shared.sync``:

- **side**: the CRM or Outlook (``Side``). An **item** is a CRM record (event or contact)
  or an Outlook item (event in the Zoho CRM calendar, contact in the Zoho CRM Contacts
  folder).
- **version**: the side's own change token: the CRM's ``Modified_Time`` string, Graph's
  ``changeKey``. Opaque here: only compared for equality.
- **fields**: the item's content after field mapping, in the mapping's common vocabulary,
  so that a CRM item and an Outlook item can be compared field by field.
- **link**: one row per pair (``LinkRow``), holding both ids, both versions, the fields
  and their fingerprint as of the last sync (the *baseline* of a three-way merge).
- **marker**: the id of the partner written *into* an item by us so that a lost link can
  be found again: on Outlook, a single-value extended property holding the CRM id; on the
  CRM, a field holding the Outlook id.

``LinkRow`` is a pydantic model because it is persisted (the link store converts it to a
Table entity, one partition per member and kind). Everything the engine only passes
around in memory (changes, actions) is a frozen dataclass.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, JsonValue, model_validator

LINK_SCHEMA_VERSION = 1


class Side(enum.StrEnum):
    """One of the two systems kept in sync."""

    CRM = "crm"
    OUTLOOK = "outlook"

    @property
    def other(self) -> Side:
        return Side.OUTLOOK if self is Side.CRM else Side.CRM


class LinkState(enum.StrEnum):
    """Where a pair stands.

    A pending state is written *before* a create (write-ahead intent, peers d.5), so a
    crash between the create and the commit leaves a row that says which create may have
    happened, instead of nothing.
    """

    PENDING_CREATE_OUTLOOK = "pending_create_outlook"  # CRM item known, Outlook copy maybe created
    PENDING_CREATE_CRM = "pending_create_crm"  # Outlook item known, CRM copy maybe created
    SYNCED = "synced"  # both items exist and held ``fields`` at the last sync
    TOMBSTONE = "tombstone"  # the pair is gone; kept 30 days so late echoes cannot resurrect it

    @classmethod
    def pending_create_on(cls, side: Side) -> LinkState:
        return cls.PENDING_CREATE_OUTLOOK if side is Side.OUTLOOK else cls.PENDING_CREATE_CRM

    @property
    def creating_on(self) -> Side | None:
        """The side a pending create targets; None for other states."""
        return {
            LinkState.PENDING_CREATE_OUTLOOK: Side.OUTLOOK,
            LinkState.PENDING_CREATE_CRM: Side.CRM,
        }.get(self)


class LinkRow(BaseModel):
    """One linked pair of one member and kind (calendar or contacts).

    ``link_id`` is the row key: opaque, stable for the life of the pair, derived from the
    item the pair started from (``derive_key``) so that planning stays deterministic.
    ``fields`` are the mapped field values both sides held at the last sync (raw, as
    written; compare them through ``Normalisation``), ``content_hash`` their fingerprint.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = LINK_SCHEMA_VERSION
    link_id: str
    state: LinkState
    crm_id: str | None = None
    outlook_id: str | None = None
    crm_version: str | None = None
    outlook_version: str | None = None
    content_hash: str | None = None
    fields: dict[str, JsonValue] = {}
    transaction_key: str | None = None  # Graph transactionId / idempotency key of a pending create
    # When a pending create was first planned: an earlier attempt that may have happened is
    # looked for among the records changed since (the CRM has no transactionId).
    pending_since: datetime | None = None
    tombstoned_at: datetime | None = None
    synced_at: datetime | None = None
    last_error: str | None = None
    # What our last CRM write of this record sent, field by field (a digest of each value):
    # its callback's affected values tell our own write's echo from someone's change
    # (``shared.sync.echoes``). Any other rewrite of the row drops it (``replace``).
    crm_sent: dict[str, str] | None = None

    @model_validator(mode="after")
    def _check_state(self) -> Self:
        creating_on = self.state.creating_on
        if creating_on is not None:
            if self.item_id(creating_on.other) is None or self.item_id(creating_on) is not None:
                raise ValueError(f"{self.state} needs the source id and no target id")
            if self.transaction_key is None:
                raise ValueError(f"{self.state} needs a transaction_key")
        elif self.state is LinkState.SYNCED and (self.crm_id is None or self.outlook_id is None):
            raise ValueError("a synced link needs both ids")
        elif self.state is LinkState.TOMBSTONE and self.tombstoned_at is None:
            raise ValueError("a tombstone needs tombstoned_at")
        return self

    def item_id(self, side: Side) -> str | None:
        return self.crm_id if side is Side.CRM else self.outlook_id

    def version(self, side: Side) -> str | None:
        return self.crm_version if side is Side.CRM else self.outlook_version

    def replace(self, **changes: Any) -> LinkRow:
        """A copy with ``changes`` applied, validated again (``model_copy`` does not)."""
        return LinkRow.model_validate(self.model_dump() | {"crm_sent": None} | changes)

    def with_side(self, side: Side, item_id: str | None, version: str | None, **changes: Any) -> LinkRow:
        """A copy with one side's id and version set."""
        return self.replace(**{f"{side}_id": item_id, f"{side}_version": version}, **changes)


def linked_crm_ids(rows: Iterable[LinkRow]) -> list[str]:
    """The CRM records link rows name, pending creates included, tombstones not (their ids are
    retired): what a CRM deletion's routing looks for (``LinkStore.names_any``), and what the
    member's filter must hold (``shared.sync.holder_filters``)."""
    return [row.crm_id for row in rows if row.crm_id and row.state is not LinkState.TOMBSTONE]


def derive_key(*parts: str) -> str:
    """A deterministic opaque key (32 hex characters) from its parts.

    Used for link ids and create transaction keys: the planner must be pure, so it cannot
    draw random ids, and a key that depends on the source item *and its version* is
    fresh for every create attempt of new content yet identical when the same plan is
    made twice (a redelivered queue message).
    """
    joined = "\x1f".join(parts).encode()
    return hashlib.sha256(joined).hexdigest()[:32]


class InitialProgress(BaseModel):
    """Where the initial sync stands, committed with the link rows it counts.

    ``done``: every selected item before this position has its link row. ``reserved``:
    creates may have been sent for items before this position (the write-ahead of a whole
    range instead of one pending row per item): after a crash, items in ``done..reserved``
    are looked for by their marker before being created again."""

    model_config = ConfigDict(frozen=True)

    done: int = 0
    reserved: int = 0
    synced: int = 0  # items sent (in scope) before ``done``: the profile's ``initial_done``
    # The selection's size, for the member's progress bar while a step runs (the profile has it
    # only from the step's release). None in rows written before it was kept.
    total: int | None = None


@dataclass(frozen=True)
class InitialState:
    """What the initial sync stored: the selection's ids (None: not selected), the progress
    (None: no page reserved yet), and how many rows hold the selection."""

    ids: list[str] | None = None
    progress: InitialProgress | None = None
    chunks: int = 0
