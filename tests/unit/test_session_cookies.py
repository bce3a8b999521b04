"""The session cookie's name and attributes (issue 18 §3): ``__Host-`` and Secure over https,
the plain name over http (loopback), where browsers refuse ``__Host-`` without Secure; and a
cookie of the other name is never read (a plain-named cookie planted over http, or by a
sibling subdomain, cannot stand for the __Host- one)."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.http_messages import WebRequest
from shared.identity.sessions import COOKIE_NAME, SECURE_COOKIE_NAME, SessionRow, SessionStore


class NoStorage:
    """Cookies are made and read without storage; any lookup would fail the test."""

    def __getattr__(self, name: str) -> None:
        raise AssertionError(f"storage used: {name}")


def store(secure: bool) -> SessionStore:
    return SessionStore(NoStorage(), "s" * 64, secure_cookies=secure)  # type: ignore[arg-type]


def row() -> SessionRow:
    now = datetime.now(UTC)
    return SessionRow(partition_key="id", row_key="s", created_at=now, expires_at=now, csrf_token="c")


def test_over_https_the_cookie_is_host_prefixed_and_secure() -> None:
    header = store(True).cookie(row()).header()
    assert header.startswith(f"{SECURE_COOKIE_NAME}=") and SECURE_COOKIE_NAME == "__Host-crm365_session"
    assert "; Secure" in header and "Path=/;" in header and "Domain" not in header and "HttpOnly" in header
    assert store(True).clear_cookie().header().startswith(f"{SECURE_COOKIE_NAME}=;")


def test_over_http_the_plain_name_without_secure() -> None:
    header = store(False).cookie(row()).header()
    assert header.startswith(f"{COOKIE_NAME}=") and "Secure" not in header


def test_a_cookie_of_the_other_name_is_not_read() -> None:
    https, http = store(True), store(False)
    planted = WebRequest("GET", "https://app/api/accounts", {"cookie": f"{COOKIE_NAME}={http.cookie(row()).value}"})
    assert https.load(planted) is None  # no session: no lookup either
    prefixed = WebRequest("GET", "http://127.0.0.1/api/accounts", {"cookie": f"{SECURE_COOKIE_NAME}=x"})
    assert http.load(prefixed) is None
