"""The decision core of the two-way sync: ``plan`` (SPEC R3.3, R3.9, R4.4; DESIGN §8; issue 7).

``plan`` takes the member's link rows for one kind, what each side reported since the
last sync, the member's conflict policy and the current time, and returns the actions
that make both sides agree. It does no I/O and reads no clock: the same inputs always
give the same plan, so a redelivered job plans the same writes, and the executor's
idempotent steps make repeating them harmless.

Rules (peers §(d)):

- **Change** = version moved **and** fingerprint moved (d.2). A moved version with an
  unchanged fingerprint is an echo of our own write (or an edit of unmapped fields): the
  stored versions are refreshed and nothing is written (d.7).
- **Deletion only on an explicit signal** (d.6): an ``ItemDeleted`` from the adapter.
  Nothing else can produce a ``Delete``; ``guards.check_deletions_are_signalled`` checks.
- **Deleted on one side, changed on the other: the change wins** (d.3, "prefer keeping
  data", as vdirsyncer does). The deleted side is re-created from the changed item, the
  deleted id is retired in a tombstone, and a ``deleted_and_changed`` conflict is
  recorded. A delete made against stale data thus never destroys an edit, and neither
  side is left without the item the other holds (R3.3, R4.4: "updates and deletions
  propagate both ways").
- **Both changed**: three-way merge field by field; the same field changed differently
  on both sides goes to the member's policy and is recorded as a conflict (R3.9).
- **No guessing**: items are paired by id, or by our own marker; two items created on
  both sides are two items (d.5).
- **Write-ahead creates**: every ``Create`` carries the pending row to write first; a
  pending row found on the next cycle is either adopted (the item carrying our marker
  showed up) or its create is repeated with ``recover`` set, so the executor looks the
  item up by marker (and Graph by ``transactionId``) before creating.
- **Tombstones** stay ``TOMBSTONE_TTL`` (30 days): observations of a tombstoned pair
  are late echoes and are skipped, so they cannot resurrect it (d.6).

The case table. ``C`` is the CRM item, ``O`` the Outlook item, as reported this cycle:
``-`` not reported, ``=`` reported with an unmoved version (for the CRM, whose version
counts whole seconds, also an unmoved fingerprint), ``E`` echo (version moved,
fingerprint not), ``M`` changed, ``D`` deleted (explicit signal), ``N`` reported and
unknown to every link row. Cases are symmetric unless the row says otherwise.

=====  ====================  ======  ======  =============================================
case   link state            C       O       decision
=====  ====================  ======  ======  =============================================
N1     none                  N       -       Create on Outlook, pending row first (R3.3, R4.4)
N2     none                  -       N       Create on CRM, pending row first
N3     none                  N       N       two unrelated items: two creates, no matching
N4     none                  D       -       Skip unknown_deleted (nothing linked to delete)
N5     none                  any     N+mark  O's marker names C, no row knows C: Adopt, O's
                                             content as baseline; then S-cases with C
N6     none                  -       N+mark  marker names an item linked elsewhere or a
                                             tombstone (a copy, a restore): O is new, N2
N7     none or synced        excl.   any     Skip filtered, nothing written (R3.4-6, R4.5-7)
S1     synced                -/=     -/=     nothing (Skip unchanged per reported item)
S2     synced                E       -/=/E   Skip echo, refresh stored versions (d.7)
S3     synced                M       -/=/E   Update O with the fields C changed
S4     synced                -/=/E   M       Update C with the fields O changed
S5     synced                M       M       different fields: merge, each side gets the other's
S6     synced                M       M       same field, different values: policy picks the
                                             winner, the loser is overwritten, Conflict recorded
                                             (R3.9: "resolved by a stated rule, never lost")
S7     synced                M       M       same values: Skip converged, refresh the row
S8     synced                D       -/=/E   Delete O (If-Match its version), tombstone
S9     synced                -/=/E   D       Delete C, tombstone
S10    synced                D       M       change wins: re-create C from O, retire C's id
                                             in a tombstone, Conflict deleted_and_changed
S11    synced                M       D       change wins: re-create O from C, likewise
S12    synced                D       D       Tombstone, no remote write
S8r    synced                D       -/=/E   with ``restore_deletions`` (the member kept a
S9r    synced                -/=/E   D       paused mass change): re-create the deleted item
                                             from its partner (or the row), retire its id
P1     pending on Outlook    not D   -       Create again with ``recover`` (look up by marker,
                                             same transaction key), latest C content
P2     pending on Outlook    D       -       Delete by marker if it exists, tombstone
P3     pending on Outlook    any     N+mark  Adopt O (our create did happen) as baseline,
                                             then S-cases between C (or the row) and O
P4-6   pending on CRM        mirror images of P1-P3
T1     tombstone             any     any     Skip tombstoned (late echo, cannot resurrect)
T2     tombstone > 30 days   -       -       ForgetLink; later reports count as new
=====  ====================  ======  ======  =============================================
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

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
    Skip,
    SkipReason,
    Tombstone,
    Update,
)
from shared.sync.changes import ItemDeleted, ItemSeen, Observation, SideChanges
from shared.sync.fingerprint import DEFAULT_NORMALISATION, Normalisation
from shared.sync.links import LinkRow, LinkState, Side, derive_key
from shared.sync.merge import ConflictPolicy, FieldConflict, Merge, merge_fields, pick_winner
from shared.sync.pairing import Pair, pair_up

TOMBSTONE_TTL = timedelta(days=30)


class _Status(enum.Enum):
    """What one side did to a linked pair since the last sync (the table's columns)."""

    QUIET = "-"
    UNCHANGED = "="
    ECHO = "E"
    CHANGED = "M"
    DELETED = "D"


@dataclass(frozen=True)
class _Context:
    policy: ConflictPolicy
    now: datetime
    normalisation: Normalisation
    restore_deletions: bool = False


def plan(
    links: Iterable[LinkRow],
    crm: SideChanges,
    outlook: SideChanges,
    *,
    now: datetime,
    policy: ConflictPolicy = ConflictPolicy.MOST_RECENT,
    normalisation: Normalisation = DEFAULT_NORMALISATION,
    tombstone_ttl: timedelta = TOMBSTONE_TTL,
    restore_deletions: bool = False,
) -> Plan:
    """The actions that bring one member's CRM and Outlook items of one kind into agreement.

    ``links`` are all the member's link rows for the kind; ``crm`` and ``outlook`` what
    each side reported since the last sync; ``now`` (timezone-aware) stamps tombstones
    and expires them after ``tombstone_ttl``. See the module docstring for every case.
    Serves SPEC R3.3, R3.9 and R4.4.

    ``restore_deletions``: the member answered a paused mass change with "keep them": each
    item deleted on one side is created again there from its surviving partner (or, when
    the partner did not change, from the row's last synced content) instead of deleting
    the partner.

    Raises:
        ValueError: ``now`` is naive.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    context = _Context(policy, now, normalisation, restore_deletions)
    kept, expired = _split_expired(links, now - tombstone_ttl)
    actions: list[Action] = [ForgetLink(row.link_id) for row in expired]
    for pair in pair_up(kept, crm, outlook):
        actions.extend(_decide(pair, context))
    return Plan(tuple(actions))


def _split_expired(links: Iterable[LinkRow], cutoff: datetime) -> tuple[list[LinkRow], list[LinkRow]]:
    kept: list[LinkRow] = []
    expired: list[LinkRow] = []
    for row in links:
        stale = (
            row.state is LinkState.TOMBSTONE and row.tombstoned_at is not None and row.tombstoned_at <= cutoff
        )
        (expired if stale else kept).append(row)
    return kept, expired


def _decide(pair: Pair, context: _Context) -> list[Action]:
    link = pair.link
    if link is not None and link.state is LinkState.TOMBSTONE:
        return _skip_each(pair, SkipReason.TOMBSTONED)  # T1
    if any(isinstance(obs, ItemSeen) and obs.excluded for _, obs in pair.observations()):
        return _skip_each(pair, SkipReason.FILTERED)  # N7
    if link is None:
        if pair.claimed_by is not None:
            return _decide_adoption(pair, pair.claimed_by, context)  # N5
        return _decide_unlinked(pair, context)  # N1-N4, N6
    if link.state.creating_on is not None:
        return _decide_pending(pair, link, link.state.creating_on, context)  # P1-P6
    return _decide_synced(link, pair.crm, pair.outlook, context)  # S1-S12


def _skip_each(pair: Pair, reason: SkipReason) -> list[Action]:
    return [
        Skip(reason, side, obs.item_id, detail=obs.excluded if isinstance(obs, ItemSeen) else None)
        for side, obs in pair.observations()
    ]


def _decide_unlinked(pair: Pair, context: _Context) -> list[Action]:
    [(side, obs)] = pair.observations()
    if isinstance(obs, ItemDeleted):
        return [Skip(SkipReason.UNKNOWN_DELETED, side, obs.item_id)]  # N4: never guess a partner
    return [_create_from(obs, side, context)]


def _create_from(
    source: ItemSeen,
    source_side: Side,
    context: _Context,
    *,
    link_id: str | None = None,
    transaction_key: str | None = None,
    recover: bool = False,
    pending_since: datetime | None = None,
) -> Create:
    """Create a copy of ``source`` on the other side, with its write-ahead pending row."""
    target = source_side.other
    # Keyed on the source version: a fresh create of new content gets a fresh Graph
    # transactionId, while the same plan made twice gets the same one.
    key = transaction_key or derive_key("create", target, source.item_id, source.version)
    pending = LinkRow(
        link_id=link_id or key,
        state=LinkState.pending_create_on(target),
        fields=dict(source.fields),
        content_hash=context.normalisation.fingerprint(source.fields),
        transaction_key=key,
        pending_since=pending_since or context.now,
        **{f"{source_side}_id": source.item_id, f"{source_side}_version": source.version},
    )
    return Create(target, source.fields, source.item_id, key, pending, recover, context.now)


def _decide_pending(pair: Pair, row: LinkRow, target: Side, context: _Context) -> list[Action]:
    source_side = target.other
    found, source = pair.observed(target), pair.observed(source_side)
    current = source if source is not None else _from_row(row, source_side, context)
    if isinstance(found, ItemSeen):
        return _adopt(row.link_id, found, target, current, context)  # P3: the create happened
    if isinstance(current, ItemDeleted):  # P2: source gone; its copy may exist
        tombstone = _tombstone(row, context)
        return [Delete(target, None, row.item_id(source_side), None, current, tombstone)]
    # P1: the create may or may not have happened: repeat it idempotently.
    return [
        _create_from(
            current,
            source_side,
            context,
            link_id=row.link_id,
            transaction_key=row.transaction_key,
            recover=True,
            pending_since=row.pending_since,
        )
    ]


def _from_row(row: LinkRow, side: Side, context: _Context) -> ItemSeen:
    """The side's item as the row last knew it: what a pending create was writing."""
    return ItemSeen(row.item_id(side) or "", row.version(side) or "", row.fields, context.now)


def _decide_adoption(pair: Pair, found_side: Side, context: _Context) -> list[Action]:
    found = pair.observed(found_side)
    assert isinstance(found, ItemSeen) and found.partner_id is not None  # pairing guarantees it
    partner = pair.observed(found_side.other)
    return _adopt(pair.key, found, found_side, partner, context, partner_id=found.partner_id)


def _adopt(
    link_id: str,
    found: ItemSeen,
    found_side: Side,
    partner: Observation | None,
    context: _Context,
    *,
    partner_id: str | None = None,
) -> list[Action]:
    """Link ``found`` (an item carrying our marker) to its partner, then decide as synced.

    The found item is taken as the baseline and the partner's version as unknown: the
    partner (the source of the copy) is then compared with the copy, and if they differ
    the source wins, which also repairs a copy created from older content before a crash.
    """
    other = found_side.other
    found_hash = context.normalisation.fingerprint(found.fields)
    partner_version = None
    if isinstance(partner, ItemSeen) and context.normalisation.fingerprint(partner.fields) == found_hash:
        partner_version, partner_id, partner = partner.version, partner.item_id, None  # alike: linked as is
    row = LinkRow(
        link_id=link_id,
        state=LinkState.SYNCED,
        fields=dict(found.fields),
        content_hash=found_hash,
        synced_at=context.now,
        **{
            f"{found_side}_id": found.item_id,
            f"{found_side}_version": found.version,
            f"{other}_id": partner.item_id if partner is not None else partner_id,
            f"{other}_version": partner_version,
        },
    )
    observed = {found_side: None, other: partner}
    return [
        Adopt(found_side, found.item_id, row),
        *_decide_synced(row, observed[Side.CRM], observed[Side.OUTLOOK], context),
    ]


def _status(row: LinkRow, side: Side, obs: Observation | None, context: _Context) -> _Status:
    if obs is None:
        return _Status.QUIET
    if isinstance(obs, ItemDeleted):
        return _Status.DELETED
    unmoved = obs.version == row.version(side)
    if unmoved and side not in _WHOLE_SECOND_VERSIONS:
        return _Status.UNCHANGED
    if context.normalisation.fingerprint(obs.fields) == row.content_hash:
        return _Status.UNCHANGED if unmoved else _Status.ECHO
    return _Status.CHANGED


# The CRM's version is its Modified_Time, in whole seconds: an edit made within the second
# of the previous write (ours, or the record's creation) keeps the version, so there an
# unmoved version with moved content is a change. Graph's changeKey moves on every write.
_WHOLE_SECOND_VERSIONS = frozenset({Side.CRM})


def _decide_synced(
    row: LinkRow, crm: Observation | None, outlook: Observation | None, context: _Context
) -> list[Action]:
    obs = {Side.CRM: crm, Side.OUTLOOK: outlook}
    status = {side: _status(row, side, obs[side], context) for side in Side}
    if status[Side.CRM] is status[Side.OUTLOOK] is _Status.DELETED:
        assert isinstance(crm, ItemDeleted)
        return [Tombstone(crm, _tombstone(row, context))]  # S12
    for side in Side:
        gone = obs[side]
        if isinstance(gone, ItemDeleted):
            survivor = obs[side.other]
            if isinstance(survivor, ItemSeen) and status[side.other] is _Status.CHANGED:
                return _recreate(row, gone, side, survivor, context)  # S10, S11
            if context.restore_deletions:  # S8r, S9r: the member kept a mass change's items
                kept = survivor if isinstance(survivor, ItemSeen) else _from_row(row, side.other, context)
                return _recreate(row, gone, side, kept, context, record_conflict=False)
            return [_delete_partner(row, gone, side, survivor, context)]  # S8, S9
    if _Status.CHANGED in status.values():
        return _update(row, obs, status, context)  # S3-S7
    return _skip_quiet(row, obs, status, context)  # S1, S2


def _tombstone(row: LinkRow, context: _Context) -> LinkRow:
    return row.replace(
        state=LinkState.TOMBSTONE,
        tombstoned_at=context.now,
        fields={},
        content_hash=None,
        transaction_key=None,
    )


def _delete_partner(
    row: LinkRow, gone: ItemDeleted, gone_side: Side, survivor: Observation | None, context: _Context
) -> Delete:
    target = gone_side.other
    expected = survivor.version if isinstance(survivor, ItemSeen) else row.version(target)
    return Delete(target, row.item_id(target), None, expected, gone, _tombstone(row, context))


def _recreate(
    row: LinkRow, gone: ItemDeleted, gone_side: Side, survivor: ItemSeen, context: _Context,
    *, record_conflict: bool = True,
) -> list[Action]:
    """Deleted on one side, changed on the other: keep the change (see module docstring)."""
    create = _create_from(survivor, gone_side.other, context, link_id=row.link_id)
    retired = LinkRow(
        link_id=derive_key("retired", gone_side, gone.item_id),
        state=LinkState.TOMBSTONE,
        tombstoned_at=context.now,
        **{f"{gone_side}_id": gone.item_id},
    )
    # The pending row (same link id) takes over the survivor before the retired id is
    # tombstoned, so a crash in between leaves the survivor linked, never orphaned.
    if not record_conflict:
        return [create, Tombstone(gone, retired)]
    conflict = _conflict(row, ConflictKind.DELETED_AND_CHANGED, (), context, deleted_on=gone_side)
    return [create, Tombstone(gone, retired), RecordConflict(conflict)]


def _versions(row: LinkRow, obs: dict[Side, Observation | None]) -> dict[Side, str | None]:
    return {
        side: found.version if isinstance(found := obs[side], ItemSeen) else row.version(side)
        for side in Side
    }


def _update(
    row: LinkRow, obs: dict[Side, Observation | None], status: dict[Side, _Status], context: _Context
) -> list[Action]:
    changed = {
        side: found
        for side in Side
        if isinstance(found := obs[side], ItemSeen) and status[side] is _Status.CHANGED
    }
    merged = _merge(row, changed, context)
    versions = _versions(row, obs)
    link = row.replace(
        fields=merged.fields,
        content_hash=context.normalisation.fingerprint(merged.fields),
        crm_version=versions[Side.CRM],
        outlook_version=versions[Side.OUTLOOK],
        synced_at=context.now,
        last_error=None,
    )
    if not merged.to_crm and not merged.to_outlook:
        return [Skip(SkipReason.CONVERGED, side, found.item_id, link=link) for side, found in changed.items()]
    patches = {
        side: _patch(row, side, patch, versions)
        for side, patch in ((Side.CRM, merged.to_crm), (Side.OUTLOOK, merged.to_outlook))
    }
    actions: list[Action] = [Update(patches[Side.CRM], patches[Side.OUTLOOK], link)]
    if merged.conflicts:
        actions.append(
            RecordConflict(_conflict(row, ConflictKind.SAME_FIELD, merged.conflicts, context, obs=obs))
        )
    return actions


def _merge(row: LinkRow, changed: dict[Side, ItemSeen], context: _Context) -> Merge:
    """Merge the changed sides against the row; an unchanged side holds the row's fields."""
    content = {side: changed[side].fields if side in changed else row.fields for side in Side}
    if len(changed) == 2:
        winner = pick_winner(context.policy, changed[Side.CRM].modified_at, changed[Side.OUTLOOK].modified_at)
    else:
        [winner] = changed
    return merge_fields(
        row.fields,
        content[Side.CRM],
        content[Side.OUTLOOK],
        winner=winner,
        normalisation=context.normalisation,
    )


def _patch(
    row: LinkRow, side: Side, fields: dict[str, object], versions: dict[Side, str | None]
) -> FieldPatch | None:
    item_id = row.item_id(side)
    if not fields or item_id is None:
        return None
    return FieldPatch(item_id, fields, versions[side])  # type: ignore[arg-type]


def _skip_quiet(
    row: LinkRow, obs: dict[Side, Observation | None], status: dict[Side, _Status], context: _Context
) -> list[Action]:
    versions = _versions(row, obs)
    refreshed = row.replace(crm_version=versions[Side.CRM], outlook_version=versions[Side.OUTLOOK])
    actions: list[Action] = []
    for side in Side:
        found = obs[side]
        if found is None:
            continue
        if status[side] is _Status.ECHO:
            actions.append(Skip(SkipReason.ECHO, side, found.item_id, link=refreshed))
        else:
            actions.append(Skip(SkipReason.UNCHANGED, side, found.item_id))
    return actions


def _conflict(
    row: LinkRow,
    kind: ConflictKind,
    fields: tuple[FieldConflict, ...],
    context: _Context,
    *,
    deleted_on: Side | None = None,
    obs: dict[Side, Observation | None] | None = None,
) -> Conflict:
    versions = _versions(row, obs or {Side.CRM: None, Side.OUTLOOK: None})
    conflict_id = derive_key(
        "conflict", row.link_id, kind, versions[Side.CRM] or "", versions[Side.OUTLOOK] or ""
    )
    return Conflict(
        conflict_id, row.link_id, row.crm_id, row.outlook_id, kind, fields, deleted_on, context.now
    )
