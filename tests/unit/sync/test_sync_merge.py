"""Three-way field merge and the conflict policy (SPEC R3.9, R4.4)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from shared.sync import DEFAULT_NORMALISATION, ConflictPolicy, Side
from shared.sync.merge import merge_fields, pick_winner

VALUES = st.sampled_from(["a", "b", "c", None])
RECORDS = st.fixed_dictionaries({"x": VALUES, "y": VALUES, "z": VALUES})
EARLY, LATE = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)


def merge(base: dict, crm: dict, outlook: dict, winner: Side = Side.CRM):
    return merge_fields(base, crm, outlook, winner=winner, normalisation=DEFAULT_NORMALISATION)


def test_one_sided_change_goes_to_the_other_side_only() -> None:
    result = merge({"x": "a", "y": "a"}, {"x": "b", "y": "a"}, {"x": "a", "y": "a"})
    assert (result.to_crm, result.to_outlook, result.conflicts) == ({}, {"x": "b"}, ())


def test_equal_changes_on_both_sides_are_no_conflict() -> None:
    result = merge({"x": "a"}, {"x": "b"}, {"x": "b "})
    assert (result.to_crm, result.to_outlook, result.conflicts) == ({}, {}, ())


def test_conflict_overwrites_the_loser_and_names_both_values() -> None:
    result = merge({"x": "a"}, {"x": "b"}, {"x": "c"}, winner=Side.OUTLOOK)
    assert result.to_crm == {"x": "c"} and result.to_outlook == {}
    [conflict] = result.conflicts
    assert (conflict.crm_value, conflict.outlook_value, conflict.winner) == ("b", "c", Side.OUTLOOK)


def test_volatile_fields_are_never_merged() -> None:
    result = merge({"x": "a"}, {"x": "a", "Modified_Time": "t2"}, {"x": "a", "changeKey": "k"})
    assert (result.to_crm, result.to_outlook, result.fields) == ({}, {}, {"x": "a"})


def test_policy() -> None:
    assert pick_winner(ConflictPolicy.MOST_RECENT, EARLY, LATE) is Side.OUTLOOK
    assert pick_winner(ConflictPolicy.MOST_RECENT, LATE, EARLY) is Side.CRM
    assert pick_winner(ConflictPolicy.MOST_RECENT, LATE, LATE) is Side.CRM
    assert pick_winner(ConflictPolicy.CRM_WINS, EARLY, LATE) is Side.CRM
    assert pick_winner(ConflictPolicy.OUTLOOK_WINS, LATE, EARLY) is Side.OUTLOOK


@given(RECORDS, RECORDS, RECORDS, st.sampled_from(list(Side)))
def test_applying_both_patches_makes_both_sides_equal_the_merge(base, crm, outlook, winner) -> None:
    result = merge(base, crm, outlook, winner)
    crm_after = DEFAULT_NORMALISATION.apply({**crm, **result.to_crm})
    outlook_after = DEFAULT_NORMALISATION.apply({**outlook, **result.to_outlook})
    assert crm_after == outlook_after == DEFAULT_NORMALISATION.apply(result.fields)


@given(RECORDS, RECORDS, st.sampled_from(list(Side)))
def test_a_change_on_one_side_alone_is_never_lost(base, crm, winner) -> None:
    result = merge(base, crm, base, winner)
    assert DEFAULT_NORMALISATION.apply(result.fields) == DEFAULT_NORMALISATION.apply(crm)
    assert result.conflicts == ()
