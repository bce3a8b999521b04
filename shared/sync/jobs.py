"""Sync work on the queues: one message is one step of one member's sync (a page of the
initial sync, one delta cycle, or one page of a re-sync after a mapping change). Messages may arrive twice: every step is idempotent.

Two queues, so that bulk work never delays a change on its way (issue 21): ``sync-jobs`` for
the steps a change is waiting on (webhooks, reruns, the sweep), ``sync-bulk`` for the long ones
(initial syncs, re-syncs after a mapping change, the first full round). ``queue_for`` is the one
place that decides; ``SyncJobQueues`` sends by it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import timedelta
from typing import Literal, Protocol

from pydantic import BaseModel, Field, field_validator

from shared.observability import current_trace_parent, valid_trace_parent
from shared.sync.profiles import SyncKind, SyncProfile

Step = Literal["initial", "delta", "remap"]


class StepReason(enum.StrEnum):
    """What asked for a step (the logs say it; a few decide what the step reads)."""

    ENABLE = "enable"
    RESUMED = "resumed"  # the member's Resume after a failure (lifecycle L20)
    SELECTED = "selected"  # the initial sync's selection pass is done
    CONTINUE = "continue"  # the next page or round of a step that stopped on time
    INITIAL_DONE = "initial done"
    RERUN = "rerun"  # a webhook's step, dropped for the lease's holder, asked for one more round
    SWEEP = "sweep"
    STALLED = "stalled"  # an initial sync with no progress for 5 minutes
    GRAPH_WEBHOOK = "graph webhook"
    CRM_WEBHOOK = "crm webhook"
    HELD_WEBHOOK = "webhook while the lease was held"  # a webhook's mark, queued by the lease's holder as it ended
    LIFECYCLE = "lifecycle notification"
    MASS_CHANGE_ANSWERED = "mass change answered"
    MAPPING_CHANGED = "mapping changed"
    AUTHORIZATION_BACK = "authorization back"
    RETRY = "retry"  # a round whose writes failed for a passing reason (a 5xx, a timeout): again after a pause
    SUBSCRIBE_AGAIN = "subscribe again"  # Graph could not validate our webhook endpoint when two-way sync started
    OTHER = "other"  # a message queued by an older version, with a reason this one does not know

# The queue of the steps a change is waiting on; it also still runs any step queued there by an
# earlier version (an initial step during a rolling deploy): both triggers run every step.
SYNC_QUEUE = "sync-jobs"
SYNC_BULK_QUEUE = "sync-bulk"
SYNC_QUEUES = (SYNC_QUEUE, SYNC_BULK_QUEUE)


class SyncJob(BaseModel):
    version: int = 1
    member: str  # "ms|tenant|object", the member key
    kind: SyncKind
    step: Step
    reason: StepReason = StepReason.OTHER
    # A remap (the member changed the contacts mapping): the pairs to re-sync with their new
    # direction (None: removed), and the CRM listing cursor (JSON) of the next page.
    pairs: dict[str, str | None] = {}
    cursor: str | None = None
    retry: int = 0  # a remap page tried again after writes that failed for a passing reason (``retries``)
    # The queue message this step was first delivered as, when it comes back deferred because
    # its own first delivery still held the lease (crashed, or late): the step keeps its name.
    holder: str | None = None
    # The Enable this step belongs to (``SyncProfile.generation``): a step of another one is
    # dropped (a late step of a disabled sync must not act on the next). None: queued before
    # generations existed, accepted by any.
    generation: str | None = None
    # The queuing invocation's W3C traceparent (a webhook's, a step's): the step continues its
    # operation (``shared.observability.invocation``). Set when the job is made inside one.
    traceparent: str | None = Field(default_factory=current_trace_parent)

    @field_validator("traceparent", mode="before")
    @classmethod
    def _valid_trace(cls, value: object) -> str | None:
        return valid_trace_parent(value)  # anything else is no trace: never a reason to drop the step

    @field_validator("reason", mode="before")
    @classmethod
    def _known_reason(cls, value: object) -> object:
        return value if value in StepReason._value2member_map_ else StepReason.OTHER

    @classmethod
    def of(cls, profile: SyncProfile, step: Step, reason: StepReason) -> SyncJob:
        """A step of the member's sync as this profile stands (its generation included)."""
        return cls(member=profile.partition_key, kind=SyncKind(profile.row_key), step=step, reason=reason,
                   generation=profile.generation)


# The first round of two-way sync reads the whole container back (Graph's delta from nothing,
# every link row): the initial sync's last bulk step, not a change anyone waits for.
BULK_DELTA_REASONS = frozenset({StepReason.INITIAL_DONE})


def queue_for(job: SyncJob) -> str:
    """The queue that carries a step:

    | step    | reason                      | queue       | why                                   |
    |---------|-----------------------------|-------------|---------------------------------------|
    | initial | any                         | `sync-bulk` | pages of a whole mailbox or module    |
    | remap   | any                         | `sync-bulk` | a re-sync of every contact            |
    | delta   | initial done                | `sync-bulk` | the first full round (reads all back) |
    | delta   | any other (webhooks, rerun, | `sync-jobs` | a change is on its way: latency-bound |
    |         | sweep, continue, resumed..) |             |                                       |

    The sweep's rounds stay with the webhooks': short, and the safety net of a lost webhook."""
    if job.step in ("initial", "remap") or job.reason in BULK_DELTA_REASONS:
        return SYNC_BULK_QUEUE
    return SYNC_QUEUE


class JobSender(Protocol):
    """What sends sync steps (``shared.storage.JobQueue``, or its in-memory fake)."""

    def send(self, message: SyncJob, *, delay: timedelta | None = None) -> str: ...

    def has_waiting(self) -> bool: ...


class SyncJobQueues:
    """The sync's queues behind one ``send``: each step goes where ``queue_for`` says."""

    def __init__(self, queues: Mapping[str, JobSender]) -> None:
        missing = set(SYNC_QUEUES) - set(queues)
        if missing:
            raise ValueError(f"no queue for {', '.join(sorted(missing))}")
        self._queues = dict(queues)

    def send(self, job: SyncJob, *, delay: timedelta | None = None) -> str:
        return self._queues[queue_for(job)].send(job, delay=delay)

    def bulk_waiting(self) -> bool:
        """Whether bulk steps wait for a worker (a message on ``sync-bulk`` nobody has taken
        yet, as of a few seconds ago): a long step yields its place only then."""
        return self._queues[SYNC_BULK_QUEUE].has_waiting()
