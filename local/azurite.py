"""Azurite (npm, pinned in package.json) on its default loopback ports, in memory.

Reuses an Azurite already listening there (a developer's, or ``make run``'s), otherwise
starts one and stops it again. ``--skipApiVersionCheck`` is required: the current storage
SDKs send an API version that Azurite 3.35 does not know yet.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORTS = {"blob": 10000, "queue": 10001, "table": 10002}
CONNECTION_STRING = "UseDevelopmentStorage=true"


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class Azurite:
    """``with Azurite() as azurite:`` gives a running Azurite, started only if needed."""

    def __init__(
        self, log_path: Path | None = None, *, ports: dict[str, int] | None = None, location: Path | None = None
    ) -> None:
        """``ports`` (blob, queue, table) other than the defaults and ``location`` (data kept on
        disk there, so that a restart keeps it) give a dedicated Azurite, e.g. for a test that
        restarts it."""
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = log_path or ROOT / ".local" / "azurite.log"
        self.ports = dict(ports or PORTS)
        self._location = location

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

    def start(self, timeout: float = 30) -> Azurite:
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
        )
        deadline = time.monotonic() + timeout
        while not all(port_open(port) for port in self.ports.values()):
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
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
