"""Contacts sync on the local stack (Azurite, both emulators, the Functions host running the
real function_app.py) with the default mapping (SPEC R4.1 to R4.9)."""

from __future__ import annotations

from shared.sync.profiles import SyncKind, SyncState
from shared.wiring import get_services
from tests.integration.sync_setup import (
    containers,
    crm_control,
    crm_records,
    linked_member,
    outlook_items,
    profile,
    wait_until,
)
from tests.product_stack import ProductStack

ADELE = "adele@contoso.test"
FOLDER = "Zoho CRM Contacts"


def names(product: ProductStack) -> list[str]:
    return sorted(f"{c.get('givenName') or ''} {c.get('surname') or ''}".strip() for c in outlook_items(product, ADELE, FOLDER))


def enable_and_wait(member) -> None:  # type: ignore[no-untyped-def]
    get_services().sync.enable(member, SyncKind.CONTACTS)
    wait_until(lambda: profile(member, SyncKind.CONTACTS).state is SyncState.ACTIVE, what="initial contacts sync")
    wait_until(lambda: profile(member, SyncKind.CONTACTS).delta_link, what="the first delta round")


def test_enable_sends_own_contacts_but_not_imported_or_migrated(product: ProductStack) -> None:
    member = linked_member(product)
    for first in ("Ann", "Bob"):
        crm_control(product, "actions/create", {"actor": ADELE, "module": "Contacts", "record": {
            "First_Name": first, "Last_Name": "Own", "Email": f"{first.lower()}@clients.example", "Phone": "+33 1 23 45 67 89"}})
    crm_control(product, "actions/import", {"actor": ADELE, "module": "Contacts", "records": [{"First_Name": "Imp", "Last_Name": "Orted"}]})
    migrated = crm_control(product, "actions/migration", {"actor": ADELE, "module": "Contacts", "records": [{"First_Name": "Mig", "Last_Name": "Rated"}, {"First_Name": "Mass", "Last_Name": "Updated"}]})
    # A migrated contact later changed by a mass update is synced (R4.7).
    mass_id = str(migrated["data"][1]["details"]["id"])
    crm_control(product, "actions/mass-update", {"actor": ADELE, "module": "Contacts", "ids": [mass_id], "values": {"Title": "Buyer"}})
    enable_and_wait(member)
    assert containers(product, ADELE, FOLDER) == 1
    assert names(product) == ["Ann Own", "Bob Own", "Mass Updated"]
    ann = next(c for c in outlook_items(product, ADELE, FOLDER) if c.get("givenName") == "Ann")
    assert ann["emailAddresses"][0]["address"] == "ann@clients.example"
    assert ann["businessPhones"] == ["+33 1 23 45 67 89"]


def test_contacts_flow_both_ways_and_disable_keeps_crm(product: ProductStack) -> None:
    member = linked_member(product)
    created = crm_control(product, "actions/create", {"actor": ADELE, "module": "Contacts", "record": {"First_Name": "Carla", "Last_Name": "Crm"}})
    enable_and_wait(member)
    folder_id = profile(member, SyncKind.CONTACTS).container_id
    product.m365_control("POST", f"mailbox/{ADELE}/contactFolders/{folder_id}/contacts", json={
        "givenName": "Olga", "surname": "Outlook", "emailAddresses": [{"address": "olga@outlook.example", "name": "Olga"}]})
    wait_until(lambda: any(r.get("Last_Name") == "Outlook" for r in crm_records(product, member, "Contacts")),
               what="the Outlook contact in the CRM")
    olga = [r for r in crm_records(product, member, "Contacts") if r.get("Last_Name") == "Outlook"]
    assert len(olga) == 1 and olga[0]["Email"] == "olga@outlook.example" and olga[0]["Owner"]["id"] == member.user_id
    crm_id = str(created["data"][0]["details"]["id"])
    crm_control(product, "actions/mass-update", {"actor": ADELE, "module": "Contacts", "ids": [crm_id], "values": {"Last_Name": "Renamed"}})
    wait_until(lambda: "Carla Renamed" in names(product), what="the rename in Outlook")
    before = len(crm_records(product, member, "Contacts"))
    get_services().sync.disable(member, SyncKind.CONTACTS)
    assert containers(product, ADELE, FOLDER) == 0
    assert len(crm_records(product, member, "Contacts")) == before
