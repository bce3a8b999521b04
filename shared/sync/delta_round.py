"""Two-way sync's round (R3.3, R4.4): the Graph delta round from the stored link and the CRM
changes since the watermark (plus the CRM's deleted list), planned and applied through
``Cycle``; run on webhooks and by the sweep timer."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from shared.crm.records import ListQuery
from shared.graph.errors import GraphError
from shared.graph.sync_errors import ItemNotFound
from shared.sync import ItemDeleted, ItemSeen, SideChanges
from shared.sync.changes import DeleteSignal
from shared.sync.cycle import Cycle
from shared.sync.guards import PauseForConfirmation
from shared.sync.jobs import StepReason, SyncJob
from shared.sync.kind import OutlookSide
from shared.sync.ledger import Note, Why
from shared.sync.ledger_store import SyncLedger
from shared.sync.lifecycle import Event, decide
from shared.sync.links import LinkRow, LinkState, Side, linked_crm_ids
from shared.sync.ports import LinkRows
from shared.sync.profiles import SyncProfile
from shared.sync.retries import retry_delay, should_retry
from shared.sync.step_context import StepContext

log = logging.getLogger(__name__)

MAX_DELTA_PAGES_PER_STEP = 50


class DeltaRound:
    def __init__(
        self, cycle: Cycle, links: LinkRows, ledger: SyncLedger | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.cycle = cycle
        self.links = links
        self.ledger = ledger
        self._now = clock

    def step(
        self, profile: SyncProfile, ctx: StepContext, *, read_deleted: bool = True, look_outside: bool = False,
    ) -> SyncProfile:
        """One delta round. ``read_deleted``: whether to read the CRM's deleted list (a sweep,
        a continuation, or a CRM callback that reported a deletion); it has its own watermark,
        so skipping it loses nothing: the next read covers the time skipped. ``look_outside``:
        note the Outlook items the round's window cannot see (the sweep's rounds)."""
        a = ctx.rules
        if look_outside and self.ledger is not None:
            self._note_outside_window(profile, ctx.outlook)
        started, began = self._now(), time.monotonic()
        outlook_seen: list[ItemSeen] = []
        outlook_gone: list[ItemDeleted] = []
        resume = profile.delta_link
        if resume is not None and a.round_is_stale(profile.delta_window_from, started):
            log.info("%s sync of %s: a new delta round, so the window moves with time", profile.row_key, profile.partition_key)
            resume = None
        # The first round, one after Graph expired our link, or one whose window must move.
        full_round = resume is None
        window_from = started if full_round else profile.delta_window_from or started
        watermark = profile.crm_watermark or started
        since = watermark - timedelta(seconds=1)  # the CRM compares whole seconds
        query = ListQuery(module=a.crm_module, fields=a.crm_fields, owner_id=ctx.owner_id, modified_since=since)  # type: ignore[arg-type]
        deleted_mark = profile.crm_deleted_watermark
        read_deleted = read_deleted or deleted_mark is None
        deleted_since = min(deleted_mark or watermark, watermark) - timedelta(seconds=1)

        def read_crm() -> tuple[list[ItemSeen], list[ItemDeleted]]:
            # One call after the other: one of the org's shared CRM slots, not two (a second
            # costs its lease and its give-back, two Table writes, for a few milliseconds).
            seen = [a.crm_to_seen(r) for r in ctx.records.changed_since(query)]
            gone = [ItemDeleted(d.id, DeleteSignal.CRM_DELETED_LIST)
                    for d in ctx.records.deleted(a.crm_module, since=deleted_since)] if read_deleted else []  # type: ignore[arg-type]
            return seen, gone

        # The CRM's side (and, on a full round, our link rows) are read while Graph's delta pages
        # are: three services, no order between their reads (the round's time is ``started``,
        # taken before all of them), and a webhook's change reaches the other side one round
        # trip sooner.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="delta-read") as reads:
            crm_read = reads.submit(read_crm)
            linked = reads.submit(self.links.all, profile.links_partition) if full_round else None
            more = False
            masters: set[str] = set()
            for count, page in enumerate(ctx.outlook.delta_pages(profile.container_id or "", resume), start=1):
                for item in page.changed:
                    master = a.series_master_of(item.to_graph())
                    if master:
                        masters.add(master)
                    else:
                        outlook_seen.append(ctx.outlook.seen(item))
                outlook_gone += [ItemDeleted(r.id, DeleteSignal.GRAPH_REMOVED) for r in page.removed]
                resume = page.resume_link
                if count >= MAX_DELTA_PAGES_PER_STEP and not page.is_last:
                    more = True
                    break
            seen_series, gone_series = self._series(profile, ctx.outlook, masters, removals=bool(outlook_gone))
            known = {s.item_id for s in outlook_seen}
            outlook_seen += [s for s in seen_series if s.item_id not in known]
            outlook_gone += [ItemDeleted(i, DeleteSignal.NOT_FOUND) for i in gone_series]
            every: list[LinkRow] | None = None  # scanned once for both uses on a full round
            listed = {s.item_id for s in outlook_seen} | {d.item_id for d in outlook_gone} | masters
            unconfirmed = profile.unconfirmed_outlook  # carried over while a paged round goes on
            if linked is not None and not more:
                every = linked.result()
                unlisted = [row for row in every if a.may_be_listed(row.fields, window_from)]
                outlook_gone += self._unlisted_and_gone(profile, ctx.outlook, listed, unlisted)
                unconfirmed = []
            elif not more:
                gone, unconfirmed = self._unconfirmed_and_gone(profile, ctx.outlook, listed)
                outlook_gone += gone
            crm_seen, crm_gone = crm_read.result()
        read_s = time.monotonic() - began
        report = self.cycle.run(
            profile, ctx, SideChanges(tuple(crm_seen), tuple(crm_gone)), SideChanges(tuple(outlook_seen), tuple(outlook_gone)),
            every=every, read_at=started, full=full_round,
        )
        if full_round and not more:  # the member's filter of linked CRM ids made or kept small (``holder_filters``)
            ctx.tend_crm_ids(lambda: linked_crm_ids(self.links.all(profile.links_partition)))
        # One line a round: where a change's time went (its reads, its plan and writes).
        log.info("%s delta round of %s: %d CRM and %d Outlook changes read in %.2f s, planned and written in %.2f s%s",
                 profile.row_key, profile.partition_key, len(crm_seen) + len(crm_gone), len(outlook_seen) + len(outlook_gone),
                 read_s, time.monotonic() - began - read_s, " (full)" if full_round else "")
        if isinstance(report, PauseForConfirmation):  # L11
            paused = decide(profile.life, Event.MASS_CHANGE_FOUND).life
            return profile.living(paused).model_copy(update={"pending_deletions": sum(report.deletions.values())})
        if should_retry(report.passing, profile.retries):
            # Writes failed for a passing reason: the cursors stay, so the retry lists these
            # changes again (and any made since), after a pause (``shared.sync.retries``).
            retries = profile.retries + 1
            ctx.enqueue(SyncJob.of(profile, "delta", StepReason.RETRY), retry_delay(retries))
            return self.cycle.counted(profile, report, retries=retries)
        if more:
            ctx.enqueue(SyncJob.of(profile, "delta", StepReason.CONTINUE), 0)
        # The member's answer to a paused mass change holds until the round that saw it ends (L17).
        if not more:
            profile = profile.living(decide(profile.life, Event.ROUND_DONE).life)
        return self.cycle.counted(
            profile, report, delta_link=resume, delta_window_from=window_from, crm_watermark=started if not more else watermark,
            crm_deleted_watermark=started if read_deleted and not more else deleted_mark, unconfirmed_outlook=unconfirmed,
            retries=0,
        )

    def _note_outside_window(self, profile: SyncProfile, outlook: OutlookSide) -> None:
        """Events made in Outlook beyond the calendar's window (one year back, two ahead) are
        never in a delta round, so they never reach the CRM: the ledger says why. Items
        carrying our marker came from the CRM and are linked."""
        outside = [s for s in outlook.outside_window(profile.container_id or "") if s.partner_id is None]
        if outside and self.ledger is not None:
            self.ledger.note(profile.history_partition,
                             [Note(Side.OUTLOOK, s.item_id, s.label, Why.OUTSIDE_WINDOW) for s in outside])

    def _unlisted_and_gone(
        self, profile: SyncProfile, outlook: OutlookSide, listed: set[str], every: list[LinkRow]
    ) -> list[ItemDeleted]:
        """A full round lists what exists and reports nothing removed, so an item deleted in
        Outlook before it (during the initial sync, or while the link Graph expired was
        stored) would stay in the CRM for good. Linked items the round did not list are read:
        a 404 is their deletion. (A calendar round only lists its window: events outside it
        are read and found.)"""
        unlisted = [row.outlook_id for row in every
                    if row.state is LinkState.SYNCED and row.outlook_id and row.outlook_id not in listed]
        gone, _ = _read_for_gone(outlook, profile.container_id or "", unlisted)
        if gone:
            log.info("%s full delta round of %s: %d linked items no longer in Outlook", profile.row_key, profile.partition_key, len(gone))
        return gone

    def _unconfirmed_and_gone(
        self, profile: SyncProfile, outlook: OutlookSide, listed: set[str]
    ) -> tuple[list[ItemDeleted], list[str]]:
        """Our own creates since the last round's read (``SyncProfile.unconfirmed_outlook``):
        the round lists each as our write's echo, unless it is already gone, and then Graph may
        report nothing (its delta state never knew it). Those not listed are read: a 404 is
        their deletion (the member deleted it, or dragged it out, within moments). Returns the
        deletions and the ids still to confirm (a read that failed otherwise)."""
        unlisted = [item_id for item_id in profile.unconfirmed_outlook if item_id not in listed]
        gone, failed = _read_for_gone(outlook, profile.container_id or "", unlisted)
        if gone:
            log.info("%s delta round of %s: %d of our new items already gone from Outlook", profile.row_key, profile.partition_key, len(gone))
        return gone, failed

    def _series(
        self, profile: SyncProfile, outlook: OutlookSide, masters: set[str], *, removals: bool
    ) -> tuple[list[ItemSeen], list[str]]:
        """Recurring series as their masters: those whose occurrences changed, and, when
        items vanished (a deleted series shows as its occurrences removed), every linked
        series, so that a master gone for good (a confirmed 404) deletes its partner."""
        wanted = set(masters)
        if removals:
            wanted |= set(self.links.series_outlook_ids(profile.links_partition))
        if not wanted:
            return [], []
        return outlook.read_series(profile.container_id or "", sorted(wanted))


def _read_for_gone(outlook: OutlookSide, container_id: str, item_ids: list[str]) -> tuple[list[ItemDeleted], list[str]]:
    """Items a round did not list, read: a 404 is their deletion. Returns the deletions and the
    ids whose read failed otherwise (nothing is known of them)."""
    if not item_ids:
        return [], []
    read = outlook.get_items(container_id, item_ids)
    gone = [ItemDeleted(i, DeleteSignal.NOT_FOUND) for i, found in zip(item_ids, read, strict=True) if type(found) is ItemNotFound]
    failed = [i for i, found in zip(item_ids, read, strict=True) if isinstance(found, GraphError) and type(found) is not ItemNotFound]
    return gone, failed
