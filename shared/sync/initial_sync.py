"""The initial sync (R3.5, R4.6): first a selection pass over the member's CRM items
(ordering keys, scope and names only) that keeps the cap's best in the order they are sent
(upcoming events soonest first, then the recently completed: ``KindRules.initial_key``),
then pages of those records read by id in that order, each planned and applied through
``Cycle``; resumable from the stored position after a crash."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from shared.crm.records import ListQuery
from shared.sync import SideChanges
from shared.sync.cycle import Cycle
from shared.sync.jobs import StepReason, SyncJob
from shared.sync.kind import KindRules
from shared.sync.ledger import Note, Why, why_excluded
from shared.sync.lifecycle import Effect, Event, decide
from shared.sync.links import Side
from shared.sync.profiles import SyncProfile
from shared.sync.selection import best
from shared.sync.selection_store import SelectionStore
from shared.sync.step_context import StepContext

# One initial step writes pages for this long, then queues the next (progress is saved per page).
INITIAL_STEP_SECONDS = 10.0
PAGE_SIZE = 100  # records read by id at a time (the CRM's limit)


class InitialSync:
    def __init__(self, cycle: Cycle, selections: SelectionStore | None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), page_size: int = PAGE_SIZE) -> None:
        self.cycle = cycle
        self.selections = selections
        self._now = clock
        self.page_size = page_size

    def step(self, profile: SyncProfile, ctx: StepContext) -> SyncProfile:
        """Pages of the selection for up to ``INITIAL_STEP_SECONDS``, the next page read while
        the current one is written (a queue hop per page would cost more than the page)."""
        if self.selections is None:
            raise RuntimeError("the initial sync needs a selection store")
        position = _position(profile.initial_cursor)
        ids = self.selections.load(profile.links_partition) if position is not None else None
        if position is None or ids is None:  # not selected yet (or a cursor of an earlier release)
            return self._select(profile, ctx)
        a = ctx.rules
        deadline = time.monotonic() + INITIAL_STEP_SECONDS
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="crm-prefetch") as prefetch:
            upcoming = prefetch.submit(self._read, ctx, ids[position:position + self.page_size])
            while True:
                batch = ids[position:position + self.page_size]
                records = upcoming.result()
                position += len(batch)
                if position < len(ids):
                    upcoming = prefetch.submit(self._read, ctx, ids[position:position + self.page_size])
                in_order = [records[i] for i in batch if i in records]  # one deleted meanwhile is no more
                chosen = [r for r in in_order if not a.excluded(r)]
                report = self.cycle.run(profile, ctx, SideChanges(seen=tuple(a.crm_to_seen(r) for r in chosen)), SideChanges(),
                                        notes=_left_out(a, in_order, chosen))
                done = profile.initial_done + len(chosen)
                if position >= len(ids):
                    break
                profile = self.cycle.counted(profile, report, initial_done=done, initial_cursor=str(position))
                if time.monotonic() > deadline:
                    ctx.enqueue(SyncJob.of(profile, "initial", StepReason.CONTINUE), 0)
                    return profile
        # Done: start two-way sync from here (R3.3): a Graph delta round and the CRM watermark (L16).
        finished = decide(profile.life, Event.INITIAL_DONE)
        if Effect.QUEUE_DELTA in finished.effects:
            ctx.enqueue(SyncJob.of(profile, "delta", StepReason.INITIAL_DONE), 0)
        return self.cycle.counted(profile.living(finished.life), report, initial_done=done, initial_cursor=None)

    def _read(self, ctx: StepContext, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return ctx.records.by_ids(ctx.rules.crm_module, ids, ctx.rules.crm_fields) if ids else {}  # type: ignore[arg-type]

    def _select(self, profile: SyncProfile, ctx: StepContext) -> SyncProfile:
        """The selection pass: every candidate's ordering key, the cap's best kept in order
        (R3.5, R4.6); what is left out is noted for the ledger (out of scope, over the cap)."""
        assert self.selections is not None
        a = ctx.rules
        started = self._now()
        query = ListQuery(module=a.crm_module, fields=a.scan_fields, owner_id=ctx.owner_id)  # type: ignore[arg-type]
        keys: list[tuple[list[Any], str]] = []
        names: dict[str, str] = {}
        notes: list[Note] = []
        for page in ctx.records.pages(query):
            for record in page.records:
                record_id, name, reason = str(record["id"]), a.crm_label(record), a.excluded(record)
                if reason:
                    why, detail = why_excluded(reason)
                    notes.append(Note(Side.CRM, record_id, name, why, detail=detail))
                else:
                    keys.append((a.initial_key(record), record_id))
                    names[record_id] = name
        chosen = best(keys, a.initial_cap)
        kept = set(chosen)
        notes += [Note(Side.CRM, i, names[i], Why.OVER_CAP) for _, i in keys if i not in kept]
        self.selections.save(profile.links_partition, chosen)
        if self.cycle.ledger is not None and notes:
            self.cycle.ledger.note(profile.history_partition, notes)
        ctx.enqueue(SyncJob.of(profile, "initial", StepReason.SELECTED), 0)
        return profile.model_copy(
            update={"initial_cursor": "0", "initial_total": len(chosen), "initial_done": 0, "crm_watermark": started}
        )


def _position(cursor: str | None) -> int | None:
    """Where the pages stand in the selection; None: select first."""
    return int(cursor) if cursor is not None and cursor.isdigit() else None


def _left_out(a: KindRules, records: list[dict[str, Any]], chosen: list[dict[str, Any]]) -> list[Note]:
    """A page's records out of scope by now (changed since the selection pass)."""
    sent = {id(r) for r in chosen}
    notes = []
    for record in records:
        if id(record) in sent:
            continue
        why, detail = why_excluded(a.excluded(record) or "")
        notes.append(Note(Side.CRM, str(record["id"]), a.crm_label(record), why, detail=detail))
    return notes
