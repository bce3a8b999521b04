"""Calendar and contacts sync for members (SPEC R3, R4): enable, disable, run steps,
webhooks, the sweep and renewals. The composition of the adapters around the engine."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.accounts.models import MemberIdentity
from shared.crm.errors import CrmError
from shared.crm.records import CrmRecords
from shared.crm.tokens import CrmAuthorizationLost
from shared.crm.users import current_user_time_zone
from shared.crm.watch import CallbackRejected, CrmWatch, parse_callback, verify_callback
from shared.graph.mailbox import GraphMailbox
from shared.graph.notifications import (
    client_state_matches,
    new_client_state,
    parse_change_notifications,
    parse_lifecycle_notifications,
)
from shared.graph.pacing import Pacing
from shared.graph.subscriptions import SubscriptionClient, SubscriptionGone
from shared.graph.sync_errors import ContainerGone, DeltaExpired, MailboxThrottled
from shared.identity.entra import SignInFailed
from shared.storage import JobQueue, Stored, TableEntity
from shared.sync import markers
from shared.sync.contacts import DEFAULT_CONTACT_MAPPING, ContactMapping, changed_pairs
from shared.sync.jobs import SyncJob
from shared.sync.kind import SyncKindAdapter
from shared.sync.profiles import LeaseHeld, SyncKind, SyncProfile, SyncState
from shared.sync.runner import StepContext, SyncRunner

if TYPE_CHECKING:
    from shared.wiring import Services

log = logging.getLogger(__name__)
RENEW_AHEAD = timedelta(hours=24)
ROUTE_MEMO_SECONDS = 60.0
STALLED_INITIAL = timedelta(minutes=5)
# A queued delta step starts within seconds; a "queued" mark older than this belongs to a step
# that was lost (a failed send, a poisoned message), and a webhook queues another instead of
# waiting for the sweep.
STALE_DELTA_MARK = timedelta(seconds=60)
CRM_AUTHORIZATION_LOST = "crm_authorization_lost"
# A step deferred by a held lease (its own crashed first delivery, or a remap page behind a
# running step) comes back after at most this long; webhook-driven steps never wait (see
# SyncRunner._leave_to_holder).
LEASE_RETRY_SECONDS = 30
MICROSOFT_CONSENT_LOST = "microsoft_consent_lost"
AUTHORIZATION_REASONS = (CRM_AUTHORIZATION_LOST, MICROSOFT_CONSENT_LOST)
# Token answers meaning the tenant no longer lets our app in (consent revoked, app removed).
CONSENT_LOST_CODES = frozenset({"unauthorized_client", "invalid_client", "invalid_grant", "access_denied"})


class NothingToResolve(Exception):
    """The member answered a mass-change question that is not (or no longer) asked."""

    def __init__(self, kind: SyncKind) -> None:
        super().__init__(f"{kind.value} sync is not waiting for a mass-change answer")
        self.kind = kind


def _mapping_of(profile: SyncProfile) -> ContactMapping:
    if not profile.contact_mapping:
        return DEFAULT_CONTACT_MAPPING
    return ContactMapping.model_validate_json(profile.contact_mapping)


class WebhookRoute(TableEntity):
    """Where a Graph subscription or CRM channel's notifications go. PartitionKey =
    "graph|{subscription id}" or "crm|{channel id}", RowKey = "hook"."""

    member: str
    kind: str
    secret: str  # Graph clientState or CRM channel token


class SyncService:
    def __init__(self, services: Services, adapter_for: Callable[..., SyncKindAdapter]) -> None:
        self.s = services
        self._adapter_for = adapter_for
        self.runner = SyncRunner(services.sync_profiles, services.sync_links, services.sync_conflicts)
        self.jobs: JobQueue[SyncJob] = services.sync_queue
        self.routes = services.table("webhooks", WebhookRoute)
        # Webhooks come in floods (every write of ours echoes): remember, per process, where
        # a subscription's notifications go instead of reading it for every notification.
        # (The member's state is read each time: a change right after the initial sync
        # ended must queue a step, so no memory of "still initial" is safe.)
        self._route_cache: dict[str, tuple[float, WebhookRoute | None]] = {}

    # -- building blocks -----------------------------------------------------------------

    def member(self, member_key: str) -> MemberIdentity:
        _, tenant_id, object_id = member_key.split("|", 2)
        found = self.s.accounts.member_of(tenant_id, object_id)
        if found is None:
            raise LookupError(f"no member {member_key}")
        return found

    def mailbox(self, member: MemberIdentity) -> GraphMailbox:
        return GraphMailbox(
            self.s.settings.graph_base_url, member.object_id, lambda: self.s.entra.app_token(member.tenant_id),
            self.s.http, tenant_id=member.tenant_id, pacing=Pacing(timeout_seconds=self.s.settings.outbound_timeout_seconds),
        )

    def _context(self, member: MemberIdentity, kind: SyncKind, stored: Stored[SyncProfile] | None = None) -> StepContext:
        stored = stored or self.s.sync_profiles.get(self._key(member), kind)
        reference = stored.entity.enabled_at if stored else None
        mapping = _mapping_of(stored.entity) if stored and kind is SyncKind.CONTACTS else None
        zone = stored.entity.crm_time_zone if stored else None
        return StepContext(
            adapter=self._adapter_for(member, kind, self.mailbox(member), reference=reference, contact_mapping=mapping,
                                      crm_time_zone=zone, generation=stored.entity.generation if stored else None),
            records=CrmRecords(self.s.crm_sessions.for_member(self.s.crm_access(member))),
            owner_id=member.user_id,
            enqueue=lambda job, delay: self.jobs.send(job, delay=timedelta(seconds=delay) if delay else None),
            on_container_gone=lambda profile, reason: self.disable(member, kind, reason=reason, generation=profile.generation),
            subscribe=lambda profile: self._subscribe(member, kind, profile.container_id or ""),
        )

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
        stored = self.s.sync_profiles.create_or_get(
            SyncProfile(partition_key=key, row_key=kind.value, tenant_id=member.tenant_id, object_id=member.object_id)
        )
        if stored.entity.state in (SyncState.INITIAL, SyncState.ACTIVE):
            return stored.entity
        ctx = self._context(member, kind)
        container = ctx.adapter.outlook.ensure_container(ctx.adapter.container_name)
        base = self.s.settings.public_base_url
        crm_session = self.s.crm_sessions.for_member(self.s.crm_access(member))
        zone = current_user_time_zone(crm_session) if kind is SyncKind.CALENDAR else None
        watch = CrmWatch(crm_session)
        channel = watch.enable(ctx.adapter.crm_module, f"{base}/api/webhooks/crm")  # type: ignore[arg-type]
        self.routes.upsert(WebhookRoute(partition_key=f"crm|{channel.channel_id}", row_key="hook", member=key, kind=kind.value, secret=channel.token))
        now = datetime.now(UTC)

        def enabled(profile: SyncProfile) -> SyncProfile:
            # A new generation unless this resumes one (a paused sync keeps its container,
            # hence its links and markers): see ``shared.sync.markers``.
            generation = markers.new_generation() if profile.state is SyncState.DISABLED else profile.generation
            return profile.model_copy(update={
                "state": SyncState.INITIAL, "reason": None, "container_id": container.id, "enabled_at": now,
                "generation": generation,
                "subscription_id": None, "subscription_expires": None,
                "client_state": None, "channel_id": channel.channel_id, "channel_token": channel.token,
                "channel_expires": channel.expires_at, "initial_cursor": None, "initial_threshold": None,
                "initial_done": 0, "initial_total": 0, "delta_link": None, "crm_watermark": None,
                "synced_items": 0, "conflicts": 0, "errors": 0, "last_error": None, "pending_deletions": 0,
                "crm_time_zone": zone, "mass_change_answer": None,
            })

        profile = self.s.sync_profiles.update(key, kind, enabled)
        self.jobs.send(SyncJob.of(profile, "initial", "enable"))
        self.s.accounts.audit(actor=member.email, action=f"sync.{kind.value}.enabled", tenant_id=member.tenant_id, org_id=member.org_id)
        return profile

    def disable(
        self, member: MemberIdentity, kind: SyncKind, *, reason: str = "disabled by the member",
        generation: str | None = None,
    ) -> SyncProfile | None:
        """Stop syncing; remove our Outlook container (its items go with it); the CRM keeps
        everything (R3.7, R3.8, R4.8, R4.9). ``generation``: disable only that Enable (a step
        that found its container gone may belong to an Enable already replaced)."""
        key = self._key(member)
        stored = self.s.sync_profiles.get(key, kind)
        if stored is None:
            return None
        profile = stored.entity
        if generation is not None and profile.generation != generation:
            log.info("%s sync of %s not disabled (%s): that Enable was replaced", kind.value, key, reason)
            return profile
        mailbox = self.mailbox(member)
        if profile.subscription_id:
            try:
                SubscriptionClient(mailbox).delete(profile.subscription_id)
            except Exception as error:  # best effort: an orphan subscription expires by itself
                log.warning("could not delete subscription %s: %s", profile.subscription_id, error)
            self.routes.delete(f"graph|{profile.subscription_id}", "hook")
        if profile.channel_id:
            try:
                CrmWatch(self.s.crm_sessions.for_member(self.s.crm_access(member))).disable([profile.channel_id])
            except Exception as error:
                log.warning("could not disable channel %s: %s", profile.channel_id, error)
            self.routes.delete(f"crm|{profile.channel_id}", "hook")
        if profile.container_id:
            adapter = self._adapter_for(member, kind, mailbox)
            adapter.outlook.delete_container(profile.container_id)
        self.s.sync_links.purge(profile.links_partition)
        self.s.sync_conflicts.purge(profile.conflicts_partition)

        def disabled(p: SyncProfile) -> SyncProfile:
            return p.model_copy(update={
                "state": SyncState.DISABLED, "reason": reason, "container_id": None, "subscription_id": None,
                "channel_id": None, "delta_link": None, "initial_cursor": None, "synced_items": 0,
                "lease_owner": None, "lease_until": None,
            })

        result = self.s.sync_profiles.update(key, kind, disabled)
        self.s.accounts.audit(actor=member.email, action=f"sync.{kind.value}.disabled", tenant_id=member.tenant_id,
                              org_id=member.org_id, detail=reason)
        return result

    # -- the member's answers and choices --------------------------------------------------

    def resolve_mass_change(self, member: MemberIdentity, kind: SyncKind, *, confirm: bool) -> SyncProfile:
        """The member's answer to a paused mass change (issue 7): ``confirm`` deletes the
        partners of the deleted items; otherwise the deleted items are created again.
        Raises ``NothingToResolve`` when the sync is not waiting for that answer."""
        key = self._key(member)
        resolved = False

        def answer(profile: SyncProfile) -> SyncProfile:
            nonlocal resolved
            resolved = profile.state is SyncState.PAUSED and profile.reason == "mass_change"
            if not resolved:
                return profile
            return profile.model_copy(update={
                "state": SyncState.ACTIVE, "reason": None, "pending_deletions": 0, "delta_queued": True,
                "delta_queued_at": datetime.now(UTC),
                "mass_change_answer": "delete" if confirm else "keep",
            })

        try:
            profile = self.s.sync_profiles.update(key, kind, answer)
        except LookupError:
            raise NothingToResolve(kind) from None
        if not resolved:
            raise NothingToResolve(kind)
        self.jobs.send(SyncJob.of(profile, "delta", "mass change answered"))
        self.s.accounts.audit(actor=member.email, action=f"sync.{kind.value}.mass_change_{'confirmed' if confirm else 'kept'}",
                              tenant_id=member.tenant_id, org_id=member.org_id)
        return profile

    def contact_mapping(self, member: MemberIdentity) -> ContactMapping:
        """The member's contacts field mapping: the one they saved, else the default (R4.2)."""
        stored = self.s.sync_profiles.get(self._key(member), SyncKind.CONTACTS)
        return _mapping_of(stored.entity) if stored else DEFAULT_CONTACT_MAPPING

    def save_contact_mapping(self, member: MemberIdentity, mapping: ContactMapping) -> set[str]:
        """Store the member's mapping (already validated by the caller) and, when contacts
        sync is on, queue a re-sync of the changed pairs only. Returns their keys."""
        key = self._key(member)
        stored = self.s.sync_profiles.create_or_get(
            SyncProfile(partition_key=key, row_key=SyncKind.CONTACTS.value, tenant_id=member.tenant_id,
                        object_id=member.object_id)
        )
        before = _mapping_of(stored.entity)
        changed = changed_pairs(before, mapping)
        if not changed:
            return changed
        encoded = None if mapping == DEFAULT_CONTACT_MAPPING else mapping.model_dump_json()
        profile = self.s.sync_profiles.update(key, SyncKind.CONTACTS, lambda p: p.model_copy(update={"contact_mapping": encoded}))
        if profile.state is not SyncState.DISABLED:
            directions = {pair.key: pair.direction.value for pair in mapping.pairs if pair.key in changed}
            pairs: dict[str, str | None] = {k: directions.get(k) for k in sorted(changed)}
            self.jobs.send(SyncJob.of(profile, "remap", "mapping changed").model_copy(update={"pairs": pairs}))
        self.s.accounts.audit(actor=member.email, action="sync.contacts.mapping_changed", tenant_id=member.tenant_id,
                              org_id=member.org_id, detail=", ".join(sorted(changed))[:500])
        return changed

    # -- running steps ----------------------------------------------------------------------

    def run(self, job: SyncJob, *, delivery: str | None = None) -> None:
        """One queued step. Throttling and a busy member defer the job (never lost).
        ``delivery``: the queue message id (the same on every delivery of one message)."""
        try:
            member = self.member(job.member)
        except LookupError:
            log.warning("sync job for %s dropped: no such member any more", job.member)
            return
        stored: Stored[SyncProfile] | None = None
        try:
            stored = self.s.sync_profiles.get(job.member, job.kind)  # read once for the context and the step
            self.runner.run(job, self._context(member, job.kind, stored), delivery=delivery, current=stored)
        except LeaseHeld as held:  # retried when the lease lapses, unless released sooner
            delay = max(1, min(LEASE_RETRY_SECONDS, int(held.retry_after)))
            log.info("%s %s step of %s deferred %d s: %s", job.kind.value, job.step, job.member, delay, held)
            self.jobs.send(job.model_copy(update={"holder": job.holder or delivery}), delay=timedelta(seconds=delay))
        except MailboxThrottled as throttled:
            self.jobs.send(job, delay=timedelta(seconds=max(1, int(throttled.retry_after or 5))))
        except DeltaExpired:
            self.s.sync_profiles.update(job.member, job.kind, lambda p: p.model_copy(update={"delta_link": None}))
            self.jobs.send(job)
        except ContainerGone:  # R3.8, R4.9: the member deleted our calendar or folder in Outlook
            self.disable(member, job.kind, reason="container_deleted", generation=stored.entity.generation if stored else None)
        except CrmAuthorizationLost:
            self._pause(job.member, job.kind, CRM_AUTHORIZATION_LOST)
        except SignInFailed as failed:
            if failed.code not in CONSENT_LOST_CODES:
                raise  # Microsoft unreachable or a passing failure: the queue retries the step
            self._pause(job.member, job.kind, MICROSOFT_CONSENT_LOST)

    def _pause(self, member_key: str, kind: SyncKind, reason: str) -> None:
        """Stop syncing with a reason the member sees; remember the phase to resume in."""

        def pause(p: SyncProfile) -> SyncProfile:
            if p.state not in (SyncState.INITIAL, SyncState.ACTIVE):
                return p
            return p.model_copy(update={"state": SyncState.PAUSED, "reason": reason, "paused_from": p.state})

        log.warning("%s sync of %s paused: %s", kind.value, member_key, reason)
        self.s.sync_profiles.update(member_key, kind, pause)

    def _authorized_again(self, member: MemberIdentity, reason: str) -> bool:
        """Whether what a pause lost is back: an app token for the tenant, or a CRM access token."""
        try:
            if reason == MICROSOFT_CONSENT_LOST:
                self.s.entra.app_token(member.tenant_id)
            else:
                self.s.crm_sessions.tokens.get(self.s.crm_access(member))
        except (SignInFailed, CrmError):
            return False
        return True

    def resume_authorized(self, member: MemberIdentity, kinds: tuple[SyncKind, ...] = tuple(SyncKind)) -> int:
        """Resume syncs paused by a lost authorisation once it is back, in the phase they
        were paused in, from their stored cursors (initial page, delta link, CRM watermark)."""
        resumed = 0
        for kind in kinds:
            stored = self.s.sync_profiles.get(self._key(member), kind)
            if stored is None or stored.entity.state is not SyncState.PAUSED or stored.entity.reason not in AUTHORIZATION_REASONS:
                continue
            if not self._authorized_again(member, stored.entity.reason or ""):
                continue
            phase = stored.entity.paused_from or SyncState.ACTIVE

            def resume(p: SyncProfile, phase: SyncState = phase) -> SyncProfile:
                if p.state is not SyncState.PAUSED or p.reason not in AUTHORIZATION_REASONS:
                    return p
                return p.model_copy(update={"state": phase, "reason": None, "paused_from": None, "delta_queued": False})

            resumed_profile = self.s.sync_profiles.update(self._key(member), kind, resume)
            step = "initial" if phase is SyncState.INITIAL else "delta"
            self.jobs.send(SyncJob.of(resumed_profile, step, "authorization back"))
            resumed += 1
        return resumed

    def reconnect_crm(self, member: MemberIdentity) -> MemberIdentity:
        """The member opened the app again while a sync is paused because the CRM refused
        their authorisation: grant a new one, store it (encrypted), resume. Otherwise nothing."""
        lost = [
            kind for kind in SyncKind
            if (stored := self.s.sync_profiles.get(self._key(member), kind)) is not None
            and stored.entity.state is SyncState.PAUSED and stored.entity.reason == CRM_AUTHORIZATION_LOST
        ]
        if not lost:
            return member
        grant = self.s.crm_directory.grant(member.user_id)
        renewed = member.model_copy(update={
            "refresh_token_encrypted": self.s.cipher.encrypt(grant.refresh_token),
            "accounts_server": grant.accounts_server, "api_domain": grant.api_domain,
        })
        self.s.accounts.members.upsert(renewed)
        self.s.accounts.audit(actor=member.email, action="member.crm_reconnected", tenant_id=member.tenant_id,
                              org_id=member.org_id)
        self.resume_authorized(renewed, tuple(lost))
        return renewed

    def request_delta(self, member_key: str, kind: SyncKind, reason: str, *, crm_deletion: bool = False) -> bool:
        """Queue one delta step unless one is already queued (webhooks come in floods: every
        write of ours echoes). ``crm_deletion``: the CRM reported deleted records, so the next
        step reads its deleted list. Returns whether a step was queued."""
        queued = False

        def mark(profile: SyncProfile) -> SyncProfile:
            nonlocal queued
            if profile.state is not SyncState.ACTIVE:
                return profile
            now = datetime.now(UTC)
            stale = profile.delta_queued_at is None or profile.delta_queued_at < now - STALE_DELTA_MARK
            queued = not profile.delta_queued or stale
            noticed = profile.crm_deletions_noticed or crm_deletion
            update: dict[str, Any] = {"delta_queued": True, "crm_deletions_noticed": noticed}
            if queued:
                update["delta_queued_at"] = now
            return profile.model_copy(update=update)

        try:
            marked = self.s.sync_profiles.update(member_key, kind, mark)
        except LookupError:
            return False
        if queued:
            self.jobs.send(SyncJob.of(marked, "delta", reason))
        return queued

    # -- webhooks (validated; answered fast; the work is queued) ----------------------------------

    def graph_notifications(self, body: bytes) -> int:
        """Queue a delta step per member named by authentic notifications; returns how many."""
        queued = 0
        for note in parse_change_notifications(body):
            route = self._route(f"graph|{note.subscription_id}")
            if route is None or not client_state_matches(note.client_state, route.secret):
                log.warning("graph notification refused for subscription %s", note.subscription_id)
                continue
            queued += self.request_delta(route.member, SyncKind(route.kind), "graph webhook")
        return queued

    def _route(self, key: str) -> WebhookRoute | None:
        now = time.monotonic()
        cached = self._route_cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        stored = self.routes.get(key, "hook")
        route = stored.entity if stored else None
        # Unknown ids are remembered briefly only: a subscription is created just before its first notification.
        self._route_cache[key] = (now + (ROUTE_MEMO_SECONDS if route else 2.0), route)
        return route

    def graph_lifecycle(self, body: bytes) -> int:
        handled = 0
        for note in parse_lifecycle_notifications(body):
            route = self.routes.get(f"graph|{note.subscription_id}", "hook")
            if route is None or not client_state_matches(note.client_state, route.entity.secret):
                continue
            member = self.member(route.entity.member)
            kind = SyncKind(route.entity.kind)
            if note.lifecycle_event == "reauthorizationRequired":
                self._renew_subscription(member, kind)
            elif note.lifecycle_event == "subscriptionRemoved":
                self._resubscribe(member, kind)
            self.request_delta(route.entity.member, kind, f"lifecycle {note.lifecycle_event}")
            handled += 1
        return handled

    def crm_callback(self, body: bytes) -> None:
        """Raises CallbackRejected (malformed, unknown channel, wrong token): answered 4xx."""
        callback = parse_callback(body)
        route = self.routes.get(f"crm|{callback.channel_id}", "hook")
        if route is None:
            raise CallbackRejected("unknown_channel", callback.channel_id)
        verify_callback(callback, route.entity.secret)
        self.request_delta(route.entity.member, SyncKind(route.entity.kind), "crm webhook",
                           crm_deletion=callback.operation == "delete")

    # -- timers --------------------------------------------------------------------------------

    def sweep(self) -> int:
        """The safety net behind webhooks: a delta step for every active member."""
        # Paused by a lost authorisation (consent revoked, CRM token refused): resumed once it is back.
        for paused in self.s.sync_profiles.paused():
            if paused.reason in AUTHORIZATION_REASONS:
                try:
                    self.resume_authorized(self.member(paused.partition_key), (SyncKind(paused.row_key),))
                except Exception as error:  # one member's trouble must not stop the sweep
                    log.warning("could not check paused sync of %s: %s", paused.partition_key, error)
        syncing = self.s.sync_profiles.all_active()
        active = [p for p in syncing if p.state is SyncState.ACTIVE]
        # The safety net queues even when a step is marked queued: that mark may be stale.
        for profile in active:
            self.jobs.send(SyncJob.of(profile, "delta", "sweep"))
        # An initial sync whose queued step was lost (storage restarted, a message expired)
        # would wait forever: one with no progress for a while gets a step again (steps are
        # idempotent; a live one holds the lease and the extra step waits behind it).
        now = datetime.now(UTC)
        for profile in syncing:
            last = profile.last_sync_at or profile.enabled_at
            leased = profile.lease_until is not None and profile.lease_until > now
            if profile.state is SyncState.INITIAL and last is not None and last < now - STALLED_INITIAL and not leased:
                self.jobs.send(SyncJob.of(profile, "initial", "stalled"))
        return len(active)

    def renew_all(self) -> int:
        renewed = 0
        soon = datetime.now(UTC) + RENEW_AHEAD
        for profile in self.s.sync_profiles.all_active():
            member = self.member(profile.partition_key)
            kind = SyncKind(profile.row_key)
            if profile.subscription_expires and profile.subscription_expires < soon:
                self._renew_subscription(member, kind)
                renewed += 1
            if profile.channel_expires and profile.channel_expires < soon and profile.channel_id:
                expires = CrmWatch(self.s.crm_sessions.for_member(self.s.crm_access(member))).renew(profile.channel_id)
                self.s.sync_profiles.update(profile.partition_key, kind, lambda p, e=expires: p.model_copy(update={"channel_expires": e}))
                renewed += 1
        return renewed

    def _renew_subscription(self, member: MemberIdentity, kind: SyncKind) -> None:
        stored = self.s.sync_profiles.get(self._key(member), kind)
        if stored is None or not stored.entity.subscription_id:
            return
        try:
            subscription = SubscriptionClient(self.mailbox(member)).renew(stored.entity.subscription_id)
        except SubscriptionGone:
            self._resubscribe(member, kind)
            return
        self.s.sync_profiles.update(
            self._key(member), kind, lambda p: p.model_copy(update={"subscription_expires": subscription.expiration_date_time})
        )

    def _resubscribe(self, member: MemberIdentity, kind: SyncKind) -> None:
        stored = self.s.sync_profiles.get(self._key(member), kind)
        if stored is None or not stored.entity.container_id:
            return
        fields = self._subscribe(member, kind, stored.entity.container_id)
        self.s.sync_profiles.update(self._key(member), kind, lambda p: p.model_copy(update=fields))

    def _subscribe(self, member: MemberIdentity, kind: SyncKind, container_id: str) -> dict[str, Any]:
        """A Graph subscription on our container and its route; the profile fields to store."""
        base = self.s.settings.public_base_url
        client_state = new_client_state()
        client = SubscriptionClient(self.mailbox(member))
        subscribe = client.subscribe_calendar if kind is SyncKind.CALENDAR else client.subscribe_contacts
        subscription = subscribe(container_id, notification_url=f"{base}/api/webhooks/graph",
                                 lifecycle_url=f"{base}/api/webhooks/graph/lifecycle", client_state=client_state)
        self.routes.upsert(WebhookRoute(partition_key=f"graph|{subscription.id}", row_key="hook", member=self._key(member),
                                        kind=kind.value, secret=client_state))
        return {"subscription_id": subscription.id, "subscription_expires": subscription.expiration_date_time,
                "client_state": client_state}
