"""A member just linked to their CRM account calls the CRM with the access token that came with
that authorisation: no refresh spent (Zoho allows ten per ten minutes per refresh token) and no
second live token minted for their first call, which is usually their Enable."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cryptography.fernet import Fernet

from shared.accounts.models import MemberIdentity
from shared.accounts.token_adoption import adopt_issued_token
from shared.crm.token_store import StoredAccessToken
from shared.identity.token_cipher import TokenCipher
from shared.wiring import get_services
from tests.integration.sync_setup import linked_member
from tests.product_stack import ProductStack


def refreshes_in_org(product: ProductStack, org_id: str) -> int:
    tokens: dict[str, Any] = product.crm_snapshot()["tokens"]
    return sum(t["recent_refreshes"] for t in tokens["refresh"] if t["org_id"] == org_id)


def test_a_member_just_linked_calls_the_crm_without_a_refresh(product: ProductStack) -> None:
    member = linked_member(product)
    services = get_services()
    session = services.crm_sessions.for_member(services.crm_access(member))
    assert session.call("GET", "/org", repeatable=True).status == 200
    assert refreshes_in_org(product, member.org_id) == 0
    # Every instance finds it: the shared row holds it (another process's cache starts empty).
    rows = [row.entity for row in services.table("crmtokens", StoredAccessToken).query()]
    assert len(rows) == 1 and rows[0].token_encrypted and rows[0].expires_at > datetime.now(UTC).timestamp() + 3000


def test_a_token_that_came_with_another_authorisation_is_not_kept() -> None:
    """A twin click linked the member first with its own grant: the member row keeps that
    refresh token, and this click's access token belongs to another one."""
    cipher = TokenCipher(Fernet.generate_key().decode())
    linked = MemberIdentity(partition_key="ms|t|o", row_key="member", tenant_id="t", object_id="o", email="a@b.test",
                            name="A", org_id="1", org_name="O", user_id="2", crm_email="a@b.test", dc="us",
                            accounts_server="https://accounts.example", api_domain="https://api.example", how="associated",
                            linked_at=datetime.now(UTC), refresh_token_encrypted=cipher.encrypt("first-refresh"))
    adopted: list[str] = []

    def adopt(member: MemberIdentity, token: str, api_domain: str, expires_in: int) -> None:
        adopted.append(token)

    adopt_issued_token(adopt, cipher, linked, refresh_token="second-refresh", access_token="second-access",
                       api_domain="https://api.example", expires_in=3600)
    adopt_issued_token(adopt, cipher, linked, refresh_token="first-refresh", access_token="first-access",
                       api_domain="https://api.example", expires_in=3600)
    assert adopted == ["first-access"]
