"""``python -m emulators.crm --host 127.0.0.1 --port 7090 --seed emulators/crm/seed/demo.json``"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from .server import DEMO_SEED, start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulators.crm", description="Zoho CRM emulator (dev only)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7090)
    parser.add_argument("--seed", default=str(DEMO_SEED), help="seed JSON file; '' for an empty world")
    args = parser.parse_args(argv)
    running = start(args.host, args.port, args.seed or None)
    # The handler only appends: Event.set() in a handler can deadlock on the Event's own lock
    # when the signal lands while this thread is inside Event.wait() (issue 19).
    stopping: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    print(f"crm emulator ready on {running.base_url}", flush=True)
    while not stopping:
        time.sleep(0.2)
    running.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
