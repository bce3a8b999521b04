"""The real executor over the in-memory sides (``tests/sync_world.py``): three crash cases
Hypothesis found once the test-only applier was gone (issue 17 §2), fixed in
``shared/sync/executor.py``, kept here as plain regressions."""

from __future__ import annotations

import pytest

from shared.sync import Side
from tests.sync_world import Crash, World
from tests.unit.sync.test_sync_properties import assert_converged

CALL = {"subject": "Call", "email": "ann@example.com", "notes": ""}


def crash_after(world: World, writes: int, *, lose_echoes: bool) -> None:
    with pytest.raises(Crash):
        world.sync(budget=writes)
    if lose_echoes:  # our writes will not be reported again: only the marker finds them
        world.crm.forget_our_writes()
        world.outlook.forget_our_writes()


def origins(world: World, side: Side) -> list[str]:
    return sorted(item.origin for item in world.store(side).items.values())


def test_a_crm_create_made_before_a_crash_is_found_by_its_marker_not_made_twice() -> None:
    world = World()
    made_in_outlook = world.outlook.user_create(CALL)
    crash_after(world, 2, lose_echoes=True)  # the pending row, then the CRM record; not the synced row
    assert origins(world, Side.CRM) == [made_in_outlook]
    world.sync()
    assert origins(world, Side.CRM) == [made_in_outlook]
    assert_converged(world)


def test_a_copy_that_may_exist_is_deleted_by_its_marker_when_its_source_is_deleted() -> None:
    world = World()
    made_in_outlook = world.outlook.user_create(CALL)
    crash_after(world, 2, lose_echoes=True)
    world.user_delete(Side.OUTLOOK, made_in_outlook)
    world.sync()
    assert origins(world, Side.CRM) == []  # not an orphan copy of what the member deleted
    assert_converged(world)


def test_the_row_that_stands_is_the_later_actions_not_the_adoptions() -> None:
    """P3 then S9 in one plan: adopt the Outlook copy an earlier attempt made, then delete it
    because its CRM source is gone; the tombstone must be the row left, not the adoption."""
    world = World()
    made_in_crm = world.crm.user_create(CALL)
    crash_after(world, 2, lose_echoes=False)  # the pending row, then the Outlook copy
    world.user_delete(Side.CRM, made_in_crm)
    world.sync()
    assert origins(world, Side.OUTLOOK) == []
    assert_converged(world)


def test_a_create_the_crm_refused_is_not_looked_for_again_but_one_with_a_lost_answer_is() -> None:
    """A refusal made nothing: the retry creates without a listing (a create the CRM keeps
    refusing would otherwise cost one at every step). A timeout after the work may have
    made the record: the retry finds it by its marker instead of making a second."""
    world = World()
    world.crm_port.refuse = lambda body: "MANDATORY_NOT_FOUND" if body.get("subject") == "Refused" else None
    world.outlook.user_create({**CALL, "subject": "Refused"})
    world.sync()
    world.outlook.user_edit(next(iter(world.outlook.items)), {"notes": "again"})
    world.sync()
    assert world.crm_port.lookups == 0 and world.crm.items == {}
    assert [row.last_error for row in world.links.values()] == ["CRM create: MANDATORY_NOT_FOUND refused"]

    lost = World()
    lost.crm_port.answer_lost = lambda body: True
    made_in_outlook = lost.outlook.user_create(CALL)
    lost.sync()
    lost.crm.forget_our_writes()  # and the record is not reported again: only its marker finds it
    lost.crm_port.answer_lost = lambda body: False
    lost.outlook.user_edit(made_in_outlook, {"notes": "again"})
    lost.sync()
    assert lost.crm_port.lookups == 1 and origins(lost, Side.CRM) == [made_in_outlook]
    assert_converged(lost)
