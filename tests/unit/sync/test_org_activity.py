"""The admin's view of the org's sync (issue 19), over in-memory tables: who is shown how, and
the rules of Remind (only a paused member of the actor's org; at most once an hour)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet

from shared.accounts.models import AuditEvent, CrmAccountRef, MemberIdentity, TenantInstall
from shared.accounts.repository import AccountsRepository, crm_key, member_key
from shared.crm.directory import CrmMember
from shared.identity.token_cipher import TokenCipher
from shared.mail.outbox import Outbox, SealedOutboxMessage
from shared.sync.lifecycle import Reason
from shared.sync.links import InitialProgress
from shared.sync.org_activity import (
    KindActivity,
    MemberActivity,
    OrgSyncActivity,
    Reminded,
    SyncReminder,
    page_of,
)
from shared.sync.profiles import ProfileStore, SyncKind, SyncProfile, SyncState
from shared.web.settings_pages import time_left
from tests.fakes.queues import JobQueueInMemory
from tests.fakes.tables import CountsRequests, TableRepositoryInMemory

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
ORG, TENANT = "org-1", "tenant-1"


class Counted(CountsRequests, TableRepositoryInMemory[Any]):
    pass


class World:
    def __init__(self) -> None:
        self.now = NOW
        self.links, self.profile_rows = Counted(CrmAccountRef), Counted(SyncProfile)
        self.accounts = AccountsRepository(TableRepositoryInMemory(TenantInstall), TableRepositoryInMemory(MemberIdentity),
                                           self.links, TableRepositoryInMemory(AuditEvent))
        self.profiles = ProfileStore(self.profile_rows)
        self.queue = JobQueueInMemory(SealedOutboxMessage)
        self.cipher = TokenCipher(Fernet.generate_key().decode())
        self.committed: dict[str, InitialProgress] = {}  # an initial sync's progress, by links partition
        self.activity = OrgSyncActivity(self.accounts, self.profiles, TableRepositoryInMemory(SyncReminder),
                                        Outbox(self.queue, self.cipher), public_base_url="https://app.example", clock=lambda: self.now,
                                        progress=self.committed.get)

    def member(self, user_id: str, name: str, *, linked: bool = True, org: str = ORG, **states: SyncProfile) -> CrmMember:
        first, last = name.split()
        if linked:
            self.accounts.crm_links.insert(CrmAccountRef(partition_key=crm_key(org, user_id), row_key="link", tenant_id=TENANT,
                                                         object_id=f"obj-{user_id}", email=f"{first.lower()}@x.test", linked_at=NOW))
        for kind, profile in states.items():
            self.profiles.create_or_get(profile.model_copy(update={"partition_key": member_key(TENANT, f"obj-{user_id}"), "row_key": kind}))
        return CrmMember(org_id=org, org_name="Org", user_id=user_id, email=f"{first.lower()}@x.test", first_name=first, last_name=last,
                         dc="us", edition="enterprise", paid=True, profile_name="Standard", is_super_admin=False, manage_users=False,
                         status="active", accounts_server="https://accounts.example", api_domain="https://api.example")


def profile(state: SyncState, reason: Reason | None = None, **extra: object) -> SyncProfile:
    return SyncProfile(partition_key="p", row_key="calendar", tenant_id=TENANT, object_id="o", state=state, reason=reason, **extra)


ADMIN = MemberIdentity(partition_key=member_key(TENANT, "obj-admin"), row_key="member", tenant_id=TENANT, object_id="obj-admin",
                       email="admin@x.test", name="Ada Admin", org_id=ORG, org_name="Org", user_id="u-admin", crm_email="admin@x.test",
                       dc="us", accounts_server="a", api_domain="b", how="created_org", linked_at=NOW)


def test_paused_members_come_first_then_by_name_and_each_kind_says_its_state() -> None:
    world = World()
    members = [
        world.member("1", "Zoe Active", calendar=profile(SyncState.ACTIVE, last_sync_at=NOW)),
        world.member("2", "Bob Paused", contacts=profile(SyncState.PAUSED, Reason.MAILBOX_REFUSED, last_error="403")),
        world.member("3", "Amy Never", linked=False),
        world.member("4", "Carl Off"),
    ]
    rows = world.activity.of(members)
    assert [r.name for r in rows] == ["Bob Paused", "Carl Off", "Zoe Active", "Amy Never"]
    bob = rows[0]
    assert bob.kinds[SyncKind.CONTACTS].state == "paused" and bob.kinds[SyncKind.CONTACTS].reason == "mailbox_refused"
    assert bob.kinds[SyncKind.CALENDAR].state == "disabled"
    assert rows[2].kinds[SyncKind.CALENDAR].last_sync_at == NOW and not rows[3].linked


def test_an_initial_sync_shows_the_pages_its_running_step_committed() -> None:
    """The admin's view counts as the member's page does (``as_committed``), not as of the
    step's last release."""
    world = World()
    running = profile(SyncState.INITIAL, initial_done=99, initial_total=1000, synced_items=99)
    members = [world.member("1", "Ian Initial", calendar=running)]
    stored = world.profiles.get(member_key(TENANT, "obj-1"), SyncKind.CALENDAR)
    assert stored is not None
    world.committed[stored.entity.links_partition] = InitialProgress(done=396, reserved=693, synced=390, total=1000)
    [ian] = world.activity.of(members)
    assert (ian.kinds[SyncKind.CALENDAR].done, ian.kinds[SyncKind.CALENDAR].total) == (390, 1000)


