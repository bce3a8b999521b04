"""Issue 22: the app-only token asked for right after admin consent, against the Microsoft 365
emulator replicating the new consent (``consent_replication_seconds``, as Entra may refuse the
token with AADSTS700016 for a few seconds after consent)."""

from __future__ import annotations

import time

import pytest
import requests

from shared.identity.entra import EntraApp, SignInFailed

from .conftest import CLIENT_ID, CLIENT_SECRET, TENANT, Emulator


def _fresh_consent(emulator: Emulator, replication_seconds: float) -> float:
    """Withdraw the fixture's consent, make new consents replicate this slowly, consent again."""
    emulator.control("DELETE", f"consents?tenantId={TENANT}&clientId={CLIENT_ID}")
    emulator.faults(consent_replication_seconds=replication_seconds)
    emulator.control("POST", "consents", json={"tenantId": TENANT, "clientId": CLIENT_ID, "kind": "admin"})
    return time.monotonic()


def test_the_token_right_after_consent_waits_for_replication(emulator: Emulator, http: requests.Session) -> None:
    entra = EntraApp(emulator.running.base_url, CLIENT_ID, CLIENT_SECRET, http)
    granted = _fresh_consent(emulator, 2.0)
    token = entra.app_token_after_consent(TENANT)
    waited = time.monotonic() - granted
    assert token and 1.9 <= waited < 10, waited
    assert entra.app_token(TENANT) == token  # the app that got it is the tenant's from now on (its cache)


def test_a_refusal_is_not_remembered_so_asking_again_asks_entra(emulator: Emulator, http: requests.Session) -> None:
    """MSAL alone would answer a repeated request that got an HTTP 400 from its own memory for
    60 s (Entra never asked again within the wait); a refusal drops the tenant's MSAL app, so
    the next request, once the consent has replicated, is answered by Entra."""
    entra = EntraApp(emulator.running.base_url, CLIENT_ID, CLIENT_SECRET, http)
    _fresh_consent(emulator, 1.0)
    with pytest.raises(SignInFailed) as refused:
        entra.app_token(TENANT)
    assert refused.value.code == "unauthorized_client"
    time.sleep(1.2)  # replicated by now
    assert entra.app_token(TENANT)


def test_a_consent_slower_than_the_wait_is_reported(emulator: Emulator, http: requests.Session) -> None:
    entra = EntraApp(emulator.running.base_url, CLIENT_ID, CLIENT_SECRET, http)
    _fresh_consent(emulator, 60.0)
    started = time.monotonic()
    with pytest.raises(SignInFailed) as refused:
        entra.app_token_after_consent(TENANT, within=2.0)
    assert refused.value.code == "unauthorized_client" and "AADSTS700016" in str(refused.value)
    assert 1.0 <= time.monotonic() - started < 4
