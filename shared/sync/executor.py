"""Carrying out a plan (DESIGN §8; the contract is in ``shared.sync.actions``): pending rows
first, then the remote writes grouped for throughput (Graph ``$batch`` of 20 at most 4 in
flight, CRM 100 records a call), then the finished rows in Table transactions. A failed
write leaves its pair's row as it was (with ``last_error``) and never stops other pairs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from shared.crm.models import WriteResult
from shared.graph.container import ItemDraft
from shared.graph.errors import GraphError, GraphUnavailable
from shared.graph.sync_errors import ContainerGone, MailboxThrottled
from shared.sync.actions import (
    Adopt,
    Create,
    Delete,
    ForgetLink,
    Plan,
    RecordConflict,
    Skip,
    Tombstone,
    Update,
)
from shared.sync.echoes import sent_digests
from shared.sync.kind import CRM_MARKER_FIELD, KindRules, OutlookSide
from shared.sync.ledger import Note, Why
from shared.sync.links import LinkRow, LinkState, Side
from shared.sync.ports import ConflictLog, CrmRecordWrites, LinkRows

log = logging.getLogger(__name__)
T = TypeVar("T")
# A pending create written before rows said when (``pending_since``): how far back its
# earlier attempt is looked for.
RECOVERY_LOOKBACK = timedelta(days=1)
OUTCOME_UNKNOWN = "outcome unknown"
ALREADY_MODIFIED = "ALREADY_MODIFIED"  # the CRM: the record changed after If-Unmodified-Since  # a timeout or a 5xx: the CRM may have applied the write


@dataclass
class ExecutionReport:
    created: dict[str, int] = field(default_factory=lambda: {"crm": 0, "outlook": 0})
    updated: dict[str, int] = field(default_factory=lambda: {"crm": 0, "outlook": 0})
    deleted: dict[str, int] = field(default_factory=lambda: {"crm": 0, "outlook": 0})
    conflicts: int = 0
    failures: list[str] = field(default_factory=list)
    # Of the failures, those another attempt may mend (a 5xx, a timeout, throttling that
    # outlasted our retries): the round keeps its cursors and is tried again (``delta_round``).
    passing: int = 0
    notes: list[Note] = field(default_factory=list)  # for the sync ledger: what no link row will say
    # Pairs a conditional write found changed since they were read (If-Match, If-Unmodified-Since):
    # nothing was written for them (or only to the CRM, see ``_updates``); read again and planned anew.
    changed_meanwhile: list[str] = field(default_factory=list)
    # Outlook items this step created: made after the step's delta read, so the next round
    # must see them (``SyncProfile.unconfirmed_outlook``).
    outlook_created: list[str] = field(default_factory=list)

    def add(self, other: ExecutionReport) -> None:
        for mine, theirs in ((self.created, other.created), (self.updated, other.updated), (self.deleted, other.deleted)):
            for side, count in theirs.items():
                mine[side] += count
        self.conflicts += other.conflicts
        self.failures += other.failures
        self.passing += other.passing
        self.notes += other.notes
        self.outlook_created += other.outlook_created
        self.changed_meanwhile = list(other.changed_meanwhile)


class Executor:
    def __init__(
        self,
        rules: KindRules,
        outlook: OutlookSide,
        records: CrmRecordWrites,
        links: LinkRows,
        conflicts: ConflictLog,
        *,
        partition: str,
        container_id: str,
        owner_id: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        history_partition: str | None = None,
        read_at: datetime | None = None,
        announce: Callable[[Collection[str], bool], None] = lambda ids, fresh: None,
    ) -> None:
        """``partition``: the link rows' (one per generation); ``history_partition``: the
        member's conflicts of this kind, across generations (the settings page lists them);
        ``read_at``: when the step read what it planned from: updates are conditional on the
        items being unchanged since (None: unconditional, for recoveries); ``announce``: the
        CRM ids rows are about to name for the first time, told before they are written
        (``StepContext.announce_crm_ids``)."""
        self.a = rules
        self.outlook = outlook
        self.records = records
        self.links = links
        self.conflicts = conflicts
        self.partition = partition
        self.history_partition = history_partition or partition
        self.container = container_id
        self.owner_id = owner_id
        self._now = clock
        self.read_at = read_at
        self._announce = announce

    def apply(self, plan: Plan, known: dict[str, LinkRow]) -> ExecutionReport:
        report = ExecutionReport()
        creates = [a for a in plan.actions if isinstance(a, Create)]
        attempted = {c.pending.link_id: known.get(c.pending.link_id) for c in creates}  # the rows before this step
        if creates:  # write-ahead: a crash after a create leaves a row saying it may exist
            self._write([(known.get(c.pending.link_id), c.pending) for c in creates])
            known.update({c.pending.link_id: c.pending for c in creates})
        groups: dict[type, list[tuple[LinkRow | None, LinkRow]]] = {}
        groups[Create] = self._creates(creates, known, report, attempted)
        groups[Update] = self._updates([a for a in plan.actions if isinstance(a, Update)], known, report)
        self._after_outlook_writes(groups[Create] + groups[Update])
        groups[Delete] = self._deletes([a for a in plan.actions if isinstance(a, Delete)], known, report)
        groups[Skip] = [(known.get(a.link.link_id), a.link) for a in plan.actions
                        if isinstance(a, Adopt | Tombstone) or isinstance(a, Skip) and a.link is not None]  # type: ignore[union-attr]
        writes = _in_plan_order(plan, groups)
        if writes:
            self._write(_last_per_link(writes))
        forgotten = [known[a.link_id] for a in plan.actions if isinstance(a, ForgetLink) and a.link_id in known]
        if forgotten:
            self.links.forget(self.partition, forgotten)
        found = [a.conflict for a in plan.actions if isinstance(a, RecordConflict)]
        if found:
            self.conflicts.record(self.history_partition, found)
            report.conflicts = len(found)
        return report

    def _write(self, rows: list[tuple[LinkRow | None, LinkRow]]) -> None:
        """Link rows written, the CRM ids they name for the first time announced first."""
        new = {row.crm_id for previous, row in rows
               if row.crm_id and row.state is not LinkState.TOMBSTONE and (previous is None or previous.crm_id != row.crm_id)}
        if new:
            self._announce(new, False)
        self.links.write(self.partition, rows)

    def _after_outlook_writes(self, writes: list[tuple[LinkRow | None, LinkRow]]) -> None:
        """Before the rows are written (a crash repeats this through the pending or old row)."""
        for previous, row in writes:
            if row.outlook_id is None or row.last_error or (previous is not None and previous.fields == row.fields
                                                            and previous.state.creating_on is None):
                continue
            before = None if previous is None or previous.state.creating_on is not None else previous.fields
            try:
                self.outlook.after_write(self.container, row.outlook_id, before, row.fields)
            except (MailboxThrottled, ContainerGone):
                raise
            except GraphError as error:
                log.warning("occurrence changes of %s not applied: %s", row.outlook_id, error)

    # -- creates --------------------------------------------------------------------------

    def _creates(self, creates: list[Create], known: dict[str, LinkRow], report: ExecutionReport,
                 attempted: dict[str, LinkRow | None]) -> list[tuple[LinkRow | None, LinkRow]]:
        done: list[tuple[LinkRow | None, LinkRow]] = []
        outlook = [c for c in creates if c.side is Side.OUTLOOK]
        crm = [c for c in creates if c.side is Side.CRM]
        fresh: list[Create] = []
        for create in outlook:
            found = self.outlook.find_items_by_crm_id(self.container, self.a.marker_for(create.marker)) if create.recover else []
            if found:  # an earlier attempt created it: bring it to the planned content
                try:
                    item = _unless_gone(self.outlook.update_items(self.container, [(found[0].id, self.a.to_outlook(create.fields, None))]))[0]
                except GraphError as error:
                    item = error
                done += self._created(create, item, known, report)
            else:
                fresh.append(create)
        if fresh:
            drafts = [
                # The marker and Graph's transactionId are of this generation: an event made by an
                # earlier Enable (same CRM record, same version) is not this create's answer.
                ItemDraft(crm_id=self.a.marker_for(c.marker), fields=self.a.to_outlook(c.fields, None),
                          transaction_id=self.a.marker_for(c.transaction_key) if c.transaction_key else None)
                for c in fresh
            ]
            for create, item in zip(fresh, _unless_gone(self.outlook.create_items(self.container, drafts)), strict=True):
                done += self._created(create, item, known, report)
        crm = self._recovered_in_crm(crm, known, report, done, attempted)
        if crm:
            bodies = [{**self.a.to_crm(c.fields, None), CRM_MARKER_FIELD: self.a.marker_for(c.marker), "Owner": {"id": self.owner_id}}
                      for c in crm]
            for create, result in zip(crm, self.records.insert(self.a.crm_module, bodies), strict=True):
                if result.ok and result.id:
                    done.append((known.get(create.pending.link_id), create.completed(result.id, result.modified_time or "")))
                    report.created["crm"] += 1
                else:
                    done += self._failed(create.pending, _crm_create_error(result), report, passing=_crm_passing(result))
        return done

    def _recovered_in_crm(self, creates: list[Create], known: dict[str, LinkRow], report: ExecutionReport,
                          done: list[tuple[LinkRow | None, LinkRow]], attempted: dict[str, LinkRow | None]) -> list[Create]:
        """Creates repeated after a crash (``recover``): a record carrying the create's marker,
        changed since the create was first planned, is the earlier attempt's; bring it to the
        planned content instead of creating a second one. Returns the creates still to make.
        An attempt the CRM answered with a refusal made nothing: not looked for (a create the
        CRM keeps refusing would otherwise cost a listing at every step)."""
        recovering = [c for c in creates if c.recover and _may_have_happened(attempted.get(c.pending.link_id))]
        if not recovering:
            return creates
        found = self._in_crm_by_marker([(c.pending.link_id, c.marker, c.pending.pending_since) for c in recovering])
        again = [(c, found[c.pending.link_id]) for c in recovering if c.pending.link_id in found]
        if again:
            bodies = [{"id": record_id, **self.a.to_crm(c.fields, None)} for c, record_id in again]
            for (create, record_id), result in zip(again, self.records.update(self.a.crm_module, bodies), strict=True):
                if result.ok:
                    done.append((known.get(create.pending.link_id), create.completed(record_id, result.modified_time or "")))
                    report.created["crm"] += 1
                else:
                    done += self._failed(create.pending, _crm_create_error(result), report, passing=_crm_passing(result))
        recovered = {c.pending.link_id for c, _ in again}
        return [c for c in creates if c.pending.link_id not in recovered]

    def _created(self, create: Create, item: Any, known: dict[str, LinkRow], report: ExecutionReport) -> list[tuple[LinkRow | None, LinkRow]]:
        if isinstance(item, GraphError):
            return self._failed(create.pending, f"Outlook create: {item.code}", report, passing=_graph_passing(item))
        report.created["outlook"] += 1
        report.outlook_created.append(item.id)
        return [(known.get(create.pending.link_id), create.completed(item.id, item.change_key or ""))]

    # -- updates --------------------------------------------------------------------------

    def _updates(self, updates: list[Update], known: dict[str, LinkRow], report: ExecutionReport) -> list[tuple[LinkRow | None, LinkRow]]:
        """The CRM first, then Outlook, each write conditional on the item being as the plan
        saw it (issue 23: a change made between read and write is never overwritten). A pair
        whose item changed meanwhile keeps its row and is read again (``changed_meanwhile``);
        a merge whose CRM write is refused writes nothing to Outlook."""
        outlook_versions: dict[str, str] = {}
        crm_versions: dict[str, str] = {}
        crm_sent: dict[str, dict[str, str]] = {}
        failed: dict[str, str] = {}
        passing: set[str] = set()
        changed: set[str] = set()
        with_crm = [u for u in updates if u.crm is not None]
        if with_crm:
            bodies = [{"id": u.crm.item_id, **self.a.to_crm(u.crm.fields, u.link.fields)} for u in with_crm]  # type: ignore[union-attr]
            results = self.records.update(self.a.crm_module, bodies, unmodified_since=self._unmodified_since(with_crm))
            for update, result, body in zip(with_crm, results, bodies, strict=True):
                if result.ok:
                    crm_versions[update.link.link_id] = result.modified_time or ""
                    crm_sent[update.link.link_id] = sent_digests(body)
                    report.updated["crm"] += 1
                elif result.code == ALREADY_MODIFIED:
                    log.info("CRM record %s changed since %s: write refused, read again", update.crm.item_id, update.crm.expected_version)  # type: ignore[union-attr]
                    changed.add(update.link.link_id)
                else:
                    failed[update.link.link_id] = f"CRM update: {result.code or result.status}"
                    if _crm_passing(result):
                        passing.add(update.link.link_id)
        with_outlook = [u for u in updates if u.outlook is not None and u.link.link_id not in failed and u.link.link_id not in changed]
        if with_outlook:
            changes = [
                (u.outlook.item_id, self.a.to_outlook(u.outlook.fields, u.link.fields))  # type: ignore[union-attr]
                for u in with_outlook
            ]
            keys = [self.a.change_key_of(u.outlook.expected_version) if self.read_at else None for u in with_outlook]  # type: ignore[union-attr]
            items = _unless_gone(self.outlook.update_items(self.container, changes, if_match=keys))
            for update, item in zip(with_outlook, items, strict=True):
                if isinstance(item, GraphError) and item.status == 412:
                    log.info("Outlook item %s changed since %s: write refused, read again", update.outlook.item_id, update.outlook.expected_version)  # type: ignore[union-attr]
                    changed.add(update.link.link_id)
                elif isinstance(item, GraphError):
                    failed[update.link.link_id] = f"Outlook update: {item.code}"
                    if _graph_passing(item):
                        passing.add(update.link.link_id)
                else:
                    outlook_versions[update.link.link_id] = item.change_key or ""
                    report.updated["outlook"] += 1
        done: list[tuple[LinkRow | None, LinkRow]] = []
        for update in updates:
            link_id = update.link.link_id
            if link_id in failed:
                done += self._failed(known.get(link_id) or update.link, failed[link_id], report, passing=link_id in passing)
            elif link_id in changed:
                report.changed_meanwhile.append(link_id)  # its row stays as it was
            else:
                row = update.completed(crm_version=crm_versions.get(link_id), outlook_version=outlook_versions.get(link_id))
                if link_id in crm_sent:
                    row = row.replace(crm_sent=crm_sent[link_id])
                done.append((known.get(link_id), row))
        return done

    def _unmodified_since(self, updates: list[Update]) -> datetime | None:
        """The CRM refuses records changed after this (``If-Unmodified-Since``, one per call):
        the latest version the plan saw among them. A change after the read is later than
        every version read; one in the same second as that version goes unseen (the CRM
        compares whole seconds). None (unconditional) for recoveries, or a version that is no time."""
        if self.read_at is None:
            return None
        seen = []
        for update in updates:
            try:
                seen.append(datetime.fromisoformat(str(update.crm.expected_version)))  # type: ignore[union-attr]
            except ValueError:
                return None
        return max(seen) if seen and all(moment.tzinfo for moment in seen) else None

    # -- deletes --------------------------------------------------------------------------

    def _deletes(self, deletes: list[Delete], known: dict[str, LinkRow], report: ExecutionReport) -> list[tuple[LinkRow | None, LinkRow]]:
        done: list[tuple[LinkRow | None, LinkRow]] = []
        outlook = [d for d in deletes if d.side is Side.OUTLOOK]
        ids = []
        for delete in outlook:
            item_id = delete.item_id
            if item_id is None and delete.marker:
                found = self.outlook.find_items_by_crm_id(self.container, self.a.marker_for(delete.marker))
                item_id = found[0].id if found else None
            ids.append(item_id)
        present = [(d, i) for d, i in zip(outlook, ids, strict=True) if i is not None]
        results = _unless_gone(self.outlook.delete_items(self.container, [i for _, i in present])) if present else []
        outcome = {d.link.link_id: r for (d, _), r in zip(present, results, strict=True)}
        for delete in outlook:
            result = outcome.get(delete.link.link_id, False)
            if isinstance(result, GraphError):
                done += self._failed(known.get(delete.link.link_id) or delete.link, f"Outlook delete: {result.code}", report,
                                     passing=_graph_passing(result))
            else:
                report.deleted["outlook"] += 1
                report.notes.append(self._deletion_note(delete, known))
                done.append((known.get(delete.link.link_id), delete.link))
        crm = [(d, d.item_id) for d in deletes if d.side is Side.CRM and d.item_id]
        crm += self._found_in_crm([d for d in deletes if d.side is Side.CRM and not d.item_id], known)
        if crm:
            for (delete, _), result in zip(crm, self.records.delete(self.a.crm_module, [i for _, i in crm]), strict=True):
                if result.ok or result.code == "INVALID_DATA":  # gone already counts as done
                    report.deleted["crm"] += 1
                    report.notes.append(self._deletion_note(delete, known))
                    done.append((known.get(delete.link.link_id), delete.link))
                else:
                    done += self._failed(known.get(delete.link.link_id) or delete.link, f"CRM delete: {result.code}", report,
                                         passing=_crm_passing(result))
        deleting = {d.link.link_id for d, _ in crm}
        done += [(known.get(d.link.link_id), d.link) for d in deletes if d.side is Side.CRM and d.link.link_id not in deleting]
        return done

    def _found_in_crm(self, deletes: list[Delete], known: dict[str, LinkRow]) -> list[tuple[Delete, str]]:
        """Deletes of a copy that may or may not exist (a pending create whose source was
        deleted meanwhile): the record carrying the create's marker, if an earlier attempt made it."""
        wanted = [d for d in deletes if d.marker and _may_have_happened(known.get(d.link.link_id))]
        if not wanted:
            return []
        found = self._in_crm_by_marker([(d.link.link_id, d.marker or "", (known.get(d.link.link_id) or d.link).pending_since)
                                        for d in wanted])
        return [(d, found[d.link.link_id]) for d in wanted if d.link.link_id in found]

    def _in_crm_by_marker(self, wanted: list[tuple[str, str, datetime | None]]) -> dict[str, str]:
        """The CRM record an earlier attempt of each pending create made, by link id: the one
        carrying the create's marker among the records changed since it was first planned
        (``(link id, marker, pending_since)``; a row without that time looks back a day)."""
        since = min(p or self._now() - RECOVERY_LOOKBACK for _, _, p in wanted) - timedelta(seconds=1)
        markers = {link_id: self.a.marker_for(marker) for link_id, marker, _ in wanted}
        found = self.records.with_field_values(self.a.crm_module, CRM_MARKER_FIELD, list(markers.values()), modified_since=since)
        return {link_id: str(found[marker]["id"]) for link_id, marker in markers.items() if marker in found}

    def _deletion_note(self, delete: Delete, known: dict[str, LinkRow]) -> Note:
        """The ledger's "deleted in Outlook / in the CRM", kept once the pair's row is a tombstone
        (a tombstone keeps no fields: the name is the pair's as last synced)."""
        gone = delete.side.other  # where the person deleted it
        synced = known.get(delete.link.link_id) or delete.link
        return Note(side=gone, item_id=delete.because.item_id, partner_id=delete.item_id,
                    name=self.a.label_of(synced.fields) or self.a.label_of(delete.link.fields),
                    why=Why.DELETED_IN_OUTLOOK if gone is Side.OUTLOOK else Why.DELETED_IN_CRM)

    def _failed(self, row: LinkRow, reason: str, report: ExecutionReport, *, passing: bool) -> list[tuple[LinkRow | None, LinkRow]]:
        log.warning("sync write failed for %s: %s%s", row.link_id, reason, " (tried again later)" if passing else "")
        report.failures.append(reason)
        report.passing += passing
        return [(row, row.replace(last_error=reason[:300]))]


