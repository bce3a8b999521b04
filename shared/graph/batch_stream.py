"""One stream of ``$batch``es for the ``send_all`` calls sent in turns (issue 21), and for
any other ``send_all`` call on its own: the one send path of independent Graph requests.

An initial sync sends its pages in turns (``send_order``). Each page drained a pool of its own,
so the items Graph throttled near a page's end went out in small batches of their own: under a
429 storm the product sent 108 ``$batch``es for 1,000 events where the floor, one pool for
everything, sent 67 (bench initial-calendar-throttled, session 20). Here the pages of one order
share one queue per mailbox: a page's items join it in its turn, items to send again go to its
front, and any page's sender takes the next batch, whoever's items they are. A page's call
returns once its own items are answered.

Order (R3.5) is kept as the turns kept it: a batch holds the fresh items of one page only
(items sent again may ride with any), and batches reach the gate in the order they were taken
(a ``SendOrder`` of tickets), each holding all of our slots (``whole``): what Outlook receives
is the selection's order, up to Graph's own parallelism inside one batch.

The queue only: the sending is ``GraphMailbox``'s (``shared.graph.mailbox``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.graph.batch import GraphRequest, GraphResponse
from shared.graph.send_order import SendOrder, Turn


@dataclass(eq=False)
class StreamCall:
    """One ``send_all`` call's requests and answers."""

    requests: Sequence[GraphRequest]
    results: dict[int, GraphResponse] = field(default_factory=dict)
    left: int = 0  # items not answered yet
    queued: int = 0  # items in the queue (neither in flight nor answered)


@dataclass(eq=False)
class StreamItem:
    call: StreamCall
    index: int
    attempts: int = 0
    first_sent: float = 0.0  # monotonic: an item's wait budget runs from its first send

    @property
    def request(self) -> GraphRequest:
        return self.call.requests[self.index]


class BatchStream:
    """The queue the calls of one order share for one mailbox (or one call's own, outside an
    order). Once an item gives up (its wait budget spent), nothing more is sent: every item
    still queued answers ``gave_up``.

    ``whole``: each batch holds every slot of our share, so batches go one after the other in
    the order they were taken (an order's stream); False outside an order, where two small
    batches may run side by side."""

    def __init__(self, *, whole: bool = True) -> None:
        self.whole = whole
        self._cond = threading.Condition()
        self._waiting: deque[StreamItem] = deque()
        self._stopped = False
        self._failure: BaseException | None = None
        self._tickets = SendOrder()
        self._taken = 0

    def join(self, requests_: Sequence[GraphRequest], indexes: Sequence[int]) -> StreamCall:
        call = StreamCall(requests_, left=len(indexes))
        with self._cond:
            if self._stopped:
                for index in indexes:
                    self._answer(StreamItem(call, index), GraphResponse(status=0, gave_up=True))
            else:
                self._queue([StreamItem(call, index) for index in indexes])
            self._cond.notify_all()
        return call

    def take(self, call: StreamCall, most: int) -> tuple[Turn, list[StreamItem]] | None:
        """The next batch, up to ``most`` items from the front, and its ticket (``done`` once
        the batch goes, and in any case after); None when ``call`` is answered. Raises what
        failed another sender.

        A sender takes a batch while its call has items in the queue, and only once the batch
        before it goes: one batch waits at the gate while one is in flight, no sender takes its
        items early (what Graph throttles meanwhile is back in the queue to ride with fresh
        items), and a page's call is not held up by carrying the next page's batches. Taken in
        ticket order and let go in it, the batches reach the gate in the order they were taken.
        """
        while True:
            with self._cond:
                while True:
                    if self._failure is not None:
                        raise self._failure
                    if call.left == 0:
                        return None
                    if call.queued:
                        break
                    self._cond.wait()  # its items are in flight: their answers, or their retries
                ticket = self._tickets.turn(self._taken)
                self._taken += 1
            try:
                ticket.wait()
                with self._cond:
                    if self._failure is not None:
                        raise self._failure
                    if not self._waiting:  # taken by the senders before this one
                        ticket.done()
                        continue
                    taken: list[StreamItem] = []
                    page: StreamCall | None = None  # whose fresh items this batch carries
                    while self._waiting and len(taken) < most:
                        item = self._waiting[0]
                        if not item.attempts:
                            if page is not None and item.call is not page:
                                break
                            page = item.call
                        taken.append(self._waiting.popleft())
                    now = time.monotonic()
                    for item in taken:
                        item.call.queued -= 1
                        item.attempts += 1
                        item.first_sent = item.first_sent or now
                    return ticket, taken
            except BaseException:
                ticket.done()
                raise

    def answer(self, answers: Sequence[tuple[StreamItem, GraphResponse]]) -> None:
        with self._cond:
            for item, response in answers:
                self._answer(item, response)
            self._cond.notify_all()

    def put_back(self, items: Sequence[StreamItem], answers: Sequence[GraphResponse]) -> None:
        """Items to send again, first in the queue; answered with their last answer (given
        up) when the stream stopped meanwhile."""
        with self._cond:
            if self._stopped:
                for item, response in zip(items, answers, strict=True):
                    self._answer(item, response.model_copy(update={"gave_up": True}))
            else:
                self._queue(items, first=True)
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        with self._cond:
            return self._stopped

    def give_up(self, items: Sequence[StreamItem], answers: Sequence[GraphResponse]) -> None:
        """These items' budget is spent: they and every queued item answer ``gave_up``."""
        with self._cond:
            self._stopped = True
            for item, response in zip(items, answers, strict=True):
                self._answer(item, response.model_copy(update={"gave_up": True}))
            while self._waiting:
                item = self._waiting.popleft()
                item.call.queued -= 1
                self._answer(item, GraphResponse(status=0, gave_up=True))
            self._cond.notify_all()

    def fail(self, items: Sequence[StreamItem], error: BaseException) -> None:
        """A sender failed (not an answer: an exception): every call waiting raises it."""
        with self._cond:
            self._failure = self._failure or error
            self._queue(items, first=True)
            self._cond.notify_all()

    def _queue(self, items: Sequence[StreamItem], *, first: bool = False) -> None:
        for item in items:
            item.call.queued += 1
        if first:
            self._waiting.extendleft(reversed(items))
        else:
            self._waiting.extend(items)

    @staticmethod
    def _answer(item: StreamItem, response: GraphResponse) -> None:
        item.call.results[item.index] = response
        item.call.left -= 1
