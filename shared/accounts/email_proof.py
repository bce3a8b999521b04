"""When the e-mail address of a Microsoft sign-in is proof that the address is the person's
(issue 18 §1, Microsoft's "nOAuth" guidance). Pure.

The ``email`` claim is the user's ``mail`` attribute, which any administrator of any tenant
may set to any address; ``preferred_username`` is no better. An address is proven only when
its domain is a **verified domain of the tenant the person signed in with**: Entra says so in
the optional ``xms_edov`` claim, and the tenant lists its verified domains in Graph
(``GET /organization``). When both are known both must agree; a claim saying "not verified"
is never overruled.
"""

from __future__ import annotations

from collections.abc import Iterable


def mail_domain(email: str) -> str | None:
    """The lower-case domain of a plausible address, or None."""
    text = email.strip()
    local, at, domain = text.partition("@")
    if not at or not local or not domain or "@" in domain or "." not in domain or any(c.isspace() for c in text):
        return None
    return domain.lower().rstrip(".")


def email_proven(email: str, *, edov: bool | None, verified_domains: Iterable[str] | None) -> bool:
    """Whether ``email`` is proven: ``edov`` is the ``xms_edov`` claim (None when absent),
    ``verified_domains`` the tenant's verified domains (None when they could not be read)."""
    domain = mail_domain(email)
    if domain is None or edov is False:
        return False
    if verified_domains is None:
        return edov is True
    return domain in {d.strip().lower().rstrip(".") for d in verified_domains}
