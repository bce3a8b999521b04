"""What calendars and contact folders have in common for sync: one tagged container per
mailbox, and tagged items inside it.

- **Find-or-create, idempotently** (SPEC R3.2, R4.3): the container is created with our
  ``SYNC_CONTAINER`` extended property in the same POST, so the tag and the container exist
  together or not at all. ``ensure_container`` always looks for the tag first: after a crash
  between Graph's 201 and our recording of the id, the next attempt finds the same container,
  never a second one. Two workers racing both POST; Outlook refuses the second name (409), and
  the loser finds the winner's container by its tag.
- **Items** carry the CRM id in ``CRM_ID`` (DESIGN §8). A create that may or may not have
  happened (``outcome_unknown``) is resolved by looking the CRM id up before sending it again.
- **404s** on anything under the container are checked against the container: if the
  container is gone the caller gets ``ContainerGone`` (R3.8, R4.9), else ``ItemNotFound``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, Field

from shared.graph.batch import GraphRequest, GraphResponse
from shared.graph.delta import DEFAULT_PAGE_SIZE, DeltaPage, read_pages
from shared.graph.errors import (
    ContainerGone,
    ContainerNameTaken,
    GraphError,
    ItemNotFound,
    MailboxThrottled,
    OutcomeUnknown,
)
from shared.graph.extended_properties import CRM_ID, SYNC_CONTAINER, expand, tag, value_filter
from shared.graph.mailbox import GraphMailbox
from shared.graph.models import GraphModel, OutlookItem

log = logging.getLogger(__name__)

C = TypeVar("C", bound=GraphModel)
I = TypeVar("I", bound=OutlookItem)  # noqa: E741 - the item type, next to C the container type


@dataclass(frozen=True)
class ContainerKind(Generic[C, I]):
    """How one kind of container is spelled in Graph."""

    label: str  # "calendar", "contact folder" (messages)
    collection: str  # URL segment: "calendars", "contactFolders"
    name_field: str  # "name", "displayName"
    items: str  # URL segment: "events", "contacts"
    container_model: type[C]
    item_model: type[I]
    gone: Callable[[str, str], ContainerGone]  # (container id, request id) -> exception
    tag_value: str  # value of SYNC_CONTAINER on our container
    prefer: tuple[str, ...] = ()  # Prefer entries for item calls


class ItemDraft(BaseModel):
    """An item to create: Graph JSON ``fields`` (the engine maps them), the CRM id it mirrors,
    and, for events, the ``transactionId`` that makes the POST repeatable."""

    crm_id: str
    fields: dict[str, Any] = Field(default_factory=dict)
    transaction_id: str | None = None


def segment(value: str) -> str:
    return quote(value, safe="")


def query(**params: str) -> str:
    """``?$filter=...`` with OData's ``$`` names kept readable and values percent-encoded."""
    return "?" + "&".join(f"${name}={quote(value, safe='')}" for name, value in params.items())


