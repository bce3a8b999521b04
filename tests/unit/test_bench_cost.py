"""The monthly cost model (``bench/cost.py``) from a results file's counts: the safety sweep as
the timer runs it now (a tick costing almost nothing per member, one full round per profile a
day), or, for results from before the tick, a step per profile every 5 minutes."""

from __future__ import annotations

from typing import Any

from bench.cost import DAYS, MEMBERS, SWEEPS_PER_DAY, estimate


def results(with_tick: bool) -> dict[str, Any]:
    steady = {"outlook_change_table_transactions": 18, "crm_change_table_transactions": 22,
              "outlook_change_function_executions": 3, "crm_change_function_executions": 3,
              "idle_sweep_table_transactions_per_profile": 10, "idle_sweep_function_executions_per_profile": 1,
              "idle_sweep_crm_calls_per_profile": 2, "idle_sweep_graph_requests_per_profile": 1}
    scenarios: list[dict[str, Any]] = [{"name": "steady-state-2000", "product": steady}]
    if with_tick:
        scenarios.append({"name": "org-fanout", "product": {"idle_tick_table_transactions_per_member": 0.003,
                                                            "idle_tick_crm_calls_per_member": 0.0}})
    return {"scenarios": scenarios}


def test_the_sweep_costs_one_full_round_a_day_and_an_almost_free_tick() -> None:
    month = estimate(results(with_tick=True))["steady_month"]
    changes = MEMBERS * 50 * DAYS
    profiles = MEMBERS * 2
    assert month["table_transactions"] == round(changes * 20 + profiles * SWEEPS_PER_DAY * DAYS * 0.003 + profiles * DAYS * 10)
    assert month["crm_calls"] == profiles * DAYS * 2  # the changes' CRM calls are not in these counts
    assert month["executions"] == changes * 3 + profiles * DAYS


def test_results_from_before_the_tick_keep_a_step_per_profile_every_five_minutes() -> None:
    month = estimate(results(with_tick=False))["steady_month"]
    assert month["executions"] == MEMBERS * 50 * DAYS * 3 + MEMBERS * 2 * SWEEPS_PER_DAY * DAYS
