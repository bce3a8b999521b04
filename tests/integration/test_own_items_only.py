"""R3.4 and R4.5 end to end (issue 23): in an org with two CRM users, Adele's sync carries
her own events and contacts only, at Enable and afterwards; a colleague's records, made
before or after, never reach her Outlook, and her Outlook items become records she owns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.sync.profiles import SyncKind
from tests.integration import test_calendar_sync as calendar
from tests.integration import test_contacts_sync as contacts
from tests.integration.sync_setup import crm_control, crm_records, linked_member, outlook_items, wait_until
from tests.product_stack import ProductStack
from tests.security.world import add_crm_user

ADELE, MEGAN = "adele@contoso.test", "megan@contoso.test"


def _record(kind: SyncKind, name: str) -> dict[str, object]:
    if kind is SyncKind.CALENDAR:
        return calendar.crm_event(name, datetime.now(UTC).replace(microsecond=0) + timedelta(days=3))
    return {"First_Name": name, "Last_Name": "Record"}


def _outlook_names(product: ProductStack, kind: SyncKind) -> list[str]:
    if kind is SyncKind.CALENDAR:
        return sorted(str(e.get("subject")) for e in outlook_items(product, ADELE, calendar.CALENDAR))
    return sorted(str(c.get("givenName")) for c in outlook_items(product, ADELE, contacts.FOLDER))


@pytest.mark.parametrize("kind", [SyncKind.CALENDAR, SyncKind.CONTACTS], ids=lambda k: k.value)
def test_a_colleagues_records_never_reach_the_members_outlook(product: ProductStack, kind: SyncKind) -> None:
    member = linked_member(product)
    add_crm_user(product, member.org_id, MEGAN)  # a colleague in the same CRM org
    module = "Events" if kind is SyncKind.CALENDAR else "Contacts"
    for actor, name in ((ADELE, "Mine"), (MEGAN, "Hers")):
        crm_control(product, "actions/create", {"actor": actor, "module": module, "record": _record(kind, name)})
    if kind is SyncKind.CALENDAR:
        calendar.enable_and_wait(product, member)
    else:
        contacts.enable_and_wait(member)
    assert _outlook_names(product, kind) == ["Mine"]

    # Afterwards too: her colleague's new record stays out, her own new one comes in.
    crm_control(product, "actions/create", {"actor": MEGAN, "module": module, "record": _record(kind, "Hers later")})
    crm_control(product, "actions/create", {"actor": ADELE, "module": module, "record": _record(kind, "Mine later")})
    wait_until(lambda: _outlook_names(product, kind) == ["Mine", "Mine later"], timeout=90,
               what="her own new record, and only it, in Outlook")
    owners = {str(r.get("Owner", {}).get("id")) for r in crm_records(product, member, module)}
    assert len(owners) == 2  # both users' records are in the org; only hers were synced
