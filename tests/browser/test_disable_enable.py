"""Disable, then Enable again, as a member does it on Settings > Marketplace > Microsoft
(issue 17): the CRM keeps everything (R3.7, R4.8), and the new calendar or folder holds
every in-scope CRM item exactly once, the ones first made in Outlook included.

This journey lost data: the Outlook-made item's CRM copy keeps the Outlook id of the
first Enable as its marker; the next Enable adopted that dead id as a lost link, the
full delta round read it, got 404, and deleted the CRM record as an Outlook deletion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.sync.profiles import SyncKind, SyncState
from shared.wiring import get_services
from tests.browser.test_settings import SYNC_TIMEOUT_MS, expect, install_and_enter, open_settings
from tests.integration.sync_setup import crm_control, crm_records, outlook_items, profile, wait_until
from tests.product_stack import ProductStack

pytestmark = pytest.mark.browser
ADELE = "adele@contoso.test"


def _when(days: int, hours: int = 0) -> dict[str, str]:
    at = datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(days=days, hours=hours)
    return {"dateTime": at.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


KINDS: dict[SyncKind, dict[str, Any]] = {
    SyncKind.CALENDAR: {
        "label": "Calendar", "module": "Events", "container": "Zoho CRM", "collection": "calendars", "items": "events",
        "outlook_item": {"subject": "Made in Outlook", "start": _when(10), "end": _when(10, 1)},
        "outlook_name": lambda item: item.get("subject"),
        "crm_record": {"Event_Title": "Made in the CRM", "All_day": False,
                       "Start_DateTime": (datetime.now(UTC).replace(microsecond=0) + timedelta(days=11)).isoformat(),
                       "End_DateTime": (datetime.now(UTC).replace(microsecond=0) + timedelta(days=11, hours=1)).isoformat()},
        "crm_name": lambda record: record.get("Event_Title"),
        "names": ("Made in Outlook", "Made in the CRM"),
    },
    SyncKind.CONTACTS: {
        "label": "Contacts", "module": "Contacts", "container": "Zoho CRM Contacts", "collection": "contactFolders",
        "items": "contacts",
        "outlook_item": {"givenName": "Olga", "surname": "Outlook"},
        "outlook_name": lambda item: f"{item.get('givenName')} {item.get('surname')}",
        "crm_record": {"First_Name": "Carl", "Last_Name": "Crm"},
        "crm_name": lambda record: f"{record.get('First_Name')} {record.get('Last_Name')}",
        "names": ("Carl Crm", "Olga Outlook"),
    },
}


def _state(page: Any, kind: SyncKind) -> Any:
    return page.get_by_test_id(f"sync-{kind.value}").get_by_test_id(f"{kind.value}-state")


def _click(page: Any, kind: SyncKind, verb: str) -> None:
    page.get_by_test_id(f"sync-{kind.value}").get_by_role("button", name=f"{verb} {KINDS[kind]['label']}").click()


@pytest.mark.parametrize("kind", list(KINDS), ids=lambda k: k.value)
def test_disable_then_enable_keeps_every_crm_item_and_brings_them_all_back(
    product: ProductStack, person: Any, kind: SyncKind
) -> None:
    spec = KINDS[kind]
    member = install_and_enter(product, person)

    def crm_names() -> list[str]:
        return sorted(str(spec["crm_name"](r)) for r in crm_records(product, member, spec["module"]))

    def outlook_names() -> list[str]:
        return sorted(str(spec["outlook_name"](i)) for i in outlook_items(product, ADELE, spec["container"]))

    # 1. Enable, by the button's label.
    open_settings(product, person)
    _click(person, kind, "Enable")
    expect()(_state(person, kind)).to_have_text("In sync", timeout=SYNC_TIMEOUT_MS)
    wait_until(lambda: profile(member, kind).delta_link, what="the first delta round")
    container = profile(member, kind).container_id

    # 2. An item made in Outlook reaches the CRM; 3. one made in the CRM reaches Outlook.
    product.m365_control("POST", f"mailbox/{ADELE}/{spec['collection']}/{container}/{spec['items']}", json=spec["outlook_item"])
    crm_control(product, "actions/create", {"actor": ADELE, "module": spec["module"], "record": spec["crm_record"]})
    both = list(spec["names"])
    wait_until(lambda: crm_names() == both, what="the Outlook item in the CRM")
    wait_until(lambda: outlook_names() == both, what="the CRM item in Outlook")

    # 4. Disable: the container goes, the CRM keeps both.
    open_settings(product, person)
    _click(person, kind, "Disable")
    expect()(_state(person, kind)).to_have_text("Not enabled")
    assert outlook_names() == []
    assert crm_names() == both

    # 5. Enable again at once: both come back into the new container, the CRM keeps both.
    _click(person, kind, "Enable")
    expect()(_state(person, kind)).to_have_text("In sync", timeout=SYNC_TIMEOUT_MS)
    wait_until(lambda: profile(member, kind).delta_link, what="the first delta round after Enable again")
    wait_until(lambda: outlook_names() == both, what="both items in the new container")
    # Let the sweep and any webhook-driven rounds run: nothing may go afterwards either.
    get_services().sync.sweep()
    wait_until(lambda: not profile(member, kind).delta_queued and profile(member, kind).lease_owner is None,
               what="the sweep's round")
    assert profile(member, kind).state is SyncState.ACTIVE
    assert crm_names() == both
    assert outlook_names() == both
