"""The app-only token right after an administrator's consent (found by ``make test``: an
install failed with "not installed" although consent had just been given)."""

from __future__ import annotations

import pytest
import requests

from emulators.m365.server import RunningM365
from shared.identity.entra import EntraApp, SignInFailed

from .conftest import CLIENT_ID, CLIENT_SECRET, TENANT, Emulator


def test_a_refusal_met_before_consent_is_not_replayed_after_it(emulator: Emulator, m365: RunningM365,
                                                                http: requests.Session) -> None:
    entra = EntraApp(m365.base_url, CLIENT_ID, CLIENT_SECRET, http)  # this process's MSAL apps, fresh
    emulator.control("DELETE", f"consents?tenantId={TENANT}&clientId={CLIENT_ID}")
    with pytest.raises(SignInFailed):
        entra.app_token(TENANT)  # e.g. the sweep checking a paused tenant, or a first attempt
    emulator.control("POST", "consents", json={"tenantId": TENANT, "clientId": CLIENT_ID, "kind": "admin"})
    # MSAL alone would answer its cached 400 for a minute here: the install would fail.
    assert entra.app_token(TENANT)
    assert entra.app_token(TENANT) == entra.app_token(TENANT)  # and then from MSAL's cache, as before
