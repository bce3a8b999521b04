"""What the reliability suite adds to tests/integration/test_sync_reliability.py (whose
fixtures and "exactly right" checks it reuses): counting lost and duplicated records from the
end state, a report line per test for `make soak`, and a loopback TCP proxy that resets
connections at random."""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

import requests

from shared.accounts.models import MemberIdentity
from shared.sync.profiles import SyncKind
from tests.integration.host_process import HostProcess
from tests.integration.test_sync_reliability import expected_and_actual, settle
from tests.product_stack import ProductStack

SOAK = os.environ.get("SOAK") == "1"


def lost_and_duplicated(product: ProductStack, member: MemberIdentity, kind: SyncKind, count: int) -> tuple[int, int]:
    """From the end state: records expected but missing on a side (or missing altogether),
    and extra copies of a record on either side."""
    crm, outlook = expected_and_actual(product, member, kind)
    duplicated = sum(n - 1 for n in crm.values() if n > 1) + sum(n - 1 for n in outlook.values() if n > 1)
    keys = set(crm) | set(outlook)
    lost = max(0, count - len(keys)) + len(set(crm) ^ set(outlook))
    return lost, duplicated


@dataclass
class Report:
    """One test's counts, appended as a JSON line to ``$SOAK_REPORT`` (make soak adds them up)."""

    test: str
    faults: int = 0
    lost: int = 0
    duplicated: int = 0
    checks: int = 0
    hosts: list[HostProcess] = field(default_factory=list)

    def write(self) -> None:
        path = os.environ.get("SOAK_REPORT")
        if not path:
            return
        line = {"test": self.test, "kills": sum(h.kills for h in self.hosts), "faults": self.faults,
                "lost": self.lost, "duplicated": self.duplicated, "checks": self.checks}
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


def settle_exact(product: ProductStack, member: MemberIdentity, kind: SyncKind, count: int, report: Report,
                 timeout: float = 240) -> None:
    """``settle`` (both sides agree and stay agreed), then the end state counted into the report."""
    try:
        settle(product, member, kind, count, timeout=timeout)
    finally:
        lost, duplicated = lost_and_duplicated(product, member, kind, count)
        report.lost += lost
        report.duplicated += duplicated
        report.checks += 1


def graph_faults_injected(product: ProductStack) -> int:
    """Faults the M365 emulator injected (429/503/504), as its counters saw them."""
    counters = product.m365_control("GET", "counters")
    return sum(int(m.get("injectedFaults", 0)) for m in counters.get("mailboxes", {}).values())


def crm_faults_injected(product: ProductStack) -> int:
    counters = requests.get(f"{product.crm.base_url}/__emulator/counters", timeout=10).json()
    return int(counters["totals"].get("faults_injected", 0))


def notifications(product: ProductStack) -> list[dict[str, Any]]:
    return list(product.m365_control("GET", "notifications")["value"])


class FlakyProxy:
    """A loopback TCP proxy in front of one port that resets connections at random.

    Each accepted connection is, with probability ``rate``, cut (RST on both ends) when the
    upstream sends its n-th chunk (n drawn from 1..``max_chunk``): early cuts fall in the TLS
    handshake (the request never reached the server), later ones after a request was applied
    (its answer lost), on a kept-alive connection possibly several requests later. ``resets`` counts the connections cut."""

    def __init__(self, target_port: int, rate: float, seed: str, max_chunk: int = 6) -> None:
        self.target_port = target_port
        self.rate = rate
        self.max_chunk = max_chunk
        self.connections = 0
        self.resets = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(128)
        self._server.settimeout(0.2)
        self.port = int(self._server.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="flaky-proxy", daemon=True)

    def __enter__(self) -> FlakyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                cut_at = self._random.randint(1, self.max_chunk) if self._random.random() < self.rate else 0
            threading.Thread(target=self._serve, args=(client, cut_at), daemon=True).start()

    def _serve(self, client: socket.socket, cut_at: int) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
        except OSError:
            _reset(client)
            return
        upstream.settimeout(None)
        client.settimeout(None)
        for sock in (client, upstream):  # no Nagle delay added by the proxy itself (~40 ms a request)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        done = threading.Event()

        def pump(source: socket.socket, sink: socket.socket, cut: int) -> None:
            chunks = 0
            try:
                while not done.is_set():
                    data = source.recv(65536)
                    if not data:
                        break
                    chunks += 1
                    if cut and chunks >= cut:
                        with self._lock:
                            self.resets += 1
                        break
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                if not done.is_set():
                    done.set()
                    _reset(client)
                    _reset(upstream)

        threading.Thread(target=pump, args=(client, upstream, 0), daemon=True).start()
        pump(upstream, client, cut_at)


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a peer or middlebox dropping the connection would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)  # wakes the pump blocked reading it (close alone would not)
    with contextlib.suppress(OSError):
        sock.close()
