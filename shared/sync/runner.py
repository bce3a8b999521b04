"""One step of one member's sync (DESIGN §8): admit it (``lifecycle.admit``), take the
member's lease, run the step, save the cursors with the release, and queue what follows.

The steps themselves: ``initial_sync`` (selection pass, then CRM pages), ``delta_round``
(two-way sync's round), ``remap_pages`` (a re-sync after a mapping change), each planning and
applying through ``cycle``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from shared.graph.subscriptions import EndpointNotValidated
from shared.storage import ConcurrencyConflict, Stored
from shared.sync.cycle import Cycle
from shared.sync.delta_round import DeltaRound
from shared.sync.echoes import own_echoes
from shared.sync.initial_sync import PAGE_SIZE, InitialSync
from shared.sync.jobs import StepReason, SyncJob
from shared.sync.ledger_store import SyncLedger
from shared.sync.lifecycle import (
    Admission,
    Step,
    WhenHeld,
    admit,
    when_lease_held,
)
from shared.sync.ports import ConflictLog, LinkRows
from shared.sync.profiles import LEASE, LeaseHeartbeat, LeaseHeld, ProfileStore, SyncProfile, SyncState
from shared.sync.remap_pages import RemapPages
from shared.sync.retries import MAX_RETRIES, retry_delay
from shared.sync.step_context import StepContext

__all__ = ["StepContext", "SyncRunner"]

log = logging.getLogger(__name__)

# Steps queued by a webhook (see SyncService.request_delta): they read the CRM's deleted list
# only when the CRM reported a deletion; every other step (sweep, continuation) reads it.
WEBHOOK_REASONS = frozenset({StepReason.GRAPH_WEBHOOK, StepReason.CRM_WEBHOOK, StepReason.HELD_WEBHOOK})
# Delta steps that also note what the calendar's window hides (a sweep every 5 minutes, and
# the first round of two-way sync): 1 or 2 Graph reads, not on every webhook.
LOOK_OUTSIDE_REASONS = frozenset({StepReason.SWEEP, StepReason.INITIAL_DONE})
REMAP_WAIT_SECONDS = 30
# A delta step whose member was marked by a webhook while it ran runs one more round itself, up
# to this many and for this long after its first (then a queued step goes on, behind the others).
MORE_ROUNDS = 40  # a round under load takes 0.2-1.5 s (propagation-under-load): the time bounds it first
MORE_ROUNDS_SECONDS = 20.0


class SyncRunner:
    def __init__(
        self,
        profiles: ProfileStore,
        links: LinkRows,
        conflicts: ConflictLog,
        ledger: SyncLedger | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.profiles = profiles
        self.links = links
        self.conflicts = conflicts
        self.ledger = ledger
        self._now = clock
        cycle = Cycle(links, conflicts, ledger, clock)
        self.initial = InitialSync(cycle, clock, page_size)
        self.rounds = DeltaRound(cycle, links, ledger, clock)
        self.remap = RemapPages(cycle, links, conflicts, clock)

    def run(
        self, job: SyncJob, ctx: StepContext, *, delivery: str | None = None, current: Stored[SyncProfile] | None = None
    ) -> SyncProfile:
        """One step under the member's lease (renewed while it runs). ``delivery``: the queue
        message id, the step's name on the lease. Raises LeaseHeld when the step must be
        retried later (see ``_take_lease``)."""
        current = current or self.profiles.get(job.member, job.kind)
        if current is None:
            log.info("%s %s step of %s skipped: no sync profile", job.kind, job.step, job.member)
            return None  # type: ignore[return-value]
        job = first_round_left(job, current.entity, job.holder or delivery)
        admission = admit(current.entity.state, current.entity.generation, Step(job.step), job.generation)
        if admission is Admission.WAIT:
            ctx.enqueue(job, REMAP_WAIT_SECONDS)
            return current.entity
        if admission is not Admission.RUN:
            # Another generation's step (G1), or out of phase (G4): a webhook during the initial
            # sync (our own creates echo), a late step of a phase that ended. Nothing to do.
            log.info("%s %s step of %s %s: the sync is %s", job.kind, job.step, job.member,
                     "dropped (an earlier Enable's)" if admission is Admission.DROP else "skipped",
                     current.entity.state.value)
            return current.entity
        taken = self._take_lease(job, current, job.holder or delivery)
        if taken is None:
            return current.entity
        profile, owner, read_deleted, leased = taken
        # Follow-up steps are queued only once the lease is released, or they would find it
        # held and wait for a retry.
        followups: list[tuple[SyncJob, int]] = []
        lease = self.profiles.heartbeat(job.member, job.kind, owner, leased).__enter__()
        # ``lease`` as it is when called: an extra round renews a new heartbeat.
        step_ctx = replace(ctx, enqueue=lambda next_job, delay: followups.append((next_job, delay)),
                           check_lease=lambda: lease.check())
        failure: BaseException | None = None
        try:
            profile = self._step(job, profile, ctx, step_ctx, lease, leased, followups, read_deleted)
        except BaseException as error:  # released below, then raised
            failure = error
        started = time.monotonic()
        for extra in range(MORE_ROUNDS + 1):
            lease.stop()
            more = failure is None and profile.state is SyncState.ACTIVE and job.step != "remap" \
                and extra < MORE_ROUNDS and time.monotonic() - started < MORE_ROUNDS_SECONDS
            outcome = self._release(job, profile, owner, lease.latest, taken=leased.entity, more_rounds=more)
            if not isinstance(outcome, MoreRound):
                break
            # A webhook marked this member while the round ran: one more round now, under the
            # lease still held, instead of a queued step (a queue hop, a lease, a release and
            # the member's rows again; issue 20: the latency of a change made during a step).
            lease = self.profiles.heartbeat(job.member, job.kind, owner, outcome.row).__enter__()
            try:
                profile = self._delta_step(outcome.row.entity, step_ctx, read_deleted=outcome.read_deleted, look_outside=False)
            except BaseException as error:  # noqa: BLE001 - released by the next turn, then raised
                failure, profile = error, outcome.row.entity
        asked = outcome if isinstance(outcome, StepReason) else None
        if asked is not None:
            # Asked by a webhook's step that was dropped for it (``_leave_to_holder``), or by a
            # webhook's mark left to this step: queued even when this step fails, or that
            # change waits for the sweep.
            ctx.enqueue(SyncJob.of(profile, "delta", asked), 0)
        # Even when the step fails after them: what they continue was saved with the release
        # (e.g. the initial sync's last pages, then subscribing failed: the profile is active,
        # and its redelivered message is skipped as out of phase).
        for next_job, delay in followups:
            ctx.enqueue(next_job, delay)
        if failure is not None:
            raise failure
        return profile

    def _step(self, job: SyncJob, profile: SyncProfile, ctx: StepContext, step_ctx: StepContext, lease: LeaseHeartbeat,
              leased: Stored[SyncProfile], followups: list[tuple[SyncJob, int]], read_deleted: bool) -> SyncProfile:
        """The step's work under the lease: an initial slice (and, when it ends the initial sync,
        two-way sync's first round), a remap page, or a delta round."""
        if profile.state is SyncState.INITIAL:
            profile = self._initial_step(profile, step_ctx)
            if profile.state is SyncState.ACTIVE and profile.subscription_id is None and ctx.subscribe is not None:
                # Two-way sync starts: Outlook's changes are pushed from now on (see
                # SyncService.enable), unless our endpoint could not be validated (``_subscribe``).
                profile = profile.model_copy(update=self._subscribe(job, profile, ctx, followups))
            first_round = next((f for f in followups if f[0].step == "delta" and f[0].reason is StepReason.INITIAL_DONE), None)
            if profile.state is SyncState.ACTIVE and first_round is not None:
                # The initial sync is done (its items are in Outlook, Outlook's changes
                # are pushed): shown at once, and a webhook from here on marks one more
                # round for this step (``MoreRound``). A change made before this write is in
                # the first round's read, which comes after it (one Table write: an
                # "active" written with the release left a change notified between that
                # read and the release to the sweep, and kept the member waiting for a
                # whole round, 0.4 s of an initial sync of 1,000 events).
                lease.publish(lambda row: _carry(row, profile, leased.entity))
                # Two-way sync's first round, under the lease already held: a queue hop
                # would cost a lease, a release and the member's rows once more. Should
                # it fail, its queued step stands (the follow-ups are sent regardless).
                profile = self._delta_step(profile, step_ctx, read_deleted=True, look_outside=True)
                followups.remove(first_round)
        elif job.step == "remap":
            profile = self._remap_step(profile, job, step_ctx)
        elif profile.state is SyncState.ACTIVE:
            if profile.subscription_id is None and ctx.subscribe is not None:
                # Not subscribed yet (the initial sync's last step failed after its pages, or our
                # endpoint could not be validated then): stored at once, so a failing step leaves
                # no orphan subscription.
                fresh = self._subscribe(job, profile, ctx, followups)
                if fresh:
                    self.profiles.update(job.member, job.kind, lambda p: p.model_copy(update=fresh))
                    profile = profile.model_copy(update=fresh)
            profile = self._delta_step(profile, step_ctx, read_deleted=read_deleted,
                                       look_outside=job.reason in LOOK_OUTSIDE_REASONS)
        return profile

    @staticmethod
    def _subscribe(job: SyncJob, profile: SyncProfile, ctx: StepContext,
                   followups: list[tuple[SyncJob, int]]) -> dict[str, object]:
        """The Graph subscription's fields, or none when Graph could not validate our endpoint
        (down or slow for a moment: a deployment, a cold start). That is ours to get over, not
        the member's: the step goes on without push (the sweep gives an unsubscribed member a
        round every 5 minutes), and the step that starts two-way sync tries again after 15 s,
        doubling to 5 minutes, 12 times (``retries``); then the sweep's rounds keep trying.
        Failing the step instead spent the queue's 5 deliveries in ~25 s and stopped the sync
        (the three-host soak, its webhook host killed)."""
        assert ctx.subscribe is not None
        try:
            return ctx.subscribe(profile)
        except EndpointNotValidated as error:
            attempt = job.retry + 1 if job.reason is StepReason.SUBSCRIBE_AGAIN else 1
            # Tried again by the step that starts two-way sync, and by those it queued for it; any
            # other step leaves it to the sweep (so that no two chains of retries run at once).
            starts = job.step == "initial" or job.reason in (StepReason.SUBSCRIBE_AGAIN, StepReason.INITIAL_DONE)
            log.warning("%s sync of %s goes on without Graph's notifications for now (attempt %d): %s",
                        job.kind, job.member, attempt, error)
            if starts and attempt <= MAX_RETRIES:
                again = SyncJob.of(profile, "delta", StepReason.SUBSCRIBE_AGAIN).model_copy(update={"retry": attempt})
                followups.append((again, retry_delay(attempt)))
            return {}

    def _take_lease(
        self, job: SyncJob, current: Stored[SyncProfile], name: str | None
    ) -> tuple[SyncProfile, str, bool, Stored[SyncProfile]] | None:
        """The lease, with the profile and whether to read the CRM's deleted list; None when
        the step is left to the lease's holder. Raises LeaseHeld when this step must wait:
        its own earlier delivery holds the lease (that delivery died, or is late), or it is a
        remap page behind another step."""
        for _ in range(3):
            delta = current.entity.state is SyncState.ACTIVE and job.step == "delta"
            # From here on, a new change must queue a new step (this one may miss it): the marks
            # webhooks set are cleared with the lease taken, and what they asked for is done.
            try:
                profile, etag, owner = self.profiles.acquire(
                    job.member, job.kind, holder=name, stored=current, taking=_taking_for_delta if delta else None,
                )
            except LeaseHeld as held:
                if name is not None and (held.owner or "").startswith(f"{name}|"):
                    raise
                if self._leave_to_holder(job):
                    return None
                if job.step != "delta":
                    raise
                # Released meanwhile (the ask found no holder): try again at once.
                latest = self.profiles.get(job.member, job.kind)
                if latest is None or latest.entity.state is not SyncState.ACTIVE:
                    return None
                current = latest
                continue
            read_deleted = current.entity.crm_deletions_noticed or job.reason not in WEBHOOK_REASONS
            return profile, owner, read_deleted, Stored(profile, etag)
        raise LeaseHeld(f"{job.kind} sync of {job.member} keeps changing hands", 1)

    def _leave_to_holder(self, job: SyncJob) -> bool:
        """A step finding its member's lease held: can the running step take care of it?

        - an initial step: yes, the holder is the initial sync's chain, which queues its own
          next step (a crashed holder's own message comes back and waits for the lease to
          lapse: see ``_take_lease``); this one is a duplicate;
        - a delta step: yes, once the holder is asked to run one more delta round when it ends
          (``delta_rerun``), asked only while the lease is still held, so the ask cannot come
          after the holder's release has looked;
        - otherwise (a remap page): no, it is retried later.
        Re-queuing instead would multiply jobs: every copy of a delivered-twice message would
        come back again and again while the holder runs."""
        verdict = when_lease_held(Step(job.step))
        if verdict is WhenHeld.LEAVE_TO_HOLDER:
            log.info("%s initial step of %s left to the running step", job.kind, job.member)
            return True
        if verdict is WhenHeld.RETRY:
            return False
        asked = False

        def ask(profile: SyncProfile) -> SyncProfile:
            nonlocal asked
            held = profile.lease_until is not None and profile.lease_until > self._now()
            asked = held and profile.state is SyncState.ACTIVE
            return profile.model_copy(update={"delta_rerun": True}) if asked and not profile.delta_rerun else profile

        self.profiles.update(job.member, job.kind, ask)
        if asked:
            log.info("%s delta step of %s left to the running step (one more round)", job.kind, job.member)
        return asked

    def _release(self, job: SyncJob, stepped: SyncProfile, owner: str, known: Stored[SyncProfile] | None = None, *,
                 taken: SyncProfile | None = None, more_rounds: bool = False) -> StepReason | MoreRound | None:
        """Write the step's result and free the lease, re-reading on a concurrent change
        (a webhook marking a delta step queued). A lease found taken (this step stalled
        past it) keeps the other step's state: this one's work is redone from the cursors.
        Returns why one more delta step must be queued, if asked meanwhile: by a webhook's
        step dropped for this one (``_leave_to_holder``), or by a webhook's mark left to it
        (``delta_for_holder``) that is not this step's own echoes. ``known``: the row as the
        lease's last write left it, tried first without a read. ``taken``: the profile as the
        lease was taken (what the step did not change is left as the row has it).
        ``more_rounds``: when one more round is asked for, keep the lease instead, with the
        step's result and the asks taken as a delta step takes them (``MoreRound``); the row is
        read only when the known one is out of date, so a step nobody marked costs nothing more."""
        for _ in range(8):
            latest, known = known or self.profiles.get(job.member, job.kind), None
            if latest is None:
                return None
            if latest.entity.lease_owner != owner:
                log.error("%s step of %s lost its lease: its cursors are not saved", job.kind, job.member)
                if latest.entity.state is SyncState.DISABLED or latest.entity.generation != stepped.generation:
                    # Disabled (and maybe enabled again) under this step: the link rows it
                    # wrote after the purge belong to no generation that reads them.
                    self.links.purge(stepped.links_partition)  # with the initial sync's selection
                return None
            released = _carry(latest.entity, stepped, taken)
            if released.delta_queued and released.delta_items and own_echoes(self.links, released.links_partition, released.delta_items):
                # The webhooks since the lease was taken named only this step's own writes
                # (their echoes came before its rows were saved): nothing to do for them.
                released = released.model_copy(update={"delta_queued": False, "delta_queued_at": None, "delta_items": None,
                                                       "delta_for_holder": False})
            active = released.state is SyncState.ACTIVE
            asked = StepReason.RERUN if released.delta_rerun and active else None
            marked = released.delta_for_holder and released.delta_queued and active
            update: dict[str, object] = {"delta_rerun": False, "delta_for_holder": False}
            if (asked or marked) and more_rounds:
                kept = released.model_copy(update={**_ASKS_TAKEN, "lease_until": self._now() + LEASE})
                try:
                    return MoreRound(self.profiles.save(kept, latest.etag), read_deleted=released.crm_deletions_noticed)
                except ConcurrencyConflict:
                    continue
            if marked:
                # The mark stays (its step must not find itself covered), now with a queued step.
                update["delta_queued_at"] = self._now()
                asked = asked or StepReason.HELD_WEBHOOK
            try:
                self.profiles.release(released.model_copy(update=update), latest.etag)
                return asked
            except ConcurrencyConflict:
                continue
        raise ConcurrencyConflict(f"could not release the lease of {job.member}")

    # -- the steps (``initial_sync``, ``delta_round``, ``remap_pages``; seams for tests) -------------

    def _initial_step(self, profile: SyncProfile, ctx: StepContext) -> SyncProfile:
        return self.initial.step(profile, ctx)

    def _delta_step(self, profile: SyncProfile, ctx: StepContext, **options: bool) -> SyncProfile:
        return self.rounds.step(profile, ctx, **options)

    def _remap_step(self, profile: SyncProfile, job: SyncJob, ctx: StepContext) -> SyncProfile:
        return self.remap.step(profile, job, ctx)


