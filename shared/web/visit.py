"""One page visit: the session (started when missing), the signed-in person, CSRF, and
the common refusals, so each page flow reads as its steps."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.accounts.models import MemberIdentity
from shared.accounts.repository import AccountsRepository
from shared.http_messages import Cookie, WebRequest, WebResponse
from shared.identity.csrf import form_is_genuine
from shared.identity.sessions import PendingFlow, SessionExpired, SessionRow, SessionStore, SignedInUser
from shared.storage import ConcurrencyConflict
from shared.web.pages import message

# Our largest form (the Add User window with 50 people ticked) is a few KiB; anything far
# beyond is refused before it is read, so no flow ever acts on it.
MAX_FORM_BYTES = 64 * 1024


class Refusal(Exception):
    """Stop the flow and answer with this page (nothing was changed)."""

    def __init__(self, response: WebResponse) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass
class Visit:
    request: WebRequest
    store: SessionStore
    session: SessionRow
    etag: str
    new: bool
    cookies: list[Cookie] = field(default_factory=list)

    @classmethod
    def open(cls, store: SessionStore, request: WebRequest, *, start: bool = True) -> Visit:
        try:
            loaded = store.load(request)
        except SessionExpired:
            raise Refusal(expired(request, store)) from None
        if loaded is None:
            if not start:
                raise Refusal(expired(request, store))
            row, etag = store.start()
            return cls(request, store, row, etag, new=True, cookies=[store.cookie(row)])
        return cls(request, store, loaded[0], loaded[1], new=False)

    @property
    def user(self) -> SignedInUser:
        if self.session.user is None:
            raise Refusal(expired(self.request, self.store))
        return self.session.user

    def save(self) -> None:
        try:
            self.etag = self.store.save(self.session, self.etag)
        except ConcurrencyConflict:
            # Another tab changed the session at the same moment: ask the person to retry.
            raise Refusal(message(self.request, "error.title", "error.body", status=409)) from None

    def renew_session(self, user: SignedInUser | None) -> None:
        """Go on in a fresh session for ``user`` (new id and CSRF token, the old one ended):
        called wherever the identity of the visit changes, so a cookie known before (planted
        by someone else) is never the signed-in session."""
        self.session, self.etag = self.store.renew(self.session, user)
        self.cookies = [c for c in self.cookies if c.name != self.store.cookie_name] + [self.store.cookie(self.session)]

    def add_flow(self, state: str, flow: PendingFlow) -> None:
        self.session.flows[state] = flow
        self.save()

    def take_flow(self, state: str | None, kind: str) -> PendingFlow:
        taken = self.store.take_flow(self.session, self.etag, state or "", kind)
        if taken is None:
            raise Refusal(message(self.request, "signin.failed.title", "signin.replayed.body", status=400))
        flow, self.etag = taken
        return flow

    def member(self, accounts: AccountsRepository) -> MemberIdentity:
        """The signed-in person's CRM membership, or a refusal saying they are not a member yet."""
        user = self.user
        member = accounts.member_of(user.tenant_id, user.object_id)
        if member is None:
            raise Refusal(message(self.request, "member.required.title", "member.required.body", status=403))
        return member

    def require_form(self, public_base_url: str) -> dict[str, str]:
        if len(self.request.body) > MAX_FORM_BYTES:
            raise Refusal(message(self.request, "form.too_large.title", "form.too_large.body", status=413))
        if not form_is_genuine(self.request, self.session.csrf_token, public_base_url):
            raise Refusal(message(self.request, "csrf.title", "csrf.body", status=403))
        return self.request.form()

    def answer(self, response: WebResponse) -> WebResponse:
        response.cookies.extend(self.cookies)
        return response


def expired(request: WebRequest, store: SessionStore) -> WebResponse:
    response = message(request, "signin.expired.title", "signin.expired.body", status=401)
    response.cookies.append(store.clear_cookie())
    return response
