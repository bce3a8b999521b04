"""Work queues: pydantic messages as base64 JSON, the encoding the Functions host expects."""

from __future__ import annotations

import base64
import binascii
import contextlib
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Generic, TypeVar

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueServiceClient
from pydantic import BaseModel, ValidationError

from shared.storage.errors import MessageTooLarge, StorageError

M = TypeVar("M", bound=BaseModel)

# 64 KiB on the wire; base64 makes 4 bytes of 3, so 48 KiB of JSON is the real limit.
MAX_MESSAGE_JSON_BYTES = 48 * 1024
# How long a process trusts its last look at whether a queue has messages waiting.
WAITING_MAX_AGE = timedelta(seconds=3)


class InvalidMessage(StorageError, ValueError):
    """A queue message that is not the JSON shape its queue carries."""


def encode_message(message: BaseModel) -> str:
    raw = message.model_dump_json().encode("utf-8")
    if len(raw) > MAX_MESSAGE_JSON_BYTES:
        raise MessageTooLarge(
            f"{type(message).__name__} is {len(raw)} bytes of JSON; a queue message holds at most "
            f"{MAX_MESSAGE_JSON_BYTES} (store the payload in a table and queue a reference)"
        )
    return base64.b64encode(raw).decode("ascii")


def decode_message(body: bytes | str, model: type[M]) -> M:
    """Validate a message body as the host hands it over (already base64-decoded)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise InvalidMessage(f"not a valid {model.__name__}: {error.errors()[0]['msg']}") from error


def decode_wire_message(text: str, model: type[M]) -> M:
    """Validate a message as stored on the queue (base64 text)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as error:
        raise InvalidMessage("message is not base64") from error
    return decode_message(raw, model)


class JobQueue(Generic[M]):
    """Sends one kind of message to one queue (created on first use)."""

    def __init__(self, service: QueueServiceClient, name: str, model: type[M], *,
                 waiting_max_age: timedelta = WAITING_MAX_AGE, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.model = model
        self._client: QueueClient = service.get_queue_client(name)
        self._waiting_max_age = waiting_max_age.total_seconds()
        self._monotonic = monotonic
        self._waiting_lock = threading.Lock()
        self._waiting: tuple[float, bool] | None = None  # (when looked, what was seen)

    def ensure_queue(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            self._client.create_queue()

    def send(self, message: M, *, delay: timedelta | None = None) -> str:
        """Queue ``message``; it becomes visible after ``delay``. Returns the message id."""
        if not isinstance(message, self.model):
            raise TypeError(f"queue {self.name} carries {self.model.__name__}, not {type(message).__name__}")
        content = encode_message(message)
        visibility = int(delay.total_seconds()) if delay else None
        try:
            sent = self._client.send_message(content, visibility_timeout=visibility)
        except ResourceNotFoundError:
            self.ensure_queue()
            sent = self._client.send_message(content, visibility_timeout=visibility)
        return str(sent.id)

    def has_waiting(self) -> bool:
        """Whether a message waits that no worker has taken yet, as seen at most
        ``waiting_max_age`` ago (one peek per process per period, whoever asks).

        A peek sees visible messages only. The queue's approximate message count would not do:
        it also counts the messages being processed (invisible while their step runs), so a
        queue whose 64 steps all run and none waits would read 64."""
        with self._waiting_lock:
            now = self._monotonic()
            if self._waiting is not None and now - self._waiting[0] < self._waiting_max_age:
                return self._waiting[1]
            try:
                seen = bool(self._client.peek_messages(max_messages=1))
            except ResourceNotFoundError:
                seen = False
            self._waiting = (now, seen)
            return seen
