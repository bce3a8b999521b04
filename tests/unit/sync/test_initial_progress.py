"""What the member sees of an initial sync while a step runs: the pages committed so far,
not the profile its step writes when it ends (``shared.sync.initial_progress``)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.sync.initial_progress import as_committed, as_seen
from shared.sync.lifecycle import SyncState
from shared.sync.links import InitialProgress
from shared.sync.profiles import SyncKind, SyncProfile


def _profile(state: SyncState = SyncState.INITIAL, **fields: object) -> SyncProfile:
    return SyncProfile(partition_key="ms|t|o", row_key=SyncKind.CALENDAR.value, tenant_id="t", object_id="o", state=state,
                       **fields)  # type: ignore[arg-type]


def test_a_step_in_its_first_slice_shows_its_committed_pages_and_the_selection_s_size() -> None:
    shown = as_committed(_profile(), InitialProgress(done=198, reserved=495, synced=190, total=1000))
    assert (shown.initial_done, shown.initial_total, shown.synced_items) == (190, 1000, 190)


def test_a_later_slice_adds_only_what_its_pages_committed_since_the_last_release() -> None:
    released = _profile(initial_done=297, initial_total=1000, synced_items=297)
    shown = as_committed(released, InitialProgress(done=495, reserved=792, synced=495, total=1000))
    assert (shown.initial_done, shown.synced_items) == (495, 495)


def test_rows_written_before_the_total_was_kept_show_the_profile_s_total() -> None:
    released = _profile(initial_done=99, initial_total=300, synced_items=99)
    assert as_committed(released, InitialProgress(done=198, reserved=297, synced=198)).initial_total == 300


def test_nothing_committed_yet_or_no_initial_sync_shows_the_profile_as_it_is() -> None:
    assert as_committed(_profile(initial_total=5), None) == _profile(initial_total=5)
    active = _profile(SyncState.ACTIVE, initial_done=10, initial_total=10, synced_items=12)
    assert as_committed(active, InitialProgress(done=99, synced=99, total=99)) == active


@given(done=st.integers(0, 10_000), synced=st.integers(0, 10_000), committed=st.integers(0, 10_000),
       total=st.none() | st.integers(0, 10_000))
def test_the_count_shown_never_goes_back_and_synced_items_move_with_it(done: int, synced: int, committed: int,
                                                                        total: int | None) -> None:
    profile = _profile(initial_done=done, synced_items=synced + done, initial_total=max(done, 1))
    shown = as_committed(profile, InitialProgress(done=committed, reserved=committed, synced=committed, total=total))
    assert shown.initial_done == max(done, committed)
    assert shown.synced_items - shown.initial_done == profile.synced_items - profile.initial_done
    assert shown.state is SyncState.INITIAL and shown.lease_owner == profile.lease_owner


def test_disable_then_enable_shows_the_new_enable_s_progress_only() -> None:
    """The progress is read from the links of the profile's own Enable: an earlier Enable's
    committed pages (a late step of it) are never counted for the new one, and a sync that is
    not initial reads nothing."""
    earlier = _profile(generation="g1", initial_total=400)
    again = _profile(generation="g2", initial_total=0)
    committed = {earlier.links_partition: InitialProgress(done=396, reserved=400, synced=396, total=400)}
    assert as_seen(earlier, committed.get).initial_done == 396
    assert as_seen(again, committed.get) == again  # nothing of its own committed yet

    def unread(partition: str) -> InitialProgress | None:
        raise AssertionError(f"read {partition}")

    active = _profile(SyncState.ACTIVE, generation="g2", initial_done=3, initial_total=3)
    assert as_seen(active, unread) == active
