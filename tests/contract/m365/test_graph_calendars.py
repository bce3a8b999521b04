"""Graph calendars, events, calendarView and calendarView/delta against the contract."""

from __future__ import annotations

import pytest

MEGAN = "megan@contoso.test"
WINDOW = "startDateTime=2030-01-01T00:00:00Z&endDateTime=2030-12-31T00:00:00Z"


def _event(subject="Sync me", day="2030-03-01", start="10:00", end="11:00", zone="UTC", **extra):
    return {"subject": subject, "body": {"contentType": "html", "content": "<p>Hello</p>"},
            "start": {"dateTime": f"{day}T{start}:00", "timeZone": zone}, "end": {"dateTime": f"{day}T{end}:00", "timeZone": zone}, **extra}


@pytest.fixture
def calendar(http, m365, app_headers):
    response = http.post(f"{m365.graph_url}/users/{MEGAN}/calendars", headers=app_headers, json={"name": "Zoho CRM"})
    assert response.status_code == 201
    return response.json()


def test_users_paging_select_filter_search(http, m365, app_headers):
    first = http.get(f"{m365.graph_url}/users?$select=id,displayName,mail&$top=10", headers=app_headers).json()
    assert len(first["value"]) == 10 and set(first["value"][0]) == {"id", "displayName", "mail"}
    seen = len(first["value"])
    link = first["@odata.nextLink"]
    while link:
        page = http.get(link, headers=app_headers).json()
        seen += len(page["value"])
        link = page.get("@odata.nextLink")
    assert seen == 30
    assert http.get(f"{m365.graph_url}/users?$top=1000", headers=app_headers).status_code == 400
    found = http.get(f"{m365.graph_url}/users?$filter=startswith(displayName,'Meg')", headers=app_headers).json()["value"]
    assert [u["userPrincipalName"] for u in found] == [MEGAN]
    search = f"{m365.graph_url}/users?$search=\"displayName:wilber\""
    assert http.get(search, headers=app_headers).status_code == 400
    hits = http.get(search, headers={**app_headers, "ConsistencyLevel": "eventual"}).json()["value"]
    assert [u["userPrincipalName"] for u in hits] == ["alex@contoso.test"]
    assert http.get(f"{m365.graph_url}/users/{MEGAN}", headers=app_headers).json()["displayName"] == "Megan Bowen"
    assert http.get(f"{m365.graph_url}/users/nobody@contoso.test", headers=app_headers).json()["error"]["code"] == "Request_ResourceNotFound"
    assert http.get(f"{m365.graph_url}/organization", headers=app_headers).status_code == 403  # needs Organization.Read.All



# $search on directory objects (issue 19), from https://learn.microsoft.com/graph/search-query-parameter: clauses
# "property:text" joined by upper-case AND / OR; displayName is matched by word prefixes, other string properties
# (mail ...) by startsWith on the whole value; ConsistencyLevel: eventual is required.
EVENTUAL = {"ConsistencyLevel": "eventual"}


def _search(http, m365, app_headers, search, **params):
    response = http.get(f"{m365.graph_url}/users", headers={**app_headers, **EVENTUAL}, params={"$search": search, **params})
    assert response.status_code == 200, response.text
    return response.json()


def _found(http, m365, app_headers, search, **params):
    return [u["userPrincipalName"] for u in _search(http, m365, app_headers, search, **params)["value"]]


def test_users_search_ors_its_clauses_so_a_full_name_or_an_address_finds_the_person(http, m365, app_headers):
    # The Add User window's query: real Graph ORs the clauses, so the name finds her by displayName...
    assert _found(http, m365, app_headers, '"displayName:megan bowen" OR "mail:megan bowen"') == [MEGAN]
    # ...and her address finds her by mail (its displayName clause matches nobody).
    assert _found(http, m365, app_headers, f'"displayName:{MEGAN}" OR "mail:{MEGAN}"') == [MEGAN]
    # ANDed, the same two clauses find nobody: no mail starts with "megan bowen".
    assert _found(http, m365, app_headers, '"displayName:megan bowen" AND "mail:megan bowen"') == []


