"""One mailbox's Graph transport for sync: every call paced by the mailbox's gate and budget.

``GraphMailbox`` sends ``GraphRequest``s alone (``send``), as one ``$batch`` of up to 20
(``send_batch``) or as any number of batches (``send_all``), retrying what throttling and
transient failures let it retry:

- 429: the whole mailbox pauses for ``Retry-After`` (the gate holds every request back), then
  the throttled request, or only the throttled items of a 200 batch, are sent again;
- 503 (and 502/504 for repeatable requests): exponential back-off, or ``Retry-After``;
- a request that may have been applied (502/504/lost connection) is never sent twice unless
  it is repeatable: it comes back as ``outcome_unknown`` (``OutcomeUnknown`` from ``send``);
- waits are bounded by ``Pacing.max_wait_seconds``: past it, ``MailboxThrottled`` (or
  responses marked ``gave_up`` from the batch calls) so the caller defers its queue message.

Why not ``shared.transport.retry.send``: it cannot hold the mailbox gate per attempt (the
slots must be free while we sleep), cannot see 429s inside a 200 ``$batch``, and bounds
attempts rather than the total wait. It stays the right tool for one-off calls.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import requests

from shared.graph.batch import (
    MAX_BATCH_ITEMS,
    GraphRequest,
    GraphResponse,
    batch_answers,
    batch_groups,
    batch_payload,
)
from shared.graph.batch_stream import BatchStream, StreamCall
from shared.graph.errors import MailboxThrottled, OutcomeUnknown
from shared.graph.gate import (
    BATCH_PARALLEL_ITEMS,
    GateTimeout,
    MailboxGate,
    ShareTooSmall,
    batch_weight,
    gate_for,
)
from shared.graph.pacing import NOT_APPLIED_STATUSES, TRANSIENT_STATUSES, Pacing, WaitBudget
from shared.graph.send_order import current_turn

log = logging.getLogger(__name__)

# The request went out and its answer did not come back whole (reset, timeout, a body cut
# short: ChunkedEncodingError is no ConnectionError): the outcome is open.
ANSWER_LOST = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
GATE_BUSY = "MailboxBusy"  # our gate held the request back (no Graph answer): nothing to pause for
IMMUTABLE_IDS = 'IdType="ImmutableId"'  # ids that survive moves inside the mailbox (outlook-immutable-id)


class GraphMailbox:
    """Graph calls for one user's mailbox with an app-only token of their tenant.

    ``token`` returns a valid app-only token for the tenant (e.g.
    ``lambda: entra.app_token(tenant_id)``; MSAL caches it). ``user`` is the user's object
    id (preferred: it is what Graph throttles on and what the gate is keyed by) or UPN.
    """

    def __init__(
        self,
        graph_url: str,
        user: str,
        token: Callable[[], str],
        session: requests.Session,
        *,
        tenant_id: str = "",
        pacing: Pacing | None = None,
        gate: MailboxGate | None = None,
        immutable_ids: bool = True,
    ) -> None:
        self.graph_url = graph_url.rstrip("/")
        self.immutable_ids = immutable_ids
        self.user = user
        self.tenant_id = tenant_id
        self.pacing = pacing or Pacing()
        self.gate = gate or gate_for(f"{tenant_id}/{user}")
        self._token = token
        self._session = session

    @property
    def user_path(self) -> str:
        """``/users/{user}``: the root of every mailbox URL."""
        return f"/users/{quote(self.user, safe='@')}"

    def owns_link(self, link: str) -> bool:
        """A paging or delta link is followed only if it points at our Graph (the token goes with it)."""
        return link.startswith(self.graph_url + "/")

    # ---- one request -----------------------------------------------------------------------
    def send(self, request: GraphRequest, *, gated: bool = True) -> GraphResponse:
        """Send one request, retrying what may be retried; return the final answer.

        Raises ``MailboxThrottled`` when the wait budget runs out and ``OutcomeUnknown`` when a
        non-repeatable request failed ambiguously. ``gated=False`` is for calls that are not
        Outlook mailbox calls (subscriptions).
        """
        budget = WaitBudget(self.pacing)
        attempt = 0
        while True:
            attempt += 1
            response = self._exchange(request, budget, gated)
            transient = response.status in TRANSIENT_STATUSES or response.status == 0
            if not transient:
                return response
            if not request.safe_to_repeat and response.status not in NOT_APPLIED_STATUSES:
                raise OutcomeUnknown(response.status or 504, "OutcomeUnknown",
                                     f"{request.method} {request.url} may or may not have been applied")
            wait = response.retry_after if response.retry_after is not None else self.pacing.backoff(attempt)
            log.info("graph %s: %s, attempt %d, again in %.1f s", request.method, response.status or "answer lost", attempt, wait)
            throttled = response.status == 429 and gated
            if throttled:  # the whole mailbox waits it out, whatever this call does next
                self.gate.pause(wait)
            if attempt >= self.pacing.max_attempts or not budget.can_wait(wait):
                code, message = response.error().code, "still throttled or unavailable after our retries"
                raise MailboxThrottled(response.status or 503, code, message, response.request_id, retry_after=wait)
            if not throttled:
                time.sleep(wait)  # (a throttled retry waits at the gate)

    def _exchange(self, request: GraphRequest, budget: WaitBudget, gated: bool) -> GraphResponse:
        url = self._absolute(request.url)
        headers = self._headers(request.headers)
        hold = _GateHold(self.gate, 1, budget, requests=1) if gated else contextlib.nullcontext()
        try:
            with hold:
                http = self._session.request(request.method, url, json=request.body, headers=headers,
                                             timeout=self.pacing.timeout_seconds)
        except requests.ConnectTimeout:
            return GraphResponse(status=503)  # never reached Graph: not applied
        except ANSWER_LOST:
            return GraphResponse(status=0)  # sent, answer lost: the outcome is open
        return _response(http)

    def _absolute(self, url: str) -> str:
        if url.startswith("/"):
            return self.graph_url + url
        if self.owns_link(url):
            return url
        raise ValueError(f"refusing to send the mailbox's token to {url!r}: not our Graph endpoint")

    # ---- one batch -------------------------------------------------------------------------
    def send_batch(self, requests_: Sequence[GraphRequest]) -> list[GraphResponse]:
        """Send up to 20 requests as one ``$batch``; answers in input order.

        Only the items that failed transiently are sent again (in a smaller batch, after the
        longest ``Retry-After`` of them, as the throttling guidance says); an item that depends
        on a retried one is retried with it. Items still failing when the budget runs out
        come back with ``gave_up``.
        """
        if not requests_:
            return []
        if len(requests_) > MAX_BATCH_ITEMS:
            raise ValueError(f"a batch holds at most {MAX_BATCH_ITEMS} requests, not {len(requests_)}")
        budget = WaitBudget(self.pacing)
        pending = list(range(len(requests_)))
        results: dict[int, GraphResponse] = {}
        attempt = 0
        while pending:
            attempt += 1
            pending = self._sort_answers(requests_, pending, self._post_batch(requests_, pending, budget), results)
            if not pending:
                break
            wait = self._retry_wait(results, pending, attempt, len(requests_))
            throttled = self._pause_if_throttled(results, pending, wait)
            if attempt >= self.pacing.max_attempts or not budget.can_wait(wait):
                _give_up(results, pending)
                break
            if not throttled:
                time.sleep(wait)
        return [results[i] for i in range(len(requests_))]

    def _post_batch(self, requests_: Sequence[GraphRequest], ids: list[int], budget: WaitBudget,
                    whole: bool = False, granted: Callable[[], None] | None = None) -> dict[int, GraphResponse]:
        """``whole``: the batch holds every slot of our share, however few its items, so it never
        runs beside the one before it (a send in turn: the order batches are sent in is the
        order Outlook gets them; a batch of 4 items or more holds them all anyway). ``granted``:
        called once the batch goes."""
        # Each item carries its own headers (Graph applies none of the batch's to them).
        # Only this batch's items are copied: a call's list is sent 20 at a time (copying all of it
        # for each batch made a 5,000-item read quadratic).
        items = list(requests_)
        for i in ids:
            items[i] = requests_[i].model_copy(update={"headers": with_immutable_ids(requests_[i].headers)})
        payload = batch_payload(items, ids)
        sequential = any("dependsOn" in item for item in payload["requests"])
        weight = batch_weight(len(ids), sequential)
        if whole:
            weight = max(weight, min(self.gate.capacity, self.gate.share()))
        headers = self._headers({})
        try:
            with _GateHold(self.gate, weight, budget, requests=len(ids), granted=granted):
                http = self._session.post(f"{self.graph_url}/$batch", json=payload, headers=headers,
                                          timeout=self.pacing.timeout_seconds * max(1, len(ids) // weight))
        except ShareTooSmall as small:  # another instance shares the mailbox: batches as big as our share
            answers: dict[int, GraphResponse] = {}
            for start in range(0, len(ids), small.slots):
                answers.update(self._post_batch(requests_, ids[start:start + small.slots], budget))
            return answers
        except MailboxThrottled as busy:  # the gate stayed busy: like a 429 for every item (not Graph's)
            held_back = GraphResponse(status=429, headers={"Retry-After": str(busy.retry_after)},
                                      body={"error": {"code": GATE_BUSY, "message": busy.message}})
            return dict.fromkeys(ids, held_back)
        except requests.ConnectTimeout:
            return {i: GraphResponse(status=503) for i in ids}
        except ANSWER_LOST:
            return {i: GraphResponse(status=0) for i in ids}
        outer = _response(http)
        if outer.status != 200:
            # The batch as a whole failed (throttled, unavailable, malformed): every item shares its fate.
            return {i: outer for i in ids}
        answers = batch_answers(outer.body)
        missing = GraphResponse(status=502, body={"error": {"code": "BatchItemMissing", "message": "no answer"}})
        return {i: answers.get(i, missing) for i in ids}

    @staticmethod
    def _retryable(request: GraphRequest, answer: GraphResponse) -> bool:
        if answer.status in NOT_APPLIED_STATUSES:
            return True
        return request.safe_to_repeat and (answer.status in TRANSIENT_STATUSES or answer.status == 0)

    def _sort_answers(self, requests_: Sequence[GraphRequest], ids: list[int], answers: dict[int, GraphResponse],
                      results: dict[int, GraphResponse]) -> list[int]:
        """Record each item's answer; return the items to send again (an item whose
        ``dependsOn`` failed because a retried one did comes along)."""
        again: list[int] = []
        for index in ids:
            answer = answers[index]
            if self._retryable(requests_[index], answer) or (
                answer.status == 424 and any(d in again for d in requests_[index].depends_on)
            ):
                again.append(index)
            elif answer.status in TRANSIENT_STATUSES or answer.status == 0:
                answer = answer.model_copy(update={"outcome_unknown": True})
            results[index] = answer
        return again

    def _retry_wait(self, results: dict[int, GraphResponse], again: list[int], attempt: int, sent: int) -> float:
        """The longest ``Retry-After`` of the items to send again, or the back-off."""
        waits = [w for i in again if (w := results[i].retry_after) is not None]
        wait = max(waits) if waits else self.pacing.backoff(attempt)
        log.info("graph $batch: %d of %d items to send again (attempt %d) in %.1f s", len(again), sent, attempt, wait)
        return wait

    def _pause_if_throttled(self, results: dict[int, GraphResponse], again: list[int], wait: float) -> bool:
        """A 429 among the items to send again pauses the whole mailbox (their retry waits at
        the gate); True if so."""
        throttled = any(results[i].status == 429 and results[i].error().code != GATE_BUSY for i in again)
        if throttled:
            self.gate.pause(wait)
        return throttled

    # ---- any number of requests ------------------------------------------------------------
    def send_all(self, requests_: Sequence[GraphRequest]) -> list[GraphResponse]:
        """Send any number of requests in batches of 20, as many at once as the gate lets
        through; answers in input order.

        Independent requests go through one queue (``batch_stream``): an item to send again
        (429, 503) goes back to its front and rides in the next batch with fresh items, so a
        throttled list costs about ceil(sends / 20) batches rather than a small extra batch
        per throttled one. Called in a turn (``send_order``: an initial sync's pages), they
        join the order's one queue for this mailbox in their turn, so what Graph throttles
        near a page's end rides with the next page's items; otherwise the call has a queue of
        its own. Dependency chains go in batches of their own (``send_batch``). Once anything
        gives up (budget spent), nothing more is started: what is left answers ``gave_up``.
        """
        turn = current_turn()
        try:
            if turn is not None:
                turn.wait()  # an earlier page's batches go first (``send_order``)
            independent, chains = batch_groups(requests_)
            stream = turn.shared(self.gate, BatchStream) if turn is not None else BatchStream(whole=False)
            call = stream.join(requests_, independent)
            if turn is not None and not chains:
                turn.done()  # the next page's items may join behind these
            return self._send(requests_, stream, call, chains)
        finally:
            if turn is not None:
                turn.done()

    def _send(self, requests_: Sequence[GraphRequest], stream: BatchStream, call: StreamCall,
              chains: list[list[int]]) -> list[GraphResponse]:
        """``call``'s items through ``stream`` while each chain goes as a batch of its own."""
        chained: dict[int, GraphResponse] = {}

        def run_chain(group: list[int]) -> None:
            if stream.stopped:
                return
            position = {old: new for new, old in enumerate(group)}
            local = [r.model_copy(update={"depends_on": tuple(position[d] for d in r.depends_on)})
                     for r in (requests_[i] for i in group)]
            answers = self.send_batch(local)
            chained.update(zip(group, answers, strict=True))
            if any(answer.gave_up for answer in answers):
                stream.give_up([], [])  # nothing more is started

        tasks = [*(lambda g=g: run_chain(g) for g in chains), *([lambda: self._send_in_stream(stream, call)] if call.left else [])]
        if len(tasks) == 1:
            tasks[0]()
        elif tasks:
            # More threads than the gate's slots would only queue at the gate.
            with ThreadPoolExecutor(max_workers=min(len(tasks), self.gate.capacity),
                                    thread_name_prefix="graph-batch") as pool_threads:
                context = contextvars.copy_context()
                list(pool_threads.map(lambda task: context.copy().run(task), tasks))
        answers = {**call.results, **chained}
        return [answers.get(i) or GraphResponse(status=0, gave_up=True) for i in range(len(requests_))]

    def _send_in_stream(self, stream: BatchStream, call: StreamCall) -> None:
        """Until every item of ``call`` is answered, its senders fill batches from ``stream``
        (other pages' items included, in a shared stream)."""
        # A batch of 4 or more items holds all 4 of the mailbox's slots, so a second sender only
        # waits at the gate, ready to go; more would hold items back from the retries' top-up.
        senders = min(2, -(-call.left // MAX_BATCH_ITEMS))
        if senders > 1:
            with ThreadPoolExecutor(max_workers=senders - 1, thread_name_prefix="graph-batch") as pool_threads:
                context = contextvars.copy_context()
                helpers = [pool_threads.submit(context.copy().run, self._drain_stream, stream, call) for _ in range(senders - 1)]
                self._drain_stream(stream, call)
                for helper in helpers:
                    helper.result()
        else:
            self._drain_stream(stream, call)

    def _drain_stream(self, stream: BatchStream, call: StreamCall) -> None:
        """Send batches from ``stream`` while ``call`` has items queued, with ``send_batch``'s
        retry rules: each item's wait budget counted from its first send; a 429 pauses the
        mailbox; an item past its budget or attempts stops the stream."""
        while (batch := stream.take(call, self._batch_size())) is not None:
            ticket, taken = batch
            requests_ = [item.request for item in taken]
            ids = list(range(len(taken)))
            answers: dict[int, GraphResponse] = {}
            try:
                # The next batch is taken as this one goes: the one waiting at the gate meanwhile
                # carries what Graph throttled in the one before.
                posted = self._post_batch(requests_, ids, WaitBudget(self.pacing), whole=stream.whole, granted=ticket.done)
                again = self._sort_answers(requests_, ids, posted, answers)
            except BaseException as error:
                stream.fail(taken, error)
                raise
            finally:
                ticket.done()
            stream.answer([(taken[i], answers[i]) for i in ids if i not in again])
            if not again:
                continue
            retry = [taken[i] for i in again]
            wait = self._retry_wait(answers, again, max(item.attempts for item in retry), len(ids))
            throttled = self._pause_if_throttled(answers, again, wait)
            last = [answers[i] for i in again]
            if max(item.attempts for item in retry) >= self.pacing.max_attempts or any(
                    time.monotonic() + wait > item.first_sent + self.pacing.max_wait_seconds for item in retry):
                stream.give_up(retry, last)
                continue
            if not throttled:
                time.sleep(wait)
            stream.put_back(retry, last)

    def _batch_size(self) -> int:
        """20 items when the mailbox's 4 slots are ours (a parallel batch runs 4 at a time at
        Graph, whatever its size); as many items as our slots while another instance shares it."""
        share = self.gate.share()
        return MAX_BATCH_ITEMS if share >= BATCH_PARALLEL_ITEMS else max(1, share)

    # ---- plumbing --------------------------------------------------------------------------
    def _headers(self, extra: dict[str, str]) -> dict[str, str]:
        headers = with_immutable_ids(extra) if self.immutable_ids else dict(extra)
        headers["Authorization"] = f"Bearer {self._token()}"
        headers["client-request-id"] = str(uuid.uuid4())
        return headers



def _give_up(results: dict[int, GraphResponse], indexes: list[int]) -> None:
    for index in indexes:
        results[index] = results[index].model_copy(update={"gave_up": True})


class _GateHold:
    """Hold gate slots for one exchange; a gate that stays busy past the budget is throttling."""

    def __init__(self, gate: MailboxGate, weight: int, budget: WaitBudget, requests: int = 1,
                 granted: Callable[[], None] | None = None) -> None:
        self.gate, self.weight, self.budget, self.requests = gate, weight, budget, requests
        self.granted = granted

    def __enter__(self) -> None:
        try:
            self.gate.acquire(self.weight, self.budget.deadline, self.requests)
        except GateTimeout:
            wait = max(self.gate.pause_remaining(), self.gate.window_wait(self.requests), 1.0)
            raise MailboxThrottled(429, GATE_BUSY, "the mailbox stayed busy past the wait budget",
                                   retry_after=wait) from None
        if self.granted is not None:
            self.granted()

    def __exit__(self, *exc: object) -> None:
        self.gate.release(self.weight)


def with_immutable_ids(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with ``IdType="ImmutableId"`` added to its Prefer: every request must ask for
    immutable ids, or ids read one way would not match ids read the other."""
    merged = {k: v for k, v in headers.items() if k.lower() != "prefer"}
    prefer = [v for k, v in headers.items() if k.lower() == "prefer"]
    merged["Prefer"] = ", ".join([*prefer, IMMUTABLE_IDS])
    return merged


def _response(http: requests.Response) -> GraphResponse:
    body = None
    if http.content:
        try:
            body = http.json()
        except ValueError:
            body = http.text
    return GraphResponse(status=http.status_code, headers=dict(http.headers), body=body)
