"""How many requests this process made to Table Storage, by kind: entity-group transactions
(``POST $batch``), reads (point reads and query pages) and single-entity writes. Table
transactions are billed per request, so these counts are what the cost of a sync is
measured in (issue 9); kept in memory, per process, for benchmarks and tests."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from azure.core.pipeline.transport import RequestsTransport

from shared.observability import current_correlation_id


class TableRequestCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._by_table: Counter[str] = Counter()  # "{kind} {table}": where the requests go
        # Counts of the requests made under chosen correlation ids: what one HTTP request
        # cost, apart from the timers and queue workers of the same process.
        self._traced: dict[str, Counter[str]] = {}

    def count(self, http: Any) -> None:
        if http.method == "POST" and "$batch" in http.url:
            kind = "transactions"
        elif http.method == "GET":
            kind = "reads"
        else:
            kind = "writes"
        correlation_id = current_correlation_id()
        table = _table_of(http.url) if kind != "transactions" else "$batch"
        with self._lock:
            self._counts[kind] += 1
            self._by_table[f"{kind} {table}"] += 1
            if correlation_id in self._traced:
                self._traced[correlation_id][kind] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {kind: self._counts[kind] for kind in ("transactions", "reads", "writes")}

    @contextmanager
    def traced(self, correlation_id: str) -> Iterator[Counter[str]]:
        """Counts, by kind, the requests made under ``correlation_id`` while inside."""
        counts: Counter[str] = Counter()
        with self._lock:
            self._traced[correlation_id] = counts
        try:
            yield counts
        finally:
            with self._lock:
                self._traced.pop(correlation_id, None)

    def by_table(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by_table)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._by_table.clear()


def _table_of(url: str) -> str:
    """The table a request's URL names (``.../account/name(PartitionKey=...)``)."""
    path = urlsplit(url).path.rstrip("/")
    return path.rsplit("/", 1)[-1].split("(", 1)[0] or "?"


# One per process: every table client of the process reports here.
TABLE_REQUESTS = TableRequestCounter()


class CountingTransport(RequestsTransport):
    """The SDK's own transport, counting each request it sends (retries included: each is
    a billed request). A transport rather than a policy: the table clients a service client
    hands out (``get_table_client``) share its transport but not its per-call policies."""

    def send(self, request: Any, **kwargs: Any) -> Any:
        TABLE_REQUESTS.count(request)
        return super().send(request, **kwargs)
