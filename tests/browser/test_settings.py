"""Settings > Marketplace > Microsoft in a real browser (SPEC R3.1, R4.1, R4.2; issues 7 and 8):
the contacts Configuration window with a refused and a saved mapping and its preview,
enabling contacts and calendar sync while the progress fills up, and a mass change that asks
before deleting."""

from __future__ import annotations

import time
from typing import Any

import pytest

from shared.accounts.models import MemberIdentity
from shared.sync.contacts import DEFAULT_CONTACT_MAPPING
from shared.sync.profiles import SyncKind, SyncState
from shared.wiring import get_services
from tests.browser.page_audit import audit
from tests.integration.sync_setup import (
    crm_control,
    crm_records,
    m365_user,
    outlook_items,
    profile,
    wait_until,
)
from tests.product_stack import CONTOSO, CONTOSO_PASSWORD, ProductStack, microsoft_sign_in

pytestmark = pytest.mark.browser
ADELE = "adele@contoso.test"
FOLDER = "Zoho CRM Contacts"
CALENDAR = "Zoho CRM"
SYNC_TIMEOUT_MS = 90_000


def expect() -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def playwright_error() -> type[Exception]:
    from playwright.sync_api import Error

    return Error


def install_and_enter(product: ProductStack, page: Any) -> MemberIdentity:
    """Adele installs the app from the launcher and lands in her new CRM org (R1)."""
    page.goto(f"{product.url}/api/marketplace/launch")
    microsoft_sign_in(page, ADELE, CONTOSO_PASSWORD)
    page.get_by_role("button", name="Accept").click()
    page.get_by_label("I accept the terms and conditions of Zoho CRM.").check()
    page.get_by_role("button", name="Continue").click()
    expect()(page.get_by_test_id("crm-user")).to_have_text("Adele Vance")
    member = get_services().accounts.member_of(CONTOSO, m365_user(product, ADELE)["id"])
    assert member is not None
    return member


def create_contact(product: ProductStack, **fields: str) -> str:
    created = crm_control(product, "actions/create", {"actor": ADELE, "module": "Contacts", "record": fields})
    return str(created["data"][0]["details"]["id"])


def open_settings(product: ProductStack, page: Any) -> None:
    page.goto(f"{product.url}/api/settings/microsoft")
    expect()(page.get_by_role("heading", name="Microsoft", exact=True)).to_be_visible()


def problems(page: Any) -> Any:
    return page.get_by_test_id("mapping-problems")


