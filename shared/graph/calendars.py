"""The member's "Zoho CRM" calendar and its events, for calendar sync (SPEC R3).

Events are written with ``Prefer: outlook.timezone="UTC"`` so that every event read back
(create, update, get, delta) has start and end in UTC, whatever zone it was written in: one
normalised form for change detection (issue 7). Creates carry a ``transactionId``, so a
retried POST answers with the first event instead of a second one, and our ``CRM_ID``
extended property, so a create whose answer was lost is found again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from shared.graph.batch import GraphRequest
from shared.graph.container import ContainerClient, ContainerKind, ItemDraft, query, segment
from shared.graph.delta import DEFAULT_PAGE_SIZE, DeltaPage
from shared.graph.errors import CalendarGone, GraphError
from shared.graph.extended_properties import CRM_ID, expand
from shared.graph.models import Calendar, Event

CALENDAR_NAME = "Zoho CRM"  # SPEC R3.2
UTC_TIMES = 'outlook.timezone="UTC"'
TRANSACTION_NAMESPACE = uuid.UUID("5d0f3c3a-1e0b-4f57-a8a4-3c6f2b9d8e11")

EVENTS: ContainerKind[Calendar, Event] = ContainerKind(
    label="calendar", collection="calendars", name_field="name", items="events",
    container_model=Calendar, item_model=Event, gone=CalendarGone, tag_value="calendar",
    prefer=(UTC_TIMES,),
)


def transaction_id_for(calendar_id: str, crm_id: str) -> str:
    """The default ``transactionId`` of the event mirroring ``crm_id``: the same on every retry,
    so a re-delivered queue message cannot create the event twice.

    The engine passes its own (e.g. per pending row) when it means to create the event anew
    after a deletion: what Graph answers to a reused id of a deleted event is not documented.
    """
    return str(uuid.uuid5(TRANSACTION_NAMESPACE, f"{calendar_id}/{crm_id}"))


def _utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("delta windows need aware datetimes (a naive one is ambiguous)")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CalendarClient(ContainerClient[Calendar, Event]):
    """Calendar sync's view of one mailbox: ``CalendarClient(GraphMailbox(...))``."""

    kind = EVENTS

    # ---- the calendar (R3.2, R3.7, R3.8) -----------------------------------------------------
    def ensure_calendar(self, name: str = CALENDAR_NAME) -> Calendar:
        """Our calendar, created if needed; never a second one (see ``ContainerClient``)."""
        return self.ensure_container(name)

    def find_calendar(self) -> Calendar | None:
        return self.find_container()

    def get_calendar(self, calendar_id: str) -> Calendar:
        """The calendar; ``CalendarGone`` once the user deleted it in Outlook (R3.8)."""
        return self.get_container(calendar_id)

    def delete_calendar(self, calendar_id: str) -> bool:
        """Disable (R3.7): the calendar goes, its events with it. False if already gone."""
        return self.delete_container(calendar_id)

    # ---- events --------------------------------------------------------------------------
    def _create_request(self, container_id: str, draft: ItemDraft) -> GraphRequest:
        request = super()._create_request(container_id, draft)
        transaction_id = draft.transaction_id or transaction_id_for(container_id, draft.crm_id)
        # With a transactionId Graph dedupes the POST, so it may be sent again like a PUT.
        return request.model_copy(update={"body": {**(request.body or {}), "transactionId": transaction_id},
                                          "repeatable": True})

    def create_event(self, calendar_id: str, fields: dict[str, Any], crm_id: str,
                     transaction_id: str | None = None) -> Event:
        """Create an event (Graph JSON ``fields``) tagged with ``crm_id``; repeatable."""
        return self.create_item(calendar_id, ItemDraft(crm_id=crm_id, fields=fields, transaction_id=transaction_id))

    def create_events(self, calendar_id: str, drafts: Sequence[ItemDraft]) -> list[Event | GraphError]:
        """Create many events in ``$batch``es of 20 (see ``ContainerClient.create_items``)."""
        return self.create_items(calendar_id, drafts)

    def update_event(self, calendar_id: str, event_id: str, fields: dict[str, Any]) -> Event:
        """PATCH an event; the answer's ``change_key`` is the version to store."""
        return self.update_item(calendar_id, event_id, fields)

    def update_events(self, calendar_id: str, changes: Sequence[tuple[str, dict[str, Any]]]) -> list[Event | GraphError]:
        return self.update_items(calendar_id, changes)

    def delete_event(self, calendar_id: str, event_id: str) -> bool:
        """Delete an event; False if it was already gone."""
        return self.delete_item(calendar_id, event_id)

    def delete_events(self, calendar_id: str, event_ids: Sequence[str]) -> list[bool | GraphError]:
        return self.delete_items(calendar_id, event_ids)

    def get_event(self, calendar_id: str, event_id: str) -> Event:
        return self.get_item(calendar_id, event_id)

    def find_events_by_crm_id(self, calendar_id: str, crm_id: str) -> list[Event]:
        return self.find_items_by_crm_id(calendar_id, crm_id)

    def events_outside(self, calendar_id: str, start: datetime, end: datetime) -> list[Event]:
        """Events (and series masters, by their first occurrence) that start at or after ``end``
        or end at or before ``start``: what a calendarView delta over that window never reports.
        Two filtered listings (an events listing filters on ``start/dateTime``, a calendarView
        does not)."""
        found: dict[str, Event] = {}
        for clause in (f"start/dateTime ge '{_utc(end)}'", f"end/dateTime le '{_utc(start)}'"):
            for event in self._list_items(calendar_id, query(filter=clause, top="100", expand=expand(CRM_ID))):
                found[event.id] = event
        return list(found.values())

    # ---- occurrences of a series ---------------------------------------------------------
    def occurrences_around(self, master_id: str, day: date) -> list[Event]:
        """The series' occurrences from the day before ``day`` to the day after (wide enough
        for any zone), to find one by its original date."""
        start = datetime.combine(day - timedelta(days=1), time(0), tzinfo=UTC)
        return self.instances(master_id, start, start + timedelta(days=3))

    def instances(self, master_id: str, start: datetime, end: datetime) -> list[Event]:
        """The series' occurrences and exceptions in a window (every page)."""
        window = urlencode({"startDateTime": _utc(start), "endDateTime": _utc(end), "$top": "1000"})
        url: str | None = f"{self.mailbox.user_path}/events/{segment(master_id)}/instances?{window}"
        found: list[Event] = []
        while url:
            response = self.mailbox.send(GraphRequest(method="GET", url=url, headers=self._headers()))
            if not response.ok:
                raise response.error()
            body = response.json_object()
            found += [Event.model_validate(v) for v in body.get("value") or []]
            url = body.get("@odata.nextLink")
        return found

    def move_occurrence(self, occurrence_id: str, times: dict[str, Any]) -> None:
        """Move one occurrence (it becomes an exception of its series)."""
        response = self.mailbox.send(GraphRequest(method="PATCH", url=f"{self.mailbox.user_path}/events/{segment(occurrence_id)}",
                                                  body=times, headers=self._headers()))
        if not response.ok:
            raise response.error()

    def cancel_occurrence(self, occurrence_id: str) -> bool:
        """Delete one occurrence (Outlook keeps it as a cancelled date of the series)."""
        response = self.mailbox.send(GraphRequest(method="DELETE", url=f"{self.mailbox.user_path}/events/{segment(occurrence_id)}"))
        if response.ok:
            return True
        if response.status == 404:
            return False
        raise response.error()

    # ---- calendarView delta ----------------------------------------------------------------
    def delta(self, calendar_id: str, *, start: datetime | None = None, end: datetime | None = None,
              resume_from: str | None = None, page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[DeltaPage[Event]]:
        """Pages of the calendar's calendarView delta, streamed.

        A new round needs the window (``start``, ``end``; frozen into Graph's token); a stored
        ``resume_from`` link (a page's ``resume_link``) continues a round or starts the next.
        Raises ``DeltaExpired`` (start a new round) and ``CalendarGone``.
        """
        if resume_from is not None:
            first = GraphRequest(method="GET", url=resume_from)
        elif start is None or end is None:
            raise ValueError("a new calendarView delta round needs start and end")
        else:
            window = f"startDateTime={quote(_utc(start))}&endDateTime={quote(_utc(end))}"
            first = GraphRequest(method="GET", url=f"{self._container_url(calendar_id)}/calendarView/delta?{window}")
        return self._delta_pages(calendar_id, first, page_size)