def test_users_search_matches_display_name_words_by_prefix_and_other_properties_by_start(http, m365, app_headers):
    for text in ("meg", "Megan", "MEGAN", "bow", "bowen meg", "Megan Bowen"):
        assert _found(http, m365, app_headers, f'"displayName:{text}"') == [MEGAN], text
    assert _found(http, m365, app_headers, '"displayName:egan"') == []  # a word's start, not "contains"
    assert _found(http, m365, app_headers, '"displayName:megan smith"') == []  # every word must match
    assert _found(http, m365, app_headers, '"mail:megan@contoso"') == [MEGAN]
    assert _found(http, m365, app_headers, '"mail:contoso"') == []  # startsWith on the whole address
    assert _found(http, m365, app_headers, '"surname:bow"') == [MEGAN]
    # An escaped double quote inside a clause is read, not taken as the clause's end.
    assert _found(http, m365, app_headers, '"displayName:megan" OR "mail:\\"quoted"') == [MEGAN]


def test_users_search_and_narrows_or_widens_and_parentheses_group(http, m365, app_headers):
    assert len(_found(http, m365, app_headers, '"jobTitle:account executive"')) == 25
    assert _found(http, m365, app_headers, '"jobTitle:account" AND "displayName:emily"') == ["user05@contoso.test"]
    assert sorted(_found(http, m365, app_headers, '"displayName:megan" OR "displayName:alex"')) == ["alex@contoso.test", MEGAN]
    grouped = '"jobTitle:account" AND ("displayName:emily" OR "displayName:felix")'
    assert sorted(_found(http, m365, app_headers, grouped)) == ["user05@contoso.test", "user06@contoso.test"]
    # [U] Graph's page states no precedence: the emulator reads a chain left to right, (megan OR emily) AND account.
    assert _found(http, m365, app_headers, '"displayName:megan" OR "displayName:emily" AND "jobTitle:account"') == [
        "user05@contoso.test"]


def test_users_search_needs_consistency_level_and_refuses_a_malformed_search(http, m365, app_headers):
    refused = http.get(f"{m365.graph_url}/users", headers=app_headers, params={"$search": '"displayName:megan" OR "mail:megan"'})
    assert refused.status_code == 400
    assert refused.json()["error"] == {**refused.json()["error"], "code": "Request_UnsupportedQuery", "message": (
        "Request with $search query parameter only works through MSGraph with a special request header: "
        "'ConsistencyLevel: eventual'")}
    for malformed in ('displayName:megan', '"displayName:megan" or "mail:megan"', '"displayName:megan" "mail:megan"',
                      '"displayName:megan', '"megan"', '"displayName:"', '("displayName:megan"', '"displayName:megan" OR',
                      '"noSuchProperty:megan"', ''):
        response = http.get(f"{m365.graph_url}/users", headers={**app_headers, **EVENTUAL}, params={"$search": malformed})
        assert response.status_code == 400, malformed
        error = response.json()["error"]
        assert error["code"] == "Request_UnsupportedQuery" and "$search" in error["message"], (malformed, error)


def test_users_search_counts_pages_orders_and_ands_with_filter(http, m365, app_headers):
    one = _search(http, m365, app_headers, '"displayName:megan bowen" OR "mail:megan bowen"', **{"$count": "true"})
    assert one["@odata.count"] == 1 and [u["displayName"] for u in one["value"]] == ["Megan Bowen"]
    accounts = '"jobTitle:account"'
    first = _search(http, m365, app_headers, accounts, **{"$count": "true", "$top": "10", "$orderby": "displayName"})
    assert first["@odata.count"] == 25 and len(first["value"]) == 10
    names = [u["displayName"] for u in first["value"]]
    link = first["@odata.nextLink"]
    while link:
        page = http.get(link, headers={**app_headers, **EVENTUAL}).json()
        names += [u["displayName"] for u in page["value"]]
        link = page.get("@odata.nextLink")
    assert len(names) == 25 and names == sorted(names) and "Megan Bowen" not in names
    # $filter is ANDed with the whole $search.
    narrowed = _search(http, m365, app_headers, f'{accounts} OR "displayName:megan"',
                       **{"$filter": "startswith(mail,'user0')", "$count": "true"})
    assert narrowed["@odata.count"] == 9
    counted = http.get(f"{m365.graph_url}/users/$count", headers={**app_headers, **EVENTUAL},
                       params={"$search": '"displayName:megan" OR "displayName:alex"'})
    assert counted.status_code == 200 and counted.text == "2"

