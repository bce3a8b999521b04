"""Issue 18 §5: a member who revoked the app's access in the CRM is never re-granted behind
their back. Before, opening the app again silently took a new token through the CRM's
first-party grant and resumed the sync; now the member is asked to authorise again, through
the CRM's own sign-in, as the CRM account they are linked to, and only that resumes it."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from shared.sync.lifecycle import Reason
from shared.sync.profiles import SyncKind, SyncState
from shared.wiring import get_services
from tests.browser.test_install import accept_terms_and_continue, launch
from tests.integration.sync_setup import crm_control, profile, wait_until
from tests.product_stack import CRM_PASSWORD, FABRIKAM, FABRIKAM_PASSWORD, ProductStack, crm_sign_in, shown

pytestmark = pytest.mark.browser
FABRICE = "fabrice@fabrikam.test"  # super admin of the seeded "Fabrikam Sales", who can sign in to the CRM


def test_a_revoked_crm_authorisation_is_asked_again_never_regranted(product: ProductStack, trusting_browser: Any) -> None:
    first = trusting_browser.new_context().new_page()
    launch(product, first, FABRICE, FABRIKAM_PASSWORD)
    first.get_by_role("button", name="Accept").click()
    accept_terms_and_continue(first)
    assert first.get_by_test_id("crm-user").inner_text() == "Fabrice Martin"
    first.context.close()
    services = get_services()
    member = next(m.entity for m in services.accounts.members.query() if m.entity.tenant_id == FABRIKAM)
    kind = SyncKind.CONTACTS
    services.sync.enable(member, kind)
    wait_until(lambda: profile(member, kind).state is SyncState.ACTIVE, what="the sync to start")

    # Fabrice removes the app's access in the CRM; the next change the sync reads pauses it.
    assert member.refresh_token_encrypted
    revoked = services.cipher.decrypt(member.refresh_token_encrypted)
    requests.post(f"{member.accounts_server}/oauth/v2/token/revoke", params={"token": revoked}, timeout=10).raise_for_status()
    crm_control(product, "actions/create", {"actor": FABRICE, "module": "Contacts",
                                            "record": {"First_Name": "After", "Last_Name": "Revocation"}})
    wait_until(lambda: profile(member, kind).state is SyncState.PAUSED, what="the sync to pause")
    assert profile(member, kind).reason is Reason.CRM_AUTHORIZATION_LOST

    # Opening the app again asks; it does not take a new token.
    again = trusting_browser.new_context().new_page()
    launch(product, again, FABRICE, FABRIKAM_PASSWORD)
    shown(again.get_by_role("heading", name="Authorise the CRM again"))
    stored = services.accounts.member_of(member.tenant_id, member.object_id)
    assert stored is not None and stored.refresh_token_encrypted == member.refresh_token_encrypted
    assert profile(member, kind).state is SyncState.PAUSED

    # Signing in to the CRM as someone else changes nothing.
    other = trusting_browser.new_context().new_page()
    launch(product, other, FABRICE, FABRIKAM_PASSWORD)
    other.get_by_role("link", name="Authorise again").click()
    crm_sign_in(other, "sam.carter@samconsulting.example", CRM_PASSWORD)
    shown(other.get_by_role("heading", name="That is another CRM account"))
    stored = services.accounts.member_of(member.tenant_id, member.object_id)
    assert stored is not None and stored.refresh_token_encrypted == member.refresh_token_encrypted
    other.context.close()

    # Authorising again as Fabrice takes him in and resumes the sync from where it paused.
    again.get_by_role("link", name="Authorise again").click()
    crm_sign_in(again, FABRICE, CRM_PASSWORD)
    assert again.get_by_test_id("crm-user").inner_text() == "Fabrice Martin"
    renewed = services.accounts.member_of(member.tenant_id, member.object_id)
    assert renewed is not None and renewed.refresh_token_encrypted != member.refresh_token_encrypted
    wait_until(lambda: profile(member, kind).state is SyncState.ACTIVE, what="the sync to resume")
    again.context.close()
