"""Azurite (npm, pinned in package.json) on its default loopback ports, in memory.

Reuses an Azurite already listening there (a developer's, or ``make run``'s), otherwise
starts one and stops it again. ``--skipApiVersionCheck`` is required: the current storage
SDKs send an API version that Azurite 3.35 does not know yet.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORTS = {"blob": 10000, "queue": 10001, "table": 10002}
CONNECTION_STRING = "UseDevelopmentStorage=true"


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()  # looked up once here, not in the forked child
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` for a child that must not outlive this process even when it is killed
    hard (SIGKILL leaves no chance to stop children): Linux then sends the child SIGKILL. The
    kernel ties this to the *thread* that started the child, so start such children from the
    main thread. In the child it only calls prctl (looked up before the fork) and getppid:
    nothing that takes a lock another thread might have held at the fork. None where prctl does
    not exist: a hard kill then leaves the child behind, as before."""
    if _PRCTL is None:
        return None
    prctl, parent = _PRCTL, os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # we died between fork and prctl: nobody will signal this child
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class Azurite:
    """``with Azurite() as azurite:`` gives a running Azurite, started only if needed."""

    def __init__(
        self, log_path: Path | None = None, *, ports: dict[str, int] | None = None, location: Path | None = None,
        die_with_parent: bool = False,
    ) -> None:
        """``ports`` (blob, queue, table) other than the defaults and ``location`` (data kept on
        disk there, so that a restart keeps it) give a dedicated Azurite, e.g. for a test that
        restarts it. ``die_with_parent``: killed if this process is killed hard (Linux)."""
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = log_path or ROOT / ".local" / "azurite.log"
        self.ports = dict(ports or PORTS)
        self._location = location
        self._die_with_parent = die_with_parent

    @property
    def connection_string(self) -> str:
        if self.ports == PORTS:
            return CONNECTION_STRING
        # The well-known development account (Azurite's documented default credentials).
        return (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
            f"BlobEndpoint=http://127.0.0.1:{self.ports['blob']}/devstoreaccount1;"
            f"QueueEndpoint=http://127.0.0.1:{self.ports['queue']}/devstoreaccount1;"
            f"TableEndpoint=http://127.0.0.1:{self.ports['table']}/devstoreaccount1;"
        )

    @property
    def started_here(self) -> bool:
        return self._process is not None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The Azurite started here (the leader of its own process group), if any."""
        return self._process

    def start(self, timeout: float = 30, cancelled: Callable[[], bool] = lambda: False) -> Azurite:
        """``cancelled()`` true makes it return at once, maybe before Azurite listens (the
        caller is stopping; ``stop()`` still stops what was started)."""
        if all(port_open(port) for port in self.ports.values()):
            return self
        binary = ROOT / "node_modules" / ".bin" / "azurite"
        if not binary.exists():
            raise RuntimeError("Azurite is not installed: run `npm ci` (make does it for you)")
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [
                str(binary),
                *(["--location", str(self._location)] if self._location else ["--inMemoryPersistence"]),
                "--loose",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--blobHost", "127.0.0.1", "--blobPort", str(self.ports["blob"]),
                "--queueHost", "127.0.0.1", "--queuePort", str(self.ports["queue"]),
                "--tableHost", "127.0.0.1", "--tablePort", str(self.ports["table"]),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,  # our own process group: Ctrl-C in a terminal is ours to forward
            preexec_fn=die_with_parent() if self._die_with_parent else None,
        )
        deadline = time.monotonic() + timeout
        while not all(port_open(port) for port in self.ports.values()):
            if cancelled():
                return self
            if self._process.poll() is not None:
                raise RuntimeError(f"Azurite exited with {self._process.returncode}; see {self._log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Azurite did not open its ports within {timeout}s; see {self._log_path}")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self._process.wait()
        self._process = None

    def _signal(self, sig: int) -> None:
        # The whole group (it leads one): anything Azurite started goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, sig)  # type: ignore[union-attr]

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