@dataclass(frozen=True)
class MoreRound:
    """The lease kept for one more delta round: the row as written, and whether that round
    reads the CRM's deleted list (a CRM callback reported a deletion)."""

    row: Stored[SyncProfile]
    read_deleted: bool


# What a delta step taking the lease clears: the webhooks' marks, now its to read.
_ASKS_TAKEN: dict[str, object] = {"delta_queued": False, "crm_deletions_noticed": False, "delta_rerun": False,
                                  "delta_items": None, "delta_for_holder": False}


def _taking_for_delta(profile: SyncProfile) -> dict[str, object]:
    """What a delta step changes as it takes the lease. A lease still named (lapsed: ``acquire``
    refuses a live one) is a step that died or stalled holding it: it may have created Outlook
    items after the delta link it left, and not saved them as unconfirmed
    (``SyncProfile.unconfirmed_outlook``), so this round is a full one, which reads every
    linked item it does not list."""
    taking = dict(_ASKS_TAKEN)
    if profile.lease_owner is not None:
        taking["delta_link"] = None
    return taking


def first_round_left(job: SyncJob, profile: SyncProfile, name: str | None) -> SyncJob:
    """An initial step's own delivery again, finding the sync active and the lease still named
    by that delivery: its process died after showing the initial sync done (``publish``) and
    before two-way sync's first round ended (or its follow-up was queued). That round is the
    step's to run, as a delta step (a full round: the lease it takes over is named); skipped
    as out of phase instead, it would wait for the daily sweep."""
    own_lease = name is not None and (profile.lease_owner or "").startswith(f"{name}|")
    if job.step == "initial" and profile.state is SyncState.ACTIVE and own_lease:
        return job.model_copy(update={"step": "delta", "reason": StepReason.INITIAL_DONE})
    return job


