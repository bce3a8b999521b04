"""The profile's life (``shared.sync.lifecycle``): each case of the table, then properties
over every reachable life and every sequence of events."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.sync.lifecycle import (
    Admission,
    Answer,
    Decision,
    Effect,
    Event,
    Life,
    Reason,
    Step,
    SyncState,
    WhenHeld,
    admit,
    decide,
    when_lease_held,
)

D, I, A, P = SyncState.DISABLED, SyncState.INITIAL, SyncState.ACTIVE, SyncState.PAUSED  # noqa: E741 - the table's letters
SYNCING = (Life(I), Life(A))
PAUSES = (Life(P, Reason.MASS_CHANGE, A), Life(P, Reason.CRM_AUTHORIZATION_LOST, I),
          Life(P, Reason.CRM_AUTHORIZATION_LOST, A), Life(P, Reason.MICROSOFT_CONSENT_LOST, A),
          Life(P, Reason.STEP_FAILED, I), Life(P, Reason.MAILBOX_REFUSED, A))
DISABLED = (Life(D), Life(D, Reason.DISABLED_BY_MEMBER), Life(D, Reason.CONTAINER_DELETED))
ANSWERED = (Life(A, answer=Answer.DELETE), Life(A, answer=Answer.KEEP))
LIVES = (*DISABLED, *SYNCING, *ANSWERED, *PAUSES)


CASES = [
    ("L1", Life(D, Reason.CONTAINER_DELETED), Event.ENABLE, Life(I),
     (Effect.NEW_GENERATION, Effect.PREPARE, Effect.QUEUE_INITIAL)),
    ("L2", Life(A), Event.ENABLE, Life(A), ()),
    ("L2", Life(I), Event.ENABLE, Life(I), ()),
    ("L3", Life(P, Reason.MASS_CHANGE, A), Event.ENABLE, Life(I), (Effect.PREPARE, Effect.QUEUE_INITIAL)),
    ("L4", Life(A), Event.DISABLE, Life(D, Reason.DISABLED_BY_MEMBER), (Effect.TEAR_DOWN,)),
    ("L4", Life(P, Reason.CRM_AUTHORIZATION_LOST, I), Event.DISABLE, Life(D, Reason.DISABLED_BY_MEMBER), (Effect.TEAR_DOWN,)),
    ("L5", Life(I), Event.CONTAINER_GONE, Life(D, Reason.CONTAINER_DELETED), (Effect.TEAR_DOWN,)),
    ("L6", Life(D, Reason.DISABLED_BY_MEMBER), Event.CONTAINER_GONE, Life(D, Reason.DISABLED_BY_MEMBER), ()),
    ("L7", Life(I), Event.CRM_AUTHORIZATION_LOST, Life(P, Reason.CRM_AUTHORIZATION_LOST, I), ()),
    ("L7", Life(A), Event.MICROSOFT_CONSENT_LOST, Life(P, Reason.MICROSOFT_CONSENT_LOST, A), ()),
    ("L8", Life(P, Reason.MASS_CHANGE, A), Event.CRM_AUTHORIZATION_LOST, Life(P, Reason.MASS_CHANGE, A), ()),
    ("L9", Life(P, Reason.CRM_AUTHORIZATION_LOST, I), Event.AUTHORIZATION_BACK, Life(I), (Effect.QUEUE_INITIAL,)),
    ("L9", Life(P, Reason.MICROSOFT_CONSENT_LOST, A), Event.AUTHORIZATION_BACK, Life(A), (Effect.QUEUE_DELTA,)),
    ("L10", Life(P, Reason.MASS_CHANGE, A), Event.AUTHORIZATION_BACK, Life(P, Reason.MASS_CHANGE, A), ()),
    ("L11", Life(A), Event.MASS_CHANGE_FOUND, Life(P, Reason.MASS_CHANGE, A), ()),
    ("L11", Life(A, answer=Answer.KEEP), Event.MASS_CHANGE_FOUND, Life(P, Reason.MASS_CHANGE, A), ()),
    ("L12", Life(I), Event.MASS_CHANGE_FOUND, Life(I), ()),
    ("L13", Life(A, answer=Answer.DELETE), Event.MASS_CHANGE_FOUND, Life(A, answer=Answer.DELETE), ()),
    ("L14", Life(P, Reason.MASS_CHANGE, A), Event.ANSWER_KEEP, Life(A, answer=Answer.KEEP), (Effect.QUEUE_DELTA,)),
    ("L14", Life(P, Reason.MASS_CHANGE, A), Event.ANSWER_DELETE, Life(A, answer=Answer.DELETE), (Effect.QUEUE_DELTA,)),
    ("L16", Life(I), Event.INITIAL_DONE, Life(A), (Effect.QUEUE_DELTA,)),
    ("L17", Life(A, answer=Answer.DELETE), Event.ROUND_DONE, Life(A), ()),
    ("L18", Life(I), Event.STEP_FAILED, Life(P, Reason.STEP_FAILED, I), ()),
    ("L18", Life(A, answer=Answer.KEEP), Event.MAILBOX_REFUSED, Life(P, Reason.MAILBOX_REFUSED, A), ()),
    ("L19", Life(D, Reason.DISABLED_BY_MEMBER), Event.STEP_FAILED, Life(D, Reason.DISABLED_BY_MEMBER), ()),
    ("L19", Life(P, Reason.MASS_CHANGE, A), Event.MAILBOX_REFUSED, Life(P, Reason.MASS_CHANGE, A), ()),
    ("L20", Life(P, Reason.STEP_FAILED, I), Event.RESUME, Life(I), (Effect.QUEUE_INITIAL,)),
    ("L20", Life(P, Reason.MAILBOX_REFUSED, A), Event.RESUME, Life(A), (Effect.QUEUE_DELTA,)),
]


@pytest.mark.parametrize(("case", "life", "event", "becomes", "effects"), CASES, ids=[c[0] for c in CASES])
def test_each_case_of_the_table(case: str, life: Life, event: Event, becomes: Life, effects: tuple[Effect, ...]) -> None:
    decision = decide(life, event)
    assert (decision.life, decision.effects, decision.refused) == (becomes, effects, None)


@pytest.mark.parametrize("life", [*DISABLED, *SYNCING, *ANSWERED, *PAUSES[1:]])
@pytest.mark.parametrize("event", [Event.ANSWER_DELETE, Event.ANSWER_KEEP])
def test_an_answer_nobody_asked_for_is_refused_and_changes_nothing(life: Life, event: Event) -> None:  # L15
    decision = decide(life, event)
    assert decision == Decision(life, (), decision.refused) and decision.refused


@pytest.mark.parametrize("life", [*DISABLED, *SYNCING, *ANSWERED, *PAUSES[:4]])
def test_a_resume_with_nothing_to_resume_is_refused_and_changes_nothing(life: Life) -> None:  # L21
    decision = decide(life, Event.RESUME)
    assert decision == Decision(life, (), decision.refused) and decision.refused


def _well_formed(life: Life) -> None:
    """What every life reached from Disabled looks like."""
    if life.state in (I, A):
        assert life.reason is None and life.paused_from is None
    if life.state is P:
        assert life.reason is not None and life.reason is not Reason.DISABLED_BY_MEMBER
        assert life.reason is not Reason.CONTAINER_DELETED and life.paused_from in (I, A)
    if life.state is D:
        assert life.reason in (None, Reason.DISABLED_BY_MEMBER, Reason.CONTAINER_DELETED) and life.answer is None
    if life.answer is not None:
        assert life.state is A
    if life.reason is Reason.MASS_CHANGE:
        assert life.paused_from is A


@pytest.mark.parametrize(("life", "event"), list(itertools.product(LIVES, Event)))
def test_every_pair_keeps_the_rules(life: Life, event: Event) -> None:
    decision = decide(life, event)
    _well_formed(decision.life)
    # A new generation only when a disabled sync is enabled; the old one's rows are gone then.
    assert (Effect.NEW_GENERATION in decision.effects) == (life.state is D and event is Event.ENABLE)
    # Tearing down always ends disabled, and only Disable and a gone container tear down.
    assert (Effect.TEAR_DOWN in decision.effects) <= (decision.life.state is D)
    assert (Effect.TEAR_DOWN in decision.effects) <= (event in (Event.DISABLE, Event.CONTAINER_GONE))
    # Only Enable leaves Disabled.
    if life.state is D and event is not Event.ENABLE:
        assert decision.life.state is D
    # A queued step is always of the state it is queued for.
    if Effect.QUEUE_INITIAL in decision.effects:
        assert decision.life.state is I
    if Effect.QUEUE_DELTA in decision.effects:
        assert decision.life.state is A
    # Disable always disables, from anywhere.
    if event is Event.DISABLE:
        assert decision.life.state is D


@given(st.lists(st.sampled_from(list(Event)), max_size=40))
def test_any_sequence_of_events_from_disabled_stays_well_formed(events: list[Event]) -> None:
    life = Life()
    generations = 0
    for event in events:
        decision = decide(life, event)
        generations += Effect.NEW_GENERATION in decision.effects
        life = decision.life
        _well_formed(life)
    assert generations <= sum(1 for e in events if e is Event.ENABLE)


@given(st.sampled_from(LIVES), st.sampled_from(list(Event)))
def test_an_event_delivered_twice_is_an_event_delivered_once(life: Life, event: Event) -> None:
    once = decide(life, event)
    twice = decide(once.life, event)
    if event in (Event.ENABLE, Event.DISABLE, Event.CONTAINER_GONE, Event.CRM_AUTHORIZATION_LOST,
                 Event.MICROSOFT_CONSENT_LOST, Event.ROUND_DONE, Event.INITIAL_DONE, Event.AUTHORIZATION_BACK,
                 Event.STEP_FAILED, Event.MAILBOX_REFUSED, Event.RESUME):
        assert twice.life == once.life
    if event in (Event.ENABLE, Event.CONTAINER_GONE, Event.ANSWER_DELETE, Event.ANSWER_KEEP, Event.INITIAL_DONE,
                 Event.AUTHORIZATION_BACK, Event.RESUME):
        assert Effect.NEW_GENERATION not in twice.effects and Effect.QUEUE_INITIAL not in twice.effects


ADMISSIONS = [
    ("G1", A, "g2", Step.DELTA, "g1", Admission.DROP),
    ("G1", I, "g2", Step.INITIAL, "g1", Admission.DROP),
    ("G2", I, "g1", Step.REMAP, "g1", Admission.WAIT),
    ("G2", P, "g1", Step.REMAP, None, Admission.WAIT),
    ("G3", I, "g1", Step.INITIAL, "g1", Admission.RUN),
    ("G3", A, "g1", Step.DELTA, None, Admission.RUN),
    ("G3", A, None, Step.REMAP, None, Admission.RUN),
    ("G4", I, "g1", Step.DELTA, "g1", Admission.SKIP),
    ("G4", A, "g1", Step.INITIAL, "g1", Admission.SKIP),
    ("G4", D, "g1", Step.DELTA, "g1", Admission.SKIP),
    ("G4", P, "g1", Step.DELTA, "g1", Admission.SKIP),
]


@pytest.mark.parametrize(("case", "state", "generation", "step", "step_generation", "verdict"), ADMISSIONS,
                         ids=[a[0] for a in ADMISSIONS])
def test_which_queued_steps_run(case: str, state: SyncState, generation: str | None, step: Step,
                                step_generation: str | None, verdict: Admission) -> None:
    assert admit(state, generation, step, step_generation) is verdict


@given(st.sampled_from(list(SyncState)), st.sampled_from([None, "g1", "g2"]), st.sampled_from(list(Step)),
       st.sampled_from([None, "g1", "g2"]))
def test_a_step_of_another_generation_never_runs(state: SyncState, generation: str | None, step: Step,
                                                 step_generation: str | None) -> None:
    if step_generation is not None and step_generation != generation:
        assert admit(state, generation, step, step_generation) is Admission.DROP
    if admit(state, generation, step, step_generation) is Admission.RUN:
        assert state in (I, A)


def test_a_step_finding_the_lease_held() -> None:
    assert [when_lease_held(s) for s in Step] == [WhenHeld.LEAVE_TO_HOLDER, WhenHeld.ASK_HOLDER, WhenHeld.RETRY]


def test_queued_steps_carry_typed_reasons_and_old_messages_still_parse() -> None:
    from shared.sync.jobs import StepReason, SyncJob

    job = SyncJob.model_validate_json('{"member": "ms|t|o", "kind": "calendar", "step": "delta", "reason": "graph webhook"}')
    assert job.reason is StepReason.GRAPH_WEBHOOK and job.generation is None  # before generations: runs in any
    older = SyncJob.model_validate_json('{"member": "ms|t|o", "kind": "contacts", "step": "delta", "reason": "lifecycle missed"}')
    assert older.reason is StepReason.OTHER
    assert SyncJob.model_validate_json(job.model_dump_json()) == job
