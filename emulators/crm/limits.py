"""API limits per org (concurrency, daily credits), request counters, and injected latency and faults.

Concurrency is counted per org and app, as Zoho does; heavy calls (writes of more than ten
records) also take a slot from the sub-concurrency pool. Credits are a rolling 24-hour window.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from typing import Any

from . import editions
from .errors import CrmError

WINDOW = 24 * 3600
HOLD_LIMIT = 30.0  # a held call goes on by itself after this, so a forgotten hold never hangs a test
FAULT_KEYS = ("latency_ms", "rate_429", "rate_500", "rate_503", "concurrency", "daily_credits")


def too_many(message: str) -> CrmError:
    return CrmError(429, "TOO_MANY_REQUESTS", message)


def _empty_counter() -> dict[str, int]:
    return {"total": 0, "concurrent": 0, "concurrent_peak": 0, "throttled_429": 0, "credits_used": 0,
            "faults_injected": 0}


class Limits:
    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.random = random.Random()
        # Calls in flight survive a counters reset: they still hold their slots.
        self.active: dict[tuple[str, str], int] = {}
        self.heavy: dict[tuple[str, str], int] = {}
        self.held: list[threading.Event] = []
        self.reset_faults()
        self.reset_counters()

    # --- settings ----------------------------------------------------------------------------
    def reset_faults(self) -> None:
        with self.lock:
            self.faults: dict[str, Any] = {"latency_ms": 0, "rate_429": 0.0, "rate_500": 0.0, "rate_503": 0.0,
                                           "callback_drop_rate": 0.0, "fail_next": [], "orgs": {}}

    def set_faults(self, settings: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            for key in ("latency_ms", "rate_429", "rate_500", "rate_503", "callback_drop_rate"):
                if key in settings:
                    self.faults[key] = int(settings[key]) if key == "latency_ms" else float(settings[key])
            if "fail_next" in settings:
                self.faults["fail_next"] = [int(s) for s in settings["fail_next"]]
            for org_id, org_settings in (settings.get("orgs") or {}).items():
                if org_settings is None:
                    self.faults["orgs"].pop(org_id, None)
                    continue
                current = self.faults["orgs"].setdefault(org_id, {})
                for key in FAULT_KEYS:
                    if key in org_settings:
                        current[key] = org_settings[key]
                if "fail_next" in org_settings:
                    current["fail_next"] = [int(s) for s in org_settings["fail_next"]]
                if "hold_next" in org_settings:
                    current["hold_next"] = str(org_settings["hold_next"]).upper()
            return self.snapshot_faults()

    def drop_callback(self) -> bool:
        """Whether the next watch callback is lost on its way (fault injection)."""
        with self.lock:
            rate = float(self.faults["callback_drop_rate"])
            return bool(rate) and self.random.random() < rate

    def snapshot_faults(self) -> dict[str, Any]:
        return {**self.faults, "fail_next": list(self.faults["fail_next"]),
                "orgs": {k: dict(v) for k, v in self.faults["orgs"].items()}, "held": len(self.held)}

    def hold(self, org_id: str, op: str) -> None:
        """Stop this call, once admitted and before it acts, while ``hold_next`` names its
        operation (CREATE, UPDATE, DELETE, READ) for the org: a test then changes the record
        between a client's read and its write, and lets the call go on with ``release``."""
        with self.lock:
            settings = self.faults["orgs"].get(org_id, {})
            if settings.get("hold_next") != op:
                return
            del settings["hold_next"]
            gate = threading.Event()
            self.held.append(gate)
        gate.wait(HOLD_LIMIT)
        with self.lock:
            if gate in self.held:
                self.held.remove(gate)

    def release(self) -> int:
        """Let every held call go on; how many there were."""
        with self.lock:
            gates, self.held = self.held, []
        for gate in gates:
            gate.set()
        return len(gates)

    def reset_counters(self) -> None:
        with self.lock:
            self.counters: dict[str, dict[str, int]] = {}
            self.spent: dict[str, deque[tuple[float, int]]] = {}

    def counters_json(self) -> dict[str, Any]:
        with self.lock:
            orgs = {org: {k: v for k, v in c.items() if k != "concurrent"} for org, c in self.counters.items()}
            totals = _empty_counter()
            del totals["concurrent"]
            for c in orgs.values():
                for key in totals:
                    totals[key] = max(totals[key], c[key]) if key == "concurrent_peak" else totals[key] + c[key]
            return {"orgs": orgs, "totals": totals}

    # --- per call ----------------------------------------------------------------------------
    def _org_setting(self, org_id: str, key: str, default: Any) -> Any:
        return self.faults["orgs"].get(org_id, {}).get(key, default)

    def enter(self, org: dict[str, Any], client_id: str, users: int, heavy: bool, cost: int) -> None:
        """Admit one call or raise the 429 the CRM would answer."""
        org_id = org["id"]
        key = (org_id, client_id)
        with self.lock:
            counter = self.counters.setdefault(org_id, _empty_counter())
            counter["total"] += 1
            limit = int(self._org_setting(org_id, "concurrency", editions.CONCURRENCY[org["edition"]]))
            if self.active.get(key, 0) >= limit or (heavy and self.heavy.get(key, 0) >= editions.SUB_CONCURRENCY):
                counter["throttled_429"] += 1
                raise too_many("The concurrency limit of the user for the app has been exceeded")
            allowed = self._org_setting(org_id, "daily_credits", editions.daily_credits(org["edition"], users))
            spent = self.spent.setdefault(org_id, deque())
            now = self.clock.now()
            while spent and spent[0][0] <= now - WINDOW:
                spent.popleft()
            if allowed is not None and sum(c for _, c in spent) + cost > int(allowed):
                counter["throttled_429"] += 1
                raise too_many("The number of API requests for the 24 hour period has been exceeded")
            spent.append((now, cost))
            counter["credits_used"] += cost
            self.active[key] = self.active.get(key, 0) + 1
            if heavy:
                self.heavy[key] = self.heavy.get(key, 0) + 1
            counter["concurrent"] = sum(n for (o, _), n in self.active.items() if o == org_id)
            counter["concurrent_peak"] = max(counter["concurrent_peak"], counter["concurrent"])

    def leave(self, org_id: str, client_id: str, heavy: bool) -> None:
        key = (org_id, client_id)
        with self.lock:
            self.active[key] -= 1
            if heavy:
                self.heavy[key] -= 1
            counter = self.counters.setdefault(org_id, _empty_counter())
            counter["concurrent"] = sum(n for (o, _), n in self.active.items() if o == org_id)

    def inject(self, org_id: str) -> None:
        """Sleep the configured latency, then maybe fail the call as configured."""
        with self.lock:
            latency = int(self._org_setting(org_id, "latency_ms", self.faults["latency_ms"]))
            status = None
            org_queue = self.faults["orgs"].get(org_id, {}).get("fail_next")
            if org_queue:
                status = org_queue.pop(0)
            elif self.faults["fail_next"]:
                status = self.faults["fail_next"].pop(0)
            else:
                for code in (429, 500, 503):
                    rate = float(self._org_setting(org_id, f"rate_{code}", self.faults[f"rate_{code}"]))
                    if rate and self.random.random() < rate:
                        status = code
                        break
            if status is not None:
                counter = self.counters.setdefault(org_id, _empty_counter())
                counter["faults_injected"] += 1
                if status == 429:
                    counter["throttled_429"] += 1
        if latency > 0:
            time.sleep(latency / 1000)
        if status == 429:
            raise too_many("The concurrency limit of the user for the app has been exceeded")
        if status == 503:
            raise CrmError(503, "INTERNAL_ERROR", "Service temporarily unavailable")
        if status is not None:
            raise CrmError(int(status), "INTERNAL_ERROR", "Internal Server Error")
