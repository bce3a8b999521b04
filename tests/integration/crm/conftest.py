"""The CRM emulator in-process for the CRM client's integration tests, and members of its demo
world with refresh tokens granted through the provisioning API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from emulators.crm.server import RunningCrm, start
from shared.crm.models import CrmMemberAccess
from shared.crm.oauth import ZohoOAuth
from shared.crm.session import CrmCallPolicy, CrmSessions
from shared.crm.tokens import AccessTokens

CLIENT_ID = "1000.DEMOLOCALCLIENT0001"
CLIENT_SECRET = "demo-crm-client-secret"
FABRICE = "fabrice@fabrikam.test"
SAM = "sam.carter@samconsulting.example"
RITA = "rita@samconsulting.example"
TINA = "tina@tinybakery.example"
# Quick back-off so throttling tests take seconds, not minutes; the shape is the product's.
TEST_POLICY = CrmCallPolicy(org_concurrency=4, max_attempts=12, backoff_seconds=0.02, max_backoff_seconds=0.2)


@pytest.fixture(scope="session")
def crm() -> Iterator[RunningCrm]:
    running = start(port=0, seed="emulators/crm/seed/demo.json")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(autouse=True)
def fresh_crm(crm: RunningCrm) -> None:
    requests.post(f"{crm.control_url}/reset", timeout=10).raise_for_status()


def control(crm: RunningCrm, path: str, body: Any = None, method: str = "POST") -> Any:
    response = requests.request(method, f"{crm.control_url}{path}", json=body, timeout=60)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


@pytest.fixture
def http() -> Iterator[requests.Session]:
    session = requests.Session()
    session.trust_env = False
    # Enough pooled connections for the concurrency tests (urllib3 would warn and discard).
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32)
    session.mount("http://", adapter)
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def oauth(crm: RunningCrm, http: requests.Session) -> ZohoOAuth:
    return ZohoOAuth(
        crm.accounts_url("us"), CLIENT_ID, CLIENT_SECRET, http,
        allowed_accounts_servers=frozenset({crm.accounts_url("us"), crm.accounts_url("eu")}),
        allowed_api_domains=frozenset({crm.api_url("us"), crm.api_url("eu")}),
    )


@pytest.fixture
def tokens(oauth: ZohoOAuth) -> AccessTokens:
    return AccessTokens(oauth)


@pytest.fixture
def sessions(tokens: AccessTokens, http: requests.Session) -> CrmSessions:
    return CrmSessions(tokens, http, TEST_POLICY)


def _provisioning(crm: RunningCrm, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    response = requests.request(method, f"{crm.provisioning_url}{path}", auth=(CLIENT_ID, CLIENT_SECRET),
                                timeout=10, **kwargs)
    response.raise_for_status()
    return dict(response.json())


@pytest.fixture
def member_for(crm: RunningCrm) -> Callable[[str], CrmMemberAccess]:
    """A seeded person as a member: found by e-mail, a fresh refresh token granted."""

    def make(email: str) -> CrmMemberAccess:
        account = _provisioning(crm, "GET", "/accounts", params={"email": email})["account"]
        grant = _provisioning(crm, "POST", f"/users/{account['user_id']}/grant", json={})
        return CrmMemberAccess(
            org_id=account["org_id"], user_id=account["user_id"], edition=account["edition"],
            accounts_server=grant["accounts_server"], api_domain=grant["api_domain"],
            refresh_token=grant["refresh_token"],
        )

    return make


@pytest.fixture
def fabrice(member_for: Callable[[str], CrmMemberAccess]) -> CrmMemberAccess:
    return member_for(FABRICE)


def counters(crm: RunningCrm, org_id: str) -> dict[str, int]:
    return dict(control(crm, "/counters", method="GET")["orgs"].get(org_id, {}))


def generate(crm: RunningCrm, actor: str, module: str, count: int, **extra: Any) -> None:
    """Bulk-create ``count`` records owned by ``actor`` (no callbacks unless ``notify=True``)."""
    control(crm, "/actions/generate", {"actor": actor, "module": module, "count": count, **extra})


def org_records(crm: RunningCrm, org_id: str, module: str) -> list[dict[str, Any]]:
    """Every record of the org as the emulator holds it (the ground truth)."""
    snapshot = control(crm, "/snapshot", method="GET")
    org = next(o for o in snapshot["orgs"] if o["id"] == org_id)
    return list(org["records"][module])
