"""Outlook items a step created after its delta read (``SyncProfile.unconfirmed_outlook``):
what ``Cycle.counted`` keeps for the next round to confirm."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.sync.cycle import MAX_UNCONFIRMED, Cycle
from shared.sync.executor import ExecutionReport
from shared.sync.lifecycle import SyncState
from shared.sync.profiles import SyncProfile

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _profile(state: SyncState, unconfirmed: list[str]) -> SyncProfile:
    return SyncProfile(partition_key="p", row_key="contacts", tenant_id="t", object_id="o", state=state,
                       delta_link="https://graph.microsoft.com/v1.0/delta?$deltatoken=1", unconfirmed_outlook=unconfirmed)


def _counted(profile: SyncProfile, created: list[str], **changes: object) -> SyncProfile:
    report = ExecutionReport(outlook_created=created)
    return Cycle(None, None, None, clock=lambda: NOW).counted(profile, report, **changes)  # type: ignore[arg-type]


def test_a_round_keeps_what_it_created_and_what_it_could_not_confirm() -> None:
    after = _counted(_profile(SyncState.ACTIVE, ["old"]), ["new-1", "new-2"], unconfirmed_outlook=["unread"])
    assert after.unconfirmed_outlook == ["unread", "new-1", "new-2"]
    assert after.delta_link is not None


def test_a_step_that_is_not_a_round_adds_its_creates_to_those_waiting() -> None:
    after = _counted(_profile(SyncState.ACTIVE, ["old"]), ["new"])  # a remap page
    assert after.unconfirmed_outlook == ["old", "new"]


def test_the_initial_sync_keeps_none_its_first_round_is_a_full_one() -> None:
    assert _counted(_profile(SyncState.INITIAL, []), ["new"]).unconfirmed_outlook == []


def test_too_many_to_read_one_by_one_make_the_next_round_a_full_one() -> None:
    created = [f"item-{n}" for n in range(MAX_UNCONFIRMED + 1)]
    after = _counted(_profile(SyncState.ACTIVE, []), created, unconfirmed_outlook=[])
    assert after.unconfirmed_outlook == [] and after.delta_link is None
    exactly = _counted(_profile(SyncState.ACTIVE, []), created[:MAX_UNCONFIRMED], unconfirmed_outlook=[])
    assert len(exactly.unconfirmed_outlook) == MAX_UNCONFIRMED and exactly.delta_link is not None
