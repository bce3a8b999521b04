"""Listing: page 1..10 then page_token, each record once, resumable from a saved cursor, the
member's own records only, changes since a watermark (If-Modified-Since), get by id."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from emulators.crm.server import RunningCrm
from shared.crm.models import CrmMemberAccess
from shared.crm.records import CrmRecords, ListCursor, ListCursorExpired, ListQuery, RecordPage
from shared.crm.session import CrmSessions

from .conftest import FABRICE, RITA, SAM, control, counters, generate, org_records

EVENT_FIELDS = ("Event_Title", "Start_DateTime", "End_DateTime", "Modified_Time", "Data_Source")


@pytest.fixture
def records(sessions: CrmSessions, fabrice: CrmMemberAccess) -> CrmRecords:
    return CrmRecords(sessions.for_member(fabrice))


def test_2500_events_walk_pages_then_page_token_each_exactly_once(
    crm: RunningCrm, records: CrmRecords, fabrice: CrmMemberAccess
) -> None:
    generate(crm, FABRICE, "Events", 2500)
    expected = {r["id"] for r in org_records(crm, fabrice.org_id, "Events")}
    assert len(expected) > 2500  # the seeded events too

    pages: list[RecordPage] = list(records.pages(ListQuery(module="Events", fields=EVENT_FIELDS)))

    ids = [r["id"] for page in pages for r in page.records]
    assert len(ids) == len(set(ids)) == len(expected) and set(ids) == expected
    assert len(pages) == -(-len(expected) // 200)  # full pages of 200: the fewest calls
    cursors = [p.next for p in pages]
    assert [c.page for c in cursors[:9] if c] == list(range(2, 11))  # discrete pages 2..10
    assert all(c and c.page_token and c.page is None for c in cursors[9:-1])  # then tokens
    assert cursors[-1] is None
    assert counters(crm, fabrice.org_id)["total"] == len(pages)
    assert set(pages[0].records[0]) >= {"id", *EVENT_FIELDS}


def test_a_saved_cursor_resumes_exactly_where_the_walk_stopped(crm: RunningCrm, records: CrmRecords) -> None:
    generate(crm, FABRICE, "Events", 2500)
    query = ListQuery(module="Events", fields=("Event_Title",))
    full = [r["id"] for page in records.pages(query) for r in page.records]

    seen: list[str] = []
    saved: list[str] = []
    walk = records.pages(query)
    for _ in range(3):  # one queue message: three pages, then the cursor is stored
        page = next(walk)
        seen += [r["id"] for r in page.records]
        saved.append(page.next.model_dump_json() if page.next else "")
    # The next message resumes from the stored cursor and stops once it holds a page_token.
    for page in records.pages(ListCursor.model_validate_json(saved[-1])):
        seen += [r["id"] for r in page.records]
        if page.next and page.next.page_token:
            saved.append(page.next.model_dump_json())
            break
    assert ListCursor.model_validate_json(saved[-1]).page_token
    for page in records.pages(ListCursor.model_validate_json(saved[-1])):  # a third message, by token
        seen += [r["id"] for r in page.records]

    assert seen == full


def test_only_the_members_own_records(
    crm: RunningCrm, sessions: CrmSessions, member_for: Callable[[str], CrmMemberAccess]
) -> None:
    rita = member_for(RITA)
    generate(crm, SAM, "Contacts", 450)
    generate(crm, RITA, "Contacts", 30)
    everyone = org_records(crm, rita.org_id, "Contacts")
    ritas = {r["id"] for r in everyone if r["Owner"]["id"] == rita.user_id}

    pages = list(CrmRecords(sessions.for_member(rita)).pages(
        ListQuery(module="Contacts", fields=("Last_Name", "Email"), owner_id=rita.user_id)))

    assert {r["id"] for p in pages for r in p.records} == ritas
    assert sum(p.listed for p in pages) == len(everyone)  # progress can count what was read
    assert all(r["Owner"]["id"] == rita.user_id for p in pages for r in p.records)


def test_changes_since_a_watermark(crm: RunningCrm, records: CrmRecords) -> None:
    query = ListQuery(module="Events", fields=EVENT_FIELDS, sort_by="Modified_Time")
    listed = list(records.changed_since(query))
    watermark = max(datetime.fromisoformat(r["Modified_Time"]) for r in listed)
    # The header means "modified after", to the second (the product passes watermark - 1 s).
    since = query.model_copy(update={"modified_since": watermark})
    assert list(records.changed_since(since)) == []  # 304: nothing changed
    overlap = query.model_copy(update={"modified_since": watermark - timedelta(seconds=1)})
    assert {r["id"] for r in records.changed_since(overlap)} == {r["id"] for r in listed
                                                                  if r["Modified_Time"] == listed[-1]["Modified_Time"]}

    control(crm, "/clock", {"advance_seconds": 5})
    changed = [r["id"] for r in listed[:3]]
    results = records.update("Events", [{"id": i, "Venue": "Room 4"} for i in changed])
    assert all(r.ok for r in results)

    got = list(records.changed_since(since))
    assert sorted(r["id"] for r in got) == sorted(changed)
    assert all(datetime.fromisoformat(r["Modified_Time"]) > watermark for r in got)


def test_get_by_id_found_not_found_and_not_modified(records: CrmRecords) -> None:
    first = next(records.changed_since(ListQuery(module="Contacts", fields=("Last_Name",))))
    read = records.get("Contacts", first["id"])
    assert read.state == "found" and read.record and read.record["Last_Name"] == first["Last_Name"]
    assert "Owner" in read.record and "Data_Source" in read.record  # every field on a get
    modified = datetime.fromisoformat(read.record["Modified_Time"])
    assert records.get("Contacts", first["id"], modified_since=modified).state == "not_modified"
    assert records.get("Contacts", first["id"], modified_since=modified - timedelta(seconds=1)).state == "found"
    assert records.get("Contacts", "999999999").state == "not_found"
    with pytest.raises(ValueError):
        records.get("Contacts", "../org")


def test_an_expired_cursor_says_so(crm: RunningCrm, records: CrmRecords) -> None:
    generate(crm, FABRICE, "Contacts", 2100)
    walk = records.pages(ListQuery(module="Contacts", fields=("Last_Name",)))
    cursor = None
    for page in walk:
        cursor = page.next
        if cursor and cursor.page_token:
            break
    assert cursor and cursor.page_token
    control(crm, "/clock", {"advance_seconds": 25 * 3600})  # page tokens live 24 h
    with pytest.raises(ListCursorExpired):
        list(records.pages(cursor))


def test_query_refuses_more_than_fifty_fields() -> None:
    with pytest.raises(ValueError):
        ListQuery(module="Contacts", fields=tuple(f"Field_{i}" for i in range(51)))


def test_a_cursor_holds_a_page_or_a_token() -> None:
    query = ListQuery(module="Events", fields=("Event_Title",))
    assert ListCursor(query=query).page == 1
    for bad in ({"page": 11}, {"page": None}, {"page": 2, "page_token": "t"}):
        with pytest.raises(ValueError):
            ListCursor(query=query, **bad)
    with pytest.raises(ValueError):  # Owner is added for the owner filter: 50 + 1 would be refused
        ListQuery(module="Events", fields=tuple(f"F{i}" for i in range(50)), owner_id="1")
