"""The life of a member's sync profile (per kind), as a pure decision table (issue 17).

``engine.plan`` decides what happens to items; this module decides what happens to the
profile: Enable, Disable, our container deleted in Outlook, an authorisation lost and
back, a mass change found and answered, the initial sync done, and whether a queued step
may run at all. No I/O, no clock: the service reads the profile, asks ``decide``, stores
the new life with an ETag, and carries out the effects (``Effect``) it names.

States: ``D`` disabled, ``I`` initial sync, ``A`` active (two-way), ``P`` paused. A
paused profile remembers why (``Reason``) and the phase it paused in (``paused_from``).

=====  ==========  =====================  ==========  =====================================
case   state       event                  becomes     effects
=====  ==========  =====================  ==========  =====================================
L1     D           enable                 I           new generation, prepare, queue initial
L2     I, A        enable                 unchanged   none (enabling twice changes nothing)
L3     P           enable                 I           prepare, queue initial; same generation
                                                      (its container and links are kept)
L4     any         disable                D (member)  tear down (container, links, webhooks)
L5     I, A, P     container gone         D (deleted) tear down; the CRM keeps everything
L6     D           container gone         unchanged   none (a late step of a disabled sync)
L7     I, A        authorisation lost     P (reason)  none; ``paused_from`` = the phase
L8     D, P        authorisation lost     unchanged   none
L9     P (auth)    authorisation back     paused_from queue that phase's step
L10    other       authorisation back     unchanged   none
L11    A           mass change found      P (mass)    none, unless answered "delete" (L13)
L12    I, D, P     mass change found      unchanged   none (the initial sync only creates)
L13    A answered  mass change found      unchanged   none: the answer holds for the round
L14    P (mass)    answer delete / keep   A answered  queue delta (the round applies it)
L15    other       answer                 unchanged   refused: no question is asked
L16    I           initial done           A           queue delta (two-way starts, R3.3)
L17    A           round done             A           the answer is spent
L18    I, A        step failed for good   P (failed)  none; ``paused_from`` = the phase
                   or mailbox refused     P (mailbox)
L19    D, P        step failed / refused  unchanged   none
L20    P (failed,  resume (the member)    paused_from queue that phase's step
       mailbox)
L21    other       resume                 unchanged   refused: nothing to resume (an answer
                                                      or an authorisation is awaited)
=====  ==========  =====================  ==========  =====================================

A step "fails for good" when its queue message is given up (the poison queue, after the
host's five deliveries): the error it kept failing with is shown, and the sweep queues
nothing for a paused sync. The mailbox "refuses" when Graph answers 401 or 403 for it (the
app's access to that mailbox was restricted, or the mailbox was disabled).

Queued steps (``admit``): a step of another generation is dropped (G1); a remap page
waits while the initial sync or a pause runs (G2); an initial step runs in I, a delta
or remap step in A (G3); anything else is out of phase and skipped (G4). A step finding
the member's lease held (``when_lease_held``): an initial step is left to the chain that
holds it (H1), a delta step asks the holder for one more round (H2), a remap page is
retried later (H3).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class SyncState(enum.StrEnum):
    DISABLED = "disabled"
    INITIAL = "initial"  # the initial sync is running (pages of queue work)
    ACTIVE = "active"  # two-way sync through webhooks and the delta sweep
    PAUSED = "paused"  # stopped with a reason the member sees (mass change, lost authorisation)


class Reason(enum.StrEnum):
    """Why a sync is paused or was disabled (the settings page says it in words)."""

    DISABLED_BY_MEMBER = "disabled by the member"
    CONTAINER_DELETED = "container_deleted"
    MASS_CHANGE = "mass_change"
    CRM_AUTHORIZATION_LOST = "crm_authorization_lost"
    MICROSOFT_CONSENT_LOST = "microsoft_consent_lost"
    STEP_FAILED = "step_failed"  # a step kept failing until its message was given up (L18)
    MAILBOX_REFUSED = "mailbox_refused"  # Graph refuses the app this mailbox (401, 403: L18)

    @property
    def is_authorization(self) -> bool:
        return self in (Reason.CRM_AUTHORIZATION_LOST, Reason.MICROSOFT_CONSENT_LOST)


class Answer(enum.StrEnum):
    """The member's answer to a paused mass change."""

    DELETE = "delete"  # the deletions go through: the partners go too
    KEEP = "keep"  # the deleted items are created again


