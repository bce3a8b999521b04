"""The plan's vocabulary: actions as frozen data, for the executor to carry out (DESIGN §8).

Actions never run themselves (aesthetics guideline 1). The executor's contract:

- Actions of one pair are consecutive in a plan and must be applied in order; pairs are
  independent, so an executor may batch writes across pairs (Graph ``$batch`` of 20, CRM
  100 records a call, link rows 100 per Table transaction).
- A link row is written only **after** the remote writes of its action succeeded
  (``Create.completed``, ``Update.completed``), except ``Create.pending``, which is
  written *before* the create. A row thus always states something both sides held, and
  a crash anywhere leaves either the old row (the next plan re-merges; see ``merge``)
  or a pending row (the next plan recovers the create).
- Post-write versions are only known after the write: ``Create.completed`` and
  ``Update.completed`` take them and return the finished row.
- A failed remote write leaves that pair's row untouched (set ``last_error`` on the
  existing row) and does not stop other pairs (peers d.9). A 412 (changed since read)
  is such a failure: the next cycle re-observes and re-plans.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import JsonValue

from shared.sync.changes import ItemDeleted
from shared.sync.links import LinkRow, LinkState, Side
from shared.sync.merge import FieldConflict


class SkipReason(enum.StrEnum):
    """Why an observation led to no remote write (shown in the run report, peers d.11)."""

    UNCHANGED = "unchanged"  # version did not move
    ECHO = "echo"  # version moved, content did not: our own write or a no-op edit
    CONVERGED = "converged"  # both sides changed to the same content
    TOMBSTONED = "tombstoned"  # a late echo of a pair deleted less than 30 days ago
    FILTERED = "filtered"  # out of scope (R3.4, R3.6, R4.5, R4.7)
    UNKNOWN_DELETED = "unknown_deleted"  # a deletion of an item we never linked


class ConflictKind(enum.StrEnum):
    SAME_FIELD = "same_field"  # one field changed differently on both sides
    DELETED_AND_CHANGED = "deleted_and_changed"  # deleted on one side, changed on the other


@dataclass(frozen=True)
class Conflict:
    """A conflict the member can see on the settings page (issue 7: "never silent").

    ``conflict_id`` is deterministic, so recording the same conflict twice (a redelivered
    job) is one upsert.
    """

    conflict_id: str
    link_id: str
    crm_id: str | None
    outlook_id: str | None
    kind: ConflictKind
    fields: tuple[FieldConflict, ...]
    deleted_on: Side | None
    detected_at: datetime


@dataclass(frozen=True)
class FieldPatch:
    """Fields to write to one existing item: only those that changed (``None`` clears).

    ``expected_version`` is the version the plan was made against: send it as
    ``If-Match`` (Graph) or compare ``Modified_Time`` (CRM); None means unknown.
    """

    item_id: str
    fields: Mapping[str, JsonValue] = field(hash=False)
    expected_version: str | None


@dataclass(frozen=True)
class Create:
    """Create an item on ``side`` holding ``fields`` and stamped with ``marker``.

    Executor: (1) write ``pending``; (2) if ``recover``, look the item up by ``marker``
    (Outlook: our extended property equals the CRM id; CRM: our Outlook-id field) and, if
    found, write ``fields`` over it; otherwise create it with ``marker`` and, on Graph,
    ``transactionId = transaction_key``; then make sure the item holds ``fields`` (a
    repeated transactionId may return the earlier item); (3) write ``completed(...)``.
    Every step is idempotent, so the action may be repeated after a crash.
    """

    side: Side
    fields: Mapping[str, JsonValue] = field(hash=False)
    marker: str
    transaction_key: str
    pending: LinkRow
    recover: bool
    planned_at: datetime

    def completed(self, item_id: str, version: str) -> LinkRow:
        """The synced row, given the created item's id and version."""
        return self.pending.with_side(
            self.side,
            item_id,
            version,
            state=LinkState.SYNCED,
            synced_at=self.planned_at,
            transaction_key=None,
            pending_since=None,
            last_error=None,
        )


@dataclass(frozen=True)
class Update:
    """Write ``crm`` to the CRM item and/or ``outlook`` to the Outlook item, then the row."""

    crm: FieldPatch | None
    outlook: FieldPatch | None
    link: LinkRow

    def patch(self, side: Side) -> FieldPatch | None:
        return self.crm if side is Side.CRM else self.outlook

    def completed(self, *, crm_version: str | None = None, outlook_version: str | None = None) -> LinkRow:
        """The row to write once every patch succeeded, given each written side's new version.

        Raises:
            ValueError: a version is missing for a side that was patched.
        """
        row = self.link
        for side, version in ((Side.CRM, crm_version), (Side.OUTLOOK, outlook_version)):
            if self.patch(side) is None:
                continue
            if version is None:
                raise ValueError(f"the {side} item was patched: its new version is needed")
            row = row.with_side(side, row.item_id(side), version)
        return row


@dataclass(frozen=True)
class Delete:
    """Delete the item on ``side`` because its partner was deleted (``because``).

    ``item_id`` is None when the item may or may not exist (a pending create whose source
    was deleted): find it by ``marker`` and delete it if found. A 404 counts as done.
    Then write ``link`` (the tombstone).
    """

    side: Side
    item_id: str | None
    marker: str | None
    expected_version: str | None
    because: ItemDeleted
    link: LinkRow


@dataclass(frozen=True)
class Adopt:
    """Link an item found carrying our marker (crash recovery, lost row): write ``link``."""

    side: Side
    item_id: str
    link: LinkRow


@dataclass(frozen=True)
class Tombstone:
    """Mark a pair (or a retired id) gone, without any remote write: write ``link``."""

    because: ItemDeleted
    link: LinkRow


@dataclass(frozen=True)
class ForgetLink:
    """Delete the row of a tombstone older than the retention period."""

    link_id: str


@dataclass(frozen=True)
class RecordConflict:
    """Store ``conflict`` where the member sees it."""

    conflict: Conflict


@dataclass(frozen=True)
class Skip:
    """No remote write for an observed item; write ``link`` if given (refreshed versions)."""

    reason: SkipReason
    side: Side
    item_id: str
    link: LinkRow | None = None
    detail: str | None = None


Action = Create | Update | Delete | Adopt | Tombstone | ForgetLink | RecordConflict | Skip
RemoteWrite = Create | Update | Delete


@dataclass(frozen=True)
class Plan:
    """The ordered actions of one sync cycle for one member and kind."""

    actions: tuple[Action, ...] = ()

    @property
    def remote_writes(self) -> tuple[RemoteWrite, ...]:
        return tuple(action for action in self.actions if isinstance(action, Create | Update | Delete))

    @property
    def conflicts(self) -> tuple[Conflict, ...]:
        return tuple(action.conflict for action in self.actions if isinstance(action, RecordConflict))

    def deletions(self, side: Side) -> tuple[Delete, ...]:
        """The deletes this plan would make on ``side``."""
        return tuple(action for action in self.actions if isinstance(action, Delete) and action.side is side)
