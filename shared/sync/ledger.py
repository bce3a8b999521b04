"""The per-record sync ledger: for each of the member's items, why it is or is not on the
other side, with a reason and a time (issue 17: "Why isn't it synced?").

Most answers are already stored: a link row says an item is synced (or failed, with its
error), a conflict row says both values and which won. What nothing else remembers is
written here as a **note**, one row per item, only for the exceptions: an item left out
(imported, migrated, not the member's own, a series occurrence, a shape the mapping cannot
carry), over the initial sync's cap, outside the calendar's window, or deleted on one side
(so its partner was deleted on the other). A note costs a Table write only when such a
thing happens; an ordinary synced item costs nothing here.

``explain`` is pure: it joins links, notes and conflicts, keeps the latest fact per item,
and filters by name.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from pydantic import BaseModel, JsonValue

from shared.sync.links import LinkRow, LinkState, Side

MAX_ANSWERS = 50


class Why(enum.StrEnum):
    """Reason codes, as the JSON gives them and the page words them."""

    SYNCED = "synced"
    SYNCING = "syncing"  # a create is under way (pending row)
    FAILED = "failed"
    CONFLICT = "conflict"
    IMPORTED = "imported"
    MIGRATED = "migrated"
    NOT_OWNER = "not_owner"
    OCCURRENCE = "occurrence"  # one occurrence of a series: the series is synced as a whole
    CANNOT_MAP = "cannot_map"
    OVER_CAP = "over_cap"
    OUTSIDE_WINDOW = "outside_window"
    DELETED_IN_OUTLOOK = "deleted_in_outlook"
    DELETED_IN_CRM = "deleted_in_crm"


_EXCLUSIONS = {"imported": Why.IMPORTED, "import": Why.IMPORTED, "migrated": Why.MIGRATED,
               "migration": Why.MIGRATED, "not_owner": Why.NOT_OWNER, "occurrence": Why.OCCURRENCE,
               "outside_window": Why.OUTSIDE_WINDOW}


def why_excluded(excluded: str) -> tuple[Why, str | None]:
    """An adapter's ``excluded`` reason as a code (and the mapping's own words when it
    cannot carry the item)."""
    code = _EXCLUSIONS.get(excluded)
    return (code, None) if code is not None else (Why.CANNOT_MAP, excluded)


class NoteRead(Protocol):
    """A stored note, as ``explain`` reads it (``shared.sync.ledger_store.LedgerNote``)."""

    side: Side
    item_id: str
    partner_id: str | None
    name: str
    why: Why
    at: datetime
    detail: str | None


@dataclass(frozen=True)
class Note:
    """A note to write: the engine's and runner's view, before storage."""

    side: Side
    item_id: str
    name: str
    why: Why
    partner_id: str | None = None
    detail: str | None = None


class Explanation(BaseModel):
    """One item's answer (``GET /api/sync/status?why=...``)."""

    name: str
    why: Why
    at: datetime | None = None
    crm_id: str | None = None
    outlook_id: str | None = None
    detail: str | None = None
    values: list[dict[str, JsonValue]] = []  # a conflict's fields: both values and the one kept


@dataclass(frozen=True)
class ConflictFact:
    crm_id: str | None
    outlook_id: str | None
    at: datetime
    fields: list[dict[str, JsonValue]]
    deleted_on: str | None = None


def explain(
    links: Iterable[LinkRow], notes: Iterable[NoteRead], conflicts: Iterable[ConflictFact],
    name_of: Callable[[Mapping[str, JsonValue]], str], query: str = "",
) -> list[Explanation]:
    """The latest fact per item whose name contains ``query`` (any case), newest first."""
    facts: dict[str, Explanation] = {}

    def keep(key: str, fact: Explanation) -> None:
        held = facts.get(key)
        if held is None or (fact.at or datetime.min.replace(tzinfo=UTC)) >= (held.at or datetime.min.replace(tzinfo=UTC)):
            facts[key] = fact

    names: dict[str, str] = {}
    for row in links:
        if row.state is LinkState.TOMBSTONE:
            continue  # its deletion is a note
        name = name_of(row.fields)
        key = _key(row.crm_id, row.outlook_id)
        for item_id in (row.crm_id, row.outlook_id):
            if item_id:
                names[item_id] = name
        why = Why.SYNCING if row.state.creating_on is not None else Why.FAILED if row.last_error else Why.SYNCED
        keep(key, Explanation(name=name, why=why, at=row.synced_at, crm_id=row.crm_id, outlook_id=row.outlook_id,
                              detail=row.last_error))
    for note in notes:
        crm_id, outlook_id = (note.item_id, note.partner_id) if note.side is Side.CRM else (note.partner_id, note.item_id)
        keep(_key(crm_id, outlook_id), Explanation(name=note.name, why=note.why, at=note.at, crm_id=crm_id,
                                                   outlook_id=outlook_id, detail=note.detail))
    for conflict in conflicts:
        key = _key(conflict.crm_id, conflict.outlook_id)
        name = names.get(conflict.crm_id or "") or names.get(conflict.outlook_id or "") or ""
        keep(key, Explanation(name=name, why=Why.CONFLICT, at=conflict.at, crm_id=conflict.crm_id,
                              outlook_id=conflict.outlook_id, values=conflict.fields,
                              detail=f"deleted in {conflict.deleted_on}, changed on the other side: the change won"
                              if conflict.deleted_on else None))
    wanted = query.strip().casefold()
    found = [f for f in facts.values() if wanted in f.name.casefold()]
    found.sort(key=lambda f: (f.at or datetime.min.replace(tzinfo=UTC)), reverse=True)
    return found[:MAX_ANSWERS]


def _key(crm_id: str | None, outlook_id: str | None) -> str:
    """One item, whichever side's id is known: the CRM id when there is one."""
    return f"crm|{crm_id}" if crm_id else f"ol|{outlook_id}"

