"""``JobQueue`` in memory: the messages sent, with their delay, checked as the real queue
checks them (the message type, the 48 KiB limit) and kept in their wire form."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypeVar

from pydantic import BaseModel

from shared.storage import encode_message
from shared.storage.queues import decode_wire_message

M = TypeVar("M", bound=BaseModel)
_ids = itertools.count(1)


@dataclass(frozen=True)
class Sent(Generic[M]):
    id: str
    message: M
    delay: timedelta | None


class JobQueueInMemory(Generic[M]):
    def __init__(self, model: type[M], name: str = "memory") -> None:
        self.name = name
        self.model = model
        self.sent: list[Sent[M]] = []
        self._lock = threading.Lock()

    def ensure_queue(self) -> None:
        return None

    def send(self, message: M, *, delay: timedelta | None = None) -> str:
        if not isinstance(message, self.model):
            raise TypeError(f"queue {self.name} carries {self.model.__name__}, not {type(message).__name__}")
        wire = decode_wire_message(encode_message(message), self.model)  # what a trigger would receive
        with self._lock:
            sent = Sent(str(next(_ids)), wire, delay)
            self.sent.append(sent)
        return sent.id

    def has_waiting(self) -> bool:
        """A message sent visible (no delay) and not taken yet (a delayed one is invisible)."""
        with self._lock:
            return any(not sent.delay for sent in self.sent)

    def take(self) -> list[Sent[M]]:
        """Every message sent so far, in order; the queue is empty afterwards."""
        with self._lock:
            taken, self.sent = self.sent, []
        return taken
