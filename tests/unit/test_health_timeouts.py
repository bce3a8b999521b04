"""GET /api/health answers within seconds when a dependency accepts connections and never
answers (found by make soak: a host restarted among two busy ones answered its health checks
after 30 s each, the storage client's read timeout, and its start was given up)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from shared.config import Settings
from shared.health import CHECK_TIMEOUT_SECONDS, check_health

KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        for connection in accepted:
            connection.close()
        server.close()


def test_a_storage_that_never_answers_fails_the_check_in_seconds(silent_port: int) -> None:
    endpoint = f"http://127.0.0.1:{silent_port}/devstoreaccount1"
    settings = Settings(AzureWebJobsStorage=f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};"
                                            f"TableEndpoint={endpoint};QueueEndpoint={endpoint};")
    started = time.monotonic()
    report = check_health(settings)
    assert time.monotonic() - started < 3 * CHECK_TIMEOUT_SECONDS
    assert {"tables", "queues"} <= set(report.failing)
    assert not report.dependencies["tables"].ok and "unreachable" in report.dependencies["tables"].detail
