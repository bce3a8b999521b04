"""Issue 18 §1, as the attacker does it, in a real browser against the running stack.

The Global Administrator of their own Entra tenant sets their own ``mail`` to the address of
someone with a CRM account elsewhere, opens the app launcher entry, consents and presses
Continue. The ``email`` claim is theirs to choose (Microsoft's "nOAuth" warning): it must never
be taken as proof of owning that CRM account, nor let them create an org in someone else's
name. Before the fix the first test signed the attacker into the CRM as the victim.

The product is tried under the three app registrations an operator may have: the one
docs/deploy.md asks for (the ``xms_edov`` optional claim and ``removeUnverifiedEmailClaim``),
an older one with neither (the product then reads the tenant's verified domains from Graph),
and one with the optional claim only."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from shared.accounts.repository import crm_key
from shared.wiring import get_services
from tests.browser.test_install import accept_terms_and_continue, launch, orgs_named
from tests.product_stack import (
    CONTOSO,
    CONTOSO_PASSWORD,
    CRM_PASSWORD,
    FABRIKAM,
    FABRIKAM_PASSWORD,
    ProductStack,
    crm_sign_in,
    microsoft_sign_in,
    page_html,
    shown,
)
from tests.security.world import APP_REGISTRATION, PROVISIONING_AUTH

pytestmark = pytest.mark.browser
MALLORY_TENANT = "0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"
MALLORY_PASSWORD = "Mallory-Own-Tenant-1"
VICTIM = "fabrice@fabrikam.test"  # has a CRM account, super admin of "Fabrikam Sales" (the CRM emulator's seed)
NO_CRM_YET = "nadia@fabrikam.test"  # a real person of Fabrikam, with no CRM account

REGISTRATIONS = {
    "as deploy.md asks": {"optionalClaims": {"idToken": [{"name": "xms_edov"}]},
                          "authenticationBehaviors": {"removeUnverifiedEmailClaim": True}},
    "an older registration": {"optionalClaims": {"idToken": []}, "authenticationBehaviors": {}},
    "the optional claim only": {"optionalClaims": {"idToken": ["xms_edov"]},
                                "authenticationBehaviors": {"removeUnverifiedEmailClaim": False}},
}


def register(product: ProductStack, name: str) -> None:
    product.m365_control("POST", "apps", json={"clientId": APP_REGISTRATION["client_id"], **REGISTRATIONS[name]})


def attacker_tenant(product: ProductStack, mail: str) -> str:
    """The attacker's own tenant (mallory.test, verified): they are its Global Administrator,
    and an administrator may set any user's ``mail`` (Entra does not verify it)."""
    object_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "mallory"))
    product.m365_control("POST", "seed", json={"mode": "merge", "seed": {"tenants": [{
        "id": MALLORY_TENANT, "displayName": "Mallory Labs", "domain": "mallory.test", "countryLetterCode": "US",
        "password": MALLORY_PASSWORD,
        "users": [{"id": object_id, "userPrincipalName": "mallory@mallory.test", "mail": mail, "givenName": "Mallory",
                   "surname": "Labs", "displayName": "Mallory Labs", "accountEnabled": True, "userType": "Member",
                   "assignedLicenses": [], "directoryRoles": ["Global Administrator"]}],
    }]}})
    return object_id


def crm_accounts_of(product: ProductStack, email: str) -> list[dict[str, Any]]:
    orgs = product.crm_snapshot()["orgs"]
    return [u for org in (orgs.values() if isinstance(orgs, dict) else orgs) for u in org["users"]
            if str(u.get("email", "")).lower() == email]


def install_as_mallory(product: ProductStack, person: Any) -> str:
    mallory = attacker_tenant(product, VICTIM)
    launch(product, person, "mallory@mallory.test", MALLORY_PASSWORD)
    person.get_by_role("button", name="Accept").click()  # admin consent, for their own tenant
    person.wait_for_load_state()
    return mallory


@pytest.mark.parametrize("registration", list(REGISTRATIONS))
def test_an_admin_of_another_tenant_setting_the_victims_mail_does_not_get_the_victims_crm_account(
    product: ProductStack, person: Any, registration: str
) -> None:
    register(product, registration)
    victim_org = orgs_named(product, "Fabrikam Sales")[0]
    victim_user = crm_accounts_of(product, VICTIM)[0]
    mallory = install_as_mallory(product, person)
    accept_terms_and_continue(person)

    crm_user = person.get_by_test_id("crm-user")
    assert crm_user.count() == 0 or crm_user.inner_text() != "Fabrice Martin"
    accounts = get_services().accounts
    member = accounts.member_of(MALLORY_TENANT, mallory)
    assert member is None or member.org_id != str(victim_org["id"])
    install = accounts.install_of(MALLORY_TENANT)
    assert install is not None and install.org_id != str(victim_org["id"])  # their tenant not bound to the victim's org
    assert accounts.crm_links.get(crm_key(str(victim_org["id"]), str(victim_user["id"])), "link") is None  # no token for the victim
    if registration == "as deploy.md asks":
        # Entra left the unverified email claim out: they are who their tenant vouches for,
        # mallory@mallory.test, and get an org of their own (R1.4), nothing of the victim's.
        assert crm_user.inner_text() == "Mallory Labs"
        assert member is not None and member.crm_email == "mallory@mallory.test"
    else:
        assert member is None
        shown(person.get_by_role("heading", name="Zoho CRM Accounts"))
        assert VICTIM in person.get_by_test_id("email-unproven").inner_text()
        shown(person.get_by_role("link", name="Associate My Account"))  # the way that proves ownership


