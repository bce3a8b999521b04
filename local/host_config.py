"""host.json, with the defaults of the real host where the file is silent."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class QueueOptions:
    batch_size: int = 16
    new_batch_threshold: int | None = None  # None: batchSize/2 (the documented default)
    max_polling_interval: timedelta = timedelta(seconds=2)  # "2 seconds when running locally"
    visibility_timeout: timedelta = timedelta(0)
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    @property
    def threshold(self) -> int:
        return self.new_batch_threshold if self.new_batch_threshold is not None else self.batch_size // 2


# The Python worker's thread pool, as the deployment sets it (infra/modules/functionapp.bicep
# PYTHON_THREADPOOL_THREAD_COUNT, held equal by tests/unit/test_infra.py; the numbers are
# explained there). Without the setting the real worker takes min(32, CPUs + 4).
DEPLOYED_WORKER_THREADS = 128


def worker_threads(environ: dict[str, str] | None = None) -> int:
    """Threads of the worker's pool: ``PYTHON_THREADPOOL_THREAD_COUNT`` when set (an app
    setting, e.g. in local.settings.json), else what the deployment sets."""
    value = (os.environ if environ is None else environ).get("PYTHON_THREADPOOL_THREAD_COUNT")
    if value is None or value == "":
        return DEPLOYED_WORKER_THREADS
    count = int(value)
    if count < 1:
        raise ValueError("PYTHON_THREADPOOL_THREAD_COUNT must be at least 1")
    return count


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    queues: QueueOptions = field(default_factory=QueueOptions)
    function_timeout: timedelta | None = None
    functions: tuple[str, ...] | None = None  # host.json allow-list

    @classmethod
    def load(cls, path: Path) -> HostConfig:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        extensions = data.get("extensions", {})
        http = extensions.get("http", {})
        q = extensions.get("queues", {})
        defaults = QueueOptions()
        batch_size = int(q.get("batchSize", defaults.batch_size))
        if not 1 <= batch_size <= 32:
            raise ValueError("host.json extensions.queues.batchSize must be between 1 and 32")
        max_dequeue = int(q.get("maxDequeueCount", defaults.max_dequeue_count))
        if max_dequeue < 1:
            raise ValueError("host.json extensions.queues.maxDequeueCount must be at least 1")
        queues = QueueOptions(
            batch_size=batch_size,
            new_batch_threshold=int(q["newBatchThreshold"]) if "newBatchThreshold" in q else None,
            max_polling_interval=max(
                parse_timespan(q.get("maxPollingInterval"), defaults.max_polling_interval),
                timedelta(milliseconds=100),
            ),
            visibility_timeout=parse_timespan(q.get("visibilityTimeout"), defaults.visibility_timeout),
            max_dequeue_count=max_dequeue,
            message_encoding=str(q.get("messageEncoding", defaults.message_encoding)).lower(),
        )
        timeout = data.get("functionTimeout")
        allow = data.get("functions")
        return cls(
            route_prefix=str(http.get("routePrefix", "api")).strip("/"),
            queues=queues,
            function_timeout=parse_timespan(timeout, None) if timeout not in (None, "-1") else None,
            functions=tuple(allow) if allow is not None else None,
        )


_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$")


def parse_timespan(value: Any, default: Any) -> Any:
    """A .NET TimeSpan string (``[d.]hh:mm:ss[.fff]``) or an int of milliseconds."""
    if value is None:
        return default
    if isinstance(value, int | float):
        return timedelta(milliseconds=value)
    match = _TIMESPAN.match(str(value).strip())
    if not match:
        raise ValueError(f"host.json: {value!r} is not a TimeSpan (hh:mm:ss)")
    days, hours, minutes, seconds, fraction = match.groups()
    return timedelta(
        days=int(days or 0),
        hours=int(hours),
        minutes=int(minutes),
        seconds=int(seconds) + float(f"0.{fraction}" if fraction else 0),
    )
