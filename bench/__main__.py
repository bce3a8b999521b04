"""``make bench`` / ``python -m bench [scenario ...] [--scale X]``: run the benchmarks of issue 9
on the local stack and write ``bench/results/<timestamp>.json`` plus a printed table.

Scenarios: initial-calendar, initial-contacts, steady-state, propagation, many-members, org-fanout,
throttled, propagation-under-load (all when none is named). ``--scale`` multiplies the
issue's sizes (5,000 events, 10,000 contacts, 500 events per member); the scale and every
actual N are printed and recorded. Azurite is reused if it runs; run under ``flock /tmp/stack-tests.lock`` where the
machine is shared.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench import results as results_file
from bench.scenarios import SCENARIOS, Context, run

# The default scale keeps `make bench` under 20 minutes on our 2-core machine (see docs/benchmarks.md).
DEFAULT_SCALE = 0.2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--scale", type=float, default=DEFAULT_SCALE,
                        help=f"fraction of the issue's sizes (default {DEFAULT_SCALE}; 1 = the issue's sizes)")
    parser.add_argument("--out", type=Path, default=results_file.RESULTS_DIR, help="where the results file goes")
    parser.add_argument("--chart", type=Path, help="also draw the initial-sync progress chart (PNG) here")
    args = parser.parse_args(argv)
    names = args.scenarios or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    print(f"make bench: scenarios {', '.join(names)}; SCALE FACTOR {args.scale} of the issue's sizes", flush=True)
    began = time.monotonic()
    results = results_file.new_results()
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        ctx = Context(scale=args.scale, workdir=Path(workdir),
                      log=lambda line: print(f"[{time.monotonic() - began:6.0f}s] {line}", flush=True))
        results["scenarios"] = run(ctx, names)
    results["machine"]["bench_seconds"] = round(time.monotonic() - began, 1)
    path = results_file.write(results, args.out)
    print(results_file.table(results))
    print(f"\nresults: {path} ({results['machine']['bench_seconds']:.0f} s in all)")
    chart = args.chart or path.with_suffix(".png")
    try:
        from bench.chart import draw

        drawn = draw(results, chart)
        if drawn:
            print(f"chart: {drawn}")
    except ImportError:
        print("chart: matplotlib is not installed (requirements-dev.txt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
