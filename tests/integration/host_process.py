"""The Functions host as its own process (``python -m local.host``), so that a test can kill
it with SIGKILL mid-work and start it again on the same port (webhook URLs stay valid),
as a crashed worker in Azure would be replaced."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from shared.health import CHECK_TIMEOUT_SECONDS

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class HostProcess:
    def __init__(self, env: dict[str, str], log_path: Path, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.env = {**os.environ, **env, "PUBLIC_BASE_URL": f"http://127.0.0.1:{self.port}"}
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HostProcess:
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "local.host", "--port", str(self.port)],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"host exited with {self._process.returncode}; see {self.log_path}")
            try:
                # Any answer, healthy or not, within the health check's own bound (3 s per
                # dependency; before, its storage check could take the client's 30-s read timeout).
                requests.get(f"{self.url}/api/health", timeout=CHECK_TIMEOUT_SECONDS + 3)
                return self
            except (requests.ConnectionError, requests.Timeout):
                # Not up yet, or up and slow to answer: a host started among two others at
                # work on two cores took over 2 s for its first answer (seen in make soak).
                time.sleep(0.2)
        # Never left running: a stray host would take later tests' queue messages.
        self._process.kill()
        self._process.wait(10)
        raise TimeoutError(f"host did not answer on {self.url}")

    def kill(self) -> None:
        """SIGKILL: no clean-up, in-flight messages stay invisible until their visibility ends."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(10)
            self.kills += 1
            counter = os.environ.get("HOST_KILL_COUNTER")
            if counter:  # make soak adds up the kills of every test
                with open(counter, "a", encoding="utf-8") as out:
                    out.write(f"{self.port}\n")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(40)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
