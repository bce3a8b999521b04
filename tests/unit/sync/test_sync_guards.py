"""Guards between plan and execution: mass deletion pauses; deletion needs a signal (issue 7)."""

from __future__ import annotations

import dataclasses

import pytest
from sync_examples import NOW, gone, run, side, synced

from shared.sync import (
    Delete,
    PauseForConfirmation,
    Plan,
    Proceed,
    Side,
    SideChanges,
    Tombstone,
    UnsignalledDeletion,
    check_deletions_are_signalled,
    check_mass_change,
)


def links(count: int) -> list:
    return [synced(link_id=f"L{n}", crm_id=f"C{n}", outlook_id=f"O{n}") for n in range(count)]


def deleting_in_outlook(rows: list, count: int) -> Plan:
    """The plan for ``count`` deletions reported by the CRM."""
    return run(rows, crm=[gone(row.crm_id) for row in rows[:count]])


@pytest.mark.parametrize(
    ("synced_count", "deleted", "paused"),
    [(1000, 50, False), (1000, 51, True), (200, 20, False), (200, 21, True)],
)
def test_more_than_50_or_10_percent_deletions_pause_for_confirmation(synced_count, deleted, paused) -> None:
    rows = links(synced_count)
    plan = deleting_in_outlook(rows, deleted)
    verdict = check_mass_change(plan, rows)
    assert isinstance(verdict, PauseForConfirmation) is paused
    if paused:
        assert verdict.deletions == {Side.CRM: 0, Side.OUTLOOK: deleted} and verdict.synced == synced_count
    else:
        assert isinstance(verdict, Proceed) and verdict.plan is plan


def test_thresholds_are_parameters() -> None:
    rows = links(10)
    plan = deleting_in_outlook(rows, 3)
    assert isinstance(check_mass_change(plan, rows, min_deletions=1), PauseForConfirmation)
    assert isinstance(check_mass_change(plan, rows, min_deletions=1, max_fraction=0.5), Proceed)
    assert isinstance(check_mass_change(plan, rows, max_deletions=2, max_fraction=1.0), PauseForConfirmation)


def test_a_few_deletions_among_few_items_are_ordinary_work() -> None:
    rows = links(4)
    assert isinstance(check_mass_change(deleting_in_outlook(rows, 1), rows), Proceed)


def test_the_member_total_counts_when_only_some_rows_are_loaded() -> None:
    rows = links(12)
    plan = deleting_in_outlook(rows, 12)
    assert isinstance(check_mass_change(plan, rows, synced_total=10_000), Proceed)
    assert isinstance(check_mass_change(plan, rows, synced_total=100), PauseForConfirmation)


def test_engine_deletions_always_carry_their_signal() -> None:
    rows = links(3)
    crm, outlook = side(gone("C0")), side(gone("O1"), gone("O2"))
    plan = run(rows, crm=crm.deleted, outlook=outlook.deleted)
    check_deletions_are_signalled(plan, crm, outlook)


def test_a_delete_without_its_reported_signal_is_refused() -> None:
    plan = run(links(1), crm=[gone("C0")])
    with pytest.raises(UnsignalledDeletion):
        check_deletions_are_signalled(plan, SideChanges(), SideChanges())


def test_a_delete_whose_signal_names_another_item_is_refused() -> None:
    rows = links(2)
    [delete] = run(rows, crm=[gone("C0")]).actions
    assert isinstance(delete, Delete)
    forged = Plan((dataclasses.replace(delete, link=rows[1].replace(tombstoned_at=NOW)),))
    with pytest.raises(UnsignalledDeletion, match="L1"):
        check_deletions_are_signalled(forged, side(gone("C0")), SideChanges())


def test_a_tombstone_without_its_signal_is_refused() -> None:
    [tomb] = run(links(1), crm=[gone("C0")], outlook=[gone("O0")]).actions
    assert isinstance(tomb, Tombstone)
    with pytest.raises(UnsignalledDeletion):
        check_deletions_are_signalled(Plan((tomb,)), SideChanges(), side(gone("O0")))