class Event(enum.StrEnum):
    ENABLE = "enable"
    DISABLE = "disable"
    CONTAINER_GONE = "container_gone"
    CRM_AUTHORIZATION_LOST = "crm_authorization_lost"
    MICROSOFT_CONSENT_LOST = "microsoft_consent_lost"
    AUTHORIZATION_BACK = "authorization_back"
    MASS_CHANGE_FOUND = "mass_change_found"
    ANSWER_DELETE = "answer_delete"
    ANSWER_KEEP = "answer_keep"
    INITIAL_DONE = "initial_done"
    ROUND_DONE = "round_done"
    STEP_FAILED = "step_failed"
    MAILBOX_REFUSED = "mailbox_refused"
    RESUME = "resume"


class Effect(enum.StrEnum):
    """What the service must do for a decision, besides storing the new life."""

    NEW_GENERATION = "new_generation"  # a fresh generation (shared.sync.markers)
    PREPARE = "prepare"  # our container found or made, the CRM watched, cursors reset
    TEAR_DOWN = "tear_down"  # Graph subscription, CRM channel, our container, link rows removed
    QUEUE_INITIAL = "queue_initial"
    QUEUE_DELTA = "queue_delta"


class Step(enum.StrEnum):
    INITIAL = "initial"
    DELTA = "delta"
    REMAP = "remap"


class Admission(enum.StrEnum):
    RUN = "run"
    DROP = "drop"  # G1: another generation's step
    WAIT = "wait"  # G2: comes back later
    SKIP = "skip"  # G4: out of phase


class WhenHeld(enum.StrEnum):
    LEAVE_TO_HOLDER = "leave_to_holder"  # H1
    ASK_HOLDER = "ask_holder"  # H2
    RETRY = "retry"  # H3


@dataclass(frozen=True)
class Life:
    """The part of a profile this table reads and writes."""

    state: SyncState = SyncState.DISABLED
    reason: Reason | None = None
    paused_from: SyncState | None = None
    answer: Answer | None = None


@dataclass(frozen=True)
class Decision:
    life: Life
    effects: tuple[Effect, ...] = ()
    refused: str | None = None  # why the event does nothing here, for the person who asked



_LOST = {Event.CRM_AUTHORIZATION_LOST: Reason.CRM_AUTHORIZATION_LOST,
         Event.MICROSOFT_CONSENT_LOST: Reason.MICROSOFT_CONSENT_LOST}
_ANSWERS = {Event.ANSWER_DELETE: Answer.DELETE, Event.ANSWER_KEEP: Answer.KEEP}
_FAILED = {Event.STEP_FAILED: Reason.STEP_FAILED, Event.MAILBOX_REFUSED: Reason.MAILBOX_REFUSED}
RESUMABLE = frozenset(_FAILED.values())  # what the member's Resume restarts (L20)
_SYNCING = (SyncState.INITIAL, SyncState.ACTIVE)


