"""The CRM's access token that comes with a member's authorisation, kept as their first token.

Linking a member (Associate My Account's sign-in, an invitation's or an approval's grant) gets
a refresh token and an access token valid for an hour. Only the refresh token used to be kept,
so the member's first CRM call (usually their Enable) spent one of Zoho's ten refreshes per ten
minutes and minted a second live access token. The access token is handed to the CRM's token
cache instead (``AccessTokens.adopt``), when the member row kept this authorisation's refresh
token (a twin click may have linked them with the other one). Best effort: without it, the
first call refreshes, as before."""

from __future__ import annotations

import logging
from collections.abc import Callable

from shared.accounts.models import MemberIdentity
from shared.identity.token_cipher import TokenCipher

log = logging.getLogger(__name__)

# (member, access token, its API domain, seconds it lives)
AdoptToken = Callable[[MemberIdentity, str, str, int], None]


def adopt_issued_token(adopt: AdoptToken | None, cipher: TokenCipher, linked: MemberIdentity, *, refresh_token: str | None,
                       access_token: str, api_domain: str, expires_in: int) -> None:
    if adopt is None or not refresh_token or not linked.refresh_token_encrypted:
        return
    if cipher.decrypt(linked.refresh_token_encrypted) != refresh_token:
        return  # linked earlier with another authorisation: this token is not theirs to use
    try:
        adopt(linked, access_token, api_domain, expires_in)
    except Exception as error:  # noqa: BLE001 - an optimisation: the first call refreshes instead
        log.warning("the CRM access token of %s was not kept: %s", linked.partition_key, error)
