"""``make run``: the whole product locally — Azurite, the emulators, the Functions host.

    python -m local.stack [--functions-port 7071] [--m365-port 7443] [--crm-port 7090]

Writes .local/stack.json (every endpoint and the demo identities), prints where to click,
and stops every child cleanly on Ctrl-C, SIGTERM or SIGHUP (or when one of them dies), at any
moment: while children are starting too. A second Ctrl-C kills what is still stopping. Each
child runs in its own process group (so a terminal's Ctrl-C reaches only us, and we stop each
group whole); on Linux each also dies if this process is killed hard.
"""

from __future__ import annotations

import signal

if __name__ == "__main__":
    # ``python -m local.stack``: a stop signal is counted from the first moment. The imports below
    # take up to a second on a loaded machine, and a Ctrl-C that landed meanwhile was lost (the
    # stack then came up as if nothing had been pressed: make test, test_stack_ctrl_c, Ctrl-C at
    # 0.44 and 0.68 s of the start, twice in a row under the full suite's load). ``main`` adds them.
    EARLY_SIGNALS: list[int] = []
    for _sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(_sig, lambda signum, frame: EARLY_SIGNALS.append(signum))

import argparse  # noqa: E402 - after the early handlers above
import contextlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

from local.azurite import Azurite, die_with_parent, port_open
from local.demo_world import APP_REGISTRATION, CRM_CLIENT, DEMO, crm_setup_menu

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_SECONDS = 10.0  # SIGTERM, then SIGKILL: a stop must end well within the 20 s issue 19 allows


class Interrupted(Exception):
    """A stop signal arrived while the stack was starting."""


