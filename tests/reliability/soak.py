"""``make soak``: the long reliability runs, then exactly one summary line

    soak: kills=N redeliveries=N faults=N fuzzed=N lost=N duplicated=N
    journeys=N steps=N lost=N duplicated=N unexplained=N

and a non-zero exit unless every test passed and nothing was lost, duplicated or unexplained.

- the reliability suite at full size (SOAK=1) with the soak-only crash runs (20+ SIGKILLs of the
  host, every queue message delivered three times), and the integration sync reliability tests;
- the hypothesis fuzzing of every endpoint with FUZZ_EXAMPLES examples per route;
- the journey test (tests/journey) over JOURNEY_SOAK_SEEDS seeds per kind, JOURNEY_SOAK_ROUNDS rounds each.

Counts are real: kills by each ``HostProcess``, redeliveries by the host's queue listener (one line
per extra copy in ``LOCAL_QUEUE_REDELIVERY_COUNTER``), faults by the emulators, the proxy and the
tests' own fault gestures, lost and duplicated from the end-state comparisons (``$SOAK_REPORT``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RELIABILITY = ["tests/reliability", "tests/integration/test_sync_reliability.py"]
JOURNEY = ["tests/journey"]
FUZZ = ["tests/security/test_fuzz.py"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.soak")
    parser.add_argument("--fuzz-examples", type=int, default=int(os.environ.get("FUZZ_EXAMPLES", "150")))
    parser.add_argument("--quick", action="store_true", help="make test's sizes (a check of the soak machinery)")
    parser.add_argument("-k", default=None, help="only the reliability tests matching this pytest -k expression")
    parser.add_argument("--journeys", type=int, default=int(os.environ.get("JOURNEY_SOAK_SEEDS", "6")),
                        help="journey seeds per kind")
    parser.add_argument("--journey-rounds", type=int, default=int(os.environ.get("JOURNEY_SOAK_ROUNDS", "24")))
    parser.add_argument("--journeys-only", action="store_true", help="only the journeys (their line alone)")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="soak-"))
    report, counter, kills = work / "report.jsonl", work / "redeliveries.txt", work / "kills.txt"
    for path in (report, counter, kills):
        path.touch()
    seeds = ",".join(f"soak-{n}" for n in range(args.journeys))
    env = {**os.environ, "SOAK_REPORT": str(report), "LOCAL_QUEUE_REDELIVERY_COUNTER": str(counter),
           "HOST_KILL_COUNTER": str(kills),
           "FUZZ_EXAMPLES": str(args.fuzz_examples), "JOURNEY_SEEDS": seeds, "JOURNEY_ROUNDS": str(args.journey_rounds)}
    if not args.quick:
        env["SOAK"] = "1"
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=3600"]

    selection = ["-m", "not slow"] if not args.quick else ["-m", "not slow and not soak"]
    if args.journeys_only:
        walked = subprocess.run([*base, *JOURNEY], cwd=ROOT, env=env, check=False)
        journey = _journey_totals([json.loads(line) for line in report.read_text(encoding="utf-8").splitlines() if line.strip()])
        return 0 if walked.returncode == 0 and not (journey["lost"] or journey["duplicated"] or journey["unexplained"]) else 1
    reliability = subprocess.run([*base, *selection, *(["-k", args.k] if args.k else []), *RELIABILITY],
                                 cwd=ROOT, env=env, check=False)
    journeys = subprocess.run([*base, *JOURNEY], cwd=ROOT, env=env, check=False) if args.journeys > 0 else None
    fuzz = subprocess.run([*base, "-s", *FUZZ], cwd=ROOT, env=env, check=False, capture_output=True, text=True)
    sys.stdout.write(fuzz.stdout[-4000:])
    sys.stderr.write(fuzz.stderr[-4000:])
    fuzzed = sum(int(n) for n in re.findall(r"fuzzed=(\d+)", fuzz.stdout))

    lines = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines() if line.strip()]
    totals = {key: sum(int(line.get(key, 0)) for line in lines) for key in ("faults", "lost", "duplicated", "checks")}
    totals["kills"] = _lines(kills)
    redeliveries = _lines(counter)
    passed = (reliability.returncode == 0 and fuzz.returncode == 0 and totals["checks"] > 0
              and (journeys is None or journeys.returncode == 0))
    print(f"soak: kills={totals['kills']} redeliveries={redeliveries} faults={totals['faults']} fuzzed={fuzzed} "
          f"lost={totals['lost']} duplicated={totals['duplicated']}")
    journey = _journey_totals(lines)
    if not passed:
        print(f"(reliability exit {reliability.returncode}, fuzz exit {fuzz.returncode}, {totals['checks']} end-state checks;"
              f" details in {work})", file=sys.stderr)
    return 0 if passed and totals["lost"] == 0 and totals["duplicated"] == 0 and journey["unexplained"] == 0 else 1


def _journey_totals(lines: list[dict[str, object]]) -> dict[str, int]:
    """The journeys' report lines added up, and their summary line printed."""
    walks = [line for line in lines if line.get("test") == "journey"]
    totals = {key: sum(int(w.get(key, 0)) for w in walks) for key in ("journeys", "steps", "lost", "duplicated", "unexplained")}  # type: ignore[call-overload]
    print(f"journeys={totals['journeys']} steps={totals['steps']} lost={totals['lost']} "
          f"duplicated={totals['duplicated']} unexplained={totals['unexplained']}")
    return totals


def _lines(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


if __name__ == "__main__":
    raise SystemExit(main())
