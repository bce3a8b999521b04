"""``python -m emulators.m365 --host 127.0.0.1 --port 7443 --seed ... --state-dir .local``"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from .server import start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulators.m365", description="Entra ID + Microsoft Graph v1.0 emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7443)
    parser.add_argument("--seed", default=str(Path(__file__).parent / "seed" / "demo.json"))
    parser.add_argument("--state-dir", default=".local")
    args = parser.parse_args(argv)
    # The handler only appends: Event.set() in a handler can deadlock on the Event's own lock
    # when the signal lands while this thread is inside Event.wait().
    stopping: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, _frame: stopping.append(received))
    running = start(host=args.host, port=args.port, seed=args.seed, state_dir=Path(args.state_dir))
    print(f"m365 emulator ready on {running.base_url}", flush=True)
    while not stopping:
        time.sleep(0.2)
    running.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
