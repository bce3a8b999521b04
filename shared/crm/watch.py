"""CRM notifications (``/actions/watch``): channels, and checking the callbacks that arrive
on our webhook. The sync keeps one channel per org and module (``shared.sync.org_channels``,
issue 20), made, renewed and disabled with the CRM access of one member of the org.

A channel lives at most a week: an expiry further ahead is silently replaced by the CRM's
default of **one hour**, so ``channel_expiry`` caps the lifetime a little under a week and
the renewal timer extends it (PATCH) well before it ends. Channel ids live in the CRM org's
namespace, so they are random 18-digit numbers (the CRM wants a long) that no two channels share.

The callback checks are pure functions, for the webhook trigger: parse the body (a channel
id that is not one of ours in shape is malformed, so nothing else can become a Table key),
refuse a missing or oversized token before any lookup, look the channel up in our storage,
compare the token in constant time.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.crm.errors import CrmError
from shared.crm.models import Module
from shared.crm.session import CrmSession

MAX_LIFETIME = timedelta(days=7)
# Under the week, so clock skew between us and the CRM never tips it into the 1-hour default.
DEFAULT_LIFETIME = MAX_LIFETIME - timedelta(minutes=30)
MAX_TOKEN_LENGTH = 50
# The channel ids we make (``new_channel_id``): a positive long of the CRM, in decimal.
CHANNEL_ID = re.compile(r"^[1-9][0-9]{0,18}$")


class WatchChannel(BaseModel):
    """A channel as we asked for it and as the CRM confirmed it (``expires_at``)."""

    channel_id: str
    events: list[str]
    notify_url: str
    token: str
    expires_at: datetime


class CallbackRejected(ValueError):
    """An incoming callback we must not act on; ``reason`` is a short code for logs."""

    def __init__(self, reason: Literal["malformed", "unknown_channel", "bad_token"], detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class WatchCallback(BaseModel):
    """The body the CRM POSTs to ``notify_url`` (one per write call, at most 100 ids)."""

    model_config = ConfigDict(extra="ignore")

    channel_id: str
    module: str
    operation: Literal["insert", "update", "delete"]
    ids: list[str] = Field(min_length=1)
    token: str | None = None
    server_time: int | None = None  # epoch milliseconds
    resource_uri: str | None = None
    query_params: dict[str, Any] = {}
    affected_fields: list[dict[str, list[str]]] = []
    affected_values: list[dict[str, Any]] = []

    @field_validator("channel_id", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("channel_id")
    @classmethod
    def _a_channel_id_of_ours(cls, value: str) -> str:
        if not CHANNEL_ID.fullmatch(value) or int(value) >= 2**63:
            raise ValueError("not a channel id (a positive long)")
        return value

    @field_validator("ids", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        return [str(i) for i in value] if isinstance(value, list) else value


def new_channel_id() -> str:
    """A random channel id: 18 digits, below 2**63 (the CRM's long)."""
    return str(10**17 + secrets.randbelow(9 * 10**17))


def new_channel_token() -> str:
    """A verification token for a channel: 43 URL-safe characters (the CRM keeps up to 50)."""
    return secrets.token_urlsafe(32)


def channel_expiry(now: datetime, lifetime: timedelta = DEFAULT_LIFETIME) -> datetime:
    """The expiry to ask for: ``now + lifetime``, never more than the CRM's week."""
    return (now + min(lifetime, MAX_LIFETIME - timedelta(minutes=1))).replace(microsecond=0)


def watch_events(module: Module) -> list[str]:
    return [f"{module}.all"]


def parse_callback(body: bytes | str) -> WatchCallback:
    """The callback in ``body``; ``CallbackRejected("malformed")`` when it is not one (a
    channel id not in our shape included), ``("bad_token")`` when it carries no token we
    could have issued: both before anything is looked up."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as error:  # RecursionError: nesting deeper than the parser goes
        raise CallbackRejected("malformed", "not JSON") from error
    if not isinstance(data, dict):
        raise CallbackRejected("malformed", "not a JSON object")
    try:
        callback = WatchCallback.model_validate(data)
    except ValidationError as error:
        fields = ",".join(str(e["loc"][0]) for e in error.errors() if e["loc"])
        raise CallbackRejected("malformed", f"bad or missing {fields}") from error
    if not callback.token or len(callback.token) > MAX_TOKEN_LENGTH:
        raise CallbackRejected("bad_token", callback.channel_id)
    return callback


def verify_callback(callback: WatchCallback, expected_token: str | None) -> None:
    """Accept the callback only for a channel we know (``expected_token`` is the token stored
    with it; None: we know no such channel) and whose token matches, in constant time."""
    if expected_token is None:
        raise CallbackRejected("unknown_channel", callback.channel_id)
    if callback.token is None or not hmac.compare_digest(callback.token.encode(), expected_token.encode()):
        raise CallbackRejected("bad_token", callback.channel_id)


class CrmWatch:
    """Enable, renew, inspect and disable watch channels, as one member of the org."""

    def __init__(self, session: CrmSession) -> None:
        self._session = session

    def enable(
        self,
        module: Module,
        notify_url: str,
        *,
        channel_id: str | None = None,
        token: str | None = None,
        expires_at: datetime | None = None,
    ) -> WatchChannel:
        """Subscribe ``notify_url`` to every create, edit and delete of ``module``.

        Re-enabling an existing channel id replaces that channel, so this is safe to repeat.
        """
        channel_id = channel_id or new_channel_id()
        token = token or new_channel_token()
        if len(token) > MAX_TOKEN_LENGTH:
            raise ValueError(f"a channel token has at most {MAX_TOKEN_LENGTH} characters")
        expires_at = _capped(expires_at or channel_expiry(datetime.now(UTC)))
        events = watch_events(module)
        # Affected values: an edit's callback then carries what changed, which tells our own
        # write's echo from someone's change without a step (``shared.sync.echoes``).
        item = {"channel_id": channel_id, "events": events, "notify_url": notify_url, "token": token,
                "channel_expiry": _wire_time(expires_at), "return_affected_field_values": True}
        result = self._one("POST", item)
        return WatchChannel(channel_id=channel_id, events=events, notify_url=notify_url, token=token,
                            expires_at=_confirmed_expiry(result, expires_at))

    def renew(self, channel_id: str, expires_at: datetime | None = None) -> datetime:
        """Extend the channel (PATCH: only these keys change; a channel made before the callbacks
        carried their affected values starts to); returns the CRM's new expiry."""
        expires_at = _capped(expires_at or channel_expiry(datetime.now(UTC)))
        result = self._one("PATCH", {"channel_id": channel_id, "channel_expiry": _wire_time(expires_at),
                                     "return_affected_field_values": True})
        return _confirmed_expiry(result, expires_at)

    def describe(self, channel_id: str) -> dict[str, Any] | None:
        """The channel as the CRM holds it (events, notify_url, expiry ...), or None: unknown
        or expired (expired channels disappear)."""
        response = self._session.call("GET", "/actions/watch", repeatable=True, params={"channel_id": channel_id})
        for channel in response.body.get("watch") or []:
            if str(channel.get("channel_id")) == channel_id:
                return dict(channel)
        return None

    def disable(self, channel_ids: list[str]) -> None:
        """Unsubscribe these channels (repeating it is harmless)."""
        if not channel_ids:
            return
        self._session.call(
            "DELETE", "/actions/watch", repeatable=True, params={"channel_ids": ",".join(channel_ids)},
            batch_key="watch",
        )

    def _one(self, method: str, item: dict[str, Any]) -> dict[str, Any]:
        # Enabling a given channel id twice replaces it, and PATCH sets the same values:
        # both are safe to repeat after a failure.
        response = self._session.call(method, "/actions/watch", repeatable=True, json={"watch": [item]},
                                      batch_key="watch")
        results = response.body.get("watch") or [{}]
        result = results[0] if isinstance(results[0], dict) else {}
        if result.get("status") != "success":
            raise CrmError(response.status, str(result.get("code", "ERROR")), str(result.get("message", "")),
                           result.get("details") if isinstance(result.get("details"), dict) else None)
        return result


def _capped(expires_at: datetime) -> datetime:
    if expires_at.tzinfo is None:
        raise ValueError("a channel expiry needs a time zone")
    latest = datetime.now(UTC) + MAX_LIFETIME - timedelta(minutes=1)
    return min(expires_at, latest).replace(microsecond=0)


def _wire_time(value: datetime) -> str:
    return value.replace(microsecond=0).isoformat()


def _confirmed_expiry(result: dict[str, Any], asked: datetime) -> datetime:
    events = (result.get("details") or {}).get("events") or []
    raw = events[0].get("channel_expiry") if events and isinstance(events[0], dict) else None
    if not raw:
        return asked  # PATCH answers need not echo it
    try:
        return datetime.fromisoformat(str(raw))
    except ValueError:
        return asked
