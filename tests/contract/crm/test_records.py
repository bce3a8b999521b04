"""Records API v8 (Contacts, Events): limits, errors, pagination, writes, deletes, shapes."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import FABRICE, Api, control
from .openapi import validate

LIST = "/crm/v8/{module_api_name}"
BY_ID = "/crm/v8/{module_api_name}/{id}"
UPSERT = "/crm/v8/{module_api_name}/upsert"
DELETED = "/crm/v8/{module_api_name}/deleted"


def checked(method: str, path: str, response: Any) -> Any:
    body = response.json() if response.content else None
    validate(method, path, response.status_code, body)
    return body


def contact(n: int, **extra: Any) -> dict[str, Any]:
    return {"First_Name": f"Test{n}", "Last_Name": f"Person {n}", "Email": f"test{n}@example.org", **extra}


def event(n: int, **extra: Any) -> dict[str, Any]:
    return {"Event_Title": f"Meeting {n}", "Start_DateTime": "2026-12-01T10:00:00+01:00",
            "End_DateTime": "2026-12-01T11:00:00+01:00", **extra}


@pytest.mark.parametrize("module", ["Contacts", "Events"])
def test_list_returns_requested_fields_with_owner_and_data_source(fabrice: Api, module: str) -> None:
    r = fabrice.get(f"/{module}", params={"fields": "Owner,Data_Source,Created_Time,Modified_By"})
    body = checked("get", LIST, r)
    assert r.status_code == 200
    assert {"Manual", "Import", "Migration", "Mass Update", "API", "Webform"} == {d["Data_Source"] for d in body["data"]}
    first = body["data"][0]
    assert set(first) == {"id", "Owner", "Data_Source", "Created_Time", "Modified_By"}
    assert first["Owner"]["email"] == FABRICE and first["Created_Time"].endswith("-05:00")
    ids = [int(d["id"]) for d in body["data"]]
    assert ids == sorted(ids, reverse=True)  # default sort_by id, desc
    assert body["info"]["more_records"] is False and body["info"]["count"] == len(ids)


def test_fields_is_mandatory_and_capped_at_50(fabrice: Api) -> None:
    r = fabrice.get("/Contacts")
    assert r.status_code == 400
    assert checked("get", LIST, r) == {"code": "REQUIRED_PARAM_MISSING", "details": {"param_name": "fields"},
                                       "message": "One of the expected parameter is missing", "status": "error"}
    r = fabrice.get("/Contacts", params={"fields": ",".join(f"F{i}" for i in range(51))})
    assert r.status_code == 400
    assert checked("get", LIST, r)["code"] == "LIMIT_EXCEEDED"
    assert r.json()["details"] == {"limit": 50, "param_name": "fields"}
    assert fabrice.get("/Contacts", params={"fields": ",".join(f"F{i}" for i in range(50))}).status_code == 200


def test_per_page_over_200_and_unknown_module(fabrice: Api) -> None:
    r = fabrice.get("/Contacts", params={"fields": "Last_Name", "per_page": 201})
    assert r.status_code == 400 and r.json()["code"] == "LIMIT_EXCEEDED"
    r = fabrice.get("/Leadz", params={"fields": "Last_Name"})
    assert r.status_code == 400 and r.json()["details"] == {"resource_path_index": 0}
    assert r.json()["code"] == "INVALID_MODULE"


def test_page_tokens_walk_2500_records_each_once(crm, fabrice: Api) -> None:
    control(crm, "/actions/generate", {"actor": FABRICE, "module": "Contacts", "count": 2494})
    seen: list[str] = []
    r = fabrice.get("/Contacts", params={"fields": "Last_Name", "page": 11})
    assert r.status_code == 400
    assert checked("get", LIST, r)["code"] == "DISCRETE_PAGINATION_LIMIT_EXCEEDED"
    assert r.json()["details"] == {"limit": 2000}
    # Pages 1-10 by number, then the token from page 10 onwards.
    token = None
    for page in range(1, 11):
        body = checked("get", LIST, fabrice.get("/Contacts", params={"fields": "Last_Name", "page": page}))
        seen += [d["id"] for d in body["data"]]
        token = body["info"]["next_page_token"]
    while token:
        r = fabrice.get("/Contacts", params={"fields": "Last_Name", "page_token": token})
        body = checked("get", LIST, r)
        seen += [d["id"] for d in body["data"]]
        token = body["info"]["next_page_token"] if body["info"]["more_records"] else None
    assert len(seen) == 2500 and len(set(seen)) == 2500


def test_page_token_rules(crm, fabrice: Api, api_for) -> None:
    control(crm, "/actions/generate", {"actor": FABRICE, "module": "Contacts", "count": 10})
    body = fabrice.get("/Contacts", params={"fields": "Last_Name", "per_page": 5}).json()
    token = body["info"]["next_page_token"]
    assert body["info"]["page_token_expiry"]
    r = fabrice.get("/Contacts", params={"fields": "Last_Name", "per_page": 5, "page": 2, "page_token": token})
    assert r.status_code == 400 and r.json()["code"] == "AMBIGUITY_DURING_PROCESSING"
    r = fabrice.get("/Contacts", params={"fields": "Email", "per_page": 5, "page_token": token})
    assert r.status_code == 400 and r.json()["code"] == "TOKEN_BOUND_DATA_MISMATCH"
    control(crm, "/clock", {"advance_seconds": 24 * 3600 + 1})
    fabrice = api_for(FABRICE)  # the hour-long access token expired too
    r = fabrice.get("/Contacts", params={"fields": "Last_Name", "per_page": 5, "page_token": token})
    assert r.status_code == 400
    assert r.json()["code"] == "EXPIRED_VALUE"
    assert r.json()["details"] == {"api_name": "page_token", "json_path": "$.query.page_token"}


def test_sort_by_modified_time_and_if_modified_since(crm, fabrice: Api) -> None:
    r = fabrice.get("/Contacts", params={"fields": "Modified_Time", "sort_by": "Modified_Time", "sort_order": "asc"})
    times = [d["Modified_Time"] for d in r.json()["data"]]
    assert times == sorted(times)
    assert fabrice.get("/Contacts", params={"fields": "Last_Name", "sort_by": "Email"}).status_code == 400
    control(crm, "/clock", {"advance_seconds": 10})
    r = fabrice.get("/Contacts", params={"fields": "Last_Name"}, headers={"If-Modified-Since": times[-1]})
    assert r.status_code == 304 and r.content == b""
    new = fabrice.post("/Contacts", json={"data": [contact(1)]}).json()["data"][0]["details"]["id"]
    r = fabrice.get("/Contacts", params={"fields": "Last_Name"}, headers={"If-Modified-Since": times[-1]})
    assert [d["id"] for d in r.json()["data"]] == [new]


def test_empty_module_gives_204(crm, fabrice: Api) -> None:
    ids = [d["id"] for d in fabrice.get("/Events", params={"fields": "id"}).json()["data"]]
    assert fabrice.delete("/Events", params={"ids": ",".join(ids)}).status_code == 200
    r = fabrice.get("/Events", params={"fields": "Event_Title"})
    assert r.status_code == 204 and r.content == b""


def test_insert_returns_201_and_sets_system_fields(fabrice: Api) -> None:
    r = fabrice.post("/Contacts", json={"data": [contact(1, Data_Source="Import", Account_Name={"name": "Acme", "id": "42"},
                                                         Mailing_City="Lyon")]})
    body = checked("post", LIST, r)
    assert r.status_code == 201
    item = body["data"][0]
    assert item["code"] == "SUCCESS" and item["message"] == "record added" and item["status"] == "success"
    assert set(item["details"]) >= {"id", "Created_Time", "Modified_Time", "Created_By", "Modified_By"}
    rec = checked("get", BY_ID, fabrice.get(f"/Contacts/{item['details']['id']}"))["data"][0]
    assert rec["Data_Source"] == "API"  # read-only: the payload's value is ignored
    assert rec["Owner"]["email"] == FABRICE and rec["Full_Name"] == "Test1 Person 1"
    assert rec["Account_Name"] == {"name": "Acme", "id": "42"} and rec["Mailing_City"] == "Lyon"


def test_mixed_batch_answers_207_with_errors_in_order(fabrice: Api) -> None:
    batch = [contact(1), {"First_Name": "No last name"}, contact(3, Email="not-an-email"), contact(4)]
    r = fabrice.post("/Contacts", json={"data": batch})
    assert r.status_code == 207
    data = checked("post", LIST, r)["data"]
    assert [d["status"] for d in data] == ["success", "error", "error", "success"]
    assert data[1] == {"code": "MANDATORY_NOT_FOUND", "details": {"api_name": "Last_Name", "json_path": "$.data[1].Last_Name"},
                       "message": "required field not found", "status": "error"}
    assert data[2]["code"] == "INVALID_DATA" and data[2]["details"]["json_path"] == "$.data[2].Email"
    r = fabrice.post("/Contacts", json={"data": [{"First_Name": "x"}]})
    assert r.status_code == 400 and r.json()["data"][0]["code"] == "MANDATORY_NOT_FOUND"


def test_events_mandatory_fields_and_shapes(fabrice: Api) -> None:
    rich = event(1, All_day=False, Venue="Room 4", Remind_At=[{"unit": 15, "period": "minutes"}],
                 Recurring_Activity={"RRULE": "FREQ=WEEKLY;BYDAY=MO;INTERVAL=1;UNTIL=2027-01-31"},
                 Participants=[{"type": "email", "Email": "guest@example.com", "name": "Guest", "invited": True},
                               {"type": "user", "participant": "1"}])
    bad = [event(2, Event_Title=""), {"Event_Title": "x", "Start_DateTime": "2026-12-01T10:00:00+01:00"},
           event(4, Start_DateTime="tomorrow"), event(5, Participants=[{"type": "email", "Email": f"p{i}@e.com"} for i in range(51)]),
           event(6, End_DateTime="2026-12-01T09:00:00+01:00"), event(7, What_Id={"id": "1"})]
    r = fabrice.post("/Events", json={"data": [rich, *bad]})
    assert r.status_code == 207
    data = checked("post", LIST, r)["data"]
    assert [d["code"] for d in data] == ["SUCCESS", "MANDATORY_NOT_FOUND", "MANDATORY_NOT_FOUND", "INVALID_DATA",
                                         "LIMIT_EXCEEDED", "INVALID_DATA", "DEPENDENT_FIELD_MISSING"]
    assert data[2]["details"]["api_name"] == "End_DateTime"
    rec = fabrice.get(f"/Events/{data[0]['details']['id']}").json()["data"][0]
    assert rec["Recurring_Activity"]["RRULE"].startswith("FREQ=WEEKLY") and rec["Remind_At"][0]["period"] == "minutes"
    assert rec["Start_DateTime"] == "2026-12-01T10:00:00+01:00" and rec["Data_Source"] == "API"


def test_more_than_100_records_refused(fabrice: Api) -> None:
    r = fabrice.post("/Contacts", json={"data": [contact(i) for i in range(101)]})
    assert r.status_code == 400
    assert checked("post", LIST, r)["code"] == "LIMIT_EXCEEDED"
    assert r.json()["details"]["limit"] == 100
    assert fabrice.post("/Contacts", json={"data": [contact(i) for i in range(100)]}).status_code == 201
    assert fabrice.post("/Contacts", json={}).json()["code"] == "MANDATORY_NOT_FOUND"


def test_update_bulk_and_by_id(crm, fabrice: Api) -> None:
    ids = [d["details"]["id"] for d in fabrice.post("/Contacts", json={"data": [contact(1), contact(2)]}).json()["data"]]
    control(crm, "/clock", {"advance_seconds": 5})
    r = fabrice.put("/Contacts", json={"data": [{"id": ids[0], "Title": "CEO"}, {"id": "1", "Title": "x"},
                                                {"Title": "no id"}, {"id": ids[1], "Last_Name": ""}]})
    assert r.status_code == 207
    data = checked("put", LIST, r)["data"]
    assert [d["code"] for d in data] == ["SUCCESS", "INVALID_DATA", "MANDATORY_NOT_FOUND", "MANDATORY_NOT_FOUND"]
    assert data[0]["message"] == "record updated"
    r = fabrice.put(f"/Contacts/{ids[1]}", json={"data": [{"Phone": "123"}]})
    assert r.status_code == 200
    checked("put", BY_ID, r)
    rec = fabrice.get(f"/Contacts/{ids[0]}").json()["data"][0]
    assert rec["Title"] == "CEO" and rec["Modified_Time"] > rec["Created_Time"]
    assert fabrice.get("/Contacts/123").json()["code"] == "INVALID_DATA"


def test_upsert_matches_contacts_on_email(fabrice: Api) -> None:
    existing = fabrice.post("/Contacts", json={"data": [contact(1)]}).json()["data"][0]["details"]["id"]
    r = fabrice.post("/Contacts/upsert", json={"data": [contact(1, Title="Updated", Email="TEST1@example.org"), contact(2)]})
    assert r.status_code == 200
    data = checked("post", UPSERT, r)["data"]
    assert (data[0]["action"], data[0]["duplicate_field"], data[0]["details"]["id"]) == ("update", "Email", existing)
    assert data[1]["action"] == "insert" and data[1]["message"] == "record added"
    # Events have no system duplicate-check field: without an id, upsert inserts.
    r = fabrice.post("/Events/upsert", json={"data": [event(1), event(1)]})
    assert [d["action"] for d in r.json()["data"]] == ["insert", "insert"]
    # Insert checks duplicates only when asked to.
    r = fabrice.post("/Contacts", json={"data": [contact(2)], "duplicate_check_fields": ["Email"]})
    assert r.status_code == 400
    err = checked("post", LIST, r)["data"][0]
    assert err["code"] == "DUPLICATE_DATA" and err["details"]["duplicate_record"]["id"] == data[1]["details"]["id"]


def test_delete_and_deleted_records(crm, fabrice: Api, api_for) -> None:
    ids = [d["details"]["id"] for d in fabrice.post("/Contacts", json={"data": [contact(1), contact(2)]}).json()["data"]]
    assert fabrice.delete("/Contacts").json() == {"code": "REQUIRED_PARAM_MISSING", "details": {"param_name": "ids"},
                                                  "message": "One of the expected parameter is missing", "status": "error"}
    assert fabrice.delete("/Contacts", params={"ids": ",".join(str(i) for i in range(101))}).json()["code"] == "LIMIT_EXCEEDED"
    r = fabrice.delete("/Contacts", params={"ids": f"{ids[0]},999"})
    assert r.status_code == 207
    data = checked("delete", LIST, r)["data"]
    assert data[0] == {"code": "SUCCESS", "details": {"id": ids[0]}, "message": "record deleted", "status": "success"}
    assert data[1]["code"] == "INVALID_DATA"
    assert fabrice.delete(f"/Contacts/{ids[1]}").status_code == 200
    r = fabrice.get("/Contacts/deleted", params={"type": "recycle"})
    body = checked("get", DELETED, r)
    assert [d["id"] for d in body["data"]] == [ids[1], ids[0]]
    assert body["data"][0]["type"] == "recycle" and body["data"][0]["display_name"] == "Test2 Person 2"
    assert body["data"][0]["deleted_by"]["id"]
    assert fabrice.get("/Contacts/deleted", params={"type": "permanent"}).status_code == 204
    control(crm, "/actions/empty-recycle-bin", {"actor": FABRICE, "module": "Contacts"})
    assert len(fabrice.get("/Contacts/deleted", params={"type": "permanent"}).json()["data"]) == 2
    assert fabrice.get("/Contacts/deleted", params={"type": "bogus"}).status_code == 400
    control(crm, "/clock", {"advance_seconds": 121 * 86400})  # past the 120-day retention
    fabrice = api_for(FABRICE)
    assert fabrice.get("/Contacts/deleted").status_code == 204


def test_recycle_entries_expire_after_60_days(crm, fabrice: Api, api_for) -> None:
    rid = fabrice.post("/Events", json={"data": [event(1)]}).json()["data"][0]["details"]["id"]
    fabrice.delete(f"/Events/{rid}")
    assert fabrice.get("/Events/deleted").json()["data"][0]["id"] == rid
    control(crm, "/clock", {"advance_seconds": 61 * 86400})
    fabrice = api_for(FABRICE)
    assert fabrice.get("/Events/deleted").status_code == 204


def test_owner_must_be_a_user_of_the_org(fabrice: Api, api_for) -> None:
    sam_id = api_for("sam.carter@samconsulting.example").get("/users", params={"type": "CurrentUser"}).json()["users"][0]["id"]
    r = fabrice.post("/Contacts", json={"data": [contact(1, Owner={"id": sam_id})]})
    assert r.status_code == 400 and r.json()["data"][0]["details"]["api_name"] == "Owner"


def test_unknown_url_and_method(fabrice: Api) -> None:
    r = fabrice.get("/Contacts/1/2/3")
    assert r.status_code == 404 and r.json()["code"] == "INVALID_URL_PATTERN"
    r = fabrice.patch("/Contacts")
    assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST_METHOD"


def test_if_unmodified_since_gives_412_already_modified(crm, fabrice: Api) -> None:
    rid = fabrice.post("/Contacts", json={"data": [contact(1)]}).json()["data"][0]["details"]["id"]
    seen = fabrice.get(f"/Contacts/{rid}").json()["data"][0]["Modified_Time"]
    control(crm, "/clock", {"advance_seconds": 5})
    assert fabrice.put(f"/Contacts/{rid}", json={"data": [{"Title": "A"}]},
                       headers={"If-Unmodified-Since": seen}).status_code == 200
    r = fabrice.put(f"/Contacts/{rid}", json={"data": [{"Title": "B"}]}, headers={"If-Unmodified-Since": seen})
    assert r.status_code == 412
    assert r.json()["data"][0]["code"] == "ALREADY_MODIFIED" and r.json()["data"][0]["details"]["id"] == rid
    assert fabrice.get(f"/Contacts/{rid}").json()["data"][0]["Title"] == "A"


def test_heavy_writes_share_a_sub_concurrency_of_ten(crm, fabrice: Api) -> None:
    import threading
    fab = next(o["id"] for o in control(crm, "/snapshot", method="GET")["orgs"] if o["company_name"] == "Fabrikam Sales")
    control(crm, "/faults", {"orgs": {fab: {"latency_ms": 500}}}, method="PUT")
    statuses: list[int] = []
    lock = threading.Lock()

    def write(n: int) -> None:
        r = fabrice.post("/Contacts", json={"data": [contact(n * 100 + i) for i in range(11)]})
        with lock:
            statuses.append(r.status_code)
    threads = [threading.Thread(target=write, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Enterprise allows 20 concurrent calls, but only 10 heavy ones (more than ten records).
    assert sorted(statuses).count(201) == 10 and statuses.count(429) == 2


def test_upsert_needs_create_and_update_scopes(api_for) -> None:
    creator = api_for(FABRICE, scopes=["ZohoCRM.modules.contacts.CREATE", "ZohoCRM.modules.contacts.READ"])
    assert creator.post("/Contacts", json={"data": [contact(1)]}).status_code == 201
    r = creator.post("/Contacts/upsert", json={"data": [contact(1)]})
    assert r.status_code == 401 and r.json()["code"] == "OAUTH_SCOPE_MISMATCH"
    assert creator.put("/Contacts", json={"data": [{"id": "1"}]}).json()["code"] == "OAUTH_SCOPE_MISMATCH"
    writer = api_for(FABRICE, scopes=["ZohoCRM.modules.WRITE"])
    assert writer.post("/Contacts/upsert", json={"data": [contact(1)]}).status_code == 200
    assert writer.delete("/Contacts", params={"ids": "1"}).json()["code"] == "OAUTH_SCOPE_MISMATCH"
