"""The link rows' layout (issue 21): one entity per pair, found by filtered queries, and an
initial page's 99 rows committed with the progress in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.sync.link_store import COMPARISONS_PER_QUERY, LinkEntity, LinkStore
from shared.sync.links import InitialProgress, InitialState, LinkRow, LinkState
from tests.fakes.tables import TableRepositoryInMemory

PARTITION = "member|contacts|g1"


class CountedTable(TableRepositoryInMemory[LinkEntity]):
    def __init__(self) -> None:
        super().__init__(LinkEntity)
        self.queries = 0

    def query(self, *args: Any, **kwargs: Any) -> Any:
        self.queries += 1
        return super().query(*args, **kwargs)


def _synced(n: int) -> LinkRow:
    return LinkRow(link_id=f"l{n}", state=LinkState.SYNCED, crm_id=f"c{n}", outlook_id=f"o{n}", crm_version="1",
                   outlook_version="1", fields={"subject": f"Item {n}"})


def _tombstone(n: int) -> LinkRow:
    return _synced(n).model_copy(update={"state": LinkState.TOMBSTONE, "tombstoned_at": datetime.now(UTC)})


def test_an_initial_page_of_99_pairs_and_its_progress_are_one_transaction() -> None:
    table = CountedTable()
    store = LinkStore(table)
    store.commit(PARTITION, [_synced(n) for n in range(99)], InitialProgress(done=99, reserved=297, synced=99))
    assert table.transactions == 1
    assert store.initial_state(PARTITION).progress == InitialProgress(done=99, reserved=297, synced=99)
    assert len(store.all(PARTITION)) == 99  # the progress is no pair
    store.commit(PARTITION, [_synced(n) for n in range(99, 199)], InitialProgress(done=199, reserved=199, synced=199))
    assert table.transactions == 2  # 100 rows and the progress do not fit one: the rows, then the progress alone
    assert store.initial_state(PARTITION).progress == InitialProgress(done=199, reserved=199, synced=199)


def test_ten_thousand_crm_ids_and_the_progress_are_saved_in_one_transaction_and_read_in_one_query() -> None:
    """Within the service's limits (found by ``make bench``: 2,000 CRM ids in one row were 88 KB
    of UTF-16, over a property's 64 KiB, and the initial sync of 2,000 contacts stopped)."""
    table = CountedTable()  # the fake applies the service's limits
    store = LinkStore(table)
    ids = [str(5725767000000100069 + n * 7) for n in range(10_000)]  # Zoho's 19-digit ids, the contacts cap
    store.write(PARTITION, [(None, _synced(1))])
    first = store.initial_state(PARTITION)
    assert first == InitialState() and table.queries == 1
    store.select(PARTITION, ids, InitialProgress(reserved=198), replacing=first)
    assert table.transactions == 2
    table.queries = 0
    saved = store.initial_state(PARTITION)
    assert saved.ids == ids and saved.progress == InitialProgress(reserved=198) and table.queries == 1
    store.select(PARTITION, ids[:3], InitialProgress(reserved=3), replacing=saved)  # a smaller selection leaves no stale row
    assert store.initial_state(PARTITION).ids == ids[:3]
    assert [r.link_id for r in store.all(PARTITION)] == ["l1"] and store.purge(PARTITION) == 1
    assert store.initial_state(PARTITION) == InitialState()


def test_a_few_ids_are_one_filtered_query_with_every_pending_create() -> None:
    table = CountedTable()
    store = LinkStore(table)
    pending = LinkRow(link_id="p", state=LinkState.PENDING_CREATE_OUTLOOK, crm_id="c-p", crm_version="1", transaction_key="k")
    gone = _tombstone(7)
    store.write(PARTITION, [(None, _synced(n)) for n in range(7)] + [(None, pending), (None, gone)])
    table.queries = 0
    found = store.load(PARTITION, crm_ids=["c1", "c7"], outlook_ids=["o2", "o-unknown"])
    assert sorted(r.link_id for r in found) == ["l1", "l2", "p"]  # a tombstone is no item's pair
    assert table.queries == 1


