"""The two pure rules of issue 18 §1: when a sign-in's e-mail is proven, and where Continue
takes a person (the table in ``shared/accounts/entry.py``), exhaustively and by property."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.accounts.email_proof import email_proven, mail_domain
from shared.accounts.entry import (
    CrmAccountFacts,
    Entry,
    EntryFacts,
    decide_entry,
    may_bind_tenant,
    may_request_to_join,
)
from shared.accounts.policy import invitation_is_for, may_install

# -- email_proven ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "edov", "domains", "proven"),
    [
        ("adele@contoso.test", None, ["contoso.test"], True),  # Graph's list alone
        ("Adele@Contoso.TEST", None, ["contoso.test"], True),  # case does not matter
        ("adele@contoso.test", True, None, True),  # the claim alone
        ("adele@contoso.test", True, ["contoso.test"], True),
        ("fabrice@fabrikam.test", None, ["mallory.test"], False),  # the attack: another tenant's domain
        ("fabrice@fabrikam.test", False, None, False),
        ("fabrice@fabrikam.test", True, ["mallory.test"], False),  # both known: both must agree
        ("adele@contoso.test", False, ["contoso.test"], False),  # a "not verified" claim is never overruled
        ("adele@contoso.test", None, None, False),  # nothing known: not proven
        ("adele@sub.contoso.test", None, ["contoso.test"], False),  # a subdomain is its own domain
        ("adele@contoso.test.evil", None, ["contoso.test"], False),
        ("", True, ["contoso.test"], False),
        ("contoso.test", True, ["contoso.test"], False),
        ("@contoso.test", True, ["contoso.test"], False),
        ("a b@contoso.test", True, ["contoso.test"], False),
        ("a@b@contoso.test", None, ["contoso.test"], False),  # not an address
    ],
)
def test_email_proven_cases(email: str, edov: bool | None, domains: list[str] | None, proven: bool) -> None:
    assert email_proven(email, edov=edov, verified_domains=domains) is proven


@given(st.text(max_size=40), st.sampled_from([None, True, False]),
       st.one_of(st.none(), st.lists(st.text(max_size=20), max_size=4)))
def test_an_address_is_proven_only_in_a_listed_domain_or_by_the_claim(
    email: str, edov: bool | None, domains: list[str] | None
) -> None:
    proven = email_proven(email, edov=edov, verified_domains=domains)
    domain = mail_domain(email)
    if proven:
        assert domain is not None and edov is not False
        assert edov is True if domains is None else domain in {d.strip().lower().rstrip(".") for d in domains}
    if edov is False or domain is None:
        assert not proven


# -- decide_entry ------------------------------------------------------------------------

ACCOUNTS = [None, *(CrmAccountFacts(confirmed=c, same_address=s) for c, s in itertools.product([True, False], repeat=2))]
ALL_FACTS = [
    EntryFacts(email_proven=p, account=a, tenant_bound=b, is_installer=i, invited=v)
    for p, a, b, i, v in itertools.product([True, False], ACCOUNTS, [True, False], [True, False], [True, False])
]


def expected(f: EntryFacts) -> Entry:
    """The docstring's table, row by row."""
    if not f.email_proven:
        return Entry.PROVE_EMAIL
    if f.account is not None and f.account.confirmed and f.account.same_address:
        return Entry.LINK_ACCOUNT
    if f.account is not None:
        return Entry.PROVE_EMAIL
    if f.tenant_bound:
        return Entry.ACCEPT_INVITATION if f.invited else Entry.REQUEST_TO_JOIN
    return Entry.CREATE_ORG if f.is_installer else Entry.AWAIT_INSTALLER


@pytest.mark.parametrize("facts", ALL_FACTS, ids=str)
def test_every_combination_follows_the_table(facts: EntryFacts) -> None:
    assert decide_entry(facts) is expected(facts)


def test_the_promises_hold_over_every_combination() -> None:
    for f in ALL_FACTS:
        verdict = decide_entry(f)
        if not f.email_proven:  # an unproven address finds, accepts and creates nothing
            assert verdict is Entry.PROVE_EMAIL
        if verdict is Entry.CREATE_ORG:  # only the installer, only for an unbound tenant, only with no account
            assert f.is_installer and not f.tenant_bound and f.account is None
        if verdict is Entry.LINK_ACCOUNT:  # only what the CRM confirmed as exactly that address
            assert f.account is not None and f.account.confirmed and f.account.same_address
    assert {decide_entry(f) for f in ALL_FACTS} == set(Entry)  # every verdict is reachable


def test_a_tenant_is_bound_only_by_its_installer_to_an_org_they_head_once() -> None:
    for installer, bound, head in itertools.product([True, False], repeat=3):
        assert may_bind_tenant(is_installer=installer, tenant_bound=bound, is_super_admin=head) == (
            installer and head and not bound
        )


def test_a_request_to_join_needs_a_proven_address_a_bound_tenant_of_a_paid_edition_and_no_membership() -> None:
    for proven, bound, member, paid in itertools.product([True, False], repeat=4):
        assert may_request_to_join(email_proven=proven, tenant_bound=bound, is_member=member, paid=paid) == (
            proven and bound and not member and paid
        )


def test_only_a_consent_admin_installs() -> None:
    assert may_install(is_tenant_admin=True) and not may_install(is_tenant_admin=False)


@pytest.mark.parametrize(("invited", "signed_in", "for_them"), [
    ("megan@contoso.test", "megan@contoso.test", True),
    ("megan@contoso.test", "Megan@Contoso.TEST ", True),
    ("megan@contoso.test", "alex@contoso.test", False),
    ("megan@contoso.test", "megan@contoso.test.evil", False),
    ("", "", False),
])
def test_an_invitation_is_for_the_invited_address_only(invited: str, signed_in: str, for_them: bool) -> None:
    assert invitation_is_for(invited=invited, signed_in=signed_in) is for_them
