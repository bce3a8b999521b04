"""The one back-off of every send path (``shared.transport.backoff``)."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from shared.transport.backoff import backoff_seconds, retry_after_seconds, wait_seconds


@given(st.integers(min_value=1, max_value=200), st.floats(min_value=0.01, max_value=5), st.floats(min_value=0.01, max_value=60))
def test_a_wait_is_half_to_all_of_the_doubled_base_and_never_past_the_cap(attempt: int, base: float, cap: float) -> None:
    ceiling = min(base * 2 ** (attempt - 1), cap)
    assert ceiling / 2 <= backoff_seconds(attempt, base=base, cap=cap) <= ceiling


def test_waits_of_workers_throttled_together_are_spread() -> None:
    assert len({round(backoff_seconds(3, base=0.5, cap=8), 6) for _ in range(50)}) > 40


def test_retry_after_in_seconds_fractions_or_an_http_date_any_case() -> None:
    assert retry_after_seconds({"Retry-After": "7"}) == 7.0
    assert retry_after_seconds({"retry-after": "0.25"}) == 0.25
    assert retry_after_seconds({"Retry-After": "-3"}) == 0.0
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after_seconds({"Retry-After": later}) or 0) <= 30


def test_no_or_an_unreadable_retry_after_is_none() -> None:
    assert retry_after_seconds(None) is None
    assert retry_after_seconds({}) is None
    assert retry_after_seconds({"Retry-After": "soon"}) is None


def test_the_wait_is_the_servers_retry_after_capped_else_the_back_off() -> None:
    assert wait_seconds({"Retry-After": "7"}, 1, base=0.5, cap=8, longest=30) == 7.0
    assert wait_seconds({"Retry-After": "120"}, 1, base=0.5, cap=8, longest=30) == 30
    assert 1.0 <= wait_seconds(None, 3, base=0.5, cap=8, longest=30) <= 2.0