def test_the_view_of_an_org_of_a_thousand_members_is_a_few_reads_not_three_per_member() -> None:
    """Issue 20, big orgs: 1,000 members (800 linked, each with a calendar profile, 1 in its
    initial sync), and another org of the same tenant whose rows must not show."""
    world = World()
    members = [world.member(f"{n:04d}", f"Member N{n:04d}", linked=n % 5 != 0,
                            **({"calendar": profile(SyncState.INITIAL if n == 1 else SyncState.ACTIVE, initial_total=10)}
                               if n % 5 else {})) for n in range(1000)]
    world.member("9999", "Other Org", org="org-2", contacts=profile(SyncState.PAUSED, Reason.MAILBOX_REFUSED))
    world.links.requests = world.profile_rows.requests = 0
    rows = world.activity.of(members)
    assert world.links.requests == 1 and world.profile_rows.requests == 1  # one range query each
    assert len(rows) == 1000 and not any(r.paused for r in rows)  # the other org's paused member is not one of these
    by_id = {r.user_id: r for r in rows}
    assert by_id["0001"].kinds[SyncKind.CALENDAR].state == "initial" and by_id["0002"].kinds[SyncKind.CALENDAR].state == "active"
    assert not by_id["0005"].linked and by_id["0005"].kinds[SyncKind.CALENDAR].state == "disabled"
    assert sum(r.linked for r in rows) == 800


def test_remind_only_a_paused_member_of_ones_own_org_and_at_most_hourly() -> None:
    world = World()
    paused = world.member("2", "Bob Paused", calendar=profile(SyncState.PAUSED, Reason.STEP_FAILED))
    active = world.member("1", "Zoe Active", calendar=profile(SyncState.ACTIVE))
    foreign = world.member("9", "Eve Elsewhere", org="org-2", calendar=profile(SyncState.PAUSED, Reason.STEP_FAILED))
    members = [paused, active, foreign]

    def remind(user_id: str) -> Reminded:
        return world.activity.remind(ADMIN, members, user_id, "en", describe=lambda reason: f"<{reason}>")

    assert remind("1") is Reminded.NOT_PAUSED
    assert remind("9") is Reminded.UNKNOWN  # listed, but of another org
    assert remind("nobody") is Reminded.UNKNOWN
    assert world.queue.take() == []
    assert remind("2") is Reminded.SENT
    [sent] = world.queue.take()
    body = world.cipher.decrypt(sent.message.sealed_body)
    assert sent.message.to_email == "bob@x.test" and sent.message.sender == "obj-admin" and "&lt;step_failed&gt;" in body
    world.now += timedelta(minutes=59)
    assert remind("2") is Reminded.TOO_SOON and world.queue.take() == []
    world.now += timedelta(minutes=2)
    assert remind("2") is Reminded.SENT and len(world.queue.take()) == 1


def test_time_left_follows_the_pace_kept_since_enable() -> None:
    started = NOW - timedelta(minutes=10)
    running = profile(SyncState.INITIAL, enabled_at=started, initial_done=250, initial_total=1000)
    assert time_left(running, NOW) == 30  # 250 in 10 min: 750 more need 30
    assert time_left(running.model_copy(update={"initial_done": 0}), NOW) is None  # no pace yet
    assert time_left(running.model_copy(update={"state": SyncState.ACTIVE}), NOW) is None
    assert time_left(running.model_copy(update={"initial_done": 999}), NOW) == 0
    assert time_left(None, NOW) is None
    # Stopped for the mailbox's spent window (Graph's 10,000 requests per 10 minutes): that wait first.
    waiting = running.model_copy(update={"initial_done": 980, "initial_resume_at": NOW + timedelta(minutes=8)})
    assert time_left(waiting, NOW) == 8
    assert time_left(waiting, NOW + timedelta(minutes=9)) == 0  # due back: the pace alone


def _row(n: int, *states: str, linked: bool = True) -> MemberActivity:
    kinds = {kind: KindActivity(state, None, None, None) for kind, state in zip(SyncKind, states or ("disabled", "disabled"), strict=True)}
    return MemberActivity(f"u{n:05d}", f"Member {n:05d}", f"m{n}@x.test", linked, kinds)


def test_an_org_of_thousands_is_shown_a_hundred_members_a_page_with_where_everyone_stands() -> None:
    rows = ([_row(n, "paused", "active") for n in range(3)] + [_row(n, "initial", "disabled") for n in range(3, 13)]
            + [_row(n, "active", "active") for n in range(13, 213)] + [_row(n, "disabled", "disabled") for n in range(213, 243)]
            + [_row(n, linked=False) for n in range(243, 250)])
    first = page_of(rows, None)
    assert (first.number, first.pages, len(first.rows)) == (1, 3, 100) and first.rows[0].user_id == "u00000"
    assert first.counts == {"paused": 3, "initial": 10, "active": 200, "disabled": 30, "not_linked": 7}
    last = page_of(rows, "3")
    assert (last.number, [r.user_id for r in last.rows][:1], len(last.rows)) == (3, ["u00200"], 50)
    assert last.counts == first.counts  # the whole org's, on every page


def test_a_page_number_typed_by_hand_shows_the_nearest_page() -> None:
    rows = [_row(n) for n in range(150)]
    assert [page_of(rows, asked).number for asked in ("0", "2", "3", "999999", "99999999999", "-1", "abc", "", "1e3", "²", "٣")] == [
        1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1]
    assert page_of([], "4").number == 1 and page_of([], None).pages == 1
