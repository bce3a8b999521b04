"""Scope (R3.4, R3.6) and the initial sync order (R3.5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from calendar_examples import OWNER, crm_record

from shared.sync.calendar_mapping import crm_event_excluded, graph_event_excluded, initial_sync_order

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def test_only_the_members_own_events():
    assert crm_event_excluded(crm_record(), member_user_id=OWNER) is None
    assert crm_event_excluded(crm_record(Owner={"id": "999"}), member_user_id=OWNER) == "not_owner"


def test_imported_and_migrated_events_are_out_mass_updated_ones_in():
    assert crm_event_excluded(crm_record(Data_Source="Import"), member_user_id=OWNER) == "imported"
    assert crm_event_excluded(crm_record(Data_Source="Migration"), member_user_id=OWNER) == "migrated"
    for source in ("Mass Update", "Manual", "API", "Webform", None):
        assert crm_event_excluded(crm_record(Data_Source=source), member_user_id=OWNER) is None


def test_unreadable_times_are_a_reason_not_a_crash():
    assert crm_event_excluded(crm_record(Start_DateTime="soon"), member_user_id=OWNER).startswith("invalid_times")


def test_graph_occurrences_belong_to_their_series():
    assert graph_event_excluded({"type": "occurrence"}) == "occurrence"


def _at(hours: float, **extra):
    start = NOW + timedelta(hours=hours)
    return crm_record(id=str(hours), Start_DateTime=start.isoformat(), End_DateTime=(start + timedelta(hours=1)).isoformat(),
                      **extra)


def test_future_soonest_first_then_completed_most_recent_first():
    records = [_at(-48), _at(5), _at(-3), _at(1), _at(400), _at(-0.5)]
    ordered = [r["id"] for r in initial_sync_order(records, NOW)]
    assert ordered == ["-0.5", "1", "5", "400", "-3", "-48"]  # -0.5 is still running


def test_the_cap_keeps_the_future_first():
    records = [_at(-h) for h in range(2, 12)] + [_at(h) for h in range(1, 8)]
    ordered = initial_sync_order(records, NOW, cap=9)
    assert len(ordered) == 9
    assert [r["id"] for r in ordered[:7]] == [str(h) for h in range(1, 8)]
    assert [r["id"] for r in ordered[7:]] == ["-2", "-3"]


def test_a_running_series_counts_as_upcoming_and_an_ended_one_by_its_end():
    running = _at(-24 * 60, Recurring_Activity={"RRULE": "FREQ=WEEKLY;BYDAY=MO"})
    ended = _at(-24 * 60, Recurring_Activity={"RRULE": "FREQ=DAILY;COUNT=3"})
    ended["id"] = "ended"
    ordered = [r["id"] for r in initial_sync_order([ended, _at(-1), running, _at(3)], NOW)]
    assert ordered == [running["id"], "3", "-1", "ended"]


def test_default_cap_is_five_thousand():
    records = [_at(h) for h in range(6000)]
    assert len(initial_sync_order(records, NOW)) == 5000
