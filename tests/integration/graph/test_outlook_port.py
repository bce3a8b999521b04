"""The Outlook side of the sync (``OutlookItems``): ``CalendarClient`` on the Microsoft 365
emulator and the in-memory Outlook of the fast tests pass the same contract (issue 17 §2)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.graph.calendars import CalendarClient
from shared.graph.mailbox import GraphMailbox
from shared.sync.contacts import DEFAULT_CONTACT_MAPPING
from shared.sync.contacts_kind import ContactsRules
from shared.sync.links import Side
from shared.sync.outlook_side import ContactsOutlook
from tests.integration.sync_port_contracts import outlook_items, outlook_side
from tests.sync_sides import OutlookSideInMemory
from tests.sync_world import Budget, Clock, OutlookInMemory, Store


def event(subject: str) -> dict[str, Any]:
    return {"subject": subject, "start": {"dateTime": "2026-12-10T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-10T09:30:00", "timeZone": "UTC"}}


@pytest.mark.parametrize("side", ["m365 emulator", "in memory"])
def test_outlook_items(mailbox: GraphMailbox, side: str) -> None:
    port = (CalendarClient(mailbox) if side == "m365 emulator"
            else OutlookInMemory(Store(Side.OUTLOOK, Clock(), Budget(), honours_transaction_id=True)))
    outlook_items(port, event, transaction_ids=True)  # type: ignore[arg-type]


def contact(name: str) -> dict[str, Any]:
    return {"givenName": name, "surname": "Port"}


@pytest.mark.parametrize("side", ["m365 emulator", "in memory"])
def test_outlook_side(mailbox: GraphMailbox, side: str) -> None:
    if side == "m365 emulator":
        port: Any = ContactsOutlook(mailbox, ContactsRules("owner", None, mapping=DEFAULT_CONTACT_MAPPING))
        outlook_side(port, contact, "Port Contract Contacts")
    else:
        outlook_side(OutlookSideInMemory(Store(Side.OUTLOOK, Clock(), Budget())), lambda name: {"subject": name}, "Test")
