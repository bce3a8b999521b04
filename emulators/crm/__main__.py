"""``python -m emulators.crm --host 127.0.0.1 --port 7090 --seed emulators/crm/seed/demo.json``"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import DEMO_SEED, start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulators.crm", description="Zoho CRM emulator (dev only)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7090)
    parser.add_argument("--seed", default=str(DEMO_SEED), help="seed JSON file; '' for an empty world")
    args = parser.parse_args(argv)
    running = start(args.host, args.port, args.seed or None)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    print(f"crm emulator ready on {running.base_url}", flush=True)
    while not stopping.wait(0.5):
        pass
    running.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
