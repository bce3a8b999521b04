"""What each side reports since the last sync: the engine's observations (DESIGN §8).

Adapters build these from Graph delta pages, CRM "modified since" pages, the CRM deleted
list and webhooks. Two rules are structural here, so no adapter can break them:

- a deletion exists only as an ``ItemDeleted`` carrying the explicit signal that proved
  it (peers d.6): there is no way to say "absent from a listing";
- ``fields`` are already mapped to the common vocabulary. The engine compares them
  through ``Normalisation`` and writes them as given.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import JsonValue


class DeleteSignal(enum.StrEnum):
    """The explicit evidence that an item was deleted (issue 7: "deletion only on an explicit signal")."""

    GRAPH_REMOVED = "graph_removed"  # an ``@removed`` entry in a Graph delta page
    CRM_DELETED_LIST = "crm_deleted_list"  # GET /{module}/deleted
    CRM_DELETE_CALLBACK = "crm_delete_callback"  # a CRM watch notification with operation delete
    NOT_FOUND = "not_found"  # a confirmed 404 on a direct GET of the item


@dataclass(frozen=True)
class ItemSeen:
    """An item that exists now on its side, as last read.

    ``partner_id`` is the marker read from the item: for an Outlook item the CRM id in our
    extended property, for a CRM item the Outlook id in our field; None when absent.
    ``excluded`` is set by the adapter when the item is out of scope (not the member's
    own, R3.4/R4.5; imported or migrated, R3.6/R4.7): a short reason, e.g. ``"import"``.
    ``modified_at`` is the side's own last-modified time, used only by the
    ``most_recent`` conflict policy.
    """

    item_id: str
    version: str
    fields: Mapping[str, JsonValue] = field(hash=False)
    modified_at: datetime
    partner_id: str | None = None
    excluded: str | None = None
    label: str = ""  # what a person calls it (title, name): the sync ledger's search (shared.sync.ledger)


@dataclass(frozen=True)
class ItemDeleted:
    """An item proven deleted by ``signal``."""

    item_id: str
    signal: DeleteSignal


Observation = ItemSeen | ItemDeleted


@dataclass(frozen=True)
class SideChanges:
    """Everything one side reported since the last sync, in the order it was read."""

    seen: tuple[ItemSeen, ...] = ()
    deleted: tuple[ItemDeleted, ...] = ()

    def by_item(self) -> dict[str, Observation]:
        """One observation per item id.

        A later ``seen`` replaces an earlier one (delta pages can list an item twice; the
        later read is newer). An id both seen and deleted counts as **seen**: without
        ordering between the two lists, keeping data is the safe reading (a wrong delete
        loses data; a missed one leaves an item to delete later). Adapters that know the
        order should drop the stale entry themselves.
        """
        result: dict[str, Observation] = {gone.item_id: gone for gone in self.deleted}
        for item in self.seen:
            result[item.item_id] = item
        return result
