"""The Graph sync client against the Microsoft 365 emulator, started in-process on an ephemeral port.

One emulator per session (starting it makes a TLS leaf); before each test it goes back to
the seed with no faults and zero counters, and the demo app gets admin consent again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from emulators.m365.server import RunningM365, start
from shared.graph.gate import MailboxGate
from shared.graph.mailbox import GraphMailbox
from shared.graph.pacing import Pacing
from shared.identity.entra import EntraApp

REPO = Path(__file__).resolve().parents[3]
SEED = REPO / "emulators" / "m365" / "seed" / "demo.json"
TENANT = "7c1e2b8a-3f4d-4e5a-9b6c-0d1e2f3a4b5c"
CLIENT_ID = "5f0c8d2e-6a1b-4c3d-9e8f-7a6b5c4d3e2f"
CLIENT_SECRET = "demo-app-secret-change-me"
ADELE = "5ab13abb-ac37-51e7-b210-bfbe6d7086ae"
ADELE_UPN = "adele@contoso.test"


@dataclass
class Emulator:
    """The running emulator and its control surface (``/__emulator/``)."""

    running: RunningM365
    http: requests.Session

    @property
    def graph_url(self) -> str:
        return self.running.graph_url

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.running.base_url}/__emulator/{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def faults(self, **values: Any) -> None:
        self.control("PUT", "faults", json=values)

    def counters(self, upn: str = ADELE_UPN) -> dict[str, int]:
        return self.control("GET", "counters")["mailboxes"].get(upn, {})

    def mailbox(self, upn: str = ADELE_UPN) -> dict[str, Any]:
        tenant = next(t for t in self.control("GET", "snapshot")["tenants"] if t["id"] == TENANT)
        return next(u for u in tenant["users"] if u["userPrincipalName"] == upn)["mailbox"]

    def calendars_named(self, name: str) -> list[dict[str, Any]]:
        return [c for c in self.mailbox()["calendars"] if c["name"] == name]

    def folders_named(self, name: str) -> list[dict[str, Any]]:
        return [f for f in self.mailbox()["contactFolders"] if f["displayName"] == name]


@pytest.fixture(scope="session")
def m365(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningM365]:
    running = start(port=0, seed=str(SEED), state_dir=tmp_path_factory.mktemp("m365"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def http(m365: RunningM365) -> requests.Session:
    """The outbound session as the product builds it: our CA only, nothing from the environment."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(m365.ca_cert_path)
    return session


@pytest.fixture(scope="session")
def entra(m365: RunningM365, http: requests.Session) -> EntraApp:
    return EntraApp(m365.base_url, CLIENT_ID, CLIENT_SECRET, http)


@pytest.fixture
def emulator(m365: RunningM365, http: requests.Session) -> Emulator:
    em = Emulator(m365, http)
    em.control("POST", "reset")
    em.faults()
    em.control("POST", "counters/reset")
    em.control("POST", "consents", json={"tenantId": TENANT, "clientId": CLIENT_ID, "kind": "admin"})
    return em


@pytest.fixture
def make_mailbox(emulator: Emulator, entra: EntraApp, http: requests.Session) -> Callable[..., GraphMailbox]:
    """Adele's mailbox with a gate of its own per test (a test's pauses must not leak into the next)."""
    gate = MailboxGate()

    def make(*, pacing: Pacing | None = None, user: str = ADELE, shared_gate: bool = True) -> GraphMailbox:
        return GraphMailbox(emulator.graph_url, user, lambda: entra.app_token(TENANT), http, tenant_id=TENANT,
                            pacing=pacing, gate=gate if shared_gate else MailboxGate())

    return make


@pytest.fixture
def mailbox(make_mailbox: Callable[..., GraphMailbox]) -> GraphMailbox:
    return make_mailbox()
