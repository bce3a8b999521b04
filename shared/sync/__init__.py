"""Two-way sync between CRM items and Outlook items (SPEC R3, R4; DESIGN §8).

The pure core lives here: ``plan`` decides, ``guards`` check the plan before any write,
``fingerprint`` and ``merge`` compare and combine content. Nothing in this package's pure
modules does I/O; adapters (Graph, CRM, the link store) and the executor sit around it.

A cycle, for one member and kind::

    changes_crm, changes_outlook = observe()              # adapters: delta pages, deleted list
    result = plan(links, changes_crm, changes_outlook, now=clock(), policy=member.policy)
    check_deletions_are_signalled(result, changes_crm, changes_outlook)
    verdict = check_mass_change(result, links)
    if isinstance(verdict, Proceed):
        execute(verdict.plan)                              # executor: see ``actions``
"""

from shared.sync.actions import (
    Action,
    Adopt,
    Conflict,
    ConflictKind,
    Create,
    Delete,
    FieldPatch,
    ForgetLink,
    Plan,
    RecordConflict,
    RemoteWrite,
    Skip,
    SkipReason,
    Tombstone,
    Update,
)
from shared.sync.changes import DeleteSignal, ItemDeleted, ItemSeen, Observation, SideChanges
from shared.sync.engine import TOMBSTONE_TTL, plan
from shared.sync.fingerprint import DEFAULT_NORMALISATION, IGNORED_FIELDS, Normalisation, fingerprint
from shared.sync.guards import (
    PauseForConfirmation,
    Proceed,
    UnsignalledDeletion,
    Verdict,
    check_deletions_are_signalled,
    check_mass_change,
)
from shared.sync.links import LINK_SCHEMA_VERSION, LinkRow, LinkState, Side, derive_key
from shared.sync.merge import ConflictPolicy, FieldConflict

__all__ = [
    "DEFAULT_NORMALISATION",
    "IGNORED_FIELDS",
    "LINK_SCHEMA_VERSION",
    "TOMBSTONE_TTL",
    "Action",
    "Adopt",
    "Conflict",
    "ConflictKind",
    "ConflictPolicy",
    "Create",
    "Delete",
    "DeleteSignal",
    "FieldConflict",
    "FieldPatch",
    "ForgetLink",
    "ItemDeleted",
    "ItemSeen",
    "LinkRow",
    "LinkState",
    "Normalisation",
    "Observation",
    "PauseForConfirmation",
    "Plan",
    "Proceed",
    "RecordConflict",
    "RemoteWrite",
    "Side",
    "SideChanges",
    "Skip",
    "SkipReason",
    "Tombstone",
    "UnsignalledDeletion",
    "Update",
    "Verdict",
    "check_deletions_are_signalled",
    "check_mass_change",
    "derive_key",
    "fingerprint",
    "plan",
]
