"""Installing from the Office 365 app launcher, in a real browser through the emulators'
own sign-in and consent pages (SPEC R1.1 to R1.7)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.accounts.repository import member_key
from shared.wiring import get_services
from tests.product_stack import (
    CONTOSO,
    CONTOSO_PASSWORD,
    CRM_PASSWORD,
    FABRIKAM_PASSWORD,
    ProductStack,
    crm_sign_in,
    microsoft_sign_in,
    page_html,
    shown,
)

pytestmark = pytest.mark.browser


def orgs_named(product: ProductStack, name: str) -> list[dict[str, Any]]:
    orgs = product.crm_snapshot()["orgs"]
    values = orgs.values() if isinstance(orgs, dict) else orgs
    return [o for o in values if o.get("company_name") == name]


def launch(product: ProductStack, page: Any, email: str, password: str) -> None:
    page.goto(f"{product.url}/api/marketplace/launch")
    microsoft_sign_in(page, email, password)


def accept_terms_and_continue(page: Any) -> None:
    page.get_by_label("I accept the terms and conditions of Zoho CRM.").check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_load_state()


def test_admin_installs_a_new_tenant_and_becomes_super_admin(product: ProductStack, person: Any) -> None:
    launch(product, person, "adele@contoso.test", CONTOSO_PASSWORD)
    # Admin consent page of Microsoft (the SSO session makes it one click).
    person.get_by_role("button", name="Accept").click()
    person.wait_for_load_state()
    shown(person.get_by_role("heading", name="Zoho CRM Accounts"))
    accept_terms_and_continue(person)
    # Taken into the CRM: its home page, in a new org named after the tenant, as super admin.
    assert person.get_by_test_id("crm-user").inner_text() == "Adele Vance"
    orgs = orgs_named(product, "Contoso Ltd")
    assert len(orgs) == 1
    assert "Administrator" in person.get_by_test_id("crm-org").inner_text()
    install = get_services().accounts.install_of(CONTOSO)
    assert install is not None and install.installed_by_email == "adele@contoso.test"
    assert install.org_id == str(orgs[0]["id"])
    assert get_services().accounts.member_of(CONTOSO, install.installed_by_object_id) is not None


def test_the_admin_clicking_again_goes_straight_in(product: ProductStack, trusting_browser: Any) -> None:
    first = trusting_browser.new_context().new_page()
    launch(product, first, "adele@contoso.test", CONTOSO_PASSWORD)
    first.get_by_role("button", name="Accept").click()
    accept_terms_and_continue(first)
    first.context.close()
    again = trusting_browser.new_context().new_page()
    launch(product, again, "adele@contoso.test", CONTOSO_PASSWORD)
    assert again.get_by_test_id("crm-user").inner_text() == "Adele Vance"
    assert len(orgs_named(product, "Contoso Ltd")) == 1  # no second org, ever
    again.context.close()


def test_non_admin_before_install_is_told_to_ask_an_administrator(product: ProductStack, person: Any) -> None:
    launch(product, person, "megan@contoso.test", CONTOSO_PASSWORD)
    shown(person.get_by_role("heading", name="An administrator must install the app first"))
    assert "Contoso Ltd" in page_html(person)
    assert get_services().accounts.install_of(CONTOSO) is None


def test_admin_whose_email_has_a_crm_account_is_taken_into_it(product: ProductStack, person: Any) -> None:
    before = len(product.crm_snapshot()["orgs"])
    launch(product, person, "fabrice@fabrikam.test", FABRIKAM_PASSWORD)
    person.get_by_role("button", name="Accept").click()
    accept_terms_and_continue(person)
    assert person.get_by_test_id("crm-user").inner_text() == "Fabrice Martin"
    assert "Fabrikam Sales" in person.get_by_test_id("crm-org").inner_text()
    assert len(product.crm_snapshot()["orgs"]) == before  # no new org


def test_associate_my_account_links_an_account_with_another_email(product: ProductStack, person: Any) -> None:
    launch(product, person, "adele@contoso.test", CONTOSO_PASSWORD)
    person.get_by_role("button", name="Accept").click()
    person.get_by_role("link", name="Associate My Account").click()
    crm_sign_in(person, "sam.carter@samconsulting.example", CRM_PASSWORD)
    assert person.get_by_test_id("crm-user").inner_text() == "Sam Carter"
    assert "Sam Carter Consulting" in person.get_by_test_id("crm-org").inner_text()
    services = get_services()
    install = services.accounts.install_of(CONTOSO)
    assert install is not None and install.org_name == "Sam Carter Consulting"
    member = services.accounts.member_of(CONTOSO, install.installed_by_object_id)
    assert member is not None and member.crm_email == "sam.carter@samconsulting.example"
    assert member.refresh_token_encrypted and "1000." not in member.refresh_token_encrypted  # encrypted at rest
    assert orgs_named(product, "Contoso Ltd") == []


def test_a_crm_account_linked_to_someone_else_is_refused(product: ProductStack, trusting_browser: Any) -> None:
    adele = trusting_browser.new_context().new_page()
    launch(product, adele, "adele@contoso.test", CONTOSO_PASSWORD)
    adele.get_by_role("button", name="Accept").click()
    adele.get_by_role("link", name="Associate My Account").click()
    crm_sign_in(adele, "sam.carter@samconsulting.example", CRM_PASSWORD)
    adele.context.close()
    megan = trusting_browser.new_context().new_page()
    launch(product, megan, "megan@contoso.test", CONTOSO_PASSWORD)
    megan.get_by_role("link", name="Associate My Account").click()
    crm_sign_in(megan, "sam.carter@samconsulting.example", CRM_PASSWORD)
    shown(megan.get_by_role("heading", name="This CRM account is already linked"))
    megan.context.close()


def test_consent_refused_installs_nothing(product: ProductStack, person: Any) -> None:
    launch(product, person, "adele@contoso.test", CONTOSO_PASSWORD)
    person.get_by_role("button", name="Cancel").click()
    shown(person.get_by_role("heading", name="The app was not installed"))
    assert get_services().accounts.install_of(CONTOSO) is None


def test_pages_speak_french(product: ProductStack, person: Any) -> None:
    launch(product, person, "adele@contoso.test", CONTOSO_PASSWORD)
    person.get_by_role("button", name="Accept").click()
    person.get_by_role("link", name="Français").click()
    shown(person.get_by_role("heading", name="Comptes Zoho CRM"))
    shown(person.get_by_role("button", name="Continue"))  # the source's label, as-is
    assert get_services().accounts.member_of(CONTOSO, "nobody") is None
    assert member_key("t", "o") == "ms|t|o"
