"""Safety checks between planning and executing, before the first write (DESIGN §8; peers d.6).

- ``check_mass_change``: a cycle that would delete many items on one side pauses the
  member's sync and asks for confirmation (issue 7: more than 50 items or 10 % of the
  member's synced items, on either side). A confirmation, not a failure: calendars do
  legitimately empty (vdirsyncer #1099).
- ``check_deletions_are_signalled``: every ``Delete`` (and tombstone) in a plan must rest
  on an explicit deletion signal of the partner, reported this cycle (defence in depth:
  the engine cannot produce one without it, and this proves it before any write).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared.sync.actions import Delete, Plan, Tombstone
from shared.sync.changes import SideChanges
from shared.sync.links import LinkRow, LinkState, Side

MAX_DELETIONS = 50
MIN_DELETIONS_FOR_FRACTION = 10
MAX_DELETION_FRACTION = 0.10


@dataclass(frozen=True)
class Proceed:
    """The plan may be executed."""

    plan: Plan


@dataclass(frozen=True)
class PauseForConfirmation:
    """Too many deletions: pause the member's sync and show ``deletions`` for confirmation."""

    plan: Plan
    deletions: dict[Side, int]
    synced: int
    reason: str = "mass_deletion"


Verdict = Proceed | PauseForConfirmation


class UnsignalledDeletion(Exception):
    """A plan deletes something without an explicit deletion signal: a bug, never data."""


def check_mass_change(
    plan: Plan,
    links: Iterable[LinkRow],
    *,
    max_deletions: int = MAX_DELETIONS,
    max_fraction: float = MAX_DELETION_FRACTION,
    min_deletions: int = MIN_DELETIONS_FOR_FRACTION,
    synced_total: int | None = None,
) -> Verdict:
    """Pause when ``plan`` deletes more than ``max_deletions`` items, or more than
    ``max_fraction`` of the member's synced pairs, on either side (issue 7, issue 8).

    The fraction applies from ``min_deletions`` deletions on: a member with four synced
    events who deletes one is doing ordinary work, not a mass change. ``synced_total`` is
    the member's whole count when ``links`` holds only the rows a cycle loaded.

    The runner skips this check once the member has confirmed the pending deletions.
    """
    synced = synced_total if synced_total is not None else sum(1 for row in links if row.state is LinkState.SYNCED)
    deletions = {side: len(plan.deletions(side)) for side in Side}
    too_many = any(
        count > max_deletions or (count >= min_deletions and count > max_fraction * synced)
        for count in deletions.values()
    )
    return PauseForConfirmation(plan, deletions, synced) if too_many else Proceed(plan)


def check_deletions_are_signalled(plan: Plan, crm: SideChanges, outlook: SideChanges) -> None:
    """Prove that each deletion in ``plan`` rests on a reported, explicit signal.

    A ``Delete`` on one side needs an ``ItemDeleted`` reported by the *other* side for the
    pair's item there; a ``Tombstone`` needs one for an id its row holds.

    Raises:
        UnsignalledDeletion: naming the first deletion without its signal.
    """
    reported = {side: set(changes.deleted) for side, changes in ((Side.CRM, crm), (Side.OUTLOOK, outlook))}
    for action in plan.actions:
        if isinstance(action, Delete):
            partner_side = action.side.other
            if action.because not in reported[partner_side] or (
                action.because.item_id != action.link.item_id(partner_side)
            ):
                raise UnsignalledDeletion(f"delete on {action.side} of {action.link.link_id} has no signal")
        elif isinstance(action, Tombstone):
            holders = [side for side in Side if action.link.item_id(side) == action.because.item_id]
            if not any(action.because in reported[side] for side in holders):
                raise UnsignalledDeletion(f"tombstone {action.link.link_id} has no signal")
