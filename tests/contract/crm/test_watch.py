"""Notifications: watch channels and their callbacks for API writes and people's actions."""

from __future__ import annotations

from .conftest import FABRICE, Api, control, wait_until
from .openapi import validate

WATCH = "/crm/v8/actions/watch"


def enable(api: Api, url: str, channel_id: int = 1000000068001, events: list[str] | None = None, **extra) -> dict:
    item = {"channel_id": channel_id, "events": events or ["Contacts.all", "Events.all"],
            "notify_url": f"{url}/api/webhooks/crm?tenant=abc", "token": "TOKEN_FOR_VERIFICATION", **extra}
    r = api.post("/actions/watch", json={"watch": [item]})
    assert r.status_code == 201, r.text
    validate("post", WATCH, 201, r.json())
    return r.json()


def of(callbacks: list[dict], operation: str, module: str = "Contacts") -> list[dict]:
    return [c for c in callbacks if c["operation"] == operation and c["module"] == module]


def test_enable_list_and_shapes(fabrice: Api, receiver) -> None:
    body = enable(fabrice, receiver.url)
    item = body["watch"][0]
    assert item["code"] == "SUCCESS" and item["message"] == "Successfully subscribed for actions-watch of the given module"
    assert [e["resource_name"] for e in item["details"]["events"]] == ["Contacts", "Events"]
    assert item["details"]["events"][0]["channel_id"] == "1000000068001"
    r = fabrice.get("/actions/watch")
    validate("get", WATCH, 200, r.json())
    channel = r.json()["watch"][0]
    assert channel["notify_url"].endswith("?tenant=abc") and channel["token"] == "TOKEN_FOR_VERIFICATION"
    assert fabrice.get("/actions/watch", params={"module": "Deals"}).status_code == 204


def test_channel_expiry_default_and_cap(crm, fabrice: Api, receiver) -> None:
    expiry = enable(fabrice, receiver.url)["watch"][0]["details"]["events"][0]["channel_expiry"]
    too_far = enable(fabrice, receiver.url, channel_id=2, channel_expiry="2099-01-01T00:00:00+00:00")
    six_days = control(crm, "/clock", method="GET")["now"] + 6 * 86400
    from datetime import UTC, datetime
    wanted = datetime.fromtimestamp(six_days, UTC).isoformat(timespec="seconds")
    kept = enable(fabrice, receiver.url, channel_id=3, channel_expiry=wanted)
    snapshot = control(crm, "/snapshot", method="GET")
    channels = {str(c["channel_id"]): c for c in snapshot["orgs"][0]["watch_channels"]}
    assert channels["1000000068001"]["expiry"] == expiry
    assert too_far["watch"][0]["details"]["events"][0]["channel_expiry"] == expiry  # over a week: the default hour
    assert datetime.fromisoformat(kept["watch"][0]["details"]["events"][0]["channel_expiry"]).timestamp() == int(six_days)


def test_enable_errors(fabrice: Api, receiver) -> None:
    items = [{"channel_id": 1, "events": ["Contacts.all"]},
             {"channel_id": 2, "events": ["Deals.all"], "notify_url": receiver.url},
             {"channel_id": 3, "events": ["Contacts.all"], "notify_url": receiver.url, "token": "x" * 51},
             {"channel_id": 4, "events": ["Contacts.all"], "notify_url": receiver.url, "channel_expiry": "yesterday"}]
    r = fabrice.post("/actions/watch", json={"watch": items})
    assert r.status_code == 400
    assert [i["code"] for i in r.json()["watch"]] == ["MANDATORY_NOT_FOUND", "INVALID_DATA", "INVALID_DATA", "INVALID_DATA"]
    assert r.json()["watch"][0]["details"] == {"api_name": "notify_url", "json_path": "$.watch[0].notify_url"}
    assert r.json()["watch"][2]["details"]["api_name"] == "token"


def test_callbacks_for_api_insert_update_delete(fabrice: Api, receiver) -> None:
    enable(fabrice, receiver.url, return_affected_field_values=True)
    rid = fabrice.post("/Contacts", json={"data": [{"Last_Name": "Watch"}]}).json()["data"][0]["details"]["id"]
    got = receiver.wait_for(lambda cs: of(cs, "insert"))
    insert = of(got, "insert")[0]
    assert insert["ids"] == [rid] and insert["channel_id"] == "1000000068001"
    assert insert["token"] == "TOKEN_FOR_VERIFICATION" and insert["query_params"] == {"tenant": "abc"}
    assert insert["resource_uri"].endswith("/us/api/crm/v8/Contacts") and isinstance(insert["server_time"], int)
    fabrice.put(f"/Contacts/{rid}", json={"data": [{"Phone": "555"}]})
    update = of(receiver.wait_for(lambda cs: of(cs, "update")), "update")[0]
    assert update["ids"] == [rid] and update["affected_fields"] == [{rid: ["Phone"]}]
    assert update["affected_values"] == [{"record_id": rid, "values": {"Phone": "555"}}]
    fabrice.delete(f"/Contacts/{rid}")
    assert of(receiver.wait_for(lambda cs: of(cs, "delete")), "delete")[0]["ids"] == [rid]


