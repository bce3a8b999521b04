"""The whole product in one test process: both emulators on ephemeral ports, the local
Functions host running the real function_app.py, Azurite; and a person's gestures in
the emulators' own pages (Microsoft sign-in, CRM sign-in)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet

from emulators.crm.server import RunningCrm
from emulators.crm.server import start as start_crm
from emulators.m365.server import RunningM365
from emulators.m365.server import start as start_m365
from local.demo_world import APP_REGISTRATION, CRM_CLIENT, crm_setup_menu
from local.host import LocalHost
from shared.graph.gate import forget_request_windows
from tests.conftest import launch_chromium, storage_connection
from tests.host_log import RECENT
from tests.host_log import install as record_host_log

ROOT = Path(__file__).resolve().parents[1]
CONTOSO = "7c1e2b8a-3f4d-4e5a-9b6c-0d1e2f3a4b5c"
FABRIKAM = "3d9a4c2e-8b7f-4a61-9e0d-5c4b3a291807"
CONTOSO_PASSWORD = "Contoso-Demo-1"
FABRIKAM_PASSWORD = "Fabrikam-Demo-1"
CRM_PASSWORD = "Crm-Demo-1"


@dataclass
class ProductStack:
    m365: RunningM365
    crm: RunningCrm
    host: LocalHost

    @property
    def url(self) -> str:
        return self.host.url

    def reset(self) -> None:
        # Graph's per-mailbox request windows start over with the emulator: ours too (the
        # in-process host and the test's own calls share this process's mailbox gates).
        forget_request_windows()
        control = requests.Session()
        control.trust_env = False
        control.verify = str(self.m365.ca_cert_path)
        control.post(f"{self.m365.base_url}/__emulator/reset", timeout=10).raise_for_status()
        control.put(
            f"{self.m365.base_url}/__emulator/faults",
            json={"latency_ms": 0, "rate_429": 0, "rate_503": 0, "rate_504": 0},
            timeout=10,
        ).raise_for_status()
        control.post(f"{self.m365.base_url}/__emulator/counters/reset", timeout=10).raise_for_status()
        requests.post(f"{self.crm.base_url}/__emulator/reset", timeout=10).raise_for_status()
        redirect = f"{self.url}/api/accounts/associate/callback"
        requests.post(
            f"{self.crm.base_url}/__emulator/clients",
            json={**CRM_CLIENT, "redirect_uris": [redirect], "first_party": True},
            timeout=10,
        ).raise_for_status()
        requests.put(f"{self.crm.base_url}/__emulator/setup-menu", json={"items": crm_setup_menu(self.url)},
                     timeout=10).raise_for_status()

    def m365_control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(
            method, f"{self.m365.base_url}/__emulator/{path}", verify=str(self.m365.ca_cert_path), timeout=10, **kwargs
        )
        response.raise_for_status()
        return response.json() if response.content else {}

    def m365_snapshot(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.m365.base_url}/__emulator/snapshot", verify=str(self.m365.ca_cert_path), timeout=10).json())

    def crm_snapshot(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.crm.base_url}/__emulator/snapshot", timeout=10).json())


def product_environment(m365: RunningM365, crm: RunningCrm) -> dict[str, str]:
    return {
        "AzureWebJobsStorage": storage_connection(),
        "ENTRA_AUTHORITY_HOST": m365.base_url,
        "ENTRA_CLIENT_ID": APP_REGISTRATION["client_id"],
        "ENTRA_CLIENT_SECRET": APP_REGISTRATION["client_secret"],
        "GRAPH_BASE_URL": m365.graph_url,
        "OUTBOUND_CA_BUNDLE": str(m365.ca_cert_path),
        "CRM_ACCOUNTS_URL": crm.accounts_url("us"),
        "CRM_PROVISIONING_URL": f"{crm.base_url}/provisioning/v1",
        "CRM_ACCOUNTS_SERVERS": ",".join(crm.accounts_url(dc) for dc in ("us", "eu")),
        "CRM_API_DOMAINS": ",".join(crm.api_url(dc) for dc in ("us", "eu")),
        "CRM_CLIENT_ID": CRM_CLIENT["client_id"],
        "CRM_CLIENT_SECRET": CRM_CLIENT["client_secret"],
        "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "SESSION_SECRET": uuid.uuid4().hex * 2,
    }


@pytest.fixture(scope="module")
def product_stack(azurite, tmp_path_factory) -> Iterator[ProductStack]:  # type: ignore[no-untyped-def]
    record_host_log()
    m365 = start_m365(port=0, seed=ROOT / "emulators/m365/seed/demo.json", state_dir=tmp_path_factory.mktemp("m365"))
    crm = start_crm(port=0, seed=ROOT / "emulators/crm/seed/demo.json")
    patch = pytest.MonkeyPatch()
    for name, value in product_environment(m365, crm).items():
        patch.setenv(name, value)
    host = LocalHost(ROOT / "function_app.py", port=0, read_local_settings=False).start()
    patch.setenv("PUBLIC_BASE_URL", host.url)
    try:
        yield ProductStack(m365, crm, host)
    finally:
        host.stop()
        crm.stop()
        m365.stop()
        patch.undo()


@pytest.fixture
def product(product_stack: ProductStack, monkeypatch: pytest.MonkeyPatch) -> ProductStack:
    """Fresh emulator state and fresh tables for each test."""
    monkeypatch.setenv("TABLE_PREFIX", f"t{uuid.uuid4().hex[:12]}")
    product_stack.reset()
    RECENT.clear()
    return product_stack


@pytest.fixture(scope="module")
def trusting_browser(product_stack: ProductStack, playwright_driver: Any) -> Iterator[Any]:
    """Chromium that trusts exactly the Microsoft 365 emulator's certificate."""
    browser = launch_chromium(
        playwright_driver, f"--ignore-certificate-errors-spki-list={product_stack.m365.leaf_spki_sha256}"
    )
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def person(trusting_browser: Any) -> Iterator[Any]:
    """A fresh browser context (a person at their own computer) and its page."""
    context = trusting_browser.new_context()
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def shown(locator: Any) -> None:
    """Assert that `locator` is on the page, waiting for it. A click that submits a form
    returns once the next page has started loading, maybe before it is parsed: an
    instant `is_visible()` then reads a blank page (a CI run failed that way)."""
    from playwright.sync_api import expect

    expect(locator).to_be_visible()


def page_html(page: Any) -> str:
    """The page's HTML once it has loaded (see `shown`)."""
    page.wait_for_load_state()
    return str(page.content())


def microsoft_sign_in(page: Any, email: str, password: str) -> None:
    """What a person does on Microsoft's sign-in page (and its consent page, if shown)."""
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    accept = page.get_by_role("button", name="Accept")
    if accept.count():
        accept.click()
        page.wait_for_load_state()


def crm_sign_in(page: Any, email: str, password: str) -> None:
    """The CRM's sign-in page has the same fields and buttons (Email, Password, Sign in, Accept)."""
    microsoft_sign_in(page, email, password)
