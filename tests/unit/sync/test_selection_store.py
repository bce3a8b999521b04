"""The initial sync's selection keeps the cap's ids in order, whatever their number (found by
``make bench``: 2,000 CRM ids in one row were 88 KB of UTF-16, over a property's 64 KiB, and
the initial sync of 2,000 contacts stopped as "step failed")."""

from __future__ import annotations

from shared.sync.selection_store import SelectionChunk, SelectionStore
from tests.fakes.tables import TableRepositoryInMemory


def test_ten_thousand_crm_ids_are_kept_in_order_within_the_tables_limits() -> None:
    store = SelectionStore(TableRepositoryInMemory(SelectionChunk))  # the fake applies the service's limits
    ids = [str(5725767000000100069 + n * 7) for n in range(10_000)]  # Zoho's 19-digit ids, the contacts cap
    store.save("member|contacts|g1", ids)
    assert store.load("member|contacts|g1") == ids
    store.save("member|contacts|g1", ids[:3])  # a smaller selection leaves no stale row behind
    assert store.load("member|contacts|g1") == ids[:3]
    store.save("member|contacts|g2", [])
    assert store.load("member|contacts|g2") == [] and store.load("member|contacts|g3") is None
