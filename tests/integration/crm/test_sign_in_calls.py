"""The two calls a CRM sign-in makes before the person is a member (who they are, their org)
go through the members' send path: throttling and a failing CRM are retried the same way, and
a refused token is one clear error, with no refresh (the sign-in's refresh token is not ours yet)."""

from __future__ import annotations

import pytest

from emulators.crm.server import RunningCrm
from shared.crm.api import CrmApi
from shared.crm.models import CrmMemberAccess
from shared.crm.oauth import CrmTokens, ZohoOAuth
from shared.crm.session import CrmSessions
from shared.crm.tokens import CrmAuthorizationLost

from .conftest import control, counters


def signed_in(oauth: ZohoOAuth, member: CrmMemberAccess) -> CrmTokens:
    """Tokens as a sign-in's code exchange gives them (here from the member's grant)."""
    return oauth.refresh(member.refresh_token.get_secret_value(), member.accounts_server)


def test_a_sign_in_learns_who_and_which_org_through_throttling_and_a_failing_crm(
    crm: RunningCrm, oauth: ZohoOAuth, sessions: CrmSessions, fabrice: CrmMemberAccess
) -> None:
    tokens = signed_in(oauth, fabrice)
    control(crm, "/faults", {"orgs": {fabrice.org_id: {"fail_next": [429, 503, 429]}}}, method="PUT")
    api = CrmApi(sessions.signed_in(tokens))
    user, org = api.current_user(), api.org()
    assert str(user["id"]) == fabrice.user_id and str(org["id"]) == fabrice.org_id
    assert counters(crm, fabrice.org_id)["throttled_429"] == 2  # both retried, as a member's calls are
    assert sessions.tokens.refreshes == 0  # the sign-in's own token, never refreshed


def test_a_refused_sign_in_token_is_a_lost_authorisation_without_a_refresh(
    crm: RunningCrm, oauth: ZohoOAuth, sessions: CrmSessions, fabrice: CrmMemberAccess
) -> None:
    tokens = signed_in(oauth, fabrice).model_copy(update={"access_token": "1000.forged.token"})
    with pytest.raises(CrmAuthorizationLost):
        CrmApi(sessions.signed_in(tokens)).current_user()
    assert sessions.tokens.refreshes == 0
