"""`make run`'s stack runner: everything comes up, health answers 200, stack.json names the
endpoints, and SIGTERM (what Ctrl-C does) leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def processes_mentioning(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry.name))
    return found


def test_stack_starts_answers_health_and_stops_cleanly(azurite, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ports = {"functions": free_port(), "m365": free_port(), "crm": free_port()}
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if k not in ("AzureWebJobsStorage",)}
    stack = subprocess.Popen(
        [sys.executable, "-m", "local.stack", "--functions-port", str(ports["functions"]),
         "--m365-port", str(ports["m365"]), "--crm-port", str(ports["crm"]), "--state-dir", str(state)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not (state / "stack.json").is_file():
            assert stack.poll() is None, stack.stdout.read() if stack.stdout else ""
            assert time.monotonic() < deadline, "the stack did not come up in 90 s"
            time.sleep(0.2)
        endpoints = json.loads((state / "stack.json").read_text())
        assert endpoints["functions"] == f"http://127.0.0.1:{ports['functions']}"
        assert endpoints["demo"]["admin"]["email"] == "adele@contoso.test"
        response = requests.get(f"{endpoints['functions']}/api/health", timeout=20)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "healthy"
        # Function keys as in Azure (issue 18 §5): the admin routes refuse a caller without the master key.
        master = json.loads((state / "host-keys.json").read_text())["master"]
        assert requests.get(f"{endpoints['functions']}/api/ops/poison", timeout=20).status_code == 401
        assert requests.post(f"{endpoints['functions']}/admin/functions/mail_sender", json={"input": "x"}, timeout=20).status_code == 401
        assert requests.get(f"{endpoints['functions']}/api/ops/poison", headers={"x-functions-key": master}, timeout=20).status_code == 200
        markers = [str(state), f"--port {ports['functions']}"]
        assert any(processes_mentioning(m) for m in markers)
    finally:
        stack.send_signal(signal.SIGTERM)
        output, _ = stack.communicate(timeout=60)
    assert stack.returncode == 0, output
    assert "Stack stopped." in output
    time.sleep(0.5)
    for marker in (str(state), f"--port {ports['functions']}"):
        assert processes_mentioning(marker) == [], f"left behind: {marker}"
    assert not (state / "stack.json").exists()