def test_configuration_window_refuses_what_cannot_work_and_saves_a_changed_pair(
    product: ProductStack, person: Any
) -> None:
    member = install_and_enter(product, person)
    create_contact(product, First_Name="Ann", Last_Name="Own", Department="Sales", Date_of_Birth="1990-02-03")
    open_settings(product, person)
    person.get_by_test_id("contacts-configuration").click()
    expect()(person.get_by_role("heading", name="Configuration: contact fields")).to_be_visible()
    # The window opens on the default mapping and a preview of Adele's own contact.
    department_row = 1 + next(i for i, p in enumerate(DEFAULT_CONTACT_MAPPING.pairs) if p.crm_field == "Department")
    birthday_row = 1 + next(i for i, p in enumerate(DEFAULT_CONTACT_MAPPING.pairs) if p.crm_field == "Date_of_Birth")
    expect()(person.get_by_label(f"Outlook field, row {department_row}")).to_have_value("department")
    expect()(person.locator("#preview-source")).to_contain_text("Ann Own")

    # Last_Name left out: refused, naming it; nothing stored.
    person.get_by_role("button", name="Remove row 2").click()
    person.get_by_role("button", name="Save").click()
    expect()(problems(person)).to_contain_text("Last_Name must be mapped")
    expect()(person.get_by_test_id("mapping-notice")).to_contain_text("was not saved")
    assert get_services().sync.contact_mapping(member) == DEFAULT_CONTACT_MAPPING

    # Back to the default, then Department to officeLocation and a date to a phone: refused.
    person.get_by_role("button", name="Reset to default").click()
    expect()(person.get_by_label(f"CRM field, row {len(DEFAULT_CONTACT_MAPPING.pairs)}")).to_have_value(
        DEFAULT_CONTACT_MAPPING.pairs[-1].crm_field)
    person.get_by_label(f"Outlook field, row {department_row}").select_option("officeLocation")
    person.get_by_label(f"Outlook field, row {birthday_row}").select_option("homePhones[1]")
    person.get_by_role("button", name="Save").click()
    expect()(problems(person)).to_contain_text("Date_of_Birth (date) cannot be mapped to homePhones[1] (phone)")
    assert get_services().sync.contact_mapping(member) == DEFAULT_CONTACT_MAPPING

    # The valid change is saved; only its pair changed; the preview shows it on the real contact.
    person.get_by_label(f"Outlook field, row {birthday_row}").select_option("birthday")
    person.get_by_role("button", name="Save").click()
    expect()(person.get_by_test_id("mapping-notice")).to_contain_text("Saved. Fields changed: 2")
    expect()(problems(person)).to_be_empty()
    saved = get_services().sync.contact_mapping(member)
    assert [(p.crm_field, p.outlook_field) for p in saved.pairs if p.crm_field == "Department"] == [
        ("Department", "officeLocation")]
    preview = person.get_by_test_id("mapping-preview")
    expect()(preview.get_by_role("row", name="officeLocation Sales")).to_be_visible()
    expect()(preview.get_by_role("row", name="birthday 1990-02-03")).to_be_visible()

    # The window reads the saved mapping when opened again.
    person.reload()
    expect()(person.get_by_label(f"Outlook field, row {department_row}")).to_have_value("officeLocation")


def test_enabling_contacts_sync_fills_the_progress_bar(product: ProductStack, person: Any) -> None:
    member = install_and_enter(product, person)
    for first in ("Ann", "Bob", "Cid"):
        create_contact(product, First_Name=first, Last_Name="Own", Email=f"{first.lower()}@clients.example")
    crm_control(product, "actions/import", {"actor": ADELE, "module": "Contacts",
                                           "records": [{"First_Name": "Imp", "Last_Name": "Orted"}]})
    open_settings(product, person)
    contacts = person.get_by_test_id("sync-contacts")
    expect()(contacts.get_by_test_id("contacts-state")).to_have_text("Not enabled")
    contacts.get_by_role("button", name="Enable Contacts").click()
    # The page refreshes itself: no reload by the test.
    expect()(contacts.get_by_test_id("contacts-state")).to_have_text("In sync", timeout=SYNC_TIMEOUT_MS)
    expect()(contacts.get_by_test_id("contacts-counts")).to_have_text("3 / 3")
    expect()(contacts.locator("progress")).to_have_attribute("value", "3")
    expect()(contacts.get_by_test_id("contacts-synced")).to_have_text("3")
    expect()(contacts.get_by_test_id("contacts-last-sync")).not_to_have_text("—")
    assert len(outlook_items(product, ADELE, FOLDER)) == 3
    assert profile(member, SyncKind.CONTACTS).state is SyncState.ACTIVE


def test_enabling_calendar_sync_fills_the_progress_bar(product: ProductStack, person: Any) -> None:
    install_and_enter(product, person)
    crm_control(product, "actions/generate", {"actor": ADELE, "module": "Events", "count": 12})
    open_settings(product, person)
    calendar = person.get_by_test_id("sync-calendar")
    calendar.get_by_role("button", name="Enable Calendar").click()
    expect()(calendar.get_by_test_id("calendar-state")).to_have_text("In sync", timeout=SYNC_TIMEOUT_MS)
    expect()(calendar.get_by_test_id("calendar-counts")).to_have_text("12 / 12")
    expect()(calendar.get_by_test_id("calendar-synced")).to_have_text("12")
    assert len(outlook_items(product, ADELE, CALENDAR)) == 12


