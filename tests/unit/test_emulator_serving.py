"""The emulators' HTTP server keeps many connections alive, as Graph and Zoho do: a client with
more connections open than cheroot's default of 10 must not pay a new connection (and, for the
M365 emulator, a TLS handshake) per request."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from typing import Any

import pytest

from emulators.serving import Serving


def _hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


@pytest.fixture
def server() -> Iterator[Serving]:
    serving = Serving("127.0.0.1", 0, _hello, name="keep-alive-test")
    try:
        yield serving
    finally:
        serving.stop()


def test_fifty_connections_stay_open_across_requests(server: Serving) -> None:
    connections = [http.client.HTTPConnection(server.host, server.port, timeout=10) for _ in range(50)]
    try:
        for round_ in range(3):
            for connection in connections:  # every one idle while the others are used
                connection.request("GET", "/")
                response = connection.getresponse()
                assert response.read() == b"ok"
                assert response.getheader("Connection") != "close", f"closed in round {round_}"
        assert all(c.sock is not None for c in connections)  # the same sockets throughout
    finally:
        for connection in connections:
            connection.close()
