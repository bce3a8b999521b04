"""Setting up a linked member for sync tests through the product's own install path
(no browser): the tenant's admin consent as an administrator would grant it, then the
install and Continue of SPEC R1 through the domain services."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests

from local.demo_world import APP_REGISTRATION
from shared.accounts.install import Entered
from shared.accounts.models import MemberIdentity
from shared.identity.sessions import SignedInUser
from shared.storage import ConcurrencyConflict
from shared.storage.metrics import TABLE_REQUESTS
from shared.sync.profiles import SyncKind, SyncProfile
from shared.wiring import get_services
from tests.host_log import RECENT
from tests.product_stack import CONTOSO, ProductStack


def m365_user(product: ProductStack, upn: str) -> dict[str, Any]:
    for tenant in product.m365_snapshot()["tenants"]:
        for user in tenant["users"]:
            if user["userPrincipalName"] == upn:
                return dict(user)
    raise LookupError(upn)


def linked_member(product: ProductStack, upn: str = "adele@contoso.test") -> MemberIdentity:
    product.m365_control("POST", "consents", json={"tenantId": CONTOSO, "clientId": APP_REGISTRATION["client_id"], "kind": "admin"})
    user = m365_user(product, upn)
    person = SignedInUser(tenant_id=CONTOSO, object_id=user["id"], email=upn, name=user["displayName"],
                          tenant_name="Contoso Ltd", is_tenant_admin=True,
                          email_verified=True)  # the UPN is in contoso.test, the tenant's verified domain
    services = get_services()
    install = services.install
    installed = install.record_install(person, "https://graph.microsoft.com/.default")
    outcome = install.enter(person, installed)
    assert isinstance(outcome, Entered)
    return outcome.member


def crm_control(product: ProductStack, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(f"{product.crm.base_url}/__emulator/{path}", json=body, timeout=30)
    response.raise_for_status()
    return dict(response.json())


def crm_records(product: ProductStack, member: MemberIdentity, module: str) -> list[dict[str, Any]]:
    org = next(o for o in product.crm_snapshot()["orgs"] if str(o["id"]) == member.org_id)
    return [r for r in org["records"].get(module, {}).values()] if isinstance(org["records"].get(module), dict) else list(org["records"].get(module, []))


def outlook_items(product: ProductStack, upn: str, container: str) -> list[dict[str, Any]]:
    mailbox = m365_user(product, upn)["mailbox"]
    for calendar in mailbox["calendars"]:
        if calendar["name"] == container:
            return list(calendar.get("events", []))
    for folder in mailbox["contactFolders"]:
        if folder.get("displayName") == container:
            return list(folder.get("contacts", []))
    return []


def containers(product: ProductStack, upn: str, name: str) -> int:
    mailbox = m365_user(product, upn)["mailbox"]
    return sum(1 for c in mailbox["calendars"] if c["name"] == name) + sum(
        1 for f in mailbox["contactFolders"] if f.get("displayName") == name
    )


def profile(member: MemberIdentity, kind: SyncKind) -> SyncProfile:
    stored = get_services().sync_profiles.get(member.partition_key, kind)
    assert stored is not None
    return stored.entity


def release_held_lease(member_key: str, kind: SyncKind, owner: str | None) -> None:
    """Release the member's lease a test holds by hand, as the runner does: webhooks mark the
    profile meanwhile, so a release meeting a newer row reads it again."""
    profiles = get_services().sync_profiles
    for _ in range(8):
        stored = profiles.get(member_key, kind)
        assert stored is not None and stored.entity.lease_owner == owner
        try:
            profiles.release(stored.entity, stored.etag)
            return
        except ConcurrencyConflict:
            continue
    raise AssertionError(f"the {kind} lease of {member_key} kept changing")


def wait_until(condition: Callable[[], object], timeout: float = 120, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{diagnosis()}")
        time.sleep(0.3)


def diagnosis() -> str:
    """The sync profiles of this test's tables and the host's recent noteworthy log lines
    (CI shows the tail of a run: a timed-out wait must say what happened meanwhile)."""
    try:
        stores = get_services().sync_profiles
        profiles = [*stores.all_active(), *stores.paused()]
        shown = [p.model_dump(mode="json", exclude=SECRET_OR_BULKY) for p in profiles]
    except Exception as error:  # the diagnosis must not hide the failure
        shown = [f"profiles unreadable: {error!r}"]
    return "profiles: " + repr(shown) + "\nrecent host log:\n" + "\n".join(RECENT.lines)


SECRET_OR_BULKY = {"delta_link", "initial_cursor", "initial_threshold", "client_state", "channel_token", "contact_mapping"}


def reset_request_counts(product: ProductStack) -> None:
    product.m365_control("POST", "counters/reset")
    requests.post(f"{product.crm.base_url}/__emulator/counters/reset", timeout=10).raise_for_status()
    TABLE_REQUESTS.reset()


def request_counts(product: ProductStack) -> dict[str, Any]:
    """Requests made since ``reset_request_counts``: Graph and the CRM as their emulators
    counted them; Table Storage as this process's clients counted them (the host runs here)."""
    graph = product.m365_control("GET", "counters")["totals"]
    crm = requests.get(f"{product.crm.base_url}/__emulator/counters", timeout=10).json()["totals"]
    return {
        "graph_http_requests": graph["httpRequests"], "graph_requests_incl_batch_items": graph["requests"],
        "graph_peak_concurrency": graph["concurrentPeak"], "graph_429": graph["throttled429"],
        "crm_calls": crm["total"], "crm_429": crm["throttled_429"], **{f"table_{k}": v for k, v in TABLE_REQUESTS.snapshot().items()},
    }
