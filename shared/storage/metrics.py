"""How many requests this process made to Table Storage, by kind: entity-group transactions
(``POST $batch``), reads (point reads and query pages) and single-entity writes. Table
transactions are billed per request, so these counts are what the cost of a sync is
measured in (issue 9); kept in memory, per process, for benchmarks and tests."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from azure.core.pipeline.transport import RequestsTransport


class TableRequestCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def count(self, http: Any) -> None:
        if http.method == "POST" and "$batch" in http.url:
            kind = "transactions"
        elif http.method == "GET":
            kind = "reads"
        else:
            kind = "writes"
        with self._lock:
            self._counts[kind] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {kind: self._counts[kind] for kind in ("transactions", "reads", "writes")}

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


# One per process: every table client of the process reports here.
TABLE_REQUESTS = TableRequestCounter()


class CountingTransport(RequestsTransport):
    """The SDK's own transport, counting each request it sends (retries included: each is
    a billed request). A transport rather than a policy: the table clients a service client
    hands out (``get_table_client``) share its transport but not its per-call policies."""

    def send(self, request: Any, **kwargs: Any) -> Any:
        TABLE_REQUESTS.count(request)
        return super().send(request, **kwargs)
