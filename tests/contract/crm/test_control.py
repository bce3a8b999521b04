"""Control surface, entry point and seed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from .conftest import FABRICE, Api, control

ROOT = Path(__file__).resolve().parents[3]


def test_index_and_snapshot(crm) -> None:
    index = requests.get(f"{crm.control_url}/", timeout=10)
    assert index.status_code == 200 and "/__emulator/snapshot" in index.text
    snap = control(crm, "/snapshot", method="GET")
    assert {o["company_name"]: (o["edition"], o["dc"]) for o in snap["orgs"]} == {
        "Fabrikam Sales": ("enterprise", "us"), "Sam Carter Consulting": ("professional", "eu"), "Tiny Bakery": ("free", "us")}
    record = snap["orgs"][0]["records"]["Contacts"][0]
    assert record["Owner"]["email"] == FABRICE and record["Data_Source"]
    assert snap["clients"][0]["client_id"] == "1000.DEMOLOCALCLIENT0001" and "client_secret" not in snap["clients"][0]
    assert all("password" not in a for a in snap["accounts"])


def test_seed_replaces_state_and_reset_restores_the_start_seed(crm) -> None:
    world = {"clients": [], "orgs": [{"company_name": "Solo", "edition": "standard",
                                      "users": [{"email": "solo@example.com", "last_name": "Solo", "profile": "Administrator",
                                                 "password": "p", "super_admin": True}]}]}
    control(crm, "/seed", world)
    assert [o["company_name"] for o in control(crm, "/snapshot", method="GET")["orgs"]] == ["Solo"]
    bad = requests.post(f"{crm.control_url}/seed", json={"orgs": [{"company_name": "x", "edition": "gold"}]}, timeout=10)
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_DATA"
    control(crm, "/seed", json.loads((ROOT / "emulators/crm/seed/demo.json").read_text()))
    control(crm, "/reset")
    assert len(control(crm, "/snapshot", method="GET")["orgs"]) == 3


def test_generate_is_fast_enough_for_benchmarks(crm, fabrice: Api) -> None:
    out = control(crm, "/actions/generate", {"actor": FABRICE, "module": "Events", "count": 6000})
    assert out["created"] == 6000
    r = fabrice.get("/Events", params={"fields": "Event_Title,Start_DateTime", "per_page": 200})
    assert r.json()["info"]["more_records"] is True


def test_module_entry_point_starts_and_stops_cleanly() -> None:
    process = subprocess.Popen([sys.executable, "-m", "emulators.crm", "--host", "127.0.0.1", "--port", "0"],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("crm emulator ready on http://127.0.0.1:")
        base = line.rsplit(" ", 1)[1]
        assert requests.get(f"{base}/__emulator/counters", timeout=10).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_the_setup_menu_leads_to_the_configured_pages_and_survives_a_reset(crm, api_for) -> None:
    items = [{"section": "Users & Control", "label": "Users", "url": "http://127.0.0.1:9/users"},
             {"section": "Marketplace", "label": "Microsoft", "url": "http://127.0.0.1:9/ms?a=1&b=<x>"}]
    assert requests.put(f"{crm.control_url}/setup-menu", json={"items": items}, timeout=10).json() == {"items": items}
    for bad in ({"items": [{"section": "S", "label": "L"}]}, {"items": [{"section": "S", "label": "L", "url": "javascript:alert(1)"}]}, {}):
        r = requests.put(f"{crm.control_url}/setup-menu", json=bad, timeout=10)
        assert r.status_code == 400 and r.json()["code"] == "INVALID_DATA"
    control(crm, "/reset")
    assert control(crm, "/setup-menu", method="GET") == {"items": items}
    session = requests.Session()
    session.post(f"{crm.base_url}/us/accounts/signin", data={"email": FABRICE, "password": "Crm-Demo-1"}, timeout=10)
    home = session.get(f"{crm.base_url}/us/crm/home", timeout=10).text
    assert "<summary>Setup</summary>" in home and "<h2>Users &amp; Control</h2>" in home
    assert "href='http://127.0.0.1:9/ms?a=1&amp;b=&lt;x&gt;'" in home  # escaped, never markup
