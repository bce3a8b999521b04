"""Queue triggers with the real host's semantics (WebJobs QueueListener / QueueProcessor):

- receive ``batchSize`` messages at a time with a 10-minute visibility, renewed while the
  function runs; fetch the next batch once in-flight work drops to ``newBatchThreshold``;
- randomised exponential back-off between empty polls, up to ``maxPollingInterval``;
- on success delete; on failure make the message visible again after ``visibilityTimeout``,
  or, once ``dequeueCount`` reaches ``maxDequeueCount``, copy the raw message to
  ``<queue>-poison`` and delete it; a message that is not valid base64 goes straight to
  poison without running the function.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.functions.queue import QueueMessage
from azure.storage.queue import QueueClient, QueueServiceClient

from local.host_config import QueueOptions
from local.invocation import Invoker

log = logging.getLogger("Host.Queues")
_JITTER = random.Random()  # its own: the global random state stays the tests' and hypothesis's

RECEIVE_VISIBILITY = timedelta(minutes=10)
MIN_POLLING_INTERVAL = timedelta(milliseconds=100)


class QueueListener:
    """Listens to one queue for one function."""

    def __init__(
        self,
        invoker: Invoker,
        service: QueueServiceClient,
        queue_name: str,
        options: QueueOptions,
        *,
        receive_visibility: timedelta = RECEIVE_VISIBILITY,
        deliveries: int = 1,
    ) -> None:
        self._invoker = invoker
        # Fault injection for tests (never the real host's behaviour by design, but what
        # at-least-once delivery allows): each message handled ``deliveries`` times, the
        # copies re-sent after a random delay so that they also arrive out of order.
        self._deliveries = deliveries
        self._copies: set[str] = set()
        self._queue_name = queue_name
        self._options = options
        self._visibility = receive_visibility
        self._client: QueueClient = service.get_queue_client(queue_name)
        # A poison queue has no poison queue of its own (the host leaves such failures invisible).
        self._poison: QueueClient | None = (
            None if queue_name.endswith("-poison") else service.get_queue_client(f"{queue_name}-poison")
        )
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._in_flight = 0
        self._pool = ThreadPoolExecutor(
            max_workers=options.batch_size + options.threshold, thread_name_prefix=f"queue-{queue_name}"
        )
        self._thread = threading.Thread(target=self._poll, name=f"listener-{queue_name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        """Stop polling and let running invocations finish."""
        self._stop.set()
        with self._idle:
            self._idle.notify_all()
        self._thread.join(timeout)
        self._pool.shutdown(wait=True)

    def _poll(self) -> None:
        delay = MIN_POLLING_INTERVAL.total_seconds()
        ceiling = self._options.max_polling_interval.total_seconds()
        while not self._stop.is_set():
            with self._idle:
                while self._in_flight > self._options.threshold and not self._stop.is_set():
                    self._idle.wait()
            if self._stop.is_set():
                break
            try:
                messages = list(
                    self._client.receive_messages(
                        messages_per_page=self._options.batch_size,
                        max_messages=self._options.batch_size,
                        visibility_timeout=int(self._visibility.total_seconds()),
                    )
                )
            except ResourceNotFoundError:
                messages = []  # the queue does not exist yet: back off like an empty poll
            except AzureError as error:
                log.warning("Polling queue '%s' failed (%s); backing off", self._queue_name, error)
                messages = []
            if not messages:
                # Randomised exponential back-off, as QueuePollingIntervals does.
                self._stop.wait(delay * _JITTER.uniform(0.8, 1.2))
                delay = min(delay * 2, ceiling)
                continue
            delay = MIN_POLLING_INTERVAL.total_seconds()
            with self._idle:
                self._in_flight += len(messages)
            for message in messages:
                self._pool.submit(self._process_and_release, message)

    def _redeliver(self, message_id: str, raw: str) -> None:
        with self._idle:
            if self._deliveries <= 1 or message_id in self._copies:
                return
        for _ in range(self._deliveries - 1):
            copy = self._client.send_message(raw, visibility_timeout=_JITTER.randint(0, 3))
            with self._idle:
                self._copies.add(copy.id)
            _count_redelivery(self._queue_name)

    def _process_and_release(self, message: Any) -> None:
        try:
            self._process(message)
        except Exception:
            log.exception("Queue '%s': unexpected error handling message %s", self._queue_name, message.id)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _process(self, message: Any) -> None:
        raw: str = message.content
        body = self._decode(raw)
        if body is None:
            log.warning(
                "Message %s on queue '%s' is not valid base64; moving it to the poison queue",
                message.id,
                self._queue_name,
            )
            self._to_poison(message, raw)
            return
        if message.dequeue_count > self._options.max_dequeue_count:
            self._to_poison(message, raw)
            return
        renewal = _VisibilityRenewal(self._client, message, self._visibility)
        renewal.start()
        try:
            self._invoker.invoke(
                QueueMessage(
                    id=message.id,
                    body=body,
                    dequeue_count=message.dequeue_count,
                    expiration_time=message.expires_on,
                    insertion_time=message.inserted_on,
                    time_next_visible=message.next_visible_on,
                    pop_receipt=message.pop_receipt,
                ),
                reason=f"New queue message detected on '{self._queue_name}'.",
            )
            succeeded = True
        except Exception:
            succeeded = False
        finally:
            pop_receipt = renewal.stop()
        if succeeded:
            self._client.delete_message(message.id, pop_receipt)
            self._redeliver(message.id, raw)
        elif message.dequeue_count >= self._options.max_dequeue_count:
            self._to_poison(message, raw, pop_receipt)
        else:
            self._client.update_message(
                message.id, pop_receipt, visibility_timeout=int(self._options.visibility_timeout.total_seconds())
            )

    def _decode(self, raw: str) -> bytes | None:
        if self._options.message_encoding == "none":
            return raw.encode("utf-8")
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return None

    def _to_poison(self, message: Any, raw: str, pop_receipt: str | None = None) -> None:
        if self._poison is None:
            return  # no poison queue for a poison queue: leave the message invisible
        log.warning(
            "Message has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
            self._options.max_dequeue_count,
            self._poison.queue_name,
        )
        with contextlib.suppress(ResourceExistsError):
            self._poison.create_queue()
        self._poison.send_message(raw)  # the raw text, exactly as it was on the wire
        self._client.delete_message(message.id, pop_receipt or message.pop_receipt)


def _count_redelivery(queue_name: str) -> None:
    """Tests (make soak) count the extra deliveries: one line per copy in the file that
    ``LOCAL_QUEUE_REDELIVERY_COUNTER`` names (appended, so host restarts keep counting)."""
    path = os.environ.get("LOCAL_QUEUE_REDELIVERY_COUNTER")
    if path:
        with open(path, "a", encoding="utf-8") as counter:
            counter.write(queue_name + "\n")


class _VisibilityRenewal:
    """Keeps a running message invisible (the host renews at half the visibility)."""

    def __init__(self, client: QueueClient, message: Any, visibility: timedelta) -> None:
        self._client = client
        self._id = message.id
        self._pop_receipt: str = message.pop_receipt
        self._visibility = visibility
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._renew, daemon=True, name=f"renew-{message.id}")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> str:
        self._done.set()
        self._thread.join()
        return self._pop_receipt

    def _renew(self) -> None:
        interval = self._visibility.total_seconds() / 2
        while not self._done.wait(interval):
            try:
                receipt = self._client.update_message(
                    self._id, self._pop_receipt, visibility_timeout=int(self._visibility.total_seconds())
                )
                self._pop_receipt = receipt.pop_receipt
            except AzureError as error:
                log.warning("Could not renew visibility of message %s: %s", self._id, error)
