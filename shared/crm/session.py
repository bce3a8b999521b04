"""One member's calls to the CRM API: their access token, the org's concurrency, throttling.

Every call of the records, watch and permission clients goes through ``CrmSession.call``:

- the access token comes from ``AccessTokens``; a 401 ``INVALID_TOKEN`` drops it, refreshes
  once and repeats the call; any 401 after that is ``CrmAuthorizationLost``;
- the CRM counts calls in flight per org and app and answers 429 beyond its edition's limit:
  deployed, the edition's limit (less one) is kept by every instance together
  (``shared.storage.shared_slots``), with the smaller pool of heavy calls (writes of more than
  ten records) beside it; alone, at most ``org_concurrency`` per process. The edition is learnt
  from the CRM once an hour per org (``shared.crm.editions``); until then, the free edition's.
  A slot is held only while a request is on the wire, never while backing off;
- a 429 is retried with exponential back-off and jitter (Zoho sends no ``Retry-After``; one
  is honoured if it ever does). Zoho answers 429 when it *refuses* a call (concurrency or
  credits), before doing anything, so even a create is safe to repeat after a 429;
- 5xx and network failures are retried only for calls that are safe to repeat. For a create
  they raise ``CrmOutcomeUnknown``: the CRM may have applied it.

``shared.transport.retry.send`` is not used for the sending itself: it treats 429 and 503
alike (a create may not be repeated after a 503) and would hold the org slot while sleeping.
The waits are every send path's (``shared.transport.backoff``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import requests
from pydantic import BaseModel, SecretStr

from shared.crm.editions import EDITION_CONCURRENCY, SUB_CONCURRENCY, OrgEditions, edition_of
from shared.crm.errors import CrmError, CrmUnavailable
from shared.crm.models import CrmMemberAccess
from shared.crm.oauth import CrmTokens
from shared.crm.tokens import AccessToken, AccessTokens, CrmAuthorizationLost
from shared.storage.shared_slots import SharedSlots, SlotsExhausted
from shared.transport.backoff import wait_seconds
from shared.transport.retry import MAX_WAIT_SECONDS

TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})


class CrmOutcomeUnknown(CrmUnavailable):
    """A call that must not be repeated blindly (a create) failed after it may have reached
    the CRM: whether it was applied is unknown. Look for the records before creating again."""


class CrmCallPolicy(BaseModel):
    """How hard to push one org. Defaults suit several Function instances sharing an org:
    the free edition allows 5 concurrent calls per org, so one process takes at most 4."""

    org_concurrency: int = 4
    max_attempts: int = 8  # per call, 429s and transient failures together
    backoff_seconds: float = 0.5  # first wait; doubles per attempt, with jitter
    max_backoff_seconds: float = 8.0
    timeout_seconds: float = 30.0


class OrgSlots:
    """The CRM calls in flight per org. Alone, a bounded semaphore per org in this process
    (``org_concurrency`` at most, so that a few processes stay inside the edition's limit).
    With ``shared`` (deployed), the edition's whole limit kept by every instance together
    through Table Storage (``shared.storage.shared_slots``, issue 20)."""

    def __init__(self, policy: CrmCallPolicy, shared: SharedSlots | None = None) -> None:
        self._policy = policy
        self._shared = shared
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def size_for(self, edition: str | None) -> int:
        edition_limit = EDITION_CONCURRENCY.get((edition or "").lower(), self._policy.org_concurrency)
        if self._shared is not None:
            # One below the edition's limit: the CRM counts a call until its answer has left, a
            # moment after we count it done, so a call started at once after would be the 6th of 5.
            known = (edition or "").lower() in EDITION_CONCURRENCY
            return max(1, (edition_limit if known else min(edition_limit, EDITION_CONCURRENCY["free"])) - 1)
        return max(1, min(self._policy.org_concurrency, edition_limit))

    def of(self, org_id: str, edition: str | None) -> AbstractContextManager[object]:
        if self._shared is not None:
            return _SharedOrgSlot(self._shared, f"crm|{org_id}", self.size_for(edition), self._policy.timeout_seconds * 2)
        with self._lock:
            slot = self._slots.get(org_id)
            if slot is None:
                slot = self._slots[org_id] = threading.BoundedSemaphore(self.size_for(edition))
            return slot

    def heavy_of(self, org_id: str, edition: str | None) -> AbstractContextManager[object]:
        """The pool of heavy calls (held around the org's slot): only where the org's slots
        outnumber it; otherwise the org's slots already keep it."""
        if self._shared is None or self.size_for(edition) < SUB_CONCURRENCY:
            return nullcontext()
        return _SharedOrgSlot(self._shared, f"crmheavy|{org_id}", SUB_CONCURRENCY - 1, self._policy.timeout_seconds * 2)


class _SharedOrgSlot:
    """``with`` one of the org's slots across every instance (waiting for one is throttling
    by us: the CRM's 429 is never earned)."""

    def __init__(self, shared: SharedSlots, key: str, limit: int, timeout: float) -> None:
        self._shared, self._key, self._limit, self._timeout = shared, key, limit, timeout

    def __enter__(self) -> None:
        try:
            self._shared.acquire(self._key, self._limit, self._timeout)
        except SlotsExhausted as busy:
            raise CrmUnavailable(429, "ORG_BUSY", f"every CRM call slot of the org stayed busy ({busy})") from None

    def __exit__(self, *exc: object) -> None:
        self._shared.release(self._key)


@dataclass(frozen=True)
class CrmResponse:
    status: int
    body: dict[str, Any]  # {} for 204 and 304


class CrmSession:
    """Calls the CRM API v8 as one member. Thread-safe if ``http`` is used thread-safely
    (requests' Session is, for plain requests with a shared connection pool)."""

    def __init__(
        self,
        member: CrmMemberAccess,
        tokens: AccessTokens | GivenToken,
        http: requests.Session,
        slots: OrgSlots | None,
        policy: CrmCallPolicy,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``slots`` None: a sign-in's calls, made before the org is known (see ``signed_in``)."""
        self.member = member
        self._tokens = tokens
        self._http = http
        self._slot: AbstractContextManager[object] = slots.of(member.org_id, member.edition) if slots else nullcontext()
        self._heavy_slot = slots.heavy_of(member.org_id, member.edition) if slots else nullcontext()
        self._policy = policy
        self._sleep = sleep

    def call(
        self,
        method: str,
        path: str,
        *,
        repeatable: bool,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        batch_key: str | None = None,
        heavy: bool = False,
    ) -> CrmResponse:
        """Send ``method path`` (relative to ``{api_domain}/crm/v8``) and return the answer.

        ``repeatable``: the call may be sent twice without harm (reads, updates, deletes,
        channel set-up). ``batch_key``: for batch writes, a 400 whose body still lists
        per-item results under this key (everything failed) is returned, not raised.
        ``heavy``: a call the CRM counts in its smaller pool of heavy calls (a write of more
        than ``HEAVY_RECORDS`` records).
        Raises ``CrmAuthorizationLost``, ``CrmUnavailable`` (throttled or unreachable after
        retries), ``CrmOutcomeUnknown``, or ``CrmError`` for the CRM's other refusals.
        """
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            token = self._tokens.get(self.member)
            try:
                response = self._send(token, method, path, params, json, headers, heavy)
            except requests.RequestException as error:
                if repeatable and attempt < self._policy.max_attempts:
                    self._sleep(self._backoff(attempt, None))
                    continue
                error_class = CrmUnavailable if repeatable else CrmOutcomeUnknown
                raise error_class(0, "UNREACHABLE", f"the CRM could not be reached ({type(error).__name__})") from error
            body = _json_body(response)
            status = response.status_code
            code = str(body.get("code", "")) if isinstance(body, dict) else ""
            if status == 401:
                if code == "INVALID_TOKEN" and not refreshed:
                    # Expired early, or revoked and re-granted: one fresh token, one more try.
                    self._tokens.invalidate(self.member, token)
                    refreshed = True
                    attempt -= 1
                    continue
                raise CrmAuthorizationLost(401, code or "UNAUTHORIZED", _message(body, response))
            if status == 429 or (status in TRANSIENT_STATUSES and repeatable):
                if attempt < self._policy.max_attempts:
                    self._sleep(self._backoff(attempt, response))
                    continue
                raise CrmUnavailable(status, code or "TOO_MANY_REQUESTS", _message(body, response))
            if status in TRANSIENT_STATUSES:
                raise CrmOutcomeUnknown(status, code or "INTERNAL_ERROR", _message(body, response))
            if status >= 400:
                if batch_key and isinstance(body.get(batch_key), list):
                    return CrmResponse(status, body)
                details = body.get("details")
                raise CrmError(status, code or f"HTTP_{status}", _message(body, response),
                               details if isinstance(details, dict) else None)
            return CrmResponse(status, body)

    def _send(
        self,
        token: AccessToken,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        heavy: bool = False,
    ) -> requests.Response:
        all_headers = {
            "Authorization": f"Zoho-oauthtoken {token.value}",
            # A person in several orgs of one data centre: act in the member's org, always (a
            # sign-in, which asks which org it is, acts in the person's default one).
            **({"X-CRM-ORG": self.member.org_id} if self.member.org_id else {}),
            **(headers or {}),
        }
        url = f"{token.api_domain.rstrip('/')}/crm/v8{path}"
        with self._heavy_slot if heavy else nullcontext(), self._slot:
            return self._http.request(
                method, url, params=params, json=json, headers=all_headers, timeout=self._policy.timeout_seconds
            )

    def _backoff(self, attempt: int, response: requests.Response | None) -> float:
        return wait_seconds(response.headers if response is not None else None, attempt, base=self._policy.backoff_seconds,
                            cap=self._policy.max_backoff_seconds, longest=MAX_WAIT_SECONDS)


class CrmSessions:
    """Builds ``CrmSession``s that share one token cache, one set of org slots and one HTTP
    session: one instance per process."""

    def __init__(
        self,
        tokens: AccessTokens,
        http: requests.Session,
        policy: CrmCallPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        shared_slots: SharedSlots | None = None,
        editions: OrgEditions | None = None,
    ) -> None:
        self.tokens = tokens
        self.policy = policy or CrmCallPolicy()
        self.slots = OrgSlots(self.policy, shared_slots)
        self.editions = editions or OrgEditions()
        self._http = http
        self._sleep = sleep
        self._asking: set[str] = set()
        self._asking_lock = threading.Lock()

    def signed_in(self, tokens: CrmTokens) -> CrmSession:
        """The person who just signed in to the CRM, with the access token the sign-in gave,
        before they are a member: the same retries, back-off and errors as a member's calls
        (one send path), no org slot (their org is what the calls ask; two calls per sign-in)."""
        person = CrmMemberAccess(org_id="", user_id="", accounts_server=tokens.accounts_server, api_domain=tokens.api_domain,
                                 refresh_token=SecretStr(""))
        return CrmSession(person, GivenToken(tokens), self._http, None, self.policy, sleep=self._sleep)

    def for_member(self, member: CrmMemberAccess) -> CrmSession:
        if member.edition is None:
            member = member.model_copy(update={"edition": self._edition(member)})
        return CrmSession(member, self.tokens, self._http, self.slots, self.policy, sleep=self._sleep)

    def _edition(self, member: CrmMemberAccess) -> str | None:
        """The org's edition, asked of the CRM (one ``GET /org``) when this process has not
        asked in the last hour. One caller per org asks; the others meanwhile keep the free
        edition's limit. Any failure leaves it unknown: the call that follows meets it again."""
        asked, edition = self.editions.known(member.org_id)
        if asked:
            return edition
        with self._asking_lock:
            if member.org_id in self._asking:
                return None
            self._asking.add(member.org_id)
        try:
            session = CrmSession(member, self.tokens, self._http, self.slots, self.policy, sleep=self._sleep)
            edition = edition_of(session.call("GET", "/org", repeatable=True).body)
        except CrmError:  # also a lost authorisation: the call that follows says so
            edition = None
        finally:
            with self._asking_lock:
                self._asking.discard(member.org_id)
        self.editions.learn(member.org_id, edition)
        return edition


class GivenToken:
    """The access token a sign-in just redeemed, used as it is: the person's refresh token is
    not stored yet, so it is never refreshed, and once the CRM refuses it, it stays refused."""

    def __init__(self, tokens: CrmTokens, clock: Callable[[], float] = time.time) -> None:
        self._token = AccessToken(tokens.access_token, tokens.api_domain, clock() + tokens.expires_in)
        self._refused = False

    def get(self, member: CrmMemberAccess) -> AccessToken:
        if self._refused:
            raise CrmAuthorizationLost(401, "INVALID_TOKEN", "the CRM refused the token its sign-in just gave")
        return self._token

    def invalidate(self, member: CrmMemberAccess, token: AccessToken) -> None:
        self._refused = True


def _json_body(response: requests.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _message(body: dict[str, Any], response: requests.Response) -> str:
    return str(body.get("message") or response.reason or "")
