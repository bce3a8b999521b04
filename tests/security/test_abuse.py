"""Abuse tests (issue 10, SPEC R2.6 and "lets no one act outside their tenant, org or
permission"): each attack goes through the local Functions host's real HTTP surface, must
be refused with a status and words a person understands, and must change nothing: no
table row, no emulator state (mail, calendars, CRM users), no queued work (``probe``).

Already covered in tests/browser, not repeated here: the forged link on GET and the
expired link reached from the e-mail (test_users.py::test_forged_expired_replayed_and_other_org_links),
the other org's approval link on GET (test_users.py::test_approval_link_of_another_org_is_refused),
a forged sign-in state and a replayed sign-in answer, CSRF-less and cross-site POSTs on
Continue, forged and ended session cookies (test_install_refusals.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from itsdangerous import URLSafeTimedSerializer

from shared.identity.sessions import COOKIE_NAME
from shared.identity.signed_links import LinkRow, token_hash
from shared.sync.profiles import SyncKind, SyncState
from shared.wiring import get_services
from tests.integration.sync_setup import profile, wait_until
from tests.product_stack import ProductStack
from tests.security.routes import concrete, http_routes
from tests.security.world import (
    ADELE,
    ALEX,
    DIEGO,
    FABRICE,
    MEGAN,
    StateProbe,
    add_crm_user,
    adele,
    browser_of,
    create_crm_org,
    enter,
    install,
    invite,
    link_in_mail,
    microsoft_user,
    refused,
    request_to_join,
)

EVIL = "https://evil.example/phish"


# -- invitation and approval links ------------------------------------------------------------------


def test_forged_link_accepted_by_post_is_refused(product: ProductStack, probe: StateProbe) -> None:
    adele(product)
    megan = browser_of(product, microsoft_user(product, MEGAN))
    with probe.unchanged():
        refused(megan.post("/api/invitations/forged-token-of-the-right-length-0123456789/accept", {"accept_terms": "on"}),
                404, "This link is not valid", "Nothing was changed")
        refused(megan.post(f"/api/invitations/{'A' * 1000}/accept", {"accept_terms": "on"}), 404, "not valid")


def test_expired_invitation_link_is_refused_on_accept(product: ProductStack, probe: StateProbe) -> None:
    inviter = adele(product)
    token = invite(product, probe, inviter, MEGAN)
    links = get_services().links
    stored = links._repo.get(token_hash(token), "link")  # type: ignore[attr-defined]
    aged = stored.entity.model_copy(update={"expires_at": datetime.now(UTC) - timedelta(seconds=1)})
    links._repo.replace(LinkRow.model_validate(aged.model_dump()), stored.etag)  # type: ignore[attr-defined]
    megan = browser_of(product, microsoft_user(product, MEGAN))
    with probe.unchanged():
        refused(megan.post(f"/api/invitations/{token}/accept", {"accept_terms": "on"}), 410, "This link has expired")
        refused(megan.get(f"/api/invitations/{token}"), 410, "expired")


def test_replayed_invitation_link_is_refused_to_anyone_else(product: ProductStack, probe: StateProbe) -> None:
    inviter = adele(product)
    token = invite(product, probe, inviter, MEGAN)
    megan = browser_of(product, microsoft_user(product, MEGAN))
    assert megan.get(f"/api/invitations/{token}").status_code == 200
    assert megan.post(f"/api/invitations/{token}/accept", {"accept_terms": "on"}).status_code == 303
    # Someone who got hold of the used link (a forwarded e-mail) gets nothing from it.
    alex = browser_of(product, microsoft_user(product, ALEX))
    with probe.unchanged():
        refused(alex.post(f"/api/invitations/{token}/accept", {"accept_terms": "on"}), 410, "already used")
        refused(alex.get(f"/api/invitations/{token}"), 410, "already used")


def test_invitation_of_another_invitee_is_refused(product: ProductStack, probe: StateProbe) -> None:
    inviter = adele(product)
    token = invite(product, probe, inviter, MEGAN)
    alex = browser_of(product, microsoft_user(product, ALEX))
    with probe.unchanged(ignore_tables=("sessions",)):
        refused(alex.get(f"/api/invitations/{token}"), 403, "sent to megan@contoso.test", "alex@contoso.test")
        refused(alex.post(f"/api/invitations/{token}/accept", {"accept_terms": "on"}), 403, "someone else")
    # Megan's link still works for Megan.
    assert browser_of(product, microsoft_user(product, MEGAN)).get(f"/api/invitations/{token}").status_code == 200


def test_a_link_of_one_kind_is_not_a_link_of_the_other(product: ProductStack, probe: StateProbe) -> None:
    inviter = adele(product)
    invitation = invite(product, probe, inviter, MEGAN)
    approval = request_to_join(product, probe, DIEGO)
    megan = browser_of(product, microsoft_user(product, MEGAN))
    with probe.unchanged():
        refused(inviter.post(f"/api/join-requests/{invitation}/approve"), 404, "not valid")
        refused(megan.post(f"/api/invitations/{approval}/accept", {"accept_terms": "on"}), 404, "not valid")


def test_approval_of_another_org_is_refused_on_post(product: ProductStack, probe: StateProbe) -> None:
    adele(product)
    approval = request_to_join(product, probe, DIEGO)
    fabrice_user = microsoft_user(product, FABRICE, admin=True)
    install(product, fabrice_user)  # Fabrice manages users of his own org, Fabrikam Sales
    fabrice = browser_of(product, fabrice_user)
    with probe.unchanged():
        refused(fabrice.post(f"/api/join-requests/{approval}/approve"), 403, "another organisation")
        refused(fabrice.post(f"/api/join-requests/{approval}/decline"), 403, "another organisation")


def test_replayed_approval_changes_nothing(product: ProductStack, probe: StateProbe) -> None:
    approver = adele(product)
    approval = request_to_join(product, probe, DIEGO)
    assert approver.post(f"/api/join-requests/{approval}/approve").status_code == 200
    wait_until(lambda: link_in_mail(product, DIEGO, r"/api/marketplace/launch"), what="the requester's e-mail")
    probe.settle()
    with probe.unchanged():
        refused(approver.post(f"/api/join-requests/{approval}/approve"), 410, "already used")
        refused(approver.post(f"/api/join-requests/{approval}/decline"), 410, "already used")


def test_approval_by_a_member_without_manage_users_is_refused(product: ProductStack, probe: StateProbe) -> None:
    manager = adele(product)
    approval = request_to_join(product, probe, DIEGO)
    org_id = get_services().accounts.install_of(manager.user.tenant_id).org_id  # type: ignore[union-attr]
    add_crm_user(product, str(org_id), MEGAN, profile="Standard")
    enter(product, microsoft_user(product, MEGAN))
    megan = browser_of(product, microsoft_user(product, MEGAN))  # holds Adele's forwarded link
    with probe.unchanged(ignore_tables=("sessions",)):
        refused(megan.get(f"/api/join-requests/{approval}"), 403, "Manage Users permission", "Nothing was changed")
        refused(megan.post(f"/api/join-requests/{approval}/approve"), 403, "Manage Users permission")
        # Nor does the org's sync activity open to her (every member's state is the managers' view).
        refused(megan.get("/api/settings/users/sync"), 403, "Manage Users permission")


def test_free_edition_org_cannot_invite(product: ProductStack, probe: StateProbe) -> None:
    """Editions live on the CRM org (the emulator's ``edition``, read as ``license_details.paid``)."""
    adele(product)
    create_crm_org(product, "Alex Bakery", ALEX, edition="free")
    enter(product, microsoft_user(product, ALEX))  # his existing CRM account: super admin of a free org
    alex = browser_of(product, microsoft_user(product, ALEX))
    with probe.unchanged():
        refused(alex.post("/api/settings/users/new", {"email": "nadia@fabrikam.test"}), 403,
                "paid editions of Zoho CRM only", "Nothing was changed")
        refused(alex.post("/api/settings/users/office365", {"user": "00000000-0000-0000-0000-000000000000"}), 403,
                "paid editions")
        refused(alex.get("/api/settings/users/office365"), 403, "paid editions")
        refused(alex.get("/api/settings/users/sync"), 403, "paid editions")


# -- CSRF ---------------------------------------------------------------------------------------------

FORM_POSTS = [r.route for r in http_routes() if r.methods == ("POST",) and not r.route.startswith(("webhooks/", "ops/"))]


def test_every_form_post_is_listed() -> None:
    assert "accounts/continue" in FORM_POSTS and "join-requests/{token}/approve" in FORM_POSTS
    assert len(FORM_POSTS) >= 11


@pytest.mark.parametrize("route", FORM_POSTS)
def test_post_without_csrf_token_is_refused(product: ProductStack, probe: StateProbe, route: str) -> None:
    inviter = adele(product)
    with probe.unchanged():
        refused(inviter.post(concrete(route), {"email": MEGAN, "accept_terms": "on"}, token=False), 403,
                "security token", "Nothing was changed")
        refused(inviter.post(concrete(route), {"csrf_token": "guessed", "email": MEGAN}, token=False), 403,
                "security token")


@pytest.mark.parametrize("route", FORM_POSTS)
def test_cross_site_post_with_a_valid_token_is_refused(product: ProductStack, probe: StateProbe, route: str) -> None:
    inviter = adele(product)
    with probe.unchanged():
        for origin in ("https://evil.example", "null", f"{product.url}.evil.example"):
            refused(inviter.post(concrete(route), {"email": MEGAN, "accept_terms": "on"}, headers={"Origin": origin}),
                    403, "came from another site")


# -- sessions of another deployment, tenant or org ---------------------------------------------------


def test_session_cookie_signed_elsewhere_is_refused(product: ProductStack, probe: StateProbe) -> None:
    inviter = adele(product)
    session_id = URLSafeTimedSerializer(get_services().settings.session_secret, salt="crm365-session").loads(
        inviter.http.cookies[COOKIE_NAME])
    other_deployment = URLSafeTimedSerializer("another-deployments-secret" * 2, salt="crm365-session").dumps(session_id)
    with probe.unchanged():
        for path in ("/api/settings/users", "/api/sync/status", "/api/settings/microsoft"):
            response = requests.get(f"{product.url}{path}", cookies={COOKIE_NAME: other_deployment}, timeout=10)
            refused(response, 401, "Your session has expired", "Nothing was changed")


def test_another_orgs_manager_cannot_touch_contoso(product: ProductStack, probe: StateProbe) -> None:
    inviter = adele(product)
    invite(product, probe, inviter, MEGAN)
    fabrice_user = microsoft_user(product, FABRICE, admin=True)
    install(product, fabrice_user)
    fabrice = browser_of(product, fabrice_user)
    with probe.unchanged():
        # His session names his tenant and org: Contoso's invitation is simply not his to revoke.
        refused(fabrice.post("/api/settings/users/invitations/revoke", {"email": MEGAN}), 409, "no pending invitation")
        refused(fabrice.post("/api/settings/users/invitations/resend", {"email": MEGAN}), 409, "no pending invitation")
        page = fabrice.get("/api/settings/users")
        assert page.status_code == 200 and MEGAN not in page.text and "Contoso" not in page.text
    assert get_services().invitations.list(str(get_services().accounts.install_of(inviter.user.tenant_id).org_id))[0].state == "pending"  # type: ignore[union-attr]


def test_person_of_an_uninstalled_tenant_is_refused(product: ProductStack, probe: StateProbe) -> None:
    adele(product)  # Contoso is installed; Fabrikam is not
    nadia = browser_of(product, microsoft_user(product, "nadia@fabrikam.test"))
    with probe.unchanged():
        refused(nadia.post("/api/join-requests"), 403, "An administrator must install the app first")
        refused(nadia.get("/api/settings/users"), 403, "not a CRM member yet")
        refused(nadia.get("/api/sync/status"), 403, "not a CRM member yet")


# -- webhooks -----------------------------------------------------------------------------------------


@pytest.fixture
def syncing_adele(product: ProductStack, probe: StateProbe) -> Any:
    """Adele with calendar sync on: a Graph subscription and a CRM watch channel exist."""
    adele(product)
    member = get_services().accounts.member_of(microsoft_user(product, ADELE).tenant_id, microsoft_user(product, ADELE).object_id)
    assert member is not None
    get_services().sync.enable(member, SyncKind.CALENDAR)
    wait_until(lambda: profile(member, SyncKind.CALENDAR).state is SyncState.ACTIVE, what="initial sync")
    wait_until(lambda: profile(member, SyncKind.CALENDAR).delta_link, what="first delta round")
    probe.settle()
    return profile(member, SyncKind.CALENDAR)


def _notification(subscription_id: str, client_state: str) -> dict[str, Any]:
    return {"value": [{
        "subscriptionId": subscription_id, "clientState": client_state, "changeType": "created",
        "resource": "Users/x/Events/y", "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z",
        "tenantId": "7c1e2b8a-3f4d-4e5a-9b6c-0d1e2f3a4b5c",
        "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "id": "y"},
    }]}


def test_graph_notification_with_a_wrong_client_state_queues_nothing(
    product: ProductStack, probe: StateProbe, syncing_adele: Any
) -> None:
    subscription = syncing_adele.subscription_id
    assert subscription
    with probe.unchanged():
        for client_state in ("wrong", "", "x" * 129):
            # 202 as Graph's guidance asks (the sender learns nothing); what matters is that nothing happens.
            answer = requests.post(f"{product.url}/api/webhooks/graph", json=_notification(subscription, client_state), timeout=10)
            assert answer.status_code == 202
        unknown = requests.post(f"{product.url}/api/webhooks/graph/lifecycle", timeout=10, json={"value": [{
            "subscriptionId": subscription, "clientState": "wrong", "lifecycleEvent": "subscriptionRemoved",
            "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z", "tenantId": "x"}]})
        assert unknown.status_code == 202


def test_crm_callback_with_a_wrong_token_is_refused(product: ProductStack, probe: StateProbe, syncing_adele: Any) -> None:
    member = get_services().accounts.member_of(syncing_adele.tenant_id, syncing_adele.object_id)
    assert member is not None
    stored = get_services().sync.org_channels.channel(member.org_id, SyncKind.CALENDAR)  # the org's (issue 20)
    assert stored is not None
    channel = stored.entity.channel_id
    body = {"channel_id": channel, "module": "Events", "operation": "insert", "ids": ["1"], "token": "wrong"}
    with probe.unchanged():
        refused(requests.post(f"{product.url}/api/webhooks/crm", json=body, timeout=10), 403, "callback refused: bad_token")
        refused(requests.post(f"{product.url}/api/webhooks/crm", json={**body, "token": None}, timeout=10), 403, "bad_token")
        refused(requests.post(f"{product.url}/api/webhooks/crm", json={**body, "channel_id": "1" * 18}, timeout=10), 403,
                "unknown_channel")


def test_graph_validation_request_not_in_graphs_shape_is_refused(product: ProductStack, probe: StateProbe) -> None:
    url = f"{product.url}/api/webhooks/graph"
    genuine = "Validation: Testing client application reachability for subscription Request-Id: 1f0c1c0e-0000-4000-8000-000000000000"
    with probe.unchanged():
        for path in (url, f"{url}/lifecycle"):
            ok = requests.post(path, params={"validationToken": genuine}, data=b"",
                               headers={"Content-Type": "text/plain; charset=utf-8"}, timeout=10)
            assert ok.status_code == 200 and ok.text == genuine
            assert ok.headers["Content-Type"].startswith("text/plain") and ok.headers["X-Content-Type-Options"] == "nosniff"
            for params, body in (
                ({"validationToken": "<script>alert(1)</script>"}, b""),  # markup reflected back at a browser
                ({"validationToken": "x" * 2000}, b""),  # far longer than Graph's tokens
                ({"validationToken": "line\r\nSet-Cookie: a=b"}, b""),  # control characters
                ({"validationToken": genuine}, b'{"value": []}'),  # a handshake carries no body
            ):
                answer = requests.post(path, params=params, data=body, timeout=10)
                refused(answer, 400, "not a Graph validation request")
                assert "<script>" not in answer.text
        assert requests.get(url, params={"validationToken": genuine}, timeout=10).status_code in (404, 405)


# -- oversized and malformed bodies -------------------------------------------------------------------

POSTS = FORM_POSTS + ["webhooks/graph", "webhooks/graph/lifecycle", "webhooks/crm"]


@pytest.mark.parametrize("route", POSTS)
def test_oversized_and_malformed_bodies_are_refused(product: ProductStack, probe: StateProbe, route: str) -> None:
    inviter = adele(product)
    path = concrete(route)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    bodies: list[tuple[bytes, dict[str, str]]] = [
        (b"csrf_token=" + inviter.csrf.encode() + b"&email=" + b"a" * 2_000_000, form),  # 2 MB
        (b"csrf_token=" + inviter.csrf.encode() + b"&" + b"x=1&" * 5000, form),  # too many fields
        (b"\xff\xfe\x00garbage" + inviter.csrf.encode(), form),  # not UTF-8
        (b"{\"value\": [" * 500, {"Content-Type": "application/json"}),  # JSON nested and unfinished
        (b"[" * 200_000 + b"]" * 200_000, {"Content-Type": "application/json"}),  # JSON nested beyond any parser
        (b"[1, 2, 3]", {"Content-Type": "application/json"}),  # JSON of the wrong shape
        (b"\x00" * 100, {"Content-Type": "application/octet-stream"}),
    ]
    with probe.unchanged():
        for body, headers in bodies:
            answer = inviter.http.post(f"{product.url}{path}", data=body, headers=headers, allow_redirects=False, timeout=30)
            assert 400 <= answer.status_code < 500, (route, body[:40], answer.status_code, answer.text[:300])
            assert answer.text.strip(), "a refusal says why"
            if answer.headers.get("Content-Type", "").startswith("text/html"):
                assert "Nothing was changed" in answer.text or "security token" in answer.text, answer.text[:400]


def test_a_form_too_large_says_so(product: ProductStack, probe: StateProbe) -> None:
    inviter = adele(product)
    with probe.unchanged():
        answer = inviter.post("/api/settings/users/new", {"email": MEGAN, "first_name": "a" * 300_000})
        refused(answer, 413, "too large", "Nothing was changed")


# -- open redirects -----------------------------------------------------------------------------------

GET_ROUTES = [r.route for r in http_routes() if "GET" in r.methods and r.auth_level == "anonymous"]
REDIRECT_PARAMS = ("redirect", "redirect_uri", "next", "return", "returnUrl", "return_to", "continue", "url", "state",
                   "post_logout_redirect_uri", "accounts-server", "location")


def allowed_origins(product: ProductStack) -> tuple[str, ...]:
    s = get_services().settings
    return (product.url + "/", product.m365.base_url + "/", *(server + "/" for server in s.allowed_crm_accounts_servers),
            product.crm.base_url + "/")


@pytest.mark.parametrize("route", GET_ROUTES)
def test_no_open_redirect_through_any_parameter(product: ProductStack, probe: StateProbe, route: str) -> None:
    inviter = adele(product)
    anonymous = browser_of(product, None)
    for evil in (EVIL, "//evil.example/x", "/\\evil.example", "https:evil.example"):
        params = dict.fromkeys(REDIRECT_PARAMS, evil)
        for visitor in (inviter, anonymous):
            answer = visitor.get(concrete(route, "evil"), params=params)
            assert answer.status_code < 500, (route, answer.status_code)
            location = answer.headers.get("Location")
            if location:
                assert location.startswith(allowed_origins(product)), (route, location)
                assert "evil.example" not in location.split("?")[0], (route, location)


def test_crm_sign_in_answer_naming_a_foreign_accounts_server_is_refused(product: ProductStack, probe: StateProbe) -> None:
    adele(product)
    megan = browser_of(product, microsoft_user(product, MEGAN))  # not linked yet: may associate
    started = megan.get("/api/accounts/associate")
    assert started.status_code == 302
    state = requests.utils.urlparse(started.headers["Location"]).query
    state_value = dict(p.split("=", 1) for p in state.split("&"))["state"]
    with probe.unchanged(ignore_tables=("sessions",)):
        answer = megan.get("/api/accounts/associate/callback",
                             params={"state": state_value, "code": "1000.x", "accounts-server": "https://evil.example"})
        refused(answer, 400, "could not")
        assert "Location" not in answer.headers
