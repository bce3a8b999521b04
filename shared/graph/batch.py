"""Graph requests and answers as values, and JSON batching (``POST /$batch``) of them.

A ``GraphRequest`` is the same thing sent alone or as a batch item, and a ``GraphResponse``
the same thing received alone or as an item of a 200 batch answer (whose status says
nothing about its items: graph-notes §5). Pure: building payloads, reading answers and
packing requests into batches of 20; sending is ``mailbox.GraphMailbox``'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.graph.errors import GraphError, error_for
from shared.transport.backoff import retry_after_seconds

MAX_BATCH_ITEMS = 20  # json-batching: "Max 20 requests" per batch
REPEATABLE_METHODS = {"GET", "PUT", "PATCH", "DELETE"}  # a PATCH sets absolute values: twice = once


class GraphRequest(BaseModel):
    """One Graph call. ``url`` is relative to the version root (``/users/{id}/events``) or,
    for delta and paging links, the absolute link Graph gave us.

    ``repeatable`` says whether sending it twice has the effect of once: true for GET, PUT,
    PATCH, DELETE and for a POST carrying an idempotency key (an event's ``transactionId``).
    ``depends_on`` holds indexes of earlier requests of the same list (``$batch`` ``dependsOn``).
    """

    model_config = ConfigDict(frozen=True)

    method: str
    url: str
    body: dict[str, Any] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    depends_on: tuple[int, ...] = ()
    repeatable: bool | None = None

    @property
    def safe_to_repeat(self) -> bool:
        return self.repeatable if self.repeatable is not None else self.method.upper() in REPEATABLE_METHODS


class GraphResponse(BaseModel):
    """A Graph answer. ``outcome_unknown``: a non-repeatable request failed without saying
    whether it was applied. ``gave_up``: still throttled or failing when the wait budget ran out."""

    status: int
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    outcome_unknown: bool = False
    gave_up: bool = False

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def request_id(self) -> str:
        return next((v for k, v in self.headers.items() if k.lower() == "request-id"), "")

    @property
    def retry_after(self) -> float | None:
        return retry_after_seconds(self.headers)

    def json_object(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}

    def error(self) -> GraphError:
        return error_for(self.status, self.body, self.request_id)


def batch_payload(requests: Sequence[GraphRequest], ids: Sequence[int]) -> dict[str, Any]:
    """The ``$batch`` body for ``requests[i] for i in ids``; item ids are the indexes.

    A ``dependsOn`` naming a request outside ``ids`` is dropped: that request already
    succeeded in an earlier round of the same batch.
    """
    chosen = set(ids)
    items = []
    for index in ids:
        request = requests[index]
        item: dict[str, Any] = {"id": str(index), "method": request.method.upper(), "url": request.url}
        headers = dict(request.headers)
        if request.body is not None:
            item["body"] = request.body
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"  # required with a body
        if headers:
            item["headers"] = headers
        depends = [str(d) for d in request.depends_on if d in chosen]
        if depends:
            item["dependsOn"] = depends
        items.append(item)
    return {"requests": items}


def batch_answers(body: Any) -> dict[int, GraphResponse]:
    """The items of a 200 ``$batch`` answer by request index (Graph answers in any order)."""
    answers: dict[int, GraphResponse] = {}
    for item in (body or {}).get("responses") or []:
        try:
            index = int(item["id"])
        except (KeyError, TypeError, ValueError):
            continue
        headers = {str(k): str(v) for k, v in (item.get("headers") or {}).items()}
        answers[index] = GraphResponse(status=int(item.get("status", 0)), headers=headers, body=item.get("body"))
    return answers


def batch_groups(requests: Sequence[GraphRequest]) -> tuple[list[int], list[list[int]]]:
    """Split request indexes into the independent ones (any batch may carry them) and batches
    of at most 20 holding dependency chains, every request in the batch of the requests it
    depends on (results are matched back by index, so order is free)."""
    group_of: dict[int, int] = {}
    groups: list[list[int]] = []
    for index, request in enumerate(requests):
        for dependency in request.depends_on:
            if not 0 <= dependency < index:
                raise ValueError(f"request {index} depends on {dependency}, which is not an earlier request")
        linked = sorted({group_of[d] for d in request.depends_on})
        if not linked:
            groups.append([index])
            group_of[index] = len(groups) - 1
            continue
        target = linked[0]
        for other in linked[1:]:  # a request joining two chains merges them
            groups[target].extend(groups[other])
            for moved in groups[other]:
                group_of[moved] = target
            groups[other] = []
        groups[target].append(index)
        group_of[index] = target
    # A batch with any dependsOn runs one item at a time, so chains and independent requests
    # go into separate batches: the independent ones keep running four at a time.
    independent = [g[0] for g in groups if len(g) == 1]
    chains = [sorted(g) for g in groups if len(g) > 1]
    return independent, _pack(chains)


def _pack(groups: list[list[int]]) -> list[list[int]]:
    batches: list[list[int]] = []
    for group in groups:
        if len(group) > MAX_BATCH_ITEMS:
            raise ValueError(f"{len(group)} requests depend on each other; a batch holds at most {MAX_BATCH_ITEMS}")
        if batches and len(batches[-1]) + len(group) <= MAX_BATCH_ITEMS:
            batches[-1].extend(group)
        else:
            batches.append(list(group))
    return batches
