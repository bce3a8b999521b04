"""The local Functions host: runs the same ``function_app.py`` that Azure runs.

    python -m local.host [--script function_app.py] [--port 7071] [--keys-file keys.json]

It reads the app through the azure-functions library's own metadata and serves HTTP,
queue and timer triggers with the semantics of host.json (see the modules beside it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from azure.functions.queue import QueueMessage
from azure.storage.queue import QueueServiceClient
from werkzeug.serving import BaseWSGIServer, make_server

from local.app_settings import is_disabled, load_local_settings, resolve, storage_connection
from local.host_config import HostConfig, worker_threads
from local.http_trigger import HostKeys, HttpTriggerApp
from local.indexer import FunctionSpec, index_functions, load_app
from local.invocation import QUEUE_TIMEOUTS, Invoker
from local.queue_trigger import RECEIVE_VISIBILITY, QueueListener
from local.timer_trigger import TimerRunner

log = logging.getLogger("Host")


class LocalHost:
    """Index the app, then serve its triggers until ``stop()``."""

    def __init__(
        self,
        script: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 7071,
        keys: HostKeys | None = None,
        receive_visibility: timedelta = RECEIVE_VISIBILITY,
        read_local_settings: bool = True,
        deliveries: int = 1,
        max_polling_interval: timedelta | None = None,
    ) -> None:
        """``max_polling_interval`` (or ``LOCAL_QUEUE_MAX_POLLING_MS``): instead of host.json's.
        The tests set it low: a message sent to an idle queue waits up to host.json's 2 s for
        the next poll, and a test's every queue hop paid that wait."""
        self.script = script.resolve()
        self.config = HostConfig.load(self.script.parent / "host.json")
        if max_polling_interval is None and os.environ.get("LOCAL_QUEUE_MAX_POLLING_MS"):
            max_polling_interval = timedelta(milliseconds=int(os.environ["LOCAL_QUEUE_MAX_POLLING_MS"]))
        if max_polling_interval is not None:
            self.config = replace(self.config, queues=replace(self.config.queues, max_polling_interval=max_polling_interval))
        if read_local_settings:
            load_local_settings(self.script.parent / "local.settings.json")
        self._keys = keys or HostKeys()
        self._receive_visibility = receive_visibility
        self._deliveries = deliveries
        self.app_module, app = load_app(self.script)
        self.functions: list[FunctionSpec] = [spec for spec in index_functions(app) if self._enabled(spec.name)]
        self._queue_services: dict[str, QueueServiceClient] = {}
        # One pool for every function, as the Python worker has: queue messages the listeners
        # fetched and HTTP requests wait here for a thread when all are busy (see host.json and
        # PYTHON_THREADPOOL_THREAD_COUNT in infra/modules/functionapp.bicep).
        self.worker_threads = worker_threads()
        self._workers = ThreadPoolExecutor(max_workers=self.worker_threads, thread_name_prefix="worker")
        self._invokers = {
            spec.name: Invoker(
                spec,
                app_directory=str(self.script.parent),
                timeout=self.config.function_timeout,
                queue_service=self._queue_service,
                workers=self._workers,
            )
            for spec in self.functions
        }
        self._listeners: list[QueueListener] = []
        self._timers: dict[str, TimerRunner] = {}
        http = [i for i in self._invokers.values() if i.spec.trigger_type == "httpTrigger"]
        self.wsgi_app = HttpTriggerApp(http, self.config, self._keys, self.run_by_hand)
        self._server: BaseWSGIServer = make_server(host, port, self.wsgi_app, threaded=True)
        self._server_thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _enabled(self, name: str) -> bool:
        allowed = self.config.functions
        return (allowed is None or name in allowed) and not is_disabled(name)

    def _queue_service(self, connection: str | None) -> QueueServiceClient:
        conn = storage_connection(connection)
        if conn not in self._queue_services:
            self._queue_services[conn] = QueueServiceClient.from_connection_string(conn, **QUEUE_TIMEOUTS)
        return self._queue_services[conn]

    def start(self) -> LocalHost:
        for invoker in self._invokers.values():
            trigger = invoker.spec.trigger
            if trigger["type"] == "queueTrigger":
                listener = QueueListener(
                    invoker,
                    self._queue_service(trigger.get("connection")),
                    resolve(trigger["queueName"]),
                    self.config.queues,
                    receive_visibility=self._receive_visibility,
                    deliveries=self._deliveries,
                )
                self._listeners.append(listener)
            elif trigger["type"] == "timerTrigger":
                self._timers[invoker.spec.name] = TimerRunner(invoker)
        self._server_thread.start()
        for listener in self._listeners:
            listener.start()
        for timer in self._timers.values():
            timer.start()
        for spec in self.functions:
            log.info("Function %s: %s", spec.name, _describe(spec, self.config.route_prefix, self.url))
        queues = self.config.queues
        log.info("Queue triggers: %d listeners, up to %d messages each at once (batchSize %d + newBatchThreshold %d); "
                 "worker threads: %d", len(self._listeners), queues.batch_size + queues.threshold, queues.batch_size,
                 queues.threshold, self.worker_threads)
        log.info("Host started (%s)", self.url)
        return self

    def stop(self) -> None:
        """Stop accepting work and let running invocations finish."""
        self._server.shutdown()
        for timer in self._timers.values():
            timer.stop()
        for listener in self._listeners:
            listener.stop()
        self._workers.shutdown(wait=True)
        self._server.server_close()
        log.info("Host stopped")

    def run_by_hand(self, name: str, payload: str) -> bool:
        """``POST /admin/functions/{name}``: run a non-HTTP function once, in the background."""
        invoker = self._invokers.get(name)
        if invoker is None or invoker.spec.trigger_type == "httpTrigger":
            return False
        reason = "This function was programmatically called via the host APIs."
        timer = self._timers.get(name) or (TimerRunner(invoker) if invoker.spec.trigger_type == "timerTrigger" else None)

        def run() -> None:
            with contextlib.suppress(Exception):  # the invoker has logged the failure
                if timer is not None:
                    timer.fire(reason=reason)
                else:
                    invoker.invoke(QueueMessage(id="manual", body=payload.encode("utf-8"), dequeue_count=1), reason)

        threading.Thread(target=run, daemon=True).start()
        return True

    def __enter__(self) -> LocalHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _describe(spec: FunctionSpec, prefix: str, url: str) -> str:
    trigger = spec.trigger
    if spec.trigger_type == "httpTrigger":
        methods = ",".join(trigger.get("methods") or ["*"])
        route = trigger.get("route") or spec.name
        return f"[{methods}] {url}/{prefix + '/' if prefix else ''}{route}"
    if spec.trigger_type == "queueTrigger":
        return f"queueTrigger on '{trigger['queueName']}'"
    if spec.trigger_type == "timerTrigger":
        return f"timerTrigger '{trigger['schedule']}'"
    return spec.trigger_type


