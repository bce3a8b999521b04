"""One mailbox's Graph limits shared by every instance (issue 20): the arithmetic, pure.

Outlook allows an app 4 requests in flight and 10,000 requests per 10 minutes per mailbox,
every ``$batch`` item counted (graph-notes §5). Many Function instances may touch one mailbox
at once (a member's calendar and contacts steps, an e-mail they send, a page), so the limits
are kept in one Table row per mailbox (``MailboxLimitsRow``), which instances *claim* a part of:

- **slots**: a claim holds a number of the 4 slots until ``until`` (a lease). The 4 are split
  between the instances that want the mailbox by ``fair_shares`` (round robin in order of
  arrival: alone 4; two 2 + 2; three 2 + 1 + 1; a fifth waits). A newcomer takes only slots
  nobody holds; a holder learns of a newcomer when it renews and shrinks to its share once
  its requests in flight fit in it, so the row never promises more than 4.
- **requests**: a claim carries ``open`` requests reserved from the window, spent locally
  with no table call. Open requests count as sent at the claim's ``until`` (the latest moment
  they can be sent). When the holder renews or gives back, it reports what it sent, which is
  counted at that moment (``spent``, in 10-second buckets rounded up, so at most ~60 entries),
  and the rest of its reservation stays open or is returned. A holder that dies is never
  undercounted: its claim lapses with all its open requests counted at ``until``.
- **pause**: ``paused_until``, a 429's Retry-After, for every instance.

So every write is a claim, a renewal, a top-up or a give-back: never one per request.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from shared.storage import TableEntity

MAILBOX_SLOTS = 4  # throttling-limits: "Four concurrent requests" per app per mailbox
WINDOW_REQUESTS = 10_000  # "10,000 API requests in a 10 minute period" per app per mailbox
WINDOW_SECONDS = 600.0
BUCKET_SECONDS = 10.0  # reported sends are counted at the end of their 10-second bucket


@dataclass(frozen=True)
class MailboxLimits:
    slots: int = MAILBOX_SLOTS
    window_requests: int = WINDOW_REQUESTS
    window_seconds: float = WINDOW_SECONDS


GRAPH_LIMITS = MailboxLimits()


class Claim(BaseModel):
    """One instance's part of a mailbox (``slots`` 0: it waits for some)."""

    slots: int = 0
    wants: int = 0
    until: float = 0.0  # epoch seconds: the lease's end (a waiter's: when its wish lapses)
    since: float = 0.0  # when this claim began: its identity, and its place in the split
    open: int = 0  # requests reserved and not reported sent: counted as sent at ``until``


class MailboxLimitsRow(TableEntity):
    """PartitionKey = ``graph|{tenant}|{user}``, RowKey = ``limits``."""

    claims: dict[str, Claim] = {}
    spent: list[tuple[float, int]] = []  # (counted at, requests), sorted, in the window
    paused_until: float = 0.0  # epoch seconds


@dataclass(frozen=True)
class Grant:
    """What a claim gave: ``slots`` usable now (``held`` may be more while requests above the
    share drain), ``granted`` new requests (``open`` in all), ``budget_wait`` seconds until
    the window has room when it had none."""

    since: float
    slots: int
    held: int
    granted: int
    open: int
    until: float
    paused_until: float
    contended: bool
    budget_wait: float


def fair_shares(wants: Sequence[tuple[str, int]], total: int) -> dict[str, int]:
    """Split ``total`` slots one at a time, round robin in the given order, never more than a
    claimant wants: max-min fair, and the first ones served first when there are more
    claimants than slots."""
    shares = {name: 0 for name, _ in wants}
    left = total
    while left > 0:
        served = False
        for name, want in wants:
            if left > 0 and shares[name] < want:
                shares[name] += 1
                left -= 1
                served = True
        if not served:
            break
    return shares


def counted_at(at: float) -> float:
    """The end of the bucket ``at`` falls in: later than the sends, so never undercounted."""
    return math.ceil(at / BUCKET_SECONDS) * BUCKET_SECONDS


def add_spent(spent: Sequence[tuple[float, int]], at: float, requests: int) -> list[tuple[float, int]]:
    if requests <= 0:
        return list(spent)
    bucket = counted_at(at)
    merged = dict(spent)
    merged[bucket] = merged.get(bucket, 0) + requests
    return sorted(merged.items())


def settle(row: MailboxLimitsRow, now: float, limits: MailboxLimits) -> MailboxLimitsRow:
    """Lapsed claims dropped (their open requests counted as sent at their end) and sends
    older than the window forgotten."""
    spent = list(row.spent)
    claims = {}
    for holder, claim in row.claims.items():
        if claim.until > now:
            claims[holder] = claim
        else:
            spent = add_spent(spent, claim.until, claim.open)
    horizon = now - limits.window_seconds
    return row.model_copy(update={"claims": claims, "spent": [(at, n) for at, n in spent if at > horizon]})


