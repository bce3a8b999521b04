"""Issue 23, "Enable explains": the member already has an Outlook calendar named "Zoho CRM"
(or a contact folder "Zoho CRM Contacts") that the sync did not make. Enable must not adopt
it (Disable would delete it with everything in it) nor fail with a generic error: it says,
in words, what to do, and works once the member has done it."""

from __future__ import annotations

from typing import Any

import pytest

from shared.sync.profiles import SyncKind, SyncState
from shared.wiring import get_services
from tests.browser.test_disable_enable import ADELE, KINDS, _click, _state
from tests.browser.test_settings import install_and_enter, open_settings
from tests.product_stack import ProductStack, page_html, shown

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("kind", list(KINDS), ids=lambda k: k.value)
def test_enable_beside_a_members_own_container_of_that_name_says_what_to_do(
    product: ProductStack, person: Any, kind: SyncKind
) -> None:
    spec = KINDS[kind]
    member = install_and_enter(product, person)
    name_field = "name" if kind is SyncKind.CALENDAR else "displayName"
    own = product.m365_control("POST", f"mailbox/{ADELE}/{spec['collection']}", json={name_field: spec["container"]})
    open_settings(product, person)
    answers: list[int] = []
    person.on("response", lambda r: answers.append(r.status) if "/api/settings/microsoft/" in r.url else None)
    _click(person, kind, "Enable")
    assert answers and answers[-1] == 409, (answers, page_html(person)[:3000])
    heading = f"named \u201c{spec['container']}\u201d is already in your Outlook"
    shown(person.get_by_role("heading", name=heading))
    assert "Rename or delete your" in page_html(person) and "Nothing was changed." in page_html(person)
    stored = get_services().sync_profiles.get(member.partition_key, kind)
    assert stored is None or stored.entity.state is SyncState.DISABLED
    mailbox = next(u["mailbox"] for t in product.m365_snapshot()["tenants"] for u in t["users"]
                   if u["userPrincipalName"] == ADELE)
    assert [c["id"] for c in mailbox[spec["collection"]] if c.get(name_field) == spec["container"]] == [own["id"]]  # left alone

    # The member deletes their own one in Outlook, then Enable works.
    product.m365_control("DELETE", f"mailbox/{ADELE}/{spec['collection']}/{own['id']}")
    open_settings(product, person)
    _click(person, kind, "Enable")
    assert _state(person, kind).inner_text() != "Disabled"
    # The conflict rule is stated where the conflicts are counted (issue 23).
    assert "the more recent change is kept" in person.get_by_test_id(f"{kind.value}-conflict-rule").inner_text()
    stored = get_services().sync_profiles.get(member.partition_key, kind)
    assert stored is not None and stored.entity.state is not SyncState.DISABLED
