"""Property tests of the sync core over an in-memory CRM and Outlook (issue 7; aesthetics §7.10).

A Hypothesis state machine creates, edits, touches and deletes items on both sides,
syncs with any policy, and crashes the executor after a random number of steps. After
every completed sync:

- planning again makes no remote write and records no conflict (convergence);
- every item on each side is in exactly one synced link, and each linked pair holds the
  same mapped content after normalisation;
- no side holds two items of one origin (nothing created twice), also across crashes;
- the sync deleted nothing whose deletion the user did not make somewhere (explicit
  signal only; every plan also passes ``check_deletions_are_signalled``).
"""

from __future__ import annotations

import contextlib
from collections import Counter

from hypothesis import given, note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shared.sync import ConflictPolicy, LinkState, Side
from tests.sync_world import NORMALISATION, Crash, World, live_links

SUBJECTS = st.sampled_from(["Call", "call", "Call  ", "Lunch", "Review"])
EMAILS = st.sampled_from(["ann@example.com", "Ann@Example.com", "bob@example.com", None])
NOTES = st.sampled_from(["", "line 1\nline 2", "line 1\r\nline 2", "other"])
CONTENT = st.fixed_dictionaries({"subject": SUBJECTS, "email": EMAILS, "notes": NOTES})
FIELD_EDITS = st.one_of(
    st.fixed_dictionaries({"subject": SUBJECTS}),
    st.fixed_dictionaries({"email": EMAILS}),
    st.fixed_dictionaries({"notes": NOTES}),
    CONTENT,
)
SIDES = st.sampled_from(list(Side))
POLICIES = st.sampled_from(list(ConflictPolicy))


def assert_converged(world: World) -> None:
    """The invariants that hold after a completed sync."""
    again, _, _ = world.make_plan()
    assert again.remote_writes == (), again.remote_writes
    assert again.conflicts == ()
    links = live_links(world)
    assert all(row.state is LinkState.SYNCED for row in links), links
    for side in Side:
        linked = Counter(row.item_id(side) for row in links)
        assert set(linked) == set(world.store(side).items), side
        assert all(count == 1 for count in linked.values())
        origins = Counter(item.origin for item in world.store(side).items.values())
        assert all(count == 1 for count in origins.values()), origins
    for row in links:
        crm = world.crm.items[row.crm_id or ""].fields
        outlook = world.outlook.items[row.outlook_id or ""].fields
        assert NORMALISATION.apply(crm) == NORMALISATION.apply(outlook), row
    assert world.sync_deleted <= world.user_deleted


class SyncMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = World()

    def _pick(self, side: Side, index: int) -> str:
        ids = sorted(self.world.store(side).items)
        return ids[index % len(ids)]

    def _has_items(self) -> bool:
        return bool(self.world.crm.items or self.world.outlook.items)

    @rule(side=SIDES, content=CONTENT)
    def create(self, side: Side, content: dict) -> None:
        self.world.store(side).user_create(content)

    @precondition(_has_items)
    @rule(side=SIDES, index=st.integers(0, 20), changes=FIELD_EDITS)
    def edit(self, side: Side, index: int, changes: dict) -> None:
        if self.world.store(side).items:
            self.world.store(side).user_edit(self._pick(side, index), changes)

    @precondition(_has_items)
    @rule(side=SIDES, index=st.integers(0, 20))
    def touch(self, side: Side, index: int) -> None:
        if self.world.store(side).items:
            self.world.store(side).touch(self._pick(side, index))

    @precondition(_has_items)
    @rule(side=SIDES, index=st.integers(0, 20))
    def delete(self, side: Side, index: int) -> None:
        if self.world.store(side).items:
            self.world.user_delete(side, self._pick(side, index))

    @rule(policy=POLICIES)
    def sync(self, policy: ConflictPolicy) -> None:
        self.world.sync(policy)
        assert_converged(self.world)

    @rule(policy=POLICIES, budget=st.integers(0, 12))
    def crash_mid_sync(self, policy: ConflictPolicy, budget: int) -> None:
        try:
            self.world.sync(policy, budget=budget)
        except Crash:
            note(f"crashed after {budget} steps")

    @rule(policy=POLICIES, budget=st.integers(0, 12))
    def crash_and_lose_our_echoes(self, policy: ConflictPolicy, budget: int) -> None:
        """The create may have happened, but its item will not be reported again: only
        the marker look-up (``Create.recover``) can find it."""
        try:
            self.world.sync(policy, budget=budget)
        except Crash:
            self.world.crm.forget_our_writes()
            self.world.outlook.forget_our_writes()

    @invariant()
    def never_two_items_of_one_origin(self) -> None:
        for side in Side:
            origins = Counter(item.origin for item in self.world.store(side).items.values())
            assert all(count == 1 for count in origins.values()), (side, origins)

    def teardown(self) -> None:
        self.world.sync()
        assert_converged(self.world)


TestSyncMachine = SyncMachine.TestCase


@given(
    contents=st.lists(st.tuples(SIDES, CONTENT), max_size=8),
    touches=st.lists(st.tuples(SIDES, st.integers(0, 20))),
)
def test_echoes_and_touches_make_no_writes(contents: list, touches: list) -> None:
    """After a sync, version-only changes (our echoes, Exchange's own) plan no write."""
    world = World()
    for side, content in contents:
        world.store(side).user_create(content)
    world.sync()
    for side, index in touches:
        items = sorted(world.store(side).items)
        if items:
            world.store(side).touch(items[index % len(items)])
    again, _, _ = world.make_plan()
    assert again.remote_writes == ()


@given(contents=st.lists(st.tuples(SIDES, CONTENT), min_size=1, max_size=6), budget=st.integers(0, 30))
def test_crash_during_initial_sync_recovers_without_duplicates(contents: list, budget: int) -> None:
    """A crash anywhere in the first sync, then a full sync: one copy of each item."""
    world = World()
    for side, content in contents:
        world.store(side).user_create(content)
    with contextlib.suppress(Crash):
        world.sync(budget=budget)
    world.sync()
    assert_converged(world)
    assert len(world.crm.items) == len(world.outlook.items) == len(contents)


@given(st.data())
def test_deletions_without_signal_never_delete(data: st.DataObject) -> None:
    """Items missing from a listing (a capped or windowed read) are never deleted."""
    world = World()
    for content in data.draw(st.lists(CONTENT, min_size=1, max_size=5)):
        world.crm.user_create(content)
    world.sync()
    world.crm.log.clear()
    world.outlook.log.clear()  # nothing reported at all: a read that saw no item
    result, _, _ = world.make_plan()
    assert result.actions == ()