def test_more_ids_are_more_queries_then_one_scan() -> None:
    table = CountedTable()
    store = LinkStore(table)
    store.write(PARTITION, [(None, _synced(n)) for n in range(300)])
    for wanted, queries in ((COMPARISONS_PER_QUERY - 2, 1), (COMPARISONS_PER_QUERY - 1, 2), (50, 4), (60, 1)):
        table.queries = 0
        found = store.load(PARTITION, crm_ids=[f"c{n}" for n in range(wanted)])
        assert sorted(r.crm_id for r in found) == sorted(f"c{n}" for n in range(wanted))
        assert table.queries == queries, wanted


def test_whether_a_partition_names_any_of_100_deleted_records_is_a_few_small_queries_never_a_scan() -> None:
    """A CRM deletion has no owner to read: every member of the org is asked whether their links
    name the records (``crm_routing``), so the answer must not cost a parse of their 2,000 links."""
    table = CountedTable()
    store = LinkStore(table)
    pending = LinkRow(link_id="p", state=LinkState.PENDING_CREATE_OUTLOOK, crm_id="pending-c", crm_version="1", transaction_key="k")
    gone = _tombstone(5000)
    store.write(PARTITION, [(None, _synced(n)) for n in range(2000)] + [(None, pending), (None, gone)])
    deleted = [f"x{n}" for n in range(100)]
    parsed: list[int] = []
    original = LinkRow.model_validate
    table.queries = 0
    try:
        LinkRow.model_validate = lambda *a, **k: parsed.append(1) or original(*a, **k)  # type: ignore[method-assign]
        assert not store.names_any(PARTITION, deleted)
        assert table.queries == 8 and len(parsed) == 1  # ceil((100 + 2 pending terms) / 14); only the pending create parsed
    finally:
        LinkRow.model_validate = original  # type: ignore[method-assign]
    for named, queries in (("c1999", 8), ("pending-c", 1), ("c5000", 8)):
        table.queries = 0
        assert store.names_any(PARTITION, [*deleted[:-1], named]) is (named != "c5000"), named  # a tombstone names nothing
        assert table.queries <= queries, named
    table.queries = 0
    assert not store.names_any(PARTITION, []) and table.queries == 0
    assert not store.names_any(PARTITION, deleted, pairs=2000) and table.queries == 8  # the profile's count: still filtered


def test_a_small_partition_is_asked_whether_it_names_deleted_records_in_one_read() -> None:
    table = CountedTable()
    store = LinkStore(table)
    pending = LinkRow(link_id="p", state=LinkState.PENDING_CREATE_CRM, outlook_id="o-p", outlook_version="1", transaction_key="k")
    gone = _tombstone(500)
    store.write(PARTITION, [(None, _synced(n)) for n in range(150)] + [(None, pending), (None, gone)])
    for named, found in (("c149", True), ("c500", False), ("x", False)):
        table.queries = 0
        assert store.names_any(PARTITION, [f"x{n}" for n in range(99)] + [named], pairs=150) is found, named
        assert table.queries == 1, named


def test_a_series_is_found_by_its_property_and_forgotten_with_its_row() -> None:
    store = LinkStore(CountedTable())
    series = _synced(1).model_copy(update={"fields": {"recurrence": {"type": "daily"}}})
    store.write(PARTITION, [(None, series), (None, _synced(2))])
    assert store.series_outlook_ids(PARTITION) == ["o1"]
    store.forget(PARTITION, [series])
    assert store.series_outlook_ids(PARTITION) == [] and store.load(PARTITION, outlook_ids=["o1"]) == []
    assert store.purge(PARTITION) == 1


def test_the_progress_alone_is_one_point_read_and_keeps_the_total() -> None:
    """What the member's page reads while a step runs (``shared.sync.initial_progress``)."""
    table = CountedTable()
    store = LinkStore(table)
    assert store.progress(PARTITION) is None  # nothing selected yet
    store.commit(PARTITION, [_synced(n) for n in range(99)], InitialProgress(done=99, reserved=297, synced=97, total=400))
    assert store.progress(PARTITION) == InitialProgress(done=99, reserved=297, synced=97, total=400)
    assert table.queries == 0
