"""Several threads' ``send_all`` calls to one mailbox, dispatched in a chosen order (issue 21).

An initial sync keeps Graph busy across its pages by preparing page k+1 (its CRM read, its plan,
its request bodies) while page k is sent. Both then want the mailbox: were they simply let loose,
their batches would interleave and the items would reach Outlook out of the order R3.5 asks for
(upcoming events soonest first). So each page sends in its ``Turn``: its first batch joins the
gate's queue only once the previous page's last batch has joined it; the gate serves its queue
in arrival order, so dispatch order is page order, and a page's first batch already waits at the
gate while the previous page's last one is in flight (no gap between pages).

A page's independent requests (its creates) go further: they join one queue the order's pages
share per mailbox in their turn, and its batches keep that order (``batch_stream``), so what Graph
throttles at a page's end rides with the next page's items.

The turn travels in a context variable, set by the thread that prepares the page
(``sending_in``): the layers between the initial sync and the mailbox (executor, Outlook side,
container) need not know of it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")


class SendCancelled(Exception):
    """The order was cancelled (an earlier turn failed): this turn sends nothing."""


class SendOrder:
    """Turns 0, 1, 2, ... taken in order; a turn ends when its sender has queued its last
    batch at the gate (``Turn.done``), or when it ends without sending (idempotent)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = 0
        self._done: set[int] = set()
        self._cancelled = False
        self._shared: dict[Any, Any] = {}

    def turn(self, number: int) -> Turn:
        return Turn(self, number)

    def shared(self, key: Any, make: Callable[[], T]) -> T:
        """One object per ``key`` for every turn of this order (a mailbox's ``BatchStream``)."""
        with self._cond:
            if key not in self._shared:
                self._shared[key] = make()
            return self._shared[key]  # type: ignore[no-any-return]

    def cancel(self) -> None:
        """Every turn not started yet raises ``SendCancelled``: what follows a failed page is not sent."""
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    def _wait(self, number: int) -> None:
        with self._cond:
            while self._next < number and not self._cancelled:
                self._cond.wait()
            if self._cancelled:
                raise SendCancelled(f"turn {number} cancelled: an earlier one failed")

    def _finish(self, number: int) -> None:
        with self._cond:
            if number >= self._next:
                self._done.add(number)
            while self._next in self._done:
                self._done.discard(self._next)
                self._next += 1
            self._cond.notify_all()


class Turn:
    def __init__(self, order: SendOrder, number: int) -> None:
        self._order = order
        self.number = number

    def wait(self) -> None:
        """Until every earlier turn has queued its last batch (raises ``SendCancelled``)."""
        self._order._wait(self.number)

    def done(self) -> None:
        """Idempotent: a turn's sender may end it early (its items queued) and again at its end."""
        self._order._finish(self.number)

    def shared(self, key: Any, make: Callable[[], T]) -> T:
        return self._order.shared(key, make)


_CURRENT: ContextVar[Turn | None] = ContextVar("graph_send_turn", default=None)


@contextmanager
def sending_in(turn: Turn) -> Iterator[None]:
    """The ``send_all`` calls of this thread (and of the context it runs) wait for ``turn``;
    the turn ends with the block at the latest."""
    token = _CURRENT.set(turn)
    try:
        yield
    finally:
        _CURRENT.reset(token)
        turn.done()


def current_turn() -> Turn | None:
    return _CURRENT.get()
