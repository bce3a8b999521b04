"""The local host's pure parts: route templates, keys, host.json, NCRONTAB schedules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from local.host_config import HostConfig, parse_timespan
from local.http_trigger import HostKeys, template_to_rules
from local.timer_trigger import Schedule


@pytest.mark.parametrize(
    ("template", "rules"),
    [
        ("health", ["/health"]),
        ("items/{id}", ["/items/<id>"]),
        ("items/{id:int}", ["/items/<sint:id>"]),
        ("a/{id?}", ["/a/<id>", "/a"]),
        ("files/{*rest}", ["/files/<path:rest>", "/files"]),
        ("x/{name:alpha}/y", ["/x/<re('[A-Za-z]+'):name>/y"]),
    ],
)
def test_route_templates(template: str, rules: list[str]) -> None:
    assert template_to_rules(template) == rules


def test_keys_by_auth_level() -> None:
    keys = HostKeys(master="m", host={"default": "h"}, functions={"f": {"default": "fk"}})
    assert keys.allows("anonymous", "f", None)
    assert not keys.allows("function", "f", None)
    assert keys.allows("function", "f", "fk")
    assert not keys.allows("function", "g", "fk")  # a function key opens only its function
    assert keys.allows("function", "g", "h")
    assert not keys.allows("admin", "f", "h")
    assert keys.allows("admin", "f", "m")
    assert HostKeys().allows("admin", "f", None)  # no keys configured: auth off, like Core Tools


def test_host_json_defaults_and_values(tmp_path: Path) -> None:
    assert HostConfig.load(tmp_path / "missing.json").queues.max_dequeue_count == 5
    (tmp_path / "host.json").write_text(
        json.dumps(
            {
                "extensions": {
                    "http": {"routePrefix": ""},
                    "queues": {"batchSize": 8, "visibilityTimeout": "00:00:30", "maxPollingInterval": 50},
                },
                "functionTimeout": "00:05:00",
            }
        )
    )
    config = HostConfig.load(tmp_path / "host.json")
    assert config.route_prefix == ""
    assert config.queues.batch_size == 8
    assert config.queues.threshold == 4
    assert config.queues.visibility_timeout == timedelta(seconds=30)
    assert config.queues.max_polling_interval == timedelta(milliseconds=100)  # the host's minimum
    assert config.function_timeout == timedelta(minutes=5)


def test_host_json_refuses_out_of_range_batch(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"queues": {"batchSize": 33}}}))
    with pytest.raises(ValueError, match="batchSize"):
        HostConfig.load(tmp_path / "host.json")


def test_timespans() -> None:
    assert parse_timespan("1.02:03:04.5", None) == timedelta(days=1, hours=2, minutes=3, seconds=4.5)
    with pytest.raises(ValueError):
        parse_timespan("five minutes", None)


def test_ncrontab_seconds_field() -> None:
    schedule = Schedule("*/15 * * * * *", UTC)
    assert schedule.next_after(datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)) == datetime(2026, 1, 1, 0, 0, 15, tzinfo=UTC)


def test_ncrontab_day_of_month_and_day_of_week_are_anded() -> None:
    # Friday the 13th only (cron's usual OR would also fire on every Friday and every 13th).
    schedule = Schedule("0 0 0 13 * 5", UTC)
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    hits = []
    for _ in range(3):
        moment = schedule.next_after(moment)
        hits.append(moment.date().isoformat())
    assert hits == ["2026-02-13", "2026-03-13", "2026-11-13"]


def test_timespan_schedule_and_bad_expressions() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert Schedule("00:05:00", UTC).next_after(start) == start + timedelta(minutes=5)
    with pytest.raises(ValueError):
        Schedule("every minute", UTC)
    with pytest.raises(ValueError):
        Schedule("99 * * * * *", UTC)


def test_the_mail_worker_knows_the_last_attempt_the_host_makes() -> None:
    """The worker records a mail failure on the attempt after which the host poisons it."""
    import json

    from shared.mail.outbox import DELIVERY_ATTEMPTS

    host = json.loads((Path(__file__).resolve().parents[2] / "host.json").read_text())
    assert host["extensions"]["queues"]["maxDequeueCount"] == DELIVERY_ATTEMPTS


def test_worker_threads_as_set_else_as_deployed() -> None:
    from local.host_config import DEPLOYED_WORKER_THREADS, worker_threads

    assert worker_threads({}) == DEPLOYED_WORKER_THREADS
    assert worker_threads({"PYTHON_THREADPOOL_THREAD_COUNT": ""}) == DEPLOYED_WORKER_THREADS
    assert worker_threads({"PYTHON_THREADPOOL_THREAD_COUNT": "3"}) == 3
    with pytest.raises(ValueError):
        worker_threads({"PYTHON_THREADPOOL_THREAD_COUNT": "0"})
    with pytest.raises(ValueError):
        worker_threads({"PYTHON_THREADPOOL_THREAD_COUNT": "many"})
