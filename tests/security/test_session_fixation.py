"""Session fixation (issue 18 §3), as an attacker does it over HTTP against the running host:
they open the app launcher entry themselves to get a session cookie, plant it in the
victim's browser, and wait for the victim to sign in with Microsoft. Before the fix that
cookie became the victim's session for 8 hours (same id, same CSRF token).

The victim signs in through the Microsoft 365 emulator's own sign-in page, form by form."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin

import requests
from itsdangerous import URLSafeTimedSerializer

from shared.identity.sessions import ANONYMOUS_LIFETIME, COOKIE_NAME, SESSION_LIFETIME, SessionStore
from shared.wiring import get_services
from tests.product_stack import CONTOSO_PASSWORD, ProductStack
from tests.security.world import MEGAN, StateProbe, adele, microsoft_user, refused


def _http() -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    return http


def _session_cookie(response: requests.Response) -> str | None:
    found = re.search(rf"(?:^|,\s*){COOKIE_NAME}=([^;]*)", response.headers.get("Set-Cookie", ""))
    return found.group(1) if found and found.group(1) else None


def _session_id(cookie: str) -> str:
    secret = get_services().settings.session_secret
    return str(URLSafeTimedSerializer(secret, salt="crm365-session").loads(cookie))


def _submit(microsoft: requests.Session, product: ProductStack, page: requests.Response, **fields: str) -> requests.Response:
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    flow = re.search(r'name="flow" value="([^"]+)"', page.text)
    assert action and flow, page.text[:500]
    return microsoft.post(urljoin(product.m365.base_url, action.group(1)), data={"flow": flow.group(1), **fields},
                          allow_redirects=False, timeout=30)


def sign_in_with(product: ProductStack, cookie: str, email: str, password: str) -> requests.Response:
    """The victim's browser, carrying ``cookie``: the app launcher entry, Microsoft's sign-in
    (and consent) pages, back to our callback; returns the callback's answer."""
    browser = _http()
    launch = browser.get(f"{product.url}/api/marketplace/launch", headers={"Cookie": f"{COOKIE_NAME}={cookie}"},
                         allow_redirects=False, timeout=30)
    assert launch.status_code == 302, launch.text[:300]
    microsoft = _http()
    microsoft.verify = str(product.m365.ca_cert_path)
    page = microsoft.get(launch.headers["Location"], timeout=30)
    answer = _submit(microsoft, product, page, email=email, password=password)
    if answer.status_code == 200 and "Accept" in answer.text:  # the consent page
        answer = _submit(microsoft, product, answer, decision="accept")
    assert answer.status_code == 302 and answer.headers["Location"].startswith(f"{product.url}/api/auth/callback"), \
        answer.text[:300]
    return browser.get(answer.headers["Location"], headers={"Cookie": f"{COOKIE_NAME}={cookie}"},
                       allow_redirects=False, timeout=30)


def test_a_cookie_planted_before_sign_in_is_not_the_victims_session(product: ProductStack, probe: StateProbe) -> None:
    adele(product)  # Contoso is installed: Megan's sign-in lands on the Accounts page
    attacker = _http()
    planted_answer = attacker.get(f"{product.url}/api/marketplace/launch", allow_redirects=False, timeout=30)
    planted = _session_cookie(planted_answer)
    assert planted, planted_answer.headers
    planted_row = get_services().sessions._repo.get(_session_id(planted), "s")  # type: ignore[attr-defined]
    assert planted_row is not None and planted_row.entity.user is None

    signed_in = sign_in_with(product, planted, MEGAN, CONTOSO_PASSWORD)
    assert signed_in.status_code in (200, 302, 303), signed_in.text[:500]
    fresh = _session_cookie(signed_in)
    assert fresh and fresh != planted, "sign-in must issue a new session cookie"
    assert _session_id(fresh) != _session_id(planted)

    # The planted session is gone: the attacker's cookie names nothing, and sees nothing of Megan's.
    assert get_services().sessions._repo.get(_session_id(planted), "s") is None  # type: ignore[attr-defined]
    with probe.unchanged():
        refused(attacker.get(f"{product.url}/api/accounts", headers={"Cookie": f"{COOKIE_NAME}={planted}"},
                             allow_redirects=False, timeout=30), 401, "expired")
    # Megan's own session is signed in, with a CSRF token the planted session never had.
    victim = get_services().sessions._repo.get(_session_id(fresh), "s").entity  # type: ignore[attr-defined,union-attr]
    assert victim.user is not None and victim.user.email == MEGAN
    assert victim.csrf_token != planted_row.entity.csrf_token
    assert victim.expires_at > datetime.now(UTC) + SESSION_LIFETIME - timedelta(minutes=5)
    page = _http().get(f"{product.url}/api/accounts", headers={"Cookie": f"{COOKIE_NAME}={fresh}"},
                       allow_redirects=False, timeout=30)
    assert page.status_code == 200 and victim.csrf_token in page.text, page.text[:300]


def test_signing_in_again_as_someone_else_renews_the_session(product: ProductStack) -> None:
    """Every change of identity, not only the first: Megan's session, then Adele signs in in
    the same browser; Megan's cookie must not become Adele's session."""
    adele(product)
    first = _session_cookie(_http().get(f"{product.url}/api/marketplace/launch", allow_redirects=False, timeout=30))
    assert first
    megan = _session_cookie(sign_in_with(product, first, MEGAN, CONTOSO_PASSWORD))
    assert megan and megan != first
    then_adele = _session_cookie(sign_in_with(product, megan, "adele@contoso.test", CONTOSO_PASSWORD))
    assert then_adele and then_adele not in (first, megan)
    assert get_services().sessions._repo.get(_session_id(megan), "s") is None  # type: ignore[attr-defined]


def test_anonymous_sessions_expire_within_the_hour_and_are_purged(product: ProductStack) -> None:
    """An anonymous session holds a PKCE verifier and nonce: an hour, then the purge timer's
    domain deletes it (and every other ended session), leaving live ones."""
    anonymous = _session_cookie(_http().get(f"{product.url}/api/marketplace/launch", allow_redirects=False, timeout=30))
    assert anonymous
    repo = get_services().sessions._repo  # type: ignore[attr-defined]
    row = repo.get(_session_id(anonymous), "s").entity
    assert row.flows and row.expires_at <= datetime.now(UTC) + ANONYMOUS_LIFETIME
    signed_in = get_services().sessions.renew(get_services().sessions.start()[0], microsoft_user(product, MEGAN))[0]

    later = SessionStore(repo, get_services().settings.session_secret or "", secure_cookies=False,
                         clock=lambda: datetime.now(UTC) + ANONYMOUS_LIFETIME + timedelta(minutes=1))
    assert later.purge_expired() >= 1
    assert repo.get(_session_id(anonymous), "s") is None and repo.get(signed_in.partition_key, "s") is not None
    refused(_http().get(f"{product.url}/api/accounts", headers={"Cookie": f"{COOKIE_NAME}={anonymous}"},
                        allow_redirects=False, timeout=30), 401, "expired")
    assert get_services().sessions.purge_expired() == 0  # now: nothing else has ended
    assert repo.get(signed_in.partition_key, "s") is not None
