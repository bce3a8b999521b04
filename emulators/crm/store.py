"""The emulator's whole state, in memory, behind one lock.

Everything the API, the pages, provisioning and the control surface read or change lives here,
so a snapshot is one JSON dump and a reset is one call. Secrets (passwords aside, which are demo
values) are kept only as SHA-256 hashes: tokens are looked up by the hash of what the client sends.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from typing import Any

# Zoho ids are numeric strings of up to 19 digits; one counter keeps them unique and increasing,
# so sorting by id is sorting by creation order, as in the real CRM.
ID_BASE = 5725767000000000000


class Clock:
    """Wall clock plus an offset the control surface can advance, so expiry tests need not sleep."""

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds

    def reset(self) -> None:
        self._offset = 0.0

    @property
    def offset(self) -> float:
        return self._offset


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret(nbytes: int = 16) -> str:
    return secrets.token_hex(nbytes)


def format_time(epoch: float, offset: str) -> str:
    """ISO-8601 with seconds and an explicit offset, e.g. 2026-08-25T10:00:00-05:00."""
    sign = -1 if offset.startswith("-") else 1
    hours, minutes = offset[1:].split(":")
    tz = timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))
    return datetime.fromtimestamp(epoch, tz).isoformat(timespec="seconds")


def parse_time(value: Any) -> float | None:
    """Epoch seconds of an ISO-8601 date-time that carries an offset; None if it is not one."""
    if not isinstance(value, str) or len(value) < 19 or "T" not in value:
        return None
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


class Store:
    def __init__(self, clock: Clock | None = None) -> None:
        self.lock = threading.RLock()
        self.clock = clock or Clock()
        self.clear()

    def clear(self) -> None:
        with self.lock:
            self._next_id = 100_000
            self.clients: dict[str, dict[str, Any]] = {}
            self.accounts: dict[str, dict[str, Any]] = {}  # zuid -> Zoho account (a person's login)
            self.orgs: dict[str, dict[str, Any]] = {}
            self.users: dict[str, dict[str, Any]] = {}  # CRM user id -> membership of one account in one org
            self.profiles: dict[str, dict[str, Any]] = {}
            self.roles: dict[str, dict[str, Any]] = {}
            self.records: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}  # org -> module -> id -> record
            self.deleted: dict[str, dict[str, list[dict[str, Any]]]] = {}  # org -> module -> entries
            self.codes: dict[str, dict[str, Any]] = {}
            self.refresh_tokens: dict[str, dict[str, Any]] = {}
            self.access_tokens: dict[str, dict[str, Any]] = {}
            self.consents: set[tuple[str, str]] = set()  # (client_id, zuid) that consented once
            self.sessions: dict[str, str] = {}  # session id -> zuid
            self.signin_links: dict[str, dict[str, Any]] = {}
            self.page_tokens: dict[str, dict[str, Any]] = {}
            self.channels: dict[str, dict[str, dict[str, Any]]] = {}  # org -> channel id -> channel
            self.deliveries: deque[dict[str, Any]] = deque(maxlen=2000)
            self.default_edition = "standard"

    def new_id(self) -> str:
        with self.lock:
            self._next_id += 1
            return str(ID_BASE + self._next_id)

    def now(self) -> float:
        return self.clock.now()

    # --- lookups used everywhere -------------------------------------------------------------
    def account_by_email(self, email: str) -> dict[str, Any] | None:
        wanted = (email or "").strip().lower()
        return next((a for a in self.accounts.values() if a["email"].lower() == wanted), None)

    def memberships(self, zuid: str) -> list[dict[str, Any]]:
        return [u for u in self.users.values() if u["zuid"] == zuid and u["status"] != "deleted"]

    def org_users(self, org_id: str) -> list[dict[str, Any]]:
        return [u for u in self.users.values() if u["org_id"] == org_id]

    def profile_by_name(self, org_id: str, name: str) -> dict[str, Any] | None:
        return next((p for p in self.profiles.values() if p["org_id"] == org_id
                     and (p["name"].lower() == str(name).lower() or p["id"] == str(name))), None)

    def role_by_name(self, org_id: str, name: str) -> dict[str, Any] | None:
        return next((r for r in self.roles.values() if r["org_id"] == org_id
                     and (r["name"].lower() == str(name).lower() or r["id"] == str(name))), None)

    def module_records(self, org_id: str, module: str) -> dict[str, dict[str, Any]]:
        return self.records.setdefault(org_id, {}).setdefault(module, {})

    def org_time(self, org_id: str, epoch: float | None = None) -> str:
        return format_time(self.now() if epoch is None else epoch, self.orgs[org_id]["utc_offset"])