def window_used(row: MailboxLimitsRow, now: float, limits: MailboxLimits) -> int:
    """Requests counted in the window now: reported sends and every open reservation."""
    horizon = now - limits.window_seconds
    return (sum(n for at, n in row.spent if at > horizon)
            + sum(c.open for c in row.claims.values() if c.until > horizon))


def window_frees_in(row: MailboxLimitsRow, now: float, limits: MailboxLimits, requests: int) -> float:
    """Seconds until ``requests`` more fit in the window (the oldest counts leave it first)."""
    excess = window_used(row, now, limits) + min(requests, limits.window_requests) - limits.window_requests
    if excess <= 0:
        return 0.0
    horizon = now - limits.window_seconds
    counts = sorted([(at, n) for at, n in row.spent if at > horizon]
                    + [(c.until, c.open) for c in row.claims.values() if c.open and c.until > horizon])
    for at, n in counts:
        excess -= n
        if excess <= 0:
            return max(0.0, at - horizon)
    return limits.window_seconds  # pragma: no cover - the window cannot hold more than it counts


def claim(
    row: MailboxLimitsRow, holder: str, now: float, *, since: float | None, wants: int, holding: int,
    reported: int, keep_open: int, need: int, ask: int, lease_seconds: float, limits: MailboxLimits,
    pause_until: float = 0.0,
) -> tuple[MailboxLimitsRow, Grant]:
    """``holder`` claims (or renews, or tops up) its part of the mailbox.

    ``since``: the claim its counters describe (None: a new one). ``reported``: requests it
    sent since its last report; ``keep_open``: what it was granted and has not sent (they stay
    reserved); ``need``: requests its next call needs; ``ask``: how many to reserve beyond
    that, if the window allows. ``holding``: its requests in flight now. A claim that lapsed
    meanwhile was already counted in full (``settle``): it starts afresh.
    """
    row = settle(row, now, limits)
    mine = row.claims.get(holder)
    same = mine is not None and since is not None and mine.since == since
    if same:
        spent = add_spent(row.spent, now, reported)
    else:  # another claim of ours this process no longer describes: counted in full, as if lapsed
        spent = add_spent(row.spent, mine.until, mine.open) if mine is not None else list(row.spent)
        keep_open = 0
    began = mine.since if same and mine is not None else now
    others = {h: c for h, c in row.claims.items() if h != holder}
    order = sorted([(c.since, h, c.wants) for h, c in others.items()] + [(began, holder, wants)])
    share = fair_shares([(h, w) for _, h, w in order], limits.slots)[holder]
    slots = max(0, min(share, limits.slots - sum(c.slots for c in others.values())))
    held = max(slots, min(holding, limits.slots))  # in flight above the share: still held until drained

    others_row = row.model_copy(update={"claims": others, "spent": spent})
    available = limits.window_requests - window_used(others_row, now, limits) - keep_open
    still_needed = max(0, need - keep_open)
    claimants = 1 + sum(1 for c in others.values() if c.wants > 0)
    granted, budget_wait = 0, 0.0
    if slots > 0:
        if available >= still_needed:
            fair = available // claimants
            granted = max(0, min(available, max(still_needed, min(ask, fair))))
        else:
            budget_wait = window_frees_in(others_row, now, limits, still_needed + keep_open)
    until = now + lease_seconds
    mine_now = Claim(slots=held, wants=wants, until=until, since=began, open=keep_open + granted)
    new_row = row.model_copy(update={
        "claims": {**others, holder: mine_now}, "spent": spent,
        "paused_until": max(row.paused_until, pause_until),
    })
    return new_row, Grant(
        since=began, slots=slots, held=held, granted=granted, open=mine_now.open, until=until,
        paused_until=new_row.paused_until, contended=any(c.wants > 0 for c in others.values()),
        budget_wait=budget_wait,
    )


def give_back(row: MailboxLimitsRow, holder: str, now: float, *, since: float | None, reported: int,
              limits: MailboxLimits, pause_until: float = 0.0) -> MailboxLimitsRow:
    """``holder``, idle, returns its slots and what it reserved and did not send."""
    row = settle(row, now, limits)
    mine = row.claims.get(holder)
    claims = dict(row.claims)
    spent = list(row.spent)
    if mine is not None and mine.since == since:
        claims.pop(holder)
        spent = add_spent(spent, now, reported)
    return row.model_copy(update={"claims": claims, "spent": spent,
                                  "paused_until": max(row.paused_until, pause_until)})


def paused(row: MailboxLimitsRow, until: float) -> MailboxLimitsRow:
    return row.model_copy(update={"paused_until": max(row.paused_until, until)})
