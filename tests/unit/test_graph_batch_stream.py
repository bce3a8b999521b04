"""The queue an initial sync's pages share per mailbox (``shared.graph.batch_stream``): what a
batch may carry, in which order batches go, and how it ends (given up, failed)."""

from __future__ import annotations

import threading

import pytest

from shared.graph.batch import GraphRequest, GraphResponse
from shared.graph.batch_stream import BatchStream, StreamCall, StreamItem


def page(name: str, size: int) -> list[GraphRequest]:
    return [GraphRequest(method="POST", url=f"/{name}/{i}") for i in range(size)]


def urls(items: list[StreamItem]) -> list[str]:
    return [item.request.url for item in items]


def take(stream: BatchStream, call: StreamCall, most: int = 20) -> list[StreamItem]:
    batch = stream.take(call, most)
    assert batch is not None
    ticket, items = batch
    ticket.done()  # as the sender does once its batch goes
    return items


OK = GraphResponse(status=201)
THROTTLED = GraphResponse(status=429, headers={"Retry-After": "1"})


def test_a_batch_carries_the_fresh_items_of_one_page_and_what_was_throttled_before() -> None:
    stream = BatchStream()
    first = stream.join(page("a", 25), range(25))
    second = stream.join(page("b", 30), range(30))
    batch = take(stream, first)
    assert urls(batch) == [f"/a/{i}" for i in range(20)]
    tail = take(stream, first)
    assert urls(tail) == [f"/a/{i}" for i in range(20, 25)]  # not topped up with b's: R3.5's order
    stream.answer([(item, OK) for item in batch[:17]])
    stream.put_back(batch[17:], [THROTTLED] * 3)
    # What Graph throttled goes first, and rides with the next page's fresh items.
    assert urls(take(stream, second)) == ["/a/17", "/a/18", "/a/19", *(f"/b/{i}" for i in range(17))]
    assert [item.attempts for item in batch[17:]] == [2, 2, 2]


def test_a_call_is_done_once_its_own_items_are_answered_whoever_sent_them() -> None:
    stream = BatchStream()
    first = stream.join(page("a", 3), range(3))
    second = stream.join(page("b", 2), range(2))
    batch = take(stream, second)  # b's sender takes a's items: they are first
    assert urls(batch) == ["/a/0", "/a/1", "/a/2"]
    stream.answer([(item, OK) for item in batch])
    assert first.left == 0 and first.results == dict.fromkeys(range(3), OK)
    assert stream.take(first, 20) is None
    assert urls(take(stream, second)) == ["/b/0", "/b/1"]


def test_a_batch_is_taken_only_once_the_one_before_it_goes() -> None:
    """Tickets: the second sender waits until the first one's batch goes (``done``), so what
    the first batch left is still in the queue for it, and batches reach the gate in order."""
    stream = BatchStream()
    call = stream.join(page("a", 60), range(60))
    first = stream.take(call, 20)
    assert first is not None
    second: list[list[StreamItem]] = []
    waiter = threading.Thread(target=lambda: second.append(take(stream, call)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and not second  # waits for the first batch to go
    first[0].done()
    waiter.join(5)
    assert urls(second[0]) == [f"/a/{i}" for i in range(20, 40)]


def test_an_item_past_its_budget_ends_the_stream_and_everything_queued_answers_given_up() -> None:
    stream = BatchStream()
    first = stream.join(page("a", 20), range(20))
    second = stream.join(page("b", 5), range(5))
    batch = take(stream, first)
    stream.answer([(item, OK) for item in batch[:19]])
    stream.give_up(batch[19:], [THROTTLED])
    assert first.left == 0 and first.results[19].gave_up and first.results[19].status == 429
    assert second.left == 0 and all(r.gave_up for r in second.results.values())
    late = stream.join(page("c", 2), range(2))  # a page joining after: nothing more is sent
    assert late.left == 0 and all(r.gave_up for r in late.results.values())
    assert stream.take(first, 20) is None


def test_items_sent_again_after_the_stream_stopped_are_given_up_not_queued() -> None:
    stream = BatchStream()
    call = stream.join(page("a", 4), range(4))
    batch = take(stream, call)
    stream.give_up(batch[:1], [THROTTLED])
    stream.put_back(batch[1:], [THROTTLED] * 3)
    assert call.left == 0 and all(r.gave_up for r in call.results.values())


def test_a_sender_that_fails_fails_every_call_waiting_on_the_stream() -> None:
    stream = BatchStream()
    first = stream.join(page("a", 2), range(2))
    second = stream.join(page("b", 2), range(2))
    batch = take(stream, first)
    raised: list[BaseException] = []

    def wait_for_b() -> None:
        try:
            while stream.take(second, 20) is not None:
                pass
        except RuntimeError as error:
            raised.append(error)

    stream.fail(batch, RuntimeError("token refused"))
    waiter = threading.Thread(target=wait_for_b)
    waiter.start()
    waiter.join(5)
    assert [str(e) for e in raised] == ["token refused"]
    with pytest.raises(RuntimeError):
        stream.take(first, 20)


def test_a_sender_whose_items_are_all_in_flight_waits_instead_of_carrying_the_next_page() -> None:
    """Page a's call returns as soon as its items are answered: its sender does not take page
    b's batch meanwhile (b's own senders do), but it does take a's items sent again, with b's."""
    stream = BatchStream()
    first = stream.join(page("a", 20), range(20))
    second = stream.join(page("b", 20), range(20))
    batch = take(stream, first)
    taken: list[object] = []
    waiter = threading.Thread(target=lambda: taken.append(stream.take(first, 20)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and not taken  # b's items are queued, but they are not a's to carry
    stream.answer([(item, OK) for item in batch[:18]])
    stream.put_back(batch[18:], [THROTTLED] * 2)
    waiter.join(5)
    ticket, retried = taken[0]  # type: ignore[misc]
    ticket.done()
    assert urls(retried) == ["/a/18", "/a/19", *(f"/b/{i}" for i in range(18))]
    stream.answer([(item, OK) for item in retried])
    assert stream.take(first, 20) is None and first.left == 0
    assert urls(take(stream, second)) == ["/b/18", "/b/19"]
