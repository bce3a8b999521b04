"""Refusals on the install path: each answers a clear page and changes nothing
(forged or replayed sign-in answers, forms without CSRF token or from another site,
sessions that ended)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from itsdangerous import URLSafeTimedSerializer

from shared.identity.sessions import COOKIE_NAME
from shared.wiring import get_services
from tests.product_stack import CONTOSO, CONTOSO_PASSWORD, ProductStack, microsoft_sign_in, page_html, shown

pytestmark = pytest.mark.browser


def admin_on_accounts_page(product: ProductStack, page: Any) -> None:
    page.goto(f"{product.url}/api/marketplace/launch")
    microsoft_sign_in(page, "adele@contoso.test", CONTOSO_PASSWORD)
    page.get_by_role("button", name="Accept").click()
    page.wait_for_load_state()
    shown(page.get_by_role("heading", name="Zoho CRM Accounts"))


def crm_org_count(product: ProductStack) -> int:
    return len(product.crm_snapshot()["orgs"])


def test_forged_state_is_refused(product: ProductStack, person: Any) -> None:
    person.goto(f"{product.url}/api/marketplace/launch")  # a session with a real pending sign-in
    response = person.goto(f"{product.url}/api/auth/callback?state=forged&code=stolen")
    assert response is not None and response.status == 400
    shown(person.get_by_role("heading", name="Sign-in could not be completed"))
    assert get_services().accounts.install_of(CONTOSO) is None


def test_replayed_sign_in_answer_is_refused(product: ProductStack, person: Any) -> None:
    callbacks: list[str] = []
    person.on("request", lambda r: callbacks.append(r.url) if "/api/auth/callback" in r.url else None)
    person.goto(f"{product.url}/api/marketplace/launch")
    microsoft_sign_in(person, "megan@contoso.test", CONTOSO_PASSWORD)
    shown(person.get_by_role("heading", name="An administrator must install the app first"))
    assert len(callbacks) == 1
    replay = person.goto(callbacks[0])
    assert replay is not None and replay.status == 400
    assert "already used" in page_html(person)


def test_post_without_csrf_token_changes_nothing(product: ProductStack, person: Any) -> None:
    admin_on_accounts_page(product, person)
    before = crm_org_count(product)
    response = person.request.post(
        f"{product.url}/api/accounts/continue", form={"accept_terms": "on"}, headers={"Origin": product.url}
    )
    assert response.status == 403
    assert "security token" in response.text()
    assert crm_org_count(product) == before
    install = get_services().accounts.install_of(CONTOSO)
    assert install is not None and install.org_id is None


def test_cross_site_post_is_refused_even_with_the_token(product: ProductStack, person: Any) -> None:
    admin_on_accounts_page(product, person)
    token = person.locator("input[name=csrf_token]").first.get_attribute("value")
    before = crm_org_count(product)
    response = person.request.post(
        f"{product.url}/api/accounts/continue",
        form={"accept_terms": "on", "csrf_token": token or ""},
        headers={"Origin": "https://attacker.example"},
    )
    assert response.status == 403
    assert crm_org_count(product) == before


def test_terms_must_be_accepted(product: ProductStack, person: Any) -> None:
    admin_on_accounts_page(product, person)
    before = crm_org_count(product)
    person.evaluate("document.querySelector('input[name=accept_terms]').removeAttribute('required')")
    person.get_by_role("button", name="Continue").click()
    shown(person.get_by_text("Please accept the terms and conditions to continue."))
    assert crm_org_count(product) == before


def test_ended_or_forged_sessions_are_refused(product: ProductStack) -> None:
    secret = get_services().settings.session_secret
    assert secret
    unknown = URLSafeTimedSerializer(secret, salt="crm365-session").dumps("no-such-session")
    for cookie in (unknown, "forged.cookie.value"):
        response = requests.get(f"{product.url}/api/accounts", cookies={COOKIE_NAME: cookie}, timeout=10)
        assert response.status_code == 401
        assert "Your session has expired" in response.text
        assert "Max-Age=0" in response.headers["Set-Cookie"]


def test_signed_out_session_is_over(product: ProductStack, person: Any) -> None:
    admin_on_accounts_page(product, person)
    person.get_by_role("button", name="Sign out").click()
    shown(person.get_by_role("heading", name="You are signed out"))
    response = person.goto(f"{product.url}/api/accounts")
    assert response is not None and response.status == 401


def test_every_page_carries_security_headers(product: ProductStack) -> None:
    response = requests.get(f"{product.url}/api/accounts", timeout=10)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
