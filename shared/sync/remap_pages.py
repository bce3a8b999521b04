"""The re-sync after a contacts mapping change, one CRM page per step: both sides read, the
changed pairs re-synced through the ordinary merge (see ``shared.sync.remap``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from shared.crm.records import ListCursor, ListQuery
from shared.graph.errors import GraphError
from shared.sync import ConflictPolicy, SideChanges, plan
from shared.sync.cycle import Cycle
from shared.sync.executor import Executor
from shared.sync.jobs import StepReason, SyncJob
from shared.sync.links import LinkState
from shared.sync.ports import ConflictLog, LinkRows
from shared.sync.profiles import SyncProfile
from shared.sync.remap import rebase
from shared.sync.retries import retry_delay, should_retry
from shared.sync.step_context import StepContext


class RemapPages:
    def __init__(
        self, cycle: Cycle, links: LinkRows, conflicts: ConflictLog,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.cycle = cycle
        self.links = links
        self.conflicts = conflicts
        self._now = clock

    def step(self, profile: SyncProfile, job: SyncJob, ctx: StepContext) -> SyncProfile:
        """One CRM page of the member's linked items: both sides read, the changed pairs
        re-synced through the ordinary merge (see ``shared.sync.remap``)."""
        a = ctx.rules
        partition = profile.links_partition
        if job.cursor is None:
            query = ListQuery(module=a.crm_module, fields=a.crm_fields, owner_id=ctx.owner_id)  # type: ignore[arg-type]
            cursor = ListCursor(query=query)
        else:
            cursor = ListCursor.model_validate_json(job.cursor)
        page = next(iter(ctx.records.pages(cursor)), None)
        crm_seen = {s.item_id: s for s in (a.crm_to_seen(r) for r in (page.records if page else [])) if not s.excluded}
        rows = [r for r in self.links.load(partition, crm_ids=crm_seen) if r.state is LinkState.SYNCED and r.crm_id in crm_seen]
        items = ctx.outlook.get_items(profile.container_id or "", [r.outlook_id for r in rows]) if rows else []
        outlook_seen = {
            seen.item_id: seen for seen in (ctx.outlook.seen(i) for i in items if not isinstance(i, GraphError))
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
                a, ctx.outlook, ctx.records, self.links, self.conflicts, partition=partition,
                container_id=profile.container_id or "", owner_id=ctx.owner_id, clock=self._now,
                history_partition=profile.history_partition, announce=ctx.announce_crm_ids,
            )
            report = executor.apply(result, {r.link_id: r for r in rebased})
            profile = self.cycle.counted(profile, report)
            if should_retry(report.passing, job.retry):
                # This page again after a pause (``shared.sync.retries``): a pair the remap did
                # not re-sync would keep its old mapping until the member remaps again.
                ctx.enqueue(job.model_copy(update={"retry": job.retry + 1, "reason": StepReason.RETRY}), retry_delay(job.retry + 1))
                return profile
        if page is not None and page.next is not None:
            ctx.enqueue(job.model_copy(update={"cursor": page.next.model_dump_json(), "reason": StepReason.CONTINUE, "retry": 0}), 0)
        return profile
