"""Issue 18 §1, as the attacker does it: the Global Administrator of their own Entra tenant
sets their own ``mail`` to the address of someone with a CRM account elsewhere, opens the app
launcher entry, consents and presses Continue. The ``email`` claim is theirs to choose
(Microsoft's "nOAuth" warning): it must never be taken as proof of owning that CRM account.

Today the product lets them in as the victim: this test is a strict xfail, written before
the fix (which the next session makes), so it turns red the day it starts to pass."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from shared.wiring import get_services
from tests.browser.test_install import accept_terms_and_continue, launch
from tests.product_stack import ProductStack

pytestmark = pytest.mark.browser
MALLORY_TENANT = "0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"
MALLORY_PASSWORD = "Mallory-Own-Tenant-1"
VICTIM = "fabrice@fabrikam.test"  # has a CRM account in the "Fabrikam Sales" org (the CRM emulator's seed)


def attacker_tenant(product: ProductStack) -> str:
    """The attacker's own tenant: they are its Global Administrator, and an administrator may
    set any user's ``mail`` (Entra does not verify it)."""
    object_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "mallory"))
    product.m365_control("POST", "seed", json={"mode": "merge", "seed": {"tenants": [{
        "id": MALLORY_TENANT, "displayName": "Mallory Labs", "domain": "mallory.test", "countryLetterCode": "US",
        "password": MALLORY_PASSWORD,
        "users": [{"id": object_id, "userPrincipalName": "mallory@mallory.test", "mail": VICTIM, "givenName": "Mallory",
                   "surname": "Labs", "displayName": "Mallory Labs", "accountEnabled": True, "userType": "Member",
                   "assignedLicenses": [], "directoryRoles": ["Global Administrator"]}],
    }]}})
    return object_id


@pytest.mark.xfail(strict=True, reason="issue 18 §1 not fixed yet: the email claim still links identities")
def test_an_admin_of_another_tenant_setting_the_victims_mail_does_not_get_the_victims_crm_account(
    product: ProductStack, person: Any
) -> None:
    mallory = attacker_tenant(product)
    launch(product, person, "mallory@mallory.test", MALLORY_PASSWORD)
    person.get_by_role("button", name="Accept").click()  # consent, for their own tenant
    accept_terms_and_continue(person)
    # Not signed into the CRM as the victim, and nothing of the victim's given to the attacker.
    assert person.get_by_test_id("crm-user").count() == 0 or person.get_by_test_id("crm-user").inner_text() != "Fabrice Martin"
    member = get_services().accounts.member_of(MALLORY_TENANT, mallory)
    victim_org = next(o for o in product.crm_snapshot()["orgs"] if o.get("company_name") == "Fabrikam Sales")
    assert member is None or member.org_id != str(victim_org["id"])
    install = get_services().accounts.install_of(MALLORY_TENANT)
    assert install is None or install.org_id != str(victim_org["id"])  # their tenant not bound to the victim's org
