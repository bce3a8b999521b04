"""Who may bring people in (SPEC R2): a member whose profile has Manage Users, in an org on
a paid edition. Pure: the facts come from the CRM, the verdict from here."""

from __future__ import annotations

from enum import StrEnum


class ManageUsersVerdict(StrEnum):
    ALLOWED = "allowed"
    FREE_EDITION = "free_edition"  # R2: available in paid editions only
    NO_MANAGE_USERS = "no_manage_users"  # R2.5: needs the Manage Users permission
    NOT_A_MEMBER = "not_a_member"  # a link or page of another org


def may_manage_users(*, same_org: bool, paid: bool, manage_users: bool) -> ManageUsersVerdict:
    if not same_org:
        return ManageUsersVerdict.NOT_A_MEMBER
    if not paid:
        return ManageUsersVerdict.FREE_EDITION
    if not manage_users:
        return ManageUsersVerdict.NO_MANAGE_USERS
    return ManageUsersVerdict.ALLOWED


def may_install(*, is_tenant_admin: bool) -> bool:
    """R1.1: only an administrator who can grant tenant-wide consent installs the app."""
    return is_tenant_admin


def invitation_is_for(*, invited: str, signed_in: str) -> bool:
    """R2.3: an invitation link is for the person signed in with the invited address. The link
    reached that mailbox, which is what proves the address here (not the sign-in's e-mail
    claim, which alone proves nothing: ``shared/accounts/email_proof.py``)."""
    return bool(invited.strip()) and invited.strip().lower() == signed_in.strip().lower()