def _load_keys(path: Path | None) -> HostKeys:
    if path is None:
        return HostKeys()
    data = json.loads(path.read_text(encoding="utf-8"))
    return HostKeys(master=data.get("master"), host=data.get("host", {}), functions=data.get("functions", {}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.host", description=__doc__.splitlines()[0])
    parser.add_argument("--script", type=Path, default=Path(os.environ.get("PYTHON_SCRIPT_FILE_NAME", "function_app.py")))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--keys-file", type=Path, help="JSON {master, host: {name: key}, functions: {fn: {name: key}}}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s", stream=sys.stdout)
    logging.getLogger("azure").setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Test knobs (fault injection): how long a received message stays invisible before a
    # crashed host's work is picked up again, and how many times each message is handled.
    visibility = timedelta(seconds=float(os.environ.get("LOCAL_QUEUE_RECEIVE_VISIBILITY_SECONDS", RECEIVE_VISIBILITY.total_seconds())))
    deliveries = int(os.environ.get("LOCAL_QUEUE_DELIVERIES", "1"))
    host = LocalHost(args.script, host=args.host, port=args.port, keys=_load_keys(args.keys_file),
                     receive_visibility=visibility, deliveries=deliveries)
    counts_file = os.environ.get("BENCH_TABLE_COUNTS_FILE")
    if counts_file:  # make bench only: Table request counts on SIGUSR1 (see local/bench_counts.py)
        from local.bench_counts import install as report_table_counts

        report_table_counts(Path(counts_file))
    # The handler only appends to a list: a handler runs between two bytecodes of the main
    # thread, maybe while it holds a lock, so Event.set() there (waited on by this thread) could
    # deadlock and leave the host deaf to SIGTERM (issue 19).
    stop_signals: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: stop_signals.append(signum))
    host.start()
    while not stop_signals:
        time.sleep(0.2)
    host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
