"""The people and the state probe of the security suites.

People sign in through the product's own session store (what the Microsoft sign-in
callback does once Entra ID vouched for them: tested end to end in tests/browser); every
attack then goes through the real HTTP surface of the local Functions host.

``StateProbe`` captures everything a refused request must leave untouched: every table of
the test's TABLE_PREFIX (entities, not ETags or timestamps), the durable state of both
emulators (mailboxes, subscriptions, CRM orgs, users and records; not the tokens and
counters that reading permissions legitimately moves), and every queue message the
product sent while the probe watched.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from azure.data.tables import TableServiceClient

from local.demo_world import APP_REGISTRATION
from shared.accounts.install import Entered
from shared.accounts.models import MemberIdentity
from shared.identity.sessions import COOKIE_NAME, SignedInUser
from shared.storage.queues import JobQueue
from shared.wiring import get_services
from tests.conftest import storage_connection
from tests.product_stack import CONTOSO, FABRIKAM, ProductStack

BOOKKEEPING_TABLES = ("crmslots", "crmtokens", "graphmailboxes")  # shared limiters: their threads write any time

ADELE, MEGAN, DIEGO, ALEX = "adele@contoso.test", "megan@contoso.test", "diego@contoso.test", "alex@contoso.test"
FABRICE = "fabrice@fabrikam.test"
PROVISIONING_AUTH = ("1000.DEMOLOCALCLIENT0001", "demo-crm-client-secret")
TENANT_NAMES = {CONTOSO: "Contoso Ltd", FABRIKAM: "Fabrikam"}
INVITATION_LINK = r"/api/invitations/([A-Za-z0-9_\-]{20,})"
APPROVAL_LINK = r"/api/join-requests/([A-Za-z0-9_\-]{20,})"


def m365_user(product: ProductStack, upn: str) -> tuple[str, dict[str, Any]]:
    for tenant in product.m365_snapshot()["tenants"]:
        for user in tenant["users"]:
            if user["userPrincipalName"] == upn:
                return tenant["id"], dict(user)
    raise LookupError(upn)


def microsoft_user(product: ProductStack, upn: str, *, admin: bool = False) -> SignedInUser:
    """As the sign-in callback makes it; the UPN's domain is the tenant's verified one (the
    seed's), so the address is proven as it would be there."""
    tenant, user = m365_user(product, upn)
    return SignedInUser(tenant_id=tenant, object_id=user["id"], email=upn, name=user["displayName"],
                        tenant_name=TENANT_NAMES.get(tenant, ""), is_tenant_admin=admin, email_verified=True)


@dataclass
class Browser:
    """One person's HTTP client: their session cookie, their form token, our Origin."""

    http: requests.Session
    csrf: str
    user: SignedInUser | None
    base: str

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(f"{self.base}{path}", allow_redirects=False, timeout=30, **kwargs)

    def post(self, path: str, form: dict[str, Any] | None = None, *, token: bool = True, **kwargs: Any) -> requests.Response:
        data = dict(form or {})
        if token:
            data.setdefault("csrf_token", self.csrf)
        return self.http.post(f"{self.base}{path}", data=data, allow_redirects=False, timeout=30, **kwargs)


def browser_of(product: ProductStack, user: SignedInUser | None) -> Browser:
    store = get_services().sessions
    row, etag = store.start()
    if user is not None:
        row.user = user
        store.save(row, etag)
    http = requests.Session()
    http.trust_env = False
    http.cookies.set(COOKIE_NAME, store.cookie(row).value)
    http.headers["Origin"] = product.url
    return Browser(http, row.csrf_token, user, product.url)


def install(product: ProductStack, admin: SignedInUser) -> MemberIdentity:
    """The tenant's admin consent and install, then Continue (SPEC R1), as sync_setup does."""
    product.m365_control("POST", "consents", json={"tenantId": admin.tenant_id, "clientId": APP_REGISTRATION["client_id"],
                                                   "kind": "admin"})
    services = get_services()
    service = services.install
    outcome = service.enter(admin, service.record_install(admin, "https://graph.microsoft.com/.default"))
    assert isinstance(outcome, Entered)
    return outcome.member


def enter(product: ProductStack, user: SignedInUser) -> MemberIdentity:
    """Continue on the Accounts page of an installed tenant, for someone with a CRM account."""
    services = get_services()
    service = services.install
    installed = services.accounts.install_of(user.tenant_id)
    assert installed is not None
    outcome = service.enter(user, installed)
    assert isinstance(outcome, Entered), outcome
    return outcome.member


def add_crm_user(product: ProductStack, org_id: str, email: str, profile: str = "Standard") -> None:
    """What an administrator does in the CRM's own UI: add a user with this profile."""
    first, _, last = email.partition("@")[0].partition(".")
    response = requests.post(
        f"{product.crm.base_url}/provisioning/v1/orgs/{org_id}/users",
        json={"email": email, "first_name": first.title(), "last_name": (last or first).title(), "profile": profile},
        auth=PROVISIONING_AUTH, timeout=10,
    )
    assert response.status_code == 201, response.text


def create_crm_org(product: ProductStack, name: str, admin_email: str, edition: str) -> str:
    response = requests.post(
        f"{product.crm.base_url}/provisioning/v1/orgs",
        json={"org_name": name, "edition": edition, "super_admin": {"email": admin_email, "last_name": name}},
        auth=PROVISIONING_AUTH, timeout=10,
    )
    assert response.status_code in (200, 201), response.text
    return str(response.json()["org"]["org_id"])


def link_in_mail(product: ProductStack, upn: str, pattern: str, timeout: float = 30) -> str:
    """The newest link matching ``pattern`` in the person's inbox (mail goes through the queue)."""
    deadline = time.monotonic() + timeout
    while True:
        _, user = m365_user(product, upn)
        found: list[str] = []
        for message in (user.get("mailbox") or {}).get("messages", []):
            body = message.get("body") or {}
            found += re.findall(pattern, str(body.get("content", "")) if isinstance(body, dict) else str(body))
        if found:
            return found[-1]
        assert time.monotonic() < deadline, f"no mail with {pattern} for {upn}"
        time.sleep(0.3)


# -- Contoso installed by Adele; invitations and requests to join through the pages ----------


def adele(product: ProductStack) -> Browser:
    install(product, microsoft_user(product, ADELE, admin=True))
    return browser_of(product, microsoft_user(product, ADELE, admin=True))


def invite(product: ProductStack, probe: StateProbe, inviter: Browser, email: str) -> str:
    """Invite by e-mail (R2.2) and return the token of the link that arrived in the mailbox."""
    answer = inviter.post("/api/settings/users/new", {"email": email, "first_name": "X", "last_name": "Y"})
    assert answer.status_code == 200 and f"Invitation sent to: {email}" in answer.text, answer.text[:500]
    token = link_in_mail(product, email, INVITATION_LINK)
    probe.settle()
    return token


def request_to_join(product: ProductStack, probe: StateProbe, upn: str) -> str:
    """``upn`` asks to join Contoso's org (R2.4); returns the approval token e-mailed to Adele."""
    requester = browser_of(product, microsoft_user(product, upn))
    answer = requester.post("/api/join-requests")
    assert answer.status_code == 200 and "request was sent" in answer.text, answer.text[:500]
    token = link_in_mail(product, ADELE, APPROVAL_LINK)
    probe.settle()
    return token


def refused(response: requests.Response, status: int, *words: str) -> None:
    assert response.status_code == status, (response.status_code, response.text[:600])
    for word in words:
        assert word in response.text, (word, response.text[:600])


# -- the state probe ---------------------------------------------------------------------------

VOLATILE_CRM = {"tokens", "clock_offset_seconds", "deliveries", "credits", "api_calls", "requests"}


def _without(value: Any, keys: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


def tables_state(prefix: str) -> dict[str, list[dict[str, Any]]]:
    """Every entity of every table named with this test's prefix, sorted, without metadata;
    not the bookkeeping tables instances share, which their own threads write (idle CRM slots
    are given back a second after the last call, whatever request comes next)."""
    service = TableServiceClient.from_connection_string(storage_connection())
    state: dict[str, list[dict[str, Any]]] = {}
    for table in service.list_tables():
        if not table.name.startswith(prefix) or table.name[len(prefix):] in BOOKKEEPING_TABLES:
            continue
        rows = [dict(entity) for entity in service.get_table_client(table.name).list_entities()]
        if rows:  # an empty table is created on first use by any request: not a change of state
            state[table.name] = sorted(rows, key=lambda r: (r["PartitionKey"], r["RowKey"]))
    return state


@dataclass
class Snapshot:
    tables: dict[str, list[dict[str, Any]]]
    m365: dict[str, Any]
    crm: dict[str, Any]


@dataclass
class StateProbe:
    product: ProductStack
    prefix: str
    sent: list[tuple[str, str]] = field(default_factory=list)

    def take(self, *, tables: bool = True) -> Snapshot:
        return Snapshot(
            tables_state(self.prefix) if tables else {},
            _without(self.product.m365_snapshot(), set()),
            _without(self.product.crm_snapshot(), VOLATILE_CRM),
        )

    def settle(self, timeout: float = 30) -> None:
        """Wait until background work (mail, sync steps) has stopped moving any state."""
        deadline = time.monotonic() + timeout
        last = self.take()
        while True:
            time.sleep(0.4)
            now = self.take()
            if now == last:
                return
            assert time.monotonic() < deadline, "the product never went quiet"
            last = now

    @contextmanager
    def unchanged(self, *, ignore_tables: tuple[str, ...] = ()) -> Iterator[None]:
        """The block must change no table, no emulator state, and queue no work."""
        before = self.take()
        sent_before = len(self.sent)
        yield
        time.sleep(0.2)  # work queued by the request would have reached the emulators by now
        after = self.take()
        for name in set(before.tables) | set(after.tables):
            # The CRM call slots' leases and the shared CRM access token are bookkeeping of
            # calls made (a refusal may read the CRM), not state a refused request could change.
            if any(name == f"{self.prefix}{ignored}" for ignored in (*ignore_tables, *BOOKKEEPING_TABLES)):
                continue
            assert before.tables.get(name, []) == after.tables.get(name, []), f"table {name} changed"
        assert before.m365 == after.m365, "the Microsoft 365 emulator's state changed"
        assert before.crm == after.crm, "the CRM emulator's state changed"
        assert self.sent[sent_before:] == [], f"work was queued: {self.sent[sent_before:]}"


@pytest.fixture
def probe(product: ProductStack, monkeypatch: pytest.MonkeyPatch) -> StateProbe:
    """Watches the test's tables and emulators, and records every queue send of the product
    (the local host runs the functions in this process)."""
    import os

    watcher = StateProbe(product, os.environ["TABLE_PREFIX"])
    real_send = JobQueue.send

    def recording_send(queue: JobQueue, message: Any, **kwargs: Any) -> str:  # type: ignore[type-arg]
        watcher.sent.append((queue.name, copy.deepcopy(message).model_dump_json()[:200]))
        return real_send(queue, message, **kwargs)

    monkeypatch.setattr(JobQueue, "send", recording_send)
    return watcher
