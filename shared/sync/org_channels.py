"""One CRM watch channel per org and kind, shared by the org's members whose sync of that kind
is on, and the index that finds a member's sync from a CRM user id (issue 20).

Before, each member watched the whole module on a channel of their own: one CRM edit in an
org of 1,000 members with sync on was 1,000 callbacks and 1,000 steps. Now the org has one
channel per kind and each change goes to its owner's sync (``crm_routing``).

Table ``crmchannels``, one partition per org and kind (``"{org id}|{kind}"``):
- RowKey ``channel``: the channel (id, token, expiry as the CRM confirmed it; None until it
  did) and ``agent``, the member whose CRM access enables, renews and reads for the org;
- RowKey ``user|{CRM user id}``: a member whose sync of this kind is on. Enable writes it,
  Disable deletes it; a paused sync keeps it (a change routed to it finds it paused: nothing).

Enable writes its member row and the channel row in one transaction (the channel row always,
so its ETag moves, and only if its ETag did not move since Enable read it); the last member's
Disable deletes its row, finds no other member and deletes the channel row only if its ETag did
not move. So an Enable racing the last Disable either is seen by it (the channel stays) or
finds the channel row gone and makes a new channel.

Channels of one member made before this (``SyncProfile.channel_id``, their route names the
member) keep working as they did; the renewal timer moves each such member onto their org's
channel and disables the old one (``SyncWebhooks.renew_all``), so within an hour of the
deployment none is left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, TypeVar

from shared.accounts.models import MemberIdentity
from shared.crm.errors import CrmError
from shared.crm.models import Module
from shared.crm.watch import new_channel_id, new_channel_token
from shared.storage import (
    ConcurrencyConflict,
    EntityAlreadyExists,
    Stored,
    TableEntity,
    TableOperation,
    TableRepository,
)
from shared.sync.profiles import SyncKind
from shared.sync.webhook_routes import WebhookRoute

log = logging.getLogger(__name__)

CRM_MODULE: dict[SyncKind, Module] = {SyncKind.CALENDAR: "Events", SyncKind.CONTACTS: "Contacts"}
RENEW_AHEAD = timedelta(hours=24)
ATTEMPTS = 5  # ETag races between Enables, Disables and renewals of one org
OTHER_AGENTS = 3  # members tried in turn when the agent's CRM access fails
T = TypeVar("T")


class OrgChannel(TableEntity):
    """PartitionKey = "{org id}|{kind}", RowKey = "channel"."""

    org_id: str
    kind: str
    channel_id: str
    token: str
    created_at: datetime
    expires_at: datetime | None = None  # as the CRM confirmed it; None: not (yet) confirmed
    agent: str  # the member key whose CRM access acts for the org


class OrgMember(TableEntity):
    """PartitionKey = "{org id}|{kind}", RowKey = "user|{CRM user id}"."""

    member: str  # the member key ("ms|tenant|object")
    # The links of the member's Enable that joined (``SyncProfile.links_partition``): a callback
    # that names only our own writes is told an echo there, without reading the profile. None:
    # joined before this was kept (the profile is read, as before).
    links_partition: str | None = None


def partition(org_id: str, kind: SyncKind) -> str:
    return f"{org_id}|{kind.value}"


def user_row(crm_user_id: str) -> str:
    return f"user|{crm_user_id}"


class OrgChannels:
    """The org's channel and members, in Table Storage, and the CRM calls that keep the channel."""

    def __init__(
        self,
        channels: TableRepository[Any],
        members: TableRepository[Any],
        routes: TableRepository[Any],
        crm_channels: Callable[[MemberIdentity], Any],
        member_of: Callable[[str], MemberIdentity],
        notify_url: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._table = channels  # the "channel" rows (``OrgChannel``)
        self._members = members  # the "user|…" rows (``OrgMember``), in the same table
        self._routes = routes
        self._crm_channels = crm_channels
        self._member_of = member_of
        self._notify_url = notify_url
        self._now = clock

    # -- reads --------------------------------------------------------------------------------

    def member_for(self, org_id: str, kind: SyncKind, crm_user_id: str) -> str | None:
        """The member key of that CRM user's sync of this kind (one point read), or None."""
        if not crm_user_id.isdigit():
            return None
        found = self._members.get(partition(org_id, kind), user_row(crm_user_id))
        return found.entity.member if found else None

    def members(self, org_id: str, kind: SyncKind, limit: int | None = None) -> list[str]:
        """The member keys of the org's syncs of this kind (``limit``: at most that many, one read)."""
        return [row.member for row in self.member_rows(org_id, kind, limit)]

    def member_rows(self, org_id: str, kind: SyncKind, limit: int | None = None) -> list[OrgMember]:
        rows = self._members.query(partition(org_id, kind), where="RowKey ge @lo and RowKey lt @hi",
                                 parameters={"lo": "user|", "hi": "user}"}, page_size=limit or 1000)
        return [s.entity for s in islice(rows, limit)]

    def channel(self, org_id: str, kind: SyncKind) -> Stored[OrgChannel] | None:
        return self._table.get(partition(org_id, kind), "channel")

    def channels(self) -> Iterator[Stored[OrgChannel]]:
        """Every org's channel (the timers)."""
        return self._table.query(where="RowKey eq @c", parameters={"c": "channel"})

    # -- Enable and Disable -----------------------------------------------------------------------

    def join(self, member: MemberIdentity, kind: SyncKind, *, links_partition: str | None = None) -> OrgChannel:
        """The member's sync of this kind is on: index them (with the Enable's ``links_partition``),
        and make sure the org's channel exists and is live (made with their CRM access when it
        is not). Safe to repeat.

        The member's row and the channel's share a partition, so they are written in one
        transaction: joining a live channel is one read and one write; making one, a read, the
        claim (with the member's row), the route and the confirmation."""
        key = partition(member.org_id, kind)
        mine = OrgMember(partition_key=key, row_key=user_row(member.user_id), member=member.partition_key,
                         links_partition=links_partition)
        for _ in range(ATTEMPTS):
            stored = self.channel(member.org_id, kind)
            if stored is None:
                row = OrgChannel(partition_key=key, row_key="channel", org_id=member.org_id, kind=kind.value,
                                 channel_id=new_channel_id(), token=new_channel_token(), created_at=self._now(),
                                 agent=member.partition_key)
                try:  # claimed before the CRM is asked: two Enables at once make one channel
                    stored = self._with_member(mine, TableOperation("insert", row))
                except EntityAlreadyExists:
                    continue
            row = stored.entity
            if row.expires_at is None or row.expires_at < self._now() + RENEW_AHEAD:
                self._route(row)  # before the CRM knows it: its first callback finds the route
                row = row.model_copy(update={"expires_at": self._enable(member, row)})
            # Written even unchanged: a racing last Disable sees the ETag move and keeps the
            # channel; a channel it deleted meanwhile fails the write, and this looks again.
            try:
                return self._with_member(mine, TableOperation("replace", row, stored.etag)).entity
            except ConcurrencyConflict:
                continue
        raise ConcurrencyConflict(f"the {kind.value} channel of org {member.org_id} kept changing")

    def _with_member(self, member_row: OrgMember, channel_write: TableOperation[Any]) -> Stored[OrgChannel]:
        """The channel row written with the member's row, in one transaction (all or nothing)."""
        written = self._table.transact([TableOperation("upsert", member_row), channel_write])
        return written[1]  # type: ignore[return-value]

    def leave(self, member: MemberIdentity, kind: SyncKind) -> None:
        """The member's sync of this kind is off: unindex them; the last one out disables the
        org's channel. Another member takes over as the org's agent when it was them."""
        key = partition(member.org_id, kind)
        mine = self._members.get(key, user_row(member.user_id))
        if mine is not None and mine.entity.member == member.partition_key:
            self._members.delete(key, user_row(member.user_id))
        for _ in range(ATTEMPTS):
            stored = self.channel(member.org_id, kind)
            if stored is None:
                return
            others = self.members(member.org_id, kind, limit=1)
            try:
                if others:
                    if stored.entity.agent == member.partition_key:
                        self._table.replace(stored.entity.model_copy(update={"agent": others[0]}), stored.etag)
                    return
                self._table.delete(key, "channel", etag=stored.etag)
            except ConcurrencyConflict:
                continue  # an Enable (or a renewal) wrote meanwhile: look again
            self._routes.delete(f"crm|{stored.entity.channel_id}", "hook")
            try:
                self._crm_channels(member).disable([stored.entity.channel_id])
            except Exception as error:  # noqa: BLE001 - best effort: it expires within a week, its callbacks find no route
                log.warning("could not disable the %s channel %s of org %s: %s", kind.value, stored.entity.channel_id,
                            member.org_id, error)
            return

    # -- renewal and repair -------------------------------------------------------------------------

    def renew(self, stored: Stored[OrgChannel]) -> OrgChannel:
        """Extend the channel (or enable it again when the CRM no longer has it), as the org's
        agent or, when their access fails, as another member who then becomes the agent."""
        row = stored.entity

        def extend(member: MemberIdentity) -> datetime:
            channels = self._crm_channels(member)
            if row.expires_at is not None and row.expires_at > self._now():
                try:
                    return channels.renew(row.channel_id)  # type: ignore[no-any-return]
                except CrmError as error:
                    if error.status == 401 or error.status == 403:
                        raise
                    # Unknown to the CRM (lost, expired early): the same id and token again.
            return self._enable(member, row)

        expires, agent = self.as_agent(row, extend)
        self._route(row)
        return self._table.replace(row.model_copy(update={"expires_at": expires, "agent": agent}), stored.etag).entity

    def as_agent(self, row: OrgChannel, call: Callable[[MemberIdentity], T]) -> tuple[T, str]:
        """``call`` with the CRM access of the org's agent, or of the next members in turn when
        it fails (a member gone, a refused token); returns its result and who answered."""
        candidates = [row.agent] + [m for m in self.members(row.org_id, SyncKind(row.kind), limit=OTHER_AGENTS + 1)
                                    if m != row.agent][:OTHER_AGENTS]
        failure: Exception | None = None
        for key in candidates:
            try:
                return call(self._member_of(key)), key
            except (LookupError, CrmError) as error:
                log.warning("org %s: the CRM access of %s failed (%s); trying another member", row.org_id, key, error)
                failure = error
        raise failure or LookupError(f"no member acts for org {row.org_id}")

    def _enable(self, member: MemberIdentity, row: OrgChannel) -> datetime:
        channel = self._crm_channels(member).enable(CRM_MODULE[SyncKind(row.kind)], self._notify_url,
                                                    channel_id=row.channel_id, token=row.token)
        return channel.expires_at  # type: ignore[no-any-return]

    def _route(self, row: OrgChannel) -> None:
        self._routes.upsert(WebhookRoute(partition_key=f"crm|{row.channel_id}", row_key="hook", kind=row.kind,
                                         secret=row.token, org_id=row.org_id))
