"""Fixtures for the M365 emulator's contract tests: one emulator per session on an ephemeral port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from emulators.m365.server import RunningM365, start
from tests.conftest import launch_chromium

from .openapi_contract import Contract

CONTOSO = "7c1e2b8a-3f4d-4e5a-9b6c-0d1e2f3a4b5c"
FABRIKAM = "3d9a4c2e-8b7f-4a61-9e0d-5c4b3a291807"
APP_ID = "5f0c8d2e-6a1b-4c3d-9e8f-7a6b5c4d3e2f"
APP_SECRET = "demo-app-secret-change-me"
GRAPH_DEFAULT = "https://graph.microsoft.com/.default"


@pytest.fixture(scope="session")
def m365(tmp_path_factory) -> Iterator[RunningM365]:
    """The running emulator (demo seed); state is reset before every test by ``m365_clean``."""
    running = start(host="127.0.0.1", port=0, seed=None, state_dir=tmp_path_factory.mktemp("m365-state"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def contract() -> Contract:
    return Contract()


@pytest.fixture(scope="session")
def http(m365: RunningM365, contract: Contract) -> requests.Session:
    """A session that trusts the emulator's CA only, and checks every Graph exchange against the contract."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(m365.ca_cert_path)

    def validate(response: requests.Response, *args, **kwargs):
        contract.check(response.request.method or "GET", response.request.url or "", response.request.body,
                       response.status_code, response.headers.get("Content-Type", ""), response.content)
    session.hooks["response"].append(validate)
    return session


@pytest.fixture(autouse=True)
def m365_clean(request) -> None:
    """Back to the seed, default faults, zero counters, before each test that uses the emulator."""
    if "m365" not in request.fixturenames:
        return
    running: RunningM365 = request.getfixturevalue("m365")
    session = requests.Session()
    session.trust_env = False
    session.verify = str(running.ca_cert_path)
    session.post(f"{running.base_url}/__emulator/reset").raise_for_status()
    session.put(f"{running.base_url}/__emulator/faults", json={}).raise_for_status()
    session.post(f"{running.base_url}/__emulator/counters/reset").raise_for_status()


def token_for(http: requests.Session, m365: RunningM365, tenant: str = CONTOSO, consent: bool = True) -> str:
    """An app-only Graph token for the demo app, after granting admin consent through the control surface."""
    if consent:
        http.post(f"{m365.base_url}/__emulator/consents", json={"tenantId": tenant, "clientId": APP_ID}).raise_for_status()
    response = http.post(f"{m365.base_url}/{tenant}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": APP_ID, "client_secret": APP_SECRET, "scope": GRAPH_DEFAULT})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture
def app_headers(http: requests.Session, m365: RunningM365) -> dict[str, str]:
    """Authorization header of an app-only token for Contoso (admin consent granted)."""
    return {"Authorization": f"Bearer {token_for(http, m365)}"}


@pytest.fixture(scope="session")
def m365_browser(m365: RunningM365, playwright_driver):
    """Chromium that trusts exactly the emulator's leaf key (SPKI pin), not every certificate."""
    browser = launch_chromium(playwright_driver, f"--ignore-certificate-errors-spki-list={m365.leaf_spki_sha256}")
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="session")
def raw_http(m365: RunningM365) -> requests.Session:
    """A session without contract checks, for requests that break the contract on purpose."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(m365.ca_cert_path)
    return session