def _may_have_happened(attempt: LinkRow | None) -> bool:
    """Whether a pending create's earlier attempt may have made its item: it crashed (no
    error recorded) or its outcome is unknown (a timeout or a 5xx); a refusal made nothing."""
    if attempt is None or attempt.last_error is None:
        return True
    return OUTCOME_UNKNOWN in attempt.last_error


# The CRM's per-record answers that say "not now" rather than "never": throttled, or the CRM failing.
PASSING_CRM_CODES = frozenset({"TOO_MANY_REQUESTS", "INTERNAL_ERROR", "RATE_LIMIT_EXCEEDED"})


def _crm_passing(result: WriteResult) -> bool:
    """Whether another attempt may succeed: the call failed (a timeout, a 5xx: ``unknown``),
    was not sent, or the CRM was throttling or failing. A refusal of the record itself
    (a mandatory field, a value it rejects) fails again until the item changes."""
    return result.status in ("unknown", "not_sent") or result.code in PASSING_CRM_CODES


def _graph_passing(error: GraphError) -> bool:
    """Graph's counterpart: unreachable, throttled after our retries, or a 5xx."""
    return isinstance(error, GraphUnavailable) or error.status == 429 or error.status >= 500


def _crm_create_error(result: WriteResult) -> str:
    unknown = f" ({OUTCOME_UNKNOWN})" if result.status == "unknown" else ""
    return f"CRM create: {result.code or result.status} {result.message}{unknown}"


