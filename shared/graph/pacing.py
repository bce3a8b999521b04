"""How long one Graph call may wait (throttling, transient failures, a busy gate) before giving up.

Graph asks clients to honour ``Retry-After`` on 429 and 503 and to back off exponentially
when there is none (graph-notes §6). A queue worker must not sleep for minutes, so every
call has a wait budget: once the next wait would overrun it, the call raises
``MailboxThrottled`` with the wait Graph asked for, and the caller defers its queue message by
that much (SPEC §5, "recovers from throttling").
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from shared.transport.backoff import backoff_seconds

# 429 and 503 say the request was not processed, so even a create may be sent again.
NOT_APPLIED_STATUSES = {429, 503}
# 502 and 504 (and a lost connection) leave the outcome open: only repeatable requests retry.
TRANSIENT_STATUSES = {429, 502, 503, 504}


@dataclass(frozen=True)
class Pacing:
    """The retry policy of one call (a request, or a ``$batch`` with its item retries)."""

    max_wait_seconds: float = 30.0  # a call never starts a wait that would end later than this after its start
    max_attempts: int = 8
    backoff_base_seconds: float = 0.5  # without Retry-After: 0.5, 1, 2, 4 ... seconds (each 50-100 %)
    backoff_cap_seconds: float = 8.0
    timeout_seconds: float = 30.0  # per HTTP exchange

    def backoff(self, attempt: int) -> float:
        """Without ``Retry-After``: the one back-off of every send path (``transport.backoff``)."""
        return backoff_seconds(attempt, base=self.backoff_base_seconds, cap=self.backoff_cap_seconds)


class WaitBudget:
    """The deadline of one call: waits for the gate and retry waits must end before it."""

    def __init__(self, pacing: Pacing) -> None:
        self.pacing = pacing
        self.deadline = time.monotonic() + pacing.max_wait_seconds

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def can_wait(self, seconds: float) -> bool:
        return seconds <= self.remaining()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))
