"""'Why isn't it synced?' on Settings > Marketplace > Microsoft, and the same answers in
``GET /api/sync/status?why=...`` (issue 17: the per-record sync ledger)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.sync.ledger import Why
from shared.sync.profiles import SyncKind
from shared.web.settings_pages import SettingsPages
from shared.wiring import get_services
from tests.browser.test_settings import SYNC_TIMEOUT_MS, expect, install_and_enter, open_settings
from tests.integration.sync_setup import crm_control, crm_records, outlook_items, profile, wait_until
from tests.product_stack import ProductStack

pytestmark = pytest.mark.browser
ADELE = "adele@contoso.test"
CALENDAR = "Zoho CRM"


def _at(days: int) -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=days)


def _crm_event(title: str, days: int) -> dict[str, Any]:
    return {"Event_Title": title, "Start_DateTime": _at(days).isoformat(), "End_DateTime": (_at(days) + timedelta(hours=1)).isoformat(),
            "All_day": False}


def _outlook_event(title: str, days: int) -> dict[str, Any]:
    def at(moment: datetime) -> dict[str, str]:
        return {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}

    return {"subject": title, "start": at(_at(days)), "end": at(_at(days) + timedelta(hours=1))}


def ask(page: Any, text: str) -> Any:
    """What a member does: types part of a name under "Why isn't it synced?" and searches."""
    calendar = page.get_by_test_id("sync-calendar")
    calendar.get_by_label("Why isn't it synced?").fill(text)
    calendar.get_by_role("button", name="Search").click()
    return page.get_by_test_id("sync-calendar")


def test_why_isnt_it_synced_answers_for_each_reason(product: ProductStack, person: Any) -> None:
    member = install_and_enter(product, person)
    crm_control(product, "actions/create", {"actor": ADELE, "module": "Events", "record": _crm_event("Quarterly review", 3)})
    crm_control(product, "actions/import", {"actor": ADELE, "module": "Events", "records": [_crm_event("Imported webinar", 4)]})
    open_settings(product, person)
    person.get_by_role("button", name="Enable Calendar").click()
    expect()(person.get_by_test_id("calendar-state")).to_have_text("In sync", timeout=SYNC_TIMEOUT_MS)
    wait_until(lambda: profile(member, SyncKind.CALENDAR).delta_link, what="the first delta round")

    # In Outlook: an event five years ahead (beyond the window), and one made then deleted.
    calendar_id = profile(member, SyncKind.CALENDAR).container_id
    events = f"mailbox/{ADELE}/calendars/{calendar_id}/events"
    product.m365_control("POST", events, json=_outlook_event("Far offsite", 5 * 365))
    lunch = product.m365_control("POST", events, json=_outlook_event("Team lunch", 6))
    wait_until(lambda: any(r.get("Event_Title") == "Team lunch" for r in crm_records(product, member, "Events")),
               what="the lunch in the CRM")
    product.m365_control("DELETE", f"mailbox/{ADELE}/events/{lunch['id']}")
    wait_until(lambda: not any(r.get("Event_Title") == "Team lunch" for r in crm_records(product, member, "Events")),
               what="the lunch deleted in the CRM")
    assert [e["subject"] for e in outlook_items(product, ADELE, CALENDAR) if e["subject"] == "Far offsite"]
    pages = SettingsPages(get_services())

    def noted() -> bool:
        get_services().sync.sweep()  # the 5-minute sweep's round notes what the window hides
        time.sleep(1)
        return any(e.why is Why.OUTSIDE_WINDOW for e in pages.why(member, SyncKind.CALENDAR, "offsite"))

    wait_until(noted, what="the sweep's round to note the event beyond the window")

    open_settings(product, person)
    answers = ask(person, "webinar").get_by_test_id("calendar-why-answers")
    expect()(answers.get_by_role("row", name="Imported webinar")).to_contain_text("it was imported into the CRM")
    expect()(ask(person, "OFFSITE").get_by_role("row", name="Far offsite")).to_contain_text(
        "from one year back to two years ahead")
    expect()(ask(person, "lunch").get_by_role("row", name="Team lunch")).to_contain_text("Deleted in Outlook")
    expect()(ask(person, "quarterly").get_by_role("row", name="Quarterly review")).to_contain_text("Synced")
    expect()(person.get_by_label("Why isn't it synced?").first).to_have_value("quarterly")  # the question stays
    expect()(ask(person, "no such thing").get_by_test_id("calendar-why-none")).to_contain_text("No item by that name")

    # The same answers as JSON.
    status = person.request.get(f"{product.url}/api/sync/status?why=webinar&kind=calendar")
    assert status.status == 200
    [item] = status.json()["why"]["items"]
    assert (item["name"], item["why"]) == ("Imported webinar", "imported") and item["crm_id"]
    assert person.request.get(f"{product.url}/api/sync/status?why=x&kind=mail").status == 400  # a clear refusal
