"""May this member manage users? Paid edition and the Manage Users permission, read through
the CRM API with the member's own token, cached briefly."""

from __future__ import annotations

from collections.abc import Callable

from emulators.crm.server import RunningCrm
from shared.crm.members import MemberPermissions
from shared.crm.models import CrmMemberAccess
from shared.crm.session import CrmSessions

from .conftest import FABRICE, RITA, TINA, counters


def test_fabrice_enterprise_administrator_may(
    crm: RunningCrm, sessions: CrmSessions, member_for: Callable[[str], CrmMemberAccess]
) -> None:
    verdict = MemberPermissions(sessions.for_member).may_manage_users(member_for(FABRICE))
    assert verdict.allowed and verdict.reason == "allowed"
    assert verdict.paid_edition and verdict.manage_users and verdict.profile_name == "Administrator"


def test_rita_standard_profile_lacks_manage_users(
    sessions: CrmSessions, member_for: Callable[[str], CrmMemberAccess]
) -> None:
    verdict = MemberPermissions(sessions.for_member).may_manage_users(member_for(RITA))
    assert not verdict.allowed and verdict.reason == "no_manage_users"
    assert verdict.paid_edition and not verdict.manage_users and verdict.profile_name == "Standard"


def test_tina_free_edition_is_not_paid(sessions: CrmSessions, member_for: Callable[[str], CrmMemberAccess]) -> None:
    verdict = MemberPermissions(sessions.for_member).may_manage_users(member_for(TINA))
    assert not verdict.allowed and verdict.reason == "not_paid_edition" and not verdict.paid_edition
    assert verdict.manage_users  # she is the administrator of a free org: the edition is what fails


def test_answers_are_cached_per_member_for_a_minute(
    crm: RunningCrm, sessions: CrmSessions, member_for: Callable[[str], CrmMemberAccess]
) -> None:
    now = [0.0]
    permissions = MemberPermissions(sessions.for_member, clock=lambda: now[0])
    fabrice = member_for(FABRICE)
    permissions.may_manage_users(fabrice)
    calls = counters(crm, fabrice.org_id)["total"]
    assert calls == 3  # org, current user, profile
    now[0] += 59
    permissions.may_manage_users(fabrice)
    assert counters(crm, fabrice.org_id)["total"] == calls
    now[0] += 2
    permissions.may_manage_users(fabrice)
    assert counters(crm, fabrice.org_id)["total"] == calls + 3
    permissions.forget(fabrice)
    permissions.may_manage_users(fabrice)
    assert counters(crm, fabrice.org_id)["total"] == calls + 6
