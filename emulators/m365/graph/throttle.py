"""Exchange Online-style throttling per (app, mailbox), plus Dev Proxy-style injected latency and faults.

Limits (throttling-limits, "Outlook service limits"): 4 concurrent requests and 10,000 requests
per 10 minutes per app per mailbox. Batch items are admitted one by one, so they count too.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

from ..errors import GraphError

WINDOW_SECONDS = 600


@dataclass
class MailboxCounters:
    total: int = 0
    concurrent: int = 0
    concurrent_peak: int = 0
    throttled: int = 0
    faults: int = 0

    def as_dict(self) -> dict:
        return {"total": self.total, "concurrentPeak": self.concurrent_peak, "throttled429": self.throttled,
                "injectedFaults": self.faults, "inFlight": self.concurrent}


@dataclass
class FaultSettings:
    latency_ms: int = 0
    latency_jitter_ms: int = 0
    rate_429: float = 0.0
    rate_503: float = 0.0
    rate_504: float = 0.0
    retry_after_seconds: float = 2
    mailbox_concurrency: int = 4
    mailbox_requests_per_10_minutes: int = 10_000
    notification_duplicate_rate: float = 0.0
    notification_drop_rate: float = 0.0  # change notifications lost on the way (never delivered, no retry)
    # Entra ID replication: for this long after a tenant's first consent to an app, the token
    # endpoint does not see the app's service principal yet (client_credentials -> AADSTS700016).
    consent_replication_seconds: float = 0.0
    seed: int | None = None
    per_mailbox: dict[str, dict] = field(default_factory=dict)

    FIELDS = ("latency_ms", "latency_jitter_ms", "rate_429", "rate_503", "rate_504", "retry_after_seconds",
              "mailbox_concurrency", "mailbox_requests_per_10_minutes", "notification_duplicate_rate",
              "notification_drop_rate", "consent_replication_seconds", "seed")

    def as_dict(self) -> dict:
        return {**{name: getattr(self, name) for name in self.FIELDS}, "per_mailbox": self.per_mailbox}


class Throttle:
    def __init__(self):
        self.lock = threading.Lock()
        self.settings = FaultSettings()
        self.random = random.Random()
        self.reset_counters()

    def reset_counters(self) -> None:
        with self.lock:
            self.in_flight: dict[tuple[str, str], int] = defaultdict(int)
            self.history: dict[tuple[str, str], deque] = defaultdict(deque)
            self.counters: dict[str, MailboxCounters] = defaultdict(MailboxCounters)
            self.requests_total = 0
            self.http_requests = 0

    def update_settings(self, values: dict) -> FaultSettings:
        with self.lock:
            fresh = FaultSettings()
            for name in FaultSettings.FIELDS:
                if name in values:
                    setattr(fresh, name, values[name])
            fresh.per_mailbox = {k.lower(): v for k, v in (values.get("per_mailbox") or {}).items()}
            for name in ("rate_429", "rate_503", "rate_504", "notification_duplicate_rate", "notification_drop_rate"):
                if not 0 <= float(getattr(fresh, name)) <= 1:
                    raise ValueError(f"{name} must be between 0 and 1")
            if not 0 <= float(fresh.consent_replication_seconds) <= 3600:
                raise ValueError("consent_replication_seconds must be between 0 and 3600")
            self.settings = fresh
            self.random = random.Random(fresh.seed)
            return fresh

    def _setting(self, mailbox_keys: tuple[str, ...], name: str):
        for key in mailbox_keys:
            override = self.settings.per_mailbox.get(key.lower())
            if override and name in override:
                return override[name]
        return getattr(self.settings, name)

    def count_http_request(self) -> None:
        with self.lock:
            self.http_requests += 1

    def admit(self, app_id: str, mailbox_id: str | None, mailbox_keys: tuple[str, ...]) -> None:
        """Count a request; 429 if the mailbox budget is exhausted. Call release() afterwards if it returns."""
        with self.lock:
            self.requests_total += 1
            if mailbox_id is None:
                return
            counters = self.counters[mailbox_keys[-1] if mailbox_keys else mailbox_id]
            counters.total += 1
            key = (app_id, mailbox_id)
            now = time.monotonic()
            history = self.history[key]
            while history and history[0] < now - WINDOW_SECONDS:
                history.popleft()
            retry = self._setting(mailbox_keys, "retry_after_seconds")
            if self.in_flight[key] >= int(self._setting(mailbox_keys, "mailbox_concurrency")):
                counters.throttled += 1
                raise GraphError(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.",
                                 headers={"Retry-After": _seconds(retry)})
            if len(history) >= int(self._setting(mailbox_keys, "mailbox_requests_per_10_minutes")):
                counters.throttled += 1
                wait = max(1, int(history[0] + WINDOW_SECONDS - now) + 1)
                raise GraphError(429, "ApplicationThrottled", "Application is over its MailboxRequestsPerTenMinutes limit.",
                                 headers={"Retry-After": str(wait)})
            history.append(now)
            self.in_flight[key] += 1
            counters.concurrent += 1
            counters.concurrent_peak = max(counters.concurrent_peak, counters.concurrent)

    def release(self, app_id: str, mailbox_id: str, mailbox_keys: tuple[str, ...]) -> None:
        with self.lock:
            key = (app_id, mailbox_id)
            self.in_flight[key] = max(0, self.in_flight[key] - 1)
            counters = self.counters[mailbox_keys[-1] if mailbox_keys else mailbox_id]
            counters.concurrent = max(0, counters.concurrent - 1)

    def inject(self, mailbox_keys: tuple[str, ...], counter_key: str | None) -> None:
        """Latency then, maybe, a fault (GraphRandomErrorPlugin's spirit; codes as Graph writes them)."""
        with self.lock:
            latency = int(self._setting(mailbox_keys, "latency_ms"))
            jitter = int(self._setting(mailbox_keys, "latency_jitter_ms"))
            delay = (latency + (self.random.randint(0, jitter) if jitter else 0)) / 1000
            roll = self.random.random()
            r429, r503, r504 = (float(self._setting(mailbox_keys, n)) for n in ("rate_429", "rate_503", "rate_504"))
            retry = self._setting(mailbox_keys, "retry_after_seconds")
        if delay:
            time.sleep(delay)
        fault = None
        if roll < r429:
            fault = GraphError(429, "TooManyRequests", "Please retry again later.", headers={"Retry-After": _seconds(retry)})
        elif roll < r429 + r503:
            fault = GraphError(503, "serviceNotAvailable", "The service is temporarily unavailable. Please retry later.",
                               headers={"Retry-After": _seconds(retry)})
        elif roll < r429 + r503 + r504:
            fault = GraphError(504, "UnknownError", "The upstream server did not respond in time.")
        if fault is not None:
            with self.lock:
                if counter_key:
                    self.counters[counter_key].faults += 1
                    if fault.status == 429:
                        self.counters[counter_key].throttled += 1
            raise fault

    def snapshot(self) -> dict:
        with self.lock:
            mailboxes = {k: c.as_dict() for k, c in self.counters.items()}
            return {
                "mailboxes": mailboxes,
                "totals": {
                    "requests": self.requests_total,
                    "httpRequests": self.http_requests,
                    "mailboxRequests": sum(c["total"] for c in mailboxes.values()),
                    "throttled429": sum(c["throttled429"] for c in mailboxes.values()),
                    "concurrentPeak": max((c["concurrentPeak"] for c in mailboxes.values()), default=0),
                },
            }


def _seconds(value) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{number:.3f}"