def test_event_crud_change_key_transaction_id_and_timezones(http, m365, app_headers, calendar):
    base = f"{m365.graph_url}/users/{MEGAN}/calendars/{calendar['id']}/events"
    created = http.post(base, headers=app_headers, json=_event(zone="Pacific Standard Time", transactionId="tx-1"))
    assert created.status_code == 201
    event = created.json()
    assert event["start"] == {"dateTime": "2030-03-01T18:00:00.0000000", "timeZone": "UTC"}
    assert event["type"] == "singleInstance" and event["@odata.etag"] == f'W/"{event["changeKey"]}"'
    again = http.post(base, headers=app_headers, json=_event(zone="Pacific Standard Time", transactionId="tx-1")).json()
    assert again["id"] == event["id"]
    listed = http.get(base, headers=app_headers).json()["value"]
    assert [e["id"] for e in listed] == [event["id"]]
    paris = http.get(f"{base}/{event['id']}", headers={**app_headers, "Prefer": 'outlook.timezone="Europe/Paris"'})
    assert paris.json()["start"]["dateTime"] == "2030-03-01T19:00:00.0000000"
    assert paris.headers["Preference-Applied"] == 'outlook.timezone="Europe/Paris"'
    patched = http.patch(f"{base}/{event['id']}", headers=app_headers, json={"subject": "Renamed", "showAs": "tentative"}).json()
    assert patched["subject"] == "Renamed" and patched["changeKey"] != event["changeKey"]
    assert patched["lastModifiedDateTime"] >= event["lastModifiedDateTime"]
    bad = http.patch(f"{base}/{event['id']}", headers=app_headers, json={"transactionId": "other"})
    assert bad.status_code == 400
    all_day_bad = http.post(base, headers=app_headers, json=_event(start="10:00", end="11:00", isAllDay=True))
    assert all_day_bad.status_code == 400
    all_day = http.post(base, headers=app_headers, json={**_event(start="00:00", end="00:00"), "isAllDay": True,
                                                          "end": {"dateTime": "2030-03-02T00:00:00", "timeZone": "UTC"}})
    assert all_day.status_code == 201 and all_day.json()["isAllDay"] is True
    assert http.delete(f"{base}/{event['id']}", headers=app_headers).status_code == 204
    assert http.get(f"{base}/{event['id']}", headers=app_headers).json()["error"]["code"] == "ErrorItemNotFound"


def test_extended_properties_only_on_expand_and_filterable(http, m365, app_headers, calendar):
    prop = "String {66f5a359-4659-4830-9070-00040ec6ac6e} Name CrmId"
    base = f"{m365.graph_url}/users/{MEGAN}/calendars/{calendar['id']}/events"
    created = http.post(base, headers=app_headers, json=_event(singleValueExtendedProperties=[{"id": prop, "value": "zcrm_1"}])).json()
    assert "singleValueExtendedProperties" not in created
    expanded = http.get(f"{base}/{created['id']}", headers=app_headers,
                        params={"$expand": f"singleValueExtendedProperties($filter=id eq '{prop}')"}).json()
    assert expanded["singleValueExtendedProperties"] == [{"id": prop, "value": "zcrm_1"}]
    found = http.get(base, headers=app_headers, params={
        "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{prop}' and ep/value eq 'ZCRM_1')"}).json()["value"]
    assert [e["id"] for e in found] == [created["id"]]


