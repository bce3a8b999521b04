"""The two kinds of sync, built for one member: the kind's pure rules (``calendar_kind``,
``contacts_kind``) and its Outlook side (``outlook_side``). The engine, executor and
runner are the same for both (issue 8: "no second engine")."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from pydantic import JsonValue

from shared.accounts.models import MemberIdentity
from shared.graph.mailbox import GraphMailbox
from shared.sync.calendar_kind import CalendarRules
from shared.sync.contacts import DEFAULT_CONTACT_MAPPING, ContactMapping
from shared.sync.contacts_kind import ContactsRules
from shared.sync.kind import KindRules, OutlookSide
from shared.sync.outlook_side import CalendarOutlook, ContactsOutlook
from shared.sync.profiles import SyncKind


def kind_for(
    member: MemberIdentity, kind: SyncKind, mailbox: GraphMailbox, *, reference: datetime | None = None,
    contact_mapping: ContactMapping | None = None, crm_time_zone: str | None = None, generation: str | None = None,
    caps: Mapping[SyncKind, int] | None = None,
) -> tuple[KindRules, OutlookSide]:
    """``reference``: the moment the sync was enabled (the initial sync's order, R3.5);
    ``generation``: the member's current Enable (markers of another one name no partner);
    ``caps``: the initial sync's caps, when configured smaller than R3.5's and R4.6's."""
    cap = (caps or {}).get(kind)
    if kind is SyncKind.CONTACTS:
        contacts = ContactsRules(member.user_id, generation, mapping=contact_mapping or DEFAULT_CONTACT_MAPPING, initial_cap=cap)
        return contacts, ContactsOutlook(mailbox, contacts)
    calendar = CalendarRules(member.user_id, generation, reference=reference or datetime.now(UTC),
                             crm_time_zone=crm_time_zone, initial_cap=cap)
    return calendar, CalendarOutlook(mailbox, calendar)


# What a person calls an item of each kind, from a link row's fields (the sync ledger's names).
LABELS: dict[SyncKind, Callable[[Mapping[str, JsonValue]], str]] = {
    SyncKind.CALENDAR: CalendarRules.label_of, SyncKind.CONTACTS: ContactsRules.label_of,
}
