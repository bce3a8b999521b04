"""The results file (**stable**, read by other tools) and the printed table.

``bench/results/<timestamp>.json``::

    {"machine": {...}, "started": "<ISO 8601>",
     "scenarios": [{"name": ..., "product": {figures}, "floor": {figures},
                    "targets": [{"figure": ..., "value": ..., "limit": ..., "met": true|false}]}]}

A figure is a number (or null when it could not be measured); scenarios may add ``settings``
(scale, N, latency) and ``notes``, and figures may carry series (lists, e.g. ``progress``)
that the table leaves out. Every target reads "value at most limit".
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TOP_LEVEL = ("machine", "started", "scenarios")
SCENARIO_KEYS = ("name", "product", "floor", "targets")
TARGET_KEYS = ("figure", "value", "limit", "met")


def target(figure: str, value: float | None, limit: float | None) -> dict[str, Any]:
    """One target: met when the value was measured and is at most the limit."""
    rounded = round(limit, 3) if isinstance(limit, float) else limit
    met = value is not None and rounded is not None and value <= rounded
    return {"figure": figure, "value": value, "limit": rounded, "met": bool(met)}


def machine() -> dict[str, Any]:
    memory_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name")) or cpu
    return {"hostname": platform.node(), "cpus": os.cpu_count(), "cpu_model": cpu,
            "memory_gb": round(memory_kb / 1024 / 1024, 1), "os": platform.platform(), "python": platform.python_version()}


def new_results() -> dict[str, Any]:
    return {"machine": machine(), "started": datetime.now(UTC).isoformat(timespec="seconds"), "scenarios": []}


def validate(results: dict[str, Any]) -> list[str]:
    """Problems with the stable format (empty when it is right)."""
    problems = [f"missing top-level key {k!r}" for k in TOP_LEVEL if k not in results]
    for index, scenario in enumerate(results.get("scenarios") or []):
        where = f"scenarios[{index}]"
        problems += [f"{where}: missing {k!r}" for k in SCENARIO_KEYS if k not in scenario]
        for side in ("product", "floor"):
            if not isinstance(scenario.get(side), dict):
                problems.append(f"{where}.{side} is not an object")
        for t_index, item in enumerate(scenario.get("targets") or []):
            if set(item) != set(TARGET_KEYS):
                problems.append(f"{where}.targets[{t_index}]: keys {sorted(item)}")
            elif not isinstance(item["met"], bool):
                problems.append(f"{where}.targets[{t_index}].met is not a boolean")
            elif item["met"] != (item["value"] is not None and item["limit"] is not None and item["value"] <= item["limit"]):
                problems.append(f"{where}.targets[{t_index}]: met disagrees with value and limit")
    return problems


def write(results: dict[str, Any], directory: Path = RESULTS_DIR) -> Path:
    problems = validate(results)
    if problems:
        raise ValueError("results do not have the stable format: " + "; ".join(problems))
    directory.mkdir(parents=True, exist_ok=True)
    stamp = results["started"].replace(":", "").replace("-", "").replace("+0000", "Z").replace("+00:00", "Z")
    path = directory / f"{stamp}.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    return path


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ratio(product: Any, floor: Any) -> str:
    if isinstance(product, (int, float)) and isinstance(floor, (int, float)) and not isinstance(product, bool) and floor:
        return f"{product / floor:.2f}x"
    return ""


def table(results: dict[str, Any]) -> str:
    lines = [f"Benchmarks started {results['started']} on {results['machine'].get('cpus')} CPUs "
             f"({results['machine'].get('cpu_model')}), {results['machine'].get('memory_gb')} GB"]
    for scenario in results["scenarios"]:
        settings = scenario.get("settings") or {}
        lines += ["", f"== {scenario['name']}  " + "  ".join(f"{k}={v}" for k, v in settings.items())]
        product, floor = scenario["product"], scenario["floor"]
        names = [k for k in product if not isinstance(product[k], (list, dict))]
        names += [k for k in floor if k not in names and not isinstance(floor[k], (list, dict))]
        width = max([len(n) for n in names] + [10])
        lines.append(f"  {'figure':<{width}}  {'product':>12}  {'floor':>12}  {'ratio':>8}")
        for name in names:
            p, f = product.get(name), floor.get(name)
            lines.append(f"  {name:<{width}}  {_cell(p):>12}  {_cell(f):>12}  {ratio(p, f):>8}")
        for item in scenario["targets"]:
            mark = "met" if item["met"] else "NOT MET"
            lines.append(f"  target {item['figure']}: {_cell(item['value'])} <= {_cell(item['limit'])}  {mark}")
        for note in scenario.get("notes") or []:
            lines.append(f"  note: {note}")
    met = sum(t["met"] for s in results["scenarios"] for t in s["targets"])
    total = sum(len(s["targets"]) for s in results["scenarios"])
    lines += ["", f"targets met: {met} of {total}"]
    return "\n".join(lines)


def markdown(results: dict[str, Any]) -> str:
    """The figures as Markdown tables (for docs/benchmarks.md)."""
    out = []
    for scenario in results["scenarios"]:
        settings = scenario.get("settings") or {}
        out += ["", f"**{scenario['name']}** ({', '.join(f'{k} {v}' for k, v in settings.items())})", "",
                "| figure | product | floor | ratio |", "|---|---:|---:|---:|"]
        product, floor = scenario["product"], scenario["floor"]
        names = [k for k in product if not isinstance(product[k], (list, dict))]
        names += [k for k in floor if k not in names and not isinstance(floor[k], (list, dict))]
        for name in names:
            p, f = product.get(name), floor.get(name)
            out.append(f"| {name} | {_cell(p)} | {_cell(f)} | {ratio(p, f)} |")
        if scenario["targets"]:
            out += ["", "| target | value | limit | met |", "|---|---:|---:|---|"]
            out += [f"| {t['figure']} | {_cell(t['value'])} | {_cell(t['limit'])} | {'yes' if t['met'] else '**no**'} |"
                    for t in scenario["targets"]]
    return "\n".join(out).strip()
