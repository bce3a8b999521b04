"""One plan-and-execute cycle of a member's sync (DESIGN §8): the link rows the changes touch,
``engine.plan`` (pure), the guards, the executor, the ledger's notes; and the profile's
counters after it. Every kind of step (initial page, delta round, remap page) goes through it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from shared.graph.errors import GraphError
from shared.sync import ConflictPolicy, ItemSeen, SideChanges, plan
from shared.sync.executor import ExecutionReport, Executor
from shared.sync.guards import PauseForConfirmation, check_deletions_are_signalled, check_mass_change
from shared.sync.ledger import Note, Why, why_excluded
from shared.sync.ledger_store import SyncLedger
from shared.sync.lifecycle import Answer, Event, decide
from shared.sync.links import LinkRow, Side
from shared.sync.ports import ConflictLog, LinkRows
from shared.sync.profiles import SyncProfile, SyncState
from shared.sync.step_context import StepContext

REREADS = 2  # a pair changed between read and write is read again, at most this many times
# Outlook items created since the last delta read, read one by one by the next round unless it
# lists them; past this many, the next round is a full one (it reads what it does not list).
MAX_UNCONFIRMED = 100


class Cycle:
    def __init__(
        self, links: LinkRows, conflicts: ConflictLog, ledger: SyncLedger | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.links = links
        self.conflicts = conflicts
        self.ledger = ledger
        self._now = clock

    def run(
        self, profile: SyncProfile, ctx: StepContext, crm: SideChanges, outlook: SideChanges,
        every: list[LinkRow] | None = None, notes: list[Note] | None = None, read_at: datetime | None = None,
        links: LinkRows | None = None, full: bool = False,
    ) -> ExecutionReport | PauseForConfirmation:
        """``read_at``: when the changes were read; updates are then conditional on the items
        being unchanged since, and a pair changed meanwhile is read again and planned anew.
        ``links``: where the executor writes the rows (an initial page's are committed by the
        initial sync, with its progress). ``full``: a full round (it lists every Outlook item):
        the markers of those no row knows are read (``_with_outlook_markers``)."""
        partition = profile.links_partition
        crm_ids = ids(crm) | {s.partner_id for s in outlook.seen if s.partner_id}
        outlook_ids = ids(outlook) | {s.partner_id for s in crm.seen if s.partner_id}
        known = {row.link_id: row for row in self.links.load(partition, crm_ids=crm_ids, outlook_ids=outlook_ids, every=every)}
        crm = self._without_left_out(profile, crm, known)
        outlook = self._with_outlook_markers(profile, ctx, known, outlook, full=full)
        result = plan(
            known.values(), crm, outlook, now=self._now(), policy=ConflictPolicy(profile.conflict_policy),
            normalisation=ctx.rules.normalisation, restore_deletions=profile.mass_change_answer is Answer.KEEP,
        )
        check_deletions_are_signalled(result, crm, outlook)
        verdict = check_mass_change(result, list(known.values()), synced_total=profile.synced_items)
        if isinstance(verdict, PauseForConfirmation) and decide(profile.life, Event.MASS_CHANGE_FOUND).life.state is SyncState.PAUSED:
            return verdict  # L11 (not L12, L13: the initial sync, or the member answered "delete")
        ctx.check_lease()  # a step taken over by another writes nothing beside it
        report = self._executor(profile, ctx, read_at, links).apply(result, known)
        for attempt in range(1, REREADS + 1):
            if not report.changed_meanwhile or read_at is None:
                break
            rows = {i: known[i] for i in report.changed_meanwhile if i in known}
            read_at = self._now()
            crm_again, outlook_again = self._read_again(profile, ctx, list(rows.values()))
            again = plan(rows.values(), crm_again, outlook_again, now=read_at, policy=ConflictPolicy(profile.conflict_policy),
                         normalisation=ctx.rules.normalisation, restore_deletions=profile.mass_change_answer is Answer.KEEP)
            # The last reading is written as it is: an item edited again within those moments must
            # not stall its pair (the next round would not list it again).
            conditional = read_at if attempt < REREADS else None
            ctx.check_lease()
            report.add(self._executor(profile, ctx, conditional, links).apply(again, rows))
        if self.ledger is not None:  # the exceptions the sync ledger keeps (shared.sync.ledger)
            left_out = [_excluded_note(side, s) for side, changes in ((Side.CRM, crm), (Side.OUTLOOK, outlook))
                        for s in changes.seen if s.excluded]
            self.ledger.note(profile.history_partition, [*(notes or []), *left_out, *report.notes])
        return report

    def _without_left_out(self, profile: SyncProfile, crm: SideChanges, known: dict[str, LinkRow]) -> SideChanges:
        """Two-way sync reads the CRM's changes since a second before its watermark, so its
        first round lists records the initial sync's selection saw and left out over the cap
        (R3.5, R4.6): they stay out until they change after that selection."""
        if self.ledger is None or profile.state is not SyncState.ACTIVE:
            return crm
        linked = {row.crm_id for row in known.values()}
        unknown = [s for s in crm.seen if s.partner_id is None and s.item_id not in linked]
        if not unknown:
            return crm
        notes = self.ledger.about(profile.history_partition, Side.CRM, [s.item_id for s in unknown])
        left_out = {s.item_id for s in unknown
                    if s.item_id in notes and notes[s.item_id].why is Why.OVER_CAP and s.modified_at < notes[s.item_id].at}
        return replace(crm, seen=tuple(s for s in crm.seen if s.item_id not in left_out)) if left_out else crm

    def _executor(self, profile: SyncProfile, ctx: StepContext, read_at: datetime | None, links: LinkRows | None = None) -> Executor:
        return Executor(
            ctx.rules, ctx.outlook, ctx.records, links or self.links, self.conflicts, partition=profile.links_partition,
            container_id=profile.container_id or "", owner_id=ctx.owner_id, clock=self._now,
            history_partition=profile.history_partition, read_at=read_at, announce=ctx.announce_crm_ids,
        )

    def _read_again(self, profile: SyncProfile, ctx: StepContext, rows: list[LinkRow]) -> tuple[SideChanges, SideChanges]:
        """Both items of each pair, as they are now (a series with its exceptions)."""
        container = profile.container_id or ""
        crm_ids = [row.crm_id for row in rows if row.crm_id]
        records = ctx.records.by_ids(ctx.rules.crm_module, crm_ids, ctx.rules.crm_fields) if crm_ids else {}  # type: ignore[arg-type]
        series = [row.outlook_id for row in rows if row.outlook_id and ctx.rules.is_series(row.fields)]
        single = [row.outlook_id for row in rows if row.outlook_id and not ctx.rules.is_series(row.fields)]
        outlook_seen, _ = ctx.outlook.read_series(container, series) if series else ([], [])
        items = ctx.outlook.get_items(container, single) if single else []
        outlook_seen += [ctx.outlook.seen(item) for item in items if not isinstance(item, GraphError)]
        crm_seen = [ctx.rules.crm_to_seen(records[i]) for i in crm_ids if i in records]
        return SideChanges(seen=tuple(crm_seen)), SideChanges(seen=tuple(outlook_seen))

    def _with_outlook_markers(
        self, profile: SyncProfile, ctx: StepContext, known: dict[str, LinkRow], outlook: SideChanges, *, full: bool = False,
    ) -> SideChanges:
        """Graph's delta never returns our marker (no ``$expand`` there). While a create
        towards Outlook is pending (a step stopped between its creates and its link rows), an
        Outlook item no link knows may be that create's result: its marker is read, so the
        engine adopts it (P3) instead of copying it back into the CRM as a new item. A full
        round (the first after the initial sync, one after a lapsed lease or an expired delta)
        reads them too: it is the recovery round, and an item of ours whose row is missing
        (an initial page whose rows never landed) is then adopted (N5), not copied back."""
        if not full and not any(row.state.creating_on is Side.OUTLOOK for row in known.values()):
            return outlook
        linked = {row.outlook_id for row in known.values() if row.outlook_id}
        unknown = [s.item_id for s in outlook.seen if s.partner_id is None and s.item_id not in linked]
        if not unknown:
            return outlook
        read = ctx.outlook.get_items(profile.container_id or "", unknown)
        marked = {
            seen.item_id: seen
            for seen in (ctx.outlook.seen(item) for item in read if not isinstance(item, GraphError))
            if seen.partner_id
        }
        return replace(outlook, seen=tuple(marked.get(s.item_id, s) for s in outlook.seen))

    def counted(self, profile: SyncProfile, report: ExecutionReport | PauseForConfirmation, **changes: Any) -> SyncProfile:
        if isinstance(report, PauseForConfirmation):
            return profile.model_copy(update=changes)
        created = sum(report.created.values())
        removed = sum(report.deleted.values())
        unconfirmed = changes.pop("unconfirmed_outlook", profile.unconfirmed_outlook)
        if profile.state is not SyncState.INITIAL:  # the initial sync's creates: its first round is a full one
            unconfirmed = [*unconfirmed, *report.outlook_created]
        if len(unconfirmed) > MAX_UNCONFIRMED:
            changes["delta_link"], unconfirmed = None, []
        return profile.model_copy(
            update={
                "synced_items": max(0, profile.synced_items + created - removed),
                "conflicts": profile.conflicts + report.conflicts,
                "errors": profile.errors + len(report.failures),
                "last_error": report.failures[-1] if report.failures else profile.last_error,
                "last_sync_at": self._now(),
                "unconfirmed_outlook": unconfirmed,
                **changes,
            }
        )


def ids(changes: SideChanges) -> set[str]:
    return {s.item_id for s in changes.seen} | {d.item_id for d in changes.deleted}


def _excluded_note(side: Side, seen: ItemSeen) -> Note:
    why, detail = why_excluded(seen.excluded or "")
    return Note(side, seen.item_id, seen.label, why, partner_id=seen.partner_id, detail=detail)
