"""Cost per 1,000 members per month on Azure, computed from a results file's measured counts.

    python -m bench.cost bench/results/<timestamp>.json

Prices are list prices (USD, East US), kept here in one place with where they come from and
when they were looked up (docs/scaling.md); free grants are ignored (a conservative estimate).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PRICES = {
    # Flex Consumption, on demand: per GB-second of provisioned instance memory while executing,
    # and per execution. Source: modal.com/blog/azure-function-pricing-guide (2025-05-22), quoting
    # Azure's pricing page; looked up 2026-11-25 through the docs search of this workspace.
    "functions_gb_s": 0.000026,
    "functions_per_million_executions": 0.40,
    "instance_memory_gb": 2.048,  # Flex Consumption's default instance size (2,048 MB)
    # Storage transactions (Standard, LRS). NOT verified in this session (the pricing page could
    # not be fetched from this machine): recalled list prices; replace before quoting.
    "table_per_10k_transactions": 0.00036,
    "queue_per_10k_operations": 0.0004,
}
MEMBERS = 1000
DAYS = 30
SWEEPS_PER_DAY = 24 * 60 // 5  # the delta sweep timer, every 5 minutes
CHANGES_PER_MEMBER_PER_DAY = 50  # assumption: edits on either side, per member, per day
QUEUE_OPS_PER_EXECUTION = 3  # put, get, delete of the queue message behind a queued execution


def _scenario(results: dict[str, Any], prefix: str) -> dict[str, Any] | None:
    return next((s for s in results["scenarios"] if s["name"].startswith(prefix) and s["product"]), None)


def estimate(results: dict[str, Any], prices: dict[str, float] = PRICES) -> dict[str, Any]:
    """Monthly cost of 1,000 members with calendar and contacts sync on, at steady state, plus the
    one-off cost of their initial syncs (per item counts scaled to the issue's sizes)."""
    steady = [s for s in results["scenarios"] if s["name"].startswith("steady-state-") and s["product"]]
    if not steady:
        raise ValueError("the results hold no steady-state scenario")
    big = steady[-1]["product"]

    def per_change(key: str) -> float:
        return (big.get(f"outlook_change_{key}", 0) + big.get(f"crm_change_{key}", 0)) / 2

    changes = MEMBERS * CHANGES_PER_MEMBER_PER_DAY * DAYS
    profiles = MEMBERS * 2  # two profiles (calendar, contacts) per member
    fanout = _scenario(results, "org-fanout")
    if fanout is not None:
        # The timer's tick (issue 20): an idle tick's own cost per member with a sync on, and one
        # full delta round per profile a day (what ``idle_sweep_*`` measures per profile).
        tick = fanout["product"]
        full_rounds = profiles * DAYS
        ticks = profiles * SWEEPS_PER_DAY * DAYS
        sweep = {
            "table_transactions": ticks * tick.get("idle_tick_table_transactions_per_member", 0)
            + full_rounds * big.get("idle_sweep_table_transactions_per_profile", 0),
            "executions": full_rounds * big.get("idle_sweep_function_executions_per_profile", 0),
            "graph_requests": full_rounds * big.get("idle_sweep_graph_requests_per_profile", 0),
            "crm_calls": ticks * tick.get("idle_tick_crm_calls_per_member", 0)
            + full_rounds * big.get("idle_sweep_crm_calls_per_profile", 0),
        }
        sweep_model = "tick (org-fanout) + one full round per profile a day"
    else:  # results from before the tick: a step per profile every 5 minutes
        sweeps = profiles * SWEEPS_PER_DAY * DAYS
        sweep = {key: sweeps * big.get(f"idle_sweep_{key}_per_profile", 0)
                 for key in ("table_transactions", "graph_requests", "crm_calls")}
        sweep["executions"] = sweeps * big.get("idle_sweep_function_executions_per_profile", 0)
        sweep_model = "a step per profile every 5 minutes"
    steady_month = {
        "table_transactions": changes * per_change("table_transactions") + sweep["table_transactions"],
        "executions": changes * per_change("function_executions") + sweep["executions"],
        "graph_requests": changes * per_change("graph_requests") + sweep["graph_requests"],
        "crm_calls": changes * per_change("crm_calls") + sweep["crm_calls"],
    }
    # Active time per execution: from the propagation scenario (single changes), else 0.5 s.
    propagation = _scenario(results, "propagation")
    seconds_per_execution = 0.5
    if propagation and propagation["product"].get("function_executions"):
        seconds_per_execution = propagation["product"]["function_execution_s"] / propagation["product"]["function_executions"]
    steady_month["execution_s"] = steady_month["executions"] * seconds_per_execution

    initial = {}
    for kind, size in (("calendar", 5000), ("contacts", 10_000)):
        run = _scenario(results, f"initial-{kind}")
        if run is None or run["name"].endswith("throttled"):
            continue
        p, n = run["product"], run["product"]["items"]
        initial[kind] = {k: p.get(k, 0) * size / n * MEMBERS for k in
                         ("table_transactions", "function_executions", "function_execution_s", "graph_requests_incl_batch_items", "crm_calls")}

    def dollars(table: float, executions: float, seconds: float) -> dict[str, float]:
        cost = {
            "table": table / 10_000 * prices["table_per_10k_transactions"],
            "queue": executions * QUEUE_OPS_PER_EXECUTION / 10_000 * prices["queue_per_10k_operations"],
            "functions_executions": executions / 1e6 * prices["functions_per_million_executions"],
            "functions_gb_s": seconds * prices["instance_memory_gb"] * prices["functions_gb_s"],
        }
        cost["total"] = sum(cost.values())
        return {k: round(v, 2) for k, v in cost.items()}

    one_off = {
        "table_transactions": sum(i["table_transactions"] for i in initial.values()),
        "executions": sum(i["function_executions"] for i in initial.values()),
        "execution_s": sum(i["function_execution_s"] for i in initial.values()),
    }
    return {
        "assumptions": {"members": MEMBERS, "days": DAYS, "changes_per_member_per_day": CHANGES_PER_MEMBER_PER_DAY,
                        "sweeps_per_profile_per_day": SWEEPS_PER_DAY, "sweep_model": sweep_model,
                        "seconds_per_execution": round(seconds_per_execution, 3),
                        "prices": prices},
        "steady_month": {k: round(v) for k, v in steady_month.items()},
        "steady_month_usd": dollars(steady_month["table_transactions"], steady_month["executions"], steady_month["execution_s"]),
        "initial_once": {k: round(v) for k, v in one_off.items()},
        "initial_once_usd": dollars(one_off["table_transactions"], one_off["executions"], one_off["execution_s"]),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(estimate(json.loads(Path(argv[0]).read_text())), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