def _in_plan_order(
    plan: Plan, groups: dict[type, list[tuple[LinkRow | None, LinkRow]]]
) -> list[tuple[LinkRow | None, LinkRow]]:
    """The rows in the order of the actions that made them. The remote writes are grouped by
    kind for throughput (creates, updates, deletes, then the row-only actions, grouped under
    Skip), but one pair may have two actions in a plan (P3: adopt the item an earlier attempt
    created, then the S-case between it and its partner): the row that stands must be the
    later action's, never the adoption's baseline."""
    position: dict[tuple[type, str], int] = {}
    for index, action in enumerate(plan.actions):
        group = type(action) if isinstance(action, Create | Update | Delete) else Skip
        link = action.pending if isinstance(action, Create) else getattr(action, "link", None)
        if isinstance(link, LinkRow):
            position[(group, link.link_id)] = index
    ordered = [(position.get((group, row.link_id), len(plan.actions)), seq, previous, row)
               for group, writes in groups.items() for seq, (previous, row) in enumerate(writes)]
    return [(previous, row) for _, _, previous, row in sorted(ordered, key=lambda w: (w[0], w[1]))]


def _last_per_link(writes: list[tuple[LinkRow | None, LinkRow]]) -> list[tuple[LinkRow | None, LinkRow]]:
    """One write per link (the last), keeping the first known previous version."""
    merged: dict[str, tuple[LinkRow | None, LinkRow]] = {}
    for previous, row in writes:
        first_previous = merged[row.link_id][0] if row.link_id in merged else previous
        merged[row.link_id] = (first_previous, row)
    return list(merged.values())


def _unless_gone(results: Sequence[T]) -> Sequence[T]:
    """Batch results, unless one says our container itself is gone (R3.8, R4.9): then nothing
    more this step does can land, and the service turns the sync off (lifecycle L5)."""
    for result in results:
        if isinstance(result, ContainerGone):
            raise result
    return results