class StopSignals:
    """Counts SIGINT, SIGTERM and SIGHUP; the stack polls the count.

    Python runs a signal handler in the main thread between two bytecodes, possibly while that
    thread holds a lock. The old handler called ``threading.Event.set()`` on the Event the main
    thread was waiting on: when the signal landed while ``Event.wait`` held the Event's own
    (non-reentrant) lock, ``set()`` waited for it forever, and every later signal did the same,
    so the stack ignored Ctrl-C and SIGTERM and its children kept their ports. This handler only
    adds to an int: it takes no lock, allocates nothing that could, and raises nothing (an
    exception thrown into the middle of ``Popen`` could lose a started child)."""

    def __init__(self) -> None:
        self.count = 0

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.count += 1

    @property
    def requested(self) -> bool:
        return self.count > 0

    def check(self) -> None:
        """Called between start-up steps and in every wait loop: stop starting at once."""
        if self.count:
            raise Interrupted


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
            start_new_session=True,  # our own group: a terminal's Ctrl-C reaches only the stack, which stops us
            preexec_fn=die_with_parent(),
        )
        threading.Thread(target=self._pump, args=(self.process.stdout, log), daemon=True).start()

    def _pump(self, stream: IO[bytes] | None, log: IO[bytes]) -> None:
        assert stream is not None
        for line in stream:
            log.write(line)
            log.flush()
            if self.echo:
                try:
                    sys.stdout.write(f"[{self.name}] {line.decode(errors='replace')}")
                    sys.stdout.flush()
                except (OSError, ValueError):  # our terminal is gone: keep draining into the log
                    self.echo = False

    def wait_ready(self, logs: Path, signals: StopSignals, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            signals.check()
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited during start-up; see {logs / (self.name + '.log')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not listen on {self.port} within {timeout}s")
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal a whole process group; False when the group is empty (gone)."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # the id now names a group that is not ours: ours is gone
        return False
    return True


def stop_process_groups(waves: list[dict[str, subprocess.Popen[bytes]]], hurry: Callable[[], bool] = lambda: False,
                        grace: float = GRACE_SECONDS) -> None:
    """Stop process groups in waves (the Functions host before the emulators before Azurite: a
    host whose storage vanished first sits in the storage SDK's 15-s retry back-off instead of
    stopping), each wave SIGTERMed at once and waited for together. ``grace`` is the budget
    of the whole stop: past it, or at once when ``hurry()`` (a second Ctrl-C), whatever is left
    gets SIGKILL, later waves included. Each child leads its own group (start_new_session), so
    the group id is its pid: the whole group is signalled, whatever the child itself started."""
    deadline = time.monotonic() + grace
    left: dict[str, subprocess.Popen[bytes]] = {}
    for wave in waves:
        left.update(wave)
        for proc in wave.values():
            _signal_group(proc.pid, signal.SIGTERM)
        while any(name in left for name in wave) and time.monotonic() < deadline and not hurry():
            time.sleep(0.05)
            for name, proc in list(left.items()):
                proc.poll()  # reap the leader: a zombie leader still counts as a member
                if not _signal_group(proc.pid, 0):
                    del left[name]
        if any(name in left for name in wave):
            break
    for wave in waves:  # groups of waves not reached yet: straight to SIGKILL
        left.update({name: proc for name, proc in wave.items() if _signal_group(proc.pid, 0)})
    if not left:
        return
    for proc in left.values():
        _signal_group(proc.pid, signal.SIGKILL)
    why = "after a second signal" if hurry() else f"still running {grace:.0f} s after the stop began"
    _say(f"killed {', '.join(left)} ({why})")
    for name, proc in left.items():
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:  # unkillable (D state): nothing more we can do
            _say(f"{name} (pid {proc.pid}) did not die on SIGKILL")


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
    def __init__(self, args: argparse.Namespace, signals: StopSignals | None = None) -> None:
        self.args = args
        self.state_dir: Path = args.state_dir.resolve()
        self.logs = self.state_dir / "logs"
        self.keys_file = host_keys(self.state_dir)
        azurite_ports = dict(zip(("blob", "queue", "table"), args.azurite_ports, strict=True)) if args.azurite_ports else None
        self.azurite = Azurite(log_path=self.logs / "azurite.log", ports=azurite_ports, die_with_parent=True)
        self.children: list[Child] = []
        self.endpoints: dict[str, Any] = {}
        self.signals = signals or StopSignals()

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
                crm_accounts=f"{base}/us/accounts", crm_api=f"{base}/us/api", crm_provisioning=f"{base}/provisioning/v1",
                crm_home=f"{base}/us/crm/home",
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
        """Start everything in order; raises Interrupted as soon as a stop signal is seen (the
        caller's ``finally: stop()`` then stops whatever had been started)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self.signals.check()
        self.azurite.start(cancelled=lambda: self.signals.requested)
        for child in self.children:
            self.signals.check()
            child.start(self.logs)
            child.wait_ready(self.logs, self.signals)
        self.signals.check()
        if "crm" in self.endpoints["emulator_control"]:
            # The CRM home's Setup menu leads into the product, as the banner says to click.
            try:
                requests.put(f"{self.endpoints['emulator_control']['crm']}setup-menu",
                             json={"items": crm_setup_menu(self.endpoints["functions"])}, timeout=5).raise_for_status()
            except requests.RequestException as error:
                raise RuntimeError(f"the CRM emulator refused its Setup menu: {error}") from error
        (self.state_dir / "stack.json").write_text(json.dumps(self.endpoints, indent=2))

    def healthy(self) -> requests.Response:
        return requests.get(f"{self.endpoints['functions']}/api/health", timeout=10)

    def stop(self) -> None:
        """Stop every group we started, all at once; a further signal meanwhile means SIGKILL now."""
        already = self.signals.count
        started = {c.name: c.process for c in self.children if c.process is not None}
        waves = [{n: p for n, p in started.items() if n == "functions"}, {n: p for n, p in started.items() if n != "functions"}]
        if self.azurite.process is not None:
            waves.append({"azurite": self.azurite.process})
        stop_process_groups(waves, hurry=lambda: self.signals.count > already)
        self.azurite.stop()  # already stopped above: this only forgets it
        (self.state_dir / "stack.json").unlink(missing_ok=True)

    def _route_exists(self, path: str) -> bool:
        try:  # short timeout: a Ctrl-C is only seen once this returns
            response = requests.get(f"{self.endpoints['functions']}{path}", timeout=3, allow_redirects=False)
        except requests.RequestException:
            return False
        return response.status_code != 404

    def banner(self) -> str:
        e = self.endpoints
        launch = f"{e['functions']}/api/marketplace/launch" + (
            "" if self._route_exists("/api/marketplace/launch") else "  (not built yet)")
        lines = ["", "The stack is up."]
        if "crm_home" in e:
            lines.append(f"  Open {e['crm_home']}, then Setup > Marketplace > Microsoft")
        lines += [
            f"  Open the app (Office 365 app launcher entry): {launch}",
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

    def dead_children(self) -> list[str]:
        dead = [c.name for c in self.children if not c.alive()]
        if self.azurite.process is not None and self.azurite.process.poll() is not None:
            dead.append("azurite")
        return dead


def main(argv: list[str] | None = None) -> int:
    signals = StopSignals()
    signals.install()  # first: a Ctrl-C from here on is counted, never lost nor half-handled
    signals.count += len(globals().get("EARLY_SIGNALS", []))  # and those counted during the imports
    parser = argparse.ArgumentParser(prog="python -m local.stack", description=__doc__.splitlines()[0])
    parser.add_argument("--functions-port", type=int, default=7071)
    parser.add_argument("--m365-port", type=int, default=7443)
    parser.add_argument("--crm-port", type=int, default=7090)
    parser.add_argument("--azurite-ports", type=lambda v: [int(p) for p in v.split(",")], default=None,
                        help="blob,queue,table (default 10000,10001,10002; an Azurite already there is reused)")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".local")
    parser.add_argument("--skip", default="", type=lambda v: [n for n in v.split(",") if n], help="emulators not to start, e.g. crm,m365")
    args = parser.parse_args(argv)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(args, signals)
    try:
        stack.plan()
        stack.start()
        _say(stack.banner())
        # Poll: the handler only counts (it wakes nothing), so a stop begins within 0.2 s.
        while not signals.requested:
            dead = stack.dead_children()
            if dead:
                _say(f"{', '.join(dead)} stopped unexpectedly; stopping the stack")
                return 1
            time.sleep(0.2)
        return 0
    except Interrupted:
        return 0
    except RuntimeError as error:
        print(f"make run: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        _say("Stopping the stack...")
        stack.stop()
        _say("Stack stopped.")


def _say(message: str) -> None:
    """Print, unless our terminal is gone (SIGHUP): stopping the children matters more."""
    with contextlib.suppress(OSError, ValueError):
        print(message, flush=True)


if __name__ == "__main__":
    sys.exit(main())
