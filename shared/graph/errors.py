"""Every Graph failure, as one tree of exceptions (all ``GraphError``s), whichever call path
met it: ``GraphMailbox`` (sync, one mailbox) and ``GraphClient`` (pages, mail) both turn a
failed answer into an exception with ``error_for``, so one 404 is one class everywhere.

``GraphError`` carries Graph's own ``error.code`` so callers decide on codes, never messages.
``GraphUnavailable``: Graph could not be reached, or kept throttling or failing after our retries.
The ones sync decides on; callers branch on the class, never on messages (graph-notes §10):

- ``ContainerGone``: our Zoho CRM calendar or contact folder is gone (404 ErrorItemNotFound on
  the container itself): handled as Disable (SPEC R3.8, R4.9).
- ``ItemNotFound``: one event or contact is gone (a confirmed 404, an explicit delete signal).
- ``DeltaExpired``: the delta token is no longer valid (410, syncStateNotFound, resyncRequired):
  start a new round from scratch.
- ``MailboxThrottled``: throttling or transient failures outlasted the wait budget; a retryable
  ``GraphUnavailable`` carrying how long to wait, so the queue message is deferred, not slept on.
- ``OutcomeUnknown``: a request that is not safe to repeat may or may not have been applied
  (timeout, 5xx other than 503): look the item up by our extended property before retrying.
- ``AccessDenied``: 401/403: the member's sync is paused with a reason, not retried forever.
- ``ContainerNameTaken``: a calendar or folder with our name exists but is not tagged as ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, request_id: str = "") -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id


class GraphUnavailable(GraphError):
    """Graph could not be reached, or kept throttling or failing after our retries."""


DELTA_EXPIRED_CODES = {"syncstatenotfound", "resyncrequired", "syncstateinvalid"}


class ItemNotFound(GraphError):
    """404 ErrorItemNotFound for an event or contact."""


class ContainerGone(ItemNotFound):
    """The calendar or contact folder itself answered 404 ErrorItemNotFound (SPEC R3.8, R4.9)."""

    def __init__(self, kind: str, container_id: str, request_id: str = "") -> None:
        super().__init__(404, "ErrorItemNotFound", f"the {kind} {container_id} is gone", request_id)
        self.kind = kind
        self.container_id = container_id


class CalendarGone(ContainerGone):
    def __init__(self, calendar_id: str, request_id: str = "") -> None:
        super().__init__("calendar", calendar_id, request_id)


class ContactFolderGone(ContainerGone):
    def __init__(self, folder_id: str, request_id: str = "") -> None:
        super().__init__("contact folder", folder_id, request_id)


class DeltaExpired(GraphError):
    """The delta state is gone: drop the stored link and start a new round (full resync)."""


class AccessDenied(GraphError):
    """401 or 403: the token or the consent no longer allows this call."""


class MailboxThrottled(GraphUnavailable):
    """Still throttled or failing once the wait budget was spent; retry after ``retry_after`` seconds.

    ``completed`` holds the results that did finish when the failure ended a multi-request
    call (their effects happened; the caller records them before deferring).
    """

    def __init__(self, status: int, code: str, message: str, request_id: str = "", *,
                 retry_after: float = 0.0, completed: Any = None) -> None:
        super().__init__(status, code, message, request_id)
        self.retry_after = retry_after
        self.completed = completed


class OutcomeUnknown(GraphUnavailable):
    """A non-repeatable request failed in a way that does not say whether it was applied."""


class ContainerNameTaken(GraphError):
    """A calendar or contact folder with our name exists and is not ours (no tag)."""

    def __init__(self, kind: str, name: str, existing_id: str) -> None:
        super().__init__(409, "ErrorFolderExists", f"a {kind} named {name!r} exists and is not ours")
        self.name = name
        self.existing_id = existing_id


def error_parts(body: Any) -> tuple[str, str]:
    """(code, message) of Graph's ``{"error": {"code", "message"}}`` body, tolerant of other shapes."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return "unknown", str(body)[:200] if body else ""
    return str(error.get("code") or "unknown"), str(error.get("message") or "")


def error_for(status: int, body: Any, request_id: str = "") -> GraphError:
    """The exception for a failed Graph answer (single request or ``$batch`` item)."""
    code, message = error_parts(body)
    if status == 410 or code.lower() in DELTA_EXPIRED_CODES:
        return DeltaExpired(status, code, message, request_id)
    if status in (401, 403):
        return AccessDenied(status, code, message, request_id)
    if status == 404 and code == "ErrorItemNotFound":
        return ItemNotFound(status, code, message, request_id)
    if status in (429, 502, 503, 504):
        return GraphUnavailable(status, code, message, request_id)
    return GraphError(status, code, message, request_id)
