"""One step of one member's sync (DESIGN §8): take the lease, observe both sides, plan,
check the guards, execute, save the cursors, and queue the next step if there is one.

- ``initial``: first a selection pass over the member's CRM items (ordering keys only,
  R3.5/R4.6), then one CRM page per step; resumable from the stored cursor after a crash.
- ``delta``: the Graph delta round from the stored link and the CRM changes since the
  watermark plus the CRM's deleted list; run on webhooks and by the sweep timer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.crm.records import CrmRecords, ListCursor, ListQuery
from shared.graph.errors import GraphError
from shared.graph.sync_errors import ItemNotFound
from shared.storage import ConcurrencyConflict, Stored
from shared.sync import ConflictPolicy, ItemDeleted, ItemSeen, SideChanges, plan
from shared.sync.changes import DeleteSignal
from shared.sync.conflicts import ConflictStore
from shared.sync.executor import ExecutionReport, Executor
from shared.sync.guards import PauseForConfirmation, check_deletions_are_signalled, check_mass_change
from shared.sync.jobs import SyncJob
from shared.sync.kind import SyncKindAdapter
from shared.sync.link_store import LinkStore
from shared.sync.links import LinkRow, LinkState, Side
from shared.sync.profiles import LeaseHeld, ProfileStore, SyncProfile, SyncState
from shared.sync.remap import rebase
from shared.sync.selection import selected, threshold

log = logging.getLogger(__name__)

MAX_DELTA_PAGES_PER_STEP = 50
# Steps queued by a webhook (see SyncService.request_delta): they read the CRM's deleted list
# only when the CRM reported a deletion; every other step (sweep, continuation) reads it.
WEBHOOK_REASONS = frozenset({"graph webhook", "crm webhook"})
# One initial step writes pages for this long, then queues the next (progress is saved per step).
INITIAL_STEP_SECONDS = 10.0
REMAP_WAIT_SECONDS = 30


@dataclass
class StepContext:
    """What a step needs for one member (built by the composition root)."""

    adapter: SyncKindAdapter
    records: CrmRecords
    owner_id: str  # the member's CRM user id (R3.4, R4.5: only their own items)
    enqueue: Callable[[SyncJob, int], None]  # (job, delay seconds)
    on_container_gone: Callable[[SyncProfile, str], None]
    # Subscribes to the Outlook container's changes; returns the profile fields to store.
    subscribe: Callable[[SyncProfile], dict[str, Any]] | None = None


class SyncRunner:
    def __init__(
        self,
        profiles: ProfileStore,
        links: LinkStore,
        conflicts: ConflictStore,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.profiles = profiles
        self.links = links
        self.conflicts = conflicts
        self._now = clock

    def run(
        self, job: SyncJob, ctx: StepContext, *, delivery: str | None = None, current: Stored[SyncProfile] | None = None
    ) -> SyncProfile:
        """One step under the member's lease (renewed while it runs). ``delivery``: the queue
        message id, the step's name on the lease. Raises LeaseHeld when the step must be
        retried later (see ``_take_lease``)."""
        current = current or self.profiles.get(job.member, job.kind)
        wanted = SyncState.INITIAL if job.step == "initial" else SyncState.ACTIVE
        if job.step == "remap" and current is not None and current.entity.state in (SyncState.INITIAL, SyncState.PAUSED):
            # Pages synced before the mapping changed need it too: wait for two-way sync.
            ctx.enqueue(job, REMAP_WAIT_SECONDS)
            return current.entity
        if current is not None and job.generation is not None and job.generation != current.entity.generation:
            log.info("%s %s step of %s dropped: it belongs to an earlier Enable", job.kind, job.step, job.member)
            return current.entity
        if current is None or current.entity.state is not wanted:
            # A webhook during the initial sync (our own creates echo) or a late step of a
            # phase that ended: nothing to do; the initial sync starts the delta rounds itself.
            log.info("%s %s step of %s skipped: the sync is %s", job.kind, job.step, job.member,
                     current.entity.state.value if current else "gone")
            return current.entity if current else None  # type: ignore[return-value]
        taken = self._take_lease(job, current, job.holder or delivery)
        if taken is None:
            return current.entity
        profile, owner, read_deleted = taken
        # Follow-up steps are queued only once the lease is released, or they would find it
        # held and wait for a retry.
        followups: list[tuple[SyncJob, int]] = []
        step_ctx = replace(ctx, enqueue=lambda next_job, delay: followups.append((next_job, delay)))
        with self.profiles.heartbeat(job.member, job.kind, owner) as lease:
            try:
                if profile.state is SyncState.INITIAL:
                    profile = self._initial_step(profile, step_ctx)
                    if profile.state is SyncState.ACTIVE and profile.subscription_id is None and ctx.subscribe is not None:
                        # Two-way sync starts: Outlook's changes are pushed from now on (see
                        # SyncService.enable), so "active" always means "subscribed".
                        profile = profile.model_copy(update=ctx.subscribe(profile))
                elif job.step == "remap":
                    profile = self._remap_step(profile, job, step_ctx)
                elif profile.state is SyncState.ACTIVE:
                    if profile.subscription_id is None and ctx.subscribe is not None:
                        # Not subscribed yet (the initial sync's last step failed after its pages):
                        # stored at once, so a failing step leaves no orphan subscription.
                        fresh = ctx.subscribe(profile)
                        self.profiles.update(job.member, job.kind, lambda p: p.model_copy(update=fresh))
                        profile = profile.model_copy(update=fresh)
                    profile = self._delta_step(profile, step_ctx, read_deleted=read_deleted)
            finally:
                lease.stop()
                if self._release(job, profile, owner):
                    # Asked by a webhook's step that was dropped for it (``_leave_to_holder``):
                    # queued even when this step fails, or that change waits for the sweep.
                    ctx.enqueue(SyncJob.of(profile, "delta", "rerun"), 0)
                # Even when the step fails after them: what they continue was saved with the
                # release (e.g. the initial sync's last pages, then subscribing failed: the
                # profile is active, and its redelivered message is skipped as out of phase).
                for next_job, delay in followups:
                    ctx.enqueue(next_job, delay)
        return profile

    def _take_lease(
        self, job: SyncJob, current: Stored[SyncProfile], name: str | None
    ) -> tuple[SyncProfile, str, bool] | None:
        """The lease, with the profile and whether to read the CRM's deleted list; None when
        the step is left to the lease's holder. Raises LeaseHeld when this step must wait:
        its own earlier delivery holds the lease (that delivery died, or is late), or it is a
        remap page behind another step."""
        for _ in range(3):
            delta = current.entity.state is SyncState.ACTIVE and job.step == "delta"
            # From here on, a new change must queue a new step (this one may miss it): the marks
            # webhooks set are cleared with the lease taken, and what they asked for is done.
            try:
                profile, _, owner = self.profiles.acquire(
                    job.member, job.kind, holder=name, stored=current,
                    taking=(lambda p: {"delta_queued": False, "crm_deletions_noticed": False, "delta_rerun": False})
                    if delta else None,
                )
            except LeaseHeld as held:
                if name is not None and (held.owner or "").startswith(f"{name}|"):
                    raise
                if self._leave_to_holder(job):
                    return None
                if job.step != "delta":
                    raise
                # Released meanwhile (the ask found no holder): try again at once.
                latest = self.profiles.get(job.member, job.kind)
                if latest is None or latest.entity.state is not SyncState.ACTIVE:
                    return None
                current = latest
                continue
            return profile, owner, current.entity.crm_deletions_noticed or job.reason not in WEBHOOK_REASONS
        raise LeaseHeld(f"{job.kind} sync of {job.member} keeps changing hands", 1)

    def _leave_to_holder(self, job: SyncJob) -> bool:
        """A step finding its member's lease held: can the running step take care of it?

        - an initial step: yes, the holder is the initial sync's chain, which queues its own
          next step (a crashed holder's own message comes back and waits for the lease to
          lapse: see ``_take_lease``); this one is a duplicate;
        - a delta step: yes, once the holder is asked to run one more delta round when it ends
          (``delta_rerun``), asked only while the lease is still held, so the ask cannot come
          after the holder's release has looked;
        - otherwise (a remap page): no, it is retried later.
        Re-queuing instead would multiply jobs: every copy of a delivered-twice message would
        come back again and again while the holder runs."""
        if job.step == "initial":
            log.info("%s initial step of %s left to the running step", job.kind, job.member)
            return True
        if job.step != "delta":
            return False
        asked = False

        def ask(profile: SyncProfile) -> SyncProfile:
            nonlocal asked
            held = profile.lease_until is not None and profile.lease_until > self._now()
            asked = held and profile.state is SyncState.ACTIVE
            return profile.model_copy(update={"delta_rerun": True}) if asked and not profile.delta_rerun else profile

        self.profiles.update(job.member, job.kind, ask)
        if asked:
            log.info("%s delta step of %s left to the running step (one more round)", job.kind, job.member)
        return asked

    def _release(self, job: SyncJob, stepped: SyncProfile, owner: str) -> bool:
        """Write the step's result and free the lease, re-reading on a concurrent change
        (a webhook marking a delta step queued). A lease found taken (this step stalled
        past it) keeps the other step's state: this one's work is redone from the cursors.
        Returns whether a delta round was asked for meanwhile (``_leave_to_holder``)."""
        for _ in range(8):
            latest = self.profiles.get(job.member, job.kind)
            if latest is None:
                return False
            if latest.entity.lease_owner != owner:
                log.error("%s step of %s lost its lease: its cursors are not saved", job.kind, job.member)
                if latest.entity.state is SyncState.DISABLED or latest.entity.generation != stepped.generation:
                    # Disabled (and maybe enabled again) under this step: the link rows it
                    # wrote after the purge belong to no generation that reads them.
                    self.links.purge(stepped.links_partition)
                return False
            released = _carry(latest.entity, stepped)
            rerun = released.delta_rerun and released.state is SyncState.ACTIVE
            try:
                self.profiles.release(released.model_copy(update={"delta_rerun": False}), latest.etag)
                return rerun
            except ConcurrencyConflict:
                continue
        raise ConcurrencyConflict(f"could not release the lease of {job.member}")

    # -- the initial sync ------------------------------------------------------------------

    def _initial_step(self, profile: SyncProfile, ctx: StepContext) -> SyncProfile:
        """CRM pages for up to ``INITIAL_STEP_SECONDS``, the next page read while the current
        one is written (a queue hop per page would cost more than the page)."""
        a = ctx.adapter
        if profile.initial_cursor is None:
            return self._select(profile, ctx)
        limit = _limit(profile)
        deadline = time.monotonic() + INITIAL_STEP_SECONDS
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="crm-prefetch") as prefetch:
            cursor = ListCursor.model_validate_json(profile.initial_cursor)
            upcoming = prefetch.submit(_first_page, ctx.records, cursor)
            while True:
                page = upcoming.result()
                if page is not None and page.next is not None:
                    upcoming = prefetch.submit(_first_page, ctx.records, page.next)
                chosen = [r for r in (page.records if page else []) if selected(a.initial_key(r), limit) and not a.excluded(r)]
                report = self._cycle(profile, ctx, SideChanges(seen=tuple(a.crm_to_seen(r) for r in chosen)), SideChanges())
                done = profile.initial_done + len(chosen)
                if page is None or page.next is None:
                    break
                profile = self._counted(profile, report, initial_done=done, initial_cursor=page.next.model_dump_json())
                if time.monotonic() > deadline:
                    ctx.enqueue(SyncJob.of(profile, "initial", "continue"), 0)
                    return profile
        # Done: start two-way sync from here (R3.3): a Graph delta round and the CRM watermark.
        ctx.enqueue(SyncJob.of(profile, "delta", "initial done"), 0)
        return self._counted(profile, report, initial_done=done, state=SyncState.ACTIVE, initial_cursor=None)

    def _select(self, profile: SyncProfile, ctx: StepContext) -> SyncProfile:
        """The selection pass: every candidate's ordering key, the cap best kept (R3.5, R4.6)."""
        a = ctx.adapter
        started = self._now()
        query = ListQuery(module=a.crm_module, fields=a.scan_fields, owner_id=ctx.owner_id)  # type: ignore[arg-type]
        keys = (a.initial_key(r) for page in ctx.records.pages(query) for r in page.records if not a.excluded(r))
        limit, total = threshold(keys, a.initial_cap)
        full = ListQuery(module=a.crm_module, fields=a.crm_fields, owner_id=ctx.owner_id)  # type: ignore[arg-type]
        ctx.enqueue(SyncJob.of(profile, "initial", "selected"), 0)
        return profile.model_copy(
            update={
                "initial_cursor": ListCursor(query=full).model_dump_json(),
                "initial_threshold": limit,
                "initial_total": total,
                "initial_done": 0,
                "crm_watermark": started,
            }
        )

    # -- two-way sync ------------------------------------------------------------------------

    def _delta_step(self, profile: SyncProfile, ctx: StepContext, *, read_deleted: bool = True) -> SyncProfile:
        """One delta round. ``read_deleted``: whether to read the CRM's deleted list (a sweep,
        a continuation, or a CRM callback that reported a deletion); it has its own watermark,
        so skipping it loses nothing: the next read covers the time skipped."""
        a = ctx.adapter
        started = self._now()
        outlook_seen: list[ItemSeen] = []
        outlook_gone: list[ItemDeleted] = []
        resume = profile.delta_link
        full_round = resume is None  # the first round, or one after Graph expired our link
        more = False
        masters: set[str] = set()
        for count, page in enumerate(a.delta(profile.container_id or "", resume), start=1):
            for item in page.changed:
                raw = item.to_graph()
                master = a.series_master_of(raw) if a.series_master_of else None
                if master:
                    masters.add(master)
                else:
                    outlook_seen.append(a.outlook_to_seen(raw))
            outlook_gone += [ItemDeleted(r.id, DeleteSignal.GRAPH_REMOVED) for r in page.removed]
            resume = page.resume_link
            if count >= MAX_DELTA_PAGES_PER_STEP and not page.is_last:
                more = True
                break
        if a.read_series is not None:
            seen_series, gone_series = self._series(profile, a, masters, removals=bool(outlook_gone))
            known = {s.item_id for s in outlook_seen}
            outlook_seen += [s for s in seen_series if s.item_id not in known]
            outlook_gone += [ItemDeleted(i, DeleteSignal.NOT_FOUND) for i in gone_series]
        every: list[LinkRow] | None = None  # scanned once for both uses on a full round
        if full_round and not more:
            every = self.links.all(profile.links_partition)
            listed = {s.item_id for s in outlook_seen} | {d.item_id for d in outlook_gone} | masters
            outlook_gone += self._unlisted_and_gone(profile, a, listed, every)
        watermark = profile.crm_watermark or started
        since = watermark - timedelta(seconds=1)  # the CRM compares whole seconds
        query = ListQuery(module=a.crm_module, fields=a.crm_fields, owner_id=ctx.owner_id, modified_since=since)  # type: ignore[arg-type]
        crm_seen = [a.crm_to_seen(r) for r in ctx.records.changed_since(query)]
        deleted_mark = profile.crm_deleted_watermark
        read_deleted = read_deleted or deleted_mark is None
        if read_deleted:
            deleted_since = min(deleted_mark or watermark, watermark) - timedelta(seconds=1)
            crm_gone = [
                ItemDeleted(d.id, DeleteSignal.CRM_DELETED_LIST) for d in ctx.records.deleted(a.crm_module, since=deleted_since)  # type: ignore[arg-type]
            ]
        else:
            crm_gone = []
        report = self._cycle(
            profile, ctx, SideChanges(tuple(crm_seen), tuple(crm_gone)), SideChanges(tuple(outlook_seen), tuple(outlook_gone)),
            every=every,
        )
        if isinstance(report, PauseForConfirmation):
            return profile.model_copy(
                update={"state": SyncState.PAUSED, "reason": "mass_change", "pending_deletions": sum(report.deletions.values())}
            )
        if more:
            ctx.enqueue(SyncJob.of(profile, "delta", "continue"), 0)
        # The member's answer to a paused mass change holds until the round that saw it ends.
        answer = profile.mass_change_answer if more else None
        return self._counted(
            profile, report, delta_link=resume, crm_watermark=started if not more else watermark, mass_change_answer=answer,
            crm_deleted_watermark=started if read_deleted and not more else deleted_mark,
        )

    def _unlisted_and_gone(
        self, profile: SyncProfile, a: SyncKindAdapter, listed: set[str], every: list[LinkRow]
    ) -> list[ItemDeleted]:
        """A full round lists what exists and reports nothing removed, so an item deleted in
        Outlook before it (during the initial sync, or while the link Graph expired was
        stored) would stay in the CRM for good. Linked items the round did not list are read:
        a 404 is their deletion. (A calendar round only lists its window: events outside it
        are read and found.)"""
        unlisted = [row.outlook_id for row in every
                    if row.state is LinkState.SYNCED and row.outlook_id and row.outlook_id not in listed]
        if not unlisted:
            return []
        read = a.outlook.get_items(profile.container_id or "", unlisted)
        gone = [item_id for item_id, found in zip(unlisted, read, strict=True) if type(found) is ItemNotFound]
        if gone:
            log.info("%s full delta round of %s: %d linked items no longer in Outlook", profile.row_key, profile.partition_key, len(gone))
        return [ItemDeleted(item_id, DeleteSignal.NOT_FOUND) for item_id in gone]

    def _series(
        self, profile: SyncProfile, a: SyncKindAdapter, masters: set[str], *, removals: bool
    ) -> tuple[list[ItemSeen], list[str]]:
        """Recurring series as their masters: those whose occurrences changed, and, when
        items vanished (a deleted series shows as its occurrences removed), every linked
        series, so that a master gone for good (a confirmed 404) deletes its partner."""
        wanted = set(masters)
        if removals:
            wanted |= set(self.links.series_outlook_ids(profile.links_partition))
        if not wanted or a.read_series is None:
            return [], []
        return a.read_series(profile.container_id or "", sorted(wanted))

    # -- re-sync after a mapping change ----------------------------------------------------

    def _remap_step(self, profile: SyncProfile, job: SyncJob, ctx: StepContext) -> SyncProfile:
        """One CRM page of the member's linked items: both sides read, the changed pairs
        re-synced through the ordinary merge (see ``shared.sync.remap``)."""
        a = ctx.adapter
        partition = profile.links_partition
        if job.cursor is None:
            query = ListQuery(module=a.crm_module, fields=a.crm_fields, owner_id=ctx.owner_id)  # type: ignore[arg-type]
            cursor = ListCursor(query=query)
        else:
            cursor = ListCursor.model_validate_json(job.cursor)
        page = next(iter(ctx.records.pages(cursor)), None)
        crm_seen = {s.item_id: s for s in (a.crm_to_seen(r) for r in (page.records if page else [])) if not s.excluded}
        rows = [r for r in self.links.load(partition, crm_ids=crm_seen) if r.state is LinkState.SYNCED and r.crm_id in crm_seen]
        items = a.outlook.get_items(profile.container_id or "", [r.outlook_id for r in rows]) if rows else []
        outlook_seen = {
            seen.item_id: seen for seen in (a.outlook_to_seen(i.to_graph()) for i in items if not isinstance(i, GraphError))
        }
        rebased = [
            rebase(r, crm_seen[r.crm_id].fields, outlook_seen[r.outlook_id].fields, job.pairs, a.normalisation)  # type: ignore[index]
            for r in rows if r.outlook_id in outlook_seen  # a vanished item is the delta round's business
        ]
        if rebased:
            result = plan(
                rebased,
                SideChanges(seen=tuple(crm_seen[r.crm_id] for r in rebased)),  # type: ignore[index]
                SideChanges(seen=tuple(outlook_seen[r.outlook_id] for r in rebased)),  # type: ignore[index]
                now=self._now(), policy=ConflictPolicy(profile.conflict_policy), normalisation=a.normalisation,
            )
            executor = Executor(
                a, ctx.records, self.links, self.conflicts, partition=partition,
                container_id=profile.container_id or "", owner_id=ctx.owner_id, clock=self._now,
                conflicts_partition=profile.conflicts_partition,
            )
            report = executor.apply(result, {r.link_id: r for r in rebased})
            profile = self._counted(profile, report)
        if page is not None and page.next is not None:
            ctx.enqueue(job.model_copy(update={"cursor": page.next.model_dump_json(), "reason": "continue"}), 0)
        return profile

    # -- one plan-and-execute cycle ------------------------------------------------------------

    def _cycle(
        self, profile: SyncProfile, ctx: StepContext, crm: SideChanges, outlook: SideChanges,
        every: list[LinkRow] | None = None,
    ) -> ExecutionReport | PauseForConfirmation:
        partition = profile.links_partition
        crm_ids = _ids(crm) | {s.partner_id for s in outlook.seen if s.partner_id}
        outlook_ids = _ids(outlook) | {s.partner_id for s in crm.seen if s.partner_id}
        known = {row.link_id: row for row in self.links.load(partition, crm_ids=crm_ids, outlook_ids=outlook_ids, every=every)}
        outlook = self._with_outlook_markers(profile, ctx, known, outlook)
        result = plan(
            known.values(), crm, outlook, now=self._now(), policy=ConflictPolicy(profile.conflict_policy),
            normalisation=ctx.adapter.normalisation, restore_deletions=profile.mass_change_answer == "keep",
        )
        check_deletions_are_signalled(result, crm, outlook)
        verdict = check_mass_change(result, list(known.values()), synced_total=profile.synced_items)
        confirmed = profile.mass_change_answer == "delete"
        if isinstance(verdict, PauseForConfirmation) and profile.state is SyncState.ACTIVE and not confirmed:
            return verdict
        executor = Executor(
            ctx.adapter, ctx.records, self.links, self.conflicts, partition=partition,
            container_id=profile.container_id or "", owner_id=ctx.owner_id, clock=self._now,
            conflicts_partition=profile.conflicts_partition,
        )
        return executor.apply(result, known)

    def _with_outlook_markers(
        self, profile: SyncProfile, ctx: StepContext, known: dict[str, LinkRow], outlook: SideChanges
    ) -> SideChanges:
        """Graph's delta never returns our marker (no ``$expand`` there). While a create
        towards Outlook is pending (a step stopped between its creates and its link rows), an
        Outlook item no link knows may be that create's result: its marker is read, so the
        engine adopts it (P3) instead of copying it back into the CRM as a new item."""
        if not any(row.state.creating_on is Side.OUTLOOK for row in known.values()):
            return outlook
        linked = {row.outlook_id for row in known.values() if row.outlook_id}
        unknown = [s.item_id for s in outlook.seen if s.partner_id is None and s.item_id not in linked]
        if not unknown:
            return outlook
        a = ctx.adapter
        read = a.outlook.get_items(profile.container_id or "", unknown)
        marked = {
            seen.item_id: seen
            for seen in (a.outlook_to_seen(item.to_graph()) for item in read if not isinstance(item, GraphError))
            if seen.partner_id
        }
        return replace(outlook, seen=tuple(marked.get(s.item_id, s) for s in outlook.seen))

    def _counted(self, profile: SyncProfile, report: ExecutionReport | PauseForConfirmation, **changes: Any) -> SyncProfile:
        if isinstance(report, PauseForConfirmation):
            return profile.model_copy(update=changes)
        created = sum(report.created.values())
        removed = sum(report.deleted.values())
        return profile.model_copy(
            update={
                "synced_items": max(0, profile.synced_items + created - removed),
                "conflicts": profile.conflicts + report.conflicts,
                "errors": profile.errors + len(report.failures),
                "last_error": report.failures[-1] if report.failures else profile.last_error,
                "last_sync_at": self._now(),
                **changes,
            }
        )


def _first_page(records: CrmRecords, cursor: ListCursor) -> Any:
    return next(iter(records.pages(cursor)), None)


def _ids(changes: SideChanges) -> set[str]:
    return {s.item_id for s in changes.seen} | {d.item_id for d in changes.deleted}


def _limit(profile: SyncProfile) -> list[Any] | None:
    return profile.initial_threshold


def _carry(latest: SyncProfile, stepped: SyncProfile) -> SyncProfile:
    """The step's result, unless the member changed the state meanwhile (e.g. disabled)."""
    if latest.state is SyncState.DISABLED or latest.generation != stepped.generation or latest.enabled_at != stepped.enabled_at:
        return latest
    return stepped.model_copy(
        update={"lease_owner": latest.lease_owner, "lease_until": latest.lease_until, "delta_queued": latest.delta_queued,
                "delta_queued_at": latest.delta_queued_at,
                "crm_deletions_noticed": latest.crm_deletions_noticed, "delta_rerun": latest.delta_rerun}
    )

