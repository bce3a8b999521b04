"""Delta rounds (calendarView/delta, contacts/delta) read as a stream of pages.

A round starts with a first request (for events, a frozen ``startDateTime``/``endDateTime``
window), follows ``@odata.nextLink`` page by page and ends on a page carrying
``@odata.deltaLink``, which starts the next round (graph-notes §3, §4). Pages are yielded
one at a time and never accumulated, so a 10,000-item round costs one page of memory
(issue 9). After handling a page the caller stores ``page.resume_link``; a later queue
message resumes from it with ``resume_from=``, mid-round or at the next round.

``@removed`` entries are surfaced as ``Removed`` (the explicit delete signal of DESIGN §8).
For a windowed calendarView they also name events outside the window; the engine acts
only on ids it has linked. 410 / syncStateNotFound / resyncRequired raise ``DeltaExpired``:
drop the stored link and start a new round.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from shared.graph.batch import GraphRequest, GraphResponse
from shared.graph.errors import GraphError
from shared.graph.mailbox import GraphMailbox
from shared.graph.models import OutlookItem, Removed

T = TypeVar("T", bound=OutlookItem)
# Graph's largest page (``Prefer: odata.maxpagesize``): a first round reads every item back.
DEFAULT_PAGE_SIZE = 1000


@dataclass(frozen=True)
class DeltaPage(Generic[T]):
    """One page of a delta round: what changed and what was removed."""

    changed: list[T] = field(default_factory=list)
    removed: list[Removed] = field(default_factory=list)
    next_link: str | None = None
    delta_link: str | None = None

    @property
    def resume_link(self) -> str:
        """What to store after handling this page: the next page, or the next round."""
        link = self.next_link or self.delta_link
        if link is None:  # pragma: no cover - Graph always sends one of the two
            raise ValueError("a delta page without nextLink or deltaLink")
        return link

    @property
    def is_last(self) -> bool:
        """True on the round's last page (its ``delta_link`` starts the next round)."""
        return self.delta_link is not None


def read_pages(
    mailbox: GraphMailbox,
    first: GraphRequest,
    model: type[T],
    *,
    prefer: list[str],
    error_for: Callable[[GraphResponse], GraphError],
) -> Iterator[DeltaPage[T]]:
    """Yield the pages of one round starting with ``first`` (a first request or a stored link).

    ``prefer`` is sent with every page (Graph wants ``odata.maxpagesize`` on each request);
    ``error_for`` maps a failed answer to the caller's exception (e.g. ``CalendarGone``).
    """
    headers = {"Prefer": ", ".join(prefer)} if prefer else {}
    request = first.model_copy(update={"headers": {**first.headers, **headers}})
    while True:
        response = mailbox.send(request)
        if not response.ok:
            raise error_for(response)
        page = parse_page(response.json_object(), model)
        yield page
        if page.next_link is None:
            return
        request = GraphRequest(method="GET", url=page.next_link, headers=headers)


def parse_page(body: dict, model: type[T]) -> DeltaPage[T]:
    changed: list[T] = []
    removed: list[Removed] = []
    for entry in body.get("value") or []:
        if "@removed" in entry:
            reason = (entry.get("@removed") or {}).get("reason") or "deleted"
            removed.append(Removed(id=entry["id"], reason=reason))
        else:
            changed.append(model.model_validate(entry))
    return DeltaPage(changed=changed, removed=removed, next_link=body.get("@odata.nextLink"),
                     delta_link=body.get("@odata.deltaLink"))
