"""The webhooks of members' syncs (R3.3, R4.4): Graph change and lifecycle notifications and
CRM watch callbacks, checked and answered fast (the work is queued through
``SyncService.request_delta``, or for a CRM org with several members through ``crm_routing``);
Graph subscriptions made, renewed and made again; the orgs' CRM channels renewed
(``org_channels``), and members' channels of their own (before issue 20) moved onto them."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from shared import concurrently
from shared.accounts.models import MemberIdentity
from shared.crm.watch import CallbackRejected, parse_callback, verify_callback
from shared.expiring_cache import ExpiringCache
from shared.graph.notifications import (
    client_state_matches,
    new_client_state,
    parse_change_notifications,
    parse_lifecycle_notifications,
)
from shared.graph.subscriptions import SubscriptionGone
from shared.storage import Stored
from shared.sync.echoes import crm_items, merged, outlook_items, own_echoes
from shared.sync.held_notifications import (
    LOOKED_UP_WHILE_GRAPH_WAITS,
    HeldNotification,
    HeldNotifications,
    held_messages,
)
from shared.sync.jobs import StepReason, SyncJob
from shared.sync.profiles import SyncKind, SyncProfile, SyncState
from shared.sync.webhook_routes import WebhookRoute

if TYPE_CHECKING:
    from shared.sync.service import SyncService

log = logging.getLogger(__name__)
T = TypeVar("T")
RENEW_AHEAD = timedelta(hours=24)
__all__ = ["SyncWebhooks", "WebhookRoute"]
# A route never changes once written (a subscription or channel id names one member's or org's
# sync, with one secret, for its life), so a known one is remembered for an hour: a steady trickle
# of changes minutes apart reads none (a minute cost one read per change and per echo). A route
# deleted meanwhile (Disable) and still remembered costs nothing wrong: the member's state is read
# for every notification, a disabled sync queues no step, and after a new Enable an old
# subscription's late notification queues one delta round of the new generation.
ROUTE_MEMO_SECONDS = 3600.0
ROUTE_CACHE_ENTRIES = 10_000
# A queued delta step starts within seconds; a "queued" mark older than this belongs to a step
# that was lost (a failed send, a poisoned message), and a webhook queues another instead of
# waiting for the sweep.
STALE_DELTA_MARK = timedelta(seconds=60)
# A mark this old with no step taking it is logged by the webhooks it silences (a warning when
# no step holds the lease): the trace of a change waiting on a step that does not come.
SLOW_DELTA_MARK = timedelta(seconds=5)
# A POST's subscriptions looked up at once: Graph wants the answer within 3 s, and each costs a
# few Table requests (its route, our echoes, the member's mark).
LOOKUPS_IN_FLIGHT = 8


class SyncWebhooks:
    def __init__(self, sync: SyncService) -> None:
        self.sync = sync
        self.d = sync.d
        self.routes = self.d.routes
        # Webhooks come in floods (every write of ours echoes): remember, per process, where
        # a subscription's notifications go instead of reading it for every notification.
        # (The member's state is read each time: a change right after the initial sync
        # ended must queue a step, so no memory of "still initial" is safe.)
        # Bounded: anonymous callers choose the ids (issue 18 §4); an optimisation only, every
        # instance keeps its own.
        self._route_cache: ExpiringCache[str, WebhookRoute | None] = ExpiringCache(ROUTE_CACHE_ENTRIES)

    def request_delta(self, member_key: str, kind: SyncKind, reason: StepReason, *, crm_deletion: bool = False,
                      known: Stored[SyncProfile] | None = None, items: list[str] | None = None) -> bool:
        """Queue one delta step unless one is already queued (webhooks come in floods: every
        write of ours echoes). ``crm_deletion``: the CRM reported deleted records, so the next
        step reads its deleted list. ``known``: the profile just read. ``items``: what the
        webhook named, when it may be our own writes' echoes (``shared.sync.echoes``); None:
        a request that must run. Returns whether a step was queued."""
        queued = False
        waiting: tuple[float, bool, bool] | None = None  # an old mark: its age, for a holder, the lease held

        def mark(profile: SyncProfile) -> SyncProfile:
            nonlocal queued, waiting
            if profile.state is not SyncState.ACTIVE:
                return profile
            now = self.d.clock()
            stale = profile.delta_queued_at is None or profile.delta_queued_at < now - STALE_DELTA_MARK
            fresh = not profile.delta_queued or stale
            # A step running now (its lease live) releases after this mark: it queues the
            # step then, unless the mark names only its own writes' echoes, which often come
            # while it still runs (``SyncRunner._release``). A holder that dies leaves its
            # message to be delivered again, and that step reads every change.
            held = profile.lease_owner is not None and profile.lease_until is not None and profile.lease_until > now
            queued = fresh and not held
            age = now - profile.delta_queued_at if profile.delta_queued_at is not None else None
            waiting = (age.total_seconds(), profile.delta_for_holder, held) if not fresh and age and age > SLOW_DELTA_MARK else None
            noticed = profile.crm_deletions_noticed or crm_deletion
            update: dict[str, Any] = {"delta_queued": True, "crm_deletions_noticed": noticed,
                                      "delta_items": merged(profile.delta_items, items, fresh=fresh)}
            if fresh:
                update["delta_queued_at"] = now
                update["delta_for_holder"] = held
            return profile.model_copy(update=update)

        try:
            marked = self.d.profiles.update(member_key, kind, mark, known=known)
        except LookupError:
            return False
        if queued:
            self.sync.jobs.send(SyncJob.of(marked, "delta", reason))
        elif waiting is not None:
            # A warning when no step holds the lease to take the mark: the step it waits for may
            # never come (the 60-s staleness then queues another); while one runs, information.
            log.log(logging.INFO if waiting[2] else logging.WARNING,
                    "%s webhook of %s: the step marked %.1f s ago has not taken the lease yet (%s; lease %s)",
                    kind.value, member_key, waiting[0], "left to the holder" if waiting[1] else "queued",
                    "held" if waiting[2] else "free")
        return queued

    def request_unless_echo(self, member_key: str, kind: SyncKind, reason: StepReason, items: list[str] | None, *,
                            crm_deletion: bool = False, links_partition: str | None = None) -> bool | None:
        """``request_delta``, unless what the webhook named is our own writes' echo, their rows
        saved (``shared.sync.echoes``): then nothing is written or queued, and None is
        returned. ``links_partition``: where the caller knows the member's links to be (the
        Graph route's, the org's index row's): an echo is told there, with no profile read.
        Otherwise one profile read (``request_delta`` reuses it) and, when the webhook named
        items, one query of the member's links (none when they were just queried there)."""
        if links_partition and items and own_echoes(self.d.links, links_partition, items):
            return None
        stored = self.d.profiles.get(member_key, kind)
        if stored is None:
            return False
        profile = stored.entity
        if (profile.state is SyncState.ACTIVE and items and profile.links_partition != links_partition
                and own_echoes(self.d.links, profile.links_partition, items)):
            return None
        return self.request_delta(member_key, kind, reason, crm_deletion=crm_deletion, known=stored, items=items)

    def graph_notifications(self, body: bytes) -> int:
        """Queue a delta step per member named by authentic notifications; returns how many.
        The first subscriptions of the POST are looked up now, the rest held for the
        ``graph-notifications`` queue when the first part was ours (``held_notifications``)."""
        notes = [HeldNotification.of(note) for note in parse_change_notifications(body)]
        now, later = notes[:LOOKED_UP_WHILE_GRAPH_WAITS], notes[LOOKED_UP_WHILE_GRAPH_WAITS:]
        queued, authentic = self._notified(now)
        if later:
            self._hold(later, authentic, len(now), "change")
        return queued

    def graph_lifecycle(self, body: bytes) -> int:
        """Lifecycle notifications, acted on from the queue (each may cost Graph calls: a
        renewal, a new subscription); the webhook checks the first 100 are ours and holds them
        with the rest of the POST. Returns how many of the first were ours."""
        notes = [HeldNotification.of(note) for note in parse_lifecycle_notifications(body)]
        now = notes[:LOOKED_UP_WHILE_GRAPH_WAITS]
        ours = [note for note, route in zip(now, self._each(now, self._lifecycle_route), strict=True) if route is not None]
        if self.d.held_notifications is None:  # nowhere to hold them (tests over fakes): at once
            return self._lifecycle_acted(ours)
        self._hold(ours + notes[LOOKED_UP_WHILE_GRAPH_WAITS:], len(ours), len(now), "lifecycle")
        return len(ours)

    def held_graph_notifications(self, message: HeldNotifications) -> int:
        """Notifications a POST held for later (``held_notifications``), checked and handled as
        the webhook handles the first: returns the steps queued."""
        changes = [note for note in message.notifications if note.lifecycle_event is None]
        lifecycle = [note for note in message.notifications if note.lifecycle_event is not None]
        return (self._notified(changes)[0] if changes else 0) + (self._lifecycle_acted(lifecycle) if lifecycle else 0)

    def _hold(self, notes: list[HeldNotification], authentic: int, looked_up: int, kind: str) -> None:
        if not notes:
            return
        if not authentic or self.d.held_notifications is None:
            log.warning("graph %s notifications: %d subscriptions of a POST dropped (%s)", kind, len(notes),
                        f"none of the first {looked_up} was ours" if not authentic else "nowhere to hold them")
            return
        messages = list(held_messages(notes))
        for message in messages:
            self.d.held_notifications.send(message)
        log.info("graph %s notifications: %d subscriptions of a POST held for later, in %d messages", kind, len(notes), len(messages))

    def _lifecycle_route(self, note: HeldNotification) -> WebhookRoute | None:
        """The subscription's route when the notification carries its secret (read afresh:
        a lifecycle event may follow a resubscription)."""
        stored = self.routes.get(f"graph|{note.subscription_id}", "hook")
        return stored.entity if stored is not None and client_state_matches(note.client_state, stored.entity.secret) else None

    def _lifecycle_acted(self, notes: list[HeldNotification]) -> int:
        """Renew, subscribe again, and a delta round for each of ours; returns the steps queued.
        One failing (Graph unavailable) does not stop the others: the first failure is raised
        once all were tried, so the message comes again (renewing twice is harmless)."""
        failures: list[Exception] = []

        def one(note: HeldNotification) -> bool:
            route = self._lifecycle_route(note)
            if route is None:
                return False
            try:
                member = self.sync.member(route.member)
                kind = SyncKind(route.kind)
                if note.lifecycle_event == "reauthorizationRequired":
                    self.renew_subscription(member, kind, subscription_id=note.subscription_id)
                elif note.lifecycle_event == "subscriptionRemoved":
                    self.resubscribe(member, kind, replacing=note.subscription_id)
                return self.request_delta(route.member, kind, StepReason.LIFECYCLE)
            except LookupError:
                return False  # the member is gone: nothing to renew
            except Exception as error:  # noqa: BLE001 - raised below, once every other was tried
                log.warning("graph %s of subscription %s failed: %s", note.lifecycle_event, note.subscription_id, error)
                failures.append(error)
                return False

        queued = sum(1 for asked in self._each(notes, one) if asked)
        if failures:
            raise failures[0]
        return queued

    @staticmethod
    def _each(notes: list[HeldNotification], act: Callable[[HeldNotification], T]) -> list[T]:
        """``act`` on each notification, ``LOOKUPS_IN_FLIGHT`` at a time, in the request's context."""
        return concurrently.each(act, notes, at_once=LOOKUPS_IN_FLIGHT, name="notified")

    def _notified(self, notes: list[HeldNotification]) -> tuple[int, int]:
        """Each subscription's notification, looked up ``LOOKUPS_IN_FLIGHT`` at a time (Graph
        waits on the webhook); returns the steps queued and how many were ours (authentic)."""

        def one(note: HeldNotification) -> bool | None | str:
            route = self._route(f"graph|{note.subscription_id}")
            if route is None or not client_state_matches(note.client_state, route.secret):
                return note.subscription_id
            # Our own write's echo is told by the links of the Enable that subscribed.
            return self.request_unless_echo(route.member, SyncKind(route.kind), StepReason.GRAPH_WEBHOOK,
                                            outlook_items(note.items), links_partition=route.links_partition)

        outcomes = self._each(notes, one)
        refused = [outcome for outcome in outcomes if isinstance(outcome, str)]
        echoes = sum(1 for outcome in outcomes if outcome is None)
        if echoes:
            log.info("graph notifications: %d of our own writes' echoes dropped", echoes)
        if refused:  # one line per POST (the ids are screened GUIDs: safe to log)
            log.warning("graph notifications refused for %d subscriptions (unknown, or a wrong clientState): %s%s",
                        len(refused), ", ".join(refused[:5]), " ..." if len(refused) > 5 else "")
        return sum(1 for outcome in outcomes if outcome is True), len(outcomes) - len(refused)

    def _route(self, key: str) -> WebhookRoute | None:
        cached = self._route_cache.get(key)
        if cached is not None:
            return cached.value
        stored = self.routes.get(key, "hook")
        route = stored.entity if stored else None
        # Unknown ids are remembered briefly only: a subscription is created just before its first notification.
        self._route_cache.put(key, route, ROUTE_MEMO_SECONDS if route else 2.0)
        return route

    def crm_callback(self, body: bytes) -> None:
        """Raises CallbackRejected (malformed, unknown channel, wrong token): answered 4xx."""
        callback = parse_callback(body)
        route = self._route(f"crm|{callback.channel_id}")
        if route is None:
            raise CallbackRejected("unknown_channel", callback.channel_id)
        verify_callback(callback, route.secret)
        kind = SyncKind(route.kind)
        items = crm_items(callback.operation, callback.ids, callback.affected_values)
        if route.org_id is None:  # a channel of one member's own, made before issue 20
            self.request_unless_echo(route.member, kind, StepReason.CRM_WEBHOOK, items, crm_deletion=callback.operation == "delete")
            return
        self.sync.crm_routing.callback(route.org_id, kind, callback.operation, callback.ids, items)

    def renew_all(self) -> int:
        """Renew every subscription and channel that expires within a day, and move members'
        channels of their own (before issue 20) onto their org's. Each renewal stands alone:
        one member's or org's refusal (a revoked token, Graph down for that mailbox) is logged
        and tried again at the next run, a day before expiry leaves many runs, and never stops
        the others'. Two instances firing at once renew twice, which is harmless (both
        renewals are idempotent: each sets the expiry from now; the org's channel row is
        written with its ETag)."""
        renewed = failed = 0
        soon = self.d.clock() + RENEW_AHEAD
        due: list[tuple[str, str, Callable[[], object]]] = []
        for profile in self.d.profiles.all_active():
            kind = SyncKind(profile.row_key)
            if profile.subscription_expires and profile.subscription_expires < soon:
                due.append((profile.partition_key, f"{kind.value} subscription",
                            lambda profile=profile, kind=kind: self.renew_subscription(self.sync.member(profile.partition_key), kind)))
            if profile.channel_id:
                due.append((profile.partition_key, f"{kind.value} channel of its own",
                            lambda profile=profile: self.move_to_org_channel(profile)))
        for stored in self.sync.org_channels.channels():
            row = stored.entity
            if row.expires_at is None or row.expires_at < soon:
                due.append((f"org {row.org_id}", f"{row.kind} channel", lambda stored=stored: self.sync.org_channels.renew(stored)))
        for who, what, renew in due:
            try:
                renew()
                renewed += 1
            except Exception as error:  # noqa: BLE001 - one member's trouble must not stop the others'
                failed += 1
                log.warning("could not renew the %s of %s: %s", what, who, error)
        if failed:
            log.warning("renewals: %d done, %d failed (tried again at the next run)", renewed, failed)
        return renewed

    def move_to_org_channel(self, profile: SyncProfile) -> None:
        """A member on a channel of their own (made before issue 20): onto their org's channel,
        then their own disabled. In this order, no change goes unheard meanwhile."""
        member = self.sync.member(profile.partition_key)
        self.sync.org_channels.join(member, SyncKind(profile.row_key), links_partition=profile.links_partition)
        self.drop_member_channel(member, profile)

    def drop_member_channel(self, member: MemberIdentity, profile: SyncProfile) -> None:
        """Disable a member's channel of their own (best effort: it expires within a week, and
        its callbacks then find no route) and forget it."""
        channel_id = profile.channel_id
        if not channel_id:
            return
        try:
            self.d.crm_channels(member).disable([channel_id])
        except Exception as error:  # noqa: BLE001
            log.warning("could not disable channel %s: %s", channel_id, error)
        self.routes.delete(f"crm|{channel_id}", "hook")

        def forget(p: SyncProfile) -> SyncProfile:
            if p.channel_id != channel_id:
                return p
            return p.model_copy(update={"channel_id": None, "channel_token": None, "channel_expires": None})

        with contextlib.suppress(LookupError):  # the profile is gone: nothing to forget
            self.d.profiles.update(member.partition_key, SyncKind(profile.row_key), forget)

    def renew_subscription(self, member: MemberIdentity, kind: SyncKind, *, subscription_id: str | None = None) -> None:
        """Renew the member's subscription; ``subscription_id``: only if it is still that one (a
        lifecycle notification, maybe late or delivered twice, about one already replaced)."""
        stored = self.d.profiles.get(member.partition_key, kind)
        if stored is None or not stored.entity.subscription_id:
            return
        if subscription_id is not None and stored.entity.subscription_id != subscription_id:
            return
        try:
            subscription = self.d.subscriptions(member).renew(stored.entity.subscription_id)
        except SubscriptionGone:
            self.resubscribe(member, kind, replacing=stored.entity.subscription_id)
            return
        self.d.profiles.update(
            member.partition_key, kind, lambda p: p.model_copy(update={"subscription_expires": subscription.expiration_date_time})
        )

    def resubscribe(self, member: MemberIdentity, kind: SyncKind, *, replacing: str | None = None) -> None:
        """A new subscription for the member; ``replacing``: only if theirs is still that one
        (another would leave theirs orphaned, notifying until it expires)."""
        stored = self.d.profiles.get(member.partition_key, kind)
        if stored is None or not stored.entity.container_id:
            return
        if replacing is not None and stored.entity.subscription_id != replacing:
            return
        fields = self.subscribe(member, kind, stored.entity.container_id, links_partition=stored.entity.links_partition)
        self.d.profiles.update(member.partition_key, kind, lambda p: p.model_copy(update=fields))

    def subscribe(self, member: MemberIdentity, kind: SyncKind, container_id: str, *,
                  links_partition: str | None = None) -> dict[str, Any]:
        """A Graph subscription on our container and its route; the profile fields to store.
        ``links_partition``: the subscribing Enable's links (``SyncProfile.links_partition``)."""
        base = self.d.public_base_url
        client_state = new_client_state()
        client = self.d.subscriptions(member)
        subscribe = client.subscribe_calendar if kind is SyncKind.CALENDAR else client.subscribe_contacts
        subscription = subscribe(container_id, notification_url=f"{base}/api/webhooks/graph",
                                 lifecycle_url=f"{base}/api/webhooks/graph/lifecycle", client_state=client_state)
        self.routes.upsert(WebhookRoute(partition_key=f"graph|{subscription.id}", row_key="hook", member=member.partition_key,
                                        kind=kind.value, secret=client_state, links_partition=links_partition))
        return {"subscription_id": subscription.id, "subscription_expires": subscription.expiration_date_time,
                "client_state": client_state}
