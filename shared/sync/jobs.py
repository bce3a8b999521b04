"""Sync work on the queue: one message is one step of one member's sync (a page of the
initial sync, one delta cycle, or one page of a re-sync after a mapping change). Messages may arrive twice: every step is idempotent."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from shared.sync.profiles import SyncKind, SyncProfile

Step = Literal["initial", "delta", "remap"]

SYNC_QUEUE = "sync-jobs"


class SyncJob(BaseModel):
    version: int = 1
    member: str  # "ms|tenant|object", the member key
    kind: SyncKind
    step: Step
    reason: str = ""  # what asked for it: enable, webhook, sweep, continue
    # A remap (the member changed the contacts mapping): the pairs to re-sync with their new
    # direction (None: removed), and the CRM listing cursor (JSON) of the next page.
    pairs: dict[str, str | None] = {}
    cursor: str | None = None
    # The queue message this step was first delivered as, when it comes back deferred because
    # its own first delivery still held the lease (crashed, or late): the step keeps its name.
    holder: str | None = None
    # The Enable this step belongs to (``SyncProfile.generation``): a step of another one is
    # dropped (a late step of a disabled sync must not act on the next). None: queued before
    # generations existed, accepted by any.
    generation: str | None = None

    @classmethod
    def of(cls, profile: SyncProfile, step: Step, reason: str) -> SyncJob:
        """A step of the member's sync as this profile stands (its generation included)."""
        return cls(member=profile.partition_key, kind=SyncKind(profile.row_key), step=step, reason=reason,
                   generation=profile.generation)
