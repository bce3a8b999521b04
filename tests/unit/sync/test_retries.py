"""When a round whose writes failed for a passing reason is tried again (``shared.sync.retries``),
and which retry steps have nothing left to do (``already_covered``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.sync.jobs import StepReason, SyncJob
from shared.sync.profiles import SyncKind, SyncProfile, SyncState
from shared.sync.retries import (
    FIRST_RETRY_SECONDS,
    LONGEST_RETRY_SECONDS,
    MAX_RETRIES,
    retry_delay,
    should_retry,
)
from shared.sync.runner import already_covered


def test_the_pause_doubles_from_15_seconds_to_at_most_5_minutes() -> None:
    assert [retry_delay(n) for n in range(1, 8)] == [15, 30, 60, 120, 240, 300, 300]


@given(st.integers(min_value=1, max_value=10**6))
def test_the_pause_never_shrinks_and_stays_within_its_bounds(retries: int) -> None:
    assert FIRST_RETRY_SECONDS <= retry_delay(retries) <= LONGEST_RETRY_SECONDS
    assert retry_delay(retries + 1) >= retry_delay(retries)


def test_there_is_no_zeroth_retry() -> None:
    with pytest.raises(ValueError):
        retry_delay(0)


def _profile(**fields: object) -> SyncProfile:
    return SyncProfile(partition_key="ms|t|o", row_key=SyncKind.CONTACTS.value, tenant_id="t", object_id="o",
                       **{"state": SyncState.ACTIVE, **fields})  # type: ignore[arg-type]


RETRY = SyncJob(member="ms|t|o", kind=SyncKind.CONTACTS, step="delta", reason=StepReason.RETRY)


def test_a_retry_after_a_clean_round_has_nothing_left_to_do() -> None:
    assert already_covered(RETRY, _profile(retries=0), "message-2")
    assert not already_covered(RETRY, _profile(retries=1), "message-2")
    # Its own earlier delivery took the lease and may have died before saving: it runs.
    assert not already_covered(RETRY, _profile(retries=0, lease_owner="message-2|x"), "message-2")
    assert not already_covered(RETRY, _profile(retries=0, state=SyncState.PAUSED), "message-2")


@given(st.integers(min_value=0, max_value=50), st.integers(min_value=0, max_value=50))
def test_a_round_retries_only_passing_failures_and_only_so_many_times_in_a_row(passing: int, retries: int) -> None:
    assert should_retry(passing, retries) == (passing > 0 and retries < MAX_RETRIES)
