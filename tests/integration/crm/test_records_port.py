"""The CRM side of the sync (``CrmRecordWrites``): ``CrmRecords`` on the CRM emulator and the
in-memory CRM of the fast tests pass the same contract (issue 17 §2)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.crm.models import CrmMemberAccess
from shared.crm.records import CrmRecords
from shared.crm.session import CrmSessions
from shared.sync.links import Side
from tests.integration.sync_port_contracts import crm_listing, crm_record_writes
from tests.sync_sides import CrmListing
from tests.sync_world import Budget, CrmInMemory, Store


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@pytest.mark.parametrize("side", ["crm emulator", "in memory"])
def test_crm_record_writes(sessions: CrmSessions, fabrice: CrmMemberAccess, side: str) -> None:
    port = (CrmRecords(sessions.for_member(fabrice)) if side == "crm emulator"
            else CrmInMemory(Store(Side.CRM, WallClock(), Budget())))  # type: ignore[arg-type]
    crm_record_writes(port, lambda name: {"Last_Name": name}, unknown_id="1234567890123456789")


@pytest.mark.parametrize("side", ["crm emulator", "in memory"])
def test_crm_listing(sessions: CrmSessions, fabrice: CrmMemberAccess, side: str) -> None:
    if side == "crm emulator":
        crm_listing(CrmRecords(sessions.for_member(fabrice)), lambda name: {"Last_Name": name}, owner_id=fabrice.user_id,
                    fields=("Last_Name", "Modified_Time"))
    else:
        port = CrmListing(Store(Side.CRM, WallClock(), Budget()), owner=fabrice.user_id)  # type: ignore[arg-type]
        crm_listing(port, lambda name: {"subject": name}, owner_id=fabrice.user_id, fields=("subject", "Modified_Time"))