def test_callbacks_for_peoples_actions(crm, fabrice: Api, receiver) -> None:
    enable(fabrice, receiver.url)
    created = control(crm, "/actions/create", {"actor": FABRICE, "module": "Events", "record": {
        "Event_Title": "By hand", "Start_DateTime": "2026-12-01T10:00:00-05:00", "End_DateTime": "2026-12-01T11:00:00-05:00"}})
    event_id = created["data"][0]["details"]["id"]
    imported = control(crm, "/actions/import", {"actor": FABRICE, "module": "Contacts",
                                                "records": [{"Last_Name": f"Imported {i}"} for i in range(3)]})
    ids = [d["details"]["id"] for d in imported["data"]]
    got = receiver.wait_for(lambda cs: of(cs, "insert", "Events") and of(cs, "insert"))
    assert of(got, "insert", "Events")[0]["ids"] == [event_id]
    assert of(got, "insert")[0]["ids"] == ids  # one batched callback for the import
    control(crm, "/actions/mass-update", {"actor": FABRICE, "module": "Contacts", "ids": ids[:2],
                                          "values": {"Lead_Source": "Trade show"}})
    update = of(receiver.wait_for(lambda cs: of(cs, "update")), "update")[0]
    assert update["ids"] == ids[:2] and update["affected_fields"] == [{i: ["Lead_Source"]} for i in ids[:2]]
    records = {d["id"]: d for d in fabrice.get("/Contacts", params={"fields": "Data_Source,Lead_Source"}).json()["data"]}
    assert [records[i]["Data_Source"] for i in ids] == ["Mass Update", "Mass Update", "Import"]
    assert fabrice.get(f"/Events/{event_id}").json()["data"][0]["Data_Source"] == "Manual"
    control(crm, "/actions/delete", {"actor": FABRICE, "module": "Contacts", "ids": ids[2:]})
    assert of(receiver.wait_for(lambda cs: of(cs, "delete")), "delete")[0]["ids"] == ids[2:]


def test_event_filters_patch_put_and_disable(fabrice: Api, receiver) -> None:
    enable(fabrice, receiver.url, events=["Contacts.create"])
    r = fabrice.patch("/actions/watch", json={"watch": [{"channel_id": 1000000068001, "events": ["Events.edit"]}]})
    assert r.status_code == 200
    validate("patch", WATCH, 200, r.json())
    assert fabrice.get("/actions/watch").json()["watch"][0]["events"] == ["Events.edit"]
    r = fabrice.patch("/actions/watch", json={"watch": [{"channel_id": 1000000068001, "events": ["Events.edit"],
                                                         "_delete_events": True}]})
    assert r.json()["watch"][0]["message"] == "Successfully removed the subscribe details"
    assert fabrice.get("/actions/watch").status_code == 204
    enable(fabrice, receiver.url, channel_id=7, events=["Contacts.delete"])
    r = fabrice.put("/actions/watch", json={"watch": [{"channel_id": 7, "events": ["Contacts.edit"],
                                                       "notify_url": f"{receiver.url}/other"}]})
    validate("put", WATCH, 200, r.json())
    channel = fabrice.get("/actions/watch").json()["watch"][0]
    assert channel["token"] is None and channel["notify_url"].endswith("/other")  # PUT replaced it
    fabrice.post("/Contacts", json={"data": [{"Last_Name": "Not watched"}]})
    assert fabrice.patch("/actions/watch", json={"watch": [{"channel_id": 99}]}).status_code == 400
    r = fabrice.delete("/actions/watch", params={"channel_ids": "7,99"})
    assert r.status_code == 207
    assert r.json()["watch"][0]["message"] == "Successfully un-subscribed from actions-watch"
    assert fabrice.delete("/actions/watch").json()["code"] == "REQUIRED_PARAM_MISSING"
    assert not of(receiver.callbacks(), "insert")


def test_expired_channels_stop(crm, fabrice: Api, api_for, receiver) -> None:
    enable(fabrice, receiver.url)
    fabrice.post("/Contacts", json={"data": [{"Last_Name": "Before expiry"}]})
    receiver.wait_for(lambda cs: of(cs, "insert"))
    wait_until(lambda: control(crm, "/deliveries", method="GET")["deliveries"])
    control(crm, "/clock", {"advance_seconds": 3601})
    fabrice = api_for(FABRICE)
    fabrice.post("/Contacts", json={"data": [{"Last_Name": "After expiry"}]})
    control(crm, "/actions/create", {"actor": FABRICE, "module": "Contacts", "record": {"Last_Name": "Also after"}})
    assert fabrice.get("/actions/watch").status_code == 204
    # Delivery is asynchronous: the deliveries log shows nothing else was even attempted.
    deliveries = control(crm, "/deliveries", method="GET")["deliveries"]
    assert len(deliveries) == 1 and len(of(receiver.callbacks(), "insert")) == 1


def test_delivery_is_retried_and_never_blocks_the_api_call(crm, fabrice: Api, make_receiver) -> None:
    import time
    flaky = make_receiver(fail_first=1)
    enable(fabrice, flaky.url)
    fabrice.post("/Contacts", json={"data": [{"Last_Name": "Retried"}]})
    assert of(flaky.wait_for(lambda cs: of(cs, "insert")), "insert")[0]["operation"] == "insert"
    delivery = wait_until(lambda: control(crm, "/deliveries", method="GET")["deliveries"])[0]
    assert delivery["status"] == 200 and delivery["attempts"] == 2
    slow = make_receiver(delay=2)
    enable(fabrice, slow.url, channel_id=2)
    started = time.monotonic()
    assert fabrice.post("/Contacts", json={"data": [{"Last_Name": "Slow receiver"}]}).status_code == 201
    assert time.monotonic() - started < 1
    slow.wait_for(lambda cs: of(cs, "insert"))
