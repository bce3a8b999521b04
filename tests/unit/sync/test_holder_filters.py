"""Each member's filter of the CRM ids their links name (issue 20: a CRM deletion's routing in a
big org asks the members whose filter may name the record, not every member).

The promise a trusted filter makes (``shared.sync.holder_filters``): every CRM id the member's
current links name is in it. Held here by the pure filter (never a false "no"), the table of its
life, a simulation of writers racing the full rounds' rotations in every order hypothesis finds,
the whole sync over fakes with processes dying at any write (``SyncHarness.assert_in_step``
checks the promise after every scenario of that suite), and the routing's cost in an org of
1,000 members."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.sync.crm_id_filter import (
    MAX_BYTES,
    SETTLE,
    WORN_FILL,
    CrmIdFilter,
    HolderFilter,
    Tending,
    tending,
)
from shared.sync.holder_filters import HolderFilterRow, HolderFilters, row_key
from shared.sync.org_channels import partition
from shared.sync.profiles import SyncKind
from tests.fakes.tables import TableRepositoryInMemory
from tests.sync_harness import KIND, MEMBER_KEY, SyncHarness
from tests.unit.sync.test_org_channels import ORG, OrgWorld

T0 = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
crm_ids = st.integers(min_value=5_000_000_000_000, max_value=5_999_999_999_999).map(str)


# -- the filter ----------------------------------------------------------------------------------

@given(st.lists(crm_ids, max_size=300), st.lists(crm_ids, max_size=300))
def test_a_filter_never_says_no_to_an_id_it_was_given(first: list[str], then: list[str]) -> None:
    made = CrmIdFilter.of(first).with_ids(then)
    assert made.holds_all(first + then)
    assert CrmIdFilter.of(first).union(CrmIdFilter.of(then, capacity=2 * len(first))).holds_all(first + then)


def test_at_capacity_a_filter_says_maybe_to_about_one_other_id_in_a_hundred() -> None:
    given_ids = [str(5_000_000_000_000 + 7 * n) for n in range(5_000)]
    made = CrmIdFilter.of(given_ids, capacity=5_000)
    others = [str(5_100_000_000_000 + n) for n in range(20_000)]
    wrong = sum(made.may_hold(i) for i in others) / len(others)
    assert wrong < 0.02
    assert 0.4 < made.fill < 0.6  # half the bits set at capacity


def test_a_filter_stays_within_one_table_property_however_many_ids() -> None:
    assert len(CrmIdFilter.sized_for(10_000_000).bits) == MAX_BYTES
    assert len(CrmIdFilter.sized_for(0).bits) >= 256 * 9 // 8
    with pytest.raises(ValueError):
        CrmIdFilter.sized_for(100).union(CrmIdFilter.sized_for(10_000))


def test_a_filter_not_yet_trusted_says_maybe_to_everything() -> None:
    empty = CrmIdFilter.sized_for(0)
    assert HolderFilter(empty, None, False, T0).may_name_any(["5000000000001"])
    assert not HolderFilter(empty, None, True, T0).may_name_any(["5000000000001"])
    assert HolderFilter(empty, CrmIdFilter.of(["5000000000001"]), True, T0).may_name_any(["5000000000001"])


def test_a_filter_row_fits_a_transaction_as_table_storage_is_sent_it() -> None:
    from shared.storage import TableOperation
    from shared.storage.tables import _chunks
    rows = [HolderFilterRow(partition_key=partition(ORG, KIND), row_key=row_key(f"ms|t|{n}"), member=f"ms|t|{n}",
                            current=CrmIdFilter.of([str(5_000_000_000_000 + i) for i in range(10_000)]).bits, rotated_at=T0)
            for n in range(100)]
    chunks = list(_chunks(enumerate(TableOperation("upsert", row) for row in rows)))
    assert sum(len(c) for c in chunks) == 100 and len(chunks) > 1  # 24 KB each: split by the payload's size
    assert HolderFilterRow.from_entity(rows[0].to_entity()) == rows[0]


# -- its life ------------------------------------------------------------------------------------

@pytest.mark.parametrize("trusted", [True, False])
@pytest.mark.parametrize("previous", [True, False])
@pytest.mark.parametrize("worn", [True, False])
@pytest.mark.parametrize("age", [timedelta(0), SETTLE - timedelta(seconds=1), SETTLE, timedelta(days=2)])
def test_the_life_of_a_filter_every_case(trusted: bool, previous: bool, worn: bool, age: timedelta) -> None:
    current = CrmIdFilter(b"\xff" * 300) if worn else CrmIdFilter.of(["5000000000001"])
    assert (current.fill > WORN_FILL) is worn
    held = HolderFilter(current, CrmIdFilter.sized_for(0) if previous else None, trusted, T0)
    decided = tending(held, T0 + age)
    if age < SETTLE:
        assert decided is Tending.NOTHING  # rotations at least SETTLE apart
    elif not trusted:
        assert decided is Tending.ROTATE  # trusted only through a scan
    elif previous:
        assert decided is Tending.SETTLE
    else:
        assert decided is (Tending.ROTATE if worn else Tending.NOTHING)
    assert tending(None, T0) is Tending.START


# -- writers racing the full rounds -----------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at


# One writer: it announces an id, then (within one execution) commits the link naming it, or dies.
# A full round tends the filter from a scan of the links committed by then. Disable and Enable
# are a new generation (fresh selection). Time passes between them. Each operation runs on one
# of two instances, each with its memories (what it last saw of the row, which rows it found fine).
op = st.tuples(
    st.one_of(
        st.tuples(st.just("announce"), st.sampled_from([str(5_000_000_000_001 + n) for n in range(6)])),  # ids recur
        st.tuples(st.just("commit"), st.integers(min_value=0, max_value=5)),
        st.tuples(st.just("die"), st.integers(min_value=0, max_value=5)),
        st.tuples(st.just("unlink"), st.integers(min_value=0, max_value=20)),
        st.tuples(st.just("tend"), st.just(0)),
        st.tuples(st.just("minutes"), st.integers(min_value=1, max_value=9)),
        st.tuples(st.just("hours"), st.integers(min_value=1, max_value=30)),
        st.tuples(st.just("enable"), st.integers(min_value=0, max_value=3)),
    ),
    st.integers(min_value=0, max_value=1),
)


@settings(max_examples=400, deadline=None)
@given(st.booleans(), st.lists(op, max_size=80))
def test_a_trusted_filter_holds_every_linked_id_whatever_the_order(starts_fresh: bool, ops: list[Any]) -> None:
    clock = Clock()
    table = TableRepositoryInMemory(HolderFilterRow)
    instances = [HolderFilters(table, clock.now), HolderFilters(table, clock.now)]
    member, kind = "ms|tenant-1|object-1", SyncKind.CONTACTS
    linked: set[str] = {"5000000000000"} if not starts_fresh else set()  # links made before filters existed
    writing: list[tuple[str, datetime]] = []  # announced, not committed yet, and when
    generation = 0
    if starts_fresh:
        instances[0].announce(ORG, kind, member, [], fresh=True, generation="0")
    for (name, value), on in ops:
        filters = instances[on]
        if name == "announce":
            filters.announce(ORG, kind, member, [value], generation=str(generation))
            writing.append((value, clock.at))
        elif name in ("commit", "die") and writing:
            crm_id, _ = writing.pop(value % len(writing))
            if name == "commit":
                linked.add(crm_id)
        elif name == "unlink" and linked:
            linked.discard(sorted(linked)[value % len(linked)])
        elif name == "tend":
            filters.tend(ORG, kind, member, lambda: sorted(linked))
        elif name in ("minutes", "hours"):
            ahead = clock.at + (timedelta(minutes=value) if name == "minutes" else timedelta(hours=value))
            # An execution lasts 10 minutes at most: a writer still going by then commits or dies first.
            for crm_id, started in list(writing):
                if ahead - started > timedelta(minutes=10):
                    writing.remove((crm_id, started))
                    if value % 2:
                        linked.add(crm_id)
            clock.at = ahead
        elif name == "enable":
            filters.forget(ORG, kind, member)  # Disable: the links go with the row
            linked.clear()
            writing.clear()
            generation += 1
            selection = [str(5_000_000_000_001 + n) for n in range(value)]
            filters.announce(ORG, kind, member, selection, fresh=True, generation=str(generation))
            linked.update(selection)  # the pages commit the selection
        row = filters.rows(ORG, kind).get(member)
        if row is not None and row.trusted:
            assert all(row.held().may_name_any([i]) for i in linked), (name, sorted(linked))


def test_a_filter_made_by_a_full_round_is_trusted_only_after_a_scan_a_settle_later() -> None:
    clock = Clock()
    table = TableRepositoryInMemory(HolderFilterRow)
    member = "ms|tenant-1|object-1"
    linked = ["5000000000001", "5000000000002"]

    def tended() -> Tending:
        fresh_process = HolderFilters(table, clock.now)
        return fresh_process.tend(ORG, KIND, member, lambda: list(linked))

    assert tended() is Tending.START
    assert not table.get(partition(ORG, KIND), row_key(member)).entity.trusted  # type: ignore[union-attr]
    HolderFilters(table, clock.now).announce(ORG, KIND, member, ["5000000000003"])  # a writer, after the start
    clock.at += SETTLE
    assert tended() is Tending.ROTATE
    row = table.get(partition(ORG, KIND), row_key(member)).entity  # type: ignore[union-attr]
    assert row.trusted and row.previous is not None
    assert row.held().may_name_any(["5000000000003"])  # in ``previous``: its link may come after the scan
    assert tended() is Tending.NOTHING  # a settle later, not sooner
    clock.at += SETTLE
    linked.append("5000000000003")
    assert tended() is Tending.SETTLE
    row = table.get(partition(ORG, KIND), row_key(member)).entity  # type: ignore[union-attr]
    assert row.previous is None and row.held().may_name_any(["5000000000003"])
    assert not row.held().may_name_any(["5000000009999"])


def test_an_id_announced_just_before_a_rotation_or_a_settle_stays_until_its_link_is_scanned() -> None:
    """A writer adds its id, a full round tends the filter, then the writer commits the link:
    the id must still be there after the tend, or a deletion of that record would ask nobody."""
    clock = Clock()
    table = TableRepositoryInMemory(HolderFilterRow)
    member = "ms|tenant-1|object-1"
    linked: list[str] = []

    def tend() -> Tending:
        return HolderFilters(table, clock.now).tend(ORG, KIND, member, lambda: list(linked))

    def held() -> HolderFilter:
        return table.get(partition(ORG, KIND), row_key(member)).entity.held()  # type: ignore[union-attr]

    assert tend() is Tending.START
    for expected, crm_id in ((Tending.ROTATE, "5000000000001"), (Tending.SETTLE, "5000000000002"),
                             (Tending.NOTHING, "5000000000003")):
        clock.at += SETTLE
        HolderFilters(table, clock.now).announce(ORG, KIND, member, [crm_id])
        assert tend() is expected
        linked.append(crm_id)  # committed after the scan
        assert held().trusted and held().may_name_any([crm_id])


def test_what_an_instance_saw_of_an_earlier_enables_filter_is_not_taken_for_the_next_ones() -> None:
    clock = Clock()
    table = TableRepositoryInMemory(HolderFilterRow)
    first, second = HolderFilters(table, clock.now), HolderFilters(table, clock.now)
    member = "ms|tenant-1|object-1"
    first.announce(ORG, KIND, member, [], fresh=True, generation="g1")
    second.announce(ORG, KIND, member, ["5000000000001"], generation="g1")  # seen in the row by the second instance
    first.forget(ORG, KIND, member)  # Disable, then Enable: a new generation's empty selection
    first.announce(ORG, KIND, member, [], fresh=True, generation="g2")
    second.announce(ORG, KIND, member, ["5000000000001"], generation="g2")  # the same record, linked again
    assert table.get(partition(ORG, KIND), row_key(member)).entity.held().may_name_any(["5000000000001"])  # type: ignore[union-attr]


def test_what_an_instance_saw_of_a_filter_is_forgotten_before_two_rotations_can_drop_an_id() -> None:
    clock = Clock()
    table = TableRepositoryInMemory(HolderFilterRow)
    writer, rounds = HolderFilters(table, clock.now), HolderFilters(table, clock.now)
    member = "ms|tenant-1|object-1"
    assert rounds.tend(ORG, KIND, member, list) is Tending.START
    writer.announce(ORG, KIND, member, ["5000000000001"], generation="g1")  # its writer then dies: never linked
    for expected in (Tending.ROTATE, Tending.SETTLE):  # the id goes to ``previous``, then out
        clock.at += SETTLE
        assert HolderFilters(table, clock.now).tend(ORG, KIND, member, list) is expected
    writer.announce(ORG, KIND, member, ["5000000000001"], generation="g1")  # linked this time
    assert table.get(partition(ORG, KIND), row_key(member)).entity.held().may_name_any(["5000000000001"])  # type: ignore[union-attr]


def test_a_full_round_finding_a_fine_filter_does_not_read_it_again_for_an_hour() -> None:
    clock = Clock()
    table = TableRepositoryInMemory(HolderFilterRow)
    filters = HolderFilters(table, clock.now)
    filters.announce(ORG, KIND, "ms|tenant-1|object-2", ["5000000000001"], fresh=True)
    assert filters.tend(ORG, KIND, "ms|tenant-1|object-2", list) is Tending.NOTHING  # made fresh here: known fine
    other = HolderFilters(table, clock.now)  # another instance: reads it once, then knows
    reads: list[str] = []
    get = table.get
    table.get = lambda *key: reads.append(key[1]) or get(*key)  # type: ignore[method-assign]
    assert other.tend(ORG, KIND, "ms|tenant-1|object-2", list) is Tending.NOTHING
    assert other.tend(ORG, KIND, "ms|tenant-1|object-2", list) is Tending.NOTHING
    assert len(reads) == 1


# -- the whole sync over fakes ----------------------------------------------------------------

def _filter(harness: SyncHarness) -> HolderFilterRow | None:
    return harness.service.holder_filters.rows(harness.member.org_id, KIND).get(MEMBER_KEY)  # type: ignore[union-attr]


def test_enable_makes_a_trusted_filter_of_what_the_initial_sync_links_and_later_creates_join_it() -> None:
    harness = SyncHarness()
    for n in range(7):
        harness.crm_store.user_create({"subject": f"Contact {n}"})
    harness.enable()
    harness.settle()
    row = _filter(harness)
    assert row is not None and row.trusted
    harness.assert_in_step()
    made = harness.outlook_store.user_create({"subject": "Made in Outlook"})
    harness.webhook()
    harness.settle()
    [record] = [k for k, item in harness.crm_store.items.items() if item.origin == made]
    assert _filter(harness).held().may_name_any([record])  # type: ignore[union-attr]
    assert not _filter(harness).held().may_name_any(["5999999999999"])  # type: ignore[union-attr]
    harness.disable()
    assert _filter(harness) is None  # Disable: the links go, and the filter with them
    harness.enable()
    harness.settle()
    assert _filter(harness).trusted  # type: ignore[union-attr]
    harness.assert_in_step()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(min_value=1, max_value=12)), min_size=1, max_size=12))
def test_a_process_dying_at_any_write_leaves_the_filter_holding_every_linked_id(crashes: list[int | None]) -> None:
    harness = SyncHarness()
    for n in range(5):
        harness.crm_store.user_create({"subject": f"Contact {n}"})
    harness.enable()
    harness.settle(crashes=crashes)
    for n in range(3):
        harness.outlook_store.user_create({"subject": f"Made in Outlook {n}"})
        harness.crm_store.user_create({"subject": f"Made in the CRM {n}"})
    harness.webhook()
    harness.settle(crashes=crashes)
    harness.assert_in_step()  # with the filter's promise
    assert _filter(harness).trusted  # type: ignore[union-attr]


# -- the routing ----------------------------------------------------------------------------------

def test_a_crm_deletion_in_an_org_of_1000_members_reads_their_filters_and_asks_only_the_holder() -> None:
    world = OrgWorld(holder_filters=True)
    members = world.syncing(1000)
    filters = world.service.holder_filters
    assert filters is not None
    for n, member in enumerate(members):  # what each one's initial sync announced: 300 records each
        filters.announce(ORG, SyncKind.CONTACTS, member.partition_key, [str(5_000_000_000_000 + 1000 * n + i) for i in range(300)],
                         fresh=True)
        world.links.crm_ids[f"{member.partition_key}|contacts|g{n}"] = {str(5_000_000_000_000 + 1000 * n + i) for i in range(300)}
    holder = members[417]
    world.reset()
    world.callback("delete", [str(5_000_000_000_000 + 1000 * 417 + 5)])
    world.route_queued_changes()
    assert [s.member for s in world.steps()] == [holder.partition_key]
    assert world.counts["crm"] == 0
    # The channel and the members (2), the filters (1 a thousand), the holder's profile and links,
    # and about 1 % of the others asked for nothing: against 2,000 reads asking everyone.
    assert world.counts["table"] <= 40, world.counts


def test_members_without_a_trusted_filter_are_still_asked() -> None:
    world = OrgWorld(holder_filters=True)
    members = world.syncing(20)
    filters = world.service.holder_filters
    assert filters is not None
    for member in members[:10]:
        filters.announce(ORG, SyncKind.CONTACTS, member.partition_key, [], fresh=True)  # trusted, names nothing
    holder = members[15]  # enabled before filters existed: no row
    world.links.crm_ids[f"{holder.partition_key}|contacts|g15"] = {"5000000000042"}
    world.reset()
    world.callback("delete", ["5000000000042"])
    world.route_queued_changes()
    assert [s.member for s in world.steps()] == [holder.partition_key]
