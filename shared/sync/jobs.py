"""Sync work on the queue: one message is one step of one member's sync (a page of the
initial sync, one delta cycle, or one page of a re-sync after a mapping change). Messages may arrive twice: every step is idempotent."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from shared.sync.profiles import SyncKind

SYNC_QUEUE = "sync-jobs"


class SyncJob(BaseModel):
    version: int = 1
    member: str  # "ms|tenant|object", the member key
    kind: SyncKind
    step: Literal["initial", "delta", "remap"]
    reason: str = ""  # what asked for it: enable, webhook, sweep, continue
    # A remap (the member changed the contacts mapping): the pairs to re-sync with their new
    # direction (None: removed), and the CRM listing cursor (JSON) of the next page.
    pairs: dict[str, str | None] = {}
    cursor: str | None = None
    # The queue message this step was first delivered as, when it comes back deferred because
    # its own first delivery still held the lease (crashed, or late): the step keeps its name.
    holder: str | None = None
