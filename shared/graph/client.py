"""Simple Microsoft Graph v1.0 calls (pages, mail) over the one sending path, ``GraphMailbox``.

A call on a user's Outlook data (``/users/{id}/sendMail``, ``.../events``...) goes through
that mailbox's gate, so it counts against the mailbox's limits with the sync's own calls, in
this process and, with ``gates`` (``SharedMailboxes.gate``, deployed), in every instance.
Directory calls (``/users``, ``/users/{id}``, ``/organization``) are not Outlook calls: they
take no gate. Retries (429 with ``Retry-After``, 503, a repeatable call's 502/504) and errors
are ``GraphMailbox.send``'s: a failure raises the ``shared.graph.errors`` class of its answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlencode

import requests

from shared.graph.batch import GraphRequest
from shared.graph.gate import MailboxGate, gate_for
from shared.graph.mailbox import GraphMailbox
from shared.graph.pacing import Pacing

# The Outlook resources under /users/{id} (throttling-limits, "Outlook service limits").
OUTLOOK_RESOURCES = frozenset({
    "calendar", "calendars", "calendargroups", "calendarview", "contactfolders", "contacts", "events",
    "findmeetingtimes", "inferenceclassification", "mailboxsettings", "mailfolders", "messages",
    "outlook", "sendmail", "getschedule",
})
_USER_RESOURCE = re.compile(r"^/users/([^/?]+)/([^/?(]+)")


def mailbox_of(path: str) -> str | None:
    """The user whose mailbox ``path`` (relative to the version root) reads or writes; None for
    a call that is not an Outlook one."""
    match = _USER_RESOURCE.match(path)
    if match is None or match.group(2).lower() not in OUTLOOK_RESOURCES:
        return None
    return unquote(match.group(1))


class GraphClient:
    """Graph calls with one token (an app-only one for a tenant, or a person's delegated one)."""

    def __init__(self, base_url: str, token: Callable[[], str], session: requests.Session, *,
                 tenant_id: str = "", gates: Callable[[str], MailboxGate] | None = None,
                 pacing: Pacing | None = None) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._session = session
        self._tenant_id = tenant_id
        self._gates = gates or gate_for
        self._pacing = pacing or Pacing()

    def request(self, method: str, path: str, *, params: dict[str, str] | None = None, json: Any = None,
                headers: dict[str, str] | None = None, idempotent: bool | None = None,
                attempts: int | None = None) -> dict[str, Any]:
        """Send ``method path`` (relative to the version root, or a link Graph gave); return the
        JSON answer ({} when empty). ``idempotent``: whether a POST may be sent twice (GET,
        PUT, PATCH, DELETE may). ``attempts``: at most this many sends. Raises a
        ``GraphError`` (``MailboxThrottled``, ``OutcomeUnknown``, ``ItemNotFound``...)."""
        url = f"{path}{'&' if '?' in path else '?'}{urlencode(params)}" if params else path
        relative = url[len(self._base):] if url.startswith(self._base + "/") else url
        user = mailbox_of(relative)
        pacing = self._pacing if attempts is None else Pacing(
            max_wait_seconds=self._pacing.max_wait_seconds, max_attempts=attempts,
            backoff_base_seconds=self._pacing.backoff_base_seconds,
            backoff_cap_seconds=self._pacing.backoff_cap_seconds, timeout_seconds=self._pacing.timeout_seconds)
        # A directory call takes no gate (``gated=False``: its placeholder gate is never used).
        gate = MailboxGate() if user is None else self._gates(f"{self._tenant_id}/{user}")
        sender = GraphMailbox(self._base, user or "", self._token, self._session, tenant_id=self._tenant_id,
                              pacing=pacing, gate=gate, immutable_ids=user is not None)
        response = sender.send(GraphRequest(method=method, url=url, body=json, headers=headers or {},
                                            repeatable=idempotent), gated=user is not None)
        if not response.ok:
            raise response.error()
        return response.json_object()

    def organization(self) -> dict[str, Any]:
        values = self.request("GET", "/organization").get("value") or []
        return dict(values[0]) if values else {}
