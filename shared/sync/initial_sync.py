"""The initial sync (R3.5, R4.6): first a selection pass over the member's CRM items that
keeps the cap's best in the order they are sent (upcoming events soonest first, then the
recently completed: ``KindRules.initial_key``), then pages of those records in that order
(as the selection listed them, or read by id in a later step), each planned and applied
through ``Cycle``; resumable from the stored position after a crash."""

from __future__ import annotations

import contextvars
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.crm.records import ListQuery
from shared.graph.send_order import SendOrder, sending_in
from shared.sync import ItemSeen, SideChanges
from shared.sync.cycle import Cycle
from shared.sync.executor import ExecutionReport
from shared.sync.guards import PauseForConfirmation
from shared.sync.jobs import StepReason, SyncJob
from shared.sync.kind import KindRules
from shared.sync.ledger import Note, Why, why_excluded
from shared.sync.lifecycle import Effect, Event, decide
from shared.sync.links import InitialProgress, InitialState, LinkRow, LinkState, Side, derive_key
from shared.sync.page_rows import PageRows
from shared.sync.profiles import SyncProfile
from shared.sync.selection import best
from shared.sync.step_context import StepContext

# A step yields its worker after this long when other bulk steps wait for one (``bulk_waiting``),
# and in any case after ``INITIAL_SLICE_SECONDS``; progress is committed with every page. Never
# with a page or less left: the next step would cost more than that page (a queue hop, the
# lease, the member's rows, the shared claims: about a dozen Table transactions) and its member
# would finish after every step queued meanwhile (bench many-members: 100 members of 100 events,
# each step yielded after its first page under load, and 98 steps of one item each came last).
INITIAL_STEP_SECONDS = 10.0
INITIAL_SLICE_SECONDS = 120.0
# Pairs per page: 99 link rows and the progress are one entity-group transaction (100
# operations); 99 records are also one CRM read by id (at most 100).
PAGE_SIZE = 99
# Pages prepared and sent at once: page k+1 is read and planned while page k is sent, and
# queues its first batch at the mailbox's gate behind page k's last (``send_order``).
PAGES_IN_FLIGHT = 2
# Creates are sent up to this many pages past the committed progress (the write-ahead of a
# range): when page k's answers are in, page k+2 is started while page k+1 is being sent and
# page k's rows are committed in the background; the progress then durable is page k-1's.
RESERVED_PAGES = PAGES_IN_FLIGHT + 1
# A page is not started when the mailbox's 10-minute window (10,000 requests, every instance's)
# has no room for the pages in flight for longer than this: the step stops between pages and
# comes back when there is room. Started anyway, the page's batches would wait at the gate past
# their budget (30 s), the step would be deferred in mid-page, and the next one would look up
# each create of the range reserved ahead by its marker (bench initial-contacts at 10,000:
# 192 lookups and 8 steps where the window had to be waited out).
ROOM_WAIT_SECONDS = 15.0
# Graph requests an initial step sends after its creates: the subscription, and the first delta
# round's reads (a page or two, and the calendar's look outside its window). Reserved with the
# creates: one claim for the whole step instead of a top-up write for its last few requests
# (bench initial-calendar: a Table write at the end of every initial sync). Unsent, they go
# back to the mailbox's window with the claim.
TAIL_REQUESTS = 8


# A page's report, the link rows to commit, and how many items it sent.
_PageResult = tuple[ExecutionReport | PauseForConfirmation, list[LinkRow], int]


