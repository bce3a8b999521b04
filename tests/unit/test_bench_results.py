"""The benchmark results file keeps its stable format (issue 9), and target checks mean
"value at most limit"; no benchmark runs here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.results import new_results, table, target, validate, write


def scenario(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "initial-calendar", "settings": {"N": 1000, "scale": 0.2},
        "product": {"wall_s": 30.0, "graph_http_requests": 60, "progress": [[0, 0], [30, 1000]]},
        "floor": {"wall_s": 20.0, "graph_http_requests": 51},
        "targets": [target("wall_s vs 1.5 x floor", 30.0, 1.5 * 20.0), target("peak_concurrent_per_mailbox", 5, 4)],
    }
    return {**base, **overrides}


def test_a_target_is_met_at_or_under_its_limit_only() -> None:
    assert target("x", 3, 3)["met"] is True
    assert target("x", 2.9, 3)["met"] is True
    assert target("x", 3.01, 3)["met"] is False
    assert target("x", None, 3)["met"] is False  # not measured is not met
    assert set(target("x", 1, 2)) == {"figure", "value", "limit", "met"}


def test_written_file_has_the_stable_format(tmp_path: Path) -> None:
    results = new_results()
    results["scenarios"] = [scenario()]
    path = write(results, tmp_path)
    loaded = json.loads(path.read_text())
    assert list(loaded)[:3] == ["machine", "started", "scenarios"]
    [only] = loaded["scenarios"]
    assert {"name", "product", "floor", "targets"} <= set(only)
    assert [t["met"] for t in only["targets"]] == [True, False]
    assert validate(loaded) == []
    assert path.parent == tmp_path and path.suffix == ".json"


def test_a_malformed_result_is_refused(tmp_path: Path) -> None:
    results = new_results()
    lying = scenario(targets=[{"figure": "p95_s", "value": 4.0, "limit": 3.0, "met": True}])
    results["scenarios"] = [lying, {"name": "no sides", "targets": []}]
    problems = validate(results)
    assert any("met disagrees" in p for p in problems)
    assert any("missing 'product'" in p for p in problems)
    with pytest.raises(ValueError):
        write(results, tmp_path)


def test_the_table_shows_ratios_and_unmet_targets() -> None:
    results = new_results()
    results["scenarios"] = [scenario()]
    text = table(results)
    assert "1.50x" in text  # wall time product / floor
    assert "NOT MET" in text and "targets met: 1 of 2" in text
    assert "progress" not in text  # series stay in the file


def test_the_committed_results_files_have_the_stable_format() -> None:
    for path in sorted((Path(__file__).resolve().parents[2] / "bench" / "results").glob("*.json")):
        assert validate(json.loads(path.read_text())) == [], path.name
