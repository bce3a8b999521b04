"""Sync work on the queue: one message is one step of one member's sync (a page of the
initial sync, or one delta cycle). Messages may arrive twice: every step is idempotent."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from shared.sync.profiles import SyncKind

SYNC_QUEUE = "sync-jobs"


class SyncJob(BaseModel):
    version: int = 1
    member: str  # "ms|tenant|object", the member key
    kind: SyncKind
    step: Literal["initial", "delta"]
    reason: str = ""  # what asked for it: enable, webhook, sweep, continue
