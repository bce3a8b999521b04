"""The poison queues, for operators (issue 10): what failed for good, and putting it back.

The Functions host moves a message to ``<queue>-poison`` once it has failed
``maxDequeueCount`` times, copying its raw (base64) text. Here an operator lists those
messages, with a summary of each body that leaves out anything secret (e-mail bodies
carry single-use invitation links), and replays them to the original queue once the
cause is fixed.

Replaying sends the raw text back first and deletes the poison copy second: a crash in
between leaves the message in both queues, never in neither. Every queue worker is
idempotent (mail by message id, sync steps by their lease and link rows), so a twin is
harmless while a loss would not be.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueServiceClient
from pydantic import BaseModel

POISON_SUFFIX = "-poison"
# Storage queue names: 3-63 characters, lower-case letters, digits and single hyphens.
QUEUE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
MESSAGE_ID = re.compile(r"^[A-Za-z0-9\-]{1,64}$")
PEEK_LIMIT = 32  # the most a peek returns; the queue's approximate count tells if there are more
REPLAY_LIMIT = 500  # per call, so one request stays short; call again for the rest
CLAIM_SECONDS = 30  # how long a message being replayed stays invisible to other replays
# Fields safe to show an operator. Everything else (html, text, tokens ...) is named only.
SHOWN_FIELDS = ("version", "message_id", "tenant_id", "to_email", "subject", "member", "kind", "step", "reason")
MAX_SHOWN_CHARS = 200


class PoisonMessage(BaseModel):
    message_id: str
    inserted_on: datetime | None
    dequeue_count: int  # deliveries of the poison copy itself (0 until someone receives it)
    size: int  # characters on the wire
    summary: dict[str, Any]


class PoisonQueue(BaseModel):
    queue: str  # the original queue, where a replay sends messages
    poison_queue: str
    approximate_count: int
    messages: list[PoisonMessage]


class ReplayReport(BaseModel):
    queue: str
    replayed: list[str]  # ids the messages had in the poison queue
    remaining: int  # approximate, after this replay


class PoisonRefused(ValueError):
    """A request an operator must correct (malformed queue name or id); nothing moved."""


class PoisonNotFound(PoisonRefused):
    """No such poison queue, or no such message in it; nothing moved."""


def summarise(raw: str) -> dict[str, Any]:
    """What an operator may see of a message body: the shown fields, the others by name."""
    try:
        body = json.loads(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError, RecursionError):
        return {"undecodable": True}  # not base64 JSON: the host poisons such a message at once
    if not isinstance(body, dict):
        return {"shape": type(body).__name__}
    shown = {
        key: value if not isinstance(value, str) else value[:MAX_SHOWN_CHARS]
        for key, value in body.items()
        if key in SHOWN_FIELDS and isinstance(value, str | int | float | bool)
    }
    hidden = sorted(key for key in body if key not in shown)
    return {**shown, "other_fields": hidden} if hidden else shown


def original_queue(name: str) -> str:
    """``mail-outbox`` for ``mail-outbox`` or ``mail-outbox-poison``; PoisonRefused otherwise."""
    base = name[: -len(POISON_SUFFIX)] if name.endswith(POISON_SUFFIX) else name
    if not QUEUE_NAME.match(base) or not QUEUE_NAME.match(base + POISON_SUFFIX):
        raise PoisonRefused(f"{name[:70]!r} is not a queue name")
    return base


class PoisonQueues:
    """Lists and replays the poison queues of one storage account."""

    def __init__(self, service: QueueServiceClient, known_queues: Iterable[str] = ()) -> None:
        self._service = service
        self._known = tuple(known_queues)

    def _poison_names(self) -> list[str]:
        """Every ``*-poison`` queue that exists, and the known queues' ones even when absent
        (so the view says "0" rather than leaving them out)."""
        existing = {q.name for q in self._service.list_queues() if q.name.endswith(POISON_SUFFIX)}
        return sorted(existing | {f"{name}{POISON_SUFFIX}" for name in self._known})

    def _client(self, name: str) -> QueueClient:
        return self._service.get_queue_client(name)

    def list(self) -> list[PoisonQueue]:
        return [self._describe(name) for name in self._poison_names()]

    def _describe(self, poison_name: str) -> PoisonQueue:
        client = self._client(poison_name)
        try:
            count = client.get_queue_properties().approximate_message_count or 0
            peeked = client.peek_messages(max_messages=PEEK_LIMIT) if count else []
        except ResourceNotFoundError:
            count, peeked = 0, []
        messages = [
            PoisonMessage(
                message_id=m.id, inserted_on=m.inserted_on, dequeue_count=m.dequeue_count or 0,
                size=len(m.content or ""), summary=summarise(m.content or ""),
            )
            for m in peeked
        ]
        return PoisonQueue(queue=original_queue(poison_name), poison_queue=poison_name, approximate_count=count,
                           messages=messages)

    def replay(self, queue: str, message_id: str | None = None) -> ReplayReport:
        """Move the poison messages of ``queue`` (or only ``message_id``) back to ``queue``."""
        base = original_queue(queue)
        poison_name = base + POISON_SUFFIX
        if poison_name not in self._poison_names():
            raise PoisonNotFound(f"there is no poison queue {poison_name!r}")
        if message_id is not None and not MESSAGE_ID.match(message_id):
            raise PoisonRefused("a message id is letters, digits and hyphens")
        poison, target = self._client(poison_name), self._client(base)
        with contextlib.suppress(ResourceExistsError):
            target.create_queue()
        replayed: list[str] = []
        passed_over: list[tuple[str, str]] = []
        try:
            while len(replayed) < REPLAY_LIMIT:
                batch = list(poison.receive_messages(messages_per_page=32, max_messages=32,
                                                     visibility_timeout=CLAIM_SECONDS))
                if not batch:
                    break
                for message in batch:
                    if message_id is not None and message.id != message_id:
                        passed_over.append((message.id, message.pop_receipt))
                        continue
                    target.send_message(message.content)  # the raw text, as the host copied it
                    poison.delete_message(message.id, message.pop_receipt)
                    replayed.append(message.id)
                if message_id is not None and replayed:
                    break
        except ResourceNotFoundError:
            pass  # the poison queue went away meanwhile: nothing left to replay
        finally:
            for other_id, receipt in passed_over:  # the others become visible again at once
                with contextlib.suppress(AzureError):
                    poison.update_message(other_id, receipt, visibility_timeout=0)
        if message_id is not None and not replayed:
            raise PoisonNotFound(f"no message {message_id} in {poison_name}")
        return ReplayReport(queue=base, replayed=replayed, remaining=self._describe(poison_name).approximate_count)