class ContainerClient(Generic[C, I]):
    """One container kind in one mailbox; subclassed by ``CalendarClient`` and ``ContactsClient``."""

    kind: ContainerKind[C, I]

    def __init__(self, mailbox: GraphMailbox) -> None:
        self.mailbox = mailbox

    # ---- the container -----------------------------------------------------------------------
    def _collection_url(self) -> str:
        return f"{self.mailbox.user_path}/{self.kind.collection}"

    def _container_url(self, container_id: str) -> str:
        return f"{self._collection_url()}/{segment(container_id)}"

    def find_container(self) -> C | None:
        """Our container, found by its tag (never by name: a user's own one may share it)."""
        found = self._list_containers(query(filter=value_filter(SYNC_CONTAINER, self.kind.tag_value)))
        if len(found) > 1:
            log.warning("%d tagged %ss in one mailbox; using the first", len(found), self.kind.label)
        return found[0] if found else None

    def ensure_container(self, name: str) -> C:
        """Find our container or create it, tagged, in one POST; safe to repeat at any point."""
        for _ in range(3):
            found = self.find_container()
            if found is not None:
                return found
            body = {self.kind.name_field: name, **tag(SYNC_CONTAINER, self.kind.tag_value)}
            try:
                response = self.mailbox.send(GraphRequest(method="POST", url=self._collection_url(), body=body,
                                                          repeatable=False))
            except OutcomeUnknown:
                continue  # it may exist now: look for the tag again
            if response.ok:
                return self.kind.container_model.model_validate(response.body)
            if response.status != 409:
                raise response.error()
            # Name taken: by a worker that raced us (tagged, found on the next look) or by the user.
            found = self.find_container()
            if found is not None:
                return found
            existing = next((c for c in self._list_containers("")
                             if str(c.model_dump(by_alias=True).get(self.kind.name_field, "")).lower() == name.lower()),
                            None)
            raise ContainerNameTaken(self.kind.label, name, existing.model_dump().get("id", "") if existing else "")
        raise OutcomeUnknown(504, "OutcomeUnknown", f"could not tell whether the {self.kind.label} was created")

    def get_container(self, container_id: str) -> C:
        response = self.mailbox.send(GraphRequest(method="GET", url=self._container_url(container_id)))
        if _is_item_not_found(response):
            raise self.kind.gone(container_id, response.request_id)
        if not response.ok:
            raise response.error()
        return self.kind.container_model.model_validate(response.body)

    def delete_container(self, container_id: str) -> bool:
        """Delete the container and everything in it (Disable, R3.7, R4.8); False if already gone."""
        response = self.mailbox.send(GraphRequest(method="DELETE", url=self._container_url(container_id)))
        if _is_item_not_found(response):
            return False
        if not response.ok:
            raise response.error()
        return True

    def _list_containers(self, query_string: str) -> list[C]:
        found: list[C] = []
        url: str | None = self._collection_url() + query_string
        while url:
            response = self.mailbox.send(GraphRequest(method="GET", url=url))
            if not response.ok:
                raise response.error()
            body = response.json_object()
            found.extend(self.kind.container_model.model_validate(v) for v in body.get("value") or [])
            url = body.get("@odata.nextLink")
        return found

    def _container_exists(self, container_id: str) -> bool:
        try:
            self.get_container(container_id)
        except ContainerGone:
            return False
        return True

    # ---- items -----------------------------------------------------------------------------
    def _items_url(self, container_id: str) -> str:
        return f"{self._container_url(container_id)}/{self.kind.items}"

    def _item_url(self, container_id: str, item_id: str) -> str:
        return f"{self._items_url(container_id)}/{segment(item_id)}"

    def _headers(self) -> dict[str, str]:
        return {"Prefer": ", ".join(self.kind.prefer)} if self.kind.prefer else {}

    def _create_request(self, container_id: str, draft: ItemDraft) -> GraphRequest:
        body = {**draft.fields, **tag(CRM_ID, draft.crm_id)}
        return GraphRequest(method="POST", url=self._items_url(container_id), body=body, headers=self._headers(),
                            repeatable=False)

    def _failure(self, container_id: str, response: GraphResponse) -> GraphError:
        """The exception for a failed item call: a 404 is checked against the container."""
        error = response.error()
        if isinstance(error, ItemNotFound) and not self._container_exists(container_id):
            return self.kind.gone(container_id, response.request_id)
        return error

    def _item(self, response: GraphResponse) -> I:
        return self.kind.item_model.model_validate(response.body)

    def create_item(self, container_id: str, draft: ItemDraft) -> I:
        """Create one tagged item; a retried or crashed create never makes a second one."""
        request = self._create_request(container_id, draft)
        for _ in range(2):
            try:
                response = self.mailbox.send(request)
            except OutcomeUnknown:
                existing = self.find_items_by_crm_id(container_id, draft.crm_id)
                if existing:
                    return existing[0]
                continue
            if not response.ok:
                raise self._failure(container_id, response)
            return self._item(response)
        raise OutcomeUnknown(504, "OutcomeUnknown", f"could not tell whether {draft.crm_id} was created")

    def create_items(self, container_id: str, drafts: Sequence[ItemDraft]) -> list[I | GraphError]:
        """Create many items in ``$batch``es of 20, at most what the gate allows in flight.

        Returns, in input order, the created item or the ``GraphError`` of that item. Items
        whose outcome was unknown are looked up by CRM id, then sent once more if absent.
        Raises ``MailboxThrottled`` (``completed`` = the outcomes so far, None where not done)
        when throttling outlasted the wait budget.
        """
        requests_ = [self._create_request(container_id, d) for d in drafts]
        outcomes = self._outcomes(container_id, self.mailbox.send_all(requests_))
        unknown = [i for i, o in enumerate(outcomes) if isinstance(o, OutcomeUnknown)]
        resend: list[int] = []
        for index in unknown:
            existing = self.find_items_by_crm_id(container_id, drafts[index].crm_id)
            if existing:
                outcomes[index] = existing[0]
            else:
                resend.append(index)
        if resend:
            again = self._outcomes(container_id, self.mailbox.send_all([requests_[i] for i in resend]))
            for index, outcome in zip(resend, again, strict=True):
                outcomes[index] = outcome
        return self._complete(outcomes)

    def update_item(self, container_id: str, item_id: str, fields: dict[str, Any]) -> I:
        """PATCH the given fields; the returned item carries the new ``change_key`` (DESIGN §8:
        the post-write version is stored so our own echo is ignored)."""
        response = self.mailbox.send(GraphRequest(method="PATCH", url=self._item_url(container_id, item_id),
                                                  body=fields, headers=self._headers()))
        if not response.ok:
            raise self._failure(container_id, response)
        return self._item(response)

    def update_items(self, container_id: str, changes: Sequence[tuple[str, dict[str, Any]]], *,
                     if_match: Sequence[str | None] | None = None) -> list[I | GraphError]:
        """PATCH many items (``(item id, fields)`` pairs) in batches; outcomes in input order.
        ``if_match``: per item, the change key the write was planned against: an item changed
        since answers 412 (``ErrorIrresolvableConflict``) and is left as it is."""
        keys = list(if_match) if if_match is not None else [None] * len(changes)
        requests_ = [GraphRequest(method="PATCH", url=self._item_url(container_id, item_id), body=fields,
                                  headers={**self._headers(), **({"If-Match": f'W/"{key}"'} if key else {})})
                     for (item_id, fields), key in zip(changes, keys, strict=True)]
        return self._complete(self._outcomes(container_id, self.mailbox.send_all(requests_)))

    def delete_item(self, container_id: str, item_id: str) -> bool:
        """Delete one item; False if it was already gone (a 404 on delete is not an error)."""
        response = self.mailbox.send(GraphRequest(method="DELETE", url=self._item_url(container_id, item_id)))
        if response.ok:
            return True
        error = self._failure(container_id, response)
        if type(error) is ItemNotFound:
            return False
        raise error

    def delete_items(self, container_id: str, item_ids: Sequence[str]) -> list[bool | GraphError]:
        """Delete many items in batches: True deleted, False already gone, or the item's error."""
        requests_ = [GraphRequest(method="DELETE", url=self._item_url(container_id, i)) for i in item_ids]
        results: list[bool | GraphError] = []
        for outcome in self._outcomes(container_id, self.mailbox.send_all(requests_), read_body=False):
            if isinstance(outcome, GraphError):
                results.append(False if type(outcome) is ItemNotFound else outcome)
            else:
                results.append(True)
        return self._complete(results)

    def get_items(self, container_id: str, item_ids: Sequence[str]) -> list[I | GraphError]:
        """Many items (with our CRM id expanded) in batches; ``ItemNotFound`` for one gone."""
        suffix = query(expand=expand(CRM_ID))
        requests_ = [GraphRequest(method="GET", url=self._item_url(container_id, i) + suffix, headers=self._headers())
                     for i in item_ids]
        return self._complete(self._outcomes(container_id, self.mailbox.send_all(requests_)))

    def get_item(self, container_id: str, item_id: str) -> I:
        """One item with our CRM id expanded (``crm_id_of(item)``); ``ItemNotFound`` if gone."""
        url = self._item_url(container_id, item_id) + query(expand=expand(CRM_ID))
        response = self.mailbox.send(GraphRequest(method="GET", url=url, headers=self._headers()))
        if not response.ok:
            raise self._failure(container_id, response)
        return self._item(response)

    def find_items_by_crm_id(self, container_id: str, crm_id: str) -> list[I]:
        """Items of the container tagged with ``crm_id`` (normally one; more means a duplicate)."""
        return self._list_items(container_id, query(filter=value_filter(CRM_ID, crm_id), expand=expand(CRM_ID)))

    def _list_items(self, container_id: str, query_string: str) -> list[I]:
        """Every page of a listing of the container's items."""
        found: list[I] = []
        next_url: str | None = self._items_url(container_id) + query_string
        while next_url:
            response = self.mailbox.send(GraphRequest(method="GET", url=next_url, headers=self._headers()))
            if not response.ok:
                raise self._failure(container_id, response)
            body = response.json_object()
            found.extend(self.kind.item_model.model_validate(v) for v in body.get("value") or [])
            next_url = body.get("@odata.nextLink")
        return found

    # ---- delta -----------------------------------------------------------------------------
    def _delta_pages(self, container_id: str, first: GraphRequest, page_size: int) -> Iterator[DeltaPage[I]]:
        def error_for(response: GraphResponse) -> GraphError:
            if _is_item_not_found(response):  # the delta is of the container itself
                return self.kind.gone(container_id, response.request_id)
            return response.error()

        prefer = [*self.kind.prefer, f"odata.maxpagesize={max(1, page_size or DEFAULT_PAGE_SIZE)}"]
        return read_pages(self.mailbox, first, self.kind.item_model, prefer=prefer, error_for=error_for)

    # ---- outcomes of many ------------------------------------------------------------------
    def _outcomes(self, container_id: str, responses: list[GraphResponse], *, read_body: bool = True) -> list[Any]:
        outcomes: list[Any] = []
        container_gone: bool | None = None
        for response in responses:
            if response.gave_up:
                outcomes.append(response)  # resolved in _complete
            elif response.outcome_unknown:
                outcomes.append(OutcomeUnknown(response.status or 504, "OutcomeUnknown", "may or may not have been applied"))
            elif response.ok:
                outcomes.append(self._item(response) if read_body else True)
            else:
                error = response.error()
                if isinstance(error, ItemNotFound):
                    if container_gone is None:  # one check for the whole call
                        container_gone = not self._container_exists(container_id)
                    if container_gone:
                        error = self.kind.gone(container_id, response.request_id)
                outcomes.append(error)
        return outcomes

    @staticmethod
    def _complete(outcomes: list[Any]) -> list[Any]:
        """Raise ``MailboxThrottled`` if any request gave up; the others are in ``completed``."""
        gave_up = [o for o in outcomes if isinstance(o, GraphResponse)]
        if not gave_up:
            return outcomes
        retry_after = max((r.retry_after or 0.0 for r in gave_up), default=0.0) or 1.0
        completed = [None if isinstance(o, GraphResponse) else o for o in outcomes]
        raise MailboxThrottled(gave_up[0].status or 503, gave_up[0].error().code, f"{len(gave_up)} of {len(outcomes)} requests did not complete "
                               "within the wait budget", retry_after=retry_after, completed=completed)


def _is_item_not_found(response: GraphResponse) -> bool:
    """404 ErrorItemNotFound, and not another 404 (an unknown user or a mailbox-less one)."""
    return type(response.error()) is ItemNotFound if response.status == 404 else False
