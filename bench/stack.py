"""The local stack for one benchmark scenario, every part in its own process: Azurite (reused
if one runs), the Microsoft 365 emulator, the CRM emulator and the Functions host
(``python -m local.host``), so that no two of them share a GIL.

Every emulated Graph request (each ``$batch`` item) and every CRM call waits a fixed
``LATENCY_MS`` before it is answered, for the product and the floor alike.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from local.azurite import Azurite
from local.demo_world import APP_REGISTRATION, CRM_CLIENT

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LATENCY_MS = 30  # injected per Graph request (each $batch item) and per CRM call
# The functions of queue sync-bulk (functions/sync_workers.py): on an instance of their own when
# a scenario mirrors Flex Consumption's per-function scaling.
BULK_FUNCTIONS = ("sync_bulk_step", "sync_bulk_step_given_up")
CONTOSO = "7c1e2b8a-3f4d-4e5a-9b6c-0d1e2f3a4b5c"
ADELE = "adele@contoso.test"
FLOOR_USER = "floor@contoso.test"  # the floor's own mailbox beside the product's member


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def peak_memory_mb(pid: int) -> float | None:
    """VmHWM (peak resident set) of a live process, in MB."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
    return round(int(match.group(1)) / 1024, 1) if match else None


class Service:
    """A child process in its own process group, its output in a log file."""

    def __init__(self, name: str, command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.name, self.command, self.log = name, command, log
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=self.log.open("ab"),
                                        stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready_url(self, pattern: str, timeout: float = 60) -> str:
        """The URL the child prints once it listens (``... ready on <url>``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log.read_text(errors="replace")) if self.log.exists() else None
            if match:
                return match.group(1)
            if not self.alive():
                raise RuntimeError(f"{self.name} exited during start-up; see {self.log}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start within {timeout}s; see {self.log}")

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        except ProcessLookupError:
            pass


def _user(upn: str, name: str, *, admin: bool) -> dict[str, Any]:
    given, _, surname = name.partition(" ")
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench:{upn}")), "userPrincipalName": upn, "mail": upn,
        "givenName": given, "surname": surname or given, "displayName": name, "accountEnabled": True, "userType": "Member",
        "assignedLicenses": [{"skuId": "c7df2760-2c81-4ef7-b578-5b5392b571df", "disabledPlans": []}],
        "directoryRoles": ["Global Administrator"] if admin else [],
        "mailbox": {"calendars": [{"name": "Calendar", "isDefault": True, "events": []}],
                    "contactFolders": [{"displayName": "Contacts", "isDefault": True, "contacts": []}]},
    }


class BenchStack:
    """``with BenchStack(workdir) as stack:`` the whole stack, fresh tables (own TABLE_PREFIX)."""

    def __init__(self, workdir: Path, *, latency_ms: int = LATENCY_MS, bulk_on_own_instance: bool = False) -> None:
        """``bulk_on_own_instance``: the sync-bulk trigger runs on a host of its own and every
        other function on the first, as Flex Consumption scales each queue-triggered function on
        its own instances (per-function scaling); otherwise one host runs everything."""
        self.workdir = workdir
        self.bulk_on_own_instance = bulk_on_own_instance
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.latency_ms = latency_ms
        self.azurite = Azurite(log_path=workdir / "azurite.log")
        self.m365 = Service("m365", [PYTHON, "-m", "emulators.m365", "--host", "127.0.0.1", "--port", "0",
                                     "--seed", str(ROOT / "emulators/m365/seed/demo.json"),
                                     "--state-dir", str(workdir / "m365")], workdir / "m365.log")
        self.crm = Service("crm", [PYTHON, "-m", "emulators.crm", "--host", "127.0.0.1", "--port", "0",
                                   "--seed", str(ROOT / "emulators/crm/seed/demo.json")], workdir / "crm.log")
        self.host: Service | None = None
        self.extra_hosts: list[Service] = []  # more Functions instances on the same queues and tables
        self.counts_file = workdir / "host-table-counts.json"
        self.env: dict[str, str] = {}
        self.m365_url = self.crm_url = self.host_url = ""
        self.control = requests.Session()
        self.control.trust_env = False

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> BenchStack:
        self.azurite.start()
        self.m365.start()
        self.crm.start()
        self.m365_url = self.m365.ready_url(r"m365 emulator ready on (https://\S+)")
        self.crm_url = self.crm.ready_url(r"crm emulator ready on (http://\S+)")
        self.control.verify = str(self.ca_cert)
        port = free_port()
        self.host_url = f"http://127.0.0.1:{port}"
        from cryptography.fernet import Fernet

        self.env = {
            "AzureWebJobsStorage": self.azurite.connection_string,
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "TABLE_PREFIX": f"b{uuid.uuid4().hex[:12]}",
            "PUBLIC_BASE_URL": self.host_url,
            "ENTRA_AUTHORITY_HOST": self.m365_url,
            "ENTRA_CLIENT_ID": APP_REGISTRATION["client_id"],
            "ENTRA_CLIENT_SECRET": APP_REGISTRATION["client_secret"],
            "GRAPH_BASE_URL": f"{self.m365_url}/v1.0",
            "OUTBOUND_CA_BUNDLE": str(self.ca_cert),
            "CRM_ACCOUNTS_URL": f"{self.crm_url}/us/accounts",
            "CRM_PROVISIONING_URL": f"{self.crm_url}/provisioning/v1",
            "CRM_ACCOUNTS_SERVERS": ",".join(f"{self.crm_url}/{dc}/accounts" for dc in ("us", "eu")),
            "CRM_API_DOMAINS": ",".join(f"{self.crm_url}/{dc}/api" for dc in ("us", "eu")),
            "CRM_CLIENT_ID": CRM_CLIENT["client_id"],
            "CRM_CLIENT_SECRET": CRM_CLIENT["client_secret"],
            "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "SESSION_SECRET": uuid.uuid4().hex * 2,
        }
        self.set_latency()
        first = {**self.env, "BENCH_TABLE_COUNTS_FILE": str(self.counts_file)}
        if self.bulk_on_own_instance:
            first.update({f"AzureWebJobs.{name}.Disabled": "true" for name in BULK_FUNCTIONS})
        self.host = Service("host", [PYTHON, "-m", "local.host", "--port", str(port)], self.workdir / "host.log",
                            env=first).start()
        deadline = time.monotonic() + 90
        while True:
            if not self.host.alive():
                raise RuntimeError(f"the Functions host exited; see {self.host.log}")
            try:
                requests.get(f"{self.host_url}/api/health", timeout=5)
                break
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or slow to answer
                if time.monotonic() > deadline:
                    raise RuntimeError("the Functions host did not answer within 90 s") from None
                time.sleep(0.2)
        if self.bulk_on_own_instance:
            # Every function the first host lists, but sync-bulk's (and health, to see it is up).
            listed = re.findall(r"\] Function (\w+): ", self.host.log.read_text(errors="replace"))
            others = {name for name in listed if name not in BULK_FUNCTIONS and name != "health"}
            self.extra_hosts.append(self._extra_host(2, {f"AzureWebJobs.{name}.Disabled": "true" for name in others}))
        self._use_env_here()
        return self

    def add_hosts(self, count: int) -> None:
        """``count`` more Functions hosts on the same Azurite queues and tables (as Flex scales
        out); webhooks still reach the first (any instance may take them in Azure)."""
        for _ in range(count):
            self.extra_hosts.append(self._extra_host(len(self.extra_hosts) + 2))

    def _extra_host(self, number: int, env: dict[str, str] | None = None) -> Service:
        port = free_port()
        service = Service(f"host{number}", [PYTHON, "-m", "local.host", "--port", str(port)], self.workdir / f"host{number}.log",
                          env={**self.env, **(env or {})}).start()
        deadline = time.monotonic() + 90
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/api/health", timeout=5)
                return service
            except (requests.ConnectionError, requests.Timeout):
                if not service.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"host{number} did not start; see {service.log}") from None
                time.sleep(0.2)

    def kill_extra_host(self, index: int) -> None:
        """SIGKILL one extra host (a crashed instance: its steps die half-way)."""
        process = self.extra_hosts[index].process
        assert process is not None
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def restart_extra_host(self, index: int) -> None:
        self.extra_hosts[index] = self._extra_host(index + 2)

    def _use_env_here(self) -> None:
        """The runner calls the product's domain services (install, enable) as tests do."""
        os.environ.update(self.env)
        from shared.config import get_settings

        get_settings.cache_clear()

    def stop(self) -> None:
        for service in (*self.extra_hosts, self.host, self.crm, self.m365):
            if service is not None:
                service.stop()
        keep = os.environ.get("BENCH_KEEP_LOGS")  # a directory: the run's logs are copied there
        if keep:
            shutil.copytree(self.workdir, Path(keep) / self.workdir.name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("m365"))
        self.azurite.stop()

    def __enter__(self) -> BenchStack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def ca_cert(self) -> Path:
        return self.workdir / "m365" / "m365-ca.pem"

    # ---- emulator control -----------------------------------------------------------------------
    def m365_control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.control.request(method, f"{self.m365_url}/__emulator/{path}", timeout=120, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else {}

    def crm_control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.control.request(method, f"{self.crm_url}/__emulator/{path}", timeout=300, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else {}

    def set_latency(self, **graph_faults: Any) -> None:
        """The fixed latency on both sides, plus any Graph faults (rate_429, rate_503, ...)."""
        self.m365_control("PUT", "faults", json={"latency_ms": self.latency_ms, **graph_faults})
        self.crm_control("PUT", "faults", json={"latency_ms": self.latency_ms})

    def add_users(self, tenants: list[dict[str, Any]]) -> None:
        """``[{"id", "name", "domain", "users": [(upn, display name, admin?)]}]`` merged into the M365 world."""
        seed = {"tenants": [{"id": t["id"], "displayName": t["name"], "domain": t["domain"], "password": "Bench-Pass-1",
                             "users": [_user(upn, name, admin=admin) for upn, name, admin in t["users"]]}
                            for t in tenants]}
        self.m365_control("POST", "seed", json={"mode": "merge", "seed": seed})

    def reset_counters(self) -> None:
        self.m365_control("POST", "counters/reset")
        self.crm_control("POST", "counters/reset")

    def counters(self) -> dict[str, Any]:
        graph = self.m365_control("GET", "counters")
        crm = self.crm_control("GET", "counters")
        return {"graph": graph, "crm": crm}

    # ---- the host's own figures -----------------------------------------------------------------
    def host_table_counts(self) -> dict[str, int]:
        """The host process's Table request counts so far (it writes them on SIGUSR1)."""
        assert self.host is not None
        before = self._read_counts().get("seq", 0)
        os.kill(self.host.pid, signal.SIGUSR1)
        # The handler runs on the host's main thread between bytecodes: a busy host (100 members
        # syncing at once) takes a while to get there.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            data = self._read_counts()
            if data.get("seq", 0) > before:
                self.last_by_table: dict[str, int] = dict(data.get("by_table", {}))
                return dict(data["table"])
            time.sleep(0.05)
        raise RuntimeError("the host did not report its Table counts")

    def _read_counts(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.counts_file.read_text()))
        except (OSError, ValueError):
            return {}

    def host_log_mark(self) -> int:
        """Where the host's log ends now (see ``host_executions``)."""
        assert self.host is not None
        return self.host.log.stat().st_size if self.host.log.exists() else 0

    def instances_log_marks(self) -> list[int]:
        """Where each extra host's log ends now (see ``instances_executions``)."""
        return [h.log.stat().st_size if h.log.exists() else 0 for h in self.extra_hosts]

    def host_executions(self, mark: int) -> dict[str, float]:
        """Function executions the host logged since ``mark``, and their summed duration (what
        Flex Consumption bills as active time, at most)."""
        assert self.host is not None
        return _executions(self.host.log, mark)

    def instances_executions(self, host_mark: int, marks: list[int]) -> dict[str, float]:
        """``host_executions`` of every host together, each since its mark."""
        assert self.host is not None
        counts = [_executions(self.host.log, host_mark), *(_executions(h.log, m) for h, m in zip(self.extra_hosts, marks, strict=True))]
        return {key: round(sum(c[key] for c in counts), 1) for key in counts[0]}

    def host_peak_memory_mb(self) -> float | None:
        assert self.host is not None
        return peak_memory_mb(self.host.pid)


def _executions(log_path: Path, mark: int) -> dict[str, float]:
    with log_path.open("rb") as log:
        log.seek(mark)
        text = log.read().decode(errors="replace")
    durations = [int(d) for d in re.findall(r"Executed '[^']+' \((?:Succeeded|Failed)[^)]*Duration=(\d+)ms\)", text)]
    return {"function_executions": len(durations), "function_execution_s": round(sum(durations) / 1000, 1)}
