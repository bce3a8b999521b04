"""Issue 18 §1 over plain HTTP: the e-mail a Microsoft sign-in carries is an attribute any
admin may set, so an address that is not proven (its domain is not one the person's tenant
verified) must not name the CRM user a request to join would add, nor find an account. The
browser side of the same attack is tests/browser/test_account_takeover.py."""

from __future__ import annotations

from shared.wiring import get_services
from tests.product_stack import ProductStack
from tests.security.world import (
    ADELE,
    MEGAN,
    StateProbe,
    adele,
    browser_of,
    create_crm_org,
    install,
    microsoft_user,
    refused,
)


def test_a_request_to_join_with_an_unproven_address_is_refused_and_sends_nothing(
    product: ProductStack, probe: StateProbe
) -> None:
    adele(product)
    megan = microsoft_user(product, MEGAN).model_copy(update={"email": "ceo@fabrikam.test", "email_verified": False})
    with probe.unchanged(ignore_tables=("sessions",)):
        answer = browser_of(product, megan).post("/api/join-requests")
        refused(answer, 403, "Your request could not be sent", "ceo@fabrikam.test", "Nothing was sent")


def test_continue_with_an_unproven_address_finds_no_account_and_offers_associate(
    product: ProductStack, probe: StateProbe
) -> None:
    adele(product)
    # Megan's mail set by an admin to the address of Fabrice, who has a CRM account elsewhere.
    megan = microsoft_user(product, MEGAN).model_copy(update={"email": "fabrice@fabrikam.test", "email_verified": False})
    with probe.unchanged(ignore_tables=("sessions",)):
        answer = browser_of(product, megan).post("/api/accounts/continue", {"accept_terms": "on"})
        refused(answer, 403, "We cannot confirm that fabrice@fabrikam.test is yours", "Associate My Account")
        assert "Location" not in answer.headers
    assert get_services().accounts.member_of(megan.tenant_id, megan.object_id) is None


def test_a_free_edition_org_takes_no_request_to_join_nobody_could_approve(product: ProductStack, probe: StateProbe) -> None:
    """Issue 23 (R2: managing users is for paid editions): Contoso's CRM org is a free one, so a
    colleague is told to ask for an invitation, on Continue and on a forged POST alike."""
    org_id = create_crm_org(product, "Contoso Free", ADELE, edition="free")
    assert install(product, microsoft_user(product, ADELE, admin=True)).org_id == org_id  # Adele heads it
    megan = browser_of(product, microsoft_user(product, MEGAN))
    with probe.unchanged(ignore_tables=("sessions",)):
        refused(megan.post("/api/accounts/continue", {"accept_terms": "on"}), 403,
                "Ask to be invited instead", "free edition", "Nothing was sent")
        refused(megan.post("/api/join-requests"), 403, "Ask to be invited instead")
