"""Writes in batches of 100 with one result per record in input order (201/207/400 bodies),
deletes, and the deleted-records list (API deletes and people's deletes)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from emulators.crm.server import RunningCrm
from shared.crm.models import CrmMemberAccess
from shared.crm.records import CrmRecords
from shared.crm.session import CrmSessions

from .conftest import FABRICE, control, counters, org_records


@pytest.fixture
def records(sessions: CrmSessions, fabrice: CrmMemberAccess) -> CrmRecords:
    return CrmRecords(sessions.for_member(fabrice))


def contacts(count: int, tag: str) -> list[dict[str, str]]:
    return [{"First_Name": tag, "Last_Name": f"{tag} {n:04d}", "Email": f"{tag.lower()}{n}@example.test"}
            for n in range(count)]


def test_insert_250_makes_3_calls_with_results_in_input_order(
    crm: RunningCrm, records: CrmRecords, fabrice: CrmMemberAccess
) -> None:
    batch = contacts(250, "Batch")
    batch[137] = {"First_Name": "Nameless"}  # no Last_Name: the CRM refuses this one only
    before = counters(crm, fabrice.org_id).get("total", 0)

    results = records.insert("Contacts", batch)

    assert counters(crm, fabrice.org_id)["total"] - before == 3
    assert [r.index for r in results] == list(range(250))
    assert [r.status for r in results].count("success") == 249
    refused = results[137]
    assert refused.status == "error" and refused.code == "MANDATORY_NOT_FOUND" and refused.id is None
    assert refused.details.get("api_name") == "Last_Name"
    stored = {r["id"]: r for r in org_records(crm, fabrice.org_id, "Contacts")}
    for result, sent in zip(results, batch, strict=True):
        if result.ok:  # each id is the record sent at that position
            assert result.id and stored[result.id]["Last_Name"] == sent["Last_Name"] and result.modified_time
    assert len({r.id for r in results if r.ok}) == 249


def test_a_batch_where_everything_fails_is_results_not_an_exception(records: CrmRecords) -> None:
    results = records.insert("Events", [{"Event_Title": "No times"}, {"Event_Title": "Neither"}])
    assert [(r.status, r.code) for r in results] == [("error", "MANDATORY_NOT_FOUND")] * 2


def test_update_in_batches_with_a_refused_record(crm: RunningCrm, records: CrmRecords, fabrice: CrmMemberAccess) -> None:
    created = records.insert("Contacts", contacts(150, "Upd"))
    changes = [{"id": r.id, "Title": f"Buyer {r.index}"} for r in created]
    changes[42] = {"id": created[42].id, "Email": "not an e-mail"}
    before = counters(crm, fabrice.org_id)["total"]

    results = records.update("Contacts", changes)

    assert counters(crm, fabrice.org_id)["total"] - before == 2
    assert [r.index for r in results] == list(range(150))
    assert results[42].status == "error" and results[42].code == "INVALID_DATA"
    assert all(r.ok and r.id == created[r.index].id for r in results if r.index != 42)
    stored = {r["id"]: r for r in org_records(crm, fabrice.org_id, "Contacts")}
    assert stored[str(created[7].id)]["Title"] == "Buyer 7"
    assert stored[str(created[42].id)]["Email"] != "not an e-mail"


def test_update_requires_ids(records: CrmRecords) -> None:
    with pytest.raises(ValueError):
        records.update("Contacts", [{"Last_Name": "No id"}])


def test_delete_in_batches_and_the_deleted_list(crm: RunningCrm, records: CrmRecords, fabrice: CrmMemberAccess) -> None:
    created = [r.id for r in records.insert("Contacts", contacts(120, "Del")) if r.id]
    since = max(datetime.fromisoformat(r["Modified_Time"]) for r in org_records(crm, fabrice.org_id, "Contacts"))
    control(crm, "/clock", {"advance_seconds": 2})

    results = records.delete("Contacts", [*created[:60], "999999999", *created[60:]])

    assert len(results) == 121 and results[60].status == "error" and results[60].code == "INVALID_DATA"
    assert all(r.ok for i, r in enumerate(results) if i != 60)
    assert not {r["id"] for r in org_records(crm, fabrice.org_id, "Contacts")} & set(created)
    deleted = list(records.deleted("Contacts", since=since))
    assert {d.id for d in deleted} == set(created)
    assert {d.type for d in deleted} == {"recycle"}
    later = max(datetime.fromisoformat(d.deleted_time) for d in deleted)
    assert list(records.deleted("Contacts", since=later)) == []  # 304: nothing newer


def test_deletions_by_people_are_listed(crm: RunningCrm, records: CrmRecords, fabrice: CrmMemberAccess) -> None:
    events = org_records(crm, fabrice.org_id, "Events")
    mine = [r["id"] for r in events][:2]
    now = max(datetime.fromisoformat(r["Modified_Time"]) for r in events)
    control(crm, "/clock", {"advance_seconds": 2})
    control(crm, "/actions/delete", {"actor": FABRICE, "module": "Events", "ids": mine})

    deleted = list(records.deleted("Events", since=now + timedelta(seconds=1)))

    assert sorted(d.id for d in deleted) == sorted(mine)
    assert all(d.deleted_by and d.deleted_by.get("id") == fabrice.user_id for d in deleted)


def test_deleted_list_walks_pages(crm: RunningCrm, records: CrmRecords) -> None:
    created = [r.id for r in records.insert("Contacts", contacts(230, "Many")) if r.id]
    assert len(created) == 230
    records.delete("Contacts", created)
    listed = [d.id for d in records.deleted("Contacts")]
    assert len(listed) == len(set(listed)) and set(created) <= set(listed)
