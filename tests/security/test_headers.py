"""Security headers on every page (issue 10): each HTML answer of every GET route, for a
visitor without a session and for a signed-in member, and the pages reached through an
invitation or approval link (their URL carries the token)."""

from __future__ import annotations

import requests

from tests.product_stack import ProductStack
from tests.security.routes import concrete, http_routes
from tests.security.world import (
    APPROVAL_LINK,
    DIEGO,
    INVITATION_LINK,
    MEGAN,
    StateProbe,
    adele,
    browser_of,
    invite,
    microsoft_user,
    request_to_join,
)

HTML_GET_ROUTES = [r.route for r in http_routes() if "GET" in r.methods and r.auth_level == "anonymous"]
TOKEN_PATTERNS = (INVITATION_LINK, APPROVAL_LINK)


def check_page(response: requests.Response, *, carries_session: bool = True) -> None:
    where = f"{response.request.method} {response.url} ({response.status_code})"
    csp = response.headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp, where
    assert "default-src" in csp and "script-src 'unsafe-inline'" not in csp, where
    assert response.headers.get("X-Content-Type-Options") == "nosniff", where
    assert response.headers.get("Referrer-Policy") in ("same-origin", "no-referrer", "strict-origin"), where
    if carries_session:
        assert "no-store" in response.headers.get("Cache-Control", ""), where


def test_the_walk_covers_every_page_route() -> None:
    assert {"accounts", "settings/users", "settings/users/office365", "invitations/{token}", "join-requests/{token}",
            "settings/microsoft", "static/{name}", "marketplace/launch"} <= set(HTML_GET_ROUTES)


def test_every_page_carries_the_security_headers(product: ProductStack, probe: StateProbe) -> None:
    inviter = adele(product)
    invitation = invite(product, probe, inviter, MEGAN)
    approval = request_to_join(product, probe, DIEGO)
    anonymous = requests.Session()
    anonymous.trust_env = False
    megan = browser_of(product, microsoft_user(product, MEGAN))
    checked = 0
    for route in HTML_GET_ROUTES:
        paths = {concrete(route)}
        if route == "invitations/{token}":
            paths.add(concrete(route, invitation))
        if route == "join-requests/{token}":
            paths.add(concrete(route, approval))
        if route == "static/{name}":
            paths = {"/api/static/terms.html"}  # the one static page; the stylesheet is no page
        for path in paths:
            for visitor in (anonymous, inviter.http, megan.http):
                response = visitor.get(f"{product.url}{path}", allow_redirects=False, timeout=30)
                assert response.status_code < 500, (path, response.status_code)
                if response.headers.get("Content-Type", "").startswith("text/html") or 300 <= response.status_code < 400:
                    check_page(response, carries_session=not path.startswith("/api/static/"))
                    checked += 1
    assert checked >= 3 * len(HTML_GET_ROUTES)


def test_json_answers_are_not_sniffed_or_cached(product: ProductStack, probe: StateProbe) -> None:
    inviter = adele(product)
    status = inviter.get("/api/sync/status")
    assert status.status_code == 200 and status.headers["Content-Type"].startswith("application/json")
    assert status.headers["X-Content-Type-Options"] == "nosniff" and "no-store" in status.headers["Cache-Control"]
    health = requests.get(f"{product.url}/api/health", timeout=30)
    assert "no-store" in health.headers["Cache-Control"]
