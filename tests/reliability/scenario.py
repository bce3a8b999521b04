"""Gestures shared by the reliability scenarios: people changing things on both sides while
sync runs, and waiting for a sync to make progress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.accounts.models import MemberIdentity
from shared.sync.profiles import SyncKind
from tests.integration.sync_setup import crm_control, outlook_items, profile, wait_until
from tests.integration.test_sync_reliability import ADELE, CONTAINER, MODULE
from tests.product_stack import ProductStack
from tests.reliability.harness import SOAK


def size(quick: float, soak: float) -> Any:
    """How many records a scenario syncs: few in make test, many in make soak."""
    return soak if SOAK else quick


def outlook_create(product: ProductStack, member: MemberIdentity, kind: SyncKind, tag: str, n: int) -> None:
    container = profile(member, kind).container_id
    soon = datetime.now(UTC).replace(microsecond=0, second=0) + timedelta(days=2)
    for i in range(n):
        if kind is SyncKind.CALENDAR:
            start = soon + timedelta(hours=i)
            product.m365_control("POST", f"mailbox/{ADELE}/calendars/{container}/events", json={
                "subject": f"{tag} Outlook {i}",
                "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                "end": {"dateTime": (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}})
        else:
            product.m365_control("POST", f"mailbox/{ADELE}/contactFolders/{container}/contacts", json={
                "givenName": f"{tag}{i}", "surname": "Outlook",
                "emailAddresses": [{"address": f"{tag.lower()}{i}@outlook.example", "name": f"{tag}{i}"}]})


def crm_create(product: ProductStack, kind: SyncKind, tag: str, n: int, *, notify: bool = True) -> None:
    soon = datetime.now(UTC).replace(microsecond=0, second=0) + timedelta(days=3)
    if not notify:  # a person's change whose watch callback never comes
        values = {"Event_Title": f"{tag} CRM silent"} if kind is SyncKind.CALENDAR else {"Last_Name": f"{tag}CrmSilent"}
        crm_control(product, "actions/generate", {"actor": ADELE, "module": MODULE[kind], "count": n, "values": values,
                                                  "notify": False})
        return
    for i in range(n):
        record = ({"Event_Title": f"{tag} CRM {i}", "Start_DateTime": (soon + timedelta(hours=i)).isoformat(),
                   "End_DateTime": (soon + timedelta(hours=i, minutes=45)).isoformat(), "All_day": False}
                  if kind is SyncKind.CALENDAR else
                  {"First_Name": f"{tag}{i}", "Last_Name": "Crm", "Email": f"{tag.lower()}{i}@crm.example"})
        crm_control(product, "actions/create", {"actor": ADELE, "module": MODULE[kind], "record": record})


def outlook_delete_synced(product: ProductStack, kind: SyncKind, n: int) -> int:
    """Delete ``n`` items that came from the CRM's generated records (never more than 5: no mass-change pause)."""
    items = outlook_items(product, ADELE, CONTAINER[kind])
    label = "subject" if kind is SyncKind.CALENDAR else "surname"
    mine = sorted(i["id"] for i in items if not any(t in (i.get(label) or "") for t in ("Outlook", "CRM", "Crm")))[:n]
    if mine:
        product.m365_control("POST", f"mailbox/{ADELE}/{'events' if kind is SyncKind.CALENDAR else 'contacts'}/delete",
                             json={"ids": mine})
    return len(mine)


def two_way_changes(product: ProductStack, member: MemberIdentity, kind: SyncKind, tag: str, n: int = 3) -> int:
    """Creates on both sides and deletions in Outlook; returns how the expected count moves."""
    outlook_create(product, member, kind, tag, n)
    crm_create(product, kind, tag, n)
    deleted = outlook_delete_synced(product, kind, min(n, 4))
    return 2 * n - deleted


def initial_progress(member: MemberIdentity, kind: SyncKind, at_least: int = 1, timeout: float = 120) -> None:
    wait_until(lambda: profile(member, kind).initial_done >= at_least, timeout=timeout, what="initial sync progress")
