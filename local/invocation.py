"""Calling one function the way the worker does: trigger value and output bindings passed
by parameter name, ``context`` injected, queue outputs sent only after success, and the
host's Executing / Executed log lines around each call."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import timedelta
from typing import Any

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.functions import _abc as functions_abc
from azure.storage.queue import QueueServiceClient

from local.app_settings import resolve, storage_connection
from local.indexer import FunctionSpec
from shared.storage.account import CONNECTION_TIMEOUT, READ_TIMEOUT

log = logging.getLogger("Host.Function")


class OutValue(func.Out):  # type: ignore[type-arg]
    """The worker's implementation of ``func.Out`` (an ABC in the library)."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


class _TraceContext(functions_abc.TraceContext):
    def __init__(self) -> None:
        self._parent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(functions_abc.RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> Any:
        return None


class InvocationContext(func.Context):
    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._local = threading.local
        self._trace = _TraceContext()
        self._retry = _RetryContext()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> functions_abc.TraceContext:
        return self._trace

    @property
    def retry_context(self) -> functions_abc.RetryContext:
        return self._retry


class FunctionTimeout(RuntimeError):
    pass


class Invoker:
    """Runs invocations of one function: a plain function on the worker's thread pool (shared by
    every function of the app, as the Python worker's is: ``PYTHON_THREADPOOL_THREAD_COUNT``),
    an ``async def`` one on an event loop of the calling thread (the worker runs coroutines on
    its loop, outside the pool)."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        app_directory: str,
        timeout: timedelta | None = None,
        queue_service: Callable[[str | None], QueueServiceClient] | None = None,
        workers: ThreadPoolExecutor | None = None,
    ) -> None:
        self.spec = spec
        self._app_directory = app_directory
        self._timeout = timeout
        self._queue_service = queue_service or _queue_service_for
        self._workers = workers or ThreadPoolExecutor(max_workers=32, thread_name_prefix=f"fn-{spec.name}")

    def invoke(self, trigger_value: Any, reason: str) -> Any:
        """Run the function once; return its ``$return`` value or raise what it raised."""
        invocation_id = str(uuid.uuid4())
        name = f"Functions.{self.spec.name}"
        log.info("Executing '%s' (Reason='%s', Id=%s)", name, reason, invocation_id)
        started = time.monotonic()
        outputs = {b["name"]: OutValue() for b in self.spec.bindings if b.get("direction") == "OUT" and b["name"] != "$return"}
        kwargs: dict[str, Any] = {self.spec.trigger["name"]: trigger_value}
        kwargs.update({n: o for n, o in outputs.items() if n in self.spec.parameters})
        if "context" in self.spec.parameters:
            kwargs["context"] = InvocationContext(invocation_id, self.spec.name, self._app_directory)
        try:
            result = self._call(kwargs)
            self._send_queue_outputs(outputs)
        except BaseException as error:
            duration = (time.monotonic() - started) * 1000
            log.error("Executed '%s' (Failed, Id=%s, Duration=%dms): %r", name, invocation_id, duration, error)
            raise
        duration = (time.monotonic() - started) * 1000
        log.info("Executed '%s' (Succeeded, Id=%s, Duration=%dms)", name, invocation_id, duration)
        return result

    def _call(self, kwargs: dict[str, Any]) -> Any:
        limit = self._timeout.total_seconds() if self._timeout is not None else None
        if self.spec.is_async:
            try:
                return asyncio.run(asyncio.wait_for(self.spec.function(**kwargs), limit))
            except TimeoutError:
                raise FunctionTimeout(f"Timeout value of {self._timeout} was exceeded by function") from None
        # Waiting here for a free worker thread is what the real host's fetched messages and
        # HTTP requests do when every thread of the worker is busy.
        future = self._workers.submit(self.spec.function, **kwargs)
        try:
            return future.result(timeout=limit)
        except FutureTimeout:
            # Like the real host, the invocation is reported failed; Python cannot kill the thread.
            raise FunctionTimeout(f"Timeout value of {self._timeout} was exceeded by function") from None

    def _send_queue_outputs(self, outputs: dict[str, OutValue]) -> None:
        for binding in self.spec.outputs("queue"):
            value = outputs[binding["name"]].get()
            if value is None:
                continue
            values = value if isinstance(value, list) else [value]
            service = self._queue_service(binding.get("connection"))
            client = service.get_queue_client(resolve(binding["queueName"]))
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()
            for item in values:
                raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
                client.send_message(base64.b64encode(raw).decode("ascii"))


# A poll or an output binding's send that gets no answer gives up within seconds, as the real
# host's storage client does, instead of the SDK's default 300-s read timeout: a listener stuck
# in one unanswered receive took no message for minutes (suspected in make soak, session 16: a
# journey's host ran no step for the last 2 minutes of its settle).
QUEUE_TIMEOUTS = {"connection_timeout": CONNECTION_TIMEOUT, "read_timeout": READ_TIMEOUT}  # the product's own


def _queue_service_for(connection: str | None) -> QueueServiceClient:
    return QueueServiceClient.from_connection_string(storage_connection(connection), **QUEUE_TIMEOUTS)
