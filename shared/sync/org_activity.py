"""The admin's view of the org's sync (issue 19), as the peers' sync-health pages show it:
every CRM member of the org with their calendar and contacts sync (state, last sync, why it
stopped), and an e-mail reminding a member whose sync is paused, at most once an hour."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared import concurrently, paging
from shared.accounts.models import MemberIdentity
from shared.accounts.repository import AccountsRepository, member_key
from shared.crm.directory import CrmMember
from shared.mail.outbox import Outbox, OutboxMessage
from shared.mail.templates import render_mail
from shared.storage import ConcurrencyConflict, EntityAlreadyExists, TableEntity, TableRepository
from shared.sync.initial_progress import as_seen
from shared.sync.lifecycle import Reason
from shared.sync.links import InitialProgress
from shared.sync.profiles import ProfileStore, SyncKind, SyncProfile, SyncState

REMIND_AFTER = timedelta(hours=1)
PROGRESS_READS_IN_FLIGHT = 8
PAGE_SIZE = paging.PAGE_SIZE  # members a page of the view shows (an org of 10,000 is 100 pages, paused first)


@dataclass(frozen=True)
class KindActivity:
    state: str  # disabled, initial, active, paused
    reason: str | None
    last_sync_at: datetime | None
    last_error: str | None
    done: int = 0
    total: int = 0


@dataclass(frozen=True)
class MemberActivity:
    user_id: str
    name: str
    email: str
    linked: bool  # signed in with Microsoft at least once: only then can they sync
    kinds: dict[SyncKind, KindActivity]

    @property
    def paused(self) -> bool:
        return any(k.state == SyncState.PAUSED.value for k in self.kinds.values())

    @property
    def standing(self) -> str:
        """Where the member stands, counted once: not signed in with Microsoft yet, else the
        state of the kind that most needs someone (paused, then initial, then active)."""
        if not self.linked:
            return NOT_LINKED
        states = {k.state for k in self.kinds.values()}
        return next((s.value for s in STANDING_ORDER if s.value in states), SyncState.DISABLED.value)


NOT_LINKED = "not_linked"
STANDING_ORDER = (SyncState.PAUSED, SyncState.INITIAL, SyncState.ACTIVE, SyncState.DISABLED)


@dataclass(frozen=True)
class ActivityPage(paging.Page[MemberActivity]):
    """One page of the view, and how many members of the whole org stand where
    (``MemberActivity.standing``), in ``STANDING_ORDER`` then not linked."""

    counts: dict[str, int] = field(default_factory=dict)


def page_of(rows: list[MemberActivity], requested: str | None, size: int | None = None) -> ActivityPage:
    """The page asked for by ``?page=``: a number (ASCII digits, up to 6) out of range is the
    nearest page, anything else the first (a navigation link typed by hand changes nothing).
    ``size``: ``PAGE_SIZE`` unless given."""
    shown = paging.page_of(rows, requested, size or PAGE_SIZE)
    standing = [r.standing for r in rows]
    counts = {key: standing.count(key) for key in (*(s.value for s in STANDING_ORDER), NOT_LINKED)}
    return ActivityPage(shown.rows, shown.number, shown.pages, shown.total, counts)


class SyncReminder(TableEntity):
    """PartitionKey = org id, RowKey = CRM user id: the last reminder sent to that member."""

    sent_at: datetime
    sent_by: str


class Reminded(enum.StrEnum):
    SENT = "sent"
    TOO_SOON = "too_soon"  # one was sent less than an hour ago
    NOT_PAUSED = "not_paused"  # nothing to remind of (resumed meanwhile, or never paused)
    UNKNOWN = "unknown"  # no such member in this org


def _activity(profile: SyncProfile | None) -> KindActivity:
    if profile is None:
        return KindActivity(SyncState.DISABLED.value, None, None, None)
    reason = profile.reason.value if profile.reason and profile.reason is not Reason.DISABLED_BY_MEMBER else None
    return KindActivity(profile.state.value, reason, profile.last_sync_at, profile.last_error,
                        profile.initial_done, profile.initial_total)


class OrgSyncActivity:
    def __init__(
        self, accounts: AccountsRepository, profiles: ProfileStore, reminders: TableRepository[SyncReminder],
        outbox: Outbox, *, public_base_url: str, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        progress: Callable[[str], InitialProgress | None] = lambda partition: None,
    ) -> None:
        self._accounts = accounts
        self._profiles = profiles
        self._reminders = reminders
        self._outbox = outbox
        self._base = public_base_url
        self._now = clock
        self._progress = progress  # an initial sync's committed pages (``LinkStore.progress``)

    def of(self, members: list[CrmMember]) -> list[MemberActivity]:
        """Each member's sync, paused ones first (they need someone), then by name. Read org-wide:
        one range query of the org's linked users and one of each tenant's profiles (1,000 rows a
        page), so the page of an org of 10,000 costs a few dozen reads, not 30,000 point reads
        one after the other (minutes against the service)."""
        identities: dict[str, tuple[str, str]] = {}
        for org in dict.fromkeys(m.org_id for m in members):
            identities.update(self._accounts.org_identities(org))
        profiles = {(p.partition_key, p.row_key): p for tenant in sorted({t for t, _ in identities.values()})
                    for p in self._profiles.of_tenant(tenant)}
        # An initial sync's committed pages: one point read each, a few at once (a rollout puts
        # hundreds of members in their initial sync together).
        running = [key for key, p in profiles.items() if p.state is SyncState.INITIAL]
        profiles.update(zip(running, concurrently.each(lambda key: as_seen(profiles[key], self._progress), running,
                                                       at_once=PROGRESS_READS_IN_FLIGHT, name="activity-progress"), strict=True))
        rows = [self._member(m, identities.get(m.user_id), profiles) for m in members]
        return sorted(rows, key=lambda r: (not r.paused, not r.linked, paging.name_key(r.name), r.email))

    def _member(self, member: CrmMember, identity: tuple[str, str] | None,
                profiles: dict[tuple[str, str], SyncProfile]) -> MemberActivity:
        name = f"{member.first_name} {member.last_name}".strip() or member.email
        kinds = {}
        for kind in SyncKind:
            kinds[kind] = _activity(profiles.get((member_key(*identity), kind.value)) if identity else None)
        return MemberActivity(member.user_id, name, member.email, identity is not None, kinds)

    def remind(self, actor: MemberIdentity, members: list[CrmMember], user_id: str, language: str,
               describe: Callable[[str], str]) -> Reminded:
        """E-mail ``user_id`` (a member of the actor's org) that their sync is paused, why, and
        where to resume it. ``describe`` gives a reason in words, in ``language``."""
        member = next((m for m in members if m.user_id == user_id and m.org_id == actor.org_id), None)
        if member is None:
            return Reminded.UNKNOWN
        identity = self._accounts.identity_of(member.org_id, member.user_id)  # one member: point reads
        stored = [self._profiles.get(member_key(*identity), kind) for kind in SyncKind] if identity else []
        activity = self._member(member, identity, {(s.entity.partition_key, s.entity.row_key): s.entity for s in stored if s})
        # (Paused or not is all Remind needs: an initial sync's progress is not read.)
        paused = {kind: k for kind, k in activity.kinds.items() if k.state == SyncState.PAUSED.value}
        if not paused:
            return Reminded.NOT_PAUSED
        if not self._claim(actor, member):
            return Reminded.TOO_SOON
        reasons = [describe(k.reason or "") for k in paused.values()]
        subject, html, text = render_mail(
            "sync_paused", language, name=activity.name, admin=actor.name or actor.email, org=actor.org_name,
            reasons=reasons, link=f"{self._base}/api/settings/microsoft",
        )
        sent_at = self._now()
        self._outbox.enqueue(OutboxMessage(
            message_id=f"remind-{member.org_id}-{member.user_id}-{int(sent_at.timestamp())}"[:100],
            tenant_id=actor.tenant_id, sender=actor.object_id, to_email=member.email, to_name=member.first_name,
            subject=subject, html=html, text=text,
        ))
        self._accounts.audit(actor=actor.email, action="sync.reminded", tenant_id=actor.tenant_id,
                             org_id=actor.org_id, detail=member.email)
        return Reminded.SENT

    def _claim(self, actor: MemberIdentity, member: CrmMember) -> bool:
        """Record this reminder unless one was sent within the hour (a twin click, a second
        admin): the row's ETag makes the check and the write one step."""
        row = SyncReminder(partition_key=member.org_id, row_key=member.user_id, sent_at=self._now(), sent_by=actor.email)
        stored = self._reminders.get(member.org_id, member.user_id)
        try:
            if stored is None:
                self._reminders.insert(row)
            elif self._now() - stored.entity.sent_at < REMIND_AFTER:
                return False
            else:
                self._reminders.replace(row, stored.etag)
        except (EntityAlreadyExists, ConcurrencyConflict):
            return False
        return True
