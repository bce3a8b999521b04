"""One test per row of the case table in ``shared/sync/engine.py`` (SPEC R3.3, R3.9, R4.4)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sync_examples import BASE, EARLIER, NOW, edited, gone, kinds, run, seen, synced

from shared.sync import (
    Adopt,
    ConflictKind,
    ConflictPolicy,
    Create,
    Delete,
    DeleteSignal,
    ForgetLink,
    LinkRow,
    LinkState,
    RecordConflict,
    Side,
    Skip,
    SkipReason,
    Tombstone,
    Update,
    plan,
)
from shared.sync.changes import SideChanges


def pending_on_outlook(**changes: object) -> LinkRow:
    row = synced().replace(
        state=LinkState.PENDING_CREATE_OUTLOOK, outlook_id=None, outlook_version=None, transaction_key="K1"
    )
    return row.replace(**changes) if changes else row


def pending_on_crm() -> LinkRow:
    return synced().replace(
        state=LinkState.PENDING_CREATE_CRM, crm_id=None, crm_version=None, transaction_key="K2"
    )


def tombstone(at=EARLIER) -> LinkRow:
    return synced().replace(state=LinkState.TOMBSTONE, tombstoned_at=at)


# --- no link -------------------------------------------------------------------------


def test_n1_new_crm_item_is_created_on_outlook_with_a_pending_row_first() -> None:
    [create] = run([], crm=[seen("C9", "c1")]).actions
    assert isinstance(create, Create) and create.side is Side.OUTLOOK and not create.recover
    assert create.fields == BASE and create.marker == "C9"
    assert create.pending.state is LinkState.PENDING_CREATE_OUTLOOK
    assert (create.pending.crm_id, create.pending.outlook_id) == ("C9", None)
    done = create.completed("O9", "o9")
    assert (done.state, done.outlook_id, done.outlook_version, done.crm_version) == (
        LinkState.SYNCED,
        "O9",
        "o9",
        "c1",
    )


def test_n2_new_outlook_item_is_created_on_the_crm() -> None:
    [create] = run([], outlook=[seen("O9", "o1")]).actions
    assert isinstance(create, Create) and create.side is Side.CRM and create.marker == "O9"
    assert create.pending.state is LinkState.PENDING_CREATE_CRM


def test_n3_new_items_on_both_sides_are_never_matched_even_when_identical() -> None:
    result = run([], crm=[seen("C9", "c1")], outlook=[seen("O9", "o1")])
    assert sorted(action.side for action in result.actions) == [Side.CRM, Side.OUTLOOK]
    assert kinds(result) == ["Create", "Create"]


def test_n4_deletion_of_an_unknown_item_is_skipped() -> None:
    result = run([], crm=[gone("C9", DeleteSignal.CRM_DELETED_LIST)])
    assert kinds(result) == ["Skip:unknown_deleted"]


def test_n5_item_with_our_marker_and_no_row_is_adopted_not_duplicated() -> None:
    result = run([], outlook=[seen("O9", "o1", partner="C9")])
    [adopt] = result.actions
    assert isinstance(adopt, Adopt)
    assert (adopt.link.crm_id, adopt.link.outlook_id, adopt.link.state) == ("C9", "O9", LinkState.SYNCED)


def test_n5_adopted_pair_with_different_content_takes_the_source_side() -> None:
    result = run([], crm=[seen("C9", "c2", edited(subject="New"))], outlook=[seen("O9", "o1", partner="C9")])
    assert kinds(result) == ["Adopt", "Update"]
    update = result.actions[1]
    assert isinstance(update, Update) and update.crm is None
    assert update.outlook is not None and update.outlook.fields == {"subject": "New"}


def test_n6_marker_naming_an_item_linked_elsewhere_is_a_copy_and_counts_as_new() -> None:
    result = run([synced()], outlook=[seen("O9", "o1", partner="C1")])
    [create] = result.actions
    assert isinstance(create, Create) and create.side is Side.CRM and create.marker == "O9"


def test_n6_marker_naming_a_tombstoned_pair_counts_as_new() -> None:
    result = run([tombstone()], outlook=[seen("O9", "o1", partner="C1")])
    assert kinds(result) == ["Create"]


def test_n6_two_copies_claiming_one_partner_adopt_one_and_create_the_other() -> None:
    result = run([], outlook=[seen("O8", "o1", partner="C9"), seen("O9", "o1", partner="C9")])
    assert sorted(kinds(result)) == ["Adopt", "Create"]


def test_n7_out_of_scope_item_is_skipped_with_its_reason() -> None:
    [skip] = run([], crm=[seen("C9", "c1", excluded="import")]).actions
    assert isinstance(skip, Skip) and skip.reason is SkipReason.FILTERED and skip.detail == "import"


def test_n7_linked_item_going_out_of_scope_writes_nothing() -> None:
    result = run([synced()], crm=[seen("C1", "c2", edited(subject="x"), excluded="not_owner")])
    assert kinds(result) == ["Skip:filtered"]


# --- synced ----------------------------------------------------------------------------


def test_s1_nothing_reported_plans_nothing() -> None:
    assert run([synced()]).actions == ()


def test_s1_unmoved_versions_are_skipped_as_unchanged() -> None:
    result = run([synced()], crm=[seen("C1", "c1")], outlook=[seen("O1", "o1", edited(subject="ignored"))])
    assert kinds(result) == ["Skip:unchanged", "Skip:unchanged"]


def test_s3_a_crm_edit_within_the_second_of_the_last_write_is_a_change() -> None:
    """The CRM's Modified_Time counts whole seconds: an edit in the second the record was
    last written keeps its version; the moved content tells (Graph's changeKey always moves)."""
    result = run([synced()], crm=[seen("C1", "c1", edited(subject="Same second"))])
    [update] = result.actions
    assert isinstance(update, Update) and update.crm is None
    assert update.outlook is not None and update.outlook.fields == {"subject": "Same second"}


def test_s2_echo_refreshes_the_stored_version_and_writes_nothing() -> None:
    result = run([synced()], outlook=[seen("O1", "o2", {**BASE, "notes": "agenda  "})])
    [skip] = result.actions
    assert isinstance(skip, Skip) and skip.reason is SkipReason.ECHO
    assert skip.link is not None and skip.link.outlook_version == "o2" and skip.link.crm_version == "c1"


def test_s3_crm_change_updates_only_the_changed_fields_on_outlook() -> None:
    [update] = run([synced()], crm=[seen("C1", "c2", edited(location="Room 2"))]).actions
    assert isinstance(update, Update) and update.crm is None and update.outlook is not None
    assert update.outlook.fields == {"location": "Room 2"} and update.outlook.expected_version == "o1"
    done = update.completed(outlook_version="o2")
    assert (done.crm_version, done.outlook_version, done.fields["location"]) == ("c2", "o2", "Room 2")


def test_s3_crm_change_with_an_outlook_echo_uses_the_echo_version_as_expected() -> None:
    [update] = run([synced()], crm=[seen("C1", "c2", edited(notes="x"))], outlook=[seen("O1", "o2")]).actions
    assert isinstance(update, Update) and update.outlook is not None
    assert update.outlook.expected_version == "o2"


def test_s4_outlook_change_updates_the_crm() -> None:
    [update] = run([synced()], outlook=[seen("O1", "o2", edited(subject="Lunch"))]).actions
    assert isinstance(update, Update) and update.outlook is None and update.crm is not None
    assert update.crm.fields == {"subject": "Lunch"} and update.crm.expected_version == "c1"


def test_s4_cleared_field_is_sent_as_none() -> None:
    [update] = run([synced()], outlook=[seen("O1", "o2", {"subject": "Call", "notes": "agenda"})]).actions
    assert isinstance(update, Update) and update.crm is not None
    assert update.crm.fields == {"location": None}


def test_s5_different_fields_changed_on_both_sides_merge_without_conflict() -> None:
    result = run(
        [synced()],
        crm=[seen("C1", "c2", edited(location="Room 2"))],
        outlook=[seen("O1", "o2", edited(subject="Lunch"))],
    )
    [update] = result.actions
    assert isinstance(update, Update) and update.crm is not None and update.outlook is not None
    assert update.crm.fields == {"subject": "Lunch"} and update.outlook.fields == {"location": "Room 2"}
    assert update.completed(crm_version="c3", outlook_version="o3").fields == edited(
        subject="Lunch", location="Room 2"
    )


@pytest.mark.parametrize(
    ("policy", "crm_at", "outlook_at", "winner"),
    [
        (ConflictPolicy.MOST_RECENT, EARLIER, NOW, Side.OUTLOOK),
        (ConflictPolicy.MOST_RECENT, NOW, EARLIER, Side.CRM),
        (ConflictPolicy.MOST_RECENT, NOW, NOW, Side.CRM),  # a tie goes to the CRM
        (ConflictPolicy.CRM_WINS, EARLIER, NOW, Side.CRM),
        (ConflictPolicy.OUTLOOK_WINS, NOW, EARLIER, Side.OUTLOOK),
    ],
)
def test_s6_same_field_changed_on_both_sides_follows_the_policy_and_is_recorded(
    policy, crm_at, outlook_at, winner
) -> None:
    result = run(
        [synced()],
        crm=[seen("C1", "c2", edited(subject="From CRM", notes="crm notes"), at=crm_at)],
        outlook=[seen("O1", "o2", edited(subject="From Outlook"), at=outlook_at)],
        policy=policy,
    )
    update, record = result.actions
    assert isinstance(update, Update) and isinstance(record, RecordConflict)
    [conflict] = record.conflict.fields
    assert (conflict.field, conflict.crm_value, conflict.outlook_value, conflict.winner) == (
        "subject",
        "From CRM",
        "From Outlook",
        winner,
    )
    won = "From CRM" if winner is Side.CRM else "From Outlook"
    loser_patch = update.outlook if winner is Side.CRM else update.crm
    assert loser_patch is not None and loser_patch.fields["subject"] == won
    assert (
        update.outlook is not None and update.outlook.fields["notes"] == "crm notes"
    )  # merged, not overwritten
    assert record.conflict.kind is ConflictKind.SAME_FIELD


def test_s7_both_sides_changed_alike_converge_without_writes() -> None:
    result = run(
        [synced()],
        crm=[seen("C1", "c2", edited(subject="Lunch"))],
        outlook=[seen("O1", "o2", edited(subject="Lunch "))],
    )
    assert kinds(result) == ["Skip:converged", "Skip:converged"]
    skip = result.actions[0]
    assert isinstance(skip, Skip) and skip.link is not None
    assert (skip.link.crm_version, skip.link.outlook_version) == ("c2", "o2")


def test_s8_crm_deletion_deletes_the_outlook_item_and_tombstones() -> None:
    [delete] = run([synced()], crm=[gone("C1", DeleteSignal.CRM_DELETE_CALLBACK)]).actions
    assert isinstance(delete, Delete) and delete.side is Side.OUTLOOK and delete.item_id == "O1"
    assert delete.expected_version == "o1" and delete.because.item_id == "C1"
    assert delete.link.state is LinkState.TOMBSTONE and delete.link.tombstoned_at == NOW


def test_s8_crm_deletion_with_an_outlook_echo_still_deletes() -> None:
    [delete] = run([synced()], crm=[gone("C1")], outlook=[seen("O1", "o2")]).actions
    assert isinstance(delete, Delete) and delete.expected_version == "o2"


def test_s9_outlook_deletion_deletes_the_crm_item() -> None:
    [delete] = run([synced()], outlook=[gone("O1")]).actions
    assert isinstance(delete, Delete) and delete.side is Side.CRM and delete.item_id == "C1"


def test_s10_crm_deleted_and_outlook_changed_keeps_the_change_and_recreates_in_the_crm() -> None:
    result = run([synced()], crm=[gone("C1")], outlook=[seen("O1", "o2", edited(subject="Kept"))])
    create, retired, record = result.actions
    assert isinstance(create, Create) and create.side is Side.CRM and create.fields["subject"] == "Kept"
    assert (
        create.pending.link_id == "L1" and create.pending.crm_id is None and create.pending.outlook_id == "O1"
    )
    assert isinstance(retired, Tombstone) and retired.link.crm_id == "C1" and retired.link.outlook_id is None
    assert isinstance(record, RecordConflict) and record.conflict.kind is ConflictKind.DELETED_AND_CHANGED
    assert record.conflict.deleted_on is Side.CRM


def test_s11_outlook_deleted_and_crm_changed_recreates_in_outlook() -> None:
    result = run([synced()], crm=[seen("C1", "c2", edited(notes="new"))], outlook=[gone("O1")])
    assert kinds(result) == ["Create", "Tombstone", "RecordConflict"]
    assert result.actions[0].side is Side.OUTLOOK  # type: ignore[union-attr]


def test_s8r_kept_mass_change_recreates_the_outlook_item_from_the_row() -> None:
    changes = SideChanges(deleted=(gone("O1"),))
    result = plan([synced()], SideChanges(), changes, now=NOW, restore_deletions=True)
    create, retired = result.actions
    assert isinstance(create, Create) and create.side is Side.OUTLOOK and create.fields == BASE
    assert create.pending.link_id == "L1" and create.pending.crm_id == "C1" and create.pending.outlook_id is None
    assert isinstance(retired, Tombstone) and retired.link.outlook_id == "O1" and retired.link.crm_id is None


def test_s9r_kept_mass_change_recreates_the_crm_item_from_the_unchanged_outlook_echo() -> None:
    changes = SideChanges(deleted=(gone("C1"),))
    result = plan([synced()], changes, SideChanges(seen=(seen("O1", "o1"),)), now=NOW, restore_deletions=True)
    assert kinds(result) == ["Create", "Tombstone"]
    assert result.actions[0].side is Side.CRM  # type: ignore[union-attr]


def test_restore_does_nothing_to_pairs_deleted_on_both_sides() -> None:
    changes = dict(now=NOW, restore_deletions=True)
    result = plan([synced()], SideChanges(deleted=(gone("C1"),)), SideChanges(deleted=(gone("O1"),)), **changes)
    assert kinds(result) == ["Tombstone"]


def test_s12_deleted_on_both_sides_only_tombstones() -> None:
    [tomb] = run([synced()], crm=[gone("C1")], outlook=[gone("O1")]).actions
    assert isinstance(tomb, Tombstone) and tomb.link.state is LinkState.TOMBSTONE


def test_seen_and_deleted_in_one_report_counts_as_seen() -> None:
    changes = SideChanges(seen=(seen("C1", "c2", edited(notes="x")),), deleted=(gone("C1"),))
    result = plan([synced()], changes, SideChanges(), now=NOW)
    assert kinds(result) == ["Update"]


# --- pending creates --------------------------------------------------------------------


def test_p1_pending_create_is_repeated_with_recovery_and_the_same_key() -> None:
    [create] = run([pending_on_outlook()]).actions
    assert isinstance(create, Create) and create.recover and create.transaction_key == "K1"
    assert create.pending.link_id == "L1" and create.fields == BASE and create.marker == "C1"


def test_p1_pending_create_uses_the_latest_source_content() -> None:
    [create] = run([pending_on_outlook()], crm=[seen("C1", "c2", edited(subject="Newer"))]).actions
    assert isinstance(create, Create) and create.recover and create.fields["subject"] == "Newer"
    assert create.pending.crm_version == "c2"


def test_p2_pending_create_whose_source_was_deleted_deletes_by_marker() -> None:
    [delete] = run([pending_on_outlook()], crm=[gone("C1")]).actions
    assert isinstance(delete, Delete) and delete.item_id is None and delete.marker == "C1"
    assert delete.side is Side.OUTLOOK and delete.link.state is LinkState.TOMBSTONE


def test_p3_item_found_by_marker_is_adopted_by_the_pending_row() -> None:
    result = run([pending_on_outlook()], outlook=[seen("O7", "o1", partner="C1")])
    assert kinds(result) == ["Adopt"]
    adopt = result.actions[0]
    assert isinstance(adopt, Adopt) and adopt.link.link_id == "L1" and adopt.link.outlook_id == "O7"
    assert (adopt.link.crm_version, adopt.link.outlook_version) == ("c1", "o1")  # alike: linked as is


def test_p3_copy_created_from_older_content_is_repaired_from_the_source() -> None:
    row = pending_on_outlook()
    result = run(
        [row], crm=[seen("C1", "c2", edited(subject="Newer"))], outlook=[seen("O7", "o1", partner="C1")]
    )
    assert kinds(result) == ["Adopt", "Update"]
    update = result.actions[1]
    assert isinstance(update, Update) and update.crm is None
    assert update.outlook is not None and update.outlook.fields == {"subject": "Newer"}


def test_p4_pending_create_on_crm_is_repeated_with_recovery() -> None:
    [create] = run([pending_on_crm()]).actions
    assert isinstance(create, Create) and create.side is Side.CRM and create.recover and create.marker == "O1"


def test_p5_pending_create_on_crm_whose_source_was_deleted_deletes_by_marker() -> None:
    [delete] = run([pending_on_crm()], outlook=[gone("O1")]).actions
    assert isinstance(delete, Delete) and delete.side is Side.CRM and delete.marker == "O1"


def test_p6_crm_item_found_by_our_outlook_id_field_is_adopted() -> None:
    result = run([pending_on_crm()], crm=[seen("C7", "c1", partner="O1")])
    assert kinds(result) == ["Adopt"]


# --- tombstones -------------------------------------------------------------------------


def test_t1_late_echoes_of_a_tombstoned_pair_are_skipped() -> None:
    result = run([tombstone()], crm=[seen("C1", "c9", edited(subject="late"))], outlook=[gone("O1")])
    assert kinds(result) == ["Skip:tombstoned", "Skip:tombstoned"]


def test_t2_tombstone_older_than_30_days_is_forgotten() -> None:
    old = tombstone(at=NOW - timedelta(days=30))
    young = tombstone(at=NOW - timedelta(days=29)).replace(link_id="L2", crm_id="C2", outlook_id="O2")
    result = run([old, young])
    assert result.actions == (ForgetLink("L1"),)


def test_t2_item_reported_after_its_tombstone_expired_is_new() -> None:
    result = run([tombstone(at=NOW - timedelta(days=31))], crm=[seen("C1", "c9")])
    assert kinds(result) == ["ForgetLink", "Create"]


# --- the function's contract -------------------------------------------------------------


def test_plan_refuses_a_naive_clock() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        plan([], SideChanges(), SideChanges(), now=NOW.replace(tzinfo=None))


def test_same_inputs_give_the_same_plan() -> None:
    inputs = dict(crm=[seen("C9", "c1"), gone("C1")], outlook=[seen("O9", "o1", partner="C8")])
    assert run([synced()], **inputs) == run([synced()], **inputs)  # type: ignore[arg-type]


def test_update_completion_requires_the_version_of_each_written_side() -> None:
    [update] = run([synced()], crm=[seen("C1", "c2", edited(location="x"))]).actions
    assert isinstance(update, Update)
    with pytest.raises(ValueError, match="outlook"):
        update.completed()
