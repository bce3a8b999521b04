"""Match what each side reported to link rows: the first step of ``engine.plan``.

An observation joins a link by its own id first. Only an item no link knows is matched by
its marker (the partner id we stamped into it), and only in two cases, both crash or
lost-row recovery (peers d.5):

- the marker names the source of a **pending create** towards this item's side: the
  create happened before the crash, so the item joins that row (adoption);
- the marker names an item **no row knows**: the row was lost; the two items form a new
  pair, to be adopted rather than duplicated.

A marker that names an item already linked to another item, or a tombstoned pair, is
stale (a user's copy, a restored item) and is ignored: the item counts as new. Markers
never match fuzzy look-alikes: there is no matching on content at all (issue 7).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from shared.sync.changes import ItemSeen, Observation, SideChanges
from shared.sync.links import LinkRow, LinkState, Side, derive_key

# Outlook markers are read first: when two unlinked items name each other, the Outlook
# one is taken as the copy we created and the CRM one as its source.
_CLAIM_ORDER = (Side.OUTLOOK, Side.CRM)


@dataclass(frozen=True)
class Pair:
    """One pair to decide: its link row (if any) and what each side reported about it.

    ``claimed_by`` is set, with no link, for an item whose marker names the other side's
    item (an adoption): it is the side of the item that carries the marker.
    """

    key: str
    link: LinkRow | None = None
    crm: Observation | None = None
    outlook: Observation | None = None
    claimed_by: Side | None = None

    def observed(self, side: Side) -> Observation | None:
        return self.crm if side is Side.CRM else self.outlook

    def observations(self) -> tuple[tuple[Side, Observation], ...]:
        return tuple((side, obs) for side in Side if (obs := self.observed(side)) is not None)


def pair_up(links: Iterable[LinkRow], crm: SideChanges, outlook: SideChanges) -> list[Pair]:
    """Every pair that needs a decision, in a deterministic order.

    That is each observed item, each pending row (its create must be recovered even if
    nothing was observed) and each tombstone (it may be expiring). Synced rows with
    nothing observed need no decision and are left out.
    """
    pairing = _Pairing(links)
    unmatched = pairing.match_by_id({Side.CRM: crm.by_item(), Side.OUTLOOK: outlook.by_item()})
    for side in _CLAIM_ORDER:
        for item_id, obs in sorted(unmatched[side].items()):
            if item_id in unmatched[side]:  # not consumed by an earlier claim
                pairing.match_by_marker(side, obs, unmatched)
    for side in Side:
        for item_id, obs in sorted(unmatched[side].items()):
            pairing.put(f"new:{side}:{item_id}", side, obs)
    return [pairing.pairs[key] for key in sorted(pairing.pairs)]


class _Pairing:
    """The pairs under construction, and the link rows indexed by (side, item id)."""

    def __init__(self, links: Iterable[LinkRow]) -> None:
        self.rows = list(links)
        self.pairs: dict[str, Pair] = {}
        self.index: dict[tuple[Side, str], LinkRow] = {}
        self.claimed: set[tuple[Side, str]] = set()  # items named by a marker already matched
        # Live rows win over tombstones on an id collision: a re-created pair's row
        # and the tombstone of its retired id can both mention one id only by mistake.
        for row in sorted(self.rows, key=lambda row: row.state is not LinkState.TOMBSTONE):
            for side in Side:
                item_id = row.item_id(side)
                if item_id is not None:
                    self.index.setdefault((side, item_id), row)
        for row in self.rows:
            if row.state is not LinkState.SYNCED:
                self.pairs.setdefault(row.link_id, Pair(row.link_id, link=row))

    def put(self, key: str, side: Side, obs: Observation, **extra: object) -> None:
        pair = self.pairs.get(key) or Pair(key, **extra)  # type: ignore[arg-type]
        self.pairs[key] = replace(pair, **{side.value: obs})

    def match_by_id(self, seen: dict[Side, dict[str, Observation]]) -> dict[Side, dict[str, Observation]]:
        unmatched: dict[Side, dict[str, Observation]] = {Side.CRM: {}, Side.OUTLOOK: {}}
        for side in Side:
            for item_id, obs in seen[side].items():
                row = self.index.get((side, item_id))
                if row is None:
                    unmatched[side][item_id] = obs
                else:
                    self.put(row.link_id, side, obs, link=row)
        return unmatched

    def match_by_marker(
        self, side: Side, obs: Observation, unmatched: dict[Side, dict[str, Observation]]
    ) -> None:
        if not isinstance(obs, ItemSeen) or obs.partner_id is None:
            return
        row = self.index.get((side.other, obs.partner_id))
        if row is not None:
            if row.state.creating_on is side and self.pairs[row.link_id].observed(side) is None:
                del unmatched[side][obs.item_id]
                self.put(row.link_id, side, obs)
            return  # otherwise the marker is stale: the item stays unmatched, hence new
        if (side.other, obs.partner_id) in self.claimed:
            return  # a second item naming the same partner: a copy, hence new
        partner = unmatched[side.other].get(obs.partner_id)
        if isinstance(partner, ItemSeen) and partner.partner_id not in (None, obs.item_id):
            return  # two markers that contradict each other: trust neither
        ids = {side: obs.item_id, side.other: obs.partner_id}
        key = derive_key("adopt", ids[Side.CRM], ids[Side.OUTLOOK])
        del unmatched[side][obs.item_id]
        self.claimed.add((side.other, obs.partner_id))
        self.put(key, side, obs, claimed_by=side)
        if partner is not None:
            del unmatched[side.other][obs.partner_id]
            self.put(key, side.other, partner)