def test_an_unproven_address_creates_no_crm_account_in_its_owners_name(product: ProductStack, person: Any) -> None:
    """Squatting: Nadia has no CRM account yet; an org created with her address as its super
    administrator would be the attacker's, in her name."""
    register(product, "an older registration")
    attacker_tenant(product, NO_CRM_YET)
    launch(product, person, "mallory@mallory.test", MALLORY_PASSWORD)
    person.get_by_role("button", name="Accept").click()
    accept_terms_and_continue(person)
    shown(person.get_by_test_id("email-unproven"))
    assert crm_accounts_of(product, NO_CRM_YET) == []
    assert orgs_named(product, "Mallory Labs") == []


def test_nobody_else_creates_the_org_between_consent_and_the_installers_continue(
    product: ProductStack, trusting_browser: Any
) -> None:
    """The first-time race: Adele consented but has not pressed Continue; Megan, a colleague
    without admin rights, must not become the super administrator of Contoso's CRM."""
    adele = trusting_browser.new_context().new_page()
    launch(product, adele, "adele@contoso.test", CONTOSO_PASSWORD)
    adele.get_by_role("button", name="Accept").click()
    adele.wait_for_load_state()
    shown(adele.get_by_role("heading", name="Zoho CRM Accounts"))

    megan = trusting_browser.new_context().new_page()
    launch(product, megan, "megan@contoso.test", CONTOSO_PASSWORD)
    shown(megan.get_by_role("heading", name="Zoho CRM Accounts"))
    accept_terms_and_continue(megan)
    shown(megan.get_by_role("heading", name="Your organisation is not set up yet"))
    assert "adele@contoso.test" in page_html(megan)
    assert orgs_named(product, "Contoso Ltd") == []
    install = get_services().accounts.install_of(CONTOSO)
    assert install is not None and install.org_id is None

    accept_terms_and_continue(adele)
    assert adele.get_by_test_id("crm-user").inner_text() == "Adele Vance"
    assert "Administrator" in adele.get_by_test_id("crm-org").inner_text()
    megan.goto(f"{product.url}/api/accounts")  # now Megan is told to request to join, not to create anything
    accept_terms_and_continue(megan)
    shown(megan.get_by_role("button", name="Request to Join"))
    assert len(orgs_named(product, "Contoso Ltd")) == 1
    adele.context.close()
    megan.context.close()


def test_a_second_identity_given_a_linked_address_gets_a_clear_page_not_the_account(
    product: ProductStack, trusting_browser: Any
) -> None:
    """Within Fabrikam (whose domain it is) an admin gives a second user Fabrice's address:
    the CRM account is already linked to Fabrice's identity, so Continue answers 409 with a
    page, never a 500 and never a second link."""
    fabrice = trusting_browser.new_context().new_page()
    launch(product, fabrice, VICTIM, FABRIKAM_PASSWORD)
    fabrice.get_by_role("button", name="Accept").click()
    accept_terms_and_continue(fabrice)
    assert fabrice.get_by_test_id("crm-user").inner_text() == "Fabrice Martin"  # R1.5: proven, straight in
    fabrice.context.close()

    product.m365_control("POST", "seed", json={"mode": "merge", "seed": {"tenants": [{
        "id": FABRIKAM, "displayName": "Fabrikam Inc", "domain": "fabrikam.test", "password": FABRIKAM_PASSWORD,
        "users": [{"id": str(uuid.uuid5(uuid.NAMESPACE_URL, "fabrice-twin")), "userPrincipalName": "twin@fabrikam.test",
                   "mail": VICTIM, "givenName": "Twin", "surname": "Martin", "displayName": "Twin Martin",
                   "accountEnabled": True, "userType": "Member", "assignedLicenses": []}],
    }]}})
    twin = trusting_browser.new_context().new_page()
    twin.goto(f"{product.url}/api/marketplace/launch")
    microsoft_sign_in(twin, "twin@fabrikam.test", FABRIKAM_PASSWORD)
    answers: list[int] = []
    twin.on("response", lambda r: answers.append(r.status) if r.url.endswith("/api/accounts/continue") else None)
    accept_terms_and_continue(twin)
    assert answers == [409]
    shown(twin.get_by_role("heading", name="This CRM account is already linked"))
    assert get_services().accounts.member_of(FABRIKAM, str(uuid.uuid5(uuid.NAMESPACE_URL, "fabrice-twin"))) is None
    twin.context.close()


def test_an_installer_associating_an_account_they_do_not_head_does_not_bind_the_tenant(
    product: ProductStack, person: Any
) -> None:
    """Adele (Contoso's admin) proves a CRM account of Fabrikam Sales through the CRM's own
    sign-in: she is linked to it, but Contoso is not bound to Fabrikam's org, whose super
    administrator (Fabrice) never agreed to take Contoso's people in."""
    victim_org = str(orgs_named(product, "Fabrikam Sales")[0]["id"])
    answer = requests.post(f"{product.crm.base_url}/provisioning/v1/orgs/{victim_org}/users", auth=PROVISIONING_AUTH,
                           json={"email": "adele.contractor@fabrikam.test", "first_name": "Adele", "last_name": "Contractor",
                                 "profile": "Standard", "password": CRM_PASSWORD}, timeout=10)
    assert answer.status_code == 201, answer.text
    launch(product, person, "adele@contoso.test", CONTOSO_PASSWORD)
    person.get_by_role("button", name="Accept").click()
    person.get_by_role("link", name="Associate My Account").click()
    crm_sign_in(person, "adele.contractor@fabrikam.test", CRM_PASSWORD)
    assert person.get_by_test_id("crm-user").inner_text() == "Adele Contractor"  # R1.6: her own proven account
    accounts = get_services().accounts
    install = accounts.install_of(CONTOSO)
    assert install is not None and install.org_id is None
    assert any(e.entity.action == "tenant.not_bound" for e in accounts.audit_log.query(CONTOSO))