def test_the_progress_bar_moves_with_every_page_while_the_initial_sync_runs(product: ProductStack, person: Any) -> None:
    """A member watching a long initial sync sees it advance page by page, never back, with
    the total known from the start: the bar counts the pages committed so far, not the
    profile a step writes when its slice ends (it may last two minutes)."""
    install_and_enter(product, person)
    crm_control(product, "actions/generate", {"actor": ADELE, "module": "Events", "count": 400})
    open_settings(product, person)
    # Graph answers slowly: the 400 events (5 pages, 20 $batches of 20 events, each answered in 1.6 s) take about 10 s.
    product.m365_control("PUT", "faults", json={"latency_ms": 80})
    calendar = person.get_by_test_id("sync-calendar")
    calendar.get_by_role("button", name="Enable Calendar").click()
    seen: list[tuple[int, int]] = []
    audited = False
    deadline = time.monotonic() + SYNC_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        try:
            state = calendar.get_by_test_id("calendar-state").text_content(timeout=5_000)
            counts = calendar.get_by_test_id("calendar-counts").all_text_contents()
        except playwright_error():
            continue  # the page reloads itself when the state changes: read it again
        shown = counts[0].split(" / ") if counts else []
        if len(shown) == 2 and shown[0].isdigit():
            seen.append((int(shown[0]), int(shown[1])))
            if not audited and 0 < seen[-1][0] < 400:
                try:  # the page as the member meets it mid-sync passes the same audit as every other
                    audited = bool(audit(person, "microsoft-initial", "en") is not None)
                except playwright_error():
                    pass  # reloaded meanwhile: again at the next turn
        if state == "In sync":
            break
        person.wait_for_timeout(200)
    assert seen and seen[-1] == (400, 400), seen
    assert {total for _, total in seen} == {400}, seen  # the total from the selection on, not "counting" until a step ends
    done = [d for d, _ in seen]
    assert done == sorted(done), f"the bar went back: {done}"
    assert any(0 < d < 400 for d in done), f"no page was shown before the sync ended: {sorted(set(done))}"
    assert audited, "the page mid-sync was never audited"


def delete_in_crm(product: ProductStack, member: MemberIdentity, count: int) -> None:
    ids = sorted(str(r["id"]) for r in crm_records(product, member, "Contacts"))[:count]
    crm_control(product, "actions/delete", {"actor": ADELE, "module": "Contacts", "ids": ids})


def wait_for_mass_change(product: ProductStack, page: Any, member: MemberIdentity, count: int) -> Any:
    wait_until(lambda: profile(member, SyncKind.CONTACTS).reason == "mass_change", what="the mass-change pause")
    open_settings(product, page)
    question = page.get_by_test_id("contacts-mass-change")
    expect()(question).to_contain_text(f"{count} items would be deleted.")
    expect()(page.get_by_test_id("contacts-state")).to_have_text("Paused")
    return question


def test_mass_deletion_in_the_crm_asks_then_keeps_or_deletes(product: ProductStack, person: Any) -> None:
    member = install_and_enter(product, person)
    crm_control(product, "actions/generate", {"actor": ADELE, "module": "Contacts", "count": 60})
    open_settings(product, person)
    person.get_by_role("button", name="Enable Contacts").click()
    expect()(person.get_by_test_id("contacts-state")).to_have_text("In sync", timeout=SYNC_TIMEOUT_MS)
    wait_until(lambda: profile(member, SyncKind.CONTACTS).delta_link, what="the first delta round")

    # 55 of 60 deleted in the CRM: sync pauses and asks; Outlook keeps them meanwhile.
    delete_in_crm(product, member, 55)
    question = wait_for_mass_change(product, person, member, 55)
    assert len(outlook_items(product, ADELE, FOLDER)) == 60
    question.get_by_role("button", name="Keep them (restore)").click()
    expect()(person.get_by_test_id("contacts-mass-change")).to_have_count(0)
    wait_until(lambda: len(crm_records(product, member, "Contacts")) == 60, what="the contacts restored in the CRM")
    assert len(outlook_items(product, ADELE, FOLDER)) == 60

    # The same again, answered Delete: the deletions reach Outlook.
    delete_in_crm(product, member, 55)
    question = wait_for_mass_change(product, person, member, 55)
    question.get_by_role("button", name="Delete them").click()
    expect()(person.get_by_test_id("contacts-mass-change")).to_have_count(0)
    wait_until(lambda: len(outlook_items(product, ADELE, FOLDER)) == 5, what="the deletions in Outlook")
    # A second answer to a question no longer asked changes nothing and says so.
    response = person.request.post(f"{product.url}/api/settings/microsoft/contacts/confirm-deletions",
                                   form={"csrf_token": person.locator("input[name=csrf_token]").first.input_value()})
    assert response.status == 409


