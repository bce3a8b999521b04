"""Scope (R3.4, R3.6) and the initial sync order (R3.5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from calendar_examples import OWNER, crm_record

from shared.sync.calendar_kind import CalendarRules
from shared.sync.calendar_mapping import INITIAL_SYNC_CAP, crm_event_excluded, graph_event_excluded
from shared.sync.selection import best

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


def initial_sync_order(records, now, cap=INITIAL_SYNC_CAP):
    """What the initial sync's selection pass keeps and sends, in order (the code that runs:
    the calendar's ordering key, then the selection)."""
    rules = CalendarRules(OWNER, "g1", reference=now)
    by_id = {r["id"]: r for r in records}
    return [by_id[i] for i in best(((rules.initial_key(r), r["id"]) for r in records), cap)]


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


# -- the delta window moves with time (issue 23) ---------------------------------------------------


def test_a_calendar_round_older_than_a_day_gives_way_so_the_window_moves() -> None:
    from datetime import UTC, datetime, timedelta

    from shared.sync.calendar_kind import CalendarRules

    rules = CalendarRules("u1", "g1", reference=datetime(2026, 12, 5, tzinfo=UTC))
    started = datetime(2026, 12, 5, 9, tzinfo=UTC)
    assert rules.round_is_stale(None, started)  # a round from before windows were dated
    assert not rules.round_is_stale(started, started + timedelta(hours=23, minutes=59))
    assert rules.round_is_stale(started, started + timedelta(days=1))


def test_only_events_a_round_could_list_are_read_when_it_does_not_list_them() -> None:
    from datetime import UTC, datetime, timedelta

    from shared.sync.calendar_kind import CalendarRules

    rules = CalendarRules("u1", "g1", reference=datetime(2026, 12, 5, tzinfo=UTC))
    window_from = datetime(2026, 12, 5, 9, tzinfo=UTC)

    def event(start: datetime, hours: int = 1, **more: object) -> dict[str, object]:
        return {"when": {"start": start.isoformat(), "end": (start + timedelta(hours=hours)).isoformat()}, **more}

    assert rules.may_be_listed(event(window_from + timedelta(days=3)), window_from)
    assert not rules.may_be_listed(event(window_from - timedelta(days=400)), window_from)  # ended before the window
    assert not rules.may_be_listed(event(window_from + timedelta(days=740)), window_from)  # starts after it
    assert rules.may_be_listed(event(window_from - timedelta(days=365, hours=12)), window_from)  # at the edge: read
    assert rules.may_be_listed(event(window_from + timedelta(days=730, hours=12)), window_from)
    assert rules.may_be_listed(event(window_from - timedelta(days=900), recurrence={"rule": "FREQ=WEEKLY"}), window_from)
    assert rules.may_be_listed({"when": {"start": "2019-01-01"}}, window_from)  # unreadable: read
    assert rules.may_be_listed({"when": {"start": "2026-12-10", "end": "2026-12-11"}}, window_from)  # all day
