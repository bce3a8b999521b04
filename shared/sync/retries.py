"""When a round whose writes failed for a passing reason is tried again.

A write that failed because the other side was failing or throttling (a 5xx, a timeout, 429s
that outlasted our retries) is not the member's problem: the round keeps its cursors (Graph's
delta link, the CRM's watermarks), so the next round lists the same changes again, and a
``retry`` step is queued after a pause that doubles with each such round in a row, from 15
seconds to at most 5 minutes (the sweep's tick also gives a step to every member with retries
pending, in case that message is lost). A remap page (a changed contacts mapping) is tried
again the same way, counting on its job (``SyncJob.retry``). Nothing else would come back for them: webhooks have
delivered, and the sweep leaves members whose webhooks are healthy to their daily full round.
A refusal of the item itself (a value the CRM rejects) is not retried: the ledger shows it
failed, and the member's next edit of it is listed again. Neither is a passing failure that
lasted ``MAX_RETRIES`` rounds in a row (about 40 minutes): the round then ends as a refused one
does, so that one item failing for good cannot hold every other change's cursors for ever.
"""

from __future__ import annotations

FIRST_RETRY_SECONDS = 15
LONGEST_RETRY_SECONDS = 300
MAX_RETRIES = 12


def should_retry(passing_failures: int, retries_so_far: int) -> bool:
    """Whether a round with ``passing_failures`` keeps its cursors and queues a retry."""
    return passing_failures > 0 and retries_so_far < MAX_RETRIES


def retry_delay(retries: int) -> int:
    """Seconds before the ``retries``-th retry in a row (1 for the first)."""
    if retries < 1:
        raise ValueError("the first retry is retry 1")
    return min(LONGEST_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** min(retries - 1, 16))
