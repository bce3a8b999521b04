"""R3.5 kept to the letter, in ``make test`` (issue 23): the initial sync keeps the cap's
best (a smaller cap through configuration, the same code path) and sends them in order:
events not yet over first, soonest first (a series still running counts as upcoming), then
the completed ones, latest first (a ``COUNT=`` series by its last occurrence); imported
events never; what the cap leaves out, the ledger says so. One record read at a time, so the
order Outlook receives them in is the order they were sent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.sync.ledger import Why
from shared.sync.profiles import SyncKind, SyncState
from shared.web.settings_pages import SettingsPages
from shared.wiring import get_services
from tests.integration.sync_setup import crm_control, linked_member, outlook_items, profile, wait_until
from tests.integration.test_sync_reliability import emulators, host_stack
from tests.product_stack import ProductStack

__all__ = ["emulators"]
ADELE = "adele@contoso.test"
CAP = 8


@pytest.fixture
def capped(emulators, tmp_path, monkeypatch) -> Iterator[ProductStack]:  # type: ignore[no-untyped-def]
    settings = {"CALENDAR_INITIAL_CAP": str(CAP), "INITIAL_PAGE_SIZE": "1"}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    yield from host_stack(emulators, tmp_path, monkeypatch, **settings)


def _event(title: str, start: datetime, **more: Any) -> dict[str, Any]:
    return {"Event_Title": title, "Start_DateTime": start.isoformat(), "End_DateTime": (start + timedelta(hours=1)).isoformat(),
            "All_day": False, **more}


def test_the_initial_sync_keeps_the_caps_best_and_sends_them_upcoming_first(capped: ProductStack) -> None:
    product = capped
    member = linked_member(product)
    now = datetime.now(UTC).replace(microsecond=0, second=0, minute=0)
    weekday = (now - timedelta(days=100)).strftime("%a")[:2].upper()
    records = [  # made in an order that is none of the orders below (the CRM lists by id)
        _event("In ten days", now + timedelta(days=10)),
        _event("A month ago", now - timedelta(days=30)),
        _event("Tomorrow", now + timedelta(days=1)),
        _event("Weekly since spring", now - timedelta(days=100),
               Recurring_Activity={"RRULE": f"FREQ=WEEKLY;INTERVAL=1;BYDAY={weekday};UNTIL=2099-12-31"}),
        _event("Yesterday", now - timedelta(days=1)),
        _event("Three days daily, two months ago", now - timedelta(days=60),
               Recurring_Activity={"RRULE": "FREQ=DAILY;INTERVAL=1;COUNT=3"}),
        _event("In forty days", now + timedelta(days=40)),
        _event("Last year", now - timedelta(days=200)),
        _event("In three days", now + timedelta(days=3)),
        _event("Five days ago", now - timedelta(days=5)),
    ]
    for record in records:
        crm_control(product, "actions/create", {"actor": ADELE, "module": "Events", "record": record})
    crm_control(product, "actions/import", {"actor": ADELE, "module": "Events", "records": [_event("Imported, tomorrow", now + timedelta(days=1))]})

    get_services().sync.enable(member, SyncKind.CALENDAR)
    wait_until(lambda: profile(member, SyncKind.CALENDAR).state is SyncState.ACTIVE, what="the initial sync")
    sent = [str(e.get("subject")) for e in outlook_items(product, ADELE, "Zoho CRM")]  # in the order Outlook got them
    assert sent == ["Weekly since spring", "Tomorrow", "In three days", "In ten days", "In forty days",
                    "Yesterday", "Five days ago", "A month ago"]
    assert profile(member, SyncKind.CALENDAR).initial_total == CAP
    pages = SettingsPages(get_services())
    for name, why in (("Three days daily, two months ago", Why.OVER_CAP), ("Last year", Why.OVER_CAP),
                      ("Imported, tomorrow", Why.IMPORTED)):
        assert [a.why for a in pages.why(member, SyncKind.CALENDAR, name) if a.name == name] == [why], name
