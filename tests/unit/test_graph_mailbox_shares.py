"""One mailbox's Graph limits shared by every instance (issue 20): the pure arithmetic of
``shared.graph.mailbox_shares`` — the split of the 4 slots and the reservations of the
10-minute window — and a model of three instances driving it, held to the real limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared.graph import mailbox_shares as shares
from shared.graph.mailbox_shares import Claim, MailboxLimits, MailboxLimitsRow

T0 = 1_800_000_000.0
LIMITS = MailboxLimits()
LEASE = 20.0


def empty() -> MailboxLimitsRow:
    return MailboxLimitsRow(partition_key="graph|t|u", row_key="limits")


def claim(row: MailboxLimitsRow, holder: str, now: float, *, since: float | None = None, holding: int = 0,
          reported: int = 0, keep_open: int = 0, need: int = 20, ask: int = 40,
          limits: MailboxLimits = LIMITS) -> tuple[MailboxLimitsRow, shares.Grant]:
    return shares.claim(row, holder, now, since=since, wants=limits.slots, holding=holding, reported=reported,
                        keep_open=keep_open, need=need, ask=ask, lease_seconds=LEASE, limits=limits)


# ---- the split of the 4 slots -----------------------------------------------------------------
def test_fair_shares_examples() -> None:
    assert shares.fair_shares([("a", 4)], 4) == {"a": 4}
    assert shares.fair_shares([("a", 4), ("b", 4)], 4) == {"a": 2, "b": 2}
    assert shares.fair_shares([("a", 4), ("b", 4), ("c", 4)], 4) == {"a": 2, "b": 1, "c": 1}
    assert shares.fair_shares([("a", 4), ("b", 1)], 4) == {"a": 3, "b": 1}
    assert shares.fair_shares([(n, 4) for n in "abcde"], 4) == {"a": 1, "b": 1, "c": 1, "d": 1, "e": 0}


@given(st.lists(st.integers(0, 6), min_size=1, max_size=7), st.integers(1, 6))
def test_fair_shares_are_max_min_fair(wants: list[int], total: int) -> None:
    named = [(f"h{i}", w) for i, w in enumerate(wants)]
    got = shares.fair_shares(named, total)
    assert sum(got.values()) == min(total, sum(wants))  # nothing wasted, nothing over
    assert all(0 <= got[n] <= w for n, w in named)
    for name, want in named:  # nobody short of what they want has less than anyone else, but by one
        if got[name] < want:
            assert all(got[name] >= other - 1 for other in got.values())


def test_alone_takes_all_four_and_a_newcomer_waits_for_the_holder_to_shrink() -> None:
    row, a = claim(empty(), "a", T0)
    assert (a.slots, a.held, a.granted) == (4, 4, 40) and not a.contended
    row, b = claim(row, "b", T0 + 1)  # a holds all 4: b's wish is written, it gets none yet
    assert (b.slots, b.granted) == (0, 0) and b.contended
    row, a2 = claim(row, "a", T0 + 11, since=a.since, holding=4, reported=40, need=0, ask=0)
    assert (a2.slots, a2.held) == (2, 4) and a2.contended  # its share is 2; 4 still in flight
    row, b2 = claim(row, "b", T0 + 11.5, since=b.since)
    assert b2.slots == 0  # nothing free until a drains
    row, a3 = claim(row, "a", T0 + 12, since=a.since, holding=2, need=0, ask=0)
    assert (a3.slots, a3.held) == (2, 2)
    row, b3 = claim(row, "b", T0 + 12.5, since=b.since)
    assert b3.slots == 2 and b3.since == b.since and b3.granted > 0


def test_a_lapsed_claim_frees_its_slots_and_counts_all_it_reserved() -> None:
    row, a = claim(empty(), "a", T0, ask=500)
    row, b = claim(row, "b", T0 + LEASE + 0.1)  # a died: no renewal
    assert b.slots == 4 and "a" not in row.claims
    assert shares.window_used(row, T0 + LEASE + 0.1, LIMITS) == 500 + b.open  # a's 500 counted as sent at its end
    assert row.spent == [(shares.counted_at(T0 + LEASE), 500)]


def test_giving_back_returns_what_was_not_sent() -> None:
    row, a = claim(empty(), "a", T0, ask=1_000)
    assert shares.window_used(row, T0, LIMITS) == 1_000
    row = shares.give_back(row, "a", T0 + 5, since=a.since, reported=30, limits=LIMITS)
    assert row.claims == {} and shares.window_used(row, T0 + 5, LIMITS) == 30


def test_a_renewal_reports_what_was_sent_and_keeps_the_rest_reserved() -> None:
    row, a = claim(empty(), "a", T0, ask=100)
    row, a2 = claim(row, "a", T0 + 10, since=a.since, reported=60, keep_open=40, need=0, ask=0)
    assert a2.granted == 0 and a2.open == 40
    assert shares.window_used(row, T0 + 10, LIMITS) == 100  # 60 sent + 40 still reserved
    assert row.spent == [(shares.counted_at(T0 + 10), 60)]


def test_the_window_spent_makes_a_claim_wait_until_the_oldest_sends_leave_it() -> None:
    small = MailboxLimits(window_requests=100)
    row, a = claim(empty(), "a", T0, ask=100, limits=small)
    row = shares.give_back(row, "a", T0 + 1, since=a.since, reported=100, limits=small)
    row, b = claim(row, "b", T0 + 60, need=20, limits=small)
    assert b.slots == 4 and b.granted == 0
    assert b.budget_wait == shares.counted_at(T0 + 1) + 600 - (T0 + 60)  # when the bucket leaves the window
    row, b2 = claim(row, "b", shares.counted_at(T0 + 1) + 600.5, since=b.since, need=20, limits=small)
    assert b2.granted >= 20 and b2.budget_wait == 0


def test_reservations_are_split_between_claimants_when_the_window_is_short() -> None:
    small = MailboxLimits(window_requests=200)
    row, a = claim(empty(), "a", T0, ask=40, limits=small)
    row, b = claim(row, "b", T0 + 1, ask=1_000, limits=small)  # waits for slots: reserves nothing
    assert b.granted == 0
    row, a2 = claim(row, "a", T0 + 2, since=a.since, keep_open=0, reported=40, ask=1_000, limits=small)
    assert a2.granted == (200 - 40) // 2  # half of what is left: b wants the mailbox too


def test_the_spent_list_stays_short() -> None:
    row, a = claim(empty(), "a", T0)
    since = a.since
    for second in range(1, 2_000):
        row, grant = claim(row, "a", T0 + second, since=since, reported=3, keep_open=37, need=0, ask=0)
        since = grant.since
    assert len(row.spent) <= 600 / shares.BUCKET_SECONDS + 1
    assert len(row.to_entity()["spent"]) < 2_000  # a few KB in the row, far below the 64-KiB property limit


# ---- three instances, modelled: the real limits hold whatever they do --------------------------
@dataclass
class Instance:
    name: str
    since: float | None = None
    slots: int = 0
    until: float = 0.0
    granted: int = 0
    spent: int = 0
    reported: int = 0
    in_flight: int = 0

    def remaining(self) -> int:
        return self.granted - self.spent

    def usable(self, now: float) -> int:
        return self.slots if self.until - now >= 3 else 0


@dataclass
class World:
    limits: MailboxLimits
    row: MailboxLimitsRow = field(default_factory=empty)
    now: float = T0
    instances: list[Instance] = field(default_factory=lambda: [Instance(f"i{n}") for n in range(3)])
    sends: list[float] = field(default_factory=list)  # when every request really went out

    def claim(self, me: Instance, need: int, ask: int) -> None:
        self.row, grant = shares.claim(
            self.row, me.name, self.now, since=me.since, wants=self.limits.slots, holding=me.in_flight,
            reported=me.spent - me.reported, keep_open=max(0, me.granted - me.spent), need=need, ask=ask,
            lease_seconds=LEASE, limits=self.limits)
        if grant.since != me.since:
            me.granted = me.spent
        me.reported = me.spent
        me.granted += grant.granted
        me.since, me.slots, me.until = grant.since, grant.slots, grant.until

    def give_back(self, me: Instance) -> None:
        self.row = shares.give_back(self.row, me.name, self.now, since=me.since, reported=me.spent - me.reported,
                                    limits=self.limits)
        me.since, me.slots, me.until = None, 0, 0.0
        me.granted = me.reported = me.spent

    def send(self, me: Instance, requests: int, slots: int) -> None:
        if me.usable(self.now) - me.in_flight < slots or me.remaining() < requests:
            return  # the gate would not let it go
        me.spent += requests
        me.in_flight += slots
        self.sends += [self.now] * requests

    def check(self) -> None:
        assert sum(i.in_flight for i in self.instances) <= self.limits.slots  # Outlook's 4 in flight
        recent = [t for t in self.sends if t > self.now - self.limits.window_seconds]
        assert len(recent) <= self.limits.window_requests  # and its requests per 10 minutes


OPERATION = st.one_of(
    st.tuples(st.just("work"), st.integers(0, 2), st.integers(1, 20), st.integers(1, 4)),
    st.tuples(st.just("renew"), st.integers(0, 2), st.integers(0, 80), st.just(0)),
    st.tuples(st.just("finish"), st.integers(0, 2), st.just(0), st.just(0)),
    st.tuples(st.just("give_back"), st.integers(0, 2), st.just(0), st.just(0)),
    st.tuples(st.just("wait"), st.just(0), st.sampled_from([1, 5, 11, 21, 300, 601]), st.just(0)),
)


@settings(max_examples=500)
# A holder shrinking while its 4 requests are in flight still holds 4 until they end.
@example([("work", 0, 1, 4), ("work", 1, 1, 1), ("renew", 0, 0, 0), ("work", 1, 1, 1)], 10_000)
# Two instances' reservations at once: each counts against the other's.
@example([("work", 0, 20, 1), ("work", 1, 20, 1), ("renew", 0, 0, 0), ("work", 1, 20, 1), ("work", 0, 20, 1),
          ("work", 1, 20, 1)], 60)
@given(st.lists(OPERATION, min_size=30, max_size=80), st.sampled_from([60, 200, 10_000]))
def test_three_instances_never_exceed_the_mailboxs_limits(operations: list[tuple[str, int, int, int]],
                                                          window: int) -> None:
    """Each instance acts as its gate does: it claims when its claim lacks slots or requests
    (then sends only what the claim allows), renews, gives back, or dies (stops, its claim
    lapsing); time passes. The requests really sent never break Outlook's limits."""
    world = World(MailboxLimits(window_requests=window, window_seconds=600))
    for kind, who, a, b in operations:
        me = world.instances[who]
        if kind == "work":
            if me.usable(world.now) - me.in_flight < b:
                me.in_flight = 0  # its earlier requests are done (the others' may not be)
            if me.usable(world.now) == 0 or me.remaining() < a:
                world.claim(me, need=a, ask=40)
            world.send(me, requests=a, slots=b)
        elif kind == "renew" and me.since is not None:
            world.claim(me, need=0, ask=a)
        elif kind == "finish":
            me.in_flight = 0
        elif kind == "give_back" and me.in_flight == 0 and me.since is not None:
            world.give_back(me)
        elif kind == "wait":
            if a > 2:  # a request lasts under 2 s (the lease's margin is 3 s)
                for instance in world.instances:
                    instance.in_flight = 0
            world.now += a
        world.check()


def test_claims_round_trip_through_the_table_shape() -> None:
    row, _ = claim(empty(), "a", T0)
    stored = MailboxLimitsRow.from_entity(row.to_entity())
    assert stored.claims == {"a": Claim(slots=4, wants=4, until=T0 + LEASE, since=T0, open=40)}