def already_covered(job: SyncJob, profile: SyncProfile | None, delivery: str | None) -> bool:
    """A webhook's delta step with nothing left to do: its mark is gone, so a step took the
    lease after the webhook (and read every change made before it), or a step found what it
    named to be its own writes' echoes (``shared.sync.echoes``). A retry with nothing left to
    do: a round since ended with no passing failure (``shared.sync.retries``). Not when this
    message's own earlier delivery took the lease (it may have died before saving its cursors)."""
    if profile is None or job.step != "delta" or profile.state is not SyncState.ACTIVE:
        return False
    name = job.holder or delivery
    own_lease = name is not None and (profile.lease_owner or "").startswith(f"{name}|")
    if job.reason is StepReason.RETRY:
        return profile.retries == 0 and not own_lease
    if job.reason not in WEBHOOK_REASONS:
        return False
    return not profile.delta_queued and not profile.delta_rerun and not own_lease


# Written outside the lease while a step runs: the renewal timer and Graph's lifecycle
# notifications (a new subscription), a CRM channel renewed or forgotten.
_WEBHOOK_FIELDS = ("subscription_id", "subscription_expires", "client_state", "channel_id", "channel_token", "channel_expires")


def _carry(latest: SyncProfile, stepped: SyncProfile, taken: SyncProfile | None = None) -> SyncProfile:
    """The step's result, unless the member changed the state meanwhile (e.g. disabled). The
    webhook fields the step left as they were when it took the lease (``taken``) are the
    row's: a subscription made meanwhile by a lifecycle notification must not be replaced by
    the one it replaced (whose notifications no longer come)."""
    if latest.state is SyncState.DISABLED or latest.generation != stepped.generation or latest.enabled_at != stepped.enabled_at:
        return latest
    untouched = {f: getattr(latest, f) for f in _WEBHOOK_FIELDS
                 if taken is not None and getattr(stepped, f) == getattr(taken, f)}
    return stepped.model_copy(
        update={**untouched, "lease_owner": latest.lease_owner, "lease_until": latest.lease_until, "delta_queued": latest.delta_queued,
                "delta_queued_at": latest.delta_queued_at, "delta_items": latest.delta_items,
                "crm_deletions_noticed": latest.crm_deletions_noticed, "delta_rerun": latest.delta_rerun,
                "delta_for_holder": latest.delta_for_holder}
    )

