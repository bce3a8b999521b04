"""Watch-channel callbacks: which channels a change concerns, and delivering them in the background.

Delivery is at-least-once: a failed POST (error, timeout, non-2xx) is retried a few times with a
short back-off. It never runs on the thread of the API call that caused the change.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from .store import Store

log = logging.getLogger(__name__)

OPERATION_EVENT = {"insert": "create", "update": "edit", "delete": "delete"}
# Mass actions batch ids into one callback; the real batch size is unconfirmed.
IDS_PER_CALLBACK = 100
ATTEMPTS = 3
TIMEOUT_SECONDS = 5
WORKERS = 4


class Notifier:
    def __init__(self, store: Store, api_domain_of: Any, dropped: Any = None) -> None:
        self.store = store
        self.api_domain_of = api_domain_of  # dc -> the emulator's API domain URL
        self.dropped = dropped or (lambda: False)  # fault injection: this callback is lost
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(WORKERS):
            thread = threading.Thread(target=self._work, name=f"crm-callbacks-{i}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join(timeout=TIMEOUT_SECONDS + 1)
        self.threads.clear()

    def changed(self, org_id: str, module: str, operation: str, ids: list[str],
                affected: dict[str, list[str]]) -> None:
        """Queue one callback per live channel that watches this module and operation."""
        if not ids:
            return
        store = self.store
        with store.lock:
            org = store.orgs.get(org_id)
            if org is None:
                return
            now = store.now()
            wanted = {f"{module}.all", f"{module}.{OPERATION_EVENT[operation]}"}
            channels = [c for c in store.channels.get(org_id, {}).values()
                        if c["expiry"] > now and wanted & set(c["events"])]
            values = {}
            if operation == "update":
                table = store.module_records(org_id, module)
                values = {rid: {f: table[rid].get(f) for f in fields} for rid, fields in affected.items()
                          if rid in table}
            for channel in channels:
                for start in range(0, len(ids), IDS_PER_CALLBACK):
                    batch = ids[start:start + IDS_PER_CALLBACK]
                    body: dict[str, Any] = {
                        "server_time": int(now * 1000),
                        "query_params": dict(parse_qsl(urlsplit(channel["notify_url"]).query)),
                        "module": module,
                        "resource_uri": f"{self.api_domain_of(org['dc'])}/crm/v8/{module}",
                        "ids": batch,
                        "affected_fields": [{rid: affected[rid]} for rid in batch if rid in affected],
                        "operation": operation,
                        "channel_id": str(channel["channel_id"]),
                        "token": channel.get("token"),
                    }
                    if operation == "update" and channel.get("return_affected_field_values"):
                        body["affected_values"] = [{"record_id": rid, "values": values[rid]}
                                                   for rid in batch if rid in values]
                    self.queue.put({"url": channel["notify_url"], "body": body, "org_id": org_id,
                                    "channel_id": str(channel["channel_id"])})

    def _work(self) -> None:
        http = requests.Session()  # one per worker: Session is not documented as thread-safe
        while True:
            job = self.queue.get()
            if job is None:
                return
            self._deliver(http, job)

    def _deliver(self, http: requests.Session, job: dict[str, Any]) -> None:
        status: int | str = "not sent"
        attempt = 0
        if self.dropped():
            status, attempts = "dropped", 0  # lost on its way: the CRM believes it delivered
        else:
            attempts = ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                response = http.post(job["url"], json=job["body"], timeout=TIMEOUT_SECONDS)
                status = response.status_code
                if 200 <= status < 300:
                    break
            except requests.RequestException as exc:
                status = type(exc).__name__
            time.sleep(0.2 * attempt)
        with self.store.lock:
            self.store.deliveries.append({"time": self.store.now(), "url": job["url"], "org_id": job["org_id"],
                                          "channel_id": job["channel_id"], "operation": job["body"]["operation"],
                                          "module": job["body"]["module"], "ids": job["body"]["ids"],
                                          "status": status, "attempts": attempt})
