"""One CRM access token per member across instances (issue 20): three "instances" (three
``AccessTokens``, as three Function hosts each build one) share the token table; Zoho's
refresh limits hold for all of them together. The table is the in-memory one whose behaviour
``tests/integration/test_storage_contract.py`` holds to Azurite's."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from shared.crm.errors import CrmError, CrmUnavailable
from shared.crm.models import CrmMemberAccess
from shared.crm.oauth import CrmTokens
from shared.crm.token_store import LEASE_SECONDS, AccessToken, SharedTokenStore, StoredAccessToken
from shared.crm.tokens import SLOT_IDLE_SECONDS, SWEEP_FROM, AccessTokens, CrmAuthorizationLost
from shared.identity.token_cipher import TokenCipher
from tests.fakes.tables import TableRepositoryInMemory

MEMBER = CrmMemberAccess(org_id="1", user_id="2", accounts_server="https://accounts.zoho.com",
                         api_domain="https://www.zohoapis.com", refresh_token=SecretStr("1000.refresh.secret"))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        """Waiting moves this clock, and lets other threads run for a twentieth of it: two
        instances polling every 0.2 s move the clock 0.4 s per round, so a refresh that takes
        0.05 s of real time must not see its 20-s lease lapse (with 1 ms per poll it did, under
        ``make test``'s load: a second refresh)."""
        with self._lock:
            self.now += seconds
        time.sleep(seconds / 20)


class ZohoAccounts:
    """The token endpoint as these tests need it: counts refreshes, can be slow, can be dead."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.dead = False
        self.delay = delay
        self._lock = threading.Lock()

    def refresh(self, refresh_token: str, accounts_server: str) -> CrmTokens:
        with self._lock:
            self.calls += 1
            number = self.calls
        time.sleep(self.delay)
        if self.dead:
            raise CrmError(400, "invalid_code", "invalid_code")
        return CrmTokens(access_token=f"access-{number}", api_domain="https://www.zohoapis.com", accounts_server=accounts_server)


class Instances:
    def __init__(self, count: int = 3, delay: float = 0.0) -> None:
        self.clock = Clock()
        self.zoho = ZohoAccounts(delay)
        self.rows = TableRepositoryInMemory(StoredAccessToken)
        self.cipher = TokenCipher(Fernet.generate_key().decode())
        self.hosts = [
            AccessTokens(self.zoho, clock=self.clock,  # type: ignore[arg-type]
                         store=SharedTokenStore(self.rows, self.cipher, holder=f"host-{n}", clock=self.clock, sleep=self.clock.sleep))
            for n in range(count)
        ]


def test_many_first_uses_on_three_instances_make_one_refresh() -> None:
    world = Instances(delay=0.05)
    barrier = threading.Barrier(24)
    seen: list[str] = []

    def first_use(host: AccessTokens) -> None:
        barrier.wait()
        seen.append(host.get(MEMBER).value)

    threads = [threading.Thread(target=first_use, args=(world.hosts[n % 3],)) for n in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(seen) == 24 and set(seen) == {"access-1"}
    assert world.zoho.calls == 1


def test_the_token_is_kept_encrypted_and_its_row_is_named_by_a_hash() -> None:
    world = Instances()
    value = world.hosts[0].get(MEMBER).value
    raw = str([s.entity.model_dump() for s in world.rows.query(None)])
    assert value not in raw and "1000.refresh.secret" not in raw


def test_a_token_refused_on_one_instance_is_refreshed_once_for_all() -> None:
    world = Instances()
    first = world.hosts[0].get(MEMBER)
    assert [h.get(MEMBER) for h in world.hosts[1:]] == [first, first] and world.zoho.calls == 1
    world.hosts[1].invalidate(MEMBER, first)  # the CRM answered INVALID_TOKEN on host 1
    second = world.hosts[1].get(MEMBER)
    assert second.value == "access-2"
    world.hosts[2].invalidate(MEMBER, first)  # host 2 saw the same refusal: it is already replaced
    assert world.hosts[2].get(MEMBER) == second and world.zoho.calls == 2


def test_each_instance_refreshes_ahead_of_expiry_from_the_shared_row() -> None:
    world = Instances()
    first = world.hosts[0].get(MEMBER)
    world.clock.now += 3600 - 299  # inside the five-minute margin
    renewed = world.hosts[1].get(MEMBER)
    assert renewed.value != first.value and world.hosts[0].get(MEMBER) == renewed and world.zoho.calls == 2


def test_a_dead_refresh_token_is_asked_once_across_instances() -> None:
    world = Instances()
    world.zoho.dead = True
    for host in world.hosts:
        with pytest.raises(CrmAuthorizationLost) as lost:
            host.get(MEMBER)
        assert lost.value.code == "REFRESH_TOKEN_REVOKED"
    assert world.zoho.calls == 1


def test_the_eleventh_refresh_in_ten_minutes_is_not_asked_of_zoho() -> None:
    world = Instances()
    for n in range(10):  # every refresh made by a different instance, each after its token died
        world.clock.now += 50
        token = world.hosts[n % 3].get(MEMBER)
        world.hosts[n % 3].invalidate(MEMBER, token)
    assert world.zoho.calls == 10
    with pytest.raises(CrmUnavailable) as limited:
        world.hosts[1].get(MEMBER)
    assert limited.value.code == "TOKEN_REFRESH_LIMITED" and world.zoho.calls == 10
    world.clock.now += 151  # ten minutes after the first refresh: it leaves the window
    assert world.hosts[2].get(MEMBER).value == "access-11" and world.zoho.calls == 11


def test_a_claim_left_by_a_dead_instance_is_taken_over_after_its_lease() -> None:
    world = Instances()
    stale = StoredAccessToken(partition_key=_key(), row_key="access", refreshing_until=world.clock.now + LEASE_SECONDS,
                              refreshing_by="host-that-died")
    world.rows.insert(stale)
    started = world.clock.now
    assert world.hosts[0].get(MEMBER).value == "access-1"  # it waited, then refreshed itself
    assert world.clock.now - started >= LEASE_SECONDS and world.zoho.calls == 1


def test_a_failed_refresh_releases_the_claim_at_once() -> None:
    world = Instances()

    def unreachable(*_: Any) -> CrmTokens:
        world.zoho.calls += 1
        raise CrmUnavailable(503, "UNREACHABLE", "the accounts server did not answer")

    world.zoho.refresh = unreachable  # type: ignore[method-assign]
    with pytest.raises(CrmUnavailable):
        world.hosts[0].get(MEMBER)
    started = world.clock.now
    with pytest.raises(CrmUnavailable):
        world.hosts[1].get(MEMBER)  # no wait for a lease nobody holds
    assert world.clock.now == started and world.zoho.calls == 2


def _key() -> str:
    from shared.crm.tokens import _key as key_of

    return key_of(MEMBER)


def test_the_token_that_came_with_the_authorisation_serves_every_instance_without_a_refresh() -> None:
    world = Instances()
    issued = AccessToken("issued-with-the-grant", "https://www.zohoapis.com", world.clock.now + 3600)
    world.hosts[0].adopt(MEMBER, issued)
    assert {host.get(MEMBER).value for host in world.hosts} == {"issued-with-the-grant"}
    assert world.zoho.calls == 0
    world.clock.now += 3600 - 299  # inside the refresh margin: refreshed once, as any token
    assert {host.get(MEMBER).value for host in world.hosts} == {"access-1"} and world.zoho.calls == 1


def test_an_adopted_token_never_replaces_a_longer_lived_one_nor_a_refresh_under_way() -> None:
    world = Instances()
    fresh = world.hosts[0].get(MEMBER)
    world.hosts[1].adopt(MEMBER, AccessToken("older", "https://www.zohoapis.com", fresh.expires_at - 60))
    assert world.hosts[2].get(MEMBER).value == fresh.value
    [row] = world.rows.query(None)
    claimed = row.entity.model_copy(update={"refreshing_until": world.clock.now + LEASE_SECONDS, "refreshing_by": "host-9",
                                            "expires_at": 0.0})
    world.rows.replace(claimed, row.etag)
    world.hosts[1].adopt(MEMBER, AccessToken("late", "https://www.zohoapis.com", world.clock.now + 7200))
    [after] = world.rows.query(None)
    assert after.entity.expires_at == 0.0  # the refresh under way writes its own token


def test_a_long_lived_instance_keeps_the_tokens_of_the_members_it_serves_not_of_every_member_it_met() -> None:
    """A member's token was kept for the life of the process: an instance serving every member
    of big orgs for days held one per member it ever met."""
    world = Instances(count=1)
    [host] = world.hosts
    members = [MEMBER.model_copy(update={"refresh_token": SecretStr(f"1000.refresh.{n}")}) for n in range(SWEEP_FROM)]
    for member in members:
        host.get(member)
    assert len(host) == SWEEP_FROM
    world.clock.now += SLOT_IDLE_SECONDS / 2
    host.get(members[0])  # a sweep (the map is that big): each was used lately, all stay
    assert len(host) == SWEEP_FROM and world.zoho.calls == SWEEP_FROM
    world.clock.now += 1
    host.get(members[1])
    world.clock.now += SLOT_IDLE_SECONDS - 1
    fresh = MEMBER.model_copy(update={"refresh_token": SecretStr("1000.refresh.new")})
    host.get(fresh)  # ten minutes since the last sweep: those unused for ten minutes go
    assert len(host) == 2  # members[1], used a little less long ago, and the new one
    calls = world.zoho.calls
    assert host.get(members[5]).value == f"access-{6}" and world.zoho.calls == calls  # from the shared row, no refresh
