"""Issue 22: after admin consent, the app-only token is asked again while Entra may still be
replicating the consent, and only then (the schedule, what is retried, the fresh MSAL app).
tests/integration/graph/test_consent_replication.py runs it against the M365 emulator."""

from __future__ import annotations

import pytest
import requests

from shared.identity.entra import EntraApp, SignInFailed, not_yet_replicated

AADSTS700016 = SignInFailed("AADSTS700016: Application with identifier 'x' was not found in the directory 'Contoso'.",
                            code="unauthorized_client")


class Clock:
    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(monkeypatch: pytest.MonkeyPatch, answers: list[object]) -> list[object]:
    """EntraApp._token_from answers these in turn (an exception is raised); returns the MSAL apps asked."""
    asked: list[object] = []

    def token_from(app: object) -> str:
        asked.append(app)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

    monkeypatch.setattr(EntraApp, "_token_from", staticmethod(token_from))
    # A stand-in MSAL app (a real one fetches the authority's metadata when made).
    monkeypatch.setattr(EntraApp, "_new_app", lambda self, tenant: object())
    return asked


def entra() -> EntraApp:
    return EntraApp("https://login.example", "client", "client-secret-0123456789", requests.Session())


def test_refusals_while_replicating_are_waited_out_with_back_off(monkeypatch: pytest.MonkeyPatch) -> None:
    app, clock = entra(), Clock()
    asked = scripted(monkeypatch, [AADSTS700016, AADSTS700016, SignInFailed("bad client", code="invalid_client"), "tok"])
    assert app.app_token_after_consent("t1", sleep=clock.sleep, clock=lambda: clock.now) == "tok"
    assert clock.sleeps == [0.5, 1.0, 2.0]
    # every new attempt through a new MSAL app (MSAL would repeat a remembered 400), the winner kept
    assert len({id(a) for a in asked}) == 4 and app._app("t1") is asked[-1]


def test_the_wait_is_bounded_and_the_last_refusal_is_told(monkeypatch: pytest.MonkeyPatch) -> None:
    app, clock = entra(), Clock()
    scripted(monkeypatch, [AADSTS700016] * 10)
    with pytest.raises(SignInFailed) as refused:
        app.app_token_after_consent("t1", sleep=clock.sleep, clock=lambda: clock.now)
    assert refused.value is AADSTS700016
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0] and clock.now <= 10  # the next 8 s would end after 10 s


@pytest.mark.parametrize("error", [
    SignInFailed("AADSTS65001: The user or administrator has not consented", code="invalid_grant"),
    SignInFailed("Microsoft could not be reached"),
    SignInFailed("AADSTS90002: Tenant not found", code="invalid_request"),
])
def test_other_refusals_are_told_at_once(monkeypatch: pytest.MonkeyPatch, error: SignInFailed) -> None:
    app, clock = entra(), Clock()
    scripted(monkeypatch, [error, "tok"])
    with pytest.raises(SignInFailed) as refused:
        app.app_token_after_consent("t1", sleep=clock.sleep, clock=lambda: clock.now)
    assert refused.value is error and clock.sleeps == []


def test_what_counts_as_not_yet_replicated() -> None:
    assert not_yet_replicated(AADSTS700016)
    assert not_yet_replicated(SignInFailed("AADSTS650051: ...", code="invalid_request"))
    assert not_yet_replicated(SignInFailed("AADSTS7000215: Invalid client secret provided.", code="invalid_client"))
    assert not not_yet_replicated(SignInFailed("AADSTS65001: no consent", code="invalid_grant"))


def test_the_install_callback_waits_for_the_consent_to_replicate() -> None:
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "shared" / "web" / "install_pages.py").read_text()
    assert "self.s.entra.app_token_after_consent(user.tenant_id)" in source