class InitialSync:
    def __init__(self, cycle: Cycle, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 page_size: int = PAGE_SIZE) -> None:
        self.cycle = cycle
        self._now = clock
        self.page_size = page_size

    def step(self, profile: SyncProfile, ctx: StepContext) -> SyncProfile:
        """Pages of the selection for one slice, as a pipeline: page k+1 is read from the CRM,
        planned and made ready while page k is sent, and sent in its turn right behind it
        (``send_order``: Graph never waits for us between pages, and items still reach
        Outlook in the selection's order); a page's link rows are committed (with the progress
        that counts them, one transaction) in the background while the next pages are sent."""
        partition = profile.links_partition
        links = self.cycle.links
        stored = links.initial_state(partition)
        ids, progress = stored.ids, stored.progress
        # Creates below this may have been sent by a step that died: looked for before they are made.
        maybe_sent = progress.reserved if progress is not None else 0
        listed: dict[str, dict[str, Any]] = {}  # the selection's records, while this step has them
        if ids is None or progress is None:  # not selected yet
            profile, ids, progress, listed = self._select(profile, ctx, stored)
            maybe_sent = progress.reserved if stored.progress is not None else 0  # selected again: all of it
        # Pages committed by a step that died before its release: counted now.
        profile = profile.model_copy(update={"synced_items": profile.synced_items + max(0, progress.synced - profile.initial_done),
                                             "initial_done": progress.synced, "initial_cursor": str(progress.done)})
        position, synced = progress.done, progress.synced
        # One create per item left, and the step's tail: reserved from the mailbox's shared window in one claim.
        ctx.expect_graph_requests(len(ids) - position + TAIL_REQUESTS)
        room_wait = self._room_wait(ctx, len(ids) - position)
        if room_wait:
            # Nothing is sent: what this step reserved ahead (its selection) is given back, or
            # the next step would look each of its creates up by marker.
            if progress.reserved > max(maybe_sent, position):
                links.commit(partition, [], progress.model_copy(update={"reserved": max(maybe_sent, position)}))
        elif progress.reserved < self._reach(position, ids):
            links.commit(partition, [], progress.model_copy(update={"reserved": self._reach(position, ids)}))
        started = time.monotonic()
        order = SendOrder()
        pages = [] if room_wait else [(start, min(start + self.page_size, len(ids)))
                                      for start in range(position, len(ids), self.page_size)]
        with ThreadPoolExecutor(max_workers=PAGES_IN_FLIGHT, thread_name_prefix="initial-page") as senders, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="crm-read") as reader, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="link-commit") as committer:
            in_flight: deque[tuple[int, Future[_PageResult]]] = deque()

            def send(number: int) -> None:
                start, end = pages[number]
                # One CRM read at a time, in page order (one of the org's shared slots, not two).
                records = reader.submit(self._records, ctx, ids[start:end], listed)
                # In the step's context: its correlation id on the page's logs and Table counts.
                in_flight.append((end, senders.submit(
                    contextvars.copy_context().run, self._send_page, profile, ctx, ids[start:end], records, order, number,
                    recovering=start < maybe_sent)))

            for number in range(min(PAGES_IN_FLIGHT, len(pages))):
                send(number)
            sent_pages = len(in_flight)
            committing: Future[None] | None = None
            stopping = False
            try:
                while in_flight:
                    end, page = in_flight.popleft()
                    report, rows, sent = page.result()
                    if committing is not None:
                        committing.result()  # back-pressure: one commit in flight
                    synced += sent
                    elapsed = time.monotonic() - started
                    last_sent = pages[sent_pages - 1][1]
                    stopping = stopping or len(ids) - last_sent > self.page_size and (
                        elapsed > INITIAL_SLICE_SECONDS or elapsed > INITIAL_STEP_SECONDS and self._others_wait(ctx))
                    if not stopping and sent_pages < len(pages) and (room_wait := self._room_wait(ctx, len(ids) - end)):
                        stopping = True  # the page in flight is the slice's last
                    if not stopping and sent_pages < len(pages):
                        # Covered by the reach committed with the page before this one (RESERVED_PAGES).
                        send(sent_pages)
                        sent_pages += 1
                    # A slice's last page reserves nothing beyond what was sent: the next step has
                    # nothing more to look for.
                    reach = last_sent if stopping else self._reach(end, ids)
                    committing = committer.submit(links.commit, partition, rows,
                                                  InitialProgress(done=end, reserved=reach, synced=synced, total=len(ids)))
                    profile = self.cycle.counted(profile, report, initial_done=synced, initial_cursor=str(end))
                    position = end
                if committing is not None:
                    committing.result()
            except BaseException:
                order.cancel()  # what is not sent yet stays so: the next step goes on from the commit
                raise
        if (stopping or room_wait) and position < len(ids):
            delay = math.ceil(room_wait)
            ctx.enqueue(SyncJob.of(profile, "initial", StepReason.CONTINUE), delay)
            return profile.model_copy(update={"initial_resume_at": self._now() + timedelta(seconds=delay) if delay else None})
        # Done: start two-way sync from here (R3.3): a Graph delta round and the CRM watermark (L16).
        finished = decide(profile.life, Event.INITIAL_DONE)
        if Effect.QUEUE_DELTA in finished.effects:
            ctx.enqueue(SyncJob.of(profile, "delta", StepReason.INITIAL_DONE), 0)
        return profile.living(finished.life).model_copy(update={"initial_cursor": None})

    def _send_page(self, profile: SyncProfile, ctx: StepContext, batch: Sequence[str], records: Future[dict[str, dict[str, Any]]],
                   order: SendOrder, number: int, *, recovering: bool) -> _PageResult:
        """Plan and send one page, its Graph batches in its turn of ``order``. A page that fails
        cancels the pages behind it before its turn ends: they send nothing."""
        with sending_in(order.turn(number)):
            try:
                return self._page(profile, ctx, batch, records.result(), recovering=recovering)
            except BaseException:
                order.cancel()
                raise

    def _room_wait(self, ctx: StepContext, left: int) -> float:
        """How long the mailbox's window would keep the next pages in flight (of the ``left``
        items not answered yet) waiting, when that is longer than a page should wait at the
        gate (``ROOM_WAIT_SECONDS``); else 0."""
        if left <= 0:
            return 0.0  # nothing to send: no claim to make
        wait = ctx.graph_room_wait(min(PAGES_IN_FLIGHT * self.page_size, left))
        return wait if wait > ROOM_WAIT_SECONDS else 0.0

    def _reach(self, position: int, ids: Sequence[str]) -> int:
        return min(len(ids), position + RESERVED_PAGES * self.page_size)

    @staticmethod
    def _others_wait(ctx: StepContext) -> bool:
        """Whether other initial syncs or re-syncs wait for a worker (a queue peek, cached)."""
        return ctx.bulk_waiting()

    def _page(self, profile: SyncProfile, ctx: StepContext, batch: Sequence[str], records: dict[str, dict[str, Any]],
              *, recovering: bool) -> _PageResult:
        """Plan and send one page; returns its report, the link rows to commit and how many
        items it sent.

        A fresh page has no link rows yet: none is read. A page whose creates may have been
        sent by a step that died (``recovering``) reads the rows its items may have, and each
        item without one is planned as a pending create, so that the executor looks for the
        earlier attempt's copy by its marker before creating one (engine P1, P3)."""
        a = ctx.rules
        in_order = [records[i] for i in batch if i in records]  # one deleted meanwhile is no more
        chosen = [r for r in in_order if not a.excluded(r)]
        seen = [a.crm_to_seen(r) for r in chosen]
        known: list[LinkRow] = []
        if recovering:
            known = self.cycle.links.load(profile.links_partition, crm_ids=[s.item_id for s in seen])
            linked = {row.crm_id for row in known}
            known += [_maybe_created(s, a, self._now()) for s in seen if s.item_id not in linked]
        page = PageRows()
        report = self.cycle.run(profile, ctx, SideChanges(seen=tuple(seen)), SideChanges(), every=known,
                                notes=_left_out(a, in_order, chosen), links=page)
        return report, page.rows(), len(chosen)

    @staticmethod
    def _records(ctx: StepContext, ids: Sequence[str], listed: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """A page's records: as the selection pass listed them when this step made it (no
        second read of the CRM), else read by id (a later step of a long sync)."""
        if ids and all(i in listed for i in ids):
            return {i: listed.pop(i) for i in ids}
        return ctx.records.by_ids(ctx.rules.crm_module, ids, ctx.rules.crm_fields) if ids else {}  # type: ignore[arg-type]

    def _select(self, profile: SyncProfile, ctx: StepContext,
                stored: InitialState) -> tuple[SyncProfile, list[str], InitialProgress, dict[str, dict[str, Any]]]:
        """The selection pass: every candidate's ordering key, the cap's best kept in order
        (R3.5, R4.6); what is left out is noted for the ledger (out of scope, over the cap).
        It lists the records with every field the pages need, and returns the chosen ones: this
        step's pages need not read them again (the CRM read once, not twice; issue 21). Only
        the cap's best so far are kept whole, so memory stays within about twice the cap."""
        a = ctx.rules
        started = self._now()
        query, whole = selection_listing(a, ctx.owner_id)
        keys: list[tuple[list[Any], str]] = []
        names: dict[str, str] = {}
        notes: list[Note] = []
        records: dict[str, dict[str, Any]] = {}
        listed_ids: set[str] = set()
        for page in ctx.records.pages(query):
            for record in page.records:
                record_id, name, reason = str(record["id"]), a.crm_label(record), a.excluded(record)
                if record_id in listed_ids:
                    # Listed twice (a record edited during the listing moves between the CRM's
                    # pages): sent twice, its second copy would take the first one's link row
                    # and leave the first copy in Outlook unlinked. Its edit is two-way sync's.
                    continue
                listed_ids.add(record_id)
                if reason:
                    why, detail = why_excluded(reason)
                    notes.append(Note(Side.CRM, record_id, name, why, detail=detail))
                else:
                    keys.append((a.initial_key(record), record_id))
                    names[record_id] = name
                    if whole:
                        records[record_id] = record
            if len(records) > 2 * max(a.initial_cap, 1):
                records = {i: records[i] for i in best(keys, a.initial_cap) if i in records}
        chosen = best(keys, a.initial_cap)
        kept = set(chosen)
        notes += [Note(Side.CRM, i, names[i], Why.OVER_CAP) for _, i in keys if i not in kept]
        # Saved with the progress that reserves the first pages (the write-ahead of their creates).
        progress = InitialProgress(done=0, reserved=self._reach(0, chosen), synced=0, total=len(chosen))
        if stored.progress is not None:
            # Selected again over pages already sent (a selection lost meanwhile): the pages
            # may find items already linked or created, so each is read and looked for first.
            progress = InitialProgress(done=0, reserved=len(chosen), synced=0, total=len(chosen))
        # Into the member's filter of linked CRM ids before any link names them (the pages' rows
        # name only these): a new generation's first selection, its links empty, makes the
        # filter trusted at once (``holder_filters``).
        fresh = stored.progress is None and stored.chunks == 0 and profile.synced_items == 0
        ctx.announce_crm_ids(chosen, fresh)
        self.cycle.links.select(profile.links_partition, chosen, progress, replacing=stored)
        if self.cycle.ledger is not None and notes:
            # As of the listing's start: a record changed after it is a change to sync (Cycle).
            self.cycle.ledger.note(profile.history_partition, notes, at=started)
        return profile.model_copy(
            update={"initial_cursor": "0", "initial_total": len(chosen), "initial_done": 0, "synced_items": 0,
                    "crm_watermark": started}
        ), chosen, progress, {i: records[i] for i in chosen if i in records}


def selection_listing(a: KindRules, owner_id: str | None) -> tuple[ListQuery, bool]:
    """The selection pass's listing, and whether it carries every field the pages need: it
    does unless that passes the CRM's 50 fields a call (a contacts mapping of nearly 50 fields);
    then only the ordering keys, scope and names are listed, and the pages read by id."""
    try:
        every = tuple(dict.fromkeys((*a.scan_fields, *a.crm_fields)))
        return ListQuery(module=a.crm_module, fields=every, owner_id=owner_id), True  # type: ignore[arg-type]
    except ValueError:
        return ListQuery(module=a.crm_module, fields=a.scan_fields, owner_id=owner_id), False  # type: ignore[arg-type]


def _maybe_created(seen: ItemSeen, a: KindRules, now: datetime) -> LinkRow:
    """The pending create a page's earlier attempt may have made (a range write-ahead keeps
    no row per item): as the engine plans a create, so the same transaction key."""
    key = derive_key("create", Side.OUTLOOK, seen.item_id, seen.version)
    return LinkRow(link_id=key, state=LinkState.PENDING_CREATE_OUTLOOK, crm_id=seen.item_id, crm_version=seen.version,
                   fields=dict(seen.fields), content_hash=a.normalisation.fingerprint(seen.fields), transaction_key=key,
                   pending_since=now)


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
