"""Where Continue on the Accounts page takes a signed-in person, and when a tenant may be
bound to a CRM org (SPEC R1.4, R1.5, R1.7, R2.3; issue 18 §1). Pure: the facts come from
the id token, the CRM and our tables; the verdict from here.

| e-mail proven | CRM account for it         | tenant's org | installer | invited | verdict           |
|---------------|----------------------------|--------------|-----------|---------|-------------------|
| no            | (not looked up)            | any          | any       | any     | PROVE_EMAIL       |
| yes           | confirmed, same address    | any          | any       | any     | LINK_ACCOUNT      |
| yes           | unconfirmed or other       | any          | any       | any     | PROVE_EMAIL       |
| yes           | none                       | bound        | any       | yes     | ACCEPT_INVITATION |
| yes           | none                       | bound        | any       | no      | REQUEST_TO_JOIN   |
| yes           | none                       | not yet      | yes       | any     | CREATE_ORG        |
| yes           | none                       | not yet      | no        | any     | AWAIT_INSTALLER   |

PROVE_EMAIL offers Associate My Account, where the CRM's own sign-in proves ownership.
AWAIT_INSTALLER closes the first-time race: between consent and the installer's Continue,
nobody else of the tenant can create the org and become its super administrator.

A tenant is bound to an org once (the first binding stays), by its installer, and only to
an org whose super administrator that installer is: nobody binds a tenant to an org whose
super administrator did not agree (``may_bind_tenant``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Entry(StrEnum):
    LINK_ACCOUNT = "link_account"  # R1.5: straight into the CRM account of that proven e-mail
    ACCEPT_INVITATION = "accept_invitation"  # R2.3 through the app launcher
    REQUEST_TO_JOIN = "request_to_join"  # R1.7: the tenant's org exists, not a member yet
    CREATE_ORG = "create_org"  # R1.4: the installer's first Continue
    PROVE_EMAIL = "prove_email"  # the address is not proven: Associate My Account
    AWAIT_INSTALLER = "await_installer"  # installed, the installer has not continued yet


@dataclass(frozen=True)
class CrmAccountFacts:
    """What the CRM says of the account using the person's e-mail."""

    confirmed: bool  # the CRM confirmed the address (the invitation was accepted)
    same_address: bool  # the account's e-mail is exactly the signed-in one


@dataclass(frozen=True)
class EntryFacts:
    email_proven: bool
    account: CrmAccountFacts | None
    tenant_bound: bool
    is_installer: bool
    invited: bool


def decide_entry(facts: EntryFacts) -> Entry:
    if not facts.email_proven:
        return Entry.PROVE_EMAIL
    if facts.account is not None:
        return Entry.LINK_ACCOUNT if facts.account.confirmed and facts.account.same_address else Entry.PROVE_EMAIL
    if facts.tenant_bound:
        return Entry.ACCEPT_INVITATION if facts.invited else Entry.REQUEST_TO_JOIN
    return Entry.CREATE_ORG if facts.is_installer else Entry.AWAIT_INSTALLER


def may_bind_tenant(*, is_installer: bool, tenant_bound: bool, is_super_admin: bool) -> bool:
    """Whether linking this person also gives their tenant this org."""
    return is_installer and not tenant_bound and is_super_admin


def may_request_to_join(*, email_proven: bool, tenant_bound: bool, is_member: bool, paid: bool) -> bool:
    """A request names the address the org's managers will add: it must be the person's; and
    only a paid edition lets anyone approve it (R2), so a free org takes none (issue 23)."""
    return email_proven and tenant_bound and not is_member and paid
