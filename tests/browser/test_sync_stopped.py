"""Issue 23, "failures the member sees": a sync that cannot go on stops with a reason on the
settings page and a Resume button, instead of staying "In sync" while every round fails.

Here the tenant's administrator scopes the app away from the member's mailbox (an Exchange
application access policy: Graph answers 403 for it). The next round stops the sync; the
page says why; Resume while it is still refused stops it again; once the policy lets the
mailbox in, Resume brings the sync back and the change made meanwhile arrives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from local.demo_world import APP_REGISTRATION, CRM_CLIENT
from shared.sync import org_activity
from shared.sync.lifecycle import Reason
from shared.sync.profiles import SyncKind, SyncState
from tests.browser.test_disable_enable import ADELE, _click, _state
from tests.browser.test_settings import SYNC_TIMEOUT_MS, expect, install_and_enter, open_settings
from tests.integration.sync_setup import crm_control, outlook_items, profile, wait_until
from tests.product_stack import CONTOSO, ProductStack, page_html, shown

pytestmark = pytest.mark.browser
KIND = SyncKind.CALENDAR


def _policy(product: ProductStack, *mailboxes: str) -> None:
    policies = [{"tenantId": CONTOSO, "appId": APP_REGISTRATION["client_id"], "accessRight": "DenyAccess",
                 "mailboxes": list(mailboxes)}] if mailboxes else []
    product.m365_control("PUT", "application-access-policies", json={"policies": policies})


def _crm_event(product: ProductStack, title: str) -> None:
    start = datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(days=3)
    crm_control(product, "actions/create", {"actor": ADELE, "module": "Events", "record": {
        "Event_Title": title, "All_day": False, "Start_DateTime": start.isoformat(),
        "End_DateTime": (start + timedelta(hours=1)).isoformat()}})


def test_a_mailbox_the_app_may_no_longer_reach_stops_the_sync_with_its_reason_until_resumed(
    product: ProductStack, person: Any
) -> None:
    member = install_and_enter(product, person)
    open_settings(product, person)
    _click(person, KIND, "Enable")
    expect()(_state(person, KIND)).to_have_text("In sync", timeout=SYNC_TIMEOUT_MS)
    wait_until(lambda: profile(member, KIND).delta_link, what="the first delta round")

    _policy(product, ADELE)  # the administrator scopes the app away from Adele's mailbox
    _crm_event(product, "Planned while refused")
    wait_until(lambda: profile(member, KIND).state is SyncState.PAUSED, what="the sync to stop")
    assert profile(member, KIND).reason is Reason.MAILBOX_REFUSED
    open_settings(product, person)
    section = person.get_by_test_id(f"sync-{KIND.value}")
    assert "refuses this app access to your mailbox" in section.inner_text()
    assert "403" in section.get_by_test_id(f"{KIND.value}-stop-error").inner_text()

    # Resume while still refused: it stops again, with the same reason (nothing lost, nothing looped).
    section.get_by_role("button", name="Resume sync").click()
    wait_until(lambda: profile(member, KIND).state is SyncState.PAUSED and profile(member, KIND).lease_owner is None,
               what="the sync to stop again")
    other_tab = person.context.new_page()  # the member also has the page open in another tab
    open_settings(product, other_tab)
    _policy(product)  # the administrator lets the mailbox in again
    open_settings(product, person)
    person.get_by_test_id(f"sync-{KIND.value}").get_by_role("button", name="Resume sync").click()
    expect()(_state(person, KIND)).to_have_text("In sync", timeout=SYNC_TIMEOUT_MS)
    wait_until(lambda: "Planned while refused" in [e.get("subject") for e in outlook_items(product, ADELE, "Zoho CRM")],
               what="the change made while refused, in Outlook")

    # Resume again from the other tab: said plainly, nothing changed.
    answers: list[int] = []
    other_tab.on("response", lambda r: answers.append(r.status) if r.url.endswith("/resume") else None)
    other_tab.get_by_test_id(f"sync-{KIND.value}").get_by_role("button", name="Resume sync").click()
    assert answers and answers[-1] == 409
    shown(other_tab.get_by_role("heading", name="Nothing to resume"))
    assert profile(member, KIND).state is SyncState.ACTIVE


def test_the_admin_sees_a_stopped_sync_in_sync_activity_and_reminds_its_member(
    product: ProductStack, person: Any
) -> None:
    """Issue 19, the admin's view: the org's sync-health page shows the stopped sync and why;
    Remind e-mails the member where to resume it, once an hour at most; a user of another
    org cannot be reminded through it."""
    member = install_and_enter(product, person)
    open_settings(product, person)
    _click(person, KIND, "Enable")
    expect()(_state(person, KIND)).to_have_text("In sync", timeout=SYNC_TIMEOUT_MS)
    wait_until(lambda: profile(member, KIND).delta_link, what="the first delta round")
    _policy(product, ADELE)
    _crm_event(product, "Planned while refused")
    wait_until(lambda: profile(member, KIND).state is SyncState.PAUSED, what="the sync to stop")
    _policy(product)  # the mailbox is reachable again (the reminder is sent from it); the sync waits for Resume

    person.get_by_role("link", name="Sync activity").click()
    row = person.get_by_test_id("activity-row").filter(has_text=ADELE)
    cell = row.locator("td[data-kind=calendar]")
    expect()(cell).to_contain_text("Paused")
    expect()(cell).to_contain_text("Microsoft 365 refuses the app this mailbox")
    row.get_by_role("button", name="Remind Adele Vance").click()
    expect()(person.get_by_test_id("activity-notice")).to_have_text(f"A reminder was sent to {ADELE}.")
    person.get_by_test_id("activity-row").filter(has_text=ADELE).get_by_role("button", name="Remind Adele Vance").click()
    expect()(person.get_by_test_id("activity-notice")).to_contain_text("less than an hour ago")

    mail = person.context.new_page()

    def arrived() -> bool:
        mail.goto(f"{product.m365.base_url}/__emulator/mailbox/{ADELE}")
        return "sync with Outlook is paused" in page_html(mail)

    wait_until(arrived, what="the reminder in the member's mailbox")
    message = mail.locator("article.message", has_text="sync with Outlook is paused")
    expect()(message).to_have_count(1)  # the second click sent nothing
    expect()(message).to_contain_text("refuses this app access to your mailbox")

    # Someone else's user id, posted with Adele's own session and form token: refused, nothing sent.
    fabrikam = next(o for o in product.crm_snapshot()["orgs"] if o["company_name"] == "Fabrikam Sales")
    stranger = str(fabrikam["users"][0]["id"])
    token = person.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = person.request.post(f"{product.url}/api/settings/users/sync/remind", form={"csrf_token": token or "", "user": stranger},
                                 headers={"Origin": product.url})
    assert answer.status == 404 and "not a member of your organisation" in answer.text()


def test_the_admin_of_a_big_org_sees_where_everyone_stands_and_pages_through_the_members(
    product: ProductStack, person: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20, big orgs, from the admin's side, with pages of 2 members instead of 100: an org
    of 5 CRM users (4 of them never signed in with Microsoft) is three pages, the one who
    signed in first, then by name, with the whole org's count of where everyone stands on each
    page; a page number typed by hand shows the nearest page."""
    monkeypatch.setattr(org_activity, "PAGE_SIZE", 2)
    member = install_and_enter(product, person)
    for n in range(4):
        added = requests.post(f"{product.crm.base_url}/provisioning/v1/orgs/{member.org_id}/users", timeout=10,
                              auth=(CRM_CLIENT["client_id"], CRM_CLIENT["client_secret"]),
                              json={"email": f"staff{n}@contoso.test", "first_name": "Staff", "last_name": f"{n}",
                                    "profile": "Standard"})
        assert added.status_code == 201, added.text

    open_settings(product, person)
    person.get_by_role("link", name="Sync activity").click()
    summary = person.get_by_test_id("activity-summary")
    expect()(summary.locator("li[data-standing=not_linked]")).to_contain_text("4")
    expect()(summary.locator("li[data-standing=disabled]")).to_contain_text("1")
    expect()(person.get_by_test_id("activity-row")).to_have_count(2)
    expect()(person.get_by_test_id("activity-pages")).to_contain_text("Page 1 of 3")
    expect()(person.get_by_test_id("activity-row").first).to_contain_text("Adele Vance")  # signed in: before the others
    person.get_by_role("link", name="Next").click()
    expect()(person.get_by_test_id("activity-pages")).to_contain_text("Page 2 of 3")
    person.get_by_role("link", name="Next").click()
    expect()(person.get_by_test_id("activity-pages")).to_contain_text("Page 3 of 3")
    expect()(person.get_by_test_id("activity-row")).to_have_count(1)
    expect()(person.get_by_test_id("activity-row")).to_contain_text("staff3@contoso.test")
    expect()(summary.locator("li[data-standing=not_linked]")).to_contain_text("4")  # the whole org's, on every page
    expect()(person.get_by_role("link", name="Next")).to_have_count(0)
    person.get_by_role("link", name="Previous").click()
    expect()(person.get_by_test_id("activity-pages")).to_contain_text("Page 2 of 3")
    person.goto(f"{product.url}/api/settings/users/sync?page=999")
    expect()(person.get_by_test_id("activity-pages")).to_contain_text("Page 3 of 3")
