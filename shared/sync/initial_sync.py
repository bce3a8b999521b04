"""The initial sync (R3.5, R4.6): first a selection pass over the member's CRM items
(ordering keys only), then CRM pages, each planned and applied through ``Cycle``; resumable
from the stored cursor after a crash."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from shared.crm.records import ListCursor, ListQuery
from shared.sync import SideChanges
from shared.sync.cycle import Cycle
from shared.sync.jobs import StepReason, SyncJob
from shared.sync.kind import KindRules
from shared.sync.ledger import Note, Why, why_excluded
from shared.sync.lifecycle import Effect, Event, decide
from shared.sync.links import Side
from shared.sync.ports import CrmRecordReads
from shared.sync.profiles import SyncProfile
from shared.sync.selection import selected, threshold
from shared.sync.step_context import StepContext

# One initial step writes pages for this long, then queues the next (progress is saved per step).
INITIAL_STEP_SECONDS = 10.0


class InitialSync:
    def __init__(self, cycle: Cycle, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.cycle = cycle
        self._now = clock

    def step(self, profile: SyncProfile, ctx: StepContext) -> SyncProfile:
        """CRM pages for up to ``INITIAL_STEP_SECONDS``, the next page read while the current
        one is written (a queue hop per page would cost more than the page)."""
        a = ctx.rules
        if profile.initial_cursor is None:
            return self._select(profile, ctx)
        limit = profile.initial_threshold
        deadline = time.monotonic() + INITIAL_STEP_SECONDS
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="crm-prefetch") as prefetch:
            cursor = ListCursor.model_validate_json(profile.initial_cursor)
            upcoming = prefetch.submit(_first_page, ctx.records, cursor)
            while True:
                page = upcoming.result()
                if page is not None and page.next is not None:
                    upcoming = prefetch.submit(_first_page, ctx.records, page.next)
                records = page.records if page else []
                chosen = [r for r in records if selected(a.initial_key(r), limit) and not a.excluded(r)]
                report = self.cycle.run(profile, ctx, SideChanges(seen=tuple(a.crm_to_seen(r) for r in chosen)), SideChanges(),
                                     notes=_left_out(a, records, chosen))
                done = profile.initial_done + len(chosen)
                if page is None or page.next is None:
                    break
                profile = self.cycle.counted(profile, report, initial_done=done, initial_cursor=page.next.model_dump_json())
                if time.monotonic() > deadline:
                    ctx.enqueue(SyncJob.of(profile, "initial", StepReason.CONTINUE), 0)
                    return profile
        # Done: start two-way sync from here (R3.3): a Graph delta round and the CRM watermark (L16).
        finished = decide(profile.life, Event.INITIAL_DONE)
        if Effect.QUEUE_DELTA in finished.effects:
            ctx.enqueue(SyncJob.of(profile, "delta", StepReason.INITIAL_DONE), 0)
        return self.cycle.counted(profile.living(finished.life), report, initial_done=done, initial_cursor=None)

    def _select(self, profile: SyncProfile, ctx: StepContext) -> SyncProfile:
        """The selection pass: every candidate's ordering key, the cap best kept (R3.5, R4.6)."""
        a = ctx.rules
        started = self._now()
        query = ListQuery(module=a.crm_module, fields=a.scan_fields, owner_id=ctx.owner_id)  # type: ignore[arg-type]
        keys = (a.initial_key(r) for page in ctx.records.pages(query) for r in page.records if not a.excluded(r))
        limit, total = threshold(keys, a.initial_cap)
        full = ListQuery(module=a.crm_module, fields=a.crm_fields, owner_id=ctx.owner_id)  # type: ignore[arg-type]
        ctx.enqueue(SyncJob.of(profile, "initial", StepReason.SELECTED), 0)
        return profile.model_copy(
            update={
                "initial_cursor": ListCursor(query=full).model_dump_json(),
                "initial_threshold": limit,
                "initial_total": total,
                "initial_done": 0,
                "crm_watermark": started,
            }
        )


def _left_out(a: KindRules, records: list[dict[str, Any]], chosen: list[dict[str, Any]]) -> list[Note]:
    """An initial page's records not sent: out of scope, or over the cap (R3.5, R4.6)."""
    sent = {id(r) for r in chosen}
    notes = []
    for record in records:
        if id(record) in sent:
            continue
        seen = a.crm_to_seen(record)
        why, detail = why_excluded(seen.excluded) if seen.excluded else (Why.OVER_CAP, None)
        notes.append(Note(Side.CRM, seen.item_id, seen.label, why, detail=detail))
    return notes


def _first_page(records: CrmRecordReads, cursor: ListCursor) -> Any:
    return next(iter(records.pages(cursor)), None)
