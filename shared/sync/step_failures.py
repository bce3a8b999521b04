"""What a failing sync step does to the member's sync (issue 23: failures the member sees).

A passing failure defers the step and loses nothing (a held lease, throttling, an expired
Graph delta or CRM listing cursor: the step starts its walk again). A lasting one stops the
sync with a reason the settings page shows (``lifecycle`` L5, L7, L18): our container
deleted, an authorisation lost, Graph refusing the mailbox (401, 403), or a step given up
by the queue after the host's five deliveries (its poison message), with the error it kept
failing with. The member's Resume starts a step-failed or refused sync again (L20); the
sweep queues nothing for a paused sync meanwhile.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from shared.accounts.models import MemberIdentity
from shared.crm.records import ListCursorExpired
from shared.crm.tokens import CrmAuthorizationLost
from shared.graph.errors import GraphError
from shared.graph.sync_errors import ContainerGone, DeltaExpired, MailboxThrottled
from shared.identity.entra import SignInFailed
from shared.storage import Stored
from shared.sync.authorization import CONSENT_LOST_CODES
from shared.sync.jobs import StepReason, SyncJob
from shared.sync.lifecycle import Decision, Effect, Event, Life, decide
from shared.sync.profiles import LeaseHeld, SyncKind, SyncProfile

if TYPE_CHECKING:
    from shared.sync.service import SyncService

log = logging.getLogger(__name__)
# A step deferred by a held lease (its own crashed first delivery, or a remap page behind a
# running step) comes back after at most this long; webhook-driven steps never wait (see
# SyncRunner._leave_to_holder).
LEASE_RETRY_SECONDS = 30
MAX_ERROR_TEXT = 300  # of the error kept on the profile (the page shows it)


class NothingToResume(Exception):
    """The member pressed Resume on a sync no error stopped (or already resumed)."""

    def __init__(self, kind: SyncKind, why: str) -> None:
        super().__init__(f"{kind.value} sync: {why}")
        self.kind = kind


def error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:MAX_ERROR_TEXT]


class StepFailures:
    def __init__(self, sync: SyncService) -> None:
        self.sync = sync
        self.d = sync.d

    def handle(self, job: SyncJob, member: MemberIdentity, stored: Stored[SyncProfile] | None, delivery: str | None,
               error: Exception) -> None:
        """Called from the step's ``except``: defers, stops or re-raises (the queue retries)."""
        if isinstance(error, LeaseHeld):  # retried when the lease lapses, unless released sooner
            delay = max(1, min(LEASE_RETRY_SECONDS, int(error.retry_after)))
            log.info("%s %s step of %s deferred %d s: %s", job.kind.value, job.step, job.member, delay, error)
            self.sync.jobs.send(job.model_copy(update={"holder": job.holder or delivery}), delay=timedelta(seconds=delay))
        elif isinstance(error, MailboxThrottled):
            self.sync.jobs.send(job, delay=timedelta(seconds=max(1, int(error.retry_after or 5))))
        elif isinstance(error, DeltaExpired):
            self.d.profiles.update(job.member, job.kind, lambda p: p.model_copy(update={"delta_link": None}))
            self.sync.jobs.send(job)
        elif isinstance(error, ListCursorExpired):
            self._walk_again(job)
        elif isinstance(error, ContainerGone):  # R3.8, R4.9: the member deleted our calendar or folder in Outlook
            self.sync.disable(member, job.kind, event=Event.CONTAINER_GONE,
                              generation=stored.entity.generation if stored else None)
        elif isinstance(error, CrmAuthorizationLost):
            self.sync.authorization.pause(job.member, job.kind, Event.CRM_AUTHORIZATION_LOST)
        elif isinstance(error, SignInFailed) and error.code in CONSENT_LOST_CODES:
            self.sync.authorization.pause(job.member, job.kind, Event.MICROSOFT_CONSENT_LOST)
        elif isinstance(error, GraphError) and error.status in (401, 403):
            self._stop(job, Event.MAILBOX_REFUSED, error_text(error))
        else:
            # Microsoft or the CRM unreachable, a passing failure, a bug: the queue delivers the
            # step again; the error is kept in case this one is given up (``give_up``).
            self._keep_error(job, error)
            raise error

    def _walk_again(self, job: SyncJob) -> None:
        """A CRM listing cursor kept past its life (24 h: a long pause): the walk starts again,
        which repeats nothing (what was synced is linked, or found by its marker)."""
        if job.step == "remap":
            self.sync.jobs.send(job.model_copy(update={"cursor": None}))
            return
        self.d.profiles.update(job.member, job.kind, lambda p: p.model_copy(update={"initial_cursor": None}))
        self.sync.jobs.send(job)

    def _keep_error(self, job: SyncJob, error: Exception) -> None:
        try:
            self.d.profiles.update(job.member, job.kind, lambda p: p.model_copy(update={"last_error": error_text(error)}))
        except Exception:  # storage down too: the queue's retry is what matters
            log.warning("could not keep the error of %s's %s step", job.member, job.kind.value, exc_info=True)

    def _stop(self, job: SyncJob, event: Event, why: str | None) -> None:
        """L18: paused with a reason the page shows, in the generation the step belongs to."""
        def stopped(profile: SyncProfile) -> SyncProfile:
            if job.generation is not None and profile.generation != job.generation:
                return profile  # a step of an earlier Enable: nothing of today's sync
            decision = decide(profile.life, event)
            update = {"last_error": why} if why else {}
            return profile.living(decision.life).model_copy(update=update) if decision.life != profile.life else profile

        try:
            profile = self.d.profiles.update(job.member, job.kind, stopped)
        except LookupError:
            return
        log.error("%s sync of %s stopped (%s): %s", job.kind.value, job.member, event.value, why or profile.last_error)

    def give_up(self, job: SyncJob) -> None:
        """The queue gave the step up (its poison message): stop that sync, with the error it
        kept failing with, until the member resumes it."""
        self._stop(job, Event.STEP_FAILED, None)

    def resume(self, member: MemberIdentity, kind: SyncKind) -> SyncProfile:
        """The member's Resume (L20): back to the phase the failure stopped, its step queued.
        Raises ``NothingToResume`` when no error stopped this sync (L21)."""
        decision = Decision(Life(), refused="no sync")

        def resumed(profile: SyncProfile) -> SyncProfile:
            nonlocal decision
            decision = decide(profile.life, Event.RESUME)
            if decision.refused:
                return profile
            return profile.living(decision.life).model_copy(update={"last_error": None, "delta_queued": False})

        try:
            profile = self.d.profiles.update(member.partition_key, kind, resumed)
        except LookupError:
            raise NothingToResume(kind, "no sync") from None
        if decision.refused:
            raise NothingToResume(kind, decision.refused)
        step = "initial" if Effect.QUEUE_INITIAL in decision.effects else "delta"
        self.sync.jobs.send(SyncJob.of(profile, step, StepReason.RESUMED))
        self.d.accounts.audit(actor=member.email, action=f"sync.{kind.value}.resumed", tenant_id=member.tenant_id,
                              org_id=member.org_id)
        return profile
