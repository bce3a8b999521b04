"""Access tokens: cached and shared per refresh token, one refresh under concurrency, refreshed
ahead of expiry, INVALID_TOKEN answered by one refresh, a dead refresh token reported."""

from __future__ import annotations

import threading

import pytest
import requests

from emulators.crm.server import RunningCrm
from shared.crm.errors import CrmUnavailable
from shared.crm.models import CrmMemberAccess
from shared.crm.oauth import ZohoOAuth
from shared.crm.records import CrmRecords
from shared.crm.session import CrmSessions
from shared.crm.tokens import AccessTokens, CrmAuthorizationLost

from .conftest import counters


def revoke(crm: RunningCrm, token: str) -> None:
    response = requests.post(f"{crm.accounts_url('us')}/oauth/v2/token/revoke", params={"token": token}, timeout=10)
    assert response.status_code == 200, response.text


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_hundred_calls_make_one_refresh(crm: RunningCrm, sessions: CrmSessions, fabrice: CrmMemberAccess) -> None:
    session = sessions.for_member(fabrice)
    for _ in range(100):
        assert session.call("GET", "/org", repeatable=True).status == 200
    assert sessions.tokens.refreshes == 1
    assert counters(crm, fabrice.org_id)["total"] == 100


def test_concurrent_first_use_makes_one_refresh(tokens: AccessTokens, fabrice: CrmMemberAccess) -> None:
    barrier = threading.Barrier(16)
    seen: list[str] = []

    def first_use() -> None:
        barrier.wait()
        seen.append(tokens.get(fabrice).value)

    threads = [threading.Thread(target=first_use) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(seen) == 16 and len(set(seen)) == 1
    assert tokens.refreshes == 1


def test_token_is_refreshed_ahead_of_its_expiry(oauth: ZohoOAuth, fabrice: CrmMemberAccess) -> None:
    clock = FakeClock()
    tokens = AccessTokens(oauth, clock=clock, refresh_margin=300)
    first = tokens.get(fabrice)
    clock.now += 3600 - 301  # still 301 s to live: kept
    assert tokens.get(fabrice) == first
    clock.now += 2  # inside the margin: replaced before it can die mid-walk
    second = tokens.get(fabrice)
    assert second.value != first.value and tokens.refreshes == 2


def test_revoked_refresh_token_is_authorization_lost_and_not_retried(
    crm: RunningCrm, tokens: AccessTokens, fabrice: CrmMemberAccess
) -> None:
    revoke(crm, fabrice.refresh_token.get_secret_value())
    with pytest.raises(CrmAuthorizationLost) as lost:
        tokens.get(fabrice)
    assert lost.value.code == "REFRESH_TOKEN_REVOKED"
    with pytest.raises(CrmAuthorizationLost):
        tokens.get(fabrice)
    assert tokens.refreshes == 1  # a dead refresh token is not asked again


def test_revocation_while_a_token_is_cached_surfaces_on_the_next_call(
    crm: RunningCrm, sessions: CrmSessions, fabrice: CrmMemberAccess
) -> None:
    records = CrmRecords(sessions.for_member(fabrice))
    assert records.get("Contacts", "1").state == "not_found"  # a token is now cached
    revoke(crm, fabrice.refresh_token.get_secret_value())  # its access tokens die with it
    with pytest.raises(CrmAuthorizationLost):
        records.get("Contacts", "1")
    assert sessions.tokens.refreshes == 2  # the INVALID_TOKEN answer led to exactly one refresh attempt


def test_invalid_token_answer_refreshes_once_and_repeats_the_call(
    crm: RunningCrm, sessions: CrmSessions, fabrice: CrmMemberAccess
) -> None:
    session = sessions.for_member(fabrice)
    session.call("GET", "/org", repeatable=True)
    revoke(crm, sessions.tokens.get(fabrice).value)  # only the access token
    assert session.call("GET", "/org", repeatable=True).status == 200
    assert sessions.tokens.refreshes == 2


def test_refresh_limit_is_temporary_and_a_live_token_is_kept(oauth: ZohoOAuth, fabrice: CrmMemberAccess) -> None:
    clock = FakeClock()
    tokens = AccessTokens(oauth, clock=clock, refresh_margin=300)
    for _ in range(10):  # the emulator's 10 refreshes per 10 minutes, all spent
        clock.now += 3600
        tokens.get(fabrice)
    clock.now += 3600 - 200  # inside the margin but alive for 200 s: still usable when throttled
    kept = tokens.get(fabrice)
    assert tokens.refreshes == 11
    clock.now += 200  # now dead: the throttling shows, as temporary, not as lost authorisation
    with pytest.raises(CrmUnavailable) as throttled:
        tokens.get(fabrice)
    assert throttled.value.code == "TOKEN_REFRESH_LIMITED"
    assert not isinstance(throttled.value, CrmAuthorizationLost)
    assert kept.value


def test_three_instances_share_one_token_through_table_storage(azurite, oauth: ZohoOAuth, fabrice: CrmMemberAccess) -> None:  # type: ignore[no-untyped-def]
    """Issue 20: on Azurite and the CRM emulator's OAuth, three hosts' token sources (each its
    own process cache) make one refresh for 24 first uses, and a token refused on one host
    is refreshed once for all: the emulator's own count of refreshes says so."""
    import uuid

    from azure.data.tables import TableServiceClient
    from cryptography.fernet import Fernet

    from shared.crm.token_store import SharedTokenStore, StoredAccessToken
    from shared.identity.token_cipher import TokenCipher
    from shared.storage import TableRepository

    rows = TableRepository(TableServiceClient.from_connection_string(azurite.connection_string),
                           f"t{uuid.uuid4().hex[:12]}crmtokens", StoredAccessToken)
    rows.ensure_table()
    cipher = TokenCipher(Fernet.generate_key().decode())
    hosts = [AccessTokens(oauth, store=SharedTokenStore(rows, cipher, holder=f"host-{n}")) for n in range(3)]
    barrier = threading.Barrier(24)
    seen: list[str] = []

    def first_use(host: AccessTokens) -> None:
        barrier.wait()
        seen.append(host.get(fabrice).value)

    threads = [threading.Thread(target=first_use, args=(hosts[n % 3],)) for n in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(seen) == 24 and len(set(seen)) == 1
    assert sum(h.refreshes for h in hosts) == 1
    first = hosts[0].get(fabrice)
    hosts[1].invalidate(fabrice, first)
    hosts[2].invalidate(fabrice, first)
    assert hosts[2].get(fabrice) == hosts[1].get(fabrice) != first
    assert sum(h.refreshes for h in hosts) == 2