def test_mapping_api_answers_json_and_refuses_bad_input_changing_nothing(product: ProductStack, person: Any) -> None:
    member = install_and_enter(product, person)
    create_contact(product, First_Name="Ann", Last_Name="Own", Phone="+33 1 23 45 67 89")
    url = f"{product.url}/api/settings/microsoft/contacts/mapping"
    window = person.request.get(url, headers={"Accept": "application/json"})
    assert window.status == 200
    shown = window.json()
    assert shown["mapping"] == shown["default"] and shown["problems"] == []
    assert {"name": "officeLocation", "label": "Office location", "type": "text"} in shown["catalogues"]["graph"]
    assert "id" not in {f["name"] for f in shown["catalogues"]["graph"]}  # Graph cannot write it: not offered
    assert next(f for f in shown["catalogues"]["crm"] if f["name"] == "Last_Name")["required"] is True
    assert {"field": "businessPhones[0]", "value": "+33 1 23 45 67 89", "problem": None} in shown["preview"]["rows"]

    person.goto(f"{product.url}/api/settings/microsoft/contacts/mapping")
    token = person.locator("#mapping-form").get_attribute("data-csrf")
    json_headers = {"Content-Type": "application/json", "Accept": "application/json"}
    valid = {"pairs": [{"crm_field": "Last_Name", "graph_field": "surname", "direction": "both"}]}
    refusals = [
        (person.request.put(url, headers=json_headers, data=valid), 403, "security token"),
        (person.request.put(url, headers={**json_headers, "X-CSRF-Token": "forged"}, data=valid), 403, "security token"),
        (person.request.put(url, headers={**json_headers, "X-CSRF-Token": token}, data=b"{nope"), 400, "not valid JSON"),
        (person.request.put(url, headers={**json_headers, "X-CSRF-Token": token},
                            data={"pairs": [{"crm_field": "Last_Name", "graph_field": "surname", "direction": "up"}]}),
         422, "is not a direction"),
        (person.request.put(url, headers={**json_headers, "X-CSRF-Token": token},
                            data={"pairs": [{"crm_field": "Last_Name", "graph_field": "surname"},
                                            {"crm_field": "Shoe_Size", "graph_field": "id"}]}), 422, "Shoe_Size"),
    ]
    for answer, status, says in refusals:
        assert (answer.status, says in answer.text()) == (status, True), answer.text()
    assert get_services().sync.contact_mapping(member) == DEFAULT_CONTACT_MAPPING

    saved = person.request.put(url, headers={**json_headers, "X-CSRF-Token": token}, data=valid)
    assert saved.status == 200 and saved.json()["mapping"]["pairs"][0]["graph_field"] == "surname"
    assert len(saved.json()["changed_pairs"]) == len(DEFAULT_CONTACT_MAPPING.pairs) - 1
    assert [p.key for p in get_services().sync.contact_mapping(member).pairs] == ["Last_Name:surname"]

    # The window in French, with the refusal in French too.
    person.goto(f"{product.url}/api/settings/microsoft/contacts/mapping?lang=fr")
    expect()(person.get_by_role("heading", name="Configuration : champs des contacts")).to_be_visible()
    person.get_by_role("button", name="Retirer la ligne 1").click()
    person.get_by_role("button", name="Save").click()
    expect()(problems(person)).to_contain_text("Last_Name doit être associé")
