"""Calendar and contacts sync for members (SPEC R3, R4): the profile's events (Enable,
Disable, a mass change answered; ``lifecycle.decide`` says what each does) and running a
queued step, with the errors that defer, pause or disable it. Around it: ``webhooks``
(notifications, subscriptions), ``authorization`` (paused and resumed), ``sweep``,
``member_mapping``; the steps themselves are the ``runner``'s."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from shared.accounts.models import MemberIdentity
from shared.crm.oauth import CrmTokens
from shared.storage import Stored
from shared.sync import markers
from shared.sync.authorization import SyncAuthorization
from shared.sync.contacts import ContactMapping
from shared.sync.crm_routing import CrmChange, CrmRouting
from shared.sync.dependencies import SyncDependencies
from shared.sync.held_notifications import HeldNotifications
from shared.sync.holder_filters import HolderFilters
from shared.sync.jobs import StepReason, SyncJob, SyncJobQueues
from shared.sync.lifecycle import Decision, Effect, Event, Life, decide
from shared.sync.member_mapping import MemberContactMapping, mapping_of
from shared.sync.org_channels import OrgChannels
from shared.sync.profiles import SyncKind, SyncProfile
from shared.sync.runner import StepContext, SyncRunner, already_covered
from shared.sync.step_failures import StepFailures
from shared.sync.sweep import DeltaSweep
from shared.sync.webhooks import SyncWebhooks

log = logging.getLogger(__name__)


class NothingToResolve(Exception):
    """The member answered a mass-change question that is not (or no longer) asked."""

    def __init__(self, kind: SyncKind) -> None:
        super().__init__(f"{kind.value} sync is not waiting for a mass-change answer")
        self.kind = kind


class SyncService:
    def __init__(self, dependencies: SyncDependencies) -> None:
        self.d = dependencies
        self.runner = SyncRunner(dependencies.profiles, dependencies.links, dependencies.conflicts, dependencies.ledger,
                                 clock=dependencies.clock,
                                 page_size=dependencies.initial_page_size)
        self.jobs: SyncJobQueues = dependencies.jobs
        self.org_channels = OrgChannels(dependencies.org_channels, dependencies.org_members, dependencies.routes,
                                        dependencies.crm_channels, self.member, f"{dependencies.public_base_url}/api/webhooks/crm", dependencies.clock)
        self.holder_filters = (HolderFilters(dependencies.holder_filters, dependencies.clock)
                               if dependencies.holder_filters is not None else None)
        self.crm_routing = CrmRouting(self)
        self.webhooks = SyncWebhooks(self)
        self.routes = self.webhooks.routes
        self.authorization = SyncAuthorization(self)
        self.failures = StepFailures(self)

    # -- building blocks -----------------------------------------------------------------

    def member(self, member_key: str) -> MemberIdentity:
        _, tenant_id, object_id = member_key.split("|", 2)
        found = self.d.accounts.member_of(tenant_id, object_id)
        if found is None:
            raise LookupError(f"no member {member_key}")
        return found

    def _context(self, member: MemberIdentity, kind: SyncKind, stored: Stored[SyncProfile] | None = None) -> StepContext:
        stored = stored or self.d.profiles.get(self._key(member), kind)
        reference = stored.entity.enabled_at if stored else None
        mapping = mapping_of(stored.entity) if stored and kind is SyncKind.CONTACTS else None
        zone = stored.entity.crm_time_zone if stored else None
        return StepContext(
            *self.d.kind_for(member, kind, reference=reference, contact_mapping=mapping,
                            crm_time_zone=zone, generation=stored.entity.generation if stored else None),
            records=self.d.crm_records(member),
            enqueue=lambda job, delay: self.jobs.send(job, delay=timedelta(seconds=delay) if delay else None),
            subscribe=lambda profile: self.webhooks.subscribe(member, kind, profile.container_id or "",
                                                              links_partition=profile.links_partition),
            bulk_waiting=self.jobs.bulk_waiting,
            expect_graph_requests=lambda requests: self.d.expect_graph_requests(member, requests),
            graph_room_wait=lambda requests: self.d.graph_room_wait(member, requests),
            **self._filter_hooks(member, kind, stored.entity.generation if stored else None),
        )

    def _filter_hooks(self, member: MemberIdentity, kind: SyncKind, generation: str | None) -> dict[str, Any]:
        """The step's ways to keep the member's filter of linked CRM ids (``holder_filters``)."""
        filters = self.holder_filters
        if filters is None:
            return {}
        key = self._key(member)
        return {
            "announce_crm_ids": lambda ids, fresh: filters.announce(member.org_id, kind, key, ids, fresh=fresh,
                                                                    generation=generation),
            "tend_crm_ids": lambda scan: filters.tend(member.org_id, kind, key, scan),
        }

    def _key(self, member: MemberIdentity) -> str:
        return member.partition_key

    # -- enable and disable (R3.1, R3.2, R3.7, R4.1, R4.3, R4.8) ----------------------------------

    def enable(self, member: MemberIdentity, kind: SyncKind) -> SyncProfile:
        """Create (or re-use) our Outlook container, watch the CRM, queue the initial sync.
        Idempotent: enabling an enabled sync changes nothing.

        The Graph subscription is made when two-way sync starts (the runner's first delta
        step), not here: during the initial sync every item we create would echo back as a
        notification, thousands of webhook calls for nothing, and the first delta round
        after the initial sync reads every change made meanwhile anyway."""
        key = self._key(member)
        stored = self.d.profiles.create_or_get(
            SyncProfile(partition_key=key, row_key=kind.value, tenant_id=member.tenant_id, object_id=member.object_id)
        )
        if Effect.PREPARE not in decide(stored.entity.life, Event.ENABLE).effects:
            return stored.entity  # L2: enabling an enabled sync changes nothing
        ctx = self._context(member, kind, stored)  # the row just written or read: no second read
        container = ctx.outlook.ensure_container(ctx.rules.container_name)
        zone = self.d.crm_time_zone(member) if kind is SyncKind.CALENDAR else None
        # The org's channel (one per org and kind, issue 20), and this member in its index with
        # the links this Enable will write (a CRM callback then tells our echoes without the
        # profile). A new generation is drawn now for that; a concurrent change of the row
        # that makes ``enabled`` decide otherwise leaves the index naming empty links: the
        # profile is then read, as for a member indexed before the links were named.
        fresh = markers.new_generation()
        planned_new = Effect.NEW_GENERATION in decide(stored.entity.life, Event.ENABLE).effects
        generation = fresh if planned_new else stored.entity.generation
        self.org_channels.join(member, kind, links_partition=stored.entity.model_copy(update={"generation": generation}).links_partition)
        if stored.entity.channel_id:  # a channel of the member's own, made before issue 20
            self.webhooks.drop_member_channel(member, stored.entity)
        now = self.d.clock()
        decision = Decision(Life())

        def enabled(profile: SyncProfile) -> SyncProfile:
            nonlocal decision
            decision = decide(profile.life, Event.ENABLE)  # on the row as it is now (ETag retries)
            if Effect.PREPARE not in decision.effects:
                return profile
            # A new generation unless this resumes one (a paused sync keeps its container,
            # hence its links and markers): see ``shared.sync.markers``.
            new = Effect.NEW_GENERATION in decision.effects
            return profile.living(decision.life).model_copy(update={
                "container_id": container.id, "enabled_at": now,
                "generation": fresh if new else profile.generation,
                "subscription_id": None, "subscription_expires": None,
                "client_state": None, "channel_id": None, "channel_token": None,
                "channel_expires": None, "initial_cursor": None,
                "initial_done": 0, "initial_total": 0, "initial_resume_at": None, "delta_link": None, "unconfirmed_outlook": [], "crm_watermark": None,
                "synced_items": 0, "conflicts": 0, "errors": 0, "last_error": None, "pending_deletions": 0,
                "crm_time_zone": zone,
            })

        # Tried first on the row as read (its ETag fails if anything wrote it meanwhile).
        profile = self.d.profiles.update(key, kind, enabled, known=stored)
        # Enable's Graph calls are over: the initial step, on whichever instance takes it, finds
        # the mailbox free instead of waiting for this process's claim to idle out (bench
        # initial-calendar: its first batch went out a second late).
        self.d.mailbox_done(member)
        if Effect.QUEUE_INITIAL in decision.effects:
            self.jobs.send(SyncJob.of(profile, "initial", StepReason.ENABLE))
        self.d.accounts.audit(actor=member.email, action=f"sync.{kind.value}.enabled", tenant_id=member.tenant_id, org_id=member.org_id)
        return profile

    def disable(
        self, member: MemberIdentity, kind: SyncKind, *, event: Event = Event.DISABLE, generation: str | None = None,
    ) -> SyncProfile | None:
        """Stop syncing; remove our Outlook container (its items go with it); the CRM keeps
        everything (R3.7, R3.8, R4.8, R4.9). ``event``: the member's Disable, or our container
        found gone; ``generation``: disable only that Enable (a step that found its container
        gone may belong to an Enable already replaced)."""
        key = self._key(member)
        stored = self.d.profiles.get(key, kind)
        if stored is None:
            return None
        profile = stored.entity
        if generation is not None and profile.generation != generation:
            log.info("%s sync of %s not disabled (%s): that Enable was replaced", kind.value, key, event.value)
            return profile
        if Effect.TEAR_DOWN not in decide(profile.life, event).effects:
            return profile  # L6
        if profile.subscription_id:
            try:
                self.d.subscriptions(member).delete(profile.subscription_id)
            except Exception as error:  # best effort: an orphan subscription expires by itself
                log.warning("could not delete subscription %s: %s", profile.subscription_id, error)
            self.routes.delete(f"graph|{profile.subscription_id}", "hook")
        if profile.channel_id:  # a channel of the member's own, made before issue 20
            self.webhooks.drop_member_channel(member, profile)
        self.org_channels.leave(member, kind)  # the last member's Disable disables the org's channel
        if self.holder_filters is not None:
            self.holder_filters.forget(member.org_id, kind, key)
        if profile.container_id:
            _, outlook = self.d.kind_for(member, kind)
            outlook.delete_container(profile.container_id)
        if profile.subscription_id or profile.container_id:
            # Its Graph calls are over: an Enable again right after, on another instance (Disable
            # then Enable), claims the mailbox at once.
            self.d.mailbox_done(member)
        self.d.links.purge(profile.links_partition)  # with the initial sync's selection and progress
        # The conflict log stays: it is the member's record of which value was kept, across
        # Enables (issue 23). The ledger's notes describe this Enable's items: they go.
        self.d.ledger.purge(profile.history_partition)

        def disabled(p: SyncProfile) -> SyncProfile:
            return p.living(decide(p.life, event).life).model_copy(update={
                "container_id": None, "subscription_id": None,
                "channel_id": None, "channel_token": None, "channel_expires": None, "delta_link": None,
                "unconfirmed_outlook": [], "initial_cursor": None, "synced_items": 0,
                "lease_owner": None, "lease_until": None,
            })

        result = self.d.profiles.update(key, kind, disabled)
        self.d.accounts.audit(actor=member.email, action=f"sync.{kind.value}.disabled", tenant_id=member.tenant_id,
                              org_id=member.org_id, detail=str(result.reason))
        return result

    # -- the member's answers and choices --------------------------------------------------

    def resolve_mass_change(self, member: MemberIdentity, kind: SyncKind, *, confirm: bool) -> SyncProfile:
        """The member's answer to a paused mass change (issue 7): ``confirm`` deletes the
        partners of the deleted items; otherwise the deleted items are created again.
        Raises ``NothingToResolve`` when the sync is not waiting for that answer."""
        key = self._key(member)
        event = Event.ANSWER_DELETE if confirm else Event.ANSWER_KEEP
        decision = Decision(Life(), refused="no profile")

        def answer(profile: SyncProfile) -> SyncProfile:
            nonlocal decision
            decision = decide(profile.life, event)
            if decision.refused:
                return profile  # L15
            return profile.living(decision.life).model_copy(update={
                "pending_deletions": 0, "delta_queued": True, "delta_queued_at": self.d.clock(), "delta_items": None,
            })

        try:
            profile = self.d.profiles.update(key, kind, answer)
        except LookupError:
            raise NothingToResolve(kind) from None
        if decision.refused:
            raise NothingToResolve(kind)
        self.jobs.send(SyncJob.of(profile, "delta", StepReason.MASS_CHANGE_ANSWERED))
        self.d.accounts.audit(actor=member.email, action=f"sync.{kind.value}.mass_change_{'confirmed' if confirm else 'kept'}",
                              tenant_id=member.tenant_id, org_id=member.org_id)
        return profile

    def contact_mapping(self, member: MemberIdentity) -> ContactMapping:
        return MemberContactMapping(self).get(member)

    def save_contact_mapping(self, member: MemberIdentity, mapping: ContactMapping) -> set[str]:
        return MemberContactMapping(self).save(member, mapping)

    # -- running steps ----------------------------------------------------------------------

    def run(self, job: SyncJob, *, delivery: str | None = None) -> None:
        """One queued step. Throttling and a busy member defer the job (never lost).
        ``delivery``: the queue message id (the same on every delivery of one message)."""
        stored = self.d.profiles.get(job.member, job.kind)  # read once for the context and the step
        if already_covered(job, stored.entity if stored else None, delivery):
            log.info("%s delta step of %s: nothing left to do (its changes were read, or were our own echoes)",
                     job.kind, job.member)
            return
        try:
            member = self.member(job.member)
        except LookupError:
            log.warning("sync job for %s dropped: no such member any more", job.member)
            return
        try:
            self.runner.run(job, self._context(member, job.kind, stored), delivery=delivery, current=stored)
        except Exception as error:
            self.failures.handle(job, member, stored, delivery, error)
        finally:
            # The member's next step may run on another instance (the lease just released): it
            # claims the mailbox at once instead of waiting for this one's claim to idle out
            # (bench multi-host: a change's propagation waited for it).
            self.d.mailbox_done(member)

    def give_up(self, job: SyncJob) -> None:
        """The queue gave a step up (its poison message): ``step_failures``."""
        self.failures.give_up(job)

    def resume(self, member: MemberIdentity, kind: SyncKind) -> SyncProfile:
        return self.failures.resume(member, kind)

    def request_delta(self, member_key: str, kind: SyncKind, reason: StepReason, *, crm_deletion: bool = False) -> bool:
        return self.webhooks.request_delta(member_key, kind, reason, crm_deletion=crm_deletion)

    # -- webhooks and authorisations (``webhooks``, ``authorization``) ----------------------------

    def graph_notifications(self, body: bytes) -> int:
        return self.webhooks.graph_notifications(body)

    def held_graph_notifications(self, message: HeldNotifications) -> int:
        """Notifications a POST held for the queue (``held_notifications``): steps queued."""
        return self.webhooks.held_graph_notifications(message)

    def graph_lifecycle(self, body: bytes) -> int:
        return self.webhooks.graph_lifecycle(body)

    def crm_callback(self, body: bytes) -> None:
        self.webhooks.crm_callback(body)

    def route_crm_change(self, change: CrmChange) -> int:
        """A queued CRM change of an org with several members: to its owners' syncs."""
        return self.crm_routing.route(change)

    def renew_all(self) -> int:
        return self.webhooks.renew_all()

    def resume_authorized(self, member: MemberIdentity, kinds: tuple[SyncKind, ...] = tuple(SyncKind)) -> int:
        return self.authorization.resume_authorized(member, kinds)

    def crm_authorization_lost(self, member: MemberIdentity) -> tuple[SyncKind, ...]:
        return self.authorization.crm_authorization_lost(member)

    def crm_reauthorized(self, member: MemberIdentity, tokens: CrmTokens) -> MemberIdentity:
        return self.authorization.reauthorized(member, tokens)

    # -- timers --------------------------------------------------------------------------------

    def sweep(self) -> int:
        """A delta round for every syncing member now (operators and tests; the timer runs ``sweep_tick``)."""
        return DeltaSweep(self).sweep()

    def sweep_tick(self) -> int:
        """The 5-minute timer's safety net, at a cost that grows with what it can find."""
        return DeltaSweep(self).tick()
