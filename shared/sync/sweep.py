"""The safety net behind webhooks.

``tick`` is the 5-minute timer's, at a cost that grows with what it can find, not with the
members (issue 20). Before, every tick queued a delta step per syncing member (about 7 Table
transactions, 1 Graph and 2 CRM calls each, also when nothing changed: at 10,000 members,
120,000 steps and 240,000 CRM calls an hour). Now a tick:
- checks paused syncs for their authorisation's return and gives stalled initial syncs a step
  (as before: they are few);
- reads the profiles (one Table query per 1,000) and queues a step only for a member whose
  webhooks are not known to be healthy: no live Graph subscription, or a CRM channel of their
  own (before issue 20, until the renewal timer moves them onto their org's);
- for each org channel that lapsed (expired, or never confirmed by the CRM), makes it live
  again and reads the org's changes and deletions since it lapsed once for the whole org,
  each routed to its owner's sync (``crm_routing``);
- gives each member a full round (a ``sweep`` step: the CRM's deleted list, Outlook items
  beyond the calendar's window, anything a webhook lost on either side) once a day, spread
  over the day's ticks (``swept_at``, oldest first, a bounded number per tick).

So an idle member costs a tick a share of one profile query (no CRM call, no step), and a
step a day. What a lost notification delays: a change whose callback or notification was
lost and never retried waits for the member's next step (any step reads every change since
its cursors) or at most a day.

``sweep`` queues a delta round for every syncing member now (the old tick): for operators
and tests that want a round everywhere at once.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.sync.jobs import StepReason, SyncJob
from shared.sync.profiles import SyncKind, SyncProfile, SyncState

if TYPE_CHECKING:
    from shared.sync.service import SyncService

log = logging.getLogger(__name__)
STALLED_INITIAL = timedelta(minutes=5)
TICK = timedelta(minutes=5)
FULL_ROUND_EVERY = timedelta(days=1)


def webhooks_healthy(profile: SyncProfile, now: datetime) -> bool:
    """Whether both sides' changes reach this member by webhook: a live Graph subscription,
    and the org's CRM channel (not one of the member's own, from before issue 20)."""
    live_subscription = profile.subscription_id is not None and profile.subscription_expires is not None \
        and profile.subscription_expires > now
    return live_subscription and profile.channel_id is None


def initial_stalled(profile: SyncProfile, now: datetime) -> bool:
    """Whether an initial sync needs a step from the sweep: no live lease, and either its
    last step died holding the lease (named, lapsed) or nothing moved for a while (counted
    from when its last step said it would be back, when that is later: the mailbox's window)."""
    if profile.lease_until is not None and profile.lease_until > now:
        return False
    if profile.lease_owner is not None:
        return True
    last = max((t for t in (profile.last_sync_at or profile.enabled_at, profile.initial_resume_at) if t is not None), default=None)
    return last is not None and last < now - STALLED_INITIAL


def mark_left(profile: SyncProfile, now: datetime) -> bool:
    """A webhook's step queued more than a tick ago that no step has taken since (taking the
    lease clears the mark), while no step holds the lease: its message may be lost, and
    further webhooks would only add to the mark until it is a minute old."""
    leased = profile.lease_until is not None and profile.lease_until > now
    queued_at = profile.delta_queued_at
    return profile.delta_queued and not leased and (queued_at is None or queued_at < now - TICK)


def full_rounds_due(active: list[SyncProfile], now: datetime) -> list[SyncProfile]:
    """The members whose daily full round is due, oldest first, at most a tick's share of
    them (twice the even share, so a backlog drains): Enables made together do not make
    their rounds together forever."""
    def last(profile: SyncProfile) -> datetime:
        return profile.swept_at or profile.enabled_at or datetime.min.replace(tzinfo=now.tzinfo)

    due = sorted((p for p in active if last(p) <= now - FULL_ROUND_EVERY), key=last)
    share = math.ceil(len(active) * (TICK / FULL_ROUND_EVERY))
    return due[: 2 * share]


class DeltaSweep:
    def __init__(self, sync: SyncService) -> None:
        self.sync = sync
        self.d = sync.d

    def sweep(self) -> int:
        """A delta step for every active member now; returns how many."""
        self._resume_paused()
        syncing = self.d.profiles.all_active()
        active = [p for p in syncing if p.state is SyncState.ACTIVE]
        # The safety net queues even when a step is marked queued: that mark may be stale.
        for profile in active:
            self.sync.jobs.send(SyncJob.of(profile, "delta", StepReason.SWEEP))
        self._restart_stalled(syncing)
        return len(active)

    def tick(self) -> int:
        """The timer's safety net (see the module); returns the steps it queued."""
        self._resume_paused()
        syncing = self.d.profiles.all_active()
        now = self.d.clock()
        queued = self._restart_stalled(syncing)
        queued += self._lapsed_channels(now)
        active = [p for p in syncing if p.state is SyncState.ACTIVE]
        # And a member whose last round left writes to retry, or whose webhook's step was queued
        # a tick ago and has not run: that message may be lost (storage restarted).
        unheard = [p for p in active if not webhooks_healthy(p, now) or p.retries or mark_left(p, now)]
        for profile in unheard:
            self.sync.jobs.send(SyncJob.of(profile, "delta", StepReason.SWEEP))
        for profile in full_rounds_due([p for p in active if webhooks_healthy(p, now)], now):
            marked = self._mark_swept(profile, now)
            if marked is not None:
                self.sync.jobs.send(SyncJob.of(marked, "delta", StepReason.SWEEP))
                queued += 1
        return queued + len(unheard)

    def _resume_paused(self) -> None:
        # Paused by a lost authorisation (consent revoked, CRM token refused): resumed once it is back.
        for paused in self.d.profiles.paused():
            if paused.reason is not None and paused.reason.is_authorization:
                try:
                    self.sync.resume_authorized(self.sync.member(paused.partition_key), (SyncKind(paused.row_key),))
                except Exception as error:  # one member's trouble must not stop the sweep
                    log.warning("could not check paused sync of %s: %s", paused.partition_key, error)

    def _restart_stalled(self, syncing: list[SyncProfile]) -> int:
        # An initial sync whose queued step was lost (storage restarted, a message expired)
        # would wait forever: one with no progress for a while gets a step again (steps are
        # idempotent; a live one holds the lease and the extra step waits behind it). One
        # whose lease lapsed still named gets it at once: its step's instance died, and the
        # messages it had taken stay invisible for up to 10 minutes (the queue trigger's).
        now = self.d.clock()
        queued = 0
        for profile in syncing:
            if profile.state is SyncState.INITIAL and initial_stalled(profile, now):
                self.sync.jobs.send(SyncJob.of(profile, "initial", StepReason.STALLED))
                queued += 1
        return queued

    def _lapsed_channels(self, now: datetime) -> int:
        """Org channels that expired or were never confirmed: live again, then what the org
        changed meanwhile, read once and routed to the owners."""
        queued = 0
        for stored in self.sync.org_channels.channels():
            row = stored.entity
            if row.expires_at is not None and row.expires_at > now:
                continue
            lapsed_since = row.expires_at or row.created_at
            try:
                renewed = self.sync.org_channels.renew(stored)
                queued += self.sync.crm_routing.read_org_changes(renewed, lapsed_since)
                log.info("the %s channel of org %s had lapsed since %s: made live, %d steps queued", row.kind, row.org_id,
                         lapsed_since.isoformat(), queued)
            except Exception as error:  # noqa: BLE001 - one org's trouble must not stop the others'
                log.warning("could not restore the %s channel of org %s: %s", row.kind, row.org_id, error)
        return queued

    def _mark_swept(self, profile: SyncProfile, now: datetime) -> SyncProfile | None:
        def mark(p: SyncProfile) -> SyncProfile:
            return p.model_copy(update={"swept_at": now})

        try:
            return self.d.profiles.update(profile.partition_key, SyncKind(profile.row_key), mark)
        except LookupError:
            return None
