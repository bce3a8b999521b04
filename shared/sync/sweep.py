"""The delta sweep (every 5 minutes): the safety net behind webhooks. A delta round for every
active member, paused syncs checked for their authorisation's return, stalled initial syncs
given a step again."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from shared.sync.jobs import StepReason, SyncJob
from shared.sync.profiles import SyncKind, SyncState

if TYPE_CHECKING:
    from shared.sync.service import SyncService

log = logging.getLogger(__name__)
STALLED_INITIAL = timedelta(minutes=5)


class DeltaSweep:
    def __init__(self, sync: SyncService) -> None:
        self.sync = sync
        self.d = sync.d

    def sweep(self) -> int:
        """The safety net behind webhooks: a delta step for every active member."""
        # Paused by a lost authorisation (consent revoked, CRM token refused): resumed once it is back.
        for paused in self.d.profiles.paused():
            if paused.reason is not None and paused.reason.is_authorization:
                try:
                    self.sync.resume_authorized(self.sync.member(paused.partition_key), (SyncKind(paused.row_key),))
                except Exception as error:  # one member's trouble must not stop the sweep
                    log.warning("could not check paused sync of %s: %s", paused.partition_key, error)
        syncing = self.d.profiles.all_active()
        active = [p for p in syncing if p.state is SyncState.ACTIVE]
        # The safety net queues even when a step is marked queued: that mark may be stale.
        for profile in active:
            self.sync.jobs.send(SyncJob.of(profile, "delta", StepReason.SWEEP))
        # An initial sync whose queued step was lost (storage restarted, a message expired)
        # would wait forever: one with no progress for a while gets a step again (steps are
        # idempotent; a live one holds the lease and the extra step waits behind it).
        now = self.d.clock()
        for profile in syncing:
            last = profile.last_sync_at or profile.enabled_at
            leased = profile.lease_until is not None and profile.lease_until > now
            if profile.state is SyncState.INITIAL and last is not None and last < now - STALLED_INITIAL and not leased:
                self.sync.jobs.send(SyncJob.of(profile, "initial", StepReason.STALLED))
        return len(active)
