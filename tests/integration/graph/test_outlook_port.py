"""The Outlook side of the sync (``OutlookItems``): ``CalendarClient`` on the Microsoft 365
emulator and the in-memory Outlook of the fast tests pass the same contract (issue 17 §2)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.graph.calendars import CalendarClient
from shared.graph.mailbox import GraphMailbox
from shared.sync.links import Side
from tests.integration.sync_port_contracts import outlook_items
from tests.sync_world import Budget, Clock, OutlookInMemory, Store


def event(subject: str) -> dict[str, Any]:
    return {"subject": subject, "start": {"dateTime": "2026-12-10T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-10T09:30:00", "timeZone": "UTC"}}


@pytest.mark.parametrize("side", ["m365 emulator", "in memory"])
def test_outlook_items(mailbox: GraphMailbox, side: str) -> None:
    port = (CalendarClient(mailbox) if side == "m365 emulator"
            else OutlookInMemory(Store(Side.OUTLOOK, Clock(), Budget(), honours_transaction_id=True)))
    outlook_items(port, event, transaction_ids=True)  # type: ignore[arg-type]
