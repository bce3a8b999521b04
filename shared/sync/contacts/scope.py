"""Which CRM contacts the sync covers, and the initial-sync cap (SPEC R4.5, R4.6, R4.7).

- R4.5: only the member's own contacts ("My Contacts"): ``Owner.id`` is the member.
- R4.7: not contacts that came in by data migration or import; contacts created one by
  one or changed by mass update are synced. The CRM's read-only ``Data_Source`` field
  tells (zoho-notes §6): ``Import`` and ``Migration`` are excluded; ``Mass Update`` and
  every other value (``Manual``, ``API``, ``Bulk API``, ...) are synced. The value may
  come as the picklist's display or actual value ([U]); both are the same for these
  two, and the comparison ignores case and padding.
- R4.6: the initial sync sends at most 10,000 contacts. Excluded contacts do not count;
  which 10,000 is the runner's choice of reading order.

The reason strings go into ``ItemSeen.excluded``, so the engine skips the item as
``filtered`` and the status page can count why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

INITIAL_SYNC_CAP = 10_000

NOT_OWNER = "not_owner"
IMPORTED = "imported"
MIGRATED = "migrated"

_EXCLUDED_SOURCES = {"import": IMPORTED, "migration": MIGRATED}

Item = TypeVar("Item")


def crm_contact_excluded(record: Mapping[str, Any], *, member_user_id: str) -> str | None:
    """Why the CRM contact ``record`` is out of the member's sync, or None if it is in."""
    owner = record.get("Owner")
    owner_id = owner.get("id") if isinstance(owner, Mapping) else owner
    if owner_id is None or str(owner_id) != str(member_user_id):
        return NOT_OWNER
    source = record.get("Data_Source")
    if isinstance(source, Mapping):  # tolerate a {display_value, actual_value} rendering
        source = source.get("actual_value") or source.get("display_value")
    return _EXCLUDED_SOURCES.get(str(source or "").strip().casefold())


def initial_sync_room(already_sent: int, *, cap: int = INITIAL_SYNC_CAP) -> int:
    """How many more contacts the initial sync may still send (R4.6)."""
    return max(0, cap - max(0, already_sent))


def within_initial_cap(
    included: Sequence[Item], already_sent: int, *, cap: int = INITIAL_SYNC_CAP
) -> tuple[list[Item], bool]:
    """The part of one page of in-scope contacts the initial sync may send, and whether
    the cap is now reached (the runner then stops paging and records "capped")."""
    room = initial_sync_room(already_sent, cap=cap)
    kept = list(included[:room])
    return kept, already_sent + len(kept) >= cap
