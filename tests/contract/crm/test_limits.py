"""Limits per edition (concurrency, daily credits), injected latency and faults, request counters."""

from __future__ import annotations

import threading

import requests

from .conftest import FABRICE, TINA, Api, control, wait_until


def org_id(crm, name: str) -> str:
    return next(o["id"] for o in control(crm, "/snapshot", method="GET")["orgs"] if o["company_name"] == name)


def parallel(api: Api, n: int) -> list[requests.Response]:
    results: list[requests.Response] = []
    lock = threading.Lock()

    def call() -> None:
        r = api.get("/org")
        with lock:
            results.append(r)
    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrency_limit_of_the_free_edition_gives_429(crm, api_for) -> None:
    tina = api_for(TINA)
    tiny = org_id(crm, "Tiny Bakery")
    control(crm, "/faults", {"orgs": {tiny: {"latency_ms": 400}}}, method="PUT")
    results = parallel(tina, 8)  # free edition: five at a time
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(200) == 5 and statuses.count(429) == 3
    throttled = next(r for r in results if r.status_code == 429).json()
    assert throttled["code"] == "TOO_MANY_REQUESTS" and throttled["status"] == "error"
    counters = control(crm, "/counters", method="GET")
    assert counters["orgs"][tiny]["concurrent_peak"] == 5 and counters["orgs"][tiny]["throttled_429"] == 3
    assert counters["orgs"][tiny]["total"] == 8 and counters["totals"]["throttled_429"] == 3


def test_daily_credits(crm, fabrice: Api, api_for) -> None:
    fab = org_id(crm, "Fabrikam Sales")
    control(crm, "/faults", {"orgs": {fab: {"daily_credits": 3}}}, method="PUT")
    # Two credits: a 20-record insert costs one per ten records.
    assert fabrice.post("/Contacts", json={"data": [{"Last_Name": f"C{i}"} for i in range(20)]}).status_code == 201
    assert fabrice.get("/org").status_code == 200
    r = fabrice.get("/org")
    assert r.status_code == 429 and r.json()["code"] == "TOO_MANY_REQUESTS"
    control(crm, "/clock", {"advance_seconds": 24 * 3600})
    assert api_for(FABRICE).get("/org").status_code == 200  # the rolling window moved on
    assert control(crm, "/counters", method="GET")["orgs"][fab]["credits_used"] == 4


def test_injected_faults_and_reset(crm, fabrice: Api) -> None:
    control(crm, "/faults", {"fail_next": [503, 500, 429]}, method="PUT")
    assert [fabrice.get("/org").status_code for _ in range(4)] == [503, 500, 429, 200]
    control(crm, "/faults", {"rate_500": 1.0}, method="PUT")
    r = fabrice.get("/org")
    assert r.status_code == 500 and r.json() == {"code": "INTERNAL_ERROR", "details": {}, "message": "Internal Server Error",
                                                 "status": "error"}
    assert control(crm, "/faults", method="GET")["rate_500"] == 1.0
    control(crm, "/faults", {"rate_500": 0}, method="PUT")
    assert fabrice.get("/org").status_code == 200
    control(crm, "/counters/reset")
    assert control(crm, "/counters", method="GET")["totals"]["total"] == 0
    # Control calls are not counted.
    control(crm, "/snapshot", method="GET")
    assert control(crm, "/counters", method="GET")["totals"]["total"] == 0


def test_a_held_write_acts_only_once_released(crm, fabrice: Api) -> None:
    """``hold_next`` stops the org's next call of that kind after it is admitted and before
    it acts, so a test can change the record in between (a race made deterministic)."""
    fab = org_id(crm, "Fabrikam Sales")
    rid = fabrice.post("/Contacts", json={"data": [{"Last_Name": "Held"}]}).json()["data"][0]["details"]["id"]
    control(crm, "/faults", {"orgs": {fab: {"hold_next": "update"}}}, method="PUT")
    assert fabrice.get(f"/Contacts/{rid}").status_code == 200  # a read is not the operation held
    answers: list[requests.Response] = []
    writer = threading.Thread(target=lambda: answers.append(fabrice.put(f"/Contacts/{rid}", json={"data": [{"Title": "Late"}]})))
    writer.start()
    wait_until(lambda: control(crm, "/faults", method="GET")["held"] == 1)
    assert not answers
    assert fabrice.get(f"/Contacts/{rid}").json()["data"][0].get("Title") is None  # nothing written yet
    assert control(crm, "/faults/release")["released"] == 1
    writer.join(10)
    assert answers[0].status_code == 200 and fabrice.get(f"/Contacts/{rid}").json()["data"][0]["Title"] == "Late"
    assert "hold_next" not in control(crm, "/faults", method="GET")["orgs"][fab]  # once only
    assert fabrice.put(f"/Contacts/{rid}", json={"data": [{"Title": "Now"}]}).status_code == 200
