"""Our own writes' echoes (issue 20: a steady change's cost). Every item a step writes comes
back as a webhook; a step run for it finds nothing to do, at the price of a lease, a release
and the member's rows. An echo is told from a change by the item's version: Graph's
``changeKey`` moves on every write, so a notification naming an item at the version our link
row holds is the echo of our own write.

The check is made twice, because the echo often arrives while the writing step still runs
(before its rows are saved):
- at the webhook (``SyncWebhooks._our_own_writes``): the rows saved, nothing is queued;
- at the writing step's release: the webhook queued a step and left what it named on the
  profile's mark (``delta_items``); found to be this step's echoes, the mark is cleared, and the
  queued step, finding no mark, has nothing to do (``SyncService.run``).

Items are kept as ``"outlook|{id}|{changeKey}"`` strings (a profile property), at most
``MAX_ITEMS``; ``None`` means a request that must run (anything else was named, or too much).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from shared.sync.links import LinkState
from shared.sync.ports import LinkRows
from shared.sync.profiles import SyncProfile

MAX_ITEMS = 12
OUTLOOK = "outlook"


class ItemChange(Protocol):
    """One item a notification named (``shared.graph.models.ItemChange``)."""

    @property
    def change_type(self) -> str: ...
    @property
    def item_id(self) -> str | None: ...
    @property
    def change_key(self) -> str | None: ...


def outlook_items(changes: Sequence[ItemChange] | None) -> list[str] | None:
    """The items of a Graph notification as mark entries; None when any cannot be an echo
    (a deletion, no id or version) or there are too many to look at."""
    if not changes or len(changes) > MAX_ITEMS:
        return None
    if any(c.change_type == "deleted" or not c.item_id or not c.change_key for c in changes):
        return None
    return sorted({f"{OUTLOOK}|{c.item_id}|{c.change_key}" for c in changes})


def merged(marked: list[str] | None, named: list[str] | None, *, fresh: bool) -> list[str] | None:
    """The mark's items after one more request: a fresh mark takes the request's; a request
    coalesced into a mark keeps both, and a must-run on either side makes it must-run."""
    if fresh:
        return named
    if marked is None or named is None:
        return None
    together = sorted(set(marked) | set(named))
    return together if len(together) <= MAX_ITEMS else None


def own_echoes(links: LinkRows, profile: SyncProfile, items: Sequence[str]) -> bool:
    """Whether every item is at the version the member's link rows hold (one query)."""
    wanted: dict[str, str] = {}
    for entry in items:
        side, _, rest = entry.partition("|")
        item_id, _, version = rest.rpartition("|")
        if side != OUTLOOK or not item_id or not version:
            return False
        wanted[item_id] = version
    if not wanted or len(wanted) > MAX_ITEMS:
        return False
    rows = links.load(profile.links_partition, outlook_ids=sorted(wanted))
    held = {row.outlook_id: row.outlook_version for row in rows if row.state is LinkState.SYNCED}
    return all(held.get(item_id) == version for item_id, version in wanted.items())
