"""calendarView delta and contacts delta, streamed page by page and resumable (DESIGN §8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.graph.calendars import CalendarClient
from shared.graph.contacts import ContactsClient
from shared.graph.container import ItemDraft
from shared.graph.delta import DeltaPage
from shared.graph.sync_errors import ContactFolderGone, DeltaExpired

from .conftest import ADELE_UPN, Emulator
from .test_calendars import event_fields

WINDOW = {"start": datetime.now(UTC) - timedelta(days=30), "end": datetime.now(UTC) + timedelta(days=60)}


def drain(pages) -> tuple[list[DeltaPage], str]:
    seen = list(pages)
    assert seen[-1].is_last and all(not p.is_last for p in seen[:-1])
    return seen, seen[-1].resume_link


def test_calendar_delta_initial_change_delete_and_next_round(make_mailbox, emulator: Emulator) -> None:
    calendars = CalendarClient(make_mailbox())
    calendar = calendars.ensure_calendar()
    created = calendars.create_events(calendar.id, [ItemDraft(crm_id=f"c{n}", fields=event_fields(f"E{n}", day=n + 1))
                                                    for n in range(7)])
    ids = [e.id for e in created]  # type: ignore[union-attr]

    pages = calendars.delta(calendar.id, **WINDOW, page_size=3)
    first = next(pages)  # streamed: one page at a time, a link to resume from after each
    assert len(first.changed) == 3 and first.next_link and not first.is_last
    # The worker stops here; a later queue message resumes from the stored link.
    resumed = CalendarClient(make_mailbox(shared_gate=False)).delta(calendar.id, resume_from=first.resume_link,
                                                                   page_size=3)
    rest, delta_link = drain(resumed)
    assert sorted(e.id for p in [first, *rest] for e in p.changed) == sorted(ids)
    assert all(e.start.time_zone == "UTC" for p in rest for e in p.changed)  # type: ignore[union-attr]

    # In Outlook: one event changed, one deleted, one created in our calendar.
    emulator.control("PATCH", f"mailbox/{ADELE_UPN}/events/{ids[0]}", json={"subject": "Changed in Outlook"})
    emulator.control("DELETE", f"mailbox/{ADELE_UPN}/events/{ids[1]}")
    added = emulator.control("POST", f"mailbox/{ADELE_UPN}/calendars/{calendar.id}/events", json=event_fields("New", 5))

    pages, next_round = drain(calendars.delta(calendar.id, resume_from=delta_link))
    changed = {e.id: e for p in pages for e in p.changed}
    removed = [r for p in pages for r in p.removed]
    assert set(changed) == {ids[0], added["id"]}
    assert changed[ids[0]].subject == "Changed in Outlook"
    assert [(r.id, r.reason) for r in removed] == [(ids[1], "deleted")]

    # Nothing happened since: the next round is empty.
    quiet, _ = drain(calendars.delta(calendar.id, resume_from=next_round))
    assert all(not p.changed and not p.removed for p in quiet)


def test_expired_delta_token_asks_for_a_restart(mailbox, emulator: Emulator) -> None:
    calendars = CalendarClient(mailbox)
    calendar = calendars.ensure_calendar()
    calendars.create_event(calendar.id, event_fields("One"), crm_id="c1")
    _, delta_link = drain(calendars.delta(calendar.id, **WINDOW))
    emulator.control("POST", "delta/expire", json={"upn": ADELE_UPN})
    with pytest.raises(DeltaExpired) as raised:
        list(calendars.delta(calendar.id, resume_from=delta_link))
    assert raised.value.status == 410 and raised.value.code == "syncStateNotFound"
    # Restarting is a new round with the window: everything again.
    pages, _ = drain(calendars.delta(calendar.id, **WINDOW))
    assert [e.subject for p in pages for e in p.changed] == ["One"]


def test_a_new_round_needs_a_window(mailbox) -> None:
    with pytest.raises(ValueError):
        CalendarClient(mailbox).delta("any")
    with pytest.raises(ValueError):  # a link that is not our Graph never gets our token
        next(CalendarClient(mailbox).delta("any", resume_from="https://elsewhere.example/v1.0/x?$deltatoken=1"))


def test_contacts_delta_rounds_folder_gone_and_restart(mailbox, emulator: Emulator) -> None:
    contacts = ContactsClient(mailbox)
    folder = contacts.ensure_folder()
    made = contacts.create_contacts(folder.id, [ItemDraft(crm_id=f"k{n}", fields={"givenName": f"G{n}", "surname": "S"})
                                                for n in range(5)])
    ids = [c.id for c in made]  # type: ignore[union-attr]
    pages, delta_link = drain(contacts.delta(folder.id, page_size=2))
    assert len(pages) == 3 and sorted(c.id for p in pages for c in p.changed) == sorted(ids)

    emulator.control("PATCH", f"mailbox/{ADELE_UPN}/contacts/{ids[0]}", json={"companyName": "Northwind"})
    emulator.control("DELETE", f"mailbox/{ADELE_UPN}/contacts/{ids[1]}")
    pages, next_round = drain(contacts.delta(folder.id, resume_from=delta_link))
    assert [c.id for p in pages for c in p.changed] == [ids[0]]
    assert [r.id for p in pages for r in p.removed] == [ids[1]]

    emulator.control("POST", "delta/expire", json={"upn": ADELE_UPN})
    with pytest.raises(DeltaExpired):
        list(contacts.delta(folder.id, resume_from=next_round))

    emulator.control("DELETE", f"mailbox/{ADELE_UPN}/contactFolders/{folder.id}")
    with pytest.raises(ContactFolderGone):
        list(contacts.delta(folder.id))


@pytest.mark.parametrize("collection", ["events", "contacts"])
def test_an_item_dragged_to_another_container_leaves_ours_as_removed(make_mailbox, emulator: Emulator,
                                                                     collection: str) -> None:
    """Outlook's drag out of our calendar or folder: our delta reports it removed; the item
    lives on elsewhere with a new id and our marker (what the journey's "move out" does)."""
    mailbox = make_mailbox()
    if collection == "events":
        client: CalendarClient | ContactsClient = CalendarClient(mailbox)
        container = client.ensure_container("Zoho CRM")
        [made] = client.create_items(container.id, [ItemDraft(crm_id="crm-moved", fields=event_fields("Moved", 2))])
        _, link = drain(client.delta(container.id, **WINDOW))
    else:
        client = ContactsClient(mailbox)
        container = client.ensure_container("Zoho CRM Contacts")
        [made] = client.create_items(container.id, [ItemDraft(crm_id="crm-moved", fields={"givenName": "Moved", "surname": "Out"})])
        _, link = drain(client.delta(container.id))
    moved = emulator.control("POST", f"mailbox/{ADELE_UPN}/{collection}/{made.id}/move", json={})  # type: ignore[union-attr]
    assert moved["id"] != made.id  # type: ignore[union-attr]
    pages, _ = drain(client.delta(container.id, resume_from=link))
    assert [r.id for p in pages for r in p.removed] == [made.id]  # type: ignore[union-attr]
    assert client.find_items_by_crm_id(container.id, "crm-moved") == []
