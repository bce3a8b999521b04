"""``make run``: the whole product locally — Azurite, the emulators, the Functions host.

    python -m local.stack [--functions-port 7071] [--m365-port 7443] [--crm-port 7090]

Writes .local/stack.json (every endpoint and the demo identities), prints where to click,
and stops every child cleanly on Ctrl-C or SIGTERM (or when one of them dies).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

from local.azurite import Azurite, port_open
from local.demo_world import APP_REGISTRATION, CRM_CLIENT, DEMO

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@dataclass
class Child:
    """One service of the stack, in its own process group."""

    name: str
    command: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    echo: bool = False  # print its output on our terminal too (the Functions host)
    process: subprocess.Popen[bytes] | None = None

    def start(self, logs: Path) -> None:
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} for {self.name} is already in use (another stack running?)")
        log = (logs / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, args=(self.process.stdout, log), daemon=True).start()

    def _pump(self, stream: IO[bytes] | None, log: IO[bytes]) -> None:
        assert stream is not None
        for line in stream:
            log.write(line)
            log.flush()
            if self.echo:
                sys.stdout.write(f"[{self.name}] {line.decode(errors='replace')}")
                sys.stdout.flush()

    def wait_ready(self, logs: Path, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited during start-up; see {logs / (self.name + '.log')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not listen on {self.port} within {timeout}s")
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass


def dev_secrets(state_dir: Path) -> dict[str, str]:
    """Secrets for local runs only, made once and kept in .local/ (never committed)."""
    path = state_dir / "dev-secrets.json"
    if path.is_file():
        return dict(json.loads(path.read_text()))
    from cryptography.fernet import Fernet

    values = {"TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(), "SESSION_SECRET": secrets.token_urlsafe(32)}
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)
    return values


def host_keys(state_dir: Path) -> Path:
    """Function keys for the local host, as Azure gives every Function App: a master key (admin
    routes: /api/ops/poison*, /admin/functions/{name}) and a default host key. Made once and
    kept in .local/; without them any page open in the developer's browser could call those
    routes on 127.0.0.1 (issue 18 §5)."""
    path = state_dir / "host-keys.json"
    if not path.is_file():
        path.write_text(json.dumps({"master": secrets.token_urlsafe(32), "host": {"default": secrets.token_urlsafe(32)}}, indent=2))
        path.chmod(0o600)
    return path


def emulator_available(name: str, skipped: list[str]) -> bool:
    return name not in skipped and (ROOT / "emulators" / name / "__main__.py").is_file()


class Stack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.state_dir: Path = args.state_dir.resolve()
        self.logs = self.state_dir / "logs"
        self.keys_file = host_keys(self.state_dir)
        self.azurite = Azurite(log_path=self.logs / "azurite.log")
        self.children: list[Child] = []
        self.endpoints: dict[str, Any] = {}

    def plan(self) -> None:
        a = self.args
        functions_url = f"http://127.0.0.1:{a.functions_port}"
        env = {
            "AzureWebJobsStorage": self.azurite.connection_string,
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "PUBLIC_BASE_URL": functions_url,
            **dev_secrets(self.state_dir),
        }
        self.endpoints = {
            "functions": functions_url,
            "storage": self.azurite.connection_string,
            "emulator_control": {},
            "app": APP_REGISTRATION,
            "crm_client": CRM_CLIENT,
            "demo": DEMO,
            "missing": [],
        }
        if emulator_available("m365", a.skip):
            base = f"https://127.0.0.1:{a.m365_port}"
            ca = self.state_dir / "m365-ca.pem"
            self.children.append(
                Child(
                    "m365",
                    [PYTHON, "-m", "emulators.m365", "--host", "127.0.0.1", "--port", str(a.m365_port),
                     "--seed", str(ROOT / "emulators/m365/seed/demo.json"), "--state-dir", str(self.state_dir)],
                    a.m365_port,
                )
            )
            env.update(
                ENTRA_AUTHORITY_HOST=base,
                GRAPH_BASE_URL=f"{base}/v1.0",
                OUTBOUND_CA_BUNDLE=str(ca),
                ENTRA_CLIENT_ID=APP_REGISTRATION["client_id"],
                ENTRA_CLIENT_SECRET=APP_REGISTRATION["client_secret"],
            )
            self.endpoints.update(graph=f"{base}/v1.0", login=base, ca_cert=str(ca.relative_to(ROOT)) if ca.is_relative_to(ROOT) else str(ca))
            self.endpoints["emulator_control"]["m365"] = f"{base}/__emulator/"
        else:
            self.endpoints["missing"].append("m365")
        if emulator_available("crm", a.skip):
            base = f"http://127.0.0.1:{a.crm_port}"
            self.children.append(
                Child(
                    "crm",
                    [PYTHON, "-m", "emulators.crm", "--host", "127.0.0.1", "--port", str(a.crm_port),
                     "--seed", str(ROOT / "emulators/crm/seed/demo.json")],
                    a.crm_port,
                )
            )
            env.update(
                CRM_ACCOUNTS_URL=f"{base}/us/accounts",
                CRM_PROVISIONING_URL=f"{base}/provisioning/v1",
                CRM_ACCOUNTS_SERVERS=",".join(f"{base}/{dc}/accounts" for dc in ("us", "eu")),
                CRM_API_DOMAINS=",".join(f"{base}/{dc}/api" for dc in ("us", "eu")),
                CRM_CLIENT_ID=CRM_CLIENT["client_id"],
                CRM_CLIENT_SECRET=CRM_CLIENT["client_secret"],
            )
            self.endpoints.update(
                crm_accounts=f"{base}/us/accounts", crm_api=f"{base}/us/api", crm_provisioning=f"{base}/provisioning/v1"
            )
            self.endpoints["emulator_control"]["crm"] = f"{base}/__emulator/"
        else:
            self.endpoints["missing"].append("crm")
        self.children.append(
            Child(
                "functions",
                [PYTHON, "-m", "local.host", "--port", str(a.functions_port), "--keys-file", str(self.keys_file)],
                a.functions_port,
                env=env,
                echo=True,
            )
        )

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.azurite.start()
        for child in self.children:
            child.start(self.logs)
            child.wait_ready(self.logs)
        (self.state_dir / "stack.json").write_text(json.dumps(self.endpoints, indent=2))

    def healthy(self) -> requests.Response:
        return requests.get(f"{self.endpoints['functions']}/api/health", timeout=10)

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.azurite.stop()
        (self.state_dir / "stack.json").unlink(missing_ok=True)

    def _route_exists(self, path: str) -> bool:
        try:
            response = requests.get(f"{self.endpoints['functions']}{path}", timeout=10, allow_redirects=False)
        except requests.RequestException:
            return False
        return response.status_code != 404

    def banner(self) -> str:
        e = self.endpoints
        lines = [
            "",
            "The stack is up.",
            f"  Open the app (Office 365 app launcher entry): {e['functions']}/api/marketplace/launch"
            + ("" if self._route_exists("/api/marketplace/launch") else "  (not built yet)"),
            f"  Health:                                        {e['functions']}/api/health",
            f"  Poisoned messages (admin, master key):         {e['functions']}/api/ops/poison"
            f"  with header x-functions-key: {json.loads(self.keys_file.read_text())['master']}  (kept in {self.keys_file})",
        ]
        for name, url in e["emulator_control"].items():
            lines.append(f"  {name} emulator control:  {url}")
        if e["missing"]:
            lines.append(f"  Not started (not built yet, or skipped): {', '.join(e['missing'])} emulator(s)")
        demo = e["demo"]
        lines += [
            f"  Demo Office 365 admin:  {demo['admin']['email']} / {demo['admin']['password']}",
            f"  Demo Office 365 users:  {', '.join(u['email'] for u in demo['users'])} (same password)",
            f"  Demo CRM-only account:  {demo['crm_only_accounts'][0]['email']} / {demo['crm_only_accounts'][0]['password']}",
            f"  Endpoints and identities: {self.state_dir / 'stack.json'}    Logs: {self.logs}/",
            "  Ctrl-C stops everything.",
            "",
        ]
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.stack", description=__doc__.splitlines()[0])
    parser.add_argument("--functions-port", type=int, default=7071)
    parser.add_argument("--m365-port", type=int, default=7443)
    parser.add_argument("--crm-port", type=int, default=7090)
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".local")
    parser.add_argument("--skip", default="", type=lambda v: [n for n in v.split(",") if n], help="emulators not to start, e.g. crm,m365")
    args = parser.parse_args(argv)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(args)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    stack.plan()
    try:
        stack.start()
        print(stack.banner(), flush=True)
        while not stopping.wait(1):
            dead = [c.name for c in stack.children if not c.alive()]
            if dead:
                print(f"{', '.join(dead)} stopped unexpectedly; stopping the stack", flush=True)
                return 1
        return 0
    except RuntimeError as error:
        print(f"make run: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        stack.stop()
        print("Stack stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
