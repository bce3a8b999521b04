"""A changed contacts mapping re-syncs only the pairs it changed (issue 8), through the
engine's ordinary merge after ``rebase``."""

from __future__ import annotations

from sync_examples import BASE, NOW, seen, synced

from shared.sync import DEFAULT_NORMALISATION, LinkState, Side, SideChanges, Skip, SkipReason, Update, plan
from shared.sync.remap import rebase, source_of


def replan(crm: dict, outlook: dict, directions: dict, row=None):  # type: ignore[no-untyped-def]
    row = rebase(row or synced(), crm, outlook, directions, DEFAULT_NORMALISATION)
    return plan([row], SideChanges(seen=(seen("C1", "c1", crm),)), SideChanges(seen=(seen("O1", "o1", outlook),)), now=NOW)


def test_a_new_pair_both_ways_copies_the_crm_value_to_outlook_only_for_that_field() -> None:
    [update] = replan({**BASE, "dept": "Sales"}, {**BASE, "dept": "Ops"}, {"dept": "both"}).actions
    assert isinstance(update, Update) and update.crm is None
    assert update.outlook is not None and dict(update.outlook.fields) == {"dept": "Sales"}
    assert update.link.fields["dept"] == "Sales" and update.link.crm_version == "c1"


def test_a_new_pair_both_ways_fills_the_crm_when_only_outlook_has_a_value() -> None:
    [update] = replan(dict(BASE), {**BASE, "dept": "Ops"}, {"dept": "both"}).actions
    assert isinstance(update, Update) and update.outlook is None
    assert update.crm is not None and dict(update.crm.fields) == {"dept": "Ops"}


def test_a_pair_turned_outlook_to_crm_takes_the_outlook_value() -> None:
    [update] = replan({**BASE, "dept": "Sales"}, {**BASE, "dept": "Ops"}, {"dept": "outlook_to_crm"}).actions
    assert isinstance(update, Update) and update.crm is not None and dict(update.crm.fields) == {"dept": "Ops"}


def test_a_crm_to_outlook_pair_clears_outlook_when_the_crm_is_empty() -> None:
    [update] = replan(dict(BASE), {**BASE, "dept": "Ops"}, {"dept": "crm_to_outlook"}).actions
    assert isinstance(update, Update) and update.outlook is not None and dict(update.outlook.fields) == {"dept": None}


def test_equal_values_write_nothing_and_refresh_the_row() -> None:
    actions = replan({**BASE, "dept": "Ops"}, {**BASE, "dept": "Ops"}, {"dept": "both"}).actions
    assert all(isinstance(a, Skip) and a.reason is SkipReason.ECHO for a in actions)
    link = actions[0].link  # type: ignore[union-attr]
    assert link is not None and link.fields["dept"] == "Ops" and (link.crm_version, link.outlook_version) == ("c1", "o1")


def test_a_removed_pair_is_dropped_from_the_row_and_nothing_is_written() -> None:
    row = synced({**BASE, "dept": "Ops"})
    actions = replan(dict(BASE), dict(BASE), {"dept": None}, row=row).actions
    assert all(isinstance(a, Skip) for a in actions)
    assert "dept" not in actions[0].link.fields  # type: ignore[union-attr]


def test_an_unrelated_unsynced_change_is_still_merged_normally() -> None:
    crm = {**BASE, "subject": "Renamed", "dept": "Sales"}
    [update] = replan(crm, dict(BASE), {"dept": "both"}).actions
    assert isinstance(update, Update) and dict(update.outlook.fields) == {"subject": "Renamed", "dept": "Sales"}  # type: ignore[union-attr]


def test_rows_that_are_not_synced_pairs_are_left_alone() -> None:
    pending = synced().replace(state=LinkState.PENDING_CREATE_OUTLOOK, outlook_id=None, outlook_version=None, transaction_key="K")
    assert rebase(pending, {}, {}, {"dept": "both"}, DEFAULT_NORMALISATION) == pending


def test_source_of_each_direction() -> None:
    assert source_of(None, "x") is None
    assert source_of("crm_to_outlook", None) is Side.CRM
    assert source_of("outlook_to_crm", "x") is Side.OUTLOOK
    assert source_of("both", "x") is Side.CRM and source_of("both", "") is Side.OUTLOOK