def test_calendar_view_delta_round_with_paging_removed_and_gone(http, m365, app_headers, calendar):
    base = f"{m365.graph_url}/users/{MEGAN}/calendars/{calendar['id']}"
    ids = [http.post(f"{base}/events", headers=app_headers, json=_event(subject=f"E{i}", day=f"2030-03-{i + 1:02d}")).json()["id"]
           for i in range(5)]
    series = http.post(f"{base}/events", headers=app_headers, json=_event(subject="Weekly", day="2030-04-01", recurrence={
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
        "range": {"type": "numbered", "startDate": "2030-04-01", "numberOfOccurrences": 3}})).json()
    assert series["type"] == "seriesMaster"
    for refused in ("$select=subject", "$filter=subject eq 'x'", "$expand=attachments"):
        assert http.get(f"{base}/calendarView/delta?{WINDOW}&{refused}", headers=app_headers).status_code == 400
    assert http.get(f"{base}/calendarView/delta", headers=app_headers).status_code == 400
    page = http.get(f"{base}/calendarView/delta?{WINDOW}", headers={**app_headers, "Prefer": "odata.maxpagesize=3"}).json()
    seen = {}
    while True:
        seen.update({e["id"]: e for e in page["value"]})
        if "@odata.deltaLink" in page:
            break
        page = http.get(page["@odata.nextLink"], headers=app_headers).json()
    delta_link = page["@odata.deltaLink"]
    assert set(ids) <= set(seen) and len(seen) == 8
    assert {e["type"] for e in seen.values() if e["subject"] == "Weekly"} == {"occurrence"}
    http.patch(f"{base}/events/{ids[0]}", headers=app_headers, json={"subject": "Changed"})
    # A person deletes one in Outlook: goes through the same store.
    assert http.delete(f"{m365.base_url}/__emulator/mailbox/{MEGAN}/events/{ids[1]}").status_code == 204
    changes = http.get(delta_link, headers=app_headers).json()
    by_id = {e["id"]: e for e in changes["value"]}
    assert by_id[ids[0]]["subject"] == "Changed"
    assert by_id[ids[1]]["@removed"] == {"reason": "deleted"}
    assert len(by_id) == 2 and "@odata.deltaLink" in changes
    http.post(f"{m365.base_url}/__emulator/delta/expire", json={"upn": MEGAN})
    gone = http.get(changes["@odata.deltaLink"], headers=app_headers)
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "syncStateNotFound"
    assert http.delete(f"{base}", headers=app_headers).status_code == 204
    for path in ("", "/events", f"/events/{ids[2]}", f"/calendarView/delta?{WINDOW}"):
        response = http.get(f"{base}{path}", headers=app_headers)
        assert response.status_code == 404 and response.json()["error"]["code"] == "ErrorItemNotFound", path
    names = [c["name"] for c in http.get(f"{m365.graph_url}/users/{MEGAN}/calendars", headers=app_headers).json()["value"]]
    assert names == ["Calendar"]


def test_default_calendar_view_and_delta(http, m365, app_headers):
    view = http.get(f"{m365.graph_url}/users/{MEGAN}/calendarView?startDateTime=2020-01-01T00:00:00Z&endDateTime=2040-01-01T00:00:00Z",
                    headers=app_headers).json()["value"]
    assert len(view) == 2
    delta = http.get(f"{m365.graph_url}/users/{MEGAN}/calendarView/delta?startDateTime=2020-01-01T00:00:00Z"
                     "&endDateTime=2040-01-01T00:00:00Z", headers=app_headers).json()
    assert len(delta["value"]) == 2 and "@odata.deltaLink" in delta


def test_events_listing_filters_on_start_and_end_times(http, m365, app_headers, calendar):
    """[D] GET .../calendars/{id}/events?$filter=start/dateTime ge '...' (an events listing filters
    on its times; a calendarView does not): how the sync finds events outside its delta window."""
    base = f"{m365.graph_url}/users/{MEGAN}/calendars/{calendar['id']}/events"
    for subject, day in (("Early", "2029-01-10"), ("Inside", "2030-06-01"), ("Far", "2035-02-01")):
        assert http.post(base, headers=app_headers, json=_event(subject=subject, day=day)).status_code == 201

    def listed(clause: str) -> list[str]:
        response = http.get(f"{base}?$filter={clause}", headers=app_headers)
        assert response.status_code == 200, response.text
        return sorted(e["subject"] for e in response.json()["value"])

    assert listed("start/dateTime ge '2031-01-01T00:00:00Z'") == ["Far"]
    assert listed("end/dateTime le '2030-01-01T00:00:00'") == ["Early"]
    assert listed("start/dateTime gt '2029-01-10T10:00:00Z'") == ["Far", "Inside"]
    assert http.get(f"{base}?$filter=start/dateTime ge 'soon'", headers=app_headers).status_code == 400
