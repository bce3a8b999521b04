"""Issue 19: ``make run`` stops cleanly on Ctrl-C, whenever it comes.

Each round launches ``make run`` in a session of its own and sends SIGINT to that process
group, as a terminal's Ctrl-C does, at a random moment between 0 and the measured start-up
time (while make starts Python, Azurite starts, the emulators seed their demo data, the
Functions host loads, the banner is being written) and then checks that within 20 s the
group is empty, no process of the round is left anywhere (children run in sessions of their
own, so they are found by a marker in their environment, which they all inherit), and none
of the stack's TCP ports listens.

The stack runs on free ports (``STACK_ARGS``) with an Azurite of its own, so that it never
meets the session's Azurite or a developer's ``make run``. ``make -o install``: the stack
only; a Ctrl-C in the middle of ``npm ci`` or ``pip install`` would break the checkout, and
``make test`` has installed already.

The delays come from a seeded RNG (``STACK_CTRL_C_SEED`` picks another seed; the seed and the
delays are printed, a failure names its round).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from local.azurite import port_open

ROOT = Path(__file__).resolve().parents[2]
GONE_WITHIN = 20.0  # seconds from the Ctrl-C until nothing of the stack is left (the bar)
UP_WITHIN = 120.0
MARKER = "STACK_CTRL_C_TEST_ROUND"
SEED = int(os.environ.get("STACK_CTRL_C_SEED", "19"))


def free_ports(count: int) -> list[int]:
    """Ports free now, all different (held open together while they are chosen)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def processes_with(marker: str) -> dict[int, str]:
    """pid -> command line of every process whose environment carries ``marker``."""
    needle = f"{MARKER}={marker}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Round:
    make: subprocess.Popen[bytes]
    marker: str
    ports: dict[str, int]
    output: Path
    launched: float

    def up(self) -> bool:
        return "The stack is up." in self.output.read_text(errors="replace")

    def leftovers(self) -> list[str]:
        """What is still there (empty once the stack is gone)."""
        self.make.poll()  # reap make: a zombie leader still holds the group
        found = []
        if group_alive(self.make.pid):
            found.append(f"process group {self.make.pid}")
        found += [f"pid {pid}: {cmd}" for pid, cmd in processes_with(self.marker).items()]
        found += [f"{name} port {port} listening" for name, port in self.ports.items() if port_open(port)]
        return found

    def kill(self) -> None:
        """The test's own clean-up, whatever happened: SIGKILL the group and every straggler."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.make.pid, signal.SIGKILL)
        for pid in processes_with(self.marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.make.wait(10)


def launch(tmp_path: Path, name: str) -> Round:
    ports = dict(zip(("functions", "m365", "crm", "blob", "queue", "table"), free_ports(6), strict=True))
    marker = uuid.uuid4().hex
    stack_args = (
        f"--functions-port {ports['functions']} --m365-port {ports['m365']} --crm-port {ports['crm']} "
        f"--azurite-ports {ports['blob']},{ports['queue']},{ports['table']} --state-dir {tmp_path / name}"
    )
    # MAKEFLAGS and friends of an outer `make test` would point this make at its jobserver.
    env = {k: v for k, v in os.environ.items() if k not in ("AzureWebJobsStorage", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    env[MARKER] = marker
    output = tmp_path / f"{name}.out"
    with output.open("wb") as sink:  # a file, not a pipe nobody reads (a full pipe would stall the stack)
        make = subprocess.Popen(
            ["make", "--no-print-directory", "-o", "install", "run", f"STACK_ARGS={stack_args}"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal gives a foreground job
        )
    return Round(make, marker, ports, output, time.monotonic())


def wait_up(run: Round) -> float:
    """Seconds from launch until the banner."""
    while not run.up():
        assert run.make.poll() is None, f"make run exited with {run.make.returncode}:\n{run.output.read_text()}"
        assert time.monotonic() - run.launched < UP_WITHIN, f"not up in {UP_WITHIN:.0f} s:\n{run.output.read_text()}"
        time.sleep(0.05)
    return time.monotonic() - run.launched


def ctrl_c_and_wait_gone(run: Round, what: str) -> float:
    """SIGINT to the group (what a terminal's Ctrl-C does); seconds until nothing is left."""
    sent = time.monotonic()
    os.killpg(run.make.pid, signal.SIGINT)
    while left := run.leftovers():
        if time.monotonic() - sent > GONE_WITHIN:
            pytest.fail(f"{what}: still there {GONE_WITHIN:.0f} s after Ctrl-C:\n  " + "\n  ".join(left)
                        + f"\n--- make run's output (seed {SEED}) ---\n{run.output.read_text(errors='replace')[-4000:]}")
        time.sleep(0.1)
    return time.monotonic() - sent


@contextlib.contextmanager
def stack_round(tmp_path: Path, name: str) -> Iterator[Round]:
    run = launch(tmp_path, name)
    try:
        yield run
    finally:
        run.kill()


def ctrl_c_rounds(tmp_path: Path, fractions: list[float | None]) -> None:
    """One round per entry: Ctrl-C once the banner is out (None), or after that fraction of
    the start-up time, which the first round (None) measures."""
    assert fractions[0] is None
    print(f"seed {SEED} (STACK_CTRL_C_SEED={SEED} replays these delays)")
    startup = 0.0
    for index, fraction in enumerate(fractions):
        what = f"round {index + 1} of {len(fractions)} (seed {SEED})"
        with stack_round(tmp_path, f"round-{index + 1}") as run:
            if fraction is None:
                startup = wait_up(run)
                moment = f"once up ({startup:.2f} s)"
            else:
                delay = fraction * startup
                time.sleep(max(0.0, run.launched + delay - time.monotonic()))
                moment = f"at {delay:.2f} s ({'up' if run.up() else 'starting'})"
            took = ctrl_c_and_wait_gone(run, f"{what}, Ctrl-C {moment}")
            print(f"{what}: Ctrl-C {moment}: all gone {took:.2f} s later")


def test_ctrl_c_stops_the_whole_stack_twenty_times_at_random_moments(tmp_path: Path) -> None:
    """The issue's bar: 20 Ctrl-C's in a row, the first once fully up, each other at a moment
    drawn uniformly between the launch and the start-up time the first round measured. About
    25 s on our 2-core machine (start-up about 2.3 s, a stop well under 1 s), so it runs in
    `make test` rather than as a slow test with a short variant."""
    rng = random.Random(SEED)
    ctrl_c_rounds(tmp_path, [None] + [rng.uniform(0, 1.0) for _ in range(19)])


def test_a_second_ctrl_c_while_stopping_leaves_nothing(tmp_path: Path) -> None:
    """An impatient second Ctrl-C right after the first: the stack kills what is still
    stopping instead of leaving it behind."""
    with stack_round(tmp_path, "twice") as run:
        wait_up(run)
        os.killpg(run.make.pid, signal.SIGINT)
        while "Stopping the stack..." not in run.output.read_text():
            assert time.monotonic() - run.launched < UP_WITHIN, run.output.read_text()
            time.sleep(0.01)
        ctrl_c_and_wait_gone(run, "second Ctrl-C")
        print(run.output.read_text().split("Stopping the stack...")[-1])


def test_the_children_die_with_a_hard_killed_stack(tmp_path: Path) -> None:
    """SIGKILL leaves the stack no chance to stop anything: on Linux the children go anyway
    (PR_SET_PDEATHSIG), whole, ports closed."""
    with stack_round(tmp_path, "killed") as run:
        wait_up(run)
        stack = [pid for pid, cmd in processes_with(run.marker).items() if "-m local.stack" in cmd]
        assert len(stack) == 1, processes_with(run.marker)
        os.kill(stack[0], signal.SIGKILL)
        deadline = time.monotonic() + GONE_WITHIN
        while left := run.leftovers():
            assert time.monotonic() < deadline, "still there after the stack was killed:\n  " + "\n  ".join(left)
            time.sleep(0.1)


def _catches_sigint(pid: int) -> bool:
    """Whether the process has a handler for SIGINT (``SigCgt`` in /proc: a bit per signal)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    caught = next((line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0")
    return bool(int(caught, 16) & (1 << (signal.SIGINT - 1)))


def test_a_ctrl_c_during_the_imports_stops_the_stack_even_with_sigint_inherited_ignored(tmp_path: Path) -> None:
    """make test failed twice: a Ctrl-C 0.44 s (then 0.68 s) into the start, and the stack came up
    as if nothing had been pressed. A process that inherits SIGINT ignored keeps it so until it
    sets a handler, and ours was set after the imports (up to a second under load). Now the
    first lines of ``python -m local.stack`` count it (without: still running 15 s later)."""
    ports = free_ports(6)
    stack = subprocess.Popen(
        [sys.executable, "-m", "local.stack", "--functions-port", str(ports[0]), "--m365-port", str(ports[1]),
         "--crm-port", str(ports[2]), "--azurite-ports", ",".join(map(str, ports[3:])), "--state-dir", str(tmp_path)],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        # Inside the imports: once the first lines have set their handler (before them the signal,
        # ignored, is gone whatever the product does; a fixed 0.05 s came before them under the
        # full suite's load and made this test fail with no fault of the stack).
        deadline = time.monotonic() + 10
        while not _catches_sigint(stack.pid):
            assert time.monotonic() < deadline and stack.poll() is None, "the stack never set its SIGINT handler"
            time.sleep(0.002)
        os.killpg(stack.pid, signal.SIGINT)
        assert stack.wait(15) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(stack.pid, signal.SIGKILL)


def test_the_stop_handlers_are_set_before_any_import_but_signal() -> None:
    """What the test above relies on, checked without a race: ``python -m local.stack`` sets its
    stop handlers in its first statements, before the imports that take up to a second."""
    import ast

    body = ast.parse((ROOT / "local" / "stack.py").read_text()).body
    statements = [node for node in body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    imports_before = [node for node in statements[:statements.index(next(n for n in statements if isinstance(n, ast.If)))]
                      if isinstance(node, ast.Import | ast.ImportFrom)]
    assert [ast.unparse(node) for node in imports_before] == ["from __future__ import annotations", "import signal"]
    early = next(n for n in statements if isinstance(n, ast.If))
    assert "__main__" in ast.unparse(early.test) and "signal.signal" in ast.unparse(early)