def decide(life: Life, event: Event) -> Decision:
    """The table above: what ``event`` does to a profile living ``life``."""
    state = life.state
    if event is Event.ENABLE:
        if state is SyncState.DISABLED:  # L1
            return Decision(Life(SyncState.INITIAL), (Effect.NEW_GENERATION, Effect.PREPARE, Effect.QUEUE_INITIAL))
        if state is SyncState.PAUSED:  # L3
            return Decision(Life(SyncState.INITIAL), (Effect.PREPARE, Effect.QUEUE_INITIAL))
        return Decision(life)  # L2
    if event is Event.DISABLE:  # L4
        return Decision(Life(SyncState.DISABLED, Reason.DISABLED_BY_MEMBER), (Effect.TEAR_DOWN,))
    if event is Event.CONTAINER_GONE:
        if state is SyncState.DISABLED:  # L6
            return Decision(life)
        return Decision(Life(SyncState.DISABLED, Reason.CONTAINER_DELETED), (Effect.TEAR_DOWN,))  # L5
    if event in _LOST:
        if state in _SYNCING:  # L7
            return Decision(Life(SyncState.PAUSED, _LOST[event], paused_from=state))
        return Decision(life)  # L8
    if event in _FAILED:
        if state in _SYNCING:  # L18
            return Decision(Life(SyncState.PAUSED, _FAILED[event], paused_from=state))
        return Decision(life)  # L19
    if event is Event.RESUME:
        if state is SyncState.PAUSED and life.reason in RESUMABLE:  # L20
            return _resumed(life)
        return Decision(life, refused="this sync is not stopped by an error")  # L21
    if event is Event.AUTHORIZATION_BACK:
        if state is SyncState.PAUSED and life.reason is not None and life.reason.is_authorization:  # L9
            return _resumed(life)
        return Decision(life)  # L10
    if event is Event.MASS_CHANGE_FOUND:
        if state is SyncState.ACTIVE and life.answer is not Answer.DELETE:  # L11
            return Decision(Life(SyncState.PAUSED, Reason.MASS_CHANGE, paused_from=SyncState.ACTIVE))
        return Decision(life)  # L12, L13
    if event in _ANSWERS:
        if state is SyncState.PAUSED and life.reason is Reason.MASS_CHANGE:  # L14
            return Decision(Life(SyncState.ACTIVE, answer=_ANSWERS[event]), (Effect.QUEUE_DELTA,))
        return Decision(life, refused="this sync is not waiting for an answer about deletions")  # L15
    if event is Event.INITIAL_DONE:
        if state is SyncState.INITIAL:  # L16
            return Decision(Life(SyncState.ACTIVE), (Effect.QUEUE_DELTA,))
        return Decision(life)
    if event is Event.ROUND_DONE:
        if state is SyncState.ACTIVE:  # L17
            return Decision(replace(life, answer=None))
        return Decision(life)
    raise ValueError(f"unknown event {event!r}")


def _resumed(life: Life) -> Decision:
    """Back to the phase a pause stopped, with that phase's step queued (L9, L20)."""
    phase = life.paused_from or SyncState.ACTIVE
    return Decision(Life(phase), (Effect.QUEUE_INITIAL if phase is SyncState.INITIAL else Effect.QUEUE_DELTA,))


def admit(state: SyncState, generation: str | None, step: Step, step_generation: str | None) -> Admission:
    """Whether a queued step may run now (G1-G4). A step without a generation was queued
    before generations existed, and runs in whichever is current."""
    if step_generation is not None and step_generation != generation:
        return Admission.DROP  # G1
    if step is Step.REMAP and state in (SyncState.INITIAL, SyncState.PAUSED):
        return Admission.WAIT  # G2: the pages synced before the mapping changed need it too
    wanted = SyncState.INITIAL if step is Step.INITIAL else SyncState.ACTIVE
    return Admission.RUN if state is wanted else Admission.SKIP  # G3, G4


def when_lease_held(step: Step) -> WhenHeld:
    """H1-H3: re-queuing instead would multiply jobs (every copy of a twice-delivered
    message would come back again and again while the holder runs)."""
    if step is Step.INITIAL:
        return WhenHeld.LEAVE_TO_HOLDER
    if step is Step.DELTA:
        return WhenHeld.ASK_HOLDER
    return WhenHeld.RETRY
